//! Load generator for kube2hadoop's HTTPS endpoints.
//!
//! `certs` writes a throwaway CA and serving pair, `wait-ready` polls a URL, `run` drives a
//! target (any server: iddecorator, a Go reference…) at fixed concurrencies (or a fixed rate)
//! with identical bodies and reports throughput, latency percentiles, errors and the target's
//! CPU time and peak RSS. `compare` puts two reports side by side with ratios;
//! `prom-quantiles` reads latency quantiles off a Prometheus histogram (kube-apiserver's).
//! `credentials` drives token-service as pods would; `spawn-times` times init-fetcher runs;
//! `sustained` holds an open-loop admission rate over HTTP/2 for a long run and
//! `sustained-compare` puts two of those side by side.
#![forbid(unsafe_code)]

mod certs;
mod compare;
mod credentials;
mod fetchers;
mod load;
mod prom;
mod report;
mod spawn;
mod sustained;
mod sustained_compare;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write ca.crt, tls.crt and tls.key (for localhost and 127.0.0.1) into a directory.
    Certs {
        /// Directory to write the three files into (created if missing).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Poll a URL until it answers 200.
    WaitReady {
        /// URL to GET, e.g. https://127.0.0.1:8443/readyz.
        #[arg(long)]
        url: String,
        /// CA certificate (PEM) the server's certificate chains to.
        #[arg(long)]
        ca: PathBuf,
        /// Give up after this long (`30s`, `2m`; a bare number is seconds).
        #[arg(long, default_value = "30s", value_parser = k2h_contract::duration::parse_arg)]
        timeout: Duration,
    },
    /// Drive the target and report.
    Run(load::RunArgs),
    /// Two reports side by side (ours / reference), the targets checked, one JSON file.
    Compare(compare::CompareArgs),
    /// p50/p90/p99 of a Prometheus histogram between two /metrics scrapes.
    PromQuantiles(prom::QuantileArgs),
    /// Pods asking token-service for credentials (IP or SA-token mode): a cold burst, or
    /// answers from the ledger at a fixed concurrency.
    Credentials(credentials::CredentialsArgs),
    /// Every pod fetching again and again for a while (init containers, then refreshing
    /// sidecars); per workload, whether all its pods got the same credentials.
    Fetchers(fetchers::FetchersArgs),
    /// Start-to-file time of a short-lived program (init-fetcher), repeated runs.
    SpawnTimes(spawn::SpawnArgs),
    /// Open-loop admission load at a fixed rate over a few HTTP/2 connections, for a long
    /// while (latency from each request's due time).
    Sustained(sustained::SustainedArgs),
    /// Two `sustained` reports side by side, the target checked for each.
    SustainedCompare(sustained_compare::SustainedCompareArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Certs(#[from] rcgen::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{url} did not answer 200 within {timeout:?}; last: {last}")]
    NotReady {
        url: String,
        timeout: Duration,
        last: String,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Certs { dir } => certs::write(&dir),
                    Command::WaitReady { url, ca, timeout } => {
                        load::wait_ready(&url, &ca, timeout).await
                    }
                    Command::Run(args) => load::run(args).await,
                    Command::Compare(args) => compare::run(args),
                    Command::PromQuantiles(args) => prom::run(args),
                    Command::Credentials(args) => credentials::run(args).await,
                    Command::SpawnTimes(args) => spawn::run(args),
                    Command::Fetchers(args) => fetchers::run(args).await,
                    Command::Sustained(args) => sustained::run(args).await,
                    Command::SustainedCompare(args) => sustained_compare::run(args),
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_and_subcommand_has_help() {
        let undocumented = k2h_contract::cli::undocumented(&Cli::command());
        assert!(undocumented.is_empty(), "without help: {undocumented:?}");
    }
}
