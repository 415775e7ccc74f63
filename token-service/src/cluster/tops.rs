//! The top objects of ledger workloads, watched, so the reconciler learns whether a workload
//! runs from memory instead of one API read per entry and pass (2,000 entries every 30 s
//! were 4,000 reads a minute at rest).
//!
//! One watch per kind, started the first time the ledger asks about a workload of that kind:
//! a cluster whose ledger holds only Deployments watches only Deployments. Each object is kept
//! as its uid and whether it finished, nothing else. Until a watch has listed, and from any
//! watch error until its next complete list, [`WatchedTops::status`] answers `None` and the
//! caller reads the object as before; a kind's first list is waited for a few seconds
//! ([`FIRST_LIST_WAIT`]), else the first pass after a restart reads every workload it reaches
//! before the list arrives (83 and 167 of 2,000 Deployments in a bench run). A watch may also
//! trail without an error, so the caller takes only "running" from it and confirms "finished"
//! or "gone" with a read: a stale copy never decides a cancellation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

use super::resource_of;
use super::watch::{Watched, relist_forever};
use crate::ledger::liveness::{OwnerStatus, is_finished};
use crate::workload::WorkloadKey;

/// At most this many kinds are watched; more fall back to reads. The ledger only holds the
/// top kinds of stamped chains, a handful in practice.
const MAX_KINDS: usize = 32;
/// How long a status waits for its kind's first complete list before reading the object. A
/// broken watch is never waited for: it may stay broken (RBAC, an API server down).
pub const FIRST_LIST_WAIT: Duration = Duration::from_secs(10);

/// Whether a kind's first complete list has arrived, for whoever waits for it.
#[derive(Debug)]
pub struct FirstList(tokio::sync::watch::Sender<bool>);

impl Default for FirstList {
    fn default() -> FirstList {
        FirstList(tokio::sync::watch::Sender::new(false))
    }
}

impl FirstList {
    pub fn done(&self) {
        self.0.send_replace(true);
    }

    /// Whether the first list is complete, waiting at most `limit` for it.
    pub async fn wait(&self, limit: Duration) -> bool {
        let mut listed = self.0.subscribe();
        matches!(
            tokio::time::timeout(limit, listed.wait_for(|done| *done)).await,
            Ok(Ok(_))
        )
    }
}

/// One watched kind: its objects and its first list.
#[derive(Clone)]
struct Kind {
    tops: Arc<RwLock<Tops>>,
    first: Arc<FirstList>,
}

/// What is kept of one object: enough for [`crate::ledger::liveness::status_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Top {
    uid: String,
    finished: bool,
}

type Key = (String, String);

/// The objects of one kind as the watch delivered them, with a relist buffered so an answer
/// never comes from half a list.
#[derive(Debug, Default)]
pub struct Tops {
    objects: HashMap<Key, Top>,
    relist: Option<HashMap<Key, Top>>,
    listed: bool,
    current: bool,
}

/// One watch event, reduced to what [`Tops`] keeps.
#[derive(Debug, Clone)]
pub enum TopEvent {
    Init,
    InitApply(Key, String, bool),
    InitDone,
    Apply(Key, String, bool),
    Delete(Key),
    Broken,
}

impl Tops {
    pub fn on_event(&mut self, event: TopEvent) {
        match event {
            TopEvent::Init => self.relist = Some(HashMap::new()),
            TopEvent::InitApply(key, uid, finished) => {
                if let Some(buffer) = self.relist.as_mut() {
                    buffer.insert(key, Top { uid, finished });
                }
            }
            TopEvent::InitDone => {
                if let Some(buffer) = self.relist.take() {
                    self.objects = buffer;
                    self.listed = true;
                    self.current = true;
                }
            }
            TopEvent::Apply(key, uid, finished) => {
                self.objects.insert(key, Top { uid, finished });
            }
            TopEvent::Delete(key) => {
                self.objects.remove(&key);
            }
            TopEvent::Broken => {
                self.current = false;
                self.relist = None;
            }
        }
    }

