//! The ledger's Secrets at the API server ([`SecretApi`] of `ledger::store`), selected by the
//! ledger's labels and written with resourceVersion checks. The reconciler's list comes from a
//! watch (no API read per pass); while the watch has not listed or is broken, from a read.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;

use super::watch::{Freshness, reflect};
use super::{LEDGER_SLOTS, limited};
use crate::ledger::StoreError;
use crate::ledger::store::{LEDGER_VERSION, MANAGED_BY, SecretApi, name_of};

pub struct KubeSecrets {
    api: Api<Secret>,
    timeout: Duration,
    watched: Store<Secret>,
    fresh: Freshness,
}

fn selector() -> String {
    format!(
        "{}={},{}={}",
        MANAGED_BY.0, MANAGED_BY.1, LEDGER_VERSION.0, LEDGER_VERSION.1
    )
}

impl KubeSecrets {
    /// Starts the watch of the ledger's Secrets in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, timeout: Duration) -> KubeSecrets {
        let api = Api::namespaced(client, namespace);
        let (watched, writer) = reflector::store::<Secret>();
        let config = watcher::Config::default()
            .labels(&selector())
            .list_semantic(watcher::ListSemantic::MostRecent);
        let fresh = reflect(api.clone(), config, writer, "ledger Secret");
        KubeSecrets {
            api,
            timeout,
            watched,
            fresh,
        }
    }

    /// One call on the Secret `name`: a conflict is the ledger's to retry, anything else
    /// names the Secret and the role the service needs.
    async fn call<T>(
        &self,
        op: &'static str,
        name: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, StoreError> {
        limited(&LEDGER_SLOTS, self.timeout, op, call)
            .await
            .map_err(|e| {
                if e.is_conflict() {
                    StoreError::Conflict(name.to_owned())
                } else {
                    StoreError::Api {
                        op,
                        name: name.to_owned(),
                        detail: e.cause.to_string(),
                    }
                }
            })
    }
}

impl SecretApi for KubeSecrets {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(self.call("read", name, self.api.get_opt(name)))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Secret>>, StoreError>> {
        Box::pin(async move {
            // A watched copy may trail a write by moments; a write based on it then fails its
            // resourceVersion check and waits for the next pass, which is what a read between
            // two writers would give too. Shared, not copied: a pass over 2,000 entries used to
            // copy 16 MB of Secrets, which the allocator then kept.
            if self.fresh.is_ready() && self.fresh.is_current() {
                return Ok(self.watched.state());
            }
            let params = ListParams::default().labels(&selector());
            let list = self.call("list", "(all)", self.api.list(&params)).await?;
            Ok(list.items.into_iter().map(Arc::new).collect())
        })
    }

    fn create<'a>(&'a self, secret: &'a Secret) -> BoxFuture<'a, Result<Secret, StoreError>> {
        Box::pin(async move {
            let params = PostParams::default();
            self.call("create", name_of(secret), self.api.create(&params, secret))
                .await
        })
    }

    fn replace<'a>(&'a self, secret: &'a Secret) -> BoxFuture<'a, Result<Secret, StoreError>> {
        Box::pin(async move {
            let (name, params) = (name_of(secret), PostParams::default());
            self.call("update", name, self.api.replace(name, &params, secret))
                .await
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let params = DeleteParams::default();
            let gone = async {
                match self.api.delete(name, &params).await {
                    // Already deleted (by another replica, or a retry): the goal is reached.
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                }
            };
            self.call("delete", name, gone).await
        })
    }
}
