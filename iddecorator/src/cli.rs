//! Command-line flags (with `IDDECORATOR_*` environment fallbacks) and their validation.
//!
//! Numbers and durations are taken as text and checked here rather than by clap, so a
//! misconfigured Deployment shows every bad value in one start attempt, not one per restart.
use crate::policy::Policy;
use arc_swap::ArcSwap;
use clap::Parser;
use k2h_contract::stamp::Keys;
use k2h_http::tls::{CertResolver, watch_cert_files};
use k2h_http::{FileWatcher, LogFormat, ServeConfig};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const ABOUT: &str =
    "Admission webhook that stamps kube2hadoop.io/user with the authenticated submitter";

/// The whole command line. Serving is the default, so `iddecorator --listen ...` (what
/// Deployments and the test bed run) means `iddecorator serve --listen ...`.
#[derive(Debug, Parser)]
#[command(
    name = "iddecorator",
    version,
    about = ABOUT,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Args,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the admission webhooks over HTTPS (the default without a subcommand).
    Serve(Args),
    /// Generate a CA and serving certificates, and the Secret and caBundle patch of the
    /// static-certs overlay (for clusters without cert-manager). Never prints a key.
    Certs(crate::certs::CertsArgs),
}

impl Cli {
    /// The serving flags, unless another subcommand was asked for.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[derive(Debug, Parser)]
#[command(name = "iddecorator", version, about = ABOUT)]
pub struct Args {
    /// Address and port to serve HTTPS on.
    #[arg(long, env = "IDDECORATOR_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// PEM certificate chain served to the kube-apiserver; re-read when it changes.
    #[arg(long, env = "IDDECORATOR_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate; re-read when it changes.
    #[arg(long, env = "IDDECORATOR_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Policy YAML (trusted controllers, username mapping, extra kinds); built-in defaults
    /// when absent. Re-read when it changes; a bad new version is logged and ignored.
    #[arg(long, env = "IDDECORATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format.
    #[arg(long, env = "IDDECORATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, e.g. `info` or `debug,hyper=info` (default: $RUST_LOG,
    /// else `info`).
    #[arg(long, env = "IDDECORATOR_LOG")]
    pub log: Option<String>,
    /// Largest accepted request body, in bytes (`8388608`) or with a binary suffix (`512Ki`,
    /// `8Mi`); at least 1024. Larger ones get 413.
    #[arg(long, env = "IDDECORATOR_MAX_BODY_BYTES", default_value = "8388608")]
    pub max_body_bytes: String,
    /// How often to check the certificate, key and policy files for changes (e.g. `5s`).
    #[arg(long, env = "IDDECORATOR_RELOAD_INTERVAL", default_value = "5s")]
    pub reload_interval: String,
    /// How long open connections may take to finish after SIGTERM (e.g. `20s`).
    #[arg(long, env = "IDDECORATOR_SHUTDOWN_GRACE", default_value = "20s")]
    pub shutdown_grace: String,
    /// After SIGTERM, how long to keep accepting new connections while /readyz already fails
    /// (e.g. `5s`), so endpoints drop the pod before its listener closes. Use it where the pod
    /// cannot have a preStop sleep; `0s` closes the listener at once.
    #[arg(long, env = "IDDECORATOR_SHUTDOWN_DELAY", default_value = "0s")]
    pub shutdown_delay: String,
    /// Kubeconfig for reading the pod a `kubectl exec`/`attach`/`port-forward` names (its only
    /// API call: `get pods`). Default: the in-cluster service account; with neither, those
    /// requests are denied.
    #[arg(long, env = "IDDECORATOR_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How long reading that pod may take before the request is denied (e.g. `2s`); keep it
    /// below the webhook's timeoutSeconds.
    #[arg(long, env = "IDDECORATOR_POD_READ_TIMEOUT", default_value = "2s")]
    pub pod_read_timeout: String,
    /// File of keys that sign `kube2hadoop.io/stamp` (one base64 key of at least 32 bytes per
    /// line, e.g. `openssl rand -base64 32`; the first signs). token-service must have the
    /// same keys. Read at startup: to rotate, roll the Deployment. Required unless
    /// --insecure-no-stamp.
    #[arg(long, env = "IDDECORATOR_STAMP_KEY_FILE")]
    pub stamp_key_file: Option<PathBuf>,
    /// Run without a stamp key: nothing is stamped, so token-service serves no pod admitted
    /// meanwhile. For tests only.
    #[arg(
        long,
        env = "IDDECORATOR_INSECURE_NO_STAMP",
        conflicts_with = "stamp_key_file"
    )]
    pub insecure_no_stamp: bool,
}

