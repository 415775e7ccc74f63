//! Configuration: flags with `TOKEN_SERVICE_*` environment fallbacks, plus an optional YAML
//! file for what does not fit on a command line (Hadoop services, mapping rules, LDAP
//! filters). A flag wins over the file. Everything is read and checked before serving, and
//! every bad value is reported at once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use k2h_http::LogFormat;
use zeroize::Zeroizing;

use k2h_contract::coverage::{MUTATING_WEBHOOK, WEBHOOK_CONFIGURATION};

use crate::directory::ldap::{
    DEFAULT_GROUP_FILTER, DEFAULT_NAME_ATTRIBUTE, DEFAULT_RUN_AS_FILTER, DEFAULT_USER_FILTER,
    LdapConfig,
};
use crate::hadoop::kms::KmsConfig;
use crate::hadoop::spnego::KerberosConfig;
use crate::hadoop::webhdfs::{NameNode, NameServiceConfig};
use crate::issuer::IssuerConfig;
use crate::mapping::MappingRules;
use crate::ratelimit::Limit;
use crate::server::Modes;
use crate::workload::StampedKinds;

const DEFAULT_SUPERUSERS: &[&str] = &["hdfs", "yarn", "mapred", "hive", "hbase", "root"];

#[derive(Debug, Parser)]
#[command(
    name = "token-service",
    version,
    about = "Issues Hadoop delegation tokens to Kubernetes pods for the user who submitted them"
)]
pub struct Cli {
    /// YAML file with the Hadoop services and other structured settings.
    #[arg(long, env = "TOKEN_SERVICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to serve HTTPS on [default: 0.0.0.0:8443].
    #[arg(long, env = "TOKEN_SERVICE_LISTEN")]
    pub listen: Option<String>,
    /// PEM certificate chain; re-read when it changes.
    #[arg(long, env = "TOKEN_SERVICE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "TOKEN_SERVICE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The keys that verify `kube2hadoop.io/stamp`: iddecorator's stamp key file (one base64
    /// key per line; any of them verifies). Read at startup.
    #[arg(long, env = "TOKEN_SERVICE_STAMP_KEY_FILE")]
    pub stamp_key_file: Option<PathBuf>,
    /// Kubeconfig to use; without it: in-cluster, else $KUBECONFIG.
    #[arg(long, env = "TOKEN_SERVICE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of that kubeconfig.
    #[arg(long, env = "TOKEN_SERVICE_KUBE_CONTEXT")]
    pub kube_context: Option<String>,
    /// Accepted proofs of identity: `sa-token`, `ip`, or both comma-separated [default: sa-token].
    /// `ip` (Kube2Hadoop-compatible) needs a network that stops pods spoofing addresses.
    #[arg(long, env = "TOKEN_SERVICE_IDENTITY_MODES")]
    pub identity_modes: Option<String>,
    /// Label selector of the namespaces served (empty: all).
    #[arg(long, env = "TOKEN_SERVICE_NAMESPACE_SELECTOR")]
    pub namespace_selector: Option<String>,
    /// Kerberos principal of the service, e.g. `kube2hadoop/host@REALM` (none: no SPNEGO).
    #[arg(long, env = "TOKEN_SERVICE_PRINCIPAL")]
    pub principal: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_KEYTAB")]
    pub keytab: Option<PathBuf>,
    #[arg(long, env = "TOKEN_SERVICE_KRB5_CONF")]
    pub krb5_conf: Option<PathBuf>,
    /// Renewer written into tokens [default: the principal's short name].
    #[arg(long, env = "TOKEN_SERVICE_RENEWER")]
    pub renewer: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_URL")]
    pub ldap_url: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BIND_DN")]
    pub ldap_bind_dn: Option<String>,
    /// File holding the bind password (its first line).
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BIND_PASSWORD_FILE")]
    pub ldap_bind_password_file: Option<PathBuf>,
    /// Base DN for users; also for groups unless --ldap-group-base is given.
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BASE_DN")]
    pub ldap_base_dn: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_GROUP_BASE_DN")]
    pub ldap_group_base_dn: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_USER_FILTER")]
    pub ldap_user_filter: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_GROUP_FILTER")]
    pub ldap_group_filter: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_RUN_AS_FILTER")]
    pub ldap_run_as_filter: Option<String>,
    /// Group a user must belong to [default: hadoop-users].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_ALLOWED_GROUP")]
    pub ldap_allowed_group: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_STARTTLS")]
    pub ldap_starttls: bool,
    #[arg(long, env = "TOKEN_SERVICE_LDAP_CA_FILE")]
    pub ldap_ca_file: Option<PathBuf>,
    /// Static users/groups YAML, used when no LDAP URL is set [default: embedded demo file].
    #[arg(long, env = "TOKEN_SERVICE_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// Hadoop users never issued tokens, comma-separated.
    #[arg(long, env = "TOKEN_SERVICE_SUPERUSERS")]
    pub superusers: Option<String>,
    /// Append audit lines here instead of logging them on target kube2hadoop::audit.
    #[arg(long, env = "TOKEN_SERVICE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Requests a pod may make per minute [default: 30].
    #[arg(long, env = "TOKEN_SERVICE_POD_RATE")]
    pub pod_rate: Option<String>,
    /// Requests a pod may make at once [default: 5].
    #[arg(long, env = "TOKEN_SERVICE_POD_BURST")]
    pub pod_burst: Option<String>,
    /// Hadoop calls in flight at most [default: 8].
    #[arg(long, env = "TOKEN_SERVICE_MAX_HADOOP_CALLS")]
    pub max_hadoop_calls: Option<String>,
    /// Timeout of each Hadoop call (`30s`, `2m`; a bare number is seconds) [default: 30s].
    #[arg(long, env = "TOKEN_SERVICE_HADOOP_TIMEOUT")]
    pub hadoop_timeout: Option<String>,
    /// Timeout of each Kubernetes API call (`10s`; a bare number is seconds) [default: 10s].
    #[arg(long, env = "TOKEN_SERVICE_KUBE_TIMEOUT")]
    pub kube_timeout: Option<String>,
    /// Timeout of each LDAP operation (`5s`; a bare number is seconds) [default: 5s].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_TIMEOUT")]
    pub ldap_timeout: Option<String>,
    #[arg(long, env = "TOKEN_SERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax.
    #[arg(long, env = "TOKEN_SERVICE_LOG")]
    pub log: Option<String>,
    /// Namespace of the ledger Secrets and the leader Lease [default: kube2hadoop].
    #[arg(long, env = "TOKEN_SERVICE_LEDGER_NAMESPACE")]
    pub ledger_namespace: Option<String>,
    /// Time between ledger passes (renew, re-issue, cancel; `30s`, `1m`) [default: 30s].
    #[arg(long, env = "TOKEN_SERVICE_LEDGER_PERIOD")]
    pub ledger_period: Option<String>,
    /// How long the leader Lease lasts unrenewed (`15s`) [default: 15s].
    #[arg(long, env = "TOKEN_SERVICE_LEASE_DURATION")]
    pub lease_duration: Option<String>,
    /// How long a leader that cannot renew its Lease keeps acting (`10s`) [default: 10s].
    #[arg(long, env = "TOKEN_SERVICE_LEASE_RENEW_DEADLINE")]
    pub lease_renew_deadline: Option<String>,
    /// This replica's name in the Lease [default: $POD_NAME or $HOSTNAME, plus the process id].
    #[arg(long, env = "TOKEN_SERVICE_REPLICA_ID")]
    pub replica_id: Option<String>,
}

