//! Side by side: two `run` reports measured in the same session (ours and a reference) →
//! one table with ratios (ours / reference), the targets checked, one JSON file.
use crate::Error;
use crate::report::Run;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Targets (bench/README.md); reported against, never asserted.
const THROUGHPUT_RATIO_TARGET: f64 = 2.0;
const P99_TARGET_US: u64 = 1_000;
const P99_TARGET_RATE: f64 = 2_000.0;
const RSS_TARGET_KIB: u64 = 20 * 1024;

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pair: PairArgs,
    /// A JSON file to embed under the given key, as key=path (repeatable).
    #[arg(long = "attach")]
    attach: Vec<String>,
}

/// Two reports of one session side by side, for `compare` and `sustained-compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct PairArgs {
    /// Report of the server under test (`run --out`; `sustained --out` for sustained-compare).
    #[arg(long)]
    pub(crate) ours: PathBuf,
    /// Report of the reference server from the same session, same fixtures and concurrencies.
    #[arg(long)]
    pub(crate) reference: PathBuf,
    /// Extra facts for the JSON, as key=value (repeatable): versions, date, pinning…
    #[arg(long = "meta")]
    pub(crate) meta: Vec<String>,
    /// Combined JSON output.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Also write the table (Markdown) here.
    #[arg(long)]
    pub(crate) markdown: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    pub url: String,
    pub cores: usize,
    pub os: String,
    pub arch: String,
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize)]
struct Row<'a> {
    fixture: &'a str,
    concurrency: usize,
    target_rate: Option<f64>,
    requests_per_second: Ratio,
    p50_us: Ratio,
    p99_us: Ratio,
    p999_us: Ratio,
    cpu_seconds_per_10k: Ratio,
    peak_rss_kib: Ratio,
}

/// One figure for both servers and ours / reference.
#[derive(Debug, Serialize, Clone, Copy)]
struct Ratio {
    ours: Option<f64>,
    reference: Option<f64>,
    ratio: Option<f64>,
}

impl Ratio {
    fn of(ours: Option<f64>, reference: Option<f64>) -> Ratio {
        let ratio = ours
            .zip(reference)
            .filter(|(_, r)| *r > 0.0)
            .map(|(o, r)| o / r);
        Ratio {
            ours,
            reference,
            ratio,
        }
    }
}

#[derive(Debug, Serialize)]
struct Check {
    target: String,
    met: bool,
    measured: String,
}

pub fn run(args: CompareArgs) -> Result<(), Error> {
    let ours = load(&args.pair.ours)?;
    let reference = load(&args.pair.reference)?;
    let rows = rows(&ours, &reference);
    let checks = checks(&ours, &rows);
    let table = markdown(&ours.target, &reference.target, &rows, &checks);
    print!("{table}");

    let meta = parse_meta(&args.pair.meta)?;
    let mut attached = BTreeMap::new();
    for a in &args.attach {
        let (k, path) = a
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--attach {a:?}: expected key=path")))?;
        let text = read(Path::new(path))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{path} is not JSON: {e}")))?;
        attached.insert(k.to_owned(), value);
    }
    let mut combined = serde_json::json!({
        "cores": ours.cores,
        "os": ours.os,
        "arch": ours.arch,
        "meta": meta,
        "ours": ours.target,
        "reference": reference.target,
        "ratio": "ours / reference",
        "comparison": rows,
        "targets": checks,
        "runs": { ours.target.as_str(): &ours.runs, reference.target.as_str(): &reference.runs },
    });
    if let Some(obj) = combined.as_object_mut() {
        obj.extend(attached);
    }
    write_outputs(
        &combined,
        &args.pair.out,
        &table,
        args.pair.markdown.as_deref(),
    )
}

