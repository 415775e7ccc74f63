//! The watches: pods into the by-IP index, the served namespaces, iddecorator's webhook
//! registration, and ServiceAccounts' uids (metadata only) for the TokenReview cache. A failed watch is never resumed from its last resource version: what depends
//! on it is refused until a new watcher has relisted everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use super::watched_pod::WatchedPod;
use crate::accounts::{AccountEvent, AccountFacts, AccountLookup, AccountsWriter, SharedAccounts};
use crate::coverage::Registration;
use crate::index::{IndexEvent, IndexWriter, SharedIndex};

/// Whether a reflector's store follows the API server: `ready` once a complete list has been
/// seen, `current` while no watch error has happened since the last complete list.
#[derive(Clone, Default)]
pub(super) struct Freshness {
    ready: Arc<AtomicBool>,
    current: Arc<AtomicBool>,
}

impl Freshness {
    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(super) fn is_current(&self) -> bool {
        self.current.load(Ordering::SeqCst)
    }
}

/// Feeds `writer` from the watch of `api`. As for the pod watch, a failed watch is never
/// resumed: events may have been lost (an admin narrowing the webhook while the connection was
/// cut), so the store counts as stale from the first error until a new watcher has relisted
/// everything.
pub(super) fn reflect<K>(
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
                // Nothing here reads managedFields, and they are about half of a ledger
                // Secret's memory (4 of 8 kB): 2,000 entries kept them as 8 MB.
                let event = event.modify(|o| o.meta_mut().managed_fields = None);
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
/// must make an address ambiguous). `on_gone` hears the uid of every pod deleted.
///
/// A watch that fails is not resumed from its last resource version: events may have been
/// lost in between (an API server restart, a cut connection) and an address freed and reused
/// meanwhile would still lead to its old pod. The index is marked stale at the first error
/// (lookups refuse) and a new watcher relists everything, with a consistent read, before the
/// index answers again.
pub fn watch_pods(
    client: kube::Client,
    index: SharedIndex,
    mut on_gone: impl FnMut(&str) + Send + 'static,
) {
    let api = Api::<WatchedPod>::all(client);
    let config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    let mut writer = IndexWriter::new(index);
    relist_forever(
        api,
        config,
        "pod",
        "refusing address lookups",
        move |watched| {
            writer.on_event(match watched {
                Watched::Event(watcher::Event::Apply(p)) => IndexEvent::Apply(p.facts()),
                Watched::Event(watcher::Event::Delete(p)) => {
                    let pod = p.facts();
                    on_gone(&pod.uid);
                    IndexEvent::Delete(pod)
                }
                Watched::Event(watcher::Event::Init) => IndexEvent::Init,
                Watched::Event(watcher::Event::InitApply(p)) => IndexEvent::InitApply(p.facts()),
                Watched::Event(watcher::Event::InitDone) => IndexEvent::InitDone,
                Watched::Broken => IndexEvent::Broken,
            })
        },
    );
}

/// Starts the ServiceAccount watch that feeds `accounts`: metadata only (all namespaces: a
/// pod's namespace may be served by labels the watch cannot select on), of which each account's
/// uid is kept. `on_gone` hears `(namespace, name)` of every account deleted.
pub fn watch_service_accounts(
    client: kube::Client,
    accounts: SharedAccounts,
    mut on_gone: impl FnMut(&str, &str) + Send + 'static,
) {
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(client);
    let config = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    let mut writer = AccountsWriter::new(accounts.clone());
    // The cache is scanned for an account once, when it leaves the map: updates of one whose
    // deletion is pending (anyone who may patch it can send many) cost nothing more.
    let mut gone = move |a: &AccountFacts| {
        if accounts.lookup(&a.namespace, &a.name) != AccountLookup::Absent {
            on_gone(&a.namespace, &a.name);
        }
    };
    let facts = |sa: &PartialObjectMeta<ServiceAccount>| AccountFacts {
        namespace: sa.metadata.namespace.clone().unwrap_or_default(),
        name: sa.metadata.name.clone().unwrap_or_default(),
        uid: sa.metadata.uid.clone().unwrap_or_default(),
    };
    relist_forever(
        api,
        config,
        "service account",
        "reviewing every token afresh",
        move |watched| {
            // An account being deleted (a finalizer may hold it for ever) has revoked its
            // tokens: it counts as gone from the moment the deletion is requested.
            let deleting =
                |sa: &PartialObjectMeta<ServiceAccount>| sa.metadata.deletion_timestamp.is_some();
            writer.on_event(match watched {
                Watched::Event(watcher::Event::Apply(sa)) if deleting(&sa) => {
                    let account = facts(&sa);
                    gone(&account);
                    AccountEvent::Delete(account)
                }
                Watched::Event(watcher::Event::InitApply(sa)) if deleting(&sa) => return,
                Watched::Event(watcher::Event::Apply(sa)) => AccountEvent::Apply(facts(&sa)),
                Watched::Event(watcher::Event::Delete(sa)) => {
                    let account = facts(&sa);
                    gone(&account);
                    AccountEvent::Delete(account)
                }
                Watched::Event(watcher::Event::Init) => AccountEvent::Init,
                Watched::Event(watcher::Event::InitApply(sa)) => {
                    AccountEvent::InitApply(facts(&sa))
                }
                Watched::Event(watcher::Event::InitDone) => AccountEvent::InitDone,
                Watched::Broken => AccountEvent::Broken,
            })
        },
    );
}

/// What [`relist_forever`] hands on: an event, or the end of a watch that failed.
pub(super) enum Watched<K> {
    Event(watcher::Event<K>),
    Broken,
}

/// Watches `api` forever. A failed watch is never resumed from its last resource version
/// (events may have been lost in between): the caller hears of the first error, and a new
/// watcher relists everything, after a backoff that resets once a complete list was seen.
/// `what` and `refusing` name the watch and its consequence in the warning; `on` gets every
/// event, then [`Watched::Broken`] at the first error.
pub(super) fn relist_forever<K>(
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
}