/// The YAML file: every flag's value (camelCase), plus structured settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub stamp_key_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub kube_context: Option<String>,
    pub identity_modes: Option<Vec<String>>,
    pub namespace_selector: Option<String>,
    pub kerberos: Option<FileKerberos>,
    pub renewer: Option<String>,
    pub nameservices: Vec<FileNameService>,
    pub kms: Vec<FileKms>,
    pub ldap: Option<FileLdap>,
    pub users_file: Option<PathBuf>,
    pub superusers: Option<Vec<String>>,
    pub user_mapping: Option<MappingRules>,
    pub audit_log: Option<PathBuf>,
    pub pod_rate: Option<u32>,
    pub pod_burst: Option<u32>,
    pub max_hadoop_calls: Option<usize>,
    pub hadoop_timeout_seconds: Option<u64>,
    pub kube_timeout_seconds: Option<u64>,
    pub ledger_namespace: Option<String>,
    pub ledger_period_seconds: Option<u64>,
    pub lease_duration_seconds: Option<u64>,
    pub lease_renew_deadline_seconds: Option<u64>,
    /// Kinds iddecorator stamps beyond the built-in ones: must mirror the `kinds:` of its
    /// policy. `group/Kind` (`ray.io/RayJob`) or `{group: ray.io, kind: RayJob}`.
    pub stamped_kinds: Vec<KindSpec>,
    /// The MutatingWebhookConfiguration whose coverage is served [default:
    /// kube2hadoop-iddecorator].
    pub webhook_configuration: Option<String>,
    /// The webhook within it [default: mutate.iddecorator.kube2hadoop.io].
    pub mutating_webhook: Option<String>,
}

