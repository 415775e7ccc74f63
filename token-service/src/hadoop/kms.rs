//! KMS delegation tokens (kind `kms-dt`), for one KMS or a load-balanced group sharing its
//! secret (tried in order on connection failures).
//!
//! The KMS uses hadoop-common's delegation-token HTTP protocol
//! (`DelegationTokenAuthenticator`): GET `?op=GETDELEGATIONTOKEN&renewer=&doAs=` answers
//! `{"Token":{"urlString":..}}`; PUT `?op=RENEWDELEGATIONTOKEN&token=` answers
//! `{"long":<expiry>}`; PUT `?op=CANCELDELEGATIONTOKEN&token=` answers 200. The server reads
//! `token` and `doAs` (case-insensitively) from the query string.

use futures::future::BoxFuture;
use reqwest::Method;

use super::error::HadoopError;
use super::http::{Caller, Endpoint};
use super::{IssuedToken, TokenEndpoint, check_user, parse_expiry, parse_token, rpc_token_service};

pub const KMS_KIND: &str = "kms-dt";
const PATH: &str = "/v1/";

#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// A name for logs and for the token's `source`.
    pub name: String,
    /// `http(s)://host:port/kms` of each instance.
    pub urls: Vec<String>,
    pub renewer: String,
    /// What `hadoop.security.key.provider.path` says, e.g. `kms://http@kms1;kms2:9600/kms`:
    /// Hadoop 3 clients select the token by that provider URI.
    pub token_service: String,
}

pub struct Kms {
    source: String,
    cfg: KmsConfig,
    endpoints: Vec<Endpoint>,
    caller: Caller,
}

impl Kms {
    pub fn new(cfg: KmsConfig, caller: Caller) -> Result<Kms, HadoopError> {
        if cfg.urls.is_empty() {
            return Err(HadoopError::Config(format!(
                "KMS {}: no URL configured",
                cfg.name
            )));
        }
        let endpoints = cfg
            .urls
            .iter()
            .map(|u| Endpoint::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Kms {
            source: format!("kms:{}", cfg.name),
            cfg,
            endpoints,
            caller,
        })
    }

