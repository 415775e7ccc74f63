//! Token-service load: pods asking for their credentials, each on a fresh TLS connection as
//! an init-fetcher does. In IP mode the client socket is bound to the pod's address (kwok pods
//! have loopback IPs); in SA mode each request carries that pod's bound service-account token.
//!
//! `burst`: every pod asks once, all released at the same instant (the cold start of a
//! Deployment). `cached`: a fixed number of workers ask back to back for a while, cycling over
//! the pods (answers come from the ledger once the burst has filled it).
use crate::Error;
use crate::load::{Target, cpu_seconds, peak_rss_kib, target};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request that takes longer counts as an error (a cold burst waits on Hadoop: be generous).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Source address = the pod's IP, no token.
    Ip,
    /// Bearer = the pod's bound service-account token, any source address.
    Sa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Every pod asks once, all at the same instant.
    Burst,
    /// --concurrency workers ask back to back for --duration, cycling over the pods.
    Cached,
}

/// The service and the pods that ask it (`credentials` and `fetchers` alike).
#[derive(Debug, clap::Args)]
pub struct PodsArgs {
    /// token-service's credentials endpoint, e.g. https://127.0.0.1:PORT/v1/credentials.
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) of the service.
    #[arg(long)]
    ca: PathBuf,
    /// One pod per line: `IP`, `IP<TAB>TOKEN` or `IP<TAB>TOKEN<TAB>WORKLOAD` (tokens needed in
    /// SA mode, `-` otherwise; the workload for per-workload checks).
    #[arg(long)]
    pods: PathBuf,
    /// How each pod proves who it is.
    #[arg(long, value_enum)]
    pub(crate) mode: Mode,
}

impl PodsArgs {
    pub(crate) fn read_pods(&self) -> Result<Vec<Pod>, Error> {
        let text = std::fs::read_to_string(&self.pods).map_err(|source| Error::Read {
            path: self.pods.clone(),
            source,
        })?;
        parse_pods(&text, self.mode)
            .map_err(|e| Error::Usage(format!("{}: {e}", self.pods.display())))
    }

    pub(crate) fn target(&self) -> Result<Target, Error> {
        target(&self.url, &self.ca, None)
    }
}

#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    #[command(flatten)]
    service: PodsArgs,
    /// Which load: a cold burst, or answers from the ledger.
    #[arg(long, value_enum)]
    phase: Phase,
    /// Workers of the cached phase.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// Length of the cached phase.
    #[arg(long, default_value = "5s", value_parser = k2h_contract::duration::parse_arg)]
    duration: Duration,
    #[command(flatten)]
    report: ReportArgs,
}

/// The service measured and where its report goes, for `credentials` and `fetchers`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Service process id, for its CPU time and peak RSS.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// Name in the report (e.g. 1000-ip-burst).
    #[arg(long)]
    pub(crate) label: String,
    /// Write the report as JSON here.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

impl ReportArgs {
    /// `report` as JSON to `--out`.
    pub(crate) fn write(&self, report: &impl Serialize) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(report).map_err(|e| Error::Usage(e.to_string()))?;
        std::fs::write(&self.out, json).map_err(|source| Error::Write {
            path: self.out.clone(),
            source,
        })
    }
}

