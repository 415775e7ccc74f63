//! Start-to-file time of a short-lived program (init-fetcher): run it N times one after the
//! other, each time from process start to its exit with the file written, and report the
//! quantiles. A run that fails or leaves no file is an error, not a sample.
use crate::Error;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct SpawnArgs {
    /// How many times to run the program, one after the other.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// The file the program must write; removed before each run.
    #[arg(long)]
    file: PathBuf,
    /// Write the report (quantiles in ms) as JSON here.
    #[arg(long)]
    out: PathBuf,
    /// Program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SpawnReport {
    runs: usize,
    p50_ms: f64,
    p99_ms: f64,
    min_ms: f64,
    max_ms: f64,
    file_bytes: u64,
}

pub fn run(args: SpawnArgs) -> Result<(), Error> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("no command given after --".into()))?;
    let mut samples = Vec::with_capacity(args.runs);
    let mut file_bytes = 0;
    for n in 0..args.runs.max(1) {
        let _ = std::fs::remove_file(&args.file);
        let started = Instant::now();
        let out = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Usage(format!("cannot run {program}: {e}")))?;
        let took = started.elapsed();
        let written = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
        if !out.status.success() || written == 0 {
            return Err(Error::Usage(format!(
                "run {}: {program} exited {} with {} ({} bytes written):\n{}",
                n + 1,
                out.status,
                args.file.display(),
                written,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        file_bytes = written;
        samples.push(took.as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let report = SpawnReport {
        runs: samples.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        min_ms: at(0.0),
        max_ms: at(1.0),
        file_bytes,
    };
    println!(
        "{} runs: p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms; file {} bytes",
        report.runs, report.p50_ms, report.p99_ms, report.min_ms, report.max_ms, file_bytes
    );
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&args.out, json).map_err(|source| Error::Write {
        path: args.out.clone(),
        source,
    })
}
