//! Hive Metastore delegation tokens (kind `HIVE_DELEGATION_TOKEN`), for one metastore or a group
//! sharing a token store, over the metastore's Thrift API with SASL GSSAPI.
//!
//! The calls, as `HMSHandler` serves them to a Kerberos-authenticated caller:
//! - `get_delegation_token(owner, renewer)` returns the token's URL-safe string. When the caller
//!   is not `owner`, the metastore applies the proxy-user rules of its own core-site.xml
//!   (`hadoop.proxyuser.<us>.hosts/.users/.groups`).
//! - `renew_delegation_token(token)` returns the new expiry; only the renewer may renew.
//! - `cancel_delegation_token(token)`.
//!
//! The token carries no service; clients pick it by kind and by `hive.metastore.token.signature`
//! (empty by default, which Spark and Hive's own clients use), so we write the configured
//! signature as the token's service. Metastores of one group share their token store (database
//! or ZooKeeper), so any of them renews or cancels what another issued.

pub mod bounded;
pub mod client;
#[allow(clippy::all, clippy::pedantic, unused_qualifications, dead_code)]
#[rustfmt::skip]
pub mod metastore_thrift;
pub mod sasl;

use std::time::Duration;

use futures::future::BoxFuture;

use self::client::{Client, Metastore, Sasl};
use self::metastore_thrift::TThriftHiveMetastoreSyncClient as _;
use super::error::HadoopError;
use super::failover::Failover;
use super::{IssuedToken, TokenEndpoint, check_user};

pub const HIVE_KIND: &str = "HIVE_DELEGATION_TOKEN";

#[derive(Debug, Clone)]
pub struct HiveConfig {
    /// A name for logs, metrics and the token's `source`.
    pub name: String,
    /// `thrift://host:port`, tried in order; the one that answered is tried first next time.
    pub metastores: Vec<String>,
    /// The metastores' Kerberos principal (`hive/_HOST@REALM`); needed when we use Kerberos.
    pub principal: Option<String>,
    /// Kerberos short name that may renew the tokens: the service's own.
    pub renewer: String,
    /// The clients' `hive.metastore.token.signature`, written as the token's service.
    pub token_signature: String,
    /// The weakest SASL layer accepted; the strongest the metastore offers is used.
    pub min_protection: sasl::Protection,
}

pub struct Hive {
    source: String,
    cfg: HiveConfig,
    metastores: Failover<Metastore>,
    auth: Sasl,
    timeout: Duration,
    superuser: String,
}

impl Hive {
    /// `spnego` is the service's Kerberos identity; `None` speaks plain Thrift (a metastore
    /// without SASL issues no tokens: for tests).
    pub fn new(
        cfg: HiveConfig,
        spnego: Option<crate::hadoop::spnego::Spnego>,
        timeout: Duration,
        superuser: String,
    ) -> Result<Hive, HadoopError> {
        let parsed = cfg
            .metastores
            .iter()
            .map(|uri| Metastore::parse(uri))
            .collect::<Result<Vec<_>, _>>()?;
        let metastores = Failover::of(parsed, || {
            format!("Hive metastores {}: no metastore URI configured", cfg.name)
        })?;
        let auth = match (spnego, &cfg.principal) {
            (Some(spnego), Some(principal)) => Sasl::Kerberos {
                spnego,
                principal: principal.clone(),
                min: cfg.min_protection,
            },
            (Some(_), None) => {
                return Err(HadoopError::Config(format!(
                    "Hive metastores {}: set `principal` (hive.metastore.kerberos.principal, \
                     e.g. hive/_HOST@EXAMPLE.COM)",
                    cfg.name
                )));
            }
            (None, _) => Sasl::Off,
        };
        Ok(Hive {
            source: format!("hive:{}", cfg.name),
            cfg,
            metastores,
            auth,
            timeout,
            superuser,
        })
    }

    /// Runs `f` on the metastores in turn until one answers, skipping those that are down.
    async fn on_any<T, F>(&self, f: F) -> Result<T, HadoopError>
    where
        T: Send + 'static,
        F: Fn(&mut Client) -> thrift::Result<T> + Clone + Send + 'static,
    {
        self.metastores
            .run(
                |metastore| {
                    let (metastore, auth, f) = (metastore.clone(), self.auth.clone(), f.clone());
                    let (timeout, superuser) = (self.timeout, self.superuser.clone());
                    async move {
                        let label = metastore_label(&metastore);
                        let addrs = client::resolve(&metastore, timeout).await?;
                        let call = tokio::task::spawn_blocking(move || {
                            client::call(&metastore, &addrs, &auth, timeout, &superuser, f)
                        });
                        // The call ends by its own deadline (`timeout`); this only keeps a
                        // stuck worker from holding the request past it.
                        let bound = timeout.saturating_add(Duration::from_secs(1));
                        match tokio::time::timeout(bound, call).await {
                            Ok(Ok(result)) => result,
                            Ok(Err(join)) => Err(HadoopError::Unreachable {
                                endpoint: label,
                                detail: format!("the call's worker failed: {join}"),
                            }),
                            Err(_) => Err(HadoopError::Timeout {
                                endpoint: label,
                                timeout: bound,
                            }),
                        }
                    }
                },
                HadoopError::try_next_namenode,
                |attempts| HadoopError::NoMetastore {
                    cluster: self.cfg.name.clone(),
                    attempts,
                },
            )
            .await
    }

    async fn obtain_token(&self, user: &str) -> Result<IssuedToken, HadoopError> {
        check_user(user)?;
        let (owner, renewer) = (user.to_owned(), self.cfg.renewer.clone());
        let url = self
            .on_any(move |c| c.get_delegation_token(owner.clone(), renewer.clone()))
            .await?;
        if url.is_empty() {
            return Err(HadoopError::BadResponse {
                endpoint: self.source.clone(),
                detail: "empty token".into(),
            });
        }
        Ok(IssuedToken::new(
            self.source.clone(),
            HIVE_KIND.to_owned(),
            self.cfg.token_signature.clone(),
            url,
        ))
    }

    async fn renew_token(&self, token: &IssuedToken) -> Result<u64, HadoopError> {
        let url = zeroize::Zeroizing::new(token.url_string().to_owned());
        let expiry = self
            .on_any(move |c| c.renew_delegation_token(url.to_string()))
            .await?;
        u64::try_from(expiry).map_err(|_| HadoopError::BadResponse {
            endpoint: self.source.clone(),
            detail: format!("renewal returned expiry {expiry}"),
        })
    }

    async fn cancel_token(&self, token: &IssuedToken) -> Result<(), HadoopError> {
        let url = zeroize::Zeroizing::new(token.url_string().to_owned());
        self.on_any(move |c| c.cancel_delegation_token(url.to_string()))
            .await
    }
}

fn metastore_label(m: &Metastore) -> String {
    use super::failover::Server as _;
    m.label().to_owned()
}

impl TokenEndpoint for Hive {
    fn source(&self) -> &str {
        &self.source
    }

    fn service_name(&self) -> &'static str {
        "hive"
    }

    fn obtain<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<IssuedToken, HadoopError>> {
        Box::pin(self.obtain_token(user))
    }

    fn renew<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<u64, HadoopError>> {
        Box::pin(self.renew_token(token))
    }

    fn cancel<'a>(&'a self, token: &'a IssuedToken) -> BoxFuture<'a, Result<(), HadoopError>> {
        Box::pin(self.cancel_token(token))
    }
}

#[cfg(test)]
mod tests;
