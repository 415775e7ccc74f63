//! Sustained open-loop admission load (`loadgen sustained`): requests fall due at a fixed rate
//! whatever the server does, spread round robin over a few HTTP/2 connections (what
//! kube-apiserver keeps open to a webhook), the fixtures taken in turn (a Pod and Deployment
//! mix). A slow answer never delays the next send (open loop), and latency is counted from when
//! a request was *due*, so a stall is charged to every request it held up (no coordinated
//! omission); the time from the actual send is reported beside it.
use crate::Error;
use crate::load::{
    ServerArgs, Target, connect_tls, cpu_seconds, peak_rss_kib, read_fixtures, target_with_alpn,
};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request without an answer by then is a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A send this far behind its due time counts as late: tokio's 1 ms timer plus 1 ms of slack.
const LATE: Duration = Duration::from_millis(2);
/// What an admission answer that lets the object in contains (both servers write compact JSON).
const ALLOWED: &[u8] = b"\"allowed\":true";

#[derive(Debug, clap::Args)]
pub struct SustainedArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Process id of the server, for its CPU time and peak RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Request body as name=path (repeatable); requests take the fixtures in turn.
    #[arg(long = "fixture", required = true)]
    fixtures: Vec<String>,
    /// Requests per second, over all connections.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Length of the measured run.
    #[arg(long, default_value = "60s", value_parser = k2h_contract::duration::parse_arg)]
    duration: Duration,
    /// Unmeasured load at the same rate first (connections are kept).
    #[arg(long, default_value = "2s", value_parser = k2h_contract::duration::parse_arg)]
    warmup: Duration,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight beyond this are not sent but counted as `backlog` errors, so a server
    /// that stops answering cannot make the load generator grow without bound.
    #[arg(long, default_value_t = 50_000)]
    max_in_flight: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    out: PathBuf,
}

/// p50/p99/p99.9/max in µs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Quantiles {
        Quantiles {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SustainedReport {
    pub target: String,
    pub url: String,
    pub protocol: String,
    pub connections: usize,
    pub fixtures: Vec<String>,
    pub target_rate: f64,
    pub seconds: f64,
    pub warmup_seconds: f64,
    /// Requests due in the measured run: rate × seconds.
    pub scheduled: u64,
    pub ok: u64,
    /// Kind → count: `http-<status>`, `denied` (200 without `"allowed":true`), `timeout`,
    /// `transport`, `backlog` (not sent: too many in flight).
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub first_error: Option<String>,
    /// Sends more than `late_threshold_ms` behind their due time: the rate was not held.
    pub late_sends: u64,
    pub late_threshold_ms: u64,
    /// Answered requests / time from the first due time to the last answer.
    pub achieved_rps: f64,
    /// Fewest and most requests answered in one whole second of the run.
    pub ok_per_second_min: u64,
    pub ok_per_second_max: u64,
    /// From the due time to the answer (includes any wait to be sent).
    pub latency_us: Quantiles,
    /// From the actual send to the answer.
    pub service_latency_us: Quantiles,
    /// From the due time to the actual send: the load generator's own lag (its 1 ms timer).
    pub send_delay_us: Quantiles,
    pub max_in_flight_seen: usize,
    pub reconnects: u64,
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU over the run, in % of one core.
    pub server_cpu_percent: Option<f64>,
    pub server_peak_rss_kib: Option<u64>,
    pub loadgen_cpu_seconds: Option<f64>,
}

/// One run's tallies; request tasks add to it under a mutex (one short lock per answer).
struct Stats {
    start: Instant,
    from_due: Histogram<u64>,
    from_send: Histogram<u64>,
    send_delay: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
    late: u64,
    /// Answers per whole second since `start`.
    ok_per_second: Vec<u64>,
    last_answer: Instant,
}

impl Stats {
    fn new(start: Instant, seconds: usize) -> Result<Self, Error> {
        let histogram = || {
            Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)
                .map_err(|e| Error::Usage(format!("histogram: {e}")))
        };
        Ok(Stats {
            start,
            from_due: histogram()?,
            from_send: histogram()?,
            send_delay: histogram()?,
            ok: 0,
            errors: BTreeMap::new(),
            first_error: None,
            late: 0,
            ok_per_second: vec![0; seconds.max(1)],
            last_answer: start,
        })
    }

    fn answered(&mut self, due: Instant, sent: Instant, now: Instant) {
        self.ok += 1;
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.from_due
            .saturating_record(us(now.saturating_duration_since(due)));
        self.from_send
            .saturating_record(us(now.saturating_duration_since(sent)));
        self.send_delay
            .saturating_record(us(sent.saturating_duration_since(due)));
        let second = now.saturating_duration_since(self.start).as_secs();
        if let Some(n) = usize::try_from(second)
            .ok()
            .and_then(|s| self.ok_per_second.get_mut(s))
        {
            *n += 1;
        }
        self.last_answer = self.last_answer.max(now);
    }

    fn failed(&mut self, failure: Failure) {
        let (kind, detail) = failure.describe();
        *self.errors.entry(kind).or_default() += 1;
        self.first_error.get_or_insert(detail);
    }
}

