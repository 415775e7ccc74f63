//! The command line. Every value is optional here, because the `--config` file may give it;
//! numbers and durations are taken as text and checked with the rest, so one start attempt
//! shows every bad value.

use std::path::PathBuf;

use clap::Parser;
use k2h_http::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "token-service",
    version,
    about = "Issues Hadoop delegation tokens to Kubernetes pods for the user who submitted them"
)]
pub struct Cli {
    /// YAML file with the Hadoop services and other structured settings; it can also give most
    /// flags' values (see config.example.yaml). A flag wins over the file.
    #[arg(long, env = "TOKEN_SERVICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to serve HTTPS on [default: 0.0.0.0:8443].
    #[arg(long, env = "TOKEN_SERVICE_LISTEN")]
    pub listen: Option<String>,
    /// PEM certificate chain; re-read when it changes. Required.
    #[arg(long, env = "TOKEN_SERVICE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate. Required.
    #[arg(long, env = "TOKEN_SERVICE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The keys that verify `kube2hadoop.io/stamp`: iddecorator's stamp key file (one base64
    /// key per line; any of them verifies). Read at startup. Required.
    #[arg(long, env = "TOKEN_SERVICE_STAMP_KEY_FILE")]
    pub stamp_key_file: Option<PathBuf>,
    /// Kubeconfig to use; without it: in-cluster, else $KUBECONFIG.
    #[arg(long, env = "TOKEN_SERVICE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of that kubeconfig [default: its current context].
    #[arg(long, env = "TOKEN_SERVICE_KUBE_CONTEXT")]
    pub kube_context: Option<String>,
    /// Accepted proofs of identity: `sa-token`, `ip`, or both comma-separated [default: sa-token].
    /// `ip` (Kube2Hadoop-compatible) needs a network that stops pods spoofing addresses.
    #[arg(long, env = "TOKEN_SERVICE_IDENTITY_MODES")]
    pub identity_modes: Option<String>,
    /// Where a service-account token is accepted from: `pod` (only from an address of the pod
    /// it is bound to, so a stolen token is worth nothing elsewhere) or `any` (for networks
    /// that translate pod addresses on the way to the service) [default: pod].
    #[arg(long, env = "TOKEN_SERVICE_SA_TOKEN_ORIGIN")]
    pub sa_token_origin: Option<String>,
    /// Label selector of the namespaces served (empty: all).
    #[arg(long, env = "TOKEN_SERVICE_NAMESPACE_SELECTOR")]
    pub namespace_selector: Option<String>,
    /// Kerberos principal of the service, e.g. `kube2hadoop/host@REALM` (none: no SPNEGO).
    /// Goes with --keytab.
    #[arg(long, env = "TOKEN_SERVICE_PRINCIPAL")]
    pub principal: Option<String>,
    /// Keytab holding that principal's keys; goes with --principal. Must be readable at
    /// startup.
    #[arg(long, env = "TOKEN_SERVICE_KEYTAB")]
    pub keytab: Option<PathBuf>,
    /// krb5.conf naming the realm's KDCs [default: the Kerberos library's, e.g.
    /// /etc/krb5.conf]. Must be readable at startup when given.
    #[arg(long, env = "TOKEN_SERVICE_KRB5_CONF")]
    pub krb5_conf: Option<PathBuf>,
    /// Renewer written into tokens [default: the principal's short name, else kube2hadoop].
    #[arg(long, env = "TOKEN_SERVICE_RENEWER")]
    pub renewer: Option<String>,
    /// LDAP server to check users and groups against, `ldap://` or `ldaps://` (none: the
    /// static users file).
    #[arg(long, env = "TOKEN_SERVICE_LDAP_URL")]
    pub ldap_url: Option<String>,
    /// DN the service binds as; required with --ldap-url.
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BIND_DN")]
    pub ldap_bind_dn: Option<String>,
    /// File holding the bind password (its first line, which must not be empty); required with
    /// --ldap-url.
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BIND_PASSWORD_FILE")]
    pub ldap_bind_password_file: Option<PathBuf>,
    /// Base DN for users; also for groups unless --ldap-group-base-dn is given. Required with
    /// --ldap-url.
    #[arg(long, env = "TOKEN_SERVICE_LDAP_BASE_DN")]
    pub ldap_base_dn: Option<String>,
    /// Base DN for groups [default: --ldap-base-dn].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_GROUP_BASE_DN")]
    pub ldap_group_base_dn: Option<String>,
    /// Filter finding a user's entry; `{user}` is replaced and must appear [default:
    /// (&(objectClass=posixAccount)(uid={user}))].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_USER_FILTER")]
    pub ldap_user_filter: Option<String>,
    /// Filter matching when the user is in the allowed group; `{user}` and `{group}` are
    /// replaced [default: (&(objectClass=posixGroup)(cn={group})(memberUid={user}))].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_GROUP_FILTER")]
    pub ldap_group_filter: Option<String>,
    /// Filter matching when the user may run as another account (`doas`); `{user}` and
    /// `{account}` are replaced [default:
    /// (&(objectClass=posixGroup)(cn={account})(memberUid={user}))].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_RUN_AS_FILTER")]
    pub ldap_run_as_filter: Option<String>,
    /// Group a user must belong to [default: hadoop-users].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_ALLOWED_GROUP")]
    pub ldap_allowed_group: Option<String>,
    /// Upgrade `ldap://` connections with StartTLS [default: off].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_STARTTLS")]
    pub ldap_starttls: bool,
    /// PEM bundle to trust for `ldaps://` or StartTLS [default: the system roots]. Must be
    /// readable at startup when given.
    #[arg(long, env = "TOKEN_SERVICE_LDAP_CA_FILE")]
    pub ldap_ca_file: Option<PathBuf>,
    /// Static users/groups YAML, used when no LDAP URL is set [default: embedded demo file].
    #[arg(long, env = "TOKEN_SERVICE_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// Hadoop users never issued tokens, comma-separated [default:
    /// hdfs,yarn,mapred,hive,hbase,root].
    #[arg(long, env = "TOKEN_SERVICE_SUPERUSERS")]
    pub superusers: Option<String>,
    /// Services a pod without kube2hadoop.io/services gets tokens from, comma-separated
    /// (hdfs, hive, kms, yarn) [default: every configured service].
    #[arg(long, env = "TOKEN_SERVICE_DEFAULT_SERVICES")]
    pub default_services: Option<String>,
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
    /// How long a successful TokenReview of a pod's bound token is reused instead of asking the
    /// API server again (`10s`, `1m`; at most 1m; `0` turns the cache off); never past the
    /// token's own expiry, and only while the pod and its service account are seen unchanged
    /// [default: 10s, as the API server's own token cache].
    #[arg(long, env = "TOKEN_SERVICE_TOKEN_REVIEW_CACHE_TTL")]
    pub token_review_cache_ttl: Option<String>,
    /// TokenReview results kept at most; the oldest goes first (1 to 1000000) [default: 10000].
    #[arg(long, env = "TOKEN_SERVICE_TOKEN_REVIEW_CACHE_SIZE")]
    pub token_review_cache_size: Option<String>,
    /// How often the API server's service-account signing keys are read again
    /// (`/openid/v1/jwks`; 10s to 5m). A pod-bound token they vouch for needs no
    /// TokenReview; a key retired at the API server stops vouching at the next read (within
    /// this period and 1m more if reads fail).
    /// `0` turns local verification off: every new token is reviewed [default: 60s].
    #[arg(long, env = "TOKEN_SERVICE_SA_TOKEN_KEYS_REFRESH")]
    pub sa_token_keys_refresh: Option<String>,
    /// Timeout of each LDAP operation (`5s`; a bare number is seconds) [default: 5s].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_TIMEOUT")]
    pub ldap_timeout: Option<String>,
    /// LDAP connections kept open and shared by all checks, at least 1 [default: 4].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_POOL_SIZE")]
    pub ldap_pool_size: Option<String>,
    /// How long a directory answer (a user allowed or not, a run-as allowed or not) is reused
    /// (`30s`; 0 disables; at most 5m): a user disabled in LDAP still gets new workloads served
    /// this long at most. Errors are never cached, and a failed check or lost connection
    /// empties the cache [default: 30s].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_CACHE_TTL")]
    pub ldap_cache_ttl: Option<String>,
    /// Directory answers cached at most; the oldest go first (0 disables) [default: 10000].
    #[arg(long, env = "TOKEN_SERVICE_LDAP_CACHE_MAX_ENTRIES")]
    pub ldap_cache_max_entries: Option<String>,
    /// Log line format.
    #[arg(long, env = "TOKEN_SERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, e.g. `info` or `debug,hyper=info` [default: $RUST_LOG,
    /// else info].
    #[arg(long, env = "TOKEN_SERVICE_LOG")]
    pub log: Option<String>,
    /// Namespace of the ledger Secrets and the leader Lease [default: kube2hadoop].
    #[arg(long, env = "TOKEN_SERVICE_LEDGER_NAMESPACE")]
    pub ledger_namespace: Option<String>,
    /// Time between ledger passes (renew, re-issue, cancel; `30s`, `1m`; at least 1s)
    /// [default: 30s].
    #[arg(long, env = "TOKEN_SERVICE_LEDGER_PERIOD")]
    pub ledger_period: Option<String>,
    /// How long the leader Lease lasts unrenewed (`15s`; whole seconds) [default: 15s].
    #[arg(long, env = "TOKEN_SERVICE_LEASE_DURATION")]
    pub lease_duration: Option<String>,
    /// How long a leader that cannot renew its Lease keeps acting (`10s`; whole seconds,
    /// shorter than --lease-duration) [default: 10s].
    #[arg(long, env = "TOKEN_SERVICE_LEASE_RENEW_DEADLINE")]
    pub lease_renew_deadline: Option<String>,
    /// This replica's name in the Lease [default: $POD_NAME or $HOSTNAME, plus the process id].
    #[arg(long, env = "TOKEN_SERVICE_REPLICA_ID")]
    pub replica_id: Option<String>,
}
