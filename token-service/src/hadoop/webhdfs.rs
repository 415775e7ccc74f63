//! HDFS delegation tokens over WebHDFS, for one nameservice (a NameNode or an HA group).
//!
//! The NameNode answers GETDELEGATIONTOKEN with kind `WEBHDFS delegation`, which only a
//! `webhdfs://` client selects. The identifier and password are the same for RPC, so the token
//! is relabelled the way a stock RPC client looks it up: kind `HDFS_DELEGATION_TOKEN`, service
//! `ha-hdfs:<nameservice>` for HA (`HAUtilClient.buildTokenServiceForLogicalUri`) or the RPC
//! address as `ip:port` (`SecurityUtil.buildTokenService` with `use_ip` true, the default).

use futures::future::BoxFuture;
use reqwest::Method;

use super::error::HadoopError;
use super::failover::Failover;
use super::http::Caller;
use super::{IssuedToken, TokenEndpoint, check_user, parse_expiry, parse_token, rpc_token_service};

pub const HDFS_KIND: &str = "HDFS_DELEGATION_TOKEN";
const HA_SERVICE_PREFIX: &str = "ha-hdfs:";
const PATH: &str = "/webhdfs/v1/";

#[derive(Debug, Clone)]
pub struct NameNode {
    /// `http(s)://host:port` of the NameNode's web server.
    pub http: String,
    /// `host:port` of its RPC server, what non-HA clients name the token service after.
    pub rpc: String,
}

#[derive(Debug, Clone)]
pub struct NameServiceConfig {
    /// The nameservice id (`dfs.nameservices`), or any name for a single NameNode.
    pub name: String,
    /// Tried in order; the one that answers as active is tried first next time.
    pub namenodes: Vec<NameNode>,
    /// Kerberos short name that may renew the tokens: the service's own.
    pub renewer: String,
    /// Overrides the computed token service (e.g. `use_ip=false` clusters want `host:port`).
    pub token_service: Option<String>,
}

pub struct WebHdfs {
    source: String,
    cfg: NameServiceConfig,
    namenodes: Failover,
    caller: Caller,
}

impl WebHdfs {
    pub fn new(cfg: NameServiceConfig, caller: Caller) -> Result<WebHdfs, HadoopError> {
        let namenodes = Failover::new(cfg.namenodes.iter().map(|nn| nn.http.as_str()), || {
            format!("nameservice {}: no NameNode configured", cfg.name)
        })?;
        Ok(WebHdfs {
            source: format!("hdfs:{}", cfg.name),
            cfg,
            namenodes,
            caller,
        })
    }

    /// The service a stock RPC client selects the token by.
    pub async fn token_service(&self) -> Result<String, HadoopError> {
        if let Some(s) = &self.cfg.token_service {
            return Ok(s.clone());
        }
        if self.cfg.namenodes.len() > 1 {
            return Ok(format!("{HA_SERVICE_PREFIX}{}", self.cfg.name));
        }
        rpc_token_service("NameNode", &self.cfg.namenodes[0].rpc).await
    }

    /// Runs `op` against the NameNodes, active one first, skipping standbys and dead ones.
    async fn on_active(
        &self,
        method: Method,
        op: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, HadoopError> {
        let mut full = vec![("op", op)];
        full.extend_from_slice(query);
        self.namenodes
            .run(
                |endpoint| self.caller.call(method.clone(), endpoint, PATH, op, &full),
                HadoopError::try_next_namenode,
                |attempts| HadoopError::NoActiveNameNode {
                    nameservice: self.cfg.name.clone(),
                    attempts,
                },
            )
            .await
    }

    async fn obtain_token(&self, user: &str) -> Result<IssuedToken, HadoopError> {
        check_user(user)?;
        // Named before the NameNode issues anything (see `Yarn::obtain_token`).
        let service = self.token_service().await?;
        let op = "GETDELEGATIONTOKEN";
        let body = self
            .on_active(
                Method::GET,
                op,
                &[("renewer", &self.cfg.renewer), ("doas", user)],
            )
            .await?;
        let url_string = parse_token(&format!("{} {op}", self.source), &body)?;
        Ok(IssuedToken::new(
            self.source.clone(),
            HDFS_KIND.to_owned(),
            service,
            url_string,
        ))
    }
}

impl TokenEndpoint for WebHdfs {
    fn source(&self) -> &str {
        &self.source
    }