enum Failure {
    Status(u16),
    Denied,
    Timeout,
    Transport(String),
    Backlog,
}

impl Failure {
    /// (kind for the report, a human detail for `first_error`).
    fn describe(self) -> (String, String) {
        match self {
            Failure::Status(s) => (format!("http-{s}"), format!("HTTP {s}")),
            Failure::Denied => ("denied".into(), "200 without \"allowed\":true".into()),
            Failure::Timeout => (
                "timeout".into(),
                format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
            ),
            Failure::Transport(e) => ("transport".into(), e),
            Failure::Backlog => (
                "backlog".into(),
                "not sent: too many requests in flight".into(),
            ),
        }
    }
}

/// Connections and counters shared by the dispatcher and the request tasks.
struct Shared {
    target: Target,
    uri: String,
    connections: Vec<tokio::sync::Mutex<SendRequest<Full<Bytes>>>>,
    in_flight: AtomicUsize,
    max_in_flight_seen: AtomicUsize,
    reconnects: AtomicU64,
}

impl Shared {
    /// The sender of connection `i`, reconnected first if the server closed it.
    async fn sender(&self, i: usize) -> Result<SendRequest<Full<Bytes>>, String> {
        let slot = &self.connections[i % self.connections.len()];
        let mut sender = slot.lock().await;
        if sender.is_closed() {
            *sender = connect_h2(&self.target).await.map_err(|e| e.to_string())?;
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        Ok(sender.clone())
    }
}

pub async fn run(args: SustainedArgs) -> Result<(), Error> {
    if !(args.rate.is_finite() && args.rate >= 1.0) {
        return Err(Error::Usage(format!(
            "--rate {}: expected requests per second, at least 1",
            args.rate
        )));
    }
    if args.connections == 0 || args.duration.is_zero() {
        return Err(Error::Usage(
            "--connections and --duration must be above 0".into(),
        ));
    }
    let fixtures = read_fixtures(&args.fixtures)?;
    let target = target_with_alpn(
        &args.server.url,
        &args.server.ca,
        None,
        vec![b"h2".to_vec()],
    )?;
    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        connections.push(tokio::sync::Mutex::new(connect_h2(&target).await?));
    }
    let uri = format!("https://{}{}", target.host_header, target.path);
    let shared = Arc::new(Shared {
        target,
        uri,
        connections,
        in_flight: AtomicUsize::new(0),
        max_in_flight_seen: AtomicUsize::new(0),
        reconnects: AtomicU64::new(0),
    });
    let bodies: Arc<[Bytes]> = fixtures.iter().map(|(_, b)| b.clone()).collect();

