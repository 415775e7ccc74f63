//! `loadgen sustained-compare`: the two sustained reports of one session (ours, the reference)
//! → one table with ratios, the target checked for each, one JSON file.
use crate::Error;
use crate::compare::{PairArgs, parse_meta, read, write_outputs};
use crate::sustained::SustainedReport;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Issue 9: "5,000 admissions/s for 60 s through TLS with zero errors"; reported, never asserted.
const TARGET_RATE: f64 = 5_000.0;
const TARGET_SECONDS: f64 = 60.0;
/// At most this share of sends may be late for the rate to count as held.
const LATE_SHARE: f64 = 0.01;

#[derive(Debug, clap::Args)]
pub struct SustainedCompareArgs {
    #[command(flatten)]
    pair: PairArgs,
}

#[derive(Debug, Serialize)]
struct Check {
    server: String,
    target: String,
    met: bool,
    measured: String,
}

pub fn run(args: SustainedCompareArgs) -> Result<(), Error> {
    let ours = load(&args.pair.ours)?;
    let reference = load(&args.pair.reference)?;
    let checks = vec![check(&ours), check(&reference)];
    let table = markdown(&ours, &reference, &checks);
    print!("{table}");
    let meta = parse_meta(&args.pair.meta)?;
    let combined = serde_json::json!({
        "meta": meta,
        "ours": ours.target,
        "reference": reference.target,
        "ratio": "ours / reference",
        "ratios": {
            "server_cpu_seconds": ratio(ours.server_cpu_seconds, reference.server_cpu_seconds),
            "server_peak_rss_kib": ratio(
                ours.server_peak_rss_kib.map(|k| k as f64),
                reference.server_peak_rss_kib.map(|k| k as f64),
            ),
            "p99_us": ratio(Some(ours.latency_us.p99 as f64), Some(reference.latency_us.p99 as f64)),
        },
        "targets": checks,
        "runs": [ours, reference],
    });
    write_outputs(
        &combined,
        &args.pair.out,
        &table,
        args.pair.markdown.as_deref(),
    )
}

fn ratio(ours: Option<f64>, reference: Option<f64>) -> Option<f64> {
    ours.zip(reference)
        .filter(|(_, r)| *r > 0.0)
        .map(|(o, r)| o / r)
}

