//! ServiceAccounts by namespace and name, kept from a metadata-only watch: only each one's uid.
//!
//! Deleting a ServiceAccount revokes every token minted for it (and one recreated under the same
//! name has a new uid, which old tokens do not name). One whose deletion was requested counts
//! as gone here (the watch hands it on as deleted), even while a finalizer keeps it. The TokenReview cache asks here, on every
//! hit, whether the account a cached review named still exists with the uid it had.
//!
//! As with the pod index, only the one [`AccountsWriter`] mutates, a relist replaces the map
//! only when complete, and from a watch failure until the next complete list the map counts as
//! stale: [`SharedAccounts::lookup`] answers [`AccountLookup::Stale`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One watch event, as plain facts (mirrors `kube::runtime::watcher::Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    Apply(AccountFacts),
    Delete(AccountFacts),
    Init,
    InitApply(AccountFacts),
    InitDone,
    /// The watch failed: events may be missed until a new complete list.
    Broken,
}

/// What is kept of a ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What the watch knows about one account now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountLookup {
    /// Not listed yet, or the watch failed since the last complete list: nothing is known.
    Stale,
    Absent,
    /// It exists, with this uid.
    Present(String),
}

/// namespace → name → uid: looked up by `&str` without allocating.
type Uids = HashMap<String, HashMap<String, String>>;

fn put(uids: &mut Uids, a: AccountFacts) {
    uids.entry(a.namespace).or_default().insert(a.name, a.uid);
}

#[derive(Debug, Default)]
struct Inner {
    uids: Uids,
    listed: bool,
    current: bool,
}

/// Shared read side; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SharedAccounts {
    inner: Arc<RwLock<Inner>>,
}

impl SharedAccounts {
    fn read<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        match self.inner.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The account `namespace/name`, checked and read under one lock.
    pub fn lookup(&self, namespace: &str, name: &str) -> AccountLookup {
        self.read(|i| {
            if !(i.listed && i.current) {
                return AccountLookup::Stale;
            }
            match i.uids.get(namespace).and_then(|names| names.get(name)) {
                Some(uid) => AccountLookup::Present(uid.clone()),
                None => AccountLookup::Absent,
            }
        })
    }

    /// A complete list has been seen at least once.
    pub fn is_ready(&self) -> bool {
        self.read(|i| i.listed)
    }

    pub fn len(&self) -> usize {
        self.read(|i| i.uids.values().map(HashMap::len).sum())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The only writer: applies watch events, buffering a relist so lookups never see half a list.
#[derive(Debug, Default)]
pub struct AccountsWriter {
    shared: SharedAccounts,
    relist: Option<Uids>,
}

impl AccountsWriter {
    pub fn new(shared: SharedAccounts) -> AccountsWriter {
        AccountsWriter {
            shared,
            relist: None,
        }
    }

    pub fn on_event(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Apply(a) => self.shared.with(|s| put(&mut s.uids, a)),
            AccountEvent::Delete(a) => self.shared.with(|s| {
                if let Some(names) = s.uids.get_mut(&a.namespace) {
                    names.remove(&a.name);
                    if names.is_empty() {
                        s.uids.remove(&a.namespace);
                    }
                }
            }),
            AccountEvent::Init => self.relist = Some(Uids::new()),
            AccountEvent::InitApply(a) => put(self.relist.get_or_insert_default(), a),
            AccountEvent::InitDone => {
                let uids = self.relist.take().unwrap_or_default();
                self.shared.with(|s| {
                    *s = Inner {
                        uids,
                        listed: true,
                        current: true,
                    }
                });
            }
            AccountEvent::Broken => {
                self.relist = None;
                self.shared.with(|s| s.current = false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(name: &str, uid: &str) -> AccountFacts {
        AccountFacts {
            namespace: "team-a".into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn listed(accounts: &[AccountFacts]) -> (SharedAccounts, AccountsWriter) {
        let shared = SharedAccounts::default();
        let mut writer = AccountsWriter::new(shared.clone());
        writer.on_event(AccountEvent::Init);
        for a in accounts {
            writer.on_event(AccountEvent::InitApply(a.clone()));
        }
        writer.on_event(AccountEvent::InitDone);
        (shared, writer)
    }

    #[test]
    fn nothing_is_known_before_the_first_complete_list() {
        let shared = SharedAccounts::default();
        let mut writer = AccountsWriter::new(shared.clone());
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Stale);
        writer.on_event(AccountEvent::Init);
        writer.on_event(AccountEvent::InitApply(sa("etl", "s1")));
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Stale);
        assert!(!shared.is_ready());
        writer.on_event(AccountEvent::InitDone);
        assert_eq!(
            shared.lookup("team-a", "etl"),
            AccountLookup::Present("s1".into())
        );
        assert_eq!(shared.lookup("team-b", "etl"), AccountLookup::Absent);
    }

    #[test]
    fn deletion_and_recreation_are_seen() {
        let (shared, mut writer) = listed(&[sa("etl", "s1")]);
        writer.on_event(AccountEvent::Delete(sa("etl", "s1")));
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Absent);
        writer.on_event(AccountEvent::Apply(sa("etl", "s2")));
        assert_eq!(
            shared.lookup("team-a", "etl"),
            AccountLookup::Present("s2".into())
        );
    }

    #[test]
    fn a_broken_watch_knows_nothing_until_a_complete_relist() {
        let (shared, mut writer) = listed(&[sa("etl", "s1")]);
        writer.on_event(AccountEvent::Broken);
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Stale);
        assert!(shared.is_ready(), "listed once");
        // Deleted while the watch was down: the relist no longer holds it.
        writer.on_event(AccountEvent::Init);
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Stale);
        writer.on_event(AccountEvent::InitDone);
        assert_eq!(shared.lookup("team-a", "etl"), AccountLookup::Absent);
        assert!(shared.is_empty());
    }
}
