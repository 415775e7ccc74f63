//! YARN ResourceManager delegation tokens (kind `RM_DELEGATION_TOKEN`), for one ResourceManager
//! or an HA group, over the RM's REST API (`/ws/v1/cluster/delegation-token`).
//!
//! The API, as `RMWebServices` serves it behind `RMAuthenticationFilter`:
//! - POST `delegation-token?doAs=<user>` with `{"renewer": ..}` answers `{"token": <urlString>,
//!   "owner": .., "kind": ..}`. The filter applies the RM's proxy-user rules to `doAs`.
//! - POST `delegation-token/expiration` with the token in the `Hadoop-YARN-RM-Delegation-Token`
//!   header answers `{"expiration-time": <ms>}` (a number, or a string in older releases).
//! - DELETE `delegation-token` with the same header answers 200.
//!
//! All three need a Kerberos (SPNEGO) caller; renew and cancel run as the service itself, the
//! token's renewer. A standby RM redirects web requests to the active one: with redirects off,
//! that 3xx (or a refused connection) moves on to the next RM.

use futures::future::BoxFuture;
use reqwest::Method;

use super::error::HadoopError;
use super::failover::Failover;
use super::http::{Caller, Extras};
use super::{IssuedToken, TokenEndpoint, check_user, rpc_token_service};

pub const RM_KIND: &str = "RM_DELEGATION_TOKEN";
const PATH: &str = "/ws/v1/cluster/delegation-token";
const EXPIRATION_PATH: &str = "/ws/v1/cluster/delegation-token/expiration";
const TOKEN_HEADER: &str = "Hadoop-YARN-RM-Delegation-Token";

#[derive(Debug, Clone)]
pub struct ResourceManager {
    /// `http(s)://host:port` of the RM's web server (`yarn.resourcemanager.webapp.address`).
    pub http: String,
    /// `host:port` of its client RPC server (`yarn.resourcemanager.address`), what YARN
    /// clients name the token service after.
    pub rpc: String,
}

#[derive(Debug, Clone)]
pub struct YarnConfig {
    /// A name for logs, metrics and the token's `source` (e.g. the YARN cluster id).
    pub name: String,
    /// Tried in order; the one that answered is tried first next time.
    pub resource_managers: Vec<ResourceManager>,
    /// Kerberos short name that may renew the tokens: the service's own.
    pub renewer: String,
    /// Overrides the computed token service.
    pub token_service: Option<String>,
}

pub struct Yarn {
    source: String,
    cfg: YarnConfig,
    resource_managers: Failover,
    caller: Caller,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    token: String,
}

#[derive(serde::Deserialize)]
struct ExpirationAnswer {
    #[serde(rename = "expiration-time")]
    expiration_time: serde_json::Value,
}

impl Yarn {
    pub fn new(cfg: YarnConfig, caller: Caller) -> Result<Yarn, HadoopError> {
        let resource_managers = Failover::new(
            cfg.resource_managers.iter().map(|rm| rm.http.as_str()),
            || format!("YARN {}: no ResourceManager configured", cfg.name),
        )?;
        Ok(Yarn {
            source: format!("yarn:{}", cfg.name),
            cfg,
            resource_managers,
            caller,
        })
    }

    /// What `ClientRMProxy.getRMDelegationTokenService` computes: every RM's RPC address as
    /// `ip:port`, joined by commas (one address without HA).
    pub async fn token_service(&self) -> Result<String, HadoopError> {
        if let Some(s) = &self.cfg.token_service {
            return Ok(s.clone());
        }
        let mut services = Vec::with_capacity(self.cfg.resource_managers.len());
        for rm in &self.cfg.resource_managers {
            services.push(rpc_token_service("ResourceManager", &rm.rpc).await?);
        }
        Ok(services.join(","))
    }

    /// Runs one call on the RMs, the last one that answered first, skipping standbys (they
    /// redirect) and dead ones.
    async fn on_active(
        &self,
        method: Method,
        path: &str,
        op: &str,
        query: &[(&str, &str)],
        extras: Extras<'_>,
    ) -> Result<Vec<u8>, HadoopError> {
        self.resource_managers
            .run(
                |endpoint| {
                    self.caller
                        .call_with(method.clone(), endpoint, path, op, query, extras.clone())
                },
                |e| is_standby(e) || e.try_next_namenode(),
                |attempts| HadoopError::NoActiveResourceManager {
                    cluster: self.cfg.name.clone(),
                    attempts,
                },
            )
            .await
    }

