//! Results: one table row per run on stdout, all runs as JSON for bench/results/.
use crate::Error;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
pub struct Run {
    pub fixture: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// VmHWM of the server after this run: the peak since it started, not per run.
    #[serde(default)]
    pub server_peak_rss_kib: Option<u64>,
    /// Server user+system CPU time during the measured run (10 ms resolution).
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
    /// The same per 10,000 answered requests.
    #[serde(default)]
    pub server_cpu_seconds_per_10k: Option<f64>,
    /// Fixed-rate runs only: the requested arrival rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Fixed-rate runs only: sends more than 2 ms behind their slot (the rate was not held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_sends: Option<u64>,
}

/// What was read from the server's /proc entry around a run.
pub struct Server {
    pub peak_rss_kib: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// A fixed-rate run's target and how often it fell behind.
pub struct Paced {
    pub rate: f64,
    pub late: Option<u64>,
}

impl Run {
    pub fn from_results(
        fixture: &str,
        concurrency: usize,
        elapsed: Duration,
        workers: Vec<(Histogram<u64>, u64, u64)>,
        server: Server,
        paced: Option<Paced>,
    ) -> Run {
        let mut merged: Option<Histogram<u64>> = None;
        let (mut ok, mut errors) = (0, 0);
        for (h, o, e) in workers {
            match merged.as_mut() {
                // Same bounds in every worker, so adding cannot fail.
                Some(m) => {
                    let _ = m.add(&h);
                }
                None => merged = Some(h),
            }
            ok += o;
            errors += e;
        }
        let q = |quantile: f64| merged.as_ref().map_or(0, |m| m.value_at_quantile(quantile));
        let seconds = elapsed.as_secs_f64();
        Run {
            fixture: fixture.to_owned(),
            concurrency,
            seconds,
            requests: ok,
            errors,
            requests_per_second: if seconds > 0.0 {
                ok as f64 / seconds
            } else {
                0.0
            },
            p50_us: q(0.50),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: merged.as_ref().map_or(0, |m| m.max()),
            server_peak_rss_kib: server.peak_rss_kib,
            server_cpu_seconds: server.cpu_seconds,
            server_cpu_seconds_per_10k: server
                .cpu_seconds
                .filter(|_| ok > 0)
                .map(|c| c * 10_000.0 / ok as f64),
            target_rate: paced.as_ref().map(|p| p.rate),
            late_sends: paced.and_then(|p| p.late),
        }
    }
}

pub fn print_header(target: &str) {
    println!("target: {target}");
    println!(
        "{:<12} {:>5} {:>6} {:>9} {:>6} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10}",
        "fixture",
        "conc",
        "rate",
        "requests",
        "errors",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "CPU s/10k",
        "peak RSS"
    );
}

pub fn print_row(r: &Run) {
    let rss = r
        .server_peak_rss_kib
        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into());
    let rate = r
        .target_rate
        .map(|t| format!("{t:.0}"))
        .unwrap_or_else(|| "max".into());
    let cpu = r
        .server_cpu_seconds_per_10k
        .map(|c| format!("{c:.3}"))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<12} {:>5} {:>6} {:>9} {:>6} {:>9.0} {:>8} {:>8} {:>9} {:>9} {:>10}",
        r.fixture,
        r.concurrency,
        rate,
        r.requests,
        r.errors,
        r.requests_per_second,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        cpu,
        rss
    );
}

#[derive(Serialize)]
struct Report<'a> {
    target: &'a str,
    url: &'a str,
    /// CPUs of the machine; `loadgen_cpus` is what the load generator was allowed (taskset).
    cores: usize,
    loadgen_cpus: usize,
    os: &'static str,
    arch: &'static str,
    runs: &'a [Run],
}

/// The runs of an earlier report of the same target at `path`; none if there is no file.
pub fn earlier_runs(path: &Path, target: &str) -> Result<Vec<Run>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let earlier: crate::compare::Report = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "--append: {} is not a loadgen report: {e}",
            path.display()
        ))
    })?;
    if earlier.target != target {
        return Err(Error::Usage(format!(
            "--append: {} holds target {:?}, not {target:?}",
            path.display(),
            earlier.target
        )));
    }
    Ok(earlier.runs)
}

/// Online CPUs of the machine, whatever this process's affinity (`cpuN` lines of /proc/stat).
fn machine_cores() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let n = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    (n > 0).then_some(n)
}

pub fn write_json(path: &Path, target: &str, url: &str, runs: &[Run]) -> Result<(), Error> {
    let report = Report {
        target,
        url,
        cores: machine_cores().unwrap_or(1),
        loadgen_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        runs,
    };
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| Error::Usage(format!("cannot encode the report: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text + "\n").map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}
