//! The Kubernetes side: TokenReview, pod and owner reads (each bounded by a timeout), and the
//! watches that feed the pod-by-IP index and the set of served namespaces, and whether a
//! ledger workload still runs.

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
use crate::ledger::lifecycle::Liveness;
use crate::ledger::reconcile::WorkloadState;
use crate::pod::{OwnerRef, PodFacts};
use crate::workload::{LookupError, OwnerLookup, OwnerObject, WorkloadKey, resolve};

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

/// A workload's top object as the API shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStatus {
    Running,
    /// A Job or training job that completed or failed, or a pod that terminated.
    Finished,
    /// Deleted, or deleted and recreated under the same name.
    Gone,
}

/// Final conditions of Jobs (`Complete`, `Failed`) and of the training operator's jobs
/// (`Succeeded`, `Failed`); pods finish with their phase.
pub fn is_finished(kind: &str, status: Option<&serde_json::Value>) -> bool {
    let Some(status) = status else {
        return false;
    };
    if kind == "Pod" {
        return matches!(
            status.get("phase").and_then(|p| p.as_str()),
            Some("Succeeded" | "Failed")
        );
    }
    status
        .get("conditions")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .any(|c| {
            matches!(
                c.get("type").and_then(|t| t.as_str()),
                Some("Complete" | "Failed" | "Succeeded")
            ) && c.get("status").and_then(|s| s.as_str()) == Some("True")
        })
}

impl Kube {
    pub async fn owner_status(&self, w: &WorkloadKey) -> Result<OwnerStatus, LookupError> {
        let (group, version) = match w.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", w.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &w.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&w.kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &w.namespace, &resource);
        let error = |detail: String| LookupError {
            kind: w.kind.clone(),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            detail,
        };
        let object = tokio::time::timeout(self.timeout, api.get_opt(&w.name))
            .await
            .map_err(|_| error(format!("no answer within {}s", self.timeout.as_secs())))?
            .map_err(|e| error(e.to_string()))?;
        Ok(match object {
            Some(o) if o.metadata.uid.as_deref() == Some(w.uid.as_str()) => {
                if is_finished(&w.kind, o.data.get("status")) {
                    OwnerStatus::Finished
                } else {
                    OwnerStatus::Running
                }
            }
            _ => OwnerStatus::Gone,
        })
    }
}

/// Liveness of ledger workloads from the API (the top object) and the pod index (pods that
/// outlive it, e.g. while the garbage collector works).
pub struct KubeWorkloads {
    pub kube: Arc<Kube>,
    pub index: SharedIndex,
}

impl KubeWorkloads {
    async fn judge(&self, w: &WorkloadKey) -> Liveness {
        if !self.index.is_ready() {
            return Liveness::Unknown;
        }
        match self.kube.owner_status(w).await {
            Ok(OwnerStatus::Running) => return Liveness::Alive,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(workload = %w, error = %e, "cannot tell whether the workload runs");
                return Liveness::Unknown;
            }
        }
        for pod in self.index.pods_in(&w.namespace) {
            if pod.deleting {
                continue;
            }
            match resolve(&pod, self.kube.as_ref()).await {
                Ok(k) if k.uid == w.uid => return Liveness::Alive,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(workload = %w, error = %e.message, "cannot resolve a pod's workload");
                    return Liveness::Unknown;
                }
            }
        }
        Liveness::Gone
    }
}

impl WorkloadState for KubeWorkloads {
    fn liveness<'a>(&'a self, w: &'a WorkloadKey) -> BoxFuture<'a, Liveness> {
        Box::pin(self.judge(w))
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

    #[test]
    fn finished_jobs_and_pods() {
        let cond = |t: &str, s: &str| serde_json::json!({"conditions": [{"type": t, "status": s}]});
        assert!(is_finished("Job", Some(&cond("Complete", "True"))));
        assert!(is_finished("Job", Some(&cond("Failed", "True"))));
        assert!(is_finished("TFJob", Some(&cond("Succeeded", "True"))));
        assert!(!is_finished("Job", Some(&cond("Complete", "False"))));
        assert!(!is_finished("TFJob", Some(&cond("Running", "True"))));
        assert!(!is_finished("Deployment", Some(&cond("Available", "True"))));
        assert!(!is_finished("Job", None));
        assert!(is_finished(
            "Pod",
            Some(&serde_json::json!({"phase": "Succeeded"}))
        ));
        assert!(!is_finished(
            "Pod",
            Some(&serde_json::json!({"phase": "Running"}))
        ));
    }
}