/// A kind as `group/Kind` (core kinds: `Kind`), or as iddecorator's policy writes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum KindSpec {
    Text(String),
    #[serde(rename_all = "camelCase")]
    Object {
        #[serde(default)]
        group: String,
        kind: String,
        /// iddecorator's policy lists template paths here: accepted, so an entry can be copied
        /// as it is, and unused.
        #[serde(default)]
        #[allow(dead_code)]
        template_paths: Vec<String>,
    },
}

impl KindSpec {
    /// (group, kind), checked.
    fn parse(&self) -> Result<(String, String), String> {
        let (group, kind) = match self {
            KindSpec::Text(t) => t.rsplit_once('/').unwrap_or(("", t.as_str())),
            KindSpec::Object { group, kind, .. } => (group.as_str(), kind.as_str()),
        };
        let name_like = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) || !name_like(group)
        {
            return Err(format!(
                "stampedKinds entry {self:?} is not `group/Kind` (e.g. ray.io/RayJob)"
            ));
        }
        Ok((group.to_owned(), kind.to_owned()))
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FileKerberos {
    pub principal: Option<String>,
    pub keytab: Option<PathBuf>,
    pub krb5_conf: Option<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileNameService {
    pub name: String,
    pub namenodes: Vec<FileNameNode>,
    #[serde(default)]
    pub token_service: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNameNode {
    pub http: String,
    pub rpc: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileKms {
    pub name: String,
    pub urls: Vec<String>,
    pub token_service: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FileLdap {
    pub url: Option<String>,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub base_dn: Option<String>,
    pub group_base_dn: Option<String>,
    pub user_filter: Option<String>,
    /// Attribute of a user entry holding its account name [default: uid].
    pub name_attribute: Option<String>,
    pub group_filter: Option<String>,
    pub run_as_filter: Option<String>,
    pub allowed_group: Option<String>,
    pub starttls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub timeout_seconds: Option<u64>,
}

pub enum DirectorySettings {
    Ldap(Box<LdapConfig>),
    /// `None`: the embedded demo file.
    Static(Option<PathBuf>),
}

/// Everything the service needs, checked.
pub struct Settings {
    pub listen: SocketAddr,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    /// Read by `main` at startup (`k2h_contract::stamp::Keys`).
    pub stamp_key_file: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub kube_context: Option<String>,
    pub modes: Modes,
    pub namespace_selector: String,
    pub kerberos: Option<KerberosConfig>,
    pub nameservices: Vec<NameServiceConfig>,
    pub kms: Vec<KmsConfig>,
    pub directory: DirectorySettings,
    pub mapping: MappingRules,
    pub superusers: BTreeSet<String>,
    pub audit_log: Option<PathBuf>,
    pub pod_limit: Limit,
    pub issuer: IssuerConfig,
    pub hadoop_timeout: Duration,
    pub kube_timeout: Duration,
    pub log_format: LogFormat,
    pub log: Option<String>,
    pub ledger: LedgerSettings,
    pub stamped: StampedKinds,
    pub webhook_configuration: String,
    pub mutating_webhook: String,
}

/// Where the ledger lives and how its leader is elected.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub namespace: String,
    pub period: Duration,
    pub lease_duration: Duration,
    pub lease_renew_deadline: Duration,
    pub replica_id: String,
}

fn default_replica_id() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "token-service".into());
    format!("{host}-{}", std::process::id())
}

/// Every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

fn number<T: std::str::FromStr>(
    errors: &mut Vec<String>,
    flag: &str,
    cli: Option<&String>,
    file: Option<T>,
    default: T,
) -> T {
    match cli {
        Some(text) => text.trim().parse().unwrap_or_else(|_| {
            errors.push(format!("--{flag} {text:?} is not a valid number"));
            default
        }),
        None => file.unwrap_or(default),
    }
}

/// A duration flag in the shared syntax (`30s`, `2m`; a bare number is seconds), else the
/// file's whole seconds, else `default`.
fn duration(
    errors: &mut Vec<String>,
    flag: &str,
    cli: Option<&String>,
    file_seconds: Option<u64>,
    default: Duration,
) -> Duration {
    match cli {
        Some(text) => k2h_contract::duration::parse(text).unwrap_or_else(|e| {
            errors.push(format!("--{flag}: {e}"));
            default
        }),
        None => file_seconds.map_or(default, Duration::from_secs),
    }
}

fn required<T>(errors: &mut Vec<String>, what: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        errors.push(format!("{what} is required"));
    }
    value
}

impl Settings {
    /// Reads the YAML file named by `--config`, if any, then resolves.
    pub fn load(cli: Cli) -> Result<Settings, ConfigErrors> {
        let file = match &cli.config {
            None => FileConfig::default(),
            Some(path) => read_file(path).map_err(|e| ConfigErrors(vec![e]))?,
        };
        Settings::resolve(cli, file)
    }

