//! The Kubernetes side: TokenReview, pod and owner reads (each bounded by a timeout), and the
//! watches that feed the pod-by-IP index and the set of served namespaces, and whether a
//! ledger workload still runs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::coverage::Registration;
use crate::error::{ApiError, Kind};
use crate::identity::{AUDIENCE, Review};
use crate::index::{IndexEvent, IndexWriter, SharedIndex};
use crate::ledger::lifecycle::Liveness;
use crate::ledger::reconcile::WorkloadState;
use crate::pod::{OwnerRef, PodFacts, owner_refs};
use crate::workload::{LookupError, OwnerLookup, OwnerObject, StampedKinds, WorkloadKey, reaches};

/// What the request path asks of the API server.
pub trait Cluster: Send + Sync {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, ApiError>>;
    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodFacts>, ApiError>>;
    /// The pods holding `ip` now, read from the API server itself.
    fn pods_at(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<PodFacts>, ApiError>>;
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
        Ok(crate::request::review_of(answer.status))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodFacts>, ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self.bounded("read the pod", api.get_opt(name)).await?;
        Ok(pod.as_ref().map(PodFacts::from_pod))
    }

    async fn list_pods_at(&self, ip: IpAddr) -> Result<Vec<PodFacts>, ApiError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        // No resourceVersion: a consistent read from etcd, not the possibly lagging watch cache.
        let params = ListParams::default().fields(&format!("status.podIP={ip}"));
        let list = self
            .bounded(
                "list the pods holding the caller's address",
                api.list(&params),
            )
            .await?;
        Ok(list.items.iter().map(PodFacts::from_pod).collect())
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
        Ok(object.map(|o| {
            let annotation = |key: &str| {
                o.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(key))
                    .cloned()
            };
            OwnerObject {
                owners: owner_refs(&o.metadata),
                user: annotation(k2h_contract::annotations::USER),
                stamp: annotation(k2h_contract::annotations::STAMP),
                uid: o.metadata.uid.clone().unwrap_or_default(),
            }
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
    pub stamped: StampedKinds,
}

impl KubeWorkloads {
    async fn judge(&self, w: &WorkloadKey, user: Option<&str>) -> Liveness {
        // A stale index may lack a pod created while the watch was down: judge nothing then.
        if !self.index.is_current() {
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
        // Pods whose chain cannot be proven any more (an owner vanished) are refused new tokens,
        // but still count here if they carry the record's user: only lookups that fail leave it
        // unknown. Another user's pod pointing at the workload never counts.
        for pod in self.index.pods_in(&w.namespace) {
            if pod.deleting {
                continue;
            }
            match reaches(&pod, self.kube.as_ref(), &self.stamped, &w.uid, user).await {
                Ok(true) => return Liveness::Alive,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(workload = %w, error = %e, "cannot follow a pod's owners");
                    return Liveness::Unknown;
                }
            }
        }
        Liveness::Gone
    }
}

impl WorkloadState for KubeWorkloads {
    fn liveness<'a>(
        &'a self,
        w: &'a WorkloadKey,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Liveness> {
        Box::pin(self.judge(w, user))
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

    fn pods_at(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<PodFacts>, ApiError>> {
        Box::pin(self.list_pods_at(ip))
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

/// Whether a reflector's store follows the API server: `ready` once a complete list has been
/// seen, `current` while no watch error has happened since the last complete list.
#[derive(Clone, Default)]
struct Freshness {
    ready: Arc<AtomicBool>,
    current: Arc<AtomicBool>,
}

impl Freshness {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn is_current(&self) -> bool {
        self.current.load(Ordering::SeqCst)
    }
}

/// Feeds `writer` from the watch of `api`. As for the pod watch, a failed watch is never
/// resumed: events may have been lost (an admin narrowing the webhook while the connection was
/// cut), so the store counts as stale from the first error until a new watcher has relisted
/// everything.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    mut writer: reflector::store::Writer<K>,
    what: &'static str,
) -> Freshness
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync,
    K: 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let fresh = Freshness::default();
    let flags = fresh.clone();
    relist_forever(
        api,
        config,
        what,
        "refusing what depends on it",
        move |watched| match watched {
            Watched::Event(event) => {
                writer.apply_watcher_event(&event);
                if matches!(event, watcher::Event::InitDone) {
                    flags.ready.store(true, Ordering::SeqCst);
                    flags.current.store(true, Ordering::SeqCst);
                }
            }
            Watched::Broken => flags.current.store(false, Ordering::SeqCst),
        },
    );
    fresh
}

/// Namespaces whose labels match the selector, from a reflector.
#[derive(Clone)]
pub struct ServedNamespaces {
    store: Store<Namespace>,
    fresh: Freshness,
}

impl ServedNamespaces {
    pub fn is_served(&self, namespace: &str) -> bool {
        self.store.get(&ObjectRef::new(namespace)).is_some()
    }

    /// The labels of a served namespace (`None`: not served, or not seen yet).
    pub fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.store
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }

    pub fn is_ready(&self) -> bool {
        self.fresh.is_ready()
    }

    /// No watch error since the last complete list: the labels are today's.
    pub fn is_current(&self) -> bool {
        self.fresh.is_current()
    }
}

/// Starts the namespace reflector (`selector` empty: every namespace).
pub fn watch_namespaces(client: kube::Client, selector: &str) -> ServedNamespaces {
    let (store, writer) = reflector::store::<Namespace>();
    let mut config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    if !selector.is_empty() {
        config = config.labels(selector);
    }
    let fresh = reflect(Api::<Namespace>::all(client), config, writer, "namespace");
    ServedNamespaces { store, fresh }
}

/// iddecorator's mutating webhook registration, from a reflector of the one configuration.
#[derive(Clone)]
pub struct WebhookRegistration {
    store: Store<MutatingWebhookConfiguration>,
    fresh: Freshness,
    configuration: String,
    webhook: String,
}

impl WebhookRegistration {
    /// What the cluster registers now; [`Registration::Loading`] until the first list,
    /// [`Registration::Stale`] from a watch error until the next complete list.
    pub fn current(&self) -> Registration {
        if !self.fresh.is_ready() {
            return Registration::Loading;
        }
        if !self.fresh.is_current() {
            return Registration::Stale;
        }
        let found = self.store.get(&ObjectRef::new(&self.configuration));
        Registration::of(found.as_deref(), &self.configuration, &self.webhook)
    }

    pub fn is_ready(&self) -> bool {
        self.fresh.is_ready()
    }
}

/// Starts watching the MutatingWebhookConfiguration `configuration` (its webhook `webhook`).
pub fn watch_webhook(
    client: kube::Client,
    configuration: &str,
    webhook: &str,
) -> WebhookRegistration {
    let (store, writer) = reflector::store::<MutatingWebhookConfiguration>();
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={configuration}"))
        .list_semantic(watcher::ListSemantic::MostRecent);
    let api = Api::<MutatingWebhookConfiguration>::all(client);
    let fresh = reflect(api, config, writer, "webhook registration");
    WebhookRegistration {
        store,
        fresh,
        configuration: configuration.to_owned(),
        webhook: webhook.to_owned(),
    }
}

/// First and longest pause between two attempts to (re)start the pod watch.
const WATCH_RETRY_MIN: Duration = Duration::from_millis(500);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(10);

/// The pause after `failures` consecutive failed attempts: doubling, capped.
pub fn watch_retry_delay(failures: u32) -> Duration {
    WATCH_RETRY_MIN
        .saturating_mul(1u32 << failures.saturating_sub(1).min(8))
        .min(WATCH_RETRY_MAX)
}

/// Starts the pod watch that feeds `index` (all namespaces: a duplicate address anywhere
/// must make an address ambiguous).
///
/// A watch that fails is not resumed from its last resource version: events may have been
/// lost in between (an API server restart, a cut connection) and an address freed and reused
/// meanwhile would still lead to its old pod. The index is marked stale at the first error
/// (lookups refuse) and a new watcher relists everything, with a consistent read, before the
/// index answers again.
pub fn watch_pods(client: kube::Client, index: SharedIndex) {
    let api = Api::<Pod>::all(client);
    let config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    let mut writer = IndexWriter::new(index);
    relist_forever(
        api,
        config,
        "pod",
        "refusing address lookups",
        move |watched| {
            writer.on_event(match watched {
                Watched::Event(watcher::Event::Apply(p)) => {
                    IndexEvent::Apply(PodFacts::from_pod(&p))
                }
                Watched::Event(watcher::Event::Delete(p)) => {
                    IndexEvent::Delete(PodFacts::from_pod(&p))
                }
                Watched::Event(watcher::Event::Init) => IndexEvent::Init,
                Watched::Event(watcher::Event::InitApply(p)) => {
                    IndexEvent::InitApply(PodFacts::from_pod(&p))
                }
                Watched::Event(watcher::Event::InitDone) => IndexEvent::InitDone,
                Watched::Broken => IndexEvent::Broken,
            })
        },
    );
}

/// What [`relist_forever`] hands on: an event, or the end of a watch that failed.
enum Watched<K> {
    Event(watcher::Event<K>),
    Broken,
}

/// Watches `api` forever. A failed watch is never resumed from its last resource version
/// (events may have been lost in between): the caller hears of the first error, and a new
/// watcher relists everything, after a backoff that resets once a complete list was seen.
/// `what` and `refusing` name the watch and its consequence in the warning; `on` gets every
/// event, then [`Watched::Broken`] at the first error.
fn relist_forever<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    refusing: &'static str,
    mut on: impl FnMut(Watched<K>) + Send + 'static,
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let stream = watcher(api.clone(), config.clone());
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            failures = 0;
                        }
                        on(Watched::Event(event));
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(
                            error = %e,
                            "{what} watch failed; {refusing} until a full relist"
                        );
                        break;
                    }
                }
            }
            on(Watched::Broken);
            tokio::time::sleep(watch_retry_delay(failures.max(1))).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_retries_back_off_to_a_cap() {
        assert_eq!(watch_retry_delay(0), WATCH_RETRY_MIN);
        assert_eq!(watch_retry_delay(1), WATCH_RETRY_MIN);
        assert_eq!(watch_retry_delay(2), WATCH_RETRY_MIN * 2);
        assert_eq!(watch_retry_delay(3), WATCH_RETRY_MIN * 4);
        assert_eq!(watch_retry_delay(100), WATCH_RETRY_MAX);
        assert_eq!(watch_retry_delay(u32::MAX), WATCH_RETRY_MAX);
    }

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
