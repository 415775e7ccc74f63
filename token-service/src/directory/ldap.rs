//! The directory in LDAP: a user must exist and be in the allowed group; a headless account may
//! be used by members of its group. Checks run on a few pooled connections, bound as the
//! service (`pool.rs`); every answer is read from the directory at the time of the check (the
//! short-lived reuse of answers is `cached.rs`, a layer above).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use zeroize::Zeroizing;

use crate::metrics::DirectoryMetrics;

use super::pool::{Connection, Pool};
use super::{Directory, DirectoryError, Failures, RunAsStatus, UserStatus};

pub const DEFAULT_USER_FILTER: &str = "(&(objectClass=posixAccount)(uid={user}))";
pub const DEFAULT_GROUP_FILTER: &str = "(&(objectClass=posixGroup)(cn={group})(memberUid={user}))";
pub const DEFAULT_RUN_AS_FILTER: &str =
    "(&(objectClass=posixGroup)(cn={account})(memberUid={user}))";
/// The attribute of a user entry that holds its account name (what the default filter matches).
pub const DEFAULT_NAME_ATTRIBUTE: &str = "uid";

#[derive(Clone)]
pub struct LdapConfig {
    pub url: String,
    pub bind_dn: String,
    /// Read from the password file; never logged.
    pub bind_password: Zeroizing<String>,
    pub user_base: String,
    pub group_base: String,
    /// `{user}` is replaced by the escaped user name.
    pub user_filter: String,
    /// The attribute of the entry the user filter finds that holds the account name as stored
    /// (`uid`): the canonical name group checks, the deny-list and `doas` use.
    pub name_attribute: String,
    /// `{user}` and `{group}` (the allowed group) are replaced.
    pub group_filter: String,
    pub allowed_group: String,
    /// `{user}` and `{account}` are replaced; a match means the user may run as the account.
    pub run_as_filter: String,
    pub starttls: bool,
    /// PEM bundle to trust for `ldaps://` or StartTLS instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Of each operation: connecting, binding, each search.
    pub timeout: Duration,
    /// Connections kept open at most ([`super::pool::DEFAULT_POOL_SIZE`]).
    pub pool_size: usize,
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("user_base", &self.user_base)
            .field("group_base", &self.group_base)
            .field("allowed_group", &self.allowed_group)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl LdapConfig {
    fn unavailable(&self, e: ldap3::LdapError) -> DirectoryError {
        match e {
            ldap3::LdapError::Timeout { .. } => DirectoryError::Timeout {
                url: self.url.clone(),
                secs: self.timeout.as_secs(),
            },
            other => DirectoryError::Unavailable {
                url: self.url.clone(),
                detail: other.to_string(),
            },
        }
    }
}

pub struct Ldap {
    cfg: Arc<LdapConfig>,
    pool: Pool<Pooled>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("cannot read the LDAP CA file {path}: {detail}")]
    Ca { path: String, detail: String },
}

/// One bound connection: ldap3's handle (clones share the connection) and whether the pool
/// has let go of it.
#[derive(Clone)]
struct Pooled {
    ldap: ldap3::Ldap,
    retired: Arc<AtomicBool>,
}

impl Connection for Pooled {
    fn usable(&mut self) -> bool {
        !self.retired.load(Ordering::SeqCst) && !self.ldap.is_closed()
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }
}

/// Opens connections for the pool.
struct Connector {
    cfg: Arc<LdapConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    failures: Failures,
    metrics: DirectoryMetrics,
}

impl Connector {
    async fn connect(&self) -> Result<Pooled, DirectoryError> {
        let opened = self.open().await;
        match &opened {
            Ok(_) => self.metrics.connections_opened.inc(),
            Err(_) => self.metrics.connect_failures.inc(),
        };
        opened
    }

    async fn open(&self) -> Result<Pooled, DirectoryError> {
        let cfg = &self.cfg;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout)
            .set_starttls(cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
            .await
            .map_err(|e| cfg.unavailable(e))?;
        let pooled = Pooled {
            ldap,
            retired: Arc::default(),
        };
        self.drive(conn, Arc::clone(&pooled.retired));
        let mut ldap = pooled.ldap.clone();
        let bound = async {
            ldap.with_timeout(cfg.timeout);
            ldap.simple_bind(&cfg.bind_dn, &cfg.bind_password)
                .await
                .map_err(|e| cfg.unavailable(e))?
                .success()
                .map_err(|e| DirectoryError::Bind {
                    dn: cfg.bind_dn.clone(),
                    detail: e.to_string(),
                })
        }
        .await;
        match bound {
            Ok(_) => Ok(pooled),
            Err(e) => {
                // Never pooled: its end is not a lost connection.
                pooled.retire();
                Err(e)
            }
        }
    }

