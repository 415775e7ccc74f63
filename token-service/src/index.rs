//! Pods by IP address, kept in memory from a watch so that identifying a caller by its source
//! address costs no API call.
//!
//! Only the one [`IndexWriter`] mutates; request handlers take a read lock for a lookup. A pod
//! stays indexed while it is Running or Pending, even when it is being deleted: its address is
//! not free until the pod is gone, and a second holder must make the address ambiguous rather
//! than quietly belong to the newcomer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::pod::{PodFacts, canonical};

#[derive(Debug, Default, Clone)]
pub struct PodIndex {
    by_uid: HashMap<String, Arc<PodFacts>>,
    by_ip: HashMap<IpAddr, Holders>,
}

/// The pods holding one address. Nearly always one: that case allocates nothing beyond the
/// map's slot (a set of uids per address cost about 330 bytes a pod).
#[derive(Debug, Clone)]
enum Holders {
    One(Arc<PodFacts>),
    Many(Vec<Arc<PodFacts>>),
}

impl Holders {
    fn pods(&self) -> &[Arc<PodFacts>] {
        match self {
            Holders::One(p) => std::slice::from_ref(p),
            Holders::Many(ps) => ps,
        }
    }

    fn add(&mut self, pod: Arc<PodFacts>) {
        match self {
            Holders::One(p) => *self = Holders::Many(vec![p.clone(), pod]),
            Holders::Many(ps) => ps.push(pod),
        }
    }

    /// Drops `uid`'s pod; `false` when nobody is left.
    fn remove(&mut self, uid: &str) -> bool {
        match self {
            Holders::One(p) => p.uid != uid,
            Holders::Many(ps) => {
                ps.retain(|p| p.uid != uid);
                match ps.as_slice() {
                    [] => false,
                    [one] => {
                        *self = Holders::One(one.clone());
                        true
                    }
                    _ => true,
                }
            }
        }
    }
}

/// What an address leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpLookup {
    Nobody,
    One(Arc<PodFacts>),
    /// Two or more live pods claim the address: nobody can be told apart.
    Ambiguous(Vec<Arc<PodFacts>>),
}

impl PodIndex {
    /// Adds or updates a pod; a pod that is no longer live (or lost its IP) leaves the index.
    pub fn apply(&mut self, pod: PodFacts) {
        self.delete(&pod.uid);
        if !pod.is_live() || pod.ips.is_empty() || pod.uid.is_empty() {
            return;
        }
        let pod = Arc::new(pod);
        for (i, ip) in pod.ips.iter().enumerate() {
            if pod.ips[..i].contains(ip) {
                continue;
            }
            match self.by_ip.entry(*ip) {
                Entry::Occupied(mut holders) => holders.get_mut().add(pod.clone()),
                Entry::Vacant(slot) => {
                    slot.insert(Holders::One(pod.clone()));
                }
            }
        }
        self.by_uid.insert(pod.uid.clone(), pod);
    }

