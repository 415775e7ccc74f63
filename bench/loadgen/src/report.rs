//! Results: one table row per run on stdout, all runs as JSON for bench/results/.
use crate::Error;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Serialize)]
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
    pub server_peak_rss_kib: Option<u64>,
}

impl Run {
    pub fn from_results(
        fixture: &str,
        concurrency: usize,
        elapsed: Duration,
        workers: Vec<(Histogram<u64>, u64, u64)>,
        server_peak_rss_kib: Option<u64>,
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
            server_peak_rss_kib,
        }
    }
}

pub fn print_header(target: &str) {
    println!("target: {target}");
    println!(
        "{:<12} {:>5} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>11}",
        "fixture",
        "conc",
        "requests",
        "errors",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "peak RSS"
    );
}

pub fn print_row(r: &Run) {
    let rss = r
        .server_peak_rss_kib
        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<12} {:>5} {:>10} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>11}",
        r.fixture,
        r.concurrency,
        r.requests,
        r.errors,
        r.requests_per_second,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        rss
    );
}

#[derive(Serialize)]
struct Report<'a> {
    target: &'a str,
    url: &'a str,
    cores: usize,
    os: &'static str,
    arch: &'static str,
    runs: &'a [Run],
}

pub fn write_json(path: &Path, target: &str, url: &str, runs: &[Run]) -> Result<(), Error> {
    let report = Report {
        target,
        url,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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
