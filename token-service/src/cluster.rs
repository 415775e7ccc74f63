//! The Kubernetes side: TokenReview, pod and owner reads (each bounded by a timeout), and the
//! watches that feed the pod-by-IP index and the set of served namespaces.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::error::{ApiError, Kind};
use crate::identity::{AUDIENCE, Review};
use crate::index::{IndexEvent, IndexWriter, SharedIndex};
use crate::pod::{OwnerRef, PodFacts};
use crate::workload::{LookupError, OwnerLookup, OwnerObject};

/// What the request path asks of the API server.
pub trait Cluster: Send + Sync {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, ApiError>>;
    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodFacts>, ApiError>>;
}

pub struct Kube {
    client: kube::Client,
    timeout: Duration,
}

impl Kube {
    pub fn new(client: kube::Client, timeout: Duration) -> Kube {
        Kube { client, timeout }
    }

    fn unavailable(&self, what: &str, detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            Kind::Unavailable,
            "kubernetes_unavailable",
            format!("cannot {what} at the Kubernetes API: {detail}"),
        )
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(what, e)),
            Err(_) => Err(self.unavailable(
                what,
                format!("no answer within {}s", self.timeout.as_secs()),
            )),
        }
    }

    async fn token_review(&self, token: &str) -> Result<Review, ApiError> {
        // The token is a credential: it goes into the review body only, never into a message.
        let request = TokenReview {
            spec: TokenReviewSpec {
                audiences: Some(vec![AUDIENCE.to_owned()]),
                token: Some(token.to_owned()),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = self
            .bounded(
                "review the bearer token",
                api.create(&PostParams::default(), &request),
            )
            .await?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        Ok(Review {
            authenticated: status.authenticated.unwrap_or(false),
            username: user.username,
            audiences: status.audiences.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            error: status.error,
        })
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodFacts>, ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self.bounded("read the pod", api.get_opt(name)).await?;
        Ok(pod.as_ref().map(PodFacts::from_pod))
    }

    async fn get_owner(
        &self,
        namespace: &str,
        owner: &OwnerRef,
    ) -> Result<Option<OwnerObject>, LookupError> {
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", owner.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&owner.kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let error = |detail: String| LookupError {
            kind: owner.kind.clone(),
            namespace: namespace.to_owned(),
            name: owner.name.clone(),
            detail,
        };
        let object = tokio::time::timeout(self.timeout, api.get_opt(&owner.name))
            .await
            .map_err(|_| error(format!("no answer within {}s", self.timeout.as_secs())))?
            .map_err(|e| error(e.to_string()))?;
        Ok(object.map(|o| OwnerObject {
            uid: o.metadata.uid.unwrap_or_default(),
            owners: o
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(|r| OwnerRef {
                    api_version: r.api_version,
                    kind: r.kind,
                    name: r.name,
                    uid: r.uid,
                    controller: r.controller.unwrap_or(false),
                })
                .collect(),
        }))
    }
}

/// Kubernetes' plural of a kind: the lowercase kind plus `s` for every controller kind we meet
/// (replicasets, jobs, tfjobs, pytorchjobs, mpijobs, …), with the English exceptions spelled out.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("ss")
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("ey") {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

impl Cluster for Kube {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, ApiError>> {
        Box::pin(self.token_review(token))
    }

    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodFacts>, ApiError>> {
        Box::pin(self.get_pod(namespace, name))
    }
}

impl OwnerLookup for Kube {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
        Box::pin(self.get_owner(namespace, owner))
    }
}

/// Namespaces whose labels match the selector, from a reflector.
#[derive(Clone)]
pub struct ServedNamespaces {
    store: Store<Namespace>,
    ready: Arc<AtomicBool>,
}

impl ServedNamespaces {
    pub fn is_served(&self, namespace: &str) -> bool {
        self.store.get(&ObjectRef::new(namespace)).is_some()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Starts the namespace reflector (`selector` empty: every namespace).
pub fn watch_namespaces(client: kube::Client, selector: &str) -> ServedNamespaces {
    let (store, writer) = reflector::store::<Namespace>();
    let mut config = watcher::Config::default();
    if !selector.is_empty() {
        config = config.labels(selector);
    }
    let stream = reflector::reflector(writer, watcher(Api::<Namespace>::all(client), config))
        .default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "namespace watch failed; retrying");
            }
        }
    });
    let ready = Arc::new(AtomicBool::new(false));
    let (waiting, flag) = (store.clone(), Arc::clone(&ready));
    tokio::spawn(async move {
        if waiting.wait_until_ready().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    ServedNamespaces { store, ready }
}

/// Starts the pod watch that feeds `index` (all namespaces: a duplicate address anywhere
/// must make an address ambiguous).
pub fn watch_pods(client: kube::Client, index: SharedIndex) {
    let stream = watcher(Api::<Pod>::all(client), watcher::Config::default()).default_backoff();
    let mut writer = IndexWriter::new(index);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => writer.on_event(match event {
                    watcher::Event::Apply(p) => IndexEvent::Apply(PodFacts::from_pod(&p)),
                    watcher::Event::Delete(p) => IndexEvent::Delete(PodFacts::from_pod(&p)),
                    watcher::Event::Init => IndexEvent::Init,
                    watcher::Event::InitApply(p) => IndexEvent::InitApply(PodFacts::from_pod(&p)),
                    watcher::Event::InitDone => IndexEvent::InitDone,
                }),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_controller_kinds() {
        for (kind, plural_) in [
            ("ReplicaSet", "replicasets"),
            ("Job", "jobs"),
            ("CronJob", "cronjobs"),
            ("StatefulSet", "statefulsets"),
            ("TFJob", "tfjobs"),
            ("PyTorchJob", "pytorchjobs"),
            ("Deployment", "deployments"),
            ("DaemonSet", "daemonsets"),
            ("Policy", "policies"),
        ] {
            assert_eq!(plural(kind), plural_);
        }
    }
}