    async fn obtain_token(&self, user: &str) -> Result<IssuedToken, HadoopError> {
        check_user(user)?;
        // Known before the RM creates anything: a token whose service cannot be named would be
        // live at the RM and never handed out, nor cancelled.
        let service = self.token_service().await?;
        let op = "create delegation-token";
        let renewer = serde_json::json!({ "renewer": self.cfg.renewer });
        let body = self
            .on_active(
                Method::POST,
                PATH,
                op,
                &[("doAs", user)],
                Extras {
                    json: Some(renewer),
                    ..Extras::default()
                },
            )
            .await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| HadoopError::BadResponse {
                endpoint: format!("{} {op}", self.source),
                detail: format!("expected {{\"token\":..}}: {e}"),
            })?;
        if answer.token.is_empty() {
            return Err(HadoopError::BadResponse {
                endpoint: format!("{} {op}", self.source),
                detail: "empty token".into(),
            });
        }
        Ok(IssuedToken::new(
            self.source.clone(),
            RM_KIND.to_owned(),
            service,
            answer.token,
        ))
    }

    async fn renew_token(&self, token: &IssuedToken) -> Result<u64, HadoopError> {
        let op = "renew delegation-token";
        let body = self
            .on_active(
                Method::POST,
                EXPIRATION_PATH,
                op,
                &[],
                Extras {
                    header: Some((TOKEN_HEADER, token.url_string())),
                    ..Extras::default()
                },
            )
            .await?;
        parse_expiration(&format!("{} {op}", self.source), &body)
    }
}

/// A standby RM's web server answers with a redirect to the active one.
fn is_standby(e: &HadoopError) -> bool {
    matches!(
        e,
        HadoopError::Status {
            status: 300..=399,
            ..
        }
    )
}