/// One bad setting, worded for whoever edits the Deployment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--listen {value:?} is not an address:port (e.g. 0.0.0.0:8443): {reason}")]
    Listen { value: String, reason: String },
    #[error("--{flag} (or IDDECORATOR_{env}) is required")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error("--{flag} {value:?} is not valid: {reason}")]
    Value {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("TLS: {0}")]
    Tls(#[source] k2h_http::Error),
    #[error("policy {path}: {reason}")]
    Policy { path: PathBuf, reason: String },
    #[error("--kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "--stamp-key-file (or IDDECORATOR_STAMP_KEY_FILE) is required: without it no workload is stamped and token-service serves none; give the key file token-service has (the kube2hadoop-stamp-key Secret)"
    )]
    NoStampKey,
    #[error("--stamp-key-file {path}: {reason}")]
    StampKey { path: PathBuf, reason: String },
}

/// Everything the server needs, read and checked.
pub struct Config {
    pub listen: SocketAddr,
    pub cert_resolver: CertResolver,
    pub cert_watcher: FileWatcher<CertifiedKey>,
    pub policy: Arc<ArcSwap<Policy>>,
    /// `None` when the built-in policy is used.
    pub policy_watcher: Option<FileWatcher<Policy>>,
    pub serve: ServeConfig,
    pub reload_interval: Duration,
    /// The kubeconfig given (`None`: in-cluster, if available).
    pub kubeconfig: Option<kube::config::Kubeconfig>,
    pub pod_read_timeout: Duration,
}

impl Config {
    /// Checks every flag and reads the files; returns all problems found.
    pub fn from_args(args: &Args) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let listen = args
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Listen {
                value: args.listen.clone(),
                reason: e.to_string(),
            });
        let max_body = parse_size(&args.max_body_bytes).map_err(|reason| ConfigError::Value {
            flag: "max-body-bytes",
            value: args.max_body_bytes.clone(),
            reason,
        });
        let reload = duration(&args.reload_interval)
            .and_then(|d| at_least(d, Duration::from_millis(100)))
            .map_err(|reason| ConfigError::Value {
                flag: "reload-interval",
                value: args.reload_interval.clone(),
                reason,
            });
        let grace = duration(&args.shutdown_grace).map_err(|reason| ConfigError::Value {
            flag: "shutdown-grace",
            value: args.shutdown_grace.clone(),
            reason,
        });
        let delay = duration(&args.shutdown_delay).map_err(|reason| ConfigError::Value {
            flag: "shutdown-delay",
            value: args.shutdown_delay.clone(),
            reason,
        });
        let pod_read_timeout = duration(&args.pod_read_timeout)
            .and_then(|d| at_least(d, Duration::from_millis(100)))
            .map_err(|reason| ConfigError::Value {
                flag: "pod-read-timeout",
                value: args.pod_read_timeout.clone(),
                reason,
            });
        let kubeconfig = args
            .kubeconfig
            .as_ref()
            .map(|path| {
                kube::config::Kubeconfig::read_from(path).map_err(|e| ConfigError::Kubeconfig {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose();
        let cert = required(&args.tls_cert_file, "tls-cert-file", "TLS_CERT_FILE");
        let key = required(&args.tls_key_file, "tls-key-file", "TLS_KEY_FILE");
        let tls = match (cert, key) {
            (Ok(c), Ok(k)) => watch_cert_files(c.clone(), k.clone())
                .map_err(ConfigError::Tls)
                .map(Some),
            (c, k) => {
                // Still check the file that was given, so its problems show up in this run too.
                for (given, what) in [
                    (c.as_ref().ok(), "TLS certificate"),
                    (k.as_ref().ok(), "TLS key"),
                ] {
                    if let Some(path) = given
                        && let Err(source) = std::fs::File::open(path)
                    {
                        errors.push(ConfigError::Tls(k2h_http::Error::ReadFile {
                            what,
                            path: path.to_path_buf(),
                            source,
                        }));
                    }
                }
                errors.extend(c.err());
                errors.extend(k.err());
                Ok(None)
            }
        };
        let stamp_keys = match (&args.stamp_key_file, args.insecure_no_stamp) {
            (Some(path), _) => read_stamp_keys(path).map(|k| Some(Arc::new(k))),
            (None, true) => Ok(None),
            (None, false) => Err(ConfigError::NoStampKey),
        };
        let keys = stamp_keys.as_ref().ok().cloned().flatten();
        let policy = match &args.config {
            None => Ok(None),
            Some(path) => watch_policy(path.clone(), keys.clone()).map(Some),
        };

        let listen = listen.map_err(|e| errors.push(e)).ok();
        let max_body = max_body.map_err(|e| errors.push(e)).ok();
        let reload = reload.map_err(|e| errors.push(e)).ok();
        let grace = grace.map_err(|e| errors.push(e)).ok();
        let delay = delay.map_err(|e| errors.push(e)).ok();
        let tls = tls.map_err(|e| errors.push(e)).ok().flatten();
        let policy = policy.map_err(|e| errors.push(e)).ok();
        let pod_read_timeout = pod_read_timeout.map_err(|e| errors.push(e)).ok();
        let kubeconfig = kubeconfig.map_err(|e| errors.push(e)).ok();
        let stamp_keys = stamp_keys.map_err(|e| errors.push(e)).unwrap_or(None);
        match (
            listen,
            max_body,
            reload,
            grace,
            delay,
            tls,
            policy,
            pod_read_timeout,
            kubeconfig,
        ) {
            (
                Some(listen),
                Some(max_body_bytes),
                Some(reload_interval),
                Some(shutdown_grace),
                Some(shutdown_delay),
                Some((cert_resolver, cert_watcher)),
                Some(policy_watcher),
                Some(pod_read_timeout),
                Some(kubeconfig),
            ) if errors.is_empty() => {
                let policy = match &policy_watcher {
                    Some(w) => w.current(),
                    None => Arc::new(ArcSwap::from_pointee(
                        Policy::default().with_stamp_keys(stamp_keys),
                    )),
                };
                Ok(Config {
                    listen,
                    cert_resolver,
                    cert_watcher,
                    policy,
                    policy_watcher,
                    serve: ServeConfig {
                        max_body_bytes,
                        shutdown_grace,
                        shutdown_delay,
                        ..ServeConfig::default()
                    },
                    reload_interval,
                    kubeconfig,
                    pod_read_timeout,
                })
            }
            _ => Err(errors),
        }
    }
}

fn required<'a>(
    value: &'a Option<PathBuf>,
    flag: &'static str,
    env: &'static str,
) -> Result<&'a PathBuf, ConfigError> {
    value.as_ref().ok_or(ConfigError::Missing { flag, env })
}

