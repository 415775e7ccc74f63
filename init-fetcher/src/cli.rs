//! Flags and environment variables of `fetch` and `refresh`, checked into a [`Config`] once:
//! every bad value is reported, then the program fails (exit code 1) before any request.
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::retry::{Backoff, RefreshSchedule};

pub const DEFAULT_OUT: &str = "/var/run/secrets/hadoop/token";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of `fetch` (and the first fetch of `refresh`). Each has an environment-variable
/// fallback, so an injected container can be configured either way.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Base URL of the token service, e.g. https://token-service.kube2hadoop.svc:8443
    #[arg(long, env = "K2H_FETCH_URL")]
    pub url: Option<String>,
    /// PEM file with the CA that signed the token service's certificate
    #[arg(long, env = "K2H_FETCH_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The same CA as PEM text, instead of --ca-file. iddecorator's injection puts it here so
    /// the pod spec, which only the pod's user may change, carries it (not a ConfigMap any
    /// editor of the namespace could replace)
    #[arg(long, env = "K2H_FETCH_CA_PEM", allow_hyphen_values = true)]
    pub ca_pem: Option<String>,
    /// Where the credentials file is written (atomically)
    #[arg(long, env = "K2H_FETCH_OUT", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Projected service-account token (audience kube2hadoop) sent as proof of which pod
    /// asks; re-read on every attempt. Without it the service identifies the pod by its IP.
    #[arg(long, env = "K2H_FETCH_SA_TOKEN_FILE")]
    pub sa_token_file: Option<PathBuf>,
    /// Give up when no credentials were obtained within this time (e.g. 2m, 90s)
    #[arg(long, env = "K2H_FETCH_DEADLINE", default_value = "2m")]
    pub deadline: String,
    /// Longest time for one attempt, connect to last byte
    #[arg(long, env = "K2H_FETCH_ATTEMPT_TIMEOUT", default_value = "15s")]
    pub attempt_timeout: String,
    /// Longest time to establish a connection
    #[arg(long, env = "K2H_FETCH_CONNECT_TIMEOUT", default_value = "5s")]
    pub connect_timeout: String,
    /// Largest wait between attempts (waits grow from 250ms, randomised)
    #[arg(long, env = "K2H_FETCH_MAX_BACKOFF", default_value = "10s")]
    pub max_backoff: String,
    /// Permissions of the credentials file, octal. 0440 needs the pod's fsGroup for app
    /// containers running as another user to read it.
    #[arg(long, env = "K2H_FETCH_FILE_MODE", default_value = "0440")]
    pub file_mode: String,
    /// Log lines on stderr as text or JSON (filter with RUST_LOG, default info)
    #[arg(long, env = "K2H_FETCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Local IP address to connect from, for hosts with several addresses where the service
    /// identifies the caller by source IP (default: the kernel's choice)
    #[arg(long, env = "K2H_FETCH_SOURCE_ADDRESS")]
    pub source_address: Option<String>,
}

/// Extra flags of `refresh`.
#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Never fetch again sooner than this after a success
    #[arg(long, env = "K2H_REFRESH_MIN_INTERVAL", default_value = "30s")]
    pub min_interval: String,
    /// Fetch again at least this often, to pick up tokens the service re-issued
    #[arg(long, env = "K2H_REFRESH_MAX_INTERVAL", default_value = "10m")]
    pub max_interval: String,
}

/// Where the token service's CA comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `--ca-file`: a PEM file.
    File(PathBuf),
    /// `--ca-pem` / `K2H_FETCH_CA_PEM`: the PEM text itself.
    Pem(String),
}

/// Everything `fetch` needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub ca: CaSource,
    pub out: PathBuf,
    pub sa_token_file: Option<PathBuf>,
    pub deadline: Duration,
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff: Backoff,
    pub file_mode: u32,
    pub source_address: Option<IpAddr>,
}