    async fn any(
        &self,
        method: Method,
        op: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, HadoopError> {
        let mut full = vec![("op", op)];
        full.extend_from_slice(query);
        let mut last = None;
        for endpoint in &self.endpoints {
            match self
                .caller
                .call(method.clone(), endpoint, PATH, op, &full)
                .await
            {
                Err(e @ (HadoopError::Connect { .. } | HadoopError::Timeout { .. })) => {
                    tracing::debug!(kms = %self.cfg.name, error = %e, "trying next KMS");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| HadoopError::Config("no KMS URL".into())))
    }
}

impl Kms {
    /// Each KMS's `ip:port`: a file system with a key provider asks for the KMS token under
    /// that name (`DelegationTokenIssuer.collectDelegationTokens` by the provider's canonical
    /// service) before it would fetch one over Kerberos, as Spark's and MapReduce's
    /// `TokenCache` do for every input path. Hadoop's own KMS client writes both names too.
    /// An instance whose name does not resolve (decommissioned, say) is left out with a
    /// warning rather than failing the token: the provider URI copy still serves clients that
    /// select by it.
    async fn aliases(&self) -> Vec<String> {
        let mut aliases = Vec::new();
        for endpoint in &self.endpoints {
            let url = endpoint.url();
            let host_port = format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(0)
            );
            let lookup = rpc_token_service("KMS", &host_port);
            match tokio::time::timeout(self.caller.timeout(), lookup).await {
                Ok(Ok(alias)) => {
                    if alias != self.cfg.token_service && !aliases.contains(&alias) {
                        aliases.push(alias);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(kms = %self.cfg.name, error = %e, "no ip:port copy of the KMS token for this instance")
                }
                Err(_) => {
                    tracing::warn!(kms = %self.cfg.name, instance = %host_port, "no ip:port copy of the KMS token: the name did not resolve in time")
                }
            }
        }
        aliases
    }
}

impl TokenEndpoint for Kms {
    fn source(&self) -> &str {
        &self.source
    }

    fn service_name(&self) -> &'static str {
        "kms"
    }

    fn obtain<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<IssuedToken, HadoopError>> {
        Box::pin(async move {
            check_user(user)?;
            // Known before the KMS creates anything, like the RM's token service.
            let aliases = self.aliases().await;
            let op = "GETDELEGATIONTOKEN";
            let body = self
                .any(
                    Method::GET,
                    op,
                    &[("renewer", &self.cfg.renewer), ("doAs", user)],
                )
                .await?;
            let url_string = parse_token(&format!("{} {op}", self.source), &body)?;
            Ok(IssuedToken::new(
                self.source.clone(),
                KMS_KIND.to_owned(),
                self.cfg.token_service.clone(),
                url_string,
            )
            .with_aliases(aliases))
        })
    }

    fn renew<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<u64, HadoopError>> {
        Box::pin(async move {
            let op = "RENEWDELEGATIONTOKEN";
            let body = self
                .any(Method::PUT, op, &[("token", token.url_string())])
                .await?;
            parse_expiry(&format!("{} {op}", self.source), &body)
        })
    }

    fn cancel<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<(), HadoopError>> {
        Box::pin(async move {
            self.any(
                Method::PUT,
                "CANCELDELEGATIONTOKEN",
                &[("token", token.url_string())],
            )
            .await
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hadoop::fake::{self, FakeServer, Reply};

    // No real KMS in the test bed: this fake follows hadoop-common's
    // DelegationTokenAuthenticationHandler (query parameters, JSON answers, RemoteException).
    async fn kms_server() -> FakeServer {
        FakeServer::start(|seen| {
            if seen.path != "/kms/v1/" {
                return Reply::Json(404, serde_json::Value::Null);
            }
            match (seen.method.as_str(), seen.query["op"].as_str()) {
                ("GET", "GETDELEGATIONTOKEN") if seen.query.contains_key("doAs") => {
                    fake::token_reply("KMSTOKEN")
                }
                ("PUT", "RENEWDELEGATIONTOKEN") if seen.query["token"] == "KMSTOKEN" => {
                    fake::expiry_reply(42)
                }
                ("PUT", "CANCELDELEGATIONTOKEN") if seen.query["token"] == "KMSTOKEN" => {
                    Reply::Json(200, serde_json::Value::Null)
                }
                _ => fake::remote(
                    403,
                    "AuthenticationException",
                    "org.apache.hadoop.security.authentication.client.AuthenticationException",
                    "bad request",
                ),
            }
        })
        .await
    }

    #[tokio::test]
    async fn kms_token_lifecycle_with_failover_over_dead_instances() {
        let server = kms_server().await;
        let kms = Kms::new(
            KmsConfig {
                name: "kms".into(),
                urls: vec![
                    format!("{}/kms", fake::dead_url().await),
                    format!("{}/kms", server.url()),
                ],
                renewer: "kube2hadoop".into(),
                token_service: "kms://http@localhost:9600/kms".into(),
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("config");
        let t = kms.obtain("alice").await.expect("token");
        assert_eq!(t.kind, "kms-dt");
        assert_eq!(t.service, "kms://http@localhost:9600/kms");
        let alive = server.url().replace("http://", "");
        assert_eq!(
            t.aliases.len(),
            2,
            "each instance's ip:port, the dead one's too: {:?}",
            t.aliases
        );
        assert!(t.aliases.contains(&alive), "{:?}", t.aliases);
        assert_eq!(kms.renew(&t).await.expect("renew"), 42);
        kms.cancel(&t).await.expect("cancel");
        let seen = server.seen();
        assert_eq!(seen[0].query["doAs"], "alice");
        assert_eq!(seen[0].query["renewer"], "kube2hadoop");
    }
}
