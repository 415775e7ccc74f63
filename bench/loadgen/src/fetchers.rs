//! Sustained fetching (`loadgen fetchers`): one client per pod, all released together (every
//! init container of several Deployments at once), each then fetching again and again for a
//! while, as a refreshing sidecar would; every request a fresh TLS connection from the pod's
//! own address (IP mode) or with its bound token (SA mode). Per workload it records how many
//! different answers its pods got: one token set per workload means exactly one.
use crate::Error;
use crate::credentials::{Mode, Pod, PodsArgs, ReportArgs, Tally, ask};
use crate::load::{Target, cpu_seconds, peak_rss_kib};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct FetchersArgs {
    #[command(flatten)]
    service: PodsArgs,
    /// Clients; client c is pod c mod pods (default: one per pod).
    #[arg(long)]
    clients: Option<usize>,
    /// How long every client keeps fetching.
    #[arg(long, default_value = "60s", value_parser = k2h_contract::duration::parse_arg)]
    duration: Duration,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct WorkloadReport {
    pods: usize,
    requests: u64,
    ok: u64,
    /// Different bodies among the 200 answers: 1 = every pod got the same credentials.
    distinct_answers: usize,
    #[serde(skip)]
    digests: BTreeSet<u64>,
}

#[derive(Debug, Serialize)]
pub struct FetchersReport {
    label: String,
    mode: Mode,
    pods: usize,
    clients: usize,
    duration_s: f64,
    requests: u64,
    ok: u64,
    /// HTTP status → count, plus "transport" for requests that got no answer.
    outcomes: BTreeMap<String, u64>,
    errors: u64,
    first_error: Option<String>,
    wall_s: f64,
    requests_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    server_cpu_s: Option<f64>,
    server_cpu_ms_per_request: Option<f64>,
    server_peak_rss_kib: Option<u64>,
    workloads: BTreeMap<String, WorkloadReport>,
    /// Every workload's pods got one and the same answer.
    same_credentials_per_workload: bool,
}

pub async fn run(args: FetchersArgs) -> Result<(), Error> {
    let pods = Arc::new(args.service.read_pods()?);
    let clients = args.clients.unwrap_or(pods.len()).max(1);
    let target = Arc::new(args.service.target()?);
    let cpu_before = args.report.pid.and_then(cpu_seconds);
    let started = Instant::now();
    let (tally, mut workloads) =
        fetch(&target, &pods, args.service.mode, clients, args.duration).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu_before
        .zip(args.report.pid.and_then(cpu_seconds))
        .map(|(a, b)| b - a);
    for pod in pods.iter() {
        workloads.entry(workload_of(pod)).or_default().pods += 1;
    }
    for w in workloads.values_mut() {
        w.distinct_answers = w.digests.len();
    }
    let requests = tally.requests();
    let q = |p: f64| tally.quantile_us(p);
    let report = FetchersReport {
        label: args.report.label.clone(),
        mode: args.service.mode,
        pods: pods.len(),
        clients,
        duration_s: args.duration.as_secs_f64(),
        requests,
        ok: tally.ok,
        errors: requests - tally.ok,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: tally.max_us(),
        first_error: tally.first_error,
        outcomes: tally.outcomes,
        wall_s,
        requests_per_s: requests as f64 / wall_s.max(1e-9),
        server_cpu_s,
        server_cpu_ms_per_request: server_cpu_s
            .filter(|_| requests > 0)
            .map(|c| c * 1000.0 / requests as f64),
        server_peak_rss_kib: args.report.pid.and_then(peak_rss_kib),
        same_credentials_per_workload: workloads.values().all(|w| w.distinct_answers == 1),
        workloads,
    };
    println!(
        "{}: {} clients over {} pods for {:.0}s: {} requests ({:.0}/s), {} errors {:?}, p50 {} p99 {} \
         max {} us; answers per workload {:?}",
        report.label,
        report.clients,
        report.pods,
        report.duration_s,
        report.requests,
        report.requests_per_s,
        report.errors,
        report.outcomes,
        report.p50_us,
        report.p99_us,
        report.max_us,
        report
            .workloads
            .iter()
            .map(|(k, w)| (k.as_str(), w.distinct_answers))
            .collect::<Vec<_>>(),
    );
    if let Some(e) = &report.first_error {
        println!("  first error: {e}");
    }
    args.report.write(&report)
}

fn workload_of(pod: &Pod) -> String {
    pod.workload.clone().unwrap_or_else(|| "-".into())
}

/// Every client waits on one gate, then fetches back to back until `duration` has passed.
async fn fetch(
    target: &Arc<Target>,
    pods: &Arc<Vec<Pod>>,
    mode: Mode,
    clients: usize,
    duration: Duration,
) -> Result<(Tally, BTreeMap<String, WorkloadReport>), Error> {
    let (open, gate) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let (target, pods, mut gate) = (Arc::clone(target), Arc::clone(pods), gate.clone());
        let mut tally = Tally::new()?;
        tasks.push(tokio::spawn(async move {
            let mut seen = WorkloadReport::default();
            let Ok(deadline) = gate.wait_for(Option::is_some).await.map(|d| *d) else {
                return (tally, seen);
            };
            let deadline = deadline.unwrap_or_else(Instant::now);
            let pod = &pods[c % pods.len()];
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = ask(&target, pod, mode).await;
                seen.requests += 1;
                if let Ok(answer) = &result
                    && answer.status == 200
                {
                    seen.ok += 1;
                    seen.digests.insert(answer.digest);
                }
                tally.record_answer(started.elapsed(), result);
            }
            (tally, seen)
        }));
    }
    let _ = open.send(Some(Instant::now() + duration));
    let mut total = Tally::new()?;
    let mut workloads: BTreeMap<String, WorkloadReport> = BTreeMap::new();
    for (c, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok((tally, seen)) => {
                total.merge(tally);
                let w = workloads
                    .entry(workload_of(&pods[c % pods.len()]))
                    .or_default();
                w.requests += seen.requests;
                w.ok += seen.ok;
                w.digests.extend(seen.digests);
            }
            Err(e) => total.record(Duration::ZERO, Err(format!("task: {e}"))),
        }
    }
    Ok((total, workloads))
}