    fn service_name(&self) -> &'static str {
        "hdfs"
    }

    fn obtain<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<IssuedToken, HadoopError>> {
        Box::pin(self.obtain_token(user))
    }

    fn renew<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<u64, HadoopError>> {
        Box::pin(async move {
            let op = "RENEWDELEGATIONTOKEN";
            let body = self
                .on_active(Method::PUT, op, &[("token", token.url_string())])
                .await?;
            parse_expiry(&format!("{} {op}", self.source), &body)
        })
    }

    fn cancel<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<(), HadoopError>> {
        Box::pin(async move {
            self.on_active(
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

    const TOKEN: &str = "SECRET-URL-STRING";

    fn ns(name: &str, urls: &[String]) -> NameServiceConfig {
        NameServiceConfig {
            name: name.into(),
            namenodes: urls
                .iter()
                .map(|u| NameNode {
                    http: u.clone(),
                    rpc: "127.0.0.1:8020".into(),
                })
                .collect(),
            renewer: "kube2hadoop".into(),
            token_service: None,
        }
    }

    fn client(cfg: NameServiceConfig) -> WebHdfs {
        WebHdfs::new(cfg, fake::caller(Duration::from_secs(5))).expect("valid config")
    }

    #[tokio::test]
    async fn obtain_sends_doas_and_renewer_and_relabels_for_rpc() {
        let nn = FakeServer::start(|_| fake::token_reply(TOKEN)).await;
        let hdfs = client(ns("nn", &[nn.url()]));
        let t = hdfs.obtain("alice").await.expect("token");
        assert_eq!(t.url_string(), TOKEN);
        assert_eq!(t.kind, "HDFS_DELEGATION_TOKEN");
        assert_eq!(t.service, "127.0.0.1:8020");
        assert_eq!(t.source, "hdfs:nn");
        let seen = nn.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, "/webhdfs/v1/");
        assert_eq!(seen[0].query["op"], "GETDELEGATIONTOKEN");
        assert_eq!(seen[0].query["doas"], "alice");
        assert_eq!(seen[0].query["renewer"], "kube2hadoop");
    }

    #[tokio::test]
    async fn ha_skips_standby_and_dead_namenodes_and_remembers_the_active_one() {
        let standby = FakeServer::start(|_| fake::standby()).await;
        let active = FakeServer::start(|_| fake::token_reply(TOKEN)).await;
        let dead = fake::dead_url().await;
        let hdfs = client(ns("ns1", &[dead, standby.url(), active.url()]));
        let t = hdfs
            .obtain("alice")
            .await
            .expect("token from the active NameNode");
        assert_eq!(t.service, "ha-hdfs:ns1");
        hdfs.obtain("alice").await.expect("second token");
        assert_eq!(standby.seen().len(), 1, "standby asked only once");
        assert_eq!(active.seen().len(), 2);
    }

    #[tokio::test]
    async fn all_standby_reports_every_attempt() {
        let a = FakeServer::start(|_| fake::standby()).await;
        let b = FakeServer::start(|_| fake::standby()).await;
        let err = client(ns("ns1", &[a.url(), b.url()]))
            .obtain("alice")
            .await
            .expect_err("no active NameNode");
        match &err {
            HadoopError::NoActiveNameNode { attempts, .. } => assert_eq!(attempts.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("ns1"), "{err}");
    }

    #[tokio::test]
    async fn proxy_user_refusal_is_not_retried_and_names_the_setting() {
        let nn = FakeServer::start(|_| {
            fake::remote(
                403,
                "SecurityException",
                "java.lang.SecurityException",
                "Failed to obtain user group information: \
                 org.apache.hadoop.security.authorize.AuthorizationException: \
                 User: kube2hadoop is not allowed to impersonate mallory",
            )
        })
        .await;
        let other = FakeServer::start(|_| fake::token_reply(TOKEN)).await;
        let err = client(ns("ns1", &[nn.url(), other.url()]))
            .obtain("mallory")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, HadoopError::ProxyUserNotAllowed { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("hadoop.proxyuser.kube2hadoop."),
            "{err}"
        );
        assert!(
            other.seen().is_empty(),
            "a refusal is not a reason to fail over"
        );
    }

    #[tokio::test]
    async fn a_hanging_namenode_times_out() {
        let nn = FakeServer::start(|_| Reply::Hang).await;
        let hdfs = WebHdfs::new(
            ns("nn", &[nn.url()]),
            fake::caller(Duration::from_millis(200)),
        )
        .expect("config");
        let err = hdfs.obtain("alice").await.expect_err("timeout");
        assert!(matches!(err, HadoopError::Timeout { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn renew_and_cancel_send_the_token_and_errors_never_echo_it() {
        let nn = FakeServer::start(|seen| match seen.query["op"].as_str() {
            "RENEWDELEGATIONTOKEN" => fake::expiry_reply(1_700_000_000_000),
            "CANCELDELEGATIONTOKEN" => Reply::Json(200, serde_json::Value::Null),
            _ => fake::token_reply(TOKEN),
        })
        .await;
        let hdfs = client(ns("nn", &[nn.url()]));
        let t = hdfs.obtain("alice").await.expect("token");
        assert_eq!(hdfs.renew(&t).await.expect("renewed"), 1_700_000_000_000);
        hdfs.cancel(&t).await.expect("cancelled");
        let seen = nn.seen();
        assert_eq!(seen[1].method, "PUT");
        assert_eq!(seen[1].query["token"], TOKEN);
        assert!(
            !seen[1].query.contains_key("doas"),
            "renew as the renewer itself"
        );
        assert_eq!(seen[2].query["op"], "CANCELDELEGATIONTOKEN");

        // A dead NameNode: reqwest's error would name the URL, token included.
        let dead = client(ns("nn", &[fake::dead_url().await]));
        let err = dead.renew(&t).await.expect_err("unreachable");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(TOKEN), "{text}");
    }

    #[tokio::test]
    async fn expired_and_unknown_tokens_are_typed() {
        let nn = FakeServer::start(|seen| match seen.query["op"].as_str() {
            "RENEWDELEGATIONTOKEN" => fake::remote(
                403,
                "InvalidToken",
                "org.apache.hadoop.security.token.SecretManager$InvalidToken",
                "token (HDFS_DELEGATION_TOKEN token 3 for alice) is expired",
            ),
            _ => fake::remote(
                403,
                "InvalidToken",
                "org.apache.hadoop.security.token.SecretManager$InvalidToken",
                "token (HDFS_DELEGATION_TOKEN token 3 for alice) can't be found in cache",
            ),
        })
        .await;
        let hdfs = client(ns("nn", &[nn.url()]));
        let t = IssuedToken::new("hdfs:nn".into(), HDFS_KIND.into(), "s".into(), TOKEN.into());
        let renew = hdfs.renew(&t).await.expect_err("expired");
        assert!(
            matches!(renew, HadoopError::TokenExpired { .. }),
            "{renew:?}"
        );
        let cancel = hdfs.cancel(&t).await.expect_err("unknown");
        assert!(
            matches!(cancel, HadoopError::TokenNotFound { .. }),
            "{cancel:?}"
        );
    }

    #[tokio::test]
    async fn garbage_answers_are_bad_responses() {
        let nn = FakeServer::start(|_| Reply::Json(200, serde_json::json!({"Token": {}}))).await;
        let err = client(ns("nn", &[nn.url()]))
            .obtain("alice")
            .await
            .expect_err("no urlString");
        assert!(matches!(err, HadoopError::BadResponse { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_users_never_reach_the_server() {
        let nn = FakeServer::start(|_| fake::token_reply(TOKEN)).await;
        let hdfs = client(ns("nn", &[nn.url()]));
        for user in ["", "a b", "x\ny"] {
            assert!(hdfs.obtain(user).await.is_err(), "{user:?}");
        }
        assert!(nn.seen().is_empty());
    }
}