    /// Runs the connection until it ends. An end the pool did not ask for (the server closed
    /// it, the socket failed) is noted at once, so cached answers do not outlive a directory
    /// that went away between requests.
    fn drive(&self, conn: LdapConnAsync, retired: Arc<AtomicBool>) {
        let (failures, metrics) = (self.failures.clone(), self.metrics.clone());
        let url = self.cfg.url.clone();
        metrics.connections_open.inc();
        tokio::spawn(async move {
            let ended = conn.drive().await;
            metrics.connections_open.dec();
            if retired.load(Ordering::SeqCst) {
                return;
            }
            failures.note();
            metrics.connections_lost.inc();
            match ended {
                Ok(()) => tracing::warn!(%url, "LDAP connection closed by the server"),
                Err(e) => tracing::warn!(%url, error = %e, "LDAP connection failed"),
            }
        });
    }
}

impl Ldap {
    /// Without metrics, and with failures noted where nobody listens (tests, tools).
    pub fn new(cfg: LdapConfig) -> Result<Ldap, LdapSetupError> {
        Ldap::observed(cfg, Failures::default(), DirectoryMetrics::default())
    }

    /// `failures` hears of every connection lost while pooled (share it with the answer
    /// cache); `metrics` counts connections.
    pub fn observed(
        cfg: LdapConfig,
        failures: Failures,
        metrics: DirectoryMetrics,
    ) -> Result<Ldap, LdapSetupError> {
        let tls = match &cfg.ca_file {
            None => None,
            Some(path) => Some(client_tls(path)?),
        };
        let cfg = Arc::new(cfg);
        let connector = Arc::new(Connector {
            cfg: Arc::clone(&cfg),
            tls,
            failures,
            metrics,
        });
        let pool = Pool::new(
            cfg.pool_size,
            Box::new(move || {
                let connector = Arc::clone(&connector);
                Box::pin(async move { connector.connect().await })
            }),
        );
        Ok(Ldap { cfg, pool })
    }

    /// Runs `check` on a pooled connection; a connection an operation failed on is dropped
    /// from the pool, never reused.
    async fn on_connection<T>(
        &self,
        check: impl AsyncFnOnce(&mut ldap3::Ldap) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let conn = self.pool.get().await?;
        let mut ldap = conn.ldap.clone();
        let result = check(&mut ldap).await;
        if let Err(e) = &result
            && e.is_connection_failure()
        {
            self.pool.discard(&conn);
        }
        result
    }

    /// Whether anything under `base` matches `filter`.
    async fn any(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        filter: &str,
    ) -> Result<bool, DirectoryError> {
        ldap.with_timeout(self.cfg.timeout);
        let (entries, _) = ldap
            .search(base, Scope::Subtree, filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.cfg.unavailable(e))?;
        Ok(!entries.is_empty())
    }

    /// The account `name` as the directory stores it (LDAP matches `uid` case-insensitively),
    /// or `None` when no entry matches the user filter.
    async fn canonical(
        &self,
        ldap: &mut ldap3::Ldap,
        name: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let filter = render(&self.cfg.user_filter, &[("user", name)]);
        ldap.with_timeout(self.cfg.timeout);
        let attribute = self.cfg.name_attribute.as_str();
        let (entries, _) = ldap
            .search(
                &self.cfg.user_base,
                Scope::Subtree,
                &filter,
                vec![attribute],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.cfg.unavailable(e))?;
        let count = entries.len();
        let entry = match entries.into_iter().next() {
            None => return Ok(None),
            Some(e) if count == 1 => SearchEntry::construct(e),
            Some(_) => return Err(DirectoryError::Ambiguous { filter, count }),
        };
        canonical_name(&entry, attribute, name)
            .map(Some)
            .ok_or(DirectoryError::NoName {
                dn: entry.dn,
                attribute: attribute.to_owned(),
            })
    }

