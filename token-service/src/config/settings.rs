//! The checked result: what the rest of the service is built from.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use k2h_http::LogFormat;

use crate::directory::cache::CacheConfig;
use crate::directory::ldap::LdapConfig;
use crate::hadoop::hive::HiveConfig;
use crate::hadoop::kms::KmsConfig;
use crate::hadoop::spnego::KerberosConfig;
use crate::hadoop::webhdfs::NameServiceConfig;
use crate::hadoop::yarn::YarnConfig;
use crate::issuer::IssuerConfig;
use crate::mapping::MappingRules;
use crate::ratelimit::Limit;
use crate::review_cache::ReviewCacheConfig;
use crate::server::Modes;
use crate::services::ServicesPolicy;
use crate::workload::StampedKinds;

pub enum DirectorySettings {
    Ldap {
        ldap: Box<LdapConfig>,
        /// Of the directory's answers.
        cache: CacheConfig,
    },
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
    pub yarn: Vec<YarnConfig>,
    pub hive: Vec<HiveConfig>,
    pub directory: DirectorySettings,
    pub mapping: MappingRules,
    pub superusers: BTreeSet<String>,
    /// Which services are configured, and what a pod without a choice gets.
    pub services: ServicesPolicy,
    pub audit_log: Option<PathBuf>,
    pub pod_limit: Limit,
    pub issuer: IssuerConfig,
    pub hadoop_timeout: Duration,
    pub kube_timeout: Duration,
    /// The TokenReview cache (`ttl` zero: off).
    pub review_cache: ReviewCacheConfig,
    /// Period of reading the API server's signing keys (zero: no local verification).
    pub token_keys_refresh: Duration,
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