pub(crate) struct Pod {
    pub(crate) ip: IpAddr,
    pub(crate) token: Option<String>,
    /// The workload the pod belongs to (third column), for per-workload checks.
    pub(crate) workload: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PhaseReport {
    label: String,
    mode: Mode,
    phase: Phase,
    pods: usize,
    concurrency: usize,
    requests: u64,
    ok: u64,
    /// HTTP status → count, plus "transport" for requests that got no answer.
    outcomes: BTreeMap<String, u64>,
    first_error: Option<String>,
    wall_s: f64,
    requests_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    server_cpu_s: Option<f64>,
    server_peak_rss_kib: Option<u64>,
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) histogram: Option<Histogram<u64>>,
    pub(crate) ok: u64,
    pub(crate) outcomes: BTreeMap<String, u64>,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    /// Requests that got an answer or a transport error.
    pub(crate) fn requests(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// The latency at quantile `p`, 0 without samples.
    pub(crate) fn quantile_us(&self, p: f64) -> u64 {
        self.histogram
            .as_ref()
            .map_or(0, |h| h.value_at_quantile(p))
    }

    pub(crate) fn max_us(&self) -> u64 {
        self.histogram.as_ref().map_or(0, |h| h.max())
    }

    pub(crate) fn new() -> Result<Self, Error> {
        let histogram = Histogram::new_with_bounds(1, 600_000_000, 3)
            .map_err(|e| Error::Usage(format!("histogram: {e}")))?;
        Ok(Tally {
            histogram: Some(histogram),
            ..Tally::default()
        })
    }

    /// Like [`Tally::record`], an answer whose error body named a reason (`503 hadoop_busy`)
    /// counted under that reason, with its message as the first error's detail.
    pub(crate) fn record_answer(&mut self, took: Duration, result: Result<Answer, String>) {
        match result {
            Ok(Answer {
                status,
                reason: Some((code, message)),
                ..
            }) if status != 200 => {
                if let Some(h) = self.histogram.as_mut() {
                    h.saturating_record(took.as_micros().try_into().unwrap_or(u64::MAX));
                }
                self.first_error
                    .get_or_insert_with(|| format!("HTTP {status} {code}: {message}"));
                *self.outcomes.entry(format!("{status} {code}")).or_default() += 1;
            }
            other => self.record(took, other.map(|a| a.status)),
        }
    }

    pub(crate) fn record(&mut self, took: Duration, result: Result<u16, String>) {
        if let Some(h) = self.histogram.as_mut() {
            h.saturating_record(took.as_micros().try_into().unwrap_or(u64::MAX));
        }
        let key = match result {
            Ok(200) => {
                self.ok += 1;
                "200".to_owned()
            }
            Ok(status) => {
                self.first_error.get_or_insert(format!("HTTP {status}"));
                status.to_string()
            }
            Err(e) => {
                self.first_error.get_or_insert(e);
                "transport".to_owned()
            }
        };
        *self.outcomes.entry(key).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        if let (Some(a), Some(b)) = (self.histogram.as_mut(), other.histogram.as_ref()) {
            let _ = a.add(b);
        }
        self.ok += other.ok;
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

pub async fn run(args: CredentialsArgs) -> Result<(), Error> {
    let pods = Arc::new(args.service.read_pods()?);
    let target = Arc::new(args.service.target()?);
    let cpu_before = args.report.pid.and_then(cpu_seconds);
    let started = Instant::now();
    let (tally, concurrency) = match args.phase {
        Phase::Burst => (burst(&target, &pods, args.service.mode).await?, pods.len()),
        Phase::Cached => (
            cached(
                &target,
                &pods,
                args.service.mode,
                args.concurrency,
                args.duration,
            )
            .await?,
            args.concurrency,
        ),
    };
    let wall = started.elapsed().as_secs_f64();
    let server_cpu_s = match (cpu_before, args.report.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let requests = tally.requests();
    let q = |p: f64| tally.quantile_us(p);
    let report = PhaseReport {
        label: args.report.label.clone(),
        mode: args.service.mode,
        phase: args.phase,
        pods: pods.len(),
        concurrency,
        requests,
        ok: tally.ok,
        p50_us: q(0.5),
        p99_us: q(0.99),
        max_us: tally.max_us(),
        outcomes: tally.outcomes,
        first_error: tally.first_error,
        wall_s: wall,
        requests_per_s: requests as f64 / wall.max(1e-9),
        server_cpu_s,
        server_peak_rss_kib: args.report.pid.and_then(peak_rss_kib),
    };
    println!(
        "{:<16} {:>5} pods {:>4} conc {:>7} req {:>7} ok {:>8.1} req/s p50 {:>8} us p99 {:>8} us wall {:>6.2} s {:?}",
        report.label,
        report.pods,
        report.concurrency,
        report.requests,
        report.ok,
        report.requests_per_s,
        report.p50_us,
        report.p99_us,
        report.wall_s,
        report.outcomes,
    );
    if let Some(e) = &report.first_error {
        println!("  first error: {e}");
    }
    args.report.write(&report)
}

/// `IP`, `IP<TAB>TOKEN` or `IP<TAB>TOKEN<TAB>WORKLOAD` per line (TOKEN may be empty or `-`
/// in IP mode); SA mode needs the token.
pub(crate) fn parse_pods(text: &str, mode: Mode) -> Result<Vec<Pod>, String> {
    let mut pods = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut columns = line.split('\t');
        let ip = columns.next().unwrap_or_default();
        let token = columns
            .next()
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "-")
            .map(str::to_owned);
        let workload = columns
            .next()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_owned);
        let ip = ip
            .trim()
            .parse()
            .map_err(|e| format!("line {}: {ip:?}: {e}", n + 1))?;
        if mode == Mode::Sa && token.as_deref().is_none_or(str::is_empty) {
            return Err(format!("line {}: SA mode needs IP<TAB>TOKEN", n + 1));
        }
        pods.push(Pod {
            ip,
            token,
            workload,
        });
    }
    if pods.is_empty() {
        return Err("lists no pods".into());
    }
    Ok(pods)
}

/// Every pod asks once; all tasks wait on one gate so they are released together.
async fn burst(target: &Arc<Target>, pods: &Arc<Vec<Pod>>, mode: Mode) -> Result<Tally, Error> {
    let (open, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(pods.len());
    for i in 0..pods.len() {
        let (target, pods, mut gate) = (Arc::clone(target), Arc::clone(pods), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _ = gate.wait_for(|open| *open).await;
            let started = Instant::now();
            let result = ask(&target, &pods[i], mode).await;
            (started.elapsed(), result)
        }));
    }
    let _ = open.send(true);
    let mut tally = Tally::new()?;
    for task in tasks {
        match task.await {
            Ok((took, result)) => tally.record_answer(took, result),
            Err(e) => tally.record(Duration::ZERO, Err(format!("task: {e}"))),
        }
    }
    Ok(tally)
}

