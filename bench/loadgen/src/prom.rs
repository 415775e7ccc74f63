//! Quantiles of a Prometheus histogram between two scrapes of a `/metrics` text page, the way
//! PromQL's `histogram_quantile` estimates them (linear inside the bucket).
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct QuantileArgs {
    /// Histogram name without the _bucket suffix.
    #[arg(long)]
    metric: String,
    /// Only series with this label value, as name=value (repeatable); other labels are summed.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Scrape taken before the load (omit to count from the process start).
    #[arg(long)]
    before: Option<PathBuf>,
    /// Scrape taken after the load.
    #[arg(long)]
    after: PathBuf,
    /// Write the result as JSON here (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Quantiles {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub count: u64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Upper bound (seconds, `+Inf` as null) and cumulative count of every bucket.
    pub buckets: Vec<(Option<f64>, u64)>,
}

/// Cumulative bucket counts by upper bound, and the _sum, of the matching series.
#[derive(Debug, Default, PartialEq)]
struct Histogram {
    buckets: BTreeMap<OrdF64, f64>,
    sum: f64,
}

/// `le` values as a sortable key (+Inf sorts last).
#[derive(Debug, Clone, Copy)]
struct OrdF64(f64);
impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

pub fn run(args: QuantileArgs) -> Result<(), Error> {
    let mut wanted = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--label {l:?}: expected name=value")))?;
        wanted.insert(k.to_owned(), v.to_owned());
    }
    let after = histogram(&read(&args.after)?, &args.metric, &wanted);
    let before = match &args.before {
        Some(p) => histogram(&read(p)?, &args.metric, &wanted),
        None => Histogram::default(),
    };
    let q = quantiles(&args.metric, wanted, &before, &after);
    let text = serde_json::to_string_pretty(&q)
        .map_err(|e| Error::Usage(format!("cannot encode: {e}")))?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, text + "\n").map_err(|source| Error::Write {
            path: out.clone(),
            source,
        })?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn histogram(page: &str, metric: &str, wanted: &BTreeMap<String, String>) -> Histogram {
    let bucket_name = format!("{metric}_bucket");
    let sum_name = format!("{metric}_sum");
    let mut h = Histogram::default();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        if !wanted.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        if name == bucket_name {
            let le = labels.get("le").and_then(|le| match le.as_str() {
                "+Inf" => Some(f64::INFINITY),
                other => other.parse().ok(),
            });
            if let Some(le) = le {
                *h.buckets.entry(OrdF64(le)).or_default() += value;
            }
        } else if name == sum_name {
            h.sum += value;
        }
    }
    h
}

/// `a="x",b="y \"q\""` → map; Prometheus escapes `\\`, `\"` and `\n` in values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after_eq)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after_eq.char_indices();
        let mut end = after_eq.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, e)) => value.push(e),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after_eq[end..];
    }
    labels
}

fn quantiles(
    metric: &str,
    labels: BTreeMap<String, String>,
    before: &Histogram,
    after: &Histogram,
) -> Quantiles {
    let buckets: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, n)| (le.0, n - before.buckets.get(le).copied().unwrap_or(0.0)))
        .collect();
    let count = buckets.last().map_or(0.0, |b| b.1);
    let q = |quantile: f64| estimate(&buckets, count, quantile).map(|s| s * 1000.0);
    Quantiles {
        metric: metric.to_owned(),
        labels,
        count: count as u64,
        mean_ms: (count > 0.0).then(|| (after.sum - before.sum) / count * 1000.0),
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p99_ms: q(0.99),
        buckets: buckets
            .iter()
            .map(|&(le, n)| (le.is_finite().then_some(le), n as u64))
            .collect(),
    }
}

/// histogram_quantile: find the bucket holding the rank, interpolate linearly inside it; a
/// rank in the +Inf bucket answers the highest finite bound.
fn estimate(buckets: &[(f64, f64)], count: f64, quantile: f64) -> Option<f64> {
    if count <= 0.0 {
        return None;
    }
    let rank = quantile * count;
    let mut lower = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = n - lower.1;
            let within = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, n);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP x_seconds latency
# TYPE x_seconds histogram
x_seconds_bucket{name="a",rejected="false",le="0.005"} 50
x_seconds_bucket{name="a",rejected="false",le="0.01"} 90
x_seconds_bucket{name="a",rejected="false",le="0.025"} 100
x_seconds_bucket{name="a",rejected="false",le="+Inf"} 100
x_seconds_sum{name="a",rejected="false"} 0.6
x_seconds_count{name="a",rejected="false"} 100
x_seconds_bucket{name="b \"q\"",rejected="false",le="0.005"} 7
x_seconds_bucket{name="b \"q\"",rejected="false",le="+Inf"} 7
"#;

    fn wanted(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("name".to_owned(), name.to_owned())])
    }

    #[test]
    fn labels_with_escapes() {
        let l = parse_labels(r#"name="b \"q\"",le="+Inf""#);
        assert_eq!(l["name"], "b \"q\"");
        assert_eq!(l["le"], "+Inf");
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        let h = histogram(PAGE, "x_seconds", &wanted("a"));
        let q = quantiles("x_seconds", wanted("a"), &Histogram::default(), &h);
        assert_eq!(q.count, 100);
        assert_eq!(q.p50_ms, Some(5.0));
        // rank 99 lies in (0.01, 0.025] holding ranks 90..100: 0.01 + 0.015 * 0.9.
        let p99 = q.p99_ms.unwrap();
        assert!((p99 - 23.5).abs() < 1e-9, "{p99}");
        assert!((q.mean_ms.unwrap() - 6.0).abs() < 1e-9);
    }

    #[test]
    fn difference_between_scrapes() {
        let after = histogram(PAGE, "x_seconds", &wanted("a"));
        let before = histogram(
            r#"x_seconds_bucket{name="a",le="0.005"} 50
x_seconds_bucket{name="a",le="0.01"} 50
x_seconds_bucket{name="a",le="0.025"} 50
x_seconds_bucket{name="a",le="+Inf"} 50
"#,
            "x_seconds",
            &wanted("a"),
        );
        let q = quantiles("x_seconds", wanted("a"), &before, &after);
        assert_eq!(q.count, 50);
        assert_eq!(q.buckets[0], (Some(0.005), 0));
        // rank 25 of 40 in (0.005, 0.01] → 0.005 + 0.005 * 25/40.
        assert!((q.p50_ms.unwrap() - 8.125).abs() < 1e-9);
    }

    #[test]
    fn empty_and_overflow() {
        assert_eq!(estimate(&[], 0.0, 0.5), None);
        let b = [(0.01, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(estimate(&b, 10.0, 0.99), Some(0.01));
        let other = histogram(PAGE, "x_seconds", &wanted("b \"q\""));
        assert_eq!(other.buckets.len(), 2);
    }
}