    async fn user_status(&self, user: &str) -> Result<UserStatus, DirectoryError> {
        self.on_connection(async |ldap| {
            let Some(name) = self.canonical(ldap, user).await? else {
                return Ok(UserStatus::Unknown);
            };
            let filter = render(
                &self.cfg.group_filter,
                &[("user", &name), ("group", &self.cfg.allowed_group)],
            );
            Ok(if self.any(ldap, &self.cfg.group_base, &filter).await? {
                UserStatus::Allowed { name }
            } else {
                UserStatus::NotAllowed
            })
        })
        .await
    }

    /// `user` is already canonical (from [`Ldap::user_status`]); the account is made so here.
    async fn run_as_status(
        &self,
        user: &str,
        account: &str,
    ) -> Result<RunAsStatus, DirectoryError> {
        self.on_connection(async |ldap| {
            let Some(account) = self.canonical(ldap, account).await? else {
                return Ok(RunAsStatus::NoSuchAccount);
            };
            let filter = render(
                &self.cfg.run_as_filter,
                &[("user", user), ("account", &account)],
            );
            Ok(if self.any(ldap, &self.cfg.group_base, &filter).await? {
                RunAsStatus::Allowed { account }
            } else {
                RunAsStatus::NotMember
            })
        })
        .await
    }
}

/// The stored value of `attribute` of `entry` that names `asked`: the one equal to it ignoring
/// ASCII case (a multi-valued `uid`), else the only value.
fn canonical_name(entry: &SearchEntry, attribute: &str, asked: &str) -> Option<String> {
    let values = entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .map(|(_, v)| v.as_slice())?;
    values
        .iter()
        .find(|v| v.eq_ignore_ascii_case(asked))
        .or(match values {
            [only] => Some(only),
            _ => None,
        })
        .cloned()
}

impl Directory for Ldap {
    fn describe(&self) -> String {
        format!("LDAP {}", self.cfg.url)
    }

    fn user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
        Box::pin(self.user_status(user))
    }

    fn run_as<'a>(
        &'a self,
        user: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
        Box::pin(self.run_as_status(user, account))
    }
}

/// Fills `{name}` placeholders with LDAP-escaped values, so a user name cannot change the
/// filter's meaning.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |acc, (name, value)| {
            acc.replace(&format!("{{{name}}}"), &ldap_escape(*value))
        })
}