fn parse_expiration(endpoint: &str, body: &[u8]) -> Result<u64, HadoopError> {
    let bad = |detail: String| HadoopError::BadResponse {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let answer: ExpirationAnswer = serde_json::from_slice(body)
        .map_err(|e| bad(format!("expected {{\"expiration-time\":<ms>}}: {e}")))?;
    match &answer.expiration_time {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("expiration-time is not a time in milliseconds".into()))
}

impl TokenEndpoint for Yarn {
    fn source(&self) -> &str {
        &self.source
    }

    fn service_name(&self) -> &'static str {
        "yarn"
    }

    fn obtain<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<IssuedToken, HadoopError>> {
        Box::pin(self.obtain_token(user))
    }

    fn renew<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<u64, HadoopError>> {
        Box::pin(self.renew_token(token))
    }

    fn cancel<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<(), HadoopError>> {
        Box::pin(async move {
            self.on_active(
                Method::DELETE,
                PATH,
                "cancel delegation-token",
                &[],
                Extras {
                    header: Some((TOKEN_HEADER, token.url_string())),
                    ..Extras::default()
                },
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

    const TOKEN: &str = "RM-SECRET-URL-STRING";

    fn yarn(urls: &[String]) -> Yarn {
        Yarn::new(
            YarnConfig {
                name: "yarn1".into(),
                resource_managers: urls
                    .iter()
                    .enumerate()
                    .map(|(i, u)| ResourceManager {
                        http: u.clone(),
                        rpc: format!("127.0.0.1:{}", 8032 + i),
                    })
                    .collect(),
                renewer: "kube2hadoop".into(),
                token_service: None,
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("valid config")
    }

    // Follows RMWebServices: JSON in and out, the token in a header for renew and cancel.
    async fn rm() -> FakeServer {
        FakeServer::start(|seen| {
            let header = seen.headers.get("hadoop-yarn-rm-delegation-token");
            match (seen.method.as_str(), seen.path.as_str(), header) {
                ("POST", PATH, None) if seen.query.contains_key("doAs") => Reply::Json(
                    200,
                    serde_json::json!({"token": TOKEN, "renewer": "kube2hadoop",
                        "owner": seen.query["doAs"], "kind": RM_KIND}),
                ),
                ("POST", EXPIRATION_PATH, Some(t)) if t == TOKEN => {
                    Reply::Json(200, serde_json::json!({"expiration-time": "1700000000000"}))
                }
                ("DELETE", PATH, Some(t)) if t == TOKEN => Reply::Json(200, serde_json::json!({})),
                _ => fake::remote(
                    403,
                    "ForbiddenException",
                    "org.apache.hadoop.yarn.webapp.ForbiddenException",
                    "bad request",
                ),
            }
        })
        .await
    }

    #[tokio::test]
    async fn lifecycle_sends_doas_renewer_and_the_token_header() {
        let server = rm().await;
        let y = yarn(&[server.url()]);
        let t = y.obtain("alice").await.expect("token");
        assert_eq!(t.kind, "RM_DELEGATION_TOKEN");
        assert_eq!(t.service, "127.0.0.1:8032");
        assert_eq!(t.source, "yarn:yarn1");
        assert_eq!(t.url_string(), TOKEN);
        assert_eq!(y.renew(&t).await.expect("renew"), 1_700_000_000_000);
        y.cancel(&t).await.expect("cancel");
        let seen = server.seen();
        assert_eq!(seen[0].query["doAs"], "alice");
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).expect("JSON body");
        assert_eq!(body["renewer"], "kube2hadoop");
        assert!(
            seen[1..].iter().all(|s| s.query.is_empty()),
            "the token travels in a header, never in the URL"
        );
    }

    #[tokio::test]
    async fn ha_skips_a_redirecting_standby_and_a_dead_rm() {
        let standby = FakeServer::start(|_| Reply::Json(307, serde_json::json!({}))).await;
        let active = rm().await;
        let y = yarn(&[fake::dead_url().await, standby.url(), active.url()]);
        let t = y.obtain("alice").await.expect("token from the active RM");
        assert_eq!(t.service, "127.0.0.1:8032,127.0.0.1:8033,127.0.0.1:8034");
        y.renew(&t).await.expect("renewed on the active RM first");
        assert_eq!(standby.seen().len(), 1, "the standby is asked once");
    }

    #[tokio::test]
    async fn every_rm_down_names_each_attempt() {
        let y = yarn(&[fake::dead_url().await, fake::dead_url().await]);
        let err = y.obtain("alice").await.expect_err("no RM");
        assert!(
            matches!(&err, HadoopError::NoActiveResourceManager { attempts, .. } if attempts.len() == 2),
            "{err:?}"
        );
        assert!(err.is_transient(), "an RM outage is worth retrying: {err}");
        assert!(err.to_string().contains("yarn1"), "{err}");
    }

    #[tokio::test]
    async fn a_proxy_user_refusal_names_the_setting_and_is_not_retried() {
        let refusing = FakeServer::start(|_| {
            fake::remote(
                403,
                "AuthorizationException",
                "org.apache.hadoop.security.authorize.AuthorizationException",
                "User: kube2hadoop@EXAMPLE.COM is not allowed to impersonate mallory",
            )
        })
        .await;
        let other = rm().await;
        let err = yarn(&[refusing.url(), other.url()])
            .obtain("mallory")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, HadoopError::ProxyUserNotAllowed { .. }),
            "{err:?}"
        );
        assert!(other.seen().is_empty());
    }

    #[tokio::test]
    async fn nothing_is_created_when_the_token_service_cannot_be_named() {
        let server = rm().await;
        let y = Yarn::new(
            YarnConfig {
                name: "yarn1".into(),
                resource_managers: vec![
                    ResourceManager {
                        http: server.url(),
                        rpc: "127.0.0.1:8032".into(),
                    },
                    ResourceManager {
                        http: fake::dead_url().await,
                        rpc: "rm2.invalid:8032".into(),
                    },
                ],
                renewer: "kube2hadoop".into(),
                token_service: None,
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("config");
        let err = y.obtain("alice").await.expect_err("rm2 does not resolve");
        assert!(err.to_string().contains("does not resolve"), "{err}");
        assert!(
            server.seen().is_empty(),
            "no token was created at the RM only to be lost"
        );
    }

    #[test]
    fn expiration_accepts_numbers_and_strings_only() {
        assert_eq!(
            parse_expiration("rm", br#"{"expiration-time":5}"#).ok(),
            Some(5)
        );
        assert_eq!(
            parse_expiration("rm", br#"{"expiration-time":"6"}"#).ok(),
            Some(6)
        );
        assert!(parse_expiration("rm", br#"{"expiration-time":"soon"}"#).is_err());
        assert!(parse_expiration("rm", br#"{}"#).is_err());
    }
}
