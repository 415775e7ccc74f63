//! The `--config` YAML file: every flag's value under its camelCase name, plus what does not
//! fit on a command line (Hadoop services, mapping rules, LDAP filters). Durations are whole
//! seconds here (`...Seconds` keys). Unknown keys are refused, so a typo is not silently a
//! default.

use std::fmt;
use std::path::PathBuf;

use crate::mapping::MappingRules;

use super::error::ConfigError;

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
    pub sa_token_origin: Option<String>,
    pub namespace_selector: Option<String>,
    pub kerberos: Option<FileKerberos>,
    pub renewer: Option<String>,
    pub nameservices: Vec<FileNameService>,
    pub kms: Vec<FileKms>,
    /// YARN clusters whose ResourceManager issues `RM_DELEGATION_TOKEN`s.
    pub yarn: Vec<FileYarn>,
    /// Hive metastores (or groups sharing a token store) issuing `HIVE_DELEGATION_TOKEN`s.
    pub hive: Vec<FileHive>,
    /// What a pod without `kube2hadoop.io/services` gets [default: every configured service].
    pub default_services: Option<Vec<String>>,
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
    pub token_review_cache_ttl_seconds: Option<u64>,
    pub token_review_cache_size: Option<usize>,
    pub sa_token_keys_refresh_seconds: Option<u64>,
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
    pub fn parse(&self) -> Result<(String, String), ConfigError> {
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
            return Err(ConfigError::StampedKind {
                entry: self.to_string(),
            });
        }
        Ok((group.to_owned(), kind.to_owned()))
    }
}

/// As the entry was written, so the message points at the line to fix.
impl fmt::Display for KindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindSpec::Text(t) => write!(f, "{t:?}"),
            KindSpec::Object { group, kind, .. } => {
                write!(f, "{{group: {group:?}, kind: {kind:?}}}")
            }
        }
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

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileYarn {
    pub name: String,
    /// One, or the HA group in `yarn.resourcemanager.ha.rm-ids` order.
    pub resource_managers: Vec<FileResourceManager>,
    #[serde(default)]
    pub token_service: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileHive {
    pub name: String,
    /// `hive.metastore.uris`, one `thrift://host:port` per entry, tried in order.
    pub metastores: Vec<String>,
    /// `hive.metastore.kerberos.principal` (`_HOST` stands for each metastore's host).
    #[serde(default)]
    pub principal: Option<String>,
    /// The clients' `hive.metastore.token.signature` [default: "", Hive's and Spark's].
    #[serde(default)]
    pub token_signature: String,
    /// The weakest SASL protection accepted: authentication, integrity or privacy [default:
    /// authentication]. The strongest the metastore offers is always used.
    #[serde(default)]
    pub min_protection: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileResourceManager {
    /// `yarn.resourcemanager.webapp.address` (or `.https.address`) as a URL.
    pub http: String,
    /// `yarn.resourcemanager.address`.
    pub rpc: String,
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
    /// Connections kept open [default: 4].
    pub pool_size: Option<usize>,
    /// How long an answer is reused; 0 disables [default: 30].
    pub cache_ttl_seconds: Option<u64>,
    /// Answers cached at most; 0 disables [default: 10000].
    pub cache_max_entries: Option<usize>,
}