fn client_tls(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, LdapSetupError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ca_error = |detail: String| LdapSetupError::Ca {
        path: path.display().to_string(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ca_error(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::fake_ldap::FakeLdap;

    #[test]
    fn placeholders_are_filled_with_escaped_values() {
        assert_eq!(
            render(
                DEFAULT_GROUP_FILTER,
                &[("user", "alice"), ("group", "hadoop-users")]
            ),
            "(&(objectClass=posixGroup)(cn=hadoop-users)(memberUid=alice))"
        );
        let injected = render(DEFAULT_USER_FILTER, &[("user", "*)(uid=*")]);
        assert!(!injected.contains("*)(uid=*"), "{injected}");
        assert!(injected.contains("\\2a\\29\\28uid=\\2a"), "{injected}");
    }

    #[test]
    fn the_canonical_name_is_the_stored_value() {
        let entry = |values: &[&str]| SearchEntry {
            dn: "uid=svc-root,ou=people".into(),
            attrs: [(
                "uid".to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            )]
            .into(),
            bin_attrs: Default::default(),
        };
        assert_eq!(
            canonical_name(&entry(&["svc-root"]), "uid", "SVC-ROOT").as_deref(),
            Some("svc-root")
        );
        assert_eq!(
            canonical_name(&entry(&["a1", "Svc-Root"]), "UID", "svc-root").as_deref(),
            Some("Svc-Root")
        );
        assert_eq!(canonical_name(&entry(&["a1", "a2"]), "uid", "x"), None);
        assert_eq!(canonical_name(&entry(&["x"]), "cn", "x"), None);
    }

    #[test]
    fn debug_hides_the_bind_password() {
        let cfg = LdapConfig {
            url: "ldap://127.0.0.1:3890".into(),
            bind_dn: "cn=admin".into(),
            bind_password: Zeroizing::new("hunter2".into()),
            user_base: "ou=people".into(),
            group_base: "ou=groups".into(),
            user_filter: DEFAULT_USER_FILTER.into(),
            name_attribute: DEFAULT_NAME_ATTRIBUTE.into(),
            group_filter: DEFAULT_GROUP_FILTER.into(),
            allowed_group: "hadoop-users".into(),
            run_as_filter: DEFAULT_RUN_AS_FILTER.into(),
            starttls: false,
            ca_file: None,
            timeout: Duration::from_secs(5),
            pool_size: 1,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    fn config(url: String, pool_size: usize, timeout: Duration) -> LdapConfig {
        LdapConfig {
            url,
            bind_dn: "cn=admin".into(),
            bind_password: Zeroizing::new("pw".into()),
            user_base: "dc=x".into(),
            group_base: "dc=x".into(),
            user_filter: DEFAULT_USER_FILTER.into(),
            name_attribute: DEFAULT_NAME_ATTRIBUTE.into(),
            group_filter: DEFAULT_GROUP_FILTER.into(),
            allowed_group: "g".into(),
            run_as_filter: DEFAULT_RUN_AS_FILTER.into(),
            starttls: false,
            ca_file: None,
            timeout,
            pool_size,
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_as_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let metrics = DirectoryMetrics::default();
        let ldap = Ldap::observed(
            config(format!("ldap://{addr}"), 2, Duration::from_secs(5)),
            Failures::default(),
            metrics.clone(),
        )
        .expect("ldap");
        for _ in 0..3 {
            let e = ldap.user("alice").await.expect_err("nobody listens");
            assert!(matches!(e, DirectoryError::Unavailable { .. }), "{e}");
        }
        assert_eq!(ldap.pool.held(), 0);
        assert_eq!(
            metrics.connect_failures.get(),
            3,
            "each request tries again"
        );
        assert_eq!(metrics.connections_opened.get(), 0);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_nothing_is_pooled() {
        // The kernel completes connections into the backlog; nobody reads them.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = DirectoryMetrics::default();
        let failures = Failures::default();
        let ldap = Ldap::observed(
            config(format!("ldap://{addr}"), 1, Duration::from_millis(300)),
            failures.clone(),
            metrics.clone(),
        )
        .expect("ldap");
        for _ in 0..2 {
            let e = ldap.user("alice").await.expect_err("no answer");
            assert!(matches!(e, DirectoryError::Timeout { .. }), "{e}");
        }
        assert_eq!(ldap.pool.held(), 0);
        assert_eq!(metrics.connect_failures.get(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(metrics.connections_open.get(), 0, "failed binds are closed");
        assert_eq!(
            (metrics.connections_lost.get(), failures.count()),
            (0, 0),
            "a bind that failed was never pooled, so its end is not a lost connection"
        );
        drop(listener);
    }

    #[tokio::test]
    async fn checks_share_the_pooled_connections() {
        let server = FakeLdap::start("alice").await;
        let metrics = DirectoryMetrics::default();
        let ldap = Ldap::observed(
            config(server.url.clone(), 2, Duration::from_secs(5)),
            Failures::default(),
            metrics.clone(),
        )
        .expect("ldap");
        let checks = futures::future::join_all((0..20).map(|_| ldap.user("alice"))).await;
        for check in checks {
            assert_eq!(
                check.expect("allowed"),
                UserStatus::Allowed {
                    name: "alice".into()
                }
            );
        }
        assert_eq!(server.accepted(), 2);
        assert_eq!(metrics.connections_opened.get(), 2);
        assert_eq!(metrics.connections_open.get(), 2);
        assert_eq!(ldap.pool.held(), 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_drops_is_noted_at_once_and_replaced() {
        let server = FakeLdap::start("alice").await;
        let metrics = DirectoryMetrics::default();
        let failures = Failures::default();
        let ldap = Ldap::observed(
            config(server.url.clone(), 1, Duration::from_secs(5)),
            failures.clone(),
            metrics.clone(),
        )
        .expect("ldap");
        ldap.user("alice").await.expect("first");
        ldap.run_as("alice", "svc").await.expect("same connection");
        assert_eq!(server.accepted(), 1);
        server.drop_connections();
        // Noted without any request: the answer cache must not wait for one.
        tokio::time::timeout(Duration::from_secs(5), async {
            while failures.count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the lost connection is noted");
        assert_eq!(metrics.connections_lost.get(), 1);
        ldap.user("alice").await.expect("on a new connection");
        assert_eq!(server.accepted(), 2);
        assert_eq!(metrics.connections_opened.get(), 2);
    }
}