/// `workers` ask back to back for `duration`, worker w taking pods w, w+workers, ...
async fn cached(
    target: &Arc<Target>,
    pods: &Arc<Vec<Pod>>,
    mode: Mode,
    workers: usize,
    duration: Duration,
) -> Result<Tally, Error> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers.max(1) {
        let (target, pods) = (Arc::clone(target), Arc::clone(pods));
        let mut tally = Tally::new()?;
        tasks.push(tokio::spawn(async move {
            let mut i = w % pods.len();
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = ask(&target, &pods[i], mode).await;
                tally.record_answer(started.elapsed(), result);
                i = (i + workers) % pods.len();
            }
            tally
        }));
    }
    let mut total = Tally::new()?;
    for task in tasks {
        match task.await {
            Ok(t) => total.merge(t),
            Err(e) => total.record(Duration::ZERO, Err(format!("task: {e}"))),
        }
    }
    Ok(total)
}

/// What one request got: the status and a hash of the body (equal bodies, equal tokens).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) digest: u64,
    /// `error` and `message` of an error answer's JSON body.
    pub(crate) reason: Option<(String, String)>,
}

/// One POST on a fresh connection; the answer, or why there was none.
pub(crate) async fn ask(target: &Target, pod: &Pod, mode: Mode) -> Result<Answer, String> {
    let exchange = async {
        let addr: SocketAddr = target
            .addr
            .parse()
            .map_err(|e| format!("{}: {e}", target.addr))?;
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if mode == Mode::Ip {
            socket
                .bind(SocketAddr::new(pod.ip, 0))
                .map_err(|e| format!("bind {}: {e}", pod.ip))?;
        }
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = target
            .tls
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = Request::post(target.path.as_str())
            .header(http::header::HOST, target.host_header.as_str());
        if let (Mode::Sa, Some(token)) = (mode, pod.token.as_deref()) {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Read the whole answer: the file is what a fetcher waits for.
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hasher::write(&mut hasher, &body);
        let reason = (status != 200)
            .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .flatten()
            .and_then(|v| {
                let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                Some((text("error")?, text("message").unwrap_or_default()))
            });
        Ok(Answer {
            status,
            digest: std::hash::Hasher::finish(&hasher),
            reason,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_lists() {
        let pods = parse_pods("127.101.0.5\ttok-a\n\n127.101.0.6\ttok-b\n", Mode::Sa).unwrap();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[1].ip, "127.101.0.6".parse::<IpAddr>().unwrap());
        assert_eq!(pods[1].token.as_deref(), Some("tok-b"));
        assert_eq!(parse_pods("127.101.0.5\n", Mode::Ip).unwrap().len(), 1);
        let pods = parse_pods("127.101.0.5\t-\tfetch-1\n", Mode::Ip).unwrap();
        assert_eq!(pods[0].token, None);
        assert_eq!(pods[0].workload.as_deref(), Some("fetch-1"));
        assert!(parse_pods("127.101.0.5\t-\tfetch-1\n", Mode::Sa).is_err());
        assert!(
            parse_pods("127.101.0.5\n", Mode::Sa)
                .err()
                .is_some_and(|e| e.contains("line 1"))
        );
        assert!(parse_pods("nope\n", Mode::Ip).is_err());
        assert!(parse_pods("\n", Mode::Ip).is_err());
    }

    #[test]
    fn tallies_count_outcomes_and_merge() {
        let mut a = Tally::new().unwrap();
        a.record(Duration::from_millis(2), Ok(200));
        a.record(Duration::from_millis(3), Ok(429));
        let mut b = Tally::new().unwrap();
        b.record(Duration::from_millis(1), Err("connect: refused".into()));
        a.merge(b);
        assert_eq!(a.ok, 1);
        assert_eq!(
            a.outcomes["200"] + a.outcomes["429"] + a.outcomes["transport"],
            3
        );
        assert_eq!(a.first_error.as_deref(), Some("HTTP 429"));
        assert_eq!(a.histogram.as_ref().map(|h| h.len()), Some(3));
    }
}