/// The stamp keys; the error names the file and the problem, never a key.
fn read_stamp_keys(path: &PathBuf) -> Result<Keys, ConfigError> {
    let bad = |reason: String| ConfigError::StampKey {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    Keys::parse(&text).map_err(|e| bad(e.to_string()))
}

/// The policy file, watched; every version signs with `stamp_keys`.
fn watch_policy(
    path: PathBuf,
    stamp_keys: Option<Arc<Keys>>,
) -> Result<FileWatcher<Policy>, ConfigError> {
    let shown = path.clone();
    let parse = move |files: &[Vec<u8>]| {
        let bad = |reason: String| k2h_http::Error::Parse {
            path: shown.clone(),
            reason,
        };
        let text = std::str::from_utf8(&files[0]).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        Policy::from_yaml(text)
            .map(|p| p.with_stamp_keys(stamp_keys.clone()))
            .map_err(|e| bad(e.to_string()))
    };
    FileWatcher::load("policy", vec![path.clone()], parse).map_err(|e| ConfigError::Policy {
        path,
        reason: match e {
            k2h_http::Error::Parse { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// Bytes, optionally with a binary suffix: `8388608`, `512Ki`, `8Mi`.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let factor: usize = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err("expected a byte count like 8388608, 512Ki or 8Mi".into()),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| "expected a byte count like 8388608, 512Ki or 8Mi".to_string())?;
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| "too large".to_string())?;
    if bytes < 1024 {
        return Err("must be at least 1024 bytes (an AdmissionReview is rarely smaller)".into());
    }
    Ok(bytes)
}

/// The shared duration syntax (`k2h_contract::duration`), its error as text.
fn duration(text: &str) -> Result<Duration, String> {
    k2h_contract::duration::parse(text).map_err(|e| e.to_string())
}

fn at_least(d: Duration, min: Duration) -> Result<Duration, String> {
    if d < min {
        Err(format!("must be at least {} ms", min.as_millis()))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["iddecorator"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).expect("flags parse")
    }

    fn write_pair(dir: &std::path::Path) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&c, ck.cert.pem()).unwrap();
        std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    #[test]
    fn flags_without_a_subcommand_mean_serve() {
        let flat = [
            "iddecorator",
            "--listen",
            "127.0.0.1:1",
            "--tls-cert-file",
            "c",
        ];
        let Command::Serve(a) = Cli::try_parse_from(flat).expect("parse").into_command() else {
            panic!("not serve");
        };
        assert_eq!(a.listen, "127.0.0.1:1");
        assert_eq!(a.tls_cert_file, Some(PathBuf::from("c")));
        let explicit = ["iddecorator", "serve", "--listen", "127.0.0.1:2"];
        let Command::Serve(a) = Cli::try_parse_from(explicit).expect("parse").into_command() else {
            panic!("not serve");
        };
        assert_eq!(a.listen, "127.0.0.1:2");
    }

    #[test]
    fn certs_is_a_subcommand_of_its_own() {
        let certs = ["iddecorator", "certs", "--service", "s", "--namespace", "n"];
        let Command::Certs(c) = Cli::try_parse_from(certs).expect("parse").into_command() else {
            panic!("not certs");
        };
        assert_eq!((c.service.as_str(), c.days), ("s", 365));
        // Serving flags belong to serving: mixing them in is an error, not silently ignored.
        let mixed = [
            "iddecorator",
            "--listen",
            "127.0.0.1:1",
            "certs",
            "--service",
            "s",
        ];
        assert!(Cli::try_parse_from(mixed).is_err());
        assert!(Cli::try_parse_from(["iddecorator", "certs", "--service", "s"]).is_err());
    }

    #[test]
    fn every_flag_and_subcommand_has_help() {
        use clap::CommandFactory;
        let undocumented = k2h_contract::cli::undocumented(&Cli::command());
        assert!(undocumented.is_empty(), "without help: {undocumented:?}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8Mi"), Ok(8 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12").is_err());
        assert!(parse_size("1MB").is_err());
        assert!(parse_size("99999999999999999999Gi").is_err());
    }

    #[test]
    fn good_flags_give_a_config_with_the_default_policy() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path());
        let a = args(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert-file",
            &c,
            "--tls-key-file",
            &k,
            "--insecure-no-stamp",
        ]);
        let config = Config::from_args(&a).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(config.serve.max_body_bytes, 8 << 20);
        assert_eq!(config.reload_interval, Duration::from_secs(5));
        assert!(config.policy_watcher.is_none());
        assert!(config.kubeconfig.is_none());
        assert_eq!(config.pod_read_timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, "noSuchField: 1\n").unwrap();
        let a = args(&[
            "--listen",
            "nowhere",
            "--max-body-bytes",
            "lots",
            "--reload-interval",
            "1ms",
            "--shutdown-grace",
            "soon",
            "--shutdown-delay",
            "later",
            "--tls-key-file",
            "/nonexistent/tls.key",
            "--config",
            policy.to_str().unwrap(),
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--pod-read-timeout",
            "forever",
        ]);
        let errors = Config::from_args(&a).err().expect("must fail");
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 11, "{text:#?}");
        let all = text.join("\n");
        for needle in [
            "--listen \"nowhere\"",
            "--max-body-bytes",
            "--reload-interval",
            "--shutdown-grace",
            "--shutdown-delay",
            "--tls-cert-file (or IDDECORATOR_TLS_CERT_FILE) is required",
            "cannot read TLS key file /nonexistent/tls.key",
            "policy.yaml",
            "--kubeconfig /nonexistent/kubeconfig",
            "--pod-read-timeout \"forever\"",
            "--stamp-key-file (or IDDECORATOR_STAMP_KEY_FILE) is required",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in {all}");
        }
    }

    #[test]
    fn stamp_keys_are_required_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path());
        let keyfile = dir.path().join("stamp.key");
        let with = |extra: &[&str]| {
            let mut flags = vec!["--tls-cert-file", &c, "--tls-key-file", &k];
            flags.extend_from_slice(extra);
            Config::from_args(&args(&flags))
        };
        std::fs::write(&keyfile, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
        let config = with(&["--stamp-key-file", keyfile.to_str().unwrap()])
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        assert!(config.policy.load().stamp("ns", "alice").is_some());
        std::fs::write(&keyfile, "c2hvcnQ=\n").unwrap();
        let errors = with(&["--stamp-key-file", keyfile.to_str().unwrap()])
            .err()
            .expect("short key");
        assert!(errors[0].to_string().contains("5 bytes"), "{}", errors[0]);
        let errors = with(&[]).err().expect("no key");
        assert!(
            matches!(errors[0], ConfigError::NoStampKey),
            "{}",
            errors[0]
        );
        assert!(
            with(&["--insecure-no-stamp"])
                .map_err(|e| format!("{e:?}"))
                .unwrap()
                .policy
                .load()
                .stamp("ns", "alice")
                .is_none()
        );
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let a = args(&[
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--tls-key-file",
            "/nonexistent/tls.key",
        ]);
        let errors = Config::from_args(&a).err().expect("must fail");
        assert!(
            errors[0].to_string().contains("/nonexistent/tls.crt"),
            "{}",
            errors[0]
        );
    }
}
