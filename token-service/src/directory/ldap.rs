//! The directory in LDAP: a user must exist and be in the allowed group; a headless account may
//! be used by members of its group. One short connection per check, bound as the service, so
//! a directory change (a user leaving) takes effect at the next request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use zeroize::Zeroizing;

use super::{Directory, DirectoryError, RunAsStatus, UserStatus};

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
    pub timeout: Duration,
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
            .finish_non_exhaustive()
    }
}

pub struct Ldap {
    cfg: LdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("cannot read the LDAP CA file {path}: {detail}")]
    Ca { path: String, detail: String },
}

impl Ldap {
    pub fn new(cfg: LdapConfig) -> Result<Ldap, LdapSetupError> {
        let tls = match &cfg.ca_file {
            None => None,
            Some(path) => Some(client_tls(path)?),
        };
        Ok(Ldap { cfg, tls })
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.timeout)
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(Arc::clone(tls));
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| self.unavailable(e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.cfg.timeout);
        let bound = ldap
            .simple_bind(&self.cfg.bind_dn, &self.cfg.bind_password)
            .await
            .map_err(|e| self.unavailable(e))?;
        bound.success().map_err(|e| DirectoryError::Bind {
            dn: self.cfg.bind_dn.clone(),
            detail: e.to_string(),
        })?;
        Ok(ldap)
    }

    fn unavailable(&self, e: ldap3::LdapError) -> DirectoryError {
        match e {
            ldap3::LdapError::Timeout { .. } => DirectoryError::Timeout {
                url: self.cfg.url.clone(),
                secs: self.cfg.timeout.as_secs(),
            },
            other => DirectoryError::Unavailable {
                url: self.cfg.url.clone(),
                detail: other.to_string(),
            },
        }
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
            .map_err(|e| self.unavailable(e))?;
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
            .map_err(|e| self.unavailable(e))?;
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
        let mut ldap = self.connect().await?;
        let result = async {
            let Some(name) = self.canonical(&mut ldap, user).await? else {
                return Ok(UserStatus::Unknown);
            };
            let filter = render(
                &self.cfg.group_filter,
                &[("user", &name), ("group", &self.cfg.allowed_group)],
            );
            Ok(
                if self.any(&mut ldap, &self.cfg.group_base, &filter).await? {
                    UserStatus::Allowed { name }
                } else {
                    UserStatus::NotAllowed
                },
            )
        }
        .await;
        let _ = ldap.unbind().await;
        result
    }

    /// `user` is already canonical (from [`Ldap::user_status`]); the account is made so here.
    async fn run_as_status(
        &self,
        user: &str,
        account: &str,
    ) -> Result<RunAsStatus, DirectoryError> {
        let mut ldap = self.connect().await?;
        let result = async {
            let Some(account) = self.canonical(&mut ldap, account).await? else {
                return Ok(RunAsStatus::NoSuchAccount);
            };
            let filter = render(
                &self.cfg.run_as_filter,
                &[("user", user), ("account", &account)],
            );
            Ok(
                if self.any(&mut ldap, &self.cfg.group_base, &filter).await? {
                    RunAsStatus::Allowed { account }
                } else {
                    RunAsStatus::NotMember
                },
            )
        }
        .await;
        let _ = ldap.unbind().await;
        result
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
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_as_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let ldap = Ldap::new(LdapConfig {
            url: format!("ldap://{addr}"),
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
            timeout: Duration::from_secs(5),
        })
        .expect("ldap");
        let e = ldap.user("alice").await.expect_err("nobody listens");
        assert!(matches!(e, DirectoryError::Unavailable { .. }), "{e}");
    }
}
