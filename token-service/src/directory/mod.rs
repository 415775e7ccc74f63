//! Whether a user may have tokens, and which headless accounts they may run as: asked of LDAP,
//! or of a static file when no directory is configured.

pub mod ldap;
pub mod static_users;

use futures::future::BoxFuture;

/// What the directory says about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Unknown,
    /// Exists but is not in the allowed group (inactive, or not a Hadoop user).
    NotAllowed,
    Allowed,
}

/// Whether `user` may act as a headless `account`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAsStatus {
    NoSuchAccount,
    NotMember,
    Allowed,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "LDAP server {url} is unreachable or failed: {detail}; check that it is up and the URL"
    )]
    Unavailable { url: String, detail: String },
    #[error("LDAP server {url} did not answer within {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("LDAP bind as {dn} failed: {detail}; check the bind DN and the password file")]
    Bind { dn: String, detail: String },
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
