//! Client for Hadoop delegation tokens: obtains them from each configured service as the service
//! principal acting for a user (`doas`), renews and cancels them.
//!
//! Layers, bottom up: [`auth`] (who we are: SPNEGO or nothing), [`http`] (one bounded,
//! authenticated call with Hadoop's errors typed), [`webhdfs`] and [`kms`] (one token endpoint
//! each, HA-aware), [`yarn`] (the ResourceManager's REST API), [`federation`] (one token per
//! provider a workload selected, bundled). [`hive`] speaks the metastore's Thrift API with SASL
//! instead of HTTP. The token service sees only [`TokenSource`].

pub mod auth;
pub mod error;
pub mod failover;
pub mod federation;
pub mod hive;
pub mod http;
pub mod kms;
pub mod spnego;
pub mod tokens;
pub mod webhdfs;
pub mod yarn;

#[cfg(test)]
mod fake;

use futures::future::BoxFuture;

use crate::services::Selection;

pub use error::HadoopError;
pub use federation::Federation;
pub use tokens::{IssuedToken, Renewal, SetError, TokenSet};

/// Where a workload's tokens come from; the token service is tested against a fake of it.
pub trait TokenSource: Send + Sync {
    /// One token from every configured service that `services` includes, issued to `user`.
    /// All or nothing: tokens already issued are cancelled when another service fails.
    fn obtain<'a>(
        &'a self,
        user: &'a str,
        services: &'a Selection,
    ) -> BoxFuture<'a, Result<TokenSet, SetError>>;
    /// Renews every token; the set's expiry is the earliest one.
    fn renew<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<Renewal, SetError>>;
    /// Cancels every token, attempting all of them whatever fails.
    fn cancel<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<(), SetError>>;
}

/// One call to one provider, as the federation reports it (for metrics).
pub struct ProviderCall<'a> {
    pub service: &'static str,
    pub source: &'a str,
    pub op: &'static str,
    pub ok: bool,
    pub elapsed: std::time::Duration,
}

pub type ProviderObserver = std::sync::Arc<dyn Fn(&ProviderCall<'_>) + Send + Sync>;

/// One server (or HA group) that issues one kind of token: a provider. Adding a Hadoop
/// service is adding an implementation (and its configuration), nothing else.
pub trait TokenEndpoint: Send + Sync {
    /// Matches [`IssuedToken::source`] of the tokens it issues.
    fn source(&self) -> &str;
    /// The name workloads select it by in `kube2hadoop.io/services`, one of
    /// [`k2h_contract::services::KNOWN`].
    fn service_name(&self) -> &'static str;
    fn obtain<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<IssuedToken, HadoopError>>;
    /// Returns the new expiry in ms since the epoch.
    fn renew<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<u64, HadoopError>>;
    fn cancel<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<(), HadoopError>>;
}

/// An RPC address as `SecurityUtil.buildTokenService` names it with `use_ip` true (Hadoop's
/// default): `ip:port`. `what` names the server in the error.
async fn rpc_token_service(what: &str, rpc: &str) -> Result<String, HadoopError> {
    let addrs: Vec<_> = tokio::net::lookup_host(rpc)
        .await
        .map_err(|e| {
            HadoopError::Config(format!("{what} RPC address {rpc:?} does not resolve: {e}"))
        })?
        .collect();
    // Hadoop's scripts run Java with IPv4 preferred, so its clients name the IPv4 address.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or_else(|| HadoopError::Config(format!("{what} RPC address {rpc:?} has no IP")))?;
    Ok(format!("{}:{}", addr.ip(), addr.port()))
}

/// `doas` names a Hadoop user; refuse what cannot be one before it reaches a server. A
/// principal-like name (`svc/host@REALM`) is refused too: servers compare short names, and one
/// equal to this service's own would skip their proxy-user check.
fn check_user(user: &str) -> Result<(), HadoopError> {
    if !crate::mapping::valid_account(user) {
        return Err(HadoopError::Config(format!(
            "{user:?} is not a valid Hadoop user name"
        )));
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct TokenBody {
    #[serde(rename = "Token")]
    token: UrlString,
}

#[derive(serde::Deserialize)]
struct UrlString {
    #[serde(rename = "urlString")]
    url_string: String,
}

#[derive(serde::Deserialize)]
struct LongBody {
    long: u64,
}

/// `{"Token":{"urlString":"..."}}`, the GETDELEGATIONTOKEN answer of WebHDFS and KMS.
fn parse_token(endpoint: &str, body: &[u8]) -> Result<String, HadoopError> {
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|e| HadoopError::BadResponse {
        endpoint: endpoint.to_owned(),
        detail: format!("expected {{\"Token\":{{\"urlString\":..}}}}: {e}"),
    })?;
    if parsed.token.url_string.is_empty() {
        return Err(HadoopError::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: "empty token".into(),
        });
    }
    Ok(parsed.token.url_string)
}

/// `{"long": <ms>}`, the RENEWDELEGATIONTOKEN answer.
fn parse_expiry(endpoint: &str, body: &[u8]) -> Result<u64, HadoopError> {
    serde_json::from_slice::<LongBody>(body)
        .map(|b| b.long)
        .map_err(|e| HadoopError::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: format!("expected {{\"long\":<expiry ms>}}: {e}"),
        })
}