    if !args.warmup.is_zero() {
        let warm = Arc::new(Mutex::new(Stats::new(Instant::now(), 1)?));
        dispatch(
            &shared,
            &bodies,
            args.rate,
            args.warmup,
            args.max_in_flight,
            &warm,
        )
        .await;
        drain(&shared).await;
        shared.max_in_flight_seen.store(0, Ordering::Relaxed);
    }
    let reconnects_before = shared.reconnects.load(Ordering::Relaxed);
    let server_cpu_before = args.pid.and_then(cpu_seconds);
    let own_cpu_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let seconds = usize::try_from(args.duration.as_secs()).unwrap_or(usize::MAX);
    let stats = Arc::new(Mutex::new(Stats::new(start, seconds)?));
    let scheduled = dispatch(
        &shared,
        &bodies,
        args.rate,
        args.duration,
        args.max_in_flight,
        &stats,
    )
    .await;
    drain(&shared).await;
    let elapsed = start.elapsed().as_secs_f64();
    let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let server_cpu = diff(server_cpu_before, args.pid.and_then(cpu_seconds));
    let own_cpu = diff(own_cpu_before, cpu_seconds(std::process::id()));

    let stats = stats
        .lock()
        .map_err(|_| Error::Usage("a request task panicked".into()))?;
    let answer_span = stats
        .last_answer
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(args.duration.as_secs_f64());
    let report = SustainedReport {
        target: args.server.target,
        url: args.server.url,
        protocol: "h2".into(),
        connections: args.connections,
        fixtures: fixtures.into_iter().map(|(n, _)| n).collect(),
        target_rate: args.rate,
        seconds: args.duration.as_secs_f64(),
        warmup_seconds: args.warmup.as_secs_f64(),
        scheduled,
        ok: stats.ok,
        error_total: stats.errors.values().sum(),
        errors: stats.errors.clone(),
        first_error: stats.first_error.clone(),
        late_sends: stats.late,
        late_threshold_ms: u64::try_from(LATE.as_millis()).unwrap_or(u64::MAX),
        achieved_rps: stats.ok as f64 / answer_span,
        ok_per_second_min: stats.ok_per_second.iter().copied().min().unwrap_or(0),
        ok_per_second_max: stats.ok_per_second.iter().copied().max().unwrap_or(0),
        latency_us: Quantiles::of(&stats.from_due),
        service_latency_us: Quantiles::of(&stats.from_send),
        send_delay_us: Quantiles::of(&stats.send_delay),
        max_in_flight_seen: shared.max_in_flight_seen.load(Ordering::Relaxed),
        reconnects: shared.reconnects.load(Ordering::Relaxed) - reconnects_before,
        server_cpu_seconds: server_cpu,
        server_cpu_percent: server_cpu.map(|c| c * 100.0 / elapsed.max(1e-9)),
        server_peak_rss_kib: args.pid.and_then(peak_rss_kib),
        loadgen_cpu_seconds: own_cpu,
    };
    drop(stats);
    print_summary(&report);
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&args.out, json).map_err(|source| Error::Write {
        path: args.out.clone(),
        source,
    })
}

