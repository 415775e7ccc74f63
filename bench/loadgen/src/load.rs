//! The load loop: one TLS keep-alive HTTP/1.1 connection per worker, requests back to back
//! (closed loop) or at a fixed arrival rate shared by the workers (`--rate`).
use crate::Error;
use crate::report::{self, Run};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Per-request limit: a stuck request counts as an error instead of hanging the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The server under test (`run` and `sustained` alike).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Name of the server under test, as written in the report (e.g. iddecorator, go-ref).
    #[arg(long)]
    pub(crate) target: String,
    /// Endpoint to POST to, e.g. https://127.0.0.1:8443/mutate.
    #[arg(long)]
    pub(crate) url: String,
    /// CA certificate (PEM) the server's certificate chains to.
    #[arg(long)]
    pub(crate) ca: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// TLS server name to verify (default: the URL's host).
    #[arg(long)]
    server_name: Option<String>,
    /// Process id of the server, for its peak RSS (VmHWM in /proc/<pid>/status).
    #[arg(long)]
    pid: Option<u32>,
    /// Request body as name=path (repeatable); each fixture is run at every concurrency.
    #[arg(long = "fixture", required = true)]
    fixtures: Vec<String>,
    /// Concurrent connections, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Length of each measured run.
    #[arg(long, default_value = "5s", value_parser = k2h_contract::duration::parse_arg)]
    duration: Duration,
    /// Send exactly this many requests per run instead of running for --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Fixed arrival rate (requests/s over all connections) instead of back to back; the
    /// concurrency is then the number of connections requests are spread over.
    #[arg(long)]
    rate: Option<f64>,
    /// Unmeasured load before each run.
    #[arg(long, default_value = "1s", value_parser = k2h_contract::duration::parse_arg)]
    warmup: Duration,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Add the runs to those already in --out (same target) instead of replacing the file.
    #[arg(long, requires = "out")]
    append: bool,
}

/// Where and how to connect.
pub(crate) struct Target {
    pub(crate) addr: String,
    pub(crate) host_header: String,
    pub(crate) path: String,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) tls: tokio_rustls::TlsConnector,
}

enum Stop {
    At(Instant),
    /// Requests still to send, shared by all workers.
    Count(Arc<AtomicI64>),
}

/// Fixed arrival rate: request `n` (a slot taken from a shared counter) is due at
/// `start + n * interval`. A worker sleeps until its slot is due, so sends follow tokio's 1 ms
/// timer wheel (bursts of rate/1000 per tick). Latency is measured from the actual send; a
/// send more than [`LATE`] after its slot counts as late, which says the rate was not held.
struct Pace {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
}

/// Timer granularity (1 ms) plus 1 ms of slack.
const LATE: Duration = Duration::from_millis(2);

struct WorkerResult {
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    late: u64,
}

