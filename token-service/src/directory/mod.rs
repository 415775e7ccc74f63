//! Whether a user may have tokens, and which headless accounts they may run as: asked of LDAP,
//! or of a static file when no directory is configured.

pub mod cache;
pub mod cached;
#[cfg(test)]
mod fake_ldap;
pub mod ldap;
pub mod pool;
pub mod static_users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

/// What the directory says about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStatus {
    Unknown,
    /// Exists but is not in the allowed group (inactive, or not a Hadoop user).
    NotAllowed,
    /// May have tokens, under `name`: the account name as the directory stores it (LDAP
    /// matches `uid` case-insensitively; `doas` and the deny-list must see the stored name).
    Allowed {
        name: String,
    },
}

/// Whether `user` may act as a headless `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAsStatus {
    NoSuchAccount,
    NotMember,
    /// Allowed, as `account`: its name as the directory stores it.
    Allowed {
        account: String,
    },
}

/// Cloned so requests that waited on one failed connection attempt all get its error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "LDAP server {url} is unreachable or failed: {detail}; check that it is up and the URL"
    )]
    Unavailable { url: String, detail: String },
    #[error("LDAP server {url} did not answer within {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("LDAP bind as {dn} failed: {detail}; check the bind DN and the password file")]
    Bind { dn: String, detail: String },
    #[error(
        "LDAP entry {dn} has no {attribute} attribute to read the account name from; set \
         ldap.nameAttribute to the attribute the user filter matches"
    )]
    NoName { dn: String, attribute: String },
    #[error(
        "{count} LDAP entries match {filter}; an account name must name one entry (narrow the \
         base DN or the user filter)"
    )]
    Ambiguous { filter: String, count: usize },
}

impl DirectoryError {
    /// Whether the connection it happened on can no longer be trusted (as opposed to an
    /// answer the directory gave that we cannot use).
    pub fn is_connection_failure(&self) -> bool {
        match self {
            DirectoryError::Unavailable { .. }
            | DirectoryError::Timeout { .. }
            | DirectoryError::Bind { .. } => true,
            DirectoryError::NoName { .. } | DirectoryError::Ambiguous { .. } => false,
        }
    }
}

/// A count of the directory failures noticed so far, shared by whoever notices them (a failed
/// call, a connection the server closed) and the answer cache, which forgets everything when
/// the count moves.
#[derive(Debug, Clone, Default)]
pub struct Failures(Arc<AtomicU64>);

impl Failures {
    pub fn note(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub trait Directory: Send + Sync {
    /// Names the backend in logs and messages (`ldap ldap://…`, `static file …`).
    fn describe(&self) -> String;
    fn user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>>;
    fn run_as<'a>(
        &'a self,
        user: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>>;
}
