//! What can be wrong with the settings, worded for whoever edits the Deployment or the
//! `--config` file: each error names the flag (or file) and the bad value or what to do.
//! Secrets are never part of a message: a password file is named, not shown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use k2h_contract::duration::DurationError;

/// One bad setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read --config {path}: {source}")]
    ConfigFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--config {path}: {source}")]
    ConfigFileInvalid {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// `hint` says where else the value can be given, or when it is needed.
    #[error("--{flag} ({hint}) is required")]
    Missing {
        flag: &'static str,
        hint: &'static str,
    },
    #[error("--{flag} {value:?} is not a valid number")]
    NotANumber { flag: &'static str, value: String },
    #[error("--{flag}: {source}")]
    NotADuration {
        flag: &'static str,
        #[source]
        source: DurationError,
    },
    #[error("--listen {value:?} is not an address:port: {source}")]
    Listen {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    /// A file that must exist at startup cannot be opened; `reason` is the system's.
    #[error("--{flag} {path}: cannot read it: {reason}")]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("identity mode {value:?} is unknown: use sa-token, ip, or both")]
    UnknownIdentityMode { value: String },
    #[error("--identity-modes names no mode: use sa-token, ip, or both")]
    NoIdentityMode,
    #[error("--sa-token-origin {value:?} is unknown: use pod (the default) or any")]
    UnknownTokenOrigin { value: String },
    #[error("--principal and --keytab go together: set both or neither")]
    HalfKerberos,
    #[error(
        "no Hadoop service configured: list `nameservices`, `kms`, `yarn` or `hive` in the --config \
         file"
    )]
    NoHadoopService,
    #[error("nameservice {nameservice}: no namenodes listed")]
    NoNameNodes { nameservice: String },
    #[error("defaultServices (--default-services) {value:?} {reason}")]
    DefaultServices { value: String, reason: String },
    #[error(
        "defaultServices (--default-services) names {names}, which no configured provider \
         issues; configure it \
         (nameservices, kms, yarn, hive) or leave it out of the default"
    )]
    DefaultServiceMissing { names: String },
    #[error("yarn {cluster}: no resourceManagers listed")]
    NoResourceManagers { cluster: String },
    #[error(
        "--{flag} {value:?} must be between 1 s and 1 h: each call to a server waits at most this long"
    )]
    TimeoutRange { flag: &'static str, value: Duration },
    #[error(
        "hive {name}: minProtection {value:?} is unknown: use authentication, integrity or privacy"
    )]
    Protection { name: String, value: String },
    #[error("hive {name}: no metastores listed")]
    NoMetastores { name: String },
    #[error(
        "hive {name}: set `principal` to the metastores' Kerberos principal \
         (hive.metastore.kerberos.principal, e.g. hive/_HOST@EXAMPLE.COM)"
    )]
    NoMetastorePrincipal { name: String },
    #[error(
        "hive {first} and {second} have the same tokenSignature {signature:?}: clients pick a \
         metastore token by it, so each group needs its own"
    )]
    SignatureClash {
        first: String,
        second: String,
        signature: String,
    },
    #[error("--ldap-url {url:?} must start with ldap:// or ldaps://")]
    LdapScheme { url: String },
    #[error("the LDAP user filter {filter:?} must contain {{user}}")]
    LdapUserFilter { filter: String },
    #[error(
        "--ldap-bind-password-file {path}: the first line is empty; put the bind password \
         there (an empty password would bind anonymously)"
    )]
    EmptyLdapPassword { path: PathBuf },
    #[error("--ldap-pool-size must be at least 1 (not {value})")]
    LdapPoolSize { value: usize },
    #[error(
        "--ldap-cache-ttl ({value:?}) must be at most {max:?}: a user disabled in the directory would keep being served that long"
    )]
    LdapCacheTtl { value: Duration, max: Duration },
    #[error("--ledger-period ({value:?}) must be at least 1s")]
    LedgerPeriod { value: Duration },
    #[error("--{flag} must be a whole number of seconds, at least 1s (not {value:?})")]
    LeaseSeconds { flag: &'static str, value: Duration },
    #[error(
        "--lease-renew-deadline ({deadline:?}) must be shorter than --lease-duration \
         ({lease:?}), or two replicas could both act as leader"
    )]
    RenewDeadline { deadline: Duration, lease: Duration },
    #[error(
        "--token-review-cache-ttl ({value:?}) must be at most {max:?}: a cached review stands \
         in for a recent one (0 turns the cache off)"
    )]
    ReviewCacheTtl { value: Duration, max: Duration },
    #[error(
        "--token-review-cache-size {value} must be between 1 and {max} (turn the cache off \
         with --token-review-cache-ttl 0)"
    )]
    ReviewCacheSize { value: usize, max: usize },
    #[error(
        "--sa-token-keys-refresh {}s must be 0 (off) or between 10s and 300s: a key retired at \
         the API server vouches for tokens here until the next read",
        .value.as_secs()
    )]
    TokenKeysRefresh { value: Duration },
    #[error("stampedKinds entry {entry} is not `group/Kind` (e.g. ray.io/RayJob)")]
    StampedKind { entry: String },
}

/// Every problem found, so one start attempt shows them all.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:{}", Lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

/// One problem per line.
struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "\n  - {e}"))
    }
}