    /// `w`'s status from the watched objects; `None` while they may be stale.
    pub fn status(&self, w: &WorkloadKey) -> Option<OwnerStatus> {
        if !(self.listed && self.current) {
            return None;
        }
        let key = (w.namespace.clone(), w.name.clone());
        Some(match self.objects.get(&key) {
            Some(top) if top.uid == w.uid && top.finished => OwnerStatus::Finished,
            Some(top) if top.uid == w.uid => OwnerStatus::Running,
            // Absent, or recreated under the same name: `w` is gone.
            _ => OwnerStatus::Gone,
        })
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Kinds whose objects never finish: their watch needs metadata only (a Deployment's pod
/// template is most of it). Jobs, the training operator's jobs and custom kinds have a status.
fn never_finishes(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_version, kind),
        (
            "apps/v1",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("v1", "ReplicationController")
            | ("batch/v1", "CronJob")
    )
}

/// What [`reduce`] needs of a watched object, full or metadata only.
trait Watchable {
    fn meta(&self) -> &kube::api::ObjectMeta;
    fn status(&self) -> Option<&serde_json::Value>;
}

impl Watchable for DynamicObject {
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn status(&self) -> Option<&serde_json::Value> {
        self.data.get("status")
    }
}

impl Watchable for PartialObjectMeta<DynamicObject> {
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn status(&self) -> Option<&serde_json::Value> {
        None
    }
}

/// The event a watched object makes, for `kind`.
fn reduce<O: Watchable>(kind: &str, event: watcher::Event<O>) -> Option<TopEvent> {
    let facts = |o: &O| {
        let meta = o.meta();
        let key = (meta.namespace.clone()?, meta.name.clone()?);
        let uid = meta.uid.clone()?;
        Some((key, uid, is_finished(kind, o.status())))
    };
    Some(match event {
        watcher::Event::Init => TopEvent::Init,
        watcher::Event::InitDone => TopEvent::InitDone,
        watcher::Event::InitApply(o) => {
            let (key, uid, finished) = facts(&o)?;
            TopEvent::InitApply(key, uid, finished)
        }
        watcher::Event::Apply(o) => {
            let (key, uid, finished) = facts(&o)?;
            TopEvent::Apply(key, uid, finished)
        }
        watcher::Event::Delete(o) => TopEvent::Delete(facts(&o)?.0),
    })
}

/// The kinds watched so far, each with its objects.
pub struct WatchedTops {
    client: kube::Client,
    kinds: Mutex<HashMap<Key, Kind>>,
}

impl WatchedTops {
    pub fn new(client: kube::Client) -> WatchedTops {
        WatchedTops {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `w`'s status from its kind's watch, starting that watch if none runs yet and waiting
    /// up to [`FIRST_LIST_WAIT`] for its first list; `None` if the watch has not listed by
    /// then or is broken (then read the object instead).
    pub async fn status(&self, w: &WorkloadKey) -> Option<OwnerStatus> {
        // Bare pods are followed by the pod index, not here.
        if w.kind == "Pod" && w.api_version == "v1" {
            return None;
        }
        let kind = self.watch(&w.api_version, &w.kind)?;
        kind.first.wait(FIRST_LIST_WAIT).await;
        let tops = kind
            .tops
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tops.status(w)
    }

    /// Objects held, over every kind (a gauge).
    pub fn len(&self) -> usize {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds
            .values()
            .map(|k| k.tops.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn watch(&self, api_version: &str, kind: &str) -> Option<Kind> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(watched) = kinds.get(&key) {
            return Some(watched.clone());
        }
        if kinds.len() >= MAX_KINDS {
            return None;
        }
        let watched = Kind {
            tops: Arc::new(RwLock::new(Tops::default())),
            first: Arc::default(),
        };
        kinds.insert(key, watched.clone());
        self.start(api_version, kind, watched.clone());
        Some(watched)
    }

    fn start(&self, api_version: &str, kind: &str, watched: Kind) {
        let resource = resource_of(api_version, kind);
        let config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
        let metadata_only = never_finishes(api_version, kind);
        tracing::info!(%kind, %api_version, metadata_only, "watching workloads of this kind for the ledger");
        if metadata_only {
            // An Api of PartialObjectMeta lists and watches metadata only.
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(self.client.clone(), &resource);
            relist_forever(
                api,
                config,
                "workload",
                "reading workloads one by one",
                follow(kind.to_owned(), watched.clone()),
            );
        } else {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            relist_forever(
                api,
                config,
                "workload",
                "reading workloads one by one",
                follow(kind.to_owned(), watched.clone()),
            );
        }
    }
}

/// Applies a watch's events for `kind` to `tops`.
fn follow<O: Watchable>(kind: String, watched: Kind) -> impl FnMut(Watched<O>) + Send + 'static {
    move |event| {
        let event = match event {
            Watched::Event(e) => reduce(&kind, e),
            Watched::Broken => Some(TopEvent::Broken),
        };
        if let Some(event) = event {
            let listed = matches!(event, TopEvent::InitDone);
            watched
                .tops
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .on_event(event);
            if listed {
                watched.first.done();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::workload;

    fn key(name: &str) -> Key {
        ("team-a".into(), name.into())
    }

    fn listed(objects: &[(&str, &str, bool)]) -> Tops {
        let mut tops = Tops::default();
        tops.on_event(TopEvent::Init);
        for (name, uid, finished) in objects {
            tops.on_event(TopEvent::InitApply(key(name), (*uid).into(), *finished));
        }
        tops.on_event(TopEvent::InitDone);
        tops
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_list_is_waited_for_a_bounded_time() {
        let first = Arc::new(FirstList::default());
        assert!(
            !first.wait(FIRST_LIST_WAIT).await,
            "never listed: the wait ends"
        );
        let waiting = tokio::spawn({
            let first = first.clone();
            async move { first.wait(FIRST_LIST_WAIT).await }
        });
        tokio::task::yield_now().await;
        first.done();
        assert!(waiting.await.expect("the waiting task"));
        assert!(first.wait(Duration::ZERO).await, "once listed, no wait");
    }

    #[test]
    fn nothing_is_answered_before_the_first_complete_list() {
        let mut tops = Tops::default();
        let w = workload("web");
        assert_eq!(tops.status(&w), None);
        tops.on_event(TopEvent::Init);
        tops.on_event(TopEvent::InitApply(key("web"), "uid-web".into(), false));
        assert_eq!(tops.status(&w), None, "half a list decides nothing");
        tops.on_event(TopEvent::InitDone);
        assert_eq!(tops.status(&w), Some(OwnerStatus::Running));
    }

    #[test]
    fn running_finished_gone_and_recreated() {
        let tops = listed(&[("web", "uid-web", false), ("job", "uid-job", true)]);
        let w = workload;
        assert_eq!(tops.status(&w("web")), Some(OwnerStatus::Running));
        assert_eq!(tops.status(&w("job")), Some(OwnerStatus::Finished));
        assert_eq!(tops.status(&w("gone")), Some(OwnerStatus::Gone));
        let older = WorkloadKey {
            uid: "uid-older-web".into(),
            ..w("web")
        };
        assert_eq!(
            tops.status(&older),
            Some(OwnerStatus::Gone),
            "a successor under the same name is not the ledger's workload"
        );
    }

    #[test]
    fn events_after_the_list_are_followed() {
        let mut tops = listed(&[("web", "uid-web", false)]);
        let w = workload("web");
        tops.on_event(TopEvent::Apply(key("web"), "uid-web".into(), true));
        assert_eq!(tops.status(&w), Some(OwnerStatus::Finished));
        tops.on_event(TopEvent::Delete(key("web")));
        assert_eq!(tops.status(&w), Some(OwnerStatus::Gone));
    }

    #[test]
    fn a_broken_watch_answers_nothing_until_a_complete_relist() {
        let mut tops = listed(&[("web", "uid-web", false)]);
        let w = workload("web");
        tops.on_event(TopEvent::Broken);
        assert_eq!(tops.status(&w), None, "deleted meanwhile? a read must tell");
        tops.on_event(TopEvent::Init);
        assert_eq!(tops.status(&w), None);
        tops.on_event(TopEvent::InitDone);
        assert_eq!(
            tops.status(&w),
            Some(OwnerStatus::Gone),
            "the relist replaced the objects"
        );
    }

    #[test]
    fn only_kinds_that_never_finish_are_watched_by_metadata() {
        assert!(never_finishes("apps/v1", "Deployment"));
        assert!(never_finishes("batch/v1", "CronJob"));
        assert!(!never_finishes("batch/v1", "Job"));
        assert!(!never_finishes("kubeflow.org/v1", "TFJob"));
        assert!(
            !never_finishes("ray.io/v1", "RayCluster"),
            "custom kinds may finish"
        );
    }

    #[test]
    fn objects_without_namespace_name_or_uid_are_ignored() {
        let o = DynamicObject {
            types: None,
            metadata: Default::default(),
            data: serde_json::json!({}),
        };
        assert!(reduce("Deployment", watcher::Event::Apply(o)).is_none());
    }
}