/// Starts request `n` at `start + n / rate` for `duration`, one task each; returns how many
/// fell due. The dispatcher only sleeps when it is ahead, so after a stall it catches up at
/// once instead of shifting the schedule.
async fn dispatch(
    shared: &Arc<Shared>,
    bodies: &Arc<[Bytes]>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    stats: &Arc<Mutex<Stats>>,
) -> u64 {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (duration.as_secs_f64() * rate).round() as u64;
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let in_flight = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        if in_flight > max_in_flight {
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut s) = stats.lock() {
                s.failed(Failure::Backlog);
            }
            continue;
        }
        shared
            .max_in_flight_seen
            .fetch_max(in_flight, Ordering::Relaxed);
        let index = usize::try_from(n).unwrap_or(0);
        let body = bodies[index % bodies.len()].clone();
        let (shared, stats) = (Arc::clone(shared), Arc::clone(stats));
        tokio::spawn(async move {
            send(&shared, index, body, due, &stats).await;
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    total
}

/// One request on connection `index % connections`; its outcome goes into `stats`.
async fn send(shared: &Shared, index: usize, body: Bytes, due: Instant, stats: &Mutex<Stats>) {
    let sent = Instant::now();
    let exchange = async {
        let mut sender = shared.sender(index).await.map_err(Failure::Transport)?;
        let request = Request::post(shared.uri.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Transport(format!("body: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        if !answer.windows(ALLOWED.len()).any(|w| w == ALLOWED) {
            return Err(Failure::Denied);
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await;
    let now = Instant::now();
    let Ok(mut s) = stats.lock() else { return };
    if sent.saturating_duration_since(due) > LATE {
        s.late += 1;
    }
    match outcome {
        Ok(Ok(())) => s.answered(due, sent, now),
        Ok(Err(failure)) => s.failed(failure),
        Err(_) => s.failed(Failure::Timeout),
    }
}

/// Waits until no request is in flight (each has its own timeout, so this ends).
async fn drain(shared: &Shared) {
    let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(5);
    while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// TLS with ALPN h2 (refused if the server picks anything else), then an HTTP/2 handshake.
async fn connect_h2(target: &Target) -> Result<SendRequest<Full<Bytes>>, Error> {
    let failed = |reason: String| target.connect_error(reason);
    let tls = connect_tls(target).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(failed(
            "the server did not negotiate HTTP/2 (ALPN h2)".into(),
        ));
    }
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn print_summary(r: &SustainedReport) {
    println!(
        "{}: {:.0}/s for {:.0}s over {} {} connections ({}): {} due, {} ok, {} errors {:?}, \
         {} late, achieved {:.0}/s (per second {}..{}), latency from due p50 {} p99 {} p99.9 {} \
         max {} us, from send p50 {} p99 {} us, server CPU {}, peak RSS {}",
        r.target,
        r.target_rate,
        r.seconds,
        r.connections,
        r.protocol,
        r.fixtures.join("+"),
        r.scheduled,
        r.ok,
        r.error_total,
        r.errors,
        r.late_sends,
        r.achieved_rps,
        r.ok_per_second_min,
        r.ok_per_second_max,
        r.latency_us.p50,
        r.latency_us.p99,
        r.latency_us.p999,
        r.latency_us.max,
        r.service_latency_us.p50,
        r.service_latency_us.p99,
        r.server_cpu_percent
            .map_or("-".into(), |c| format!("{c:.0}% of a core")),
        r.server_peak_rss_kib
            .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_bucket_answers_and_name_failures() {
        let start = Instant::now();
        let mut s = Stats::new(start, 2).unwrap();
        let due = start;
        s.answered(
            due,
            due + Duration::from_millis(3),
            due + Duration::from_millis(5),
        );
        s.answered(due, due, start + Duration::from_millis(1500));
        // Past the run's last second: counted, not bucketed.
        s.answered(due, due, start + Duration::from_secs(7));
        s.failed(Failure::Status(500));
        s.failed(Failure::Denied);
        s.failed(Failure::Status(500));
        assert_eq!(s.ok, 3);
        assert_eq!(s.ok_per_second, [1, 1]);
        assert_eq!(s.errors["http-500"], 2);
        assert_eq!(s.errors["denied"], 1);
        assert_eq!(s.first_error.as_deref(), Some("HTTP 500"));
        // Latency from due includes the 3 ms before the send; from send does not.
        assert!(s.from_due.value_at_quantile(0.0) >= 4_990);
        assert!(s.from_send.value_at_quantile(0.0) >= 1_990);
        assert_eq!(s.last_answer, start + Duration::from_secs(7));
    }
}