/// Flags that cannot be used, all of them.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) with the flags or K2H_* variables, fix them all: {}", .0.len(), .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl FetchArgs {
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let config = self.check(&mut problems);
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(ConfigError(problems)),
        }
    }

    fn check(&self, problems: &mut Vec<String>) -> Option<Config> {
        let url = self.url.clone().filter(|u| !u.trim().is_empty());
        if url.is_none() {
            problems
                .push("give --url (or K2H_FETCH_URL), the token service's https:// address".into());
        }
        let ca = match (&self.ca_file, &self.ca_pem) {
            (Some(path), None) => Some(CaSource::File(path.clone())),
            (None, Some(pem)) => Some(CaSource::Pem(pem.clone())),
            (Some(_), Some(_)) => {
                problems.push(
                    "give --ca-file (K2H_FETCH_CA_FILE) or --ca-pem (K2H_FETCH_CA_PEM), not both"
                        .into(),
                );
                None
            }
            (None, None) => {
                problems.push(
                    "give --ca-file (or K2H_FETCH_CA_FILE) or --ca-pem (or K2H_FETCH_CA_PEM), the token service's CA"
                        .into(),
                );
                None
            }
        };
        let mut duration = |flag: &str, text: &str| {
            let d = k2h_contract::duration::parse(text)
                .map_err(|e| problems.push(format!("--{flag}: {e}")))
                .ok();
            if d == Some(Duration::ZERO) {
                problems.push(format!("--{flag} must be more than zero"));
            }
            d
        };
        let deadline = duration("deadline", &self.deadline);
        let attempt_timeout = duration("attempt-timeout", &self.attempt_timeout);
        let connect_timeout = duration("connect-timeout", &self.connect_timeout);
        let max_backoff = duration("max-backoff", &self.max_backoff);
        let file_mode = u32::from_str_radix(self.file_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o400 != 0 && m & 0o022 == 0);
        if file_mode.is_none() {
            problems.push(format!(
                "--file-mode {:?} must be octal permissions readable by the owner and writable by nobody else, e.g. 0440",
                self.file_mode
            ));
        }
        let source_address = match self.source_address.as_deref().map(str::parse::<IpAddr>) {
            None => None,
            Some(Ok(ip)) => Some(ip),
            Some(Err(_)) => {
                problems.push(format!(
                    "--source-address {:?} is not an IP address, e.g. 10.0.3.7",
                    self.source_address.as_deref().unwrap_or_default()
                ));
                None
            }
        };
        Some(Config {
            url: url?,
            ca: ca?,
            out: self.out.clone(),
            sa_token_file: self.sa_token_file.clone(),
            deadline: deadline?,
            attempt_timeout: attempt_timeout?,
            connect_timeout: connect_timeout?,
            backoff: Backoff {
                max: max_backoff?,
                ..Backoff::default()
            },
            file_mode: file_mode?,
            source_address,
        })
    }
}

impl RefreshArgs {
    pub fn config(&self) -> Result<(Config, RefreshSchedule), ConfigError> {
        let mut problems = Vec::new();
        let config = self.fetch.check(&mut problems);
        let mut interval = |flag: &str, text: &str| {
            k2h_contract::duration::parse(text)
                .map_err(|e| problems.push(format!("--{flag}: {e}")))
                .ok()
        };
        let min = interval("min-interval", &self.min_interval);
        let max = interval("max-interval", &self.max_interval);
        if let (Some(min), Some(max)) = (min, max)
            && (min > max || max.is_zero())
        {
            problems
                .push("--max-interval must be more than zero and at least --min-interval".into());
        }
        match (config, min, max) {
            (Some(c), Some(min), Some(max)) if problems.is_empty() => {
                Ok((c, RefreshSchedule { min, max }))
            }
            _ => Err(ConfigError(problems)),
        }
    }
}

/// Installs the global log subscriber (stderr; `RUST_LOG` filter, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        r: RefreshArgs,
    }

    fn parse(args: &[&str]) -> RefreshArgs {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .r
    }

    #[test]
    fn good_flags() {
        let r = parse(&[
            "--url",
            "https://ts:8443",
            "--ca-file",
            "/ca.pem",
            "--deadline",
            "30s",
            "--file-mode",
            "0444",
            "--max-interval",
            "1h",
            "--source-address",
            "127.100.0.7",
        ]);
        let (c, s) = r.config().unwrap();
        assert_eq!(c.source_address, Some([127, 100, 0, 7].into()));
        assert_eq!(c.deadline, Duration::from_secs(30));
        assert_eq!(c.file_mode, 0o444);
        assert_eq!(c.out, PathBuf::from(DEFAULT_OUT));
        assert_eq!(s.max, Duration::from_secs(3600));
        assert_eq!(s.min, Duration::from_secs(30));
    }

    #[test]
    fn the_ca_comes_from_a_file_or_inline_pem_not_both() {
        let base = ["--url", "https://ts:8443"];
        let pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let c = parse(&[&base[..], &["--ca-pem", pem]].concat())
            .config()
            .unwrap()
            .0;
        assert_eq!(c.ca, CaSource::Pem(pem.to_owned()));
        let c = parse(&[&base[..], &["--ca-file", "/ca.pem"]].concat())
            .config()
            .unwrap()
            .0;
        assert_eq!(c.ca, CaSource::File("/ca.pem".into()));
        let e = parse(&[&base[..], &["--ca-file", "/ca.pem", "--ca-pem", pem]].concat())
            .config()
            .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn every_problem_is_reported() {
        let r = parse(&[
            "--deadline",
            "soon",
            "--file-mode",
            "0666",
            "--min-interval",
            "2h",
            "--source-address",
            "pod-ip",
        ]);
        let e = r.config().unwrap_err();
        assert_eq!(e.0.len(), 6, "{e}");
        let text = e.to_string();
        for want in [
            "--url",
            "--ca-file",
            "--deadline",
            "--file-mode",
            "--max-interval",
            "--source-address",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }
}
