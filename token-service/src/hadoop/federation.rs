//! One token per namespace (and KMS), bundled: a federated cluster (ViewFS, router-based
//! federation, several nameservices) needs a token from each before a job can run.

use std::sync::Arc;

use futures::future::{BoxFuture, join_all};

use super::error::HadoopError;
use super::{
    IssuedToken, ProviderCall, ProviderObserver, Renewal, SetError, TokenEndpoint, TokenSet,
    TokenSource,
};
use crate::services::Selection;

pub struct Federation {
    endpoints: Vec<Arc<dyn TokenEndpoint>>,
    observe: Option<ProviderObserver>,
}

impl Federation {
    pub fn new(endpoints: Vec<Arc<dyn TokenEndpoint>>) -> Result<Federation, HadoopError> {
        if endpoints.is_empty() {
            return Err(HadoopError::Config(
                "no nameservice or KMS configured to obtain tokens from".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &endpoints {
            if !seen.insert(e.source().to_owned()) {
                return Err(HadoopError::Config(format!(
                    "{} is configured twice",
                    e.source()
                )));
            }
        }
        Ok(Federation {
            endpoints,
            observe: None,
        })
    }

    /// Reports every provider call (service, provider, operation, result, latency).
    pub fn observed(mut self, observe: ProviderObserver) -> Federation {
        self.observe = Some(observe);
        self
    }

    async fn timed<T>(
        &self,
        endpoint: &dyn TokenEndpoint,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, HadoopError>>,
    ) -> Result<T, HadoopError> {
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some(observe) = &self.observe {
            observe(&ProviderCall {
                service: endpoint.service_name(),
                source: endpoint.source(),
                op,
                ok: result.is_ok(),
                elapsed: started.elapsed(),
            });
        }
        result
    }

    fn endpoint_for(&self, token: &IssuedToken) -> Result<&Arc<dyn TokenEndpoint>, HadoopError> {
        self.endpoints
            .iter()
            .find(|e| e.source() == token.source)
            .ok_or_else(|| HadoopError::UnknownSource {
                source_label: token.source.clone(),
            })
    }

    async fn obtain_all(&self, user: &str, services: &Selection) -> Result<TokenSet, SetError> {
        let chosen: Vec<_> = self
            .endpoints
            .iter()
            .filter(|e| services.includes(e.service_name()))
            .collect();
        if chosen.is_empty() {
            // The request path refuses unconfigured services first; this guards the rest.
            return Err(SetError {
                failures: vec![(
                    services.to_string(),
                    HadoopError::Config(format!("no configured service among {services}")),
                )],
            });
        }
        let results = join_all(
            chosen
                .iter()
                .map(|e| self.timed(e.as_ref(), "obtain", e.obtain(user))),
        )
        .await;
        let mut tokens = Vec::new();
        let mut failures = Vec::new();
        for (endpoint, result) in chosen.iter().zip(results) {
            match result {
                Ok(t) => {
                    if let Err(e) = check_owner(user, &t) {
                        failures.push((endpoint.source().to_owned(), e));
                    }
                    // Kept even when wrong, so that it is cancelled with the rest below.
                    tokens.push(t);
                }
                Err(e) => failures.push((endpoint.source().to_owned(), e)),
            }
        }
        if failures.is_empty() {
            return Ok(TokenSet { tokens });
        }
        // A partial set is useless to the job and would leave live tokens nobody tracks.
        let partial = TokenSet { tokens };
        if let Err(e) = self.cancel_all(&partial).await {
            tracing::warn!(error = %e, "cancelling the partial token set failed");
        }
        Err(SetError { failures })
    }

    async fn renew_all(&self, set: &TokenSet) -> Result<Renewal, SetError> {
        let results = join_all(set.tokens.iter().map(|t| async move {
            let endpoint = self.endpoint_for(t)?;
            self.timed(endpoint.as_ref(), "renew", endpoint.renew(t))
                .await
        }))
        .await;
        let mut per_token = Vec::new();
        let mut failures = Vec::new();
        for (t, result) in set.tokens.iter().zip(results) {
            match result {
                Ok(expiry) => per_token.push((t.source.clone(), expiry)),
                Err(e) => failures.push((t.source.clone(), e)),
            }
        }
        if !failures.is_empty() {
            return Err(SetError { failures });
        }
        let expires_at_ms = per_token
            .iter()
            .map(|(_, e)| *e)
            .min()
            .ok_or_else(|| SetError {
                failures: vec![(
                    "token set".into(),
                    HadoopError::Config("the token set is empty".into()),
                )],
            })?;
        Ok(Renewal {
            expires_at_ms,
            per_token,
        })
    }

    async fn cancel_all(&self, set: &TokenSet) -> Result<(), SetError> {
        let results = join_all(set.tokens.iter().map(|t| async move {
            let endpoint = self.endpoint_for(t)?;
            self.timed(endpoint.as_ref(), "cancel", endpoint.cancel(t))
                .await
        }))
        .await;
        let failures: Vec<_> = set
            .tokens
            .iter()
            .zip(results)
            .filter_map(|(t, r)| r.err().map(|e| (t.source.clone(), e)))
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SetError { failures })
        }
    }
}

/// A token must name `user` as its owner. A server that ignores `doAs` (a proxy-user filter
/// left out of its web server) would issue it to this service itself: handing out such a
/// token gives a pod the superuser's rights. Fails closed: a token that does not parse, or of
/// a kind whose identifier we cannot read, is refused too (a new provider's kind must be
/// taught to `hadoop_token::identifier` first).
fn check_owner(user: &str, token: &IssuedToken) -> Result<(), HadoopError> {
    let wrong = |owner: String| HadoopError::WrongOwner {
        source_label: token.source.clone(),
        asked: user.to_owned(),
        owner,
    };
    let Ok(parsed) = token.to_token() else {
        return Err(wrong("<a token that does not parse>".into()));
    };
    match hadoop_token::identifier::decode(&parsed.kind, &parsed.identifier) {
        Ok(Some(id)) if id.owner == user => Ok(()),
        Ok(Some(id)) => Err(wrong(id.owner)),
        Ok(None) => Err(wrong(format!(
            "<unknown: kind {} has no identifier reader>",
            parsed.kind
        ))),
        Err(_) => Err(wrong("<an identifier that does not decode>".into())),
    }
}

impl TokenSource for Federation {
    fn obtain<'a>(
        &'a self,
        user: &'a str,
        services: &'a Selection,
    ) -> BoxFuture<'a, Result<TokenSet, SetError>> {
        Box::pin(self.obtain_all(user, services))
    }

    fn renew<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<Renewal, SetError>> {
        Box::pin(self.renew_all(set))
    }

    fn cancel<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<(), SetError>> {
        Box::pin(self.cancel_all(set))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hadoop::fake::{self, FakeServer, Reply};
    use crate::hadoop::webhdfs::{NameNode, NameServiceConfig, WebHdfs};

    /// A nameservice of one NameNode at `url` (token service `ip:port`).
    fn hdfs_at(name: &str, url: &str) -> Arc<dyn TokenEndpoint> {
        let hdfs = WebHdfs::new(
            NameServiceConfig {
                name: name.into(),
                namenodes: vec![NameNode {
                    http: url.into(),
                    rpc: "127.0.0.1:8020".into(),
                }],
                renewer: "kube2hadoop".into(),
                token_service: None,
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("config");
        Arc::new(hdfs)
    }

    /// A namespace whose NameNode issues `token`, renews to `expiry` and cancels with `cancel`.
    async fn namespace(
        name: &str,
        token: &'static str,
        expiry: u64,
        cancel_ok: bool,
    ) -> (FakeServer, Arc<dyn TokenEndpoint>) {
        // A real token of alice's, numbered after the label ("T2" is sequence number 2).
        let seq = token.trim_start_matches('T').parse().unwrap_or(0);
        let token = crate::fixtures::url_string("alice", seq);
        let server = FakeServer::start(move |seen| match seen.query["op"].as_str() {
            "GETDELEGATIONTOKEN" => fake::token_reply(&token),
            "RENEWDELEGATIONTOKEN" => fake::expiry_reply(expiry),
            _ if cancel_ok => Reply::Json(200, serde_json::Value::Null),
            _ => fake::remote(500, "IOException", "java.io.IOException", "disk on fire"),
        })
        .await;
        let hdfs = WebHdfs::new(
            NameServiceConfig {
                name: name.into(),
                namenodes: vec![NameNode {
                    http: server.url(),
                    rpc: "127.0.0.1:8020".into(),
                }],
                renewer: "kube2hadoop".into(),
                token_service: Some(format!("ha-hdfs:{name}")),
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("config");
        (server, Arc::new(hdfs))
    }

    #[tokio::test]
    async fn one_token_per_namespace_and_renew_reports_the_earliest_expiry() {
        let (_a, ea) = namespace("ns1", "T1", 2_000, true).await;
        let (_b, eb) = namespace("ns2", "T2", 1_000, true).await;
        let fed = Federation::new(vec![ea, eb]).expect("config");
        let set = fed.obtain("alice", &Selection::All).await.expect("tokens");
        let services: Vec<_> = set.tokens.iter().map(|t| t.service.as_str()).collect();
        assert_eq!(services, ["ha-hdfs:ns1", "ha-hdfs:ns2"]);
        let renewal = fed.renew(&set).await.expect("renewed");
        assert_eq!(renewal.expires_at_ms, 1_000);
        assert_eq!(
            renewal.per_token,
            vec![
                ("hdfs:ns1".to_owned(), 2_000),
                ("hdfs:ns2".to_owned(), 1_000)
            ]
        );
    }

    #[tokio::test]
    async fn cancel_attempts_every_token_and_reports_each_failure() {
        let (a, ea) = namespace("ns1", "T1", 1, false).await;
        let (b, eb) = namespace("ns2", "T2", 1, true).await;
        let (c, ec) = namespace("ns3", "T3", 1, false).await;
        let fed = Federation::new(vec![ea, eb, ec]).expect("config");
        let set = fed.obtain("alice", &Selection::All).await.expect("tokens");
        let err = fed.cancel(&set).await.expect_err("two cancels fail");
        let failed: Vec<_> = err.failures.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(failed, ["hdfs:ns1", "hdfs:ns3"]);
        for server in [&a, &b, &c] {
            assert!(
                server
                    .seen()
                    .iter()
                    .any(|s| s.query["op"] == "CANCELDELEGATIONTOKEN"),
                "every namespace got its cancel"
            );
        }
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_namespace_cancels_the_tokens_already_issued() {
        let (good, eg) = namespace("ns1", "T1", 1, true).await;
        let bad = FakeServer::start(|_| fake::standby()).await;
        let eb = hdfs_at("ns2", &bad.url());
        let fed = Federation::new(vec![eg, eb]).expect("config");
        let err = fed
            .obtain("alice", &Selection::All)
            .await
            .expect_err("ns2 has no active NameNode");
        assert_eq!(err.failures.len(), 1);
        assert_eq!(err.failures[0].0, "hdfs:ns2");
        let ops: Vec<_> = good.seen().iter().map(|s| s.query["op"].clone()).collect();
        assert_eq!(ops, ["GETDELEGATIONTOKEN", "CANCELDELEGATIONTOKEN"]);
    }

    #[tokio::test]
    async fn a_token_issued_to_anyone_but_the_user_is_cancelled_and_refused() {
        // A NameNode that ignores doas issues the token to the caller: the superuser.
        let ours = crate::fixtures::url_string("kube2hadoop", 7);
        let server = FakeServer::start(move |seen| match seen.query["op"].as_str() {
            "GETDELEGATIONTOKEN" => fake::token_reply(&ours),
            _ => Reply::Json(200, serde_json::Value::Null),
        })
        .await;
        let hdfs = hdfs_at("ns1", &server.url());
        let fed = Federation::new(vec![hdfs]).expect("config");
        let err = fed
            .obtain("alice", &Selection::All)
            .await
            .expect_err("not alice's token");
        assert!(
            matches!(&err.failures[0].1, HadoopError::WrongOwner { owner, .. } if owner == "kube2hadoop"),
            "{err:?}"
        );
        let ops: Vec<_> = server
            .seen()
            .iter()
            .map(|s| s.query["op"].clone())
            .collect();
        assert_eq!(ops, ["GETDELEGATIONTOKEN", "CANCELDELEGATIONTOKEN"]);
        // A token we cannot read is not handed out either, and not left live.
        let server = FakeServer::start(|seen| match seen.query["op"].as_str() {
            "GETDELEGATIONTOKEN" => fake::token_reply("not-a-url-string"),
            _ => Reply::Json(200, serde_json::Value::Null),
        })
        .await;
        let hdfs = hdfs_at("ns1", &server.url());
        let fed = Federation::new(vec![hdfs]).expect("config");
        fed.obtain("alice", &Selection::All)
            .await
            .expect_err("an unreadable token");
        let ops: Vec<_> = server
            .seen()
            .iter()
            .map(|s| s.query["op"].clone())
            .collect();
        assert_eq!(ops, ["GETDELEGATIONTOKEN", "CANCELDELEGATIONTOKEN"]);
        let alices = crate::fixtures::url_string("alice", 8);
        let server = FakeServer::start(move |_| fake::token_reply(&alices)).await;
        let hdfs = hdfs_at("ns1", &server.url());
        let fed = Federation::new(vec![hdfs]).expect("config");
        fed.obtain("alice", &Selection::All)
            .await
            .expect("alice's own token");
    }

    #[tokio::test]
    async fn only_the_selected_kinds_are_asked() {
        let (a, ea) = namespace("ns1", "T1", 1, true).await;
        let k1 = crate::fixtures::url_string("alice", 9);
        let kms_server = FakeServer::start(move |_| fake::token_reply(&k1)).await;
        let kms = crate::hadoop::kms::Kms::new(
            crate::hadoop::kms::KmsConfig {
                name: "kms".into(),
                urls: vec![kms_server.url()],
                renewer: "kube2hadoop".into(),
                token_service: "kms://http@localhost:9600/kms".into(),
            },
            fake::caller(Duration::from_secs(5)),
        )
        .expect("config");
        let fed = Federation::new(vec![ea, Arc::new(kms)]).expect("config");
        let set = fed
            .obtain("alice", &Selection::Only(["kms"].into()))
            .await
            .expect("kms only");
        let sources: Vec<_> = set.tokens.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(sources, ["kms:kms"]);
        assert!(a.seen().is_empty(), "HDFS was not chosen, so not asked");
        let err = fed
            .obtain("alice", &Selection::Only(["yarn"].into()))
            .await
            .expect_err("no YARN configured");
        assert!(err.to_string().contains("yarn"), "{err}");
        let all = fed.obtain("alice", &Selection::All).await.expect("all");
        assert_eq!(all.tokens.len(), 2);
    }

    #[tokio::test]
    async fn every_provider_call_is_reported_with_its_service_and_result() {
        let (_a, ea) = namespace("ns1", "T1", 5, false).await;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let fed = Federation::new(vec![ea])
            .expect("config")
            .observed(Arc::new(move |c: &ProviderCall<'_>| {
                log.lock()
                    .expect("lock")
                    .push(format!("{} {} {} {}", c.service, c.source, c.op, c.ok));
            }));
        let set = fed.obtain("alice", &Selection::All).await.expect("tokens");
        fed.renew(&set).await.expect("renewed");
        fed.cancel(&set)
            .await
            .expect_err("this NameNode fails cancels");
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                "hdfs hdfs:ns1 obtain true",
                "hdfs hdfs:ns1 renew true",
                "hdfs hdfs:ns1 cancel false"
            ]
        );
    }

    #[tokio::test]
    async fn tokens_from_unknown_sources_are_refused() {
        let (_a, ea) = namespace("ns1", "T1", 1, true).await;
        let fed = Federation::new(vec![ea]).expect("config");
        let stray = TokenSet {
            tokens: vec![IssuedToken::new(
                "hdfs:gone".into(),
                "HDFS_DELEGATION_TOKEN".into(),
                "s".into(),
                "T".into(),
            )],
        };
        let err = fed.renew(&stray).await.expect_err("unknown source");
        assert!(matches!(
            err.failures[0].1,
            HadoopError::UnknownSource { .. }
        ));
    }

    #[tokio::test]
    async fn duplicate_or_missing_endpoints_are_configuration_errors() {
        assert!(Federation::new(vec![]).is_err());
        let (_a, ea) = namespace("ns1", "T1", 1, true).await;
        let (_b, eb) = namespace("ns1", "T2", 1, true).await;
        assert!(Federation::new(vec![ea, eb]).is_err());
    }
}