pub async fn run(args: RunArgs) -> Result<(), Error> {
    let target = Arc::new(target(
        &args.server.url,
        &args.server.ca,
        args.server_name.as_deref(),
    )?);
    let fixtures = read_fixtures(&args.fixtures)?;
    if args.concurrency.contains(&0) {
        return Err(Error::Usage(
            "--concurrency values must be at least 1".into(),
        ));
    }
    let interval = match args.rate {
        None => None,
        Some(r) if r.is_finite() && r >= 1.0 => Some(Duration::from_secs_f64(1.0 / r)),
        Some(r) => {
            return Err(Error::Usage(format!(
                "--rate {r}: expected requests per second, at least 1"
            )));
        }
    };
    let pace = |start| {
        interval.map(|interval| {
            Arc::new(Pace {
                start,
                interval,
                next: AtomicU64::new(0),
            })
        })
    };

    let mut runs = Vec::new();
    report::print_header(&args.server.target);
    for (name, body) in &fixtures {
        for &concurrency in &args.concurrency {
            if !args.warmup.is_zero() {
                let stop = Stop::At(Instant::now() + args.warmup);
                drive(&target, body, concurrency, stop, pace(Instant::now())).await?;
            }
            let stop = match args.requests {
                Some(n) => Stop::Count(Arc::new(AtomicI64::new(
                    i64::try_from(n).unwrap_or(i64::MAX),
                ))),
                None => Stop::At(Instant::now() + args.duration),
            };
            let cpu_before = args.pid.and_then(cpu_seconds);
            let started = Instant::now();
            let results = drive(&target, body, concurrency, stop, pace(started)).await?;
            let elapsed = started.elapsed();
            let cpu = cpu_before
                .zip(args.pid.and_then(cpu_seconds))
                .map(|(before, after)| after - before);
            let late = args
                .rate
                .map(|_| results.iter().map(|r| r.late).sum::<u64>());
            let run = Run::from_results(
                name,
                concurrency,
                elapsed,
                results
                    .into_iter()
                    .map(|r| (r.histogram, r.ok, r.errors))
                    .collect(),
                report::Server {
                    peak_rss_kib: args.pid.and_then(peak_rss_kib),
                    cpu_seconds: cpu,
                },
                args.rate.map(|rate| report::Paced { rate, late }),
            );
            report::print_row(&run);
            runs.push(run);
        }
    }
    if let Some(out) = &args.out {
        if args.append {
            runs = report::earlier_runs(out, &args.server.target)?
                .into_iter()
                .chain(runs)
                .collect();
        }
        report::write_json(out, &args.server.target, &args.server.url, &runs)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// `name=path` specs → (name, body).
pub(crate) fn read_fixtures(specs: &[String]) -> Result<Vec<(String, Bytes)>, Error> {
    let mut fixtures = Vec::new();
    for spec in specs {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--fixture {spec:?}: expected name=path")))?;
        let body = std::fs::read(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        fixtures.push((name.to_owned(), Bytes::from(body)));
    }
    Ok(fixtures)
}

async fn drive(
    target: &Arc<Target>,
    body: &Bytes,
    concurrency: usize,
    stop: Stop,
    pace: Option<Arc<Pace>>,
) -> Result<Vec<WorkerResult>, Error> {
    let stop = Arc::new(stop);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (target, body, stop, pace) = (target.clone(), body.clone(), stop.clone(), pace.clone());
        tasks.push(tokio::spawn(async move {
            worker(&target, body, &stop, pace.as_deref()).await
        }));
    }
    let mut results = Vec::with_capacity(concurrency);
    for t in tasks {
        match t.await {
            Ok(r) => results.push(r?),
            Err(e) => return Err(Error::Usage(format!("worker failed: {e}"))),
        }
    }
    Ok(results)
}

async fn worker(
    target: &Target,
    body: Bytes,
    stop: &Stop,
    pace: Option<&Pace>,
) -> Result<WorkerResult, Error> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let (mut ok, mut errors, mut late) = (0u64, 0u64, 0u64);
    let mut sender = connect(target).await?;
    loop {
        if let Some(pace) = pace {
            let slot = pace.next.fetch_add(1, Ordering::Relaxed);
            let due = pace.start + pace.interval.mul_f64(slot as f64);
            if let Stop::At(t) = stop
                && due >= *t
            {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            if Instant::now().saturating_duration_since(due) > LATE {
                late += 1;
            }
        }
        match stop {
            Stop::At(t) if Instant::now() >= *t => break,
            Stop::Count(left) if left.fetch_sub(1, Ordering::Relaxed) <= 0 => break,
            _ => {}
        }
        let request = Request::post(target.path.as_str())
            .header(http::header::HOST, target.host_header.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| Error::Usage(e.to_string()))?;
        let start = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        })
        .await;
        match outcome {
            Ok(Ok(status)) if status.is_success() => {
                ok += 1;
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                histogram.saturating_record(micros.max(1));
            }
            Ok(Ok(_)) => errors += 1,
            Ok(Err(_)) | Err(_) => {
                errors += 1;
                sender = connect(target).await?;
            }
        }
    }
    Ok(WorkerResult {
        histogram,
        ok,
        errors,
        late,
    })
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, Error> {
    let tls = connect_tls(target).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| target.connect_error(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Target {
    pub(crate) fn connect_error(&self, reason: String) -> Error {
        Error::Connect {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// TCP (no Nagle) and TLS to `target`, each step under `REQUEST_TIMEOUT`.
pub(crate) async fn connect_tls(
    target: &Target,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let failed = |reason: String| target.connect_error(reason);
    let tcp = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio::net::TcpStream::connect(&target.addr),
    )
    .await
    .map_err(|_| failed("timed out".into()))?
    .map_err(|e| failed(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
    let tls = tokio::time::timeout(
        REQUEST_TIMEOUT,
        target.tls.connect(target.server_name.clone(), tcp),
    )
    .await
    .map_err(|_| failed("TLS handshake timed out".into()))?
    .map_err(|e| failed(format!("TLS: {e}")))?;
    Ok(tls)
}

pub(crate) fn target(url: &str, ca: &Path, server_name: Option<&str>) -> Result<Target, Error> {
    target_with_alpn(url, ca, server_name, Vec::new())
}

/// [`target`] offering these ALPN protocols (e.g. `h2`) in the TLS handshake.
pub(crate) fn target_with_alpn(
    url: &str,
    ca: &Path,
    server_name: Option<&str>,
    alpn: Vec<Vec<u8>>,
) -> Result<Target, Error> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::Usage(format!("--url {url:?}: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(Error::Usage(format!(
            "--url {url:?}: only https is supported"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| Error::Usage(format!("--url {url:?} has no host")))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let name = server_name.unwrap_or(&host).to_owned();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| Error::Usage(format!("server name {name:?}: {e}")))?;
    let pem = std::fs::read(ca).map_err(|source| Error::Read {
        path: ca.to_owned(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Target {
        addr: format!("{host}:{port}"),
        host_header: format!("{host}:{port}"),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into()),
        server_name,
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
    })
}

/// Polls `url` with GET until 200 or `timeout`.
pub async fn wait_ready(url: &str, ca: &Path, timeout: Duration) -> Result<(), Error> {
    let target = target(url, ca, None)?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match get_status(&target).await {
            Ok(200) => return Ok(()),
            Ok(s) => last = format!("status {s}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::NotReady {
        url: url.to_owned(),
        timeout,
        last,
    })
}

async fn get_status(target: &Target) -> Result<u16, Error> {
    let mut sender = connect(target).await?;
    let request = Request::get(target.path.as_str())
        .header(http::header::HOST, target.host_header.as_str())
        .body(Full::new(Bytes::new()))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| Error::Usage("request timed out".into()))?
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(response.status().as_u16())
}

/// Linux's USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on every mainstream
/// architecture (the kernel ABI fixes it, whatever CONFIG_HZ is).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time `pid` has used so far, in seconds (Linux only).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// utime + stime: fields 14 and 15 of /proc/<pid>/stat, counted after the `(comm)` field,
/// which may itself contain spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state): utime is the 12th field of rest, stime the 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of `pid` so far, in KiB (Linux only).
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_stat() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1190 0 0 0 731 52 0 0 20 0 \
                    3 0 123 456 789";
        assert_eq!(parse_cpu_ticks(stat), Some(783));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn rss_from_status_of_this_process() {
        assert!(peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