    pub fn resolve(cli: Cli, file: FileConfig) -> Result<Settings, ConfigErrors> {
        let mut errors = Vec::new();
        // First, while `cli` is whole: it reads several LDAP flags.
        let ldap_timeout = duration(
            &mut errors,
            "ldap-timeout",
            cli.ldap_timeout.as_ref(),
            file.ldap.as_ref().and_then(|l| l.timeout_seconds),
            Duration::from_secs(5),
        );
        let directory =
            directory_settings(&mut errors, &cli, file.ldap, file.users_file, ldap_timeout);

        let listen_text = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:8443".into());
        let listen = listen_text.parse().unwrap_or_else(|e| {
            errors.push(format!(
                "--listen {listen_text:?} is not an address:port: {e}"
            ));
            SocketAddr::from(([0, 0, 0, 0], 8443))
        });
        let tls_cert_file = required(
            &mut errors,
            "--tls-cert-file (TOKEN_SERVICE_TLS_CERT_FILE)",
            cli.tls_cert_file.or(file.tls_cert_file),
        );
        let tls_key_file = required(
            &mut errors,
            "--tls-key-file (TOKEN_SERVICE_TLS_KEY_FILE)",
            cli.tls_key_file.or(file.tls_key_file),
        );
        let stamp_key_file = required(
            &mut errors,
            "--stamp-key-file (TOKEN_SERVICE_STAMP_KEY_FILE, or stampKeyFile; iddecorator's \
             stamp key, the kube2hadoop-stamp-key Secret)",
            cli.stamp_key_file.or(file.stamp_key_file),
        );
        let modes = parse_modes(
            &mut errors,
            cli.identity_modes
                .map(|m| m.split(',').map(|s| s.trim().to_owned()).collect())
                .or(file.identity_modes),
        );

        let file_krb = file.kerberos.unwrap_or_default();
        let principal = cli.principal.or(file_krb.principal);
        let keytab = cli.keytab.or(file_krb.keytab);
        let krb5_conf = cli.krb5_conf.or(file_krb.krb5_conf);
        let kerberos = match (principal, keytab) {
            (Some(principal), Some(keytab)) => {
                check_readable(&mut errors, "--keytab", &keytab);
                if let Some(conf) = &krb5_conf {
                    check_readable(&mut errors, "--krb5-conf", conf);
                }
                Some(KerberosConfig {
                    principal,
                    keytab,
                    krb5_conf,
                    refresh_margin: Duration::from_secs(300),
                })
            }
            (None, None) => None,
            _ => {
                errors.push("--principal and --keytab go together: set both or neither".into());
                None
            }
        };
        let renewer = cli
            .renewer
            .clone()
            .or(file.renewer)
            .or_else(|| kerberos.as_ref().map(|k| short_name(&k.principal)))
            .unwrap_or_else(|| "kube2hadoop".into());

        let nameservices: Vec<_> = file
            .nameservices
            .into_iter()
            .map(|ns| NameServiceConfig {
                name: ns.name,
                namenodes: ns
                    .namenodes
                    .into_iter()
                    .map(|nn| NameNode {
                        http: nn.http,
                        rpc: nn.rpc,
                    })
                    .collect(),
                renewer: renewer.clone(),
                token_service: ns.token_service,
            })
            .collect();
        let kms: Vec<_> = file
            .kms
            .into_iter()
            .map(|k| KmsConfig {
                name: k.name,
                urls: k.urls,
                renewer: renewer.clone(),
                token_service: k.token_service,
            })
            .collect();
        if nameservices.is_empty() && kms.is_empty() {
            errors.push(
                "no Hadoop service configured: list `nameservices` (and/or `kms`) in the \
                 --config file"
                    .into(),
            );
        }
        for ns in &nameservices {
            if ns.namenodes.is_empty() {
                errors.push(format!("nameservice {}: no namenodes listed", ns.name));
            }
        }

        let superusers = cli
            .superusers
            .map(|s| {
                s.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .or(file.superusers.map(|v| v.into_iter().collect()))
            .unwrap_or_else(|| DEFAULT_SUPERUSERS.iter().map(|s| (*s).to_owned()).collect());

        let pod_limit = Limit {
            per_minute: number(
                &mut errors,
                "pod-rate",
                cli.pod_rate.as_ref(),
                file.pod_rate,
                30,
            ),
            burst: number(
                &mut errors,
                "pod-burst",
                cli.pod_burst.as_ref(),
                file.pod_burst,
                5,
            ),
        };
        let issuer = IssuerConfig {
            max_concurrent_hadoop: number(
                &mut errors,
                "max-hadoop-calls",
                cli.max_hadoop_calls.as_ref(),
                file.max_hadoop_calls,
                8,
            ),
            ..IssuerConfig::default()
        };
        let hadoop_timeout = duration(
            &mut errors,
            "hadoop-timeout",
            cli.hadoop_timeout.as_ref(),
            file.hadoop_timeout_seconds,
            Duration::from_secs(30),
        );
        let kube_timeout = duration(
            &mut errors,
            "kube-timeout",
            cli.kube_timeout.as_ref(),
            file.kube_timeout_seconds,
            Duration::from_secs(10),
        );
        let seconds = |errors: &mut Vec<String>, flag, cli: Option<&String>, file, default| {
            duration(errors, flag, cli, file, Duration::from_secs(default))
        };
        let ledger = LedgerSettings {
            namespace: cli
                .ledger_namespace
                .or(file.ledger_namespace)
                .unwrap_or_else(|| "kube2hadoop".into()),
            period: seconds(
                &mut errors,
                "ledger-period",
                cli.ledger_period.as_ref(),
                file.ledger_period_seconds,
                30,
            ),
            lease_duration: seconds(
                &mut errors,
                "lease-duration",
                cli.lease_duration.as_ref(),
                file.lease_duration_seconds,
                15,
            ),
            lease_renew_deadline: seconds(
                &mut errors,
                "lease-renew-deadline",
                cli.lease_renew_deadline.as_ref(),
                file.lease_renew_deadline_seconds,
                10,
            ),
            replica_id: cli.replica_id.unwrap_or_else(default_replica_id),
        };
        if ledger.period < Duration::from_secs(1) {
            errors.push("--ledger-period must be at least 1s".into());
        }
        // A Lease counts whole seconds.
        for (flag, d) in [
            ("lease-duration", ledger.lease_duration),
            ("lease-renew-deadline", ledger.lease_renew_deadline),
        ] {
            if d.subsec_nanos() != 0 || d.is_zero() {
                errors.push(format!(
                    "--{flag} must be a whole number of seconds, at least 1s"
                ));
            }
        }
        if ledger.lease_renew_deadline >= ledger.lease_duration {
            errors.push(format!(
                "--lease-renew-deadline ({:?}) must be shorter than --lease-duration ({:?}), or \
                 two replicas could both act as leader",
                ledger.lease_renew_deadline, ledger.lease_duration
            ));
        }
        let stamped = StampedKinds::with(
            file.stamped_kinds
                .iter()
                .filter_map(|k| k.parse().map_err(|e| errors.push(e)).ok()),
        );
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Settings {
            listen,
            tls_cert_file: tls_cert_file.unwrap_or_default(),
            tls_key_file: tls_key_file.unwrap_or_default(),
            stamp_key_file: stamp_key_file.unwrap_or_default(),
            kubeconfig: cli.kubeconfig.or(file.kubeconfig),
            kube_context: cli.kube_context.or(file.kube_context),
            modes,
            namespace_selector: cli
                .namespace_selector
                .or(file.namespace_selector)
                .unwrap_or_default(),
            kerberos,
            nameservices,
            kms,
            directory,
            mapping: file.user_mapping.unwrap_or_default(),
            superusers,
            audit_log: cli.audit_log.or(file.audit_log),
            pod_limit,
            issuer,
            hadoop_timeout,
            kube_timeout,
            log_format: cli.log_format,
            log: cli.log,
            ledger,
            stamped,
            webhook_configuration: file
                .webhook_configuration
                .unwrap_or_else(|| WEBHOOK_CONFIGURATION.into()),
            mutating_webhook: file
                .mutating_webhook
                .unwrap_or_else(|| MUTATING_WEBHOOK.into()),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

fn parse_modes(errors: &mut Vec<String>, modes: Option<Vec<String>>) -> Modes {
    // Addresses are spoofable by a pod that keeps NET_RAW and reusable after a pod goes, so the
    // address mode (Kube2Hadoop-compatible) is opt-in.
    let Some(list) = modes else {
        return Modes {
            sa_token: true,
            ip: false,
        };
    };
    let mut m = Modes {
        sa_token: false,
        ip: false,
    };
    for mode in list.iter().filter(|s| !s.is_empty()) {
        match mode.as_str() {
            "sa-token" => m.sa_token = true,
            "ip" => m.ip = true,
            other => errors.push(format!(
                "identity mode {other:?} is unknown: use sa-token, ip, or both"
            )),
        }
    }
    if !m.sa_token && !m.ip {
        errors.push("--identity-modes names no mode: use sa-token, ip, or both".into());
    }
    m
}

fn check_readable(errors: &mut Vec<String>, flag: &str, path: &Path) {
    if let Err(e) = std::fs::File::open(path) {
        errors.push(format!("{flag} {}: cannot read it: {e}", path.display()));
    }
}

/// `kube2hadoop/host@REALM` → `kube2hadoop`, Hadoop's default auth_to_local for the renewer.
fn short_name(principal: &str) -> String {
    principal
        .split(['/', '@'])
        .next()
        .unwrap_or(principal)
        .to_owned()
}

fn directory_settings(
    errors: &mut Vec<String>,
    cli: &Cli,
    file: Option<FileLdap>,
    users_file: Option<PathBuf>,
    timeout: Duration,
) -> DirectorySettings {
    let file = file.unwrap_or_default();
    let Some(url) = cli.ldap_url.clone().or(file.url) else {
        let path = cli.users_file.clone().or(users_file);
        if let Some(p) = &path {
            check_readable(errors, "--users-file", p);
        }
        return DirectorySettings::Static(path);
    };
    let bind_dn = required(
        errors,
        "--ldap-bind-dn (with --ldap-url)",
        cli.ldap_bind_dn.clone().or(file.bind_dn),
    );
    let password_file = required(
        errors,
        "--ldap-bind-password-file (with --ldap-url)",
        cli.ldap_bind_password_file
            .clone()
            .or(file.bind_password_file),
    );
    let bind_password = password_file.and_then(|p| match std::fs::read_to_string(&p) {
        // An empty password makes many servers treat the bind as anonymous (RFC 4513 §5.1.2),
        // which would quietly check users with anonymous rights: refuse it.
        Ok(text) if text.lines().next().unwrap_or_default().is_empty() => {
            errors.push(format!(
                "--ldap-bind-password-file {}: the first line is empty; put the bind password \
                 there (an empty password would bind anonymously)",
                p.display()
            ));
            None
        }
        Ok(text) => Some(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_owned(),
        )),
        Err(e) => {
            errors.push(format!(
                "--ldap-bind-password-file {}: cannot read it: {e}",
                p.display()
            ));
            None
        }
    });
    let base = required(
        errors,
        "--ldap-base-dn (with --ldap-url)",
        cli.ldap_base_dn.clone().or(file.base_dn),
    );
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        errors.push(format!(
            "--ldap-url {url:?} must start with ldap:// or ldaps://"
        ));
    }
    let user_filter = cli
        .ldap_user_filter
        .clone()
        .or(file.user_filter)
        .unwrap_or_else(|| DEFAULT_USER_FILTER.into());
    if !user_filter.contains("{user}") {
        errors.push(format!(
            "the LDAP user filter {user_filter:?} must contain {{user}}"
        ));
    }
    let ca_file = cli.ldap_ca_file.clone().or(file.ca_file);
    if let Some(p) = &ca_file {
        check_readable(errors, "--ldap-ca-file", p);
    }
    let group_base = cli
        .ldap_group_base_dn
        .clone()
        .or(file.group_base_dn)
        .or_else(|| base.clone())
        .unwrap_or_default();
    DirectorySettings::Ldap(Box::new(LdapConfig {
        url,
        bind_dn: bind_dn.unwrap_or_default(),
        bind_password: bind_password.unwrap_or_default(),
        user_base: base.unwrap_or_default(),
        group_base,
        user_filter,
        name_attribute: file
            .name_attribute
            .unwrap_or_else(|| DEFAULT_NAME_ATTRIBUTE.into()),
        group_filter: cli
            .ldap_group_filter
            .clone()
            .or(file.group_filter)
            .unwrap_or_else(|| DEFAULT_GROUP_FILTER.into()),
        allowed_group: cli
            .ldap_allowed_group
            .clone()
            .or(file.allowed_group)
            .unwrap_or_else(|| "hadoop-users".into()),
        run_as_filter: cli
            .ldap_run_as_filter
            .clone()
            .or(file.run_as_filter)
            .unwrap_or_else(|| DEFAULT_RUN_AS_FILTER.into()),
        starttls: cli.ldap_starttls || file.starttls.unwrap_or(false),
        ca_file,
        timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["token-service", "--stamp-key-file", "s"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("flags parse")
    }

    fn file(yaml: &str) -> FileConfig {
        serde_yaml_ng::from_str(yaml).expect("yaml")
    }

    const SERVICES: &str = "nameservices:\n  - name: ns1\n    namenodes:\n      - {http: \"http://127.0.0.1:9870\", rpc: \"127.0.0.1:8020\"}\n";

    #[test]
    fn a_minimal_configuration_takes_the_defaults() {
        let s = Settings::resolve(
            cli(&["--tls-cert-file", "c", "--tls-key-file", "k"]),
            file(SERVICES),
        )
        .expect("valid");
        assert_eq!(s.listen, "0.0.0.0:8443".parse().expect("addr"));
        // The address mode is opt-in: addresses can be spoofed and reused.
        assert_eq!(
            s.modes,
            Modes {
                sa_token: true,
                ip: false
            }
        );
        assert!(matches!(s.directory, DirectorySettings::Static(None)));
        assert!(s.superusers.contains("hdfs"));
        assert_eq!(s.nameservices[0].renewer, "kube2hadoop");
        assert_eq!(
            s.pod_limit,
            Limit {
                per_minute: 30,
                burst: 5
            }
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let s = Settings::resolve(
            cli(&[
                "--tls-cert-file", "c", "--tls-key-file", "k", "--listen", "127.0.0.1:9443",
                "--identity-modes", "sa-token", "--superusers", "hdfs,svc-root",
            ]),
            file(&format!(
                "{SERVICES}listen: 0.0.0.0:1\nidentityModes: [ip]\nrenewer: k2h\nuserMapping:\n  lowercase: true\n"
            )),
        )
        .expect("valid");
        assert_eq!(s.listen.port(), 9443);
        assert_eq!(
            s.modes,
            Modes {
                sa_token: true,
                ip: false
            }
        );
        assert_eq!(s.superusers.len(), 2);
        assert_eq!(s.nameservices[0].renewer, "k2h");
        assert!(s.mapping.lowercase);
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let Err(e) = Settings::resolve(
            cli(&[
                "--listen",
                "nowhere",
                "--identity-modes",
                "magic",
                "--pod-rate",
                "lots",
                "--principal",
                "kube2hadoop/h@R",
                "--ldap-url",
                "http://x",
            ]),
            FileConfig::default(),
        ) else {
            panic!("invalid configuration accepted");
        };
        let text = e.to_string();
        for needle in [
            "--listen \"nowhere\"",
            "--tls-cert-file",
            "--tls-key-file",
            "\"magic\"",
            "--pod-rate \"lots\"",
            "--principal and --keytab",
            "no Hadoop service",
            "--ldap-bind-dn",
            "--ldap-bind-password-file",
            "--ldap-base-dn",
            "ldap:// or ldaps://",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    /// Settings with LDAP whose bind password file holds `password_file_text`.
    fn with_ldap_password(password_file_text: &str) -> Result<Settings, ConfigErrors> {
        let dir = tempfile::tempdir().expect("tmp");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, password_file_text).expect("write");
        Settings::resolve(
            cli(&[
                "--tls-cert-file",
                "c",
                "--tls-key-file",
                "k",
                "--ldap-url",
                "ldap://127.0.0.1:3890",
                "--ldap-bind-dn",
                "cn=admin,dc=k2h",
                "--ldap-bind-password-file",
                pw.to_str().expect("utf8"),
                "--ldap-base-dn",
                "dc=k2h",
            ]),
            file(SERVICES),
        )
    }

    #[test]
    fn ldap_settings_read_the_password_file_and_hide_it() {
        let s = with_ldap_password("s3cret\n").expect("valid");
        let DirectorySettings::Ldap(ldap) = s.directory else {
            panic!("expected LDAP");
        };
        assert_eq!(ldap.bind_password.as_str(), "s3cret");
        assert_eq!(ldap.group_base, "dc=k2h");
        assert!(!format!("{ldap:?}").contains("s3cret"));
    }

    #[test]
    fn an_empty_ldap_password_is_refused() {
        let e = with_ldap_password("\n")
            .err()
            .expect("an empty password must be refused");
        assert!(e.to_string().contains("bind anonymously"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../config.example.yaml");
        let file: FileConfig = serde_yaml_ng::from_str(text).expect("example parses");
        assert_eq!(file.nameservices[0].namenodes.len(), 2);
        assert_eq!(file.kms.len(), 1);
        assert!(file.ldap.is_some() && file.user_mapping.is_some());
        assert_eq!(file.stamped_kinds.len(), 2);
        let kinds: Result<Vec<_>, _> = file.stamped_kinds.iter().map(KindSpec::parse).collect();
        assert_eq!(
            kinds.expect("kinds")[1],
            ("ray.io".into(), "RayCluster".into())
        );
    }

    #[test]
    fn ledger_settings_default_and_a_deadline_past_the_lease_is_refused() {
        let s = Settings::resolve(
            cli(&["--tls-cert-file", "c", "--tls-key-file", "k"]),
            file(SERVICES),
        )
        .expect("valid");
        assert_eq!(s.ledger.namespace, "kube2hadoop");
        assert_eq!(s.ledger.period, Duration::from_secs(30));
        assert!(s.ledger.lease_renew_deadline < s.ledger.lease_duration);
        let Err(e) = Settings::resolve(
            cli(&[
                "--tls-cert-file",
                "c",
                "--tls-key-file",
                "k",
                "--lease-duration",
                "5",
                "--lease-renew-deadline",
                "5",
            ]),
            file(SERVICES),
        ) else {
            panic!("deadline equal to the lease accepted");
        };
        assert!(e.to_string().contains("--lease-renew-deadline"), "{e}");
    }

    /// Durations take the shared syntax on flags (bare numbers stay seconds) and whole seconds
    /// in the file; every bad one is reported at once.
    #[test]
    fn durations_take_suffixes_and_bare_seconds_and_report_every_bad_one() {
        let base = ["--tls-cert-file", "c", "--tls-key-file", "k"];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            Settings::resolve(cli(&args), file(SERVICES))
        };
        let s = with(&[
            "--hadoop-timeout",
            "1m30s",
            "--kube-timeout",
            "7",
            "--ldap-timeout",
            "1500ms",
            "--ledger-period",
            "2m",
        ])
        .expect("valid");
        assert_eq!(s.hadoop_timeout, Duration::from_secs(90));
        assert_eq!(s.kube_timeout, Duration::from_secs(7));
        assert_eq!(s.ledger.period, Duration::from_secs(120));
        let s = Settings::resolve(
            cli(&base),
            file(&format!("{SERVICES}hadoopTimeoutSeconds: 12\n")),
        )
        .expect("file seconds");
        assert_eq!(s.hadoop_timeout, Duration::from_secs(12));
        let Err(e) = with(&[
            "--hadoop-timeout",
            "30 s",
            "--ledger-period",
            "5x",
            "--lease-duration",
            "1500ms",
        ]) else {
            panic!("bad durations accepted");
        };
        let text = e.to_string();
        for want in [
            "--hadoop-timeout: \"30 s\" is not a duration",
            "--ledger-period: \"5x\" is not a duration",
            "--lease-duration must be a whole number of seconds",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    #[test]
    fn stamped_kinds_and_the_webhook_name_are_read_from_the_file() {
        let s = Settings::resolve(
            cli(&["--tls-cert-file", "c", "--tls-key-file", "k"]),
            file(SERVICES),
        )
        .expect("valid");
        assert_eq!(s.webhook_configuration, "kube2hadoop-iddecorator");
        assert_eq!(s.mutating_webhook, "mutate.iddecorator.kube2hadoop.io");
        assert!(s.stamped.contains("apps/v1", "Deployment"));
        assert!(!s.stamped.contains("ray.io/v1", "RayJob"));
        let s = Settings::resolve(
            cli(&["--tls-cert-file", "c", "--tls-key-file", "k"]),
            file(&format!(
                "{SERVICES}webhookConfiguration: mine\nstampedKinds:\n- ray.io/RayJob\n\
                 - {{group: ray.io, kind: RayCluster, templatePaths: [spec.x]}}\n- Widget\n"
            )),
        )
        .expect("valid");
        assert_eq!(s.webhook_configuration, "mine");
        assert!(s.stamped.contains("ray.io/v1", "RayJob"));
        assert!(s.stamped.contains("ray.io/v1alpha1", "RayCluster"));
        assert!(s.stamped.contains("v1", "Widget"));
        let Err(e) = Settings::resolve(
            cli(&["--tls-cert-file", "c", "--tls-key-file", "k"]),
            file(&format!(
                "{SERVICES}stampedKinds: [\"ray.io/\", \"a b/C\"]\n"
            )),
        ) else {
            panic!("bad kinds accepted");
        };
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(serde_yaml_ng::from_str::<FileConfig>("lisen: x\n").is_err());
    }
}
