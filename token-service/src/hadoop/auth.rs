//! How a request to a Hadoop HTTP endpoint is authenticated, kept behind a trait so the
//! fake servers of the unit tests can run without a KDC.

use futures::future::BoxFuture;

/// One request's credentials: the `Authorization` value to send and, for a mutually
/// authenticated mechanism, the check of the server's reply token.
pub struct Exchange {
    pub authorization: String,
    pub mutual: Option<Box<dyn MutualCheck>>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The header is a live Kerberos authenticator: never print it.
        f.debug_struct("Exchange")
            .field("authorization", &"<redacted>")
            .field("mutual", &self.mutual.is_some())
            .finish()
    }
}

/// Verifies the server's `WWW-Authenticate: Negotiate <token>` reply. Blocking (it may be a
/// GSSAPI call): callers run it on a blocking thread.
pub trait MutualCheck: Send {
    fn verify(self: Box<Self>, server_token: &[u8]) -> Result<(), AuthError>;
}

pub trait Authenticator: Send + Sync {
    /// Credentials for one request to `host`; `None` sends the request unauthenticated.
    fn start<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Option<Exchange>, AuthError>>;
}

/// For servers with `hadoop.security.authentication=simple` and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAuth;

impl Authenticator for NoAuth {
    fn start<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<Option<Exchange>, AuthError>> {
        Box::pin(async { Ok(None) })
    }
}

impl AuthError {
    /// The KDC is down or unreachable (once the cached ticket has run out): asking again later
    /// succeeds once it is back, so the request is answered 503 rather than 502.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthError::KdcUnreachable { .. } | AuthError::TicketExpired { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "Kerberos: cannot reach the KDC for {principal}; check the [realms] kdc entry in \
         krb5.conf (KRB5_CONFIG) and that the KDC is up and reachable"
    )]
    KdcUnreachable { principal: String },
    /// MIT krb5 with a client keytab refreshes the ticket itself and keeps using the old one
    /// while it is valid; when the refresh keeps failing (KDC down) the ticket runs out and
    /// GSSAPI reports only "Ticket expired".
    #[error(
        "Kerberos: the ticket of {principal} has expired and no new one could be obtained with \
         the keytab: the KDC is most likely down or unreachable (check the [realms] kdc entry in \
         krb5.conf and that the KDC is up); requests succeed again as soon as it answers"
    )]
    TicketExpired { principal: String },
    #[error(
        "Kerberos: clock skew between this host and the KDC or server is too great; \
         synchronise the clocks (NTP)"
    )]
    ClockSkew,
    #[error(
        "Kerberos: no usable key for {principal} in keytab {keytab}; check the principal name, \
         the keytab path and that its key version matches the KDC (`klist -kt`)"
    )]
    Keytab { principal: String, keytab: String },
    #[error("Kerberos: the KDC does not know {principal}; check the principal name and realm")]
    ClientUnknown { principal: String },
    #[error(
        "Kerberos: the KDC has no principal HTTP/{host}; the server's SPNEGO principal must be \
         HTTP/<host>@REALM and the configured URL must use that <host>"
    )]
    ServerUnknown { host: String },
    #[error("Kerberos: cannot read krb5.conf; set KRB5_CONFIG to a readable file")]
    Krb5Config,
    #[error("Kerberos: {step} failed: {detail}")]
    Gss { step: &'static str, detail: String },
    #[error("SPNEGO: the server's reply token does not prove it is HTTP/{host}: {detail}")]
    Mutual { host: String, detail: String },
    #[error("SPNEGO: the reply's WWW-Authenticate token is not valid base64")]
    BadReplyToken,
    #[error(
        "Kerberos: process environment variable {var} is {found:?}, the configuration needs \
         {expected:?}; set it before the service starts (see hadoop::spnego::process_env)"
    )]
    Environment {
        var: &'static str,
        expected: String,
        found: Option<String>,
    },
    #[error("Kerberos: worker thread failed: {0}")]
    Worker(String),
}