/// `--meta key=value` arguments as a JSON object.
pub(crate) fn parse_meta(args: &[String]) -> Result<serde_json::Map<String, Value>, Error> {
    let mut meta = serde_json::Map::new();
    for m in args {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--meta {m:?}: expected key=value")))?;
        meta.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(meta)
}

/// The combined JSON to `out`, and the Markdown `table` to `markdown` if asked.
pub(crate) fn write_outputs(
    combined: &Value,
    out: &Path,
    table: &str,
    markdown: Option<&Path>,
) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(combined)
        .map_err(|e| Error::Usage(format!("cannot encode the report: {e}")))?;
    write(out, &(text + "\n"))?;
    if let Some(md) = markdown {
        write(md, table)?;
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn load(path: &Path) -> Result<Report, Error> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| Error::Usage(format!("{} is not a loadgen report: {e}", path.display())))
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// Pairs runs with the same fixture, concurrency and rate; ours' order.
fn rows<'a>(ours: &'a Report, reference: &'a Report) -> Vec<Row<'a>> {
    let us = |v: u64| Some(v as f64);
    ours.runs
        .iter()
        .filter_map(|o| {
            let r = reference.runs.iter().find(|r| {
                r.fixture == o.fixture
                    && r.concurrency == o.concurrency
                    && r.target_rate == o.target_rate
            })?;
            Some(Row {
                fixture: &o.fixture,
                concurrency: o.concurrency,
                target_rate: o.target_rate,
                requests_per_second: Ratio::of(
                    Some(o.requests_per_second),
                    Some(r.requests_per_second),
                ),
                p50_us: Ratio::of(us(o.p50_us), us(r.p50_us)),
                p99_us: Ratio::of(us(o.p99_us), us(r.p99_us)),
                p999_us: Ratio::of(us(o.p999_us), us(r.p999_us)),
                cpu_seconds_per_10k: Ratio::of(
                    o.server_cpu_seconds_per_10k,
                    r.server_cpu_seconds_per_10k,
                ),
                peak_rss_kib: Ratio::of(
                    o.server_peak_rss_kib.map(|k| k as f64),
                    r.server_peak_rss_kib.map(|k| k as f64),
                ),
            })
        })
        .collect()
}

fn checks(ours: &Report, rows: &[Row]) -> Vec<Check> {
    let mut checks = Vec::new();
    for row in rows.iter().filter(|r| r.target_rate.is_none()) {
        let ratio = row.requests_per_second.ratio.unwrap_or(0.0);
        checks.push(Check {
            target: format!(
                "throughput >= {THROUGHPUT_RATIO_TARGET}x reference ({} at concurrency {})",
                row.fixture, row.concurrency
            ),
            met: ratio >= THROUGHPUT_RATIO_TARGET,
            measured: format!("{ratio:.2}x"),
        });
    }
    for run in ours
        .runs
        .iter()
        .filter(|r| r.target_rate == Some(P99_TARGET_RATE))
    {
        let held = run.late_sends.unwrap_or(0) * 100 <= run.requests.max(1);
        checks.push(Check {
            target: format!(
                "p99 <= {P99_TARGET_US} us at {P99_TARGET_RATE} requests/s ({})",
                run.fixture
            ),
            met: run.p99_us <= P99_TARGET_US && run.errors == 0 && held,
            measured: format!(
                "p99 {} us at {:.0} requests/s, {} late sends, {} errors",
                run.p99_us,
                run.requests_per_second,
                run.late_sends.unwrap_or(0),
                run.errors
            ),
        });
    }
    let rss = ours.runs.iter().filter_map(|r| r.server_peak_rss_kib).max();
    checks.push(Check {
        target: format!("peak RSS <= {} MiB", RSS_TARGET_KIB / 1024),
        met: rss.is_some_and(|k| k <= RSS_TARGET_KIB),
        measured: rss.map_or("not measured".into(), |k| mib(k as f64)),
    });
    checks
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn markdown(ours: &str, reference: &str, rows: &[Row], checks: &[Check]) -> String {
    let num = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let ratio = |r: &Ratio| num(r.ratio, 2);
    let pair = |r: &Ratio, digits: usize| {
        format!(
            "{} / {} ({})",
            num(r.ours, digits),
            num(r.reference, digits),
            ratio(r)
        )
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Each cell: {ours} / {reference} (ratio ours/reference). Latency in µs, CPU in seconds \
         per 10,000 requests, RSS is the peak since start.\n"
    );
    let _ = writeln!(
        t,
        "| fixture | conc | rate | req/s | p50 | p99 | p99.9 | CPU s/10k | peak RSS MiB |"
    );
    let _ = writeln!(t, "|---|---:|---:|---|---|---|---|---|---|");
    for r in rows {
        let rss = Ratio {
            ours: r.peak_rss_kib.ours.map(|k| k / 1024.0),
            reference: r.peak_rss_kib.reference.map(|k| k / 1024.0),
            ratio: r.peak_rss_kib.ratio,
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.fixture,
            r.concurrency,
            r.target_rate.map_or("max".into(), |x| format!("{x:.0}/s")),
            pair(&r.requests_per_second, 0),
            pair(&r.p50_us, 0),
            pair(&r.p99_us, 0),
            pair(&r.p999_us, 0),
            pair(&r.cpu_seconds_per_10k, 3),
            pair(&rss, 1),
        );
    }
    let _ = writeln!(t, "\n| target | met | measured |\n|---|---|---|");
    for c in checks {
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            c.target,
            if c.met { "yes" } else { "**no**" },
            c.measured
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fixture: &str, conc: usize, rate: Option<f64>, rps: f64, p99: u64) -> Run {
        Run {
            fixture: fixture.into(),
            concurrency: conc,
            seconds: 1.0,
            requests: rps as u64,
            errors: 0,
            requests_per_second: rps,
            p50_us: p99 / 2,
            p99_us: p99,
            p999_us: p99 * 2,
            max_us: p99 * 3,
            server_peak_rss_kib: Some(10 * 1024),
            server_cpu_seconds: Some(1.0),
            server_cpu_seconds_per_10k: Some(0.5),
            target_rate: rate,
            late_sends: rate.map(|_| 0),
        }
    }

    fn report(target: &str, runs: Vec<Run>) -> Report {
        Report {
            target: target.into(),
            url: "https://127.0.0.1:1/mutate".into(),
            cores: 2,
            os: "linux".into(),
            arch: "x86_64".into(),
            runs,
        }
    }

    #[test]
    fn pairs_runs_and_checks_targets() {
        let ours = report(
            "ours",
            vec![
                run("pod", 1, None, 3000.0, 400),
                run("pod", 16, None, 9000.0, 900),
                run("pod", 16, Some(2000.0), 2000.0, 800),
            ],
        );
        let reference = report(
            "ref",
            vec![
                run("pod", 1, None, 1000.0, 800),
                run("pod", 16, None, 6000.0, 1000),
                run("pod", 16, Some(2000.0), 2000.0, 1200),
            ],
        );
        let rows = rows(&ours, &reference);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].requests_per_second.ratio, Some(3.0));
        assert_eq!(rows[1].requests_per_second.ratio, Some(1.5));
        let checks = checks(&ours, &rows);
        let met: Vec<bool> = checks.iter().map(|c| c.met).collect();
        // 3x yes, 1.5x no, p99 800 us at 2000/s yes, 10 MiB yes.
        assert_eq!(met, [true, false, true, true]);
        let table = markdown("ours", "ref", &rows, &checks);
        assert!(table.contains("| pod | 16 | 2000/s |"), "{table}");
    }

    #[test]
    fn missing_reference_run_is_left_out() {
        let ours = report("ours", vec![run("deployment", 64, None, 1.0, 1)]);
        let reference = report("ref", vec![run("pod", 64, None, 1.0, 1)]);
        assert!(rows(&ours, &reference).is_empty());
        assert_eq!(Ratio::of(Some(1.0), Some(0.0)).ratio, None);
    }
}