/// Met when the whole schedule was at least 5,000/s for 60 s, every request was answered
/// and allowed, and at most 1 % of the sends were late (else the rate was not really offered).
fn check(r: &SustainedReport) -> Check {
    let late_ok = r.late_sends as f64 <= LATE_SHARE * r.scheduled.max(1) as f64;
    let met = r.target_rate >= TARGET_RATE
        && r.seconds >= TARGET_SECONDS
        && r.error_total == 0
        && r.ok == r.scheduled
        && late_ok;
    Check {
        server: r.target.clone(),
        target: format!(
            "{}/s for {} s, 0 errors",
            thousands(TARGET_RATE),
            TARGET_SECONDS
        ),
        met,
        measured: format!(
            "{} of {} answered at {:.0}/s offered for {:.0} s: {:.0}/s achieved, {} errors, {} late sends",
            r.ok,
            r.scheduled,
            r.target_rate,
            r.seconds,
            r.achieved_rps,
            r.error_total,
            r.late_sends
        ),
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

fn load(path: &Path) -> Result<SustainedReport, Error> {
    serde_json::from_str(&read(path)?).map_err(|e| {
        Error::Usage(format!(
            "{} is not a `loadgen sustained` report: {e}",
            path.display()
        ))
    })
}

fn markdown(ours: &SustainedReport, reference: &SustainedReport, checks: &[Check]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Open loop, {:.0} requests/s for {:.0} s ({:.0} s warm-up) over {} HTTP/2 connections, \
         fixtures {} in turn. Latency in µs from each request's due time (no coordinated \
         omission); \"from send\" excludes the wait to be sent, \"send delay\" is that wait (the \
         load generator's 1 ms timer). CPU over the run.\n",
        ours.target_rate,
        ours.seconds,
        ours.warmup_seconds,
        ours.connections,
        ours.fixtures.join(" + ")
    );
    let _ = writeln!(
        t,
        "| server | due | ok | errors | late sends | achieved/s | per second min–max | p50 | p99 | p99.9 | max | p99 from send | send delay p50/p99 | CPU % of a core | CPU s/10k | peak RSS MiB |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
    );
    for r in [ours, reference] {
        let errors = if r.error_total == 0 {
            "0".to_owned()
        } else {
            r.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let per_10k = r
            .server_cpu_seconds
            .filter(|_| r.ok > 0)
            .map_or("-".into(), |c| format!("{:.3}", c * 10_000.0 / r.ok as f64));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.0} | {}–{} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            r.target,
            r.scheduled,
            r.ok,
            errors,
            r.late_sends,
            r.achieved_rps,
            r.ok_per_second_min,
            r.ok_per_second_max,
            r.latency_us.p50,
            r.latency_us.p99,
            r.latency_us.p999,
            r.latency_us.max,
            r.service_latency_us.p99,
            r.send_delay_us.p50,
            r.send_delay_us.p99,
            r.server_cpu_percent
                .map_or("-".into(), |c| format!("{c:.0}")),
            per_10k,
            r.server_peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    let r = |a: Option<f64>, b: Option<f64>| ratio(a, b).map_or("-".into(), |x| format!("{x:.2}"));
    let _ = writeln!(
        t,
        "\nRatios ours/reference: CPU {}, peak RSS {}, p99 {}.",
        r(ours.server_cpu_seconds, reference.server_cpu_seconds),
        r(
            ours.server_peak_rss_kib.map(|k| k as f64),
            reference.server_peak_rss_kib.map(|k| k as f64)
        ),
        r(
            Some(ours.latency_us.p99 as f64),
            Some(reference.latency_us.p99 as f64)
        ),
    );
    let _ = writeln!(
        t,
        "\n| server | target | met | measured |\n|---|---|---|---|"
    );
    for c in checks {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            c.server,
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
    use crate::sustained::Quantiles;
    use std::collections::BTreeMap;

    fn report(target: &str, ok: u64, errors: u64, late: u64) -> SustainedReport {
        let mut kinds = BTreeMap::new();
        if errors > 0 {
            kinds.insert("timeout".to_owned(), errors);
        }
        SustainedReport {
            target: target.into(),
            url: "https://127.0.0.1:1/mutate".into(),
            protocol: "h2".into(),
            connections: 4,
            fixtures: vec!["pod".into(), "deployment".into()],
            target_rate: 5000.0,
            seconds: 60.0,
            warmup_seconds: 2.0,
            scheduled: 300_000,
            ok,
            errors: kinds,
            error_total: errors,
            first_error: None,
            late_sends: late,
            late_threshold_ms: 2,
            achieved_rps: ok as f64 / 60.0,
            ok_per_second_min: 4990,
            ok_per_second_max: 5010,
            latency_us: Quantiles::default(),
            service_latency_us: Quantiles::default(),
            send_delay_us: Quantiles::default(),
            max_in_flight_seen: 10,
            reconnects: 0,
            server_cpu_seconds: Some(30.0),
            server_cpu_percent: Some(50.0),
            server_peak_rss_kib: Some(10_240),
            loadgen_cpu_seconds: Some(20.0),
        }
    }

    #[test]
    fn target_needs_every_request_answered_on_time() {
        assert!(check(&report("ours", 300_000, 0, 100)).met);
        assert!(!check(&report("ours", 299_999, 1, 0)).met);
        assert!(
            !check(&report("ours", 299_990, 0, 0)).met,
            "missing answers"
        );
        assert!(
            !check(&report("ours", 300_000, 0, 3001)).met,
            "rate not held"
        );
        let table = markdown(
            &report("ours", 300_000, 0, 0),
            &report("ref", 299_000, 1000, 0),
            &[],
        );
        assert!(
            table.contains("| ref | 300000 | 299000 | timeout: 1000 |"),
            "{table}"
        );
        assert_eq!(thousands(5000.0), "5,000");
    }
}