    pub fn delete(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        for ip in &old.ips {
            if let Entry::Occupied(mut holders) = self.by_ip.entry(*ip)
                && !holders.get_mut().remove(uid)
            {
                holders.remove();
            }
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> IpLookup {
        match self.by_ip.get(&canonical(ip)).map(Holders::pods) {
            None | Some([]) => IpLookup::Nobody,
            Some([one]) => IpLookup::One(one.clone()),
            Some(many) => IpLookup::Ambiguous(many.to_vec()),
        }
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

/// One watch event, already converted to plain facts (mirrors `kube::runtime::watcher::Event`).
#[derive(Debug, Clone)]
pub enum IndexEvent {
    Apply(PodFacts),
    Delete(PodFacts),
    /// The watch (re)started: a full list follows.
    Init,
    InitApply(PodFacts),
    /// The list is complete: it replaces the index at once.
    InitDone,
    /// The watch failed (API server unreachable, restarted, connection cut): events may be
    /// missed from here on, so the index must not answer until a new complete list arrived.
    Broken,
}

/// The index and how far it can be trusted.
#[derive(Debug, Default)]
struct Inner {
    index: PodIndex,
    /// A complete list has been seen at least once (the service may report ready).
    listed: bool,
    /// No watch failure since the last complete list: the index follows the API server.
    current: bool,
}

/// Shared read side of the index. `ready` turns true after the first complete list; `current`
/// is false from a watch failure until the next complete list.
#[derive(Debug, Clone, Default)]
pub struct SharedIndex {
    inner: Arc<RwLock<Inner>>,
}

impl SharedIndex {
    fn read<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        match self.inner.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The pods at `ip`, whatever the state of the watch (tests and diagnostics).
    pub fn lookup(&self, ip: IpAddr) -> IpLookup {
        self.read(|i| i.index.lookup(ip))
    }

    /// The pods at `ip`, or `None` while the index may be stale (watch broken, relist not
    /// complete): an address freed and reused meanwhile must not lead to its old holder.
    pub fn lookup_current(&self, ip: IpAddr) -> Option<IpLookup> {
        self.read(|i| (i.listed && i.current).then(|| i.index.lookup(ip)))
    }

    /// The live pod with `uid`, or `None` while the index may be stale (as
    /// [`Self::lookup_current`]): `Some(None)` means the index, following the API server,
    /// holds no live pod with that uid.
    pub fn pod_current(&self, uid: &str) -> Option<Option<Arc<PodFacts>>> {
        self.read(|i| (i.listed && i.current).then(|| i.index.by_uid.get(uid).cloned()))
    }

    /// A complete list has been seen (it may have gone stale since: see [`Self::is_current`]).
    pub fn is_ready(&self) -> bool {
        self.read(|i| i.listed)
    }

    /// Listed, and no watch failure since the last complete list.
    pub fn is_current(&self) -> bool {
        self.read(|i| i.listed && i.current)
    }

    pub fn len(&self) -> usize {
        self.read(|i| i.index.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A live pod of this uid is indexed, and the index follows the API server.
    pub fn holds_live(&self, uid: &str) -> bool {
        self.read(|i| i.listed && i.current && i.index.by_uid.contains_key(uid))
    }

    /// The indexed (live) pods of `namespace`: the ledger asks whether a workload still runs.
    pub fn pods_in(&self, namespace: &str) -> Vec<Arc<PodFacts>> {
        self.read(|i| {
            i.index
                .by_uid
                .values()
                .filter(|p| p.namespace == namespace)
                .cloned()
                .collect()
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// The only writer: applies watch events, buffering a relist so lookups never see half a list.
#[derive(Debug, Default)]
pub struct IndexWriter {
    shared: SharedIndex,
    relist: Option<PodIndex>,
}

impl IndexWriter {
    pub fn new(shared: SharedIndex) -> IndexWriter {
        IndexWriter {
            shared,
            relist: None,
        }
    }

    pub fn on_event(&mut self, event: IndexEvent) {
        match event {
            IndexEvent::Apply(pod) => self.shared.with(|s| s.index.apply(pod)),
            IndexEvent::Delete(pod) => self.shared.with(|s| s.index.delete(&pod.uid)),
            IndexEvent::Init => self.relist = Some(PodIndex::default()),
            IndexEvent::InitApply(pod) => self.relist.get_or_insert_default().apply(pod),
            IndexEvent::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                self.shared.with(|s| {
                    *s = Inner {
                        index: fresh,
                        listed: true,
                        current: true,
                    }
                });
            }
            IndexEvent::Broken => {
                self.relist = None;
                self.shared.with(|s| s.current = false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::pod;
    use crate::pod::Phase;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn one(index: &PodIndex, at: &str) -> String {
        match index.lookup(ip(at)) {
            IpLookup::One(p) => p.name.clone(),
            other => panic!("expected one pod at {at}, got {other:?}"),
        }
    }

    #[test]
    fn add_then_find_by_ip() {
        let mut index = PodIndex::default();
        index.apply(pod("a", "u1", "127.100.0.1"));
        assert_eq!(one(&index, "127.100.0.1"), "a");
        assert_eq!(index.lookup(ip("127.100.0.2")), IpLookup::Nobody);
        assert_eq!(
            one(&index, "::ffff:127.100.0.1"),
            "a",
            "IPv4-mapped peers match"
        );
    }

    #[test]
    fn an_ip_change_moves_the_pod() {
        let mut index = PodIndex::default();
        index.apply(pod("a", "u1", "127.100.0.1"));
        index.apply(pod("a", "u1", "127.100.0.9"));
        assert_eq!(index.lookup(ip("127.100.0.1")), IpLookup::Nobody);
        assert_eq!(one(&index, "127.100.0.9"), "a");
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn delete_frees_the_address_and_a_reused_ip_belongs_to_the_new_pod() {
        let mut index = PodIndex::default();
        index.apply(pod("old", "u1", "127.100.0.1"));
        index.delete("u1");
        assert_eq!(index.lookup(ip("127.100.0.1")), IpLookup::Nobody);
        index.apply(pod("new", "u2", "127.100.0.1"));
        assert_eq!(one(&index, "127.100.0.1"), "new");
    }

    #[test]
    fn two_live_pods_on_one_ip_are_ambiguous_until_one_leaves() {
        let mut index = PodIndex::default();
        index.apply(pod("a", "u1", "127.100.0.1"));
        let mut leaving = pod("b", "u2", "127.100.0.1");
        leaving.deleting = true;
        index.apply(leaving);
        assert!(matches!(
            index.lookup(ip("127.100.0.1")),
            IpLookup::Ambiguous(p) if p.len() == 2
        ));
        index.delete("u2");
        assert_eq!(one(&index, "127.100.0.1"), "a");
    }

    #[test]
    fn an_address_stays_ambiguous_while_two_of_three_holders_remain() {
        let mut index = PodIndex::default();
        for (name, uid) in [("a", "u1"), ("b", "u2"), ("c", "u3")] {
            index.apply(pod(name, uid, "127.100.0.1"));
        }
        // An update of one holder (here: its phase) keeps it among the holders, once.
        let mut updated = pod("b", "u2", "127.100.0.1");
        updated.phase = Phase::Pending;
        index.apply(updated);
        let names = |index: &PodIndex| match index.lookup(ip("127.100.0.1")) {
            IpLookup::Ambiguous(p) => {
                let mut n: Vec<_> = p.iter().map(|p| p.name.clone()).collect();
                n.sort();
                n
            }
            other => panic!("expected ambiguous, got {other:?}"),
        };
        assert_eq!(names(&index), ["a", "b", "c"]);
        index.delete("u1");
        assert_eq!(names(&index), ["b", "c"]);
        index.delete("u3");
        assert_eq!(one(&index, "127.100.0.1"), "b");
        index.delete("u2");
        assert_eq!(index.lookup(ip("127.100.0.1")), IpLookup::Nobody);
        assert!(index.is_empty());
    }

    #[test]
    fn an_address_a_pod_lists_twice_makes_it_one_holder() {
        let mut index = PodIndex::default();
        let mut twice = pod("a", "u1", "127.100.0.1");
        // Canonical forms can coincide: `::ffff:127.100.0.1` is 127.100.0.1.
        twice.ips.push(ip("127.100.0.1"));
        index.apply(twice);
        assert_eq!(one(&index, "127.100.0.1"), "a");
        index.delete("u1");
        assert_eq!(index.lookup(ip("127.100.0.1")), IpLookup::Nobody);
    }

    /// Random applies and deletes against a model that scans every pod: the holders kept per
    /// address always answer what the pods' own address lists say.
    #[test]
    fn lookups_agree_with_a_scan_of_every_pod() {
        let ips = [
            "127.100.0.1",
            "127.100.0.2",
            "::ffff:127.100.0.1",
            "fd00::1",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut index = PodIndex::default();
        let mut model: HashMap<String, PodFacts> = HashMap::new();
        for step in 0..5_000 {
            let uid = format!("u{}", next(6));
            if next(4) == 0 {
                index.delete(&uid);
                model.remove(&uid);
            } else {
                let mut p = pod(&format!("p{step}"), &uid, ips[next(4) as usize]);
                p.ips = (0..next(3))
                    .map(|_| canonical(ip(ips[next(4) as usize])))
                    .collect();
                p.deleting = next(3) == 0;
                if next(5) == 0 {
                    p.phase = Phase::Other("Succeeded".into());
                }
                model.remove(&uid);
                if p.is_live() && !p.ips.is_empty() {
                    model.insert(uid, p.clone());
                }
                index.apply(p);
            }
            assert_eq!(index.len(), model.len(), "step {step}");
            for at in ips {
                let mut want: Vec<_> = model
                    .values()
                    .filter(|p| p.ips.contains(&canonical(ip(at))))
                    .cloned()
                    .collect();
                want.sort_by(|a, b| a.uid.cmp(&b.uid));
                let mut got: Vec<PodFacts> = match index.lookup(ip(at)) {
                    IpLookup::Nobody => Vec::new(),
                    IpLookup::One(p) => vec![(*p).clone()],
                    IpLookup::Ambiguous(ps) => {
                        assert!(ps.len() >= 2, "step {step}: ambiguous with one pod");
                        ps.iter().map(|p| (**p).clone()).collect()
                    }
                };
                got.sort_by(|a, b| a.uid.cmp(&b.uid));
                assert_eq!(got, want, "step {step}, address {at}");
            }
        }
    }

    #[test]
    fn finished_pods_and_pods_without_ip_are_not_indexed() {
        let mut index = PodIndex::default();
        index.apply(pod("a", "u1", "127.100.0.1"));
        let mut done = pod("a", "u1", "127.100.0.1");
        done.phase = Phase::Other("Succeeded".into());
        index.apply(done);
        assert!(index.is_empty(), "a pod that finished leaves the index");
        let mut no_ip = pod("c", "u3", "127.100.0.3");
        no_ip.ips.clear();
        index.apply(no_ip);
        assert!(index.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let shared = SharedIndex::default();
        let mut writer = IndexWriter::new(shared.clone());
        assert!(!shared.is_ready());
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("a", "u1", "127.100.0.1")));
        assert_eq!(shared.len(), 0, "half a list is not visible");
        writer.on_event(IndexEvent::InitDone);
        assert!(shared.is_ready());
        assert_eq!(shared.len(), 1);
        writer.on_event(IndexEvent::Apply(pod("b", "u2", "127.100.0.2")));
        // A restarted watch: pod a vanished meanwhile, b is still there.
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("b", "u2", "127.100.0.2")));
        assert_eq!(
            shared.len(),
            2,
            "the old view serves until the new one is whole"
        );
        writer.on_event(IndexEvent::InitDone);
        assert_eq!(shared.lookup(ip("127.100.0.1")), IpLookup::Nobody);
        assert!(matches!(shared.lookup(ip("127.100.0.2")), IpLookup::One(_)));
        writer.on_event(IndexEvent::Delete(pod("b", "u2", "127.100.0.2")));
        assert!(shared.is_empty());
    }

    #[test]
    fn a_broken_watch_refuses_lookups_until_a_complete_relist() {
        let shared = SharedIndex::default();
        let mut writer = IndexWriter::new(shared.clone());
        assert_eq!(
            shared.lookup_current(ip("127.100.0.1")),
            None,
            "not listed yet"
        );
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("old", "u1", "127.100.0.1")));
        writer.on_event(IndexEvent::InitDone);
        assert!(matches!(
            shared.lookup_current(ip("127.100.0.1")),
            Some(IpLookup::One(p)) if p.name == "old"
        ));
        // The API server goes away; meanwhile "old" is deleted and "new" gets its address.
        writer.on_event(IndexEvent::Broken);
        assert!(
            shared.is_ready(),
            "still reported ready: it was listed once"
        );
        assert!(!shared.is_current());
        assert_eq!(
            shared.lookup_current(ip("127.100.0.1")),
            None,
            "the stale mapping to the old pod is not used"
        );
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("new", "u2", "127.100.0.1")));
        assert_eq!(
            shared.lookup_current(ip("127.100.0.1")),
            None,
            "half a relist does not make it current"
        );
        // A second failure in the middle of the relist throws the half list away.
        writer.on_event(IndexEvent::Broken);
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("new", "u2", "127.100.0.1")));
        writer.on_event(IndexEvent::InitDone);
        assert!(matches!(
            shared.lookup_current(ip("127.100.0.1")),
            Some(IpLookup::One(p)) if p.name == "new" && p.uid == "u2"
        ));
        assert_eq!(shared.len(), 1);
    }

    #[test]
    fn a_pod_by_uid_is_answered_only_from_a_current_index() {
        let shared = SharedIndex::default();
        let mut writer = IndexWriter::new(shared.clone());
        assert_eq!(shared.pod_current("u1"), None, "not listed yet");
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("a", "u1", "127.100.0.1")));
        writer.on_event(IndexEvent::InitDone);
        assert!(matches!(shared.pod_current("u1"), Some(Some(p)) if p.name == "a"));
        assert_eq!(shared.pod_current("u2"), Some(None));
        writer.on_event(IndexEvent::Delete(pod("a", "u1", "127.100.0.1")));
        assert_eq!(shared.pod_current("u1"), Some(None));
        writer.on_event(IndexEvent::Broken);
        assert_eq!(shared.pod_current("u1"), None, "stale");
    }
}
