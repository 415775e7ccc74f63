//! A bounded map of recent directory answers that each live a fixed time. Pure: the caller
//! passes the time, so expiry, the bound and clearing are tested on a made-up clock.
//!
//! Every entry lives the same TTL, so the oldest stored is also the first to expire: one
//! ordered index serves both expiry and eviction.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Longer, and a user disabled in the directory keeps getting new workloads served for too
/// long; refused in the configuration.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// An entry is a name or two and a small enum: 10 000 of them are about a megabyte.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an answer is reused. Zero disables the cache.
    pub ttl: Duration,
    /// At most this many answers; storing one more evicts the oldest. Zero disables the cache.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl CacheConfig {
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }
}

struct Entry<V> {
    value: V,
    /// Its key in `order`.
    stored: (Instant, u64),
}

pub struct TtlCache<K, V> {
    cfg: CacheConfig,
    entries: HashMap<K, Entry<V>>,
    /// Oldest first. The sequence number keeps two answers stored at the same instant apart.
    order: BTreeMap<(Instant, u64), K>,
    seq: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(cfg: CacheConfig) -> TtlCache<K, V> {
        TtlCache {
            cfg,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The answer stored for `key` less than the TTL before `now`.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        self.expire(now);
        self.entries.get(key).map(|e| e.value.clone())
    }

    /// Stores `value` as of `at` (when the question was asked: the answer is no newer than
    /// that), replacing any older answer to `key` and evicting the oldest entries over the
    /// bound.
    pub fn insert(&mut self, key: K, value: V, at: Instant) {
        if !self.cfg.enabled() {
            return;
        }
        self.expire(at);
        // An answer to a question asked later is newer: a slow earlier answer never undoes it.
        if self.entries.get(&key).is_some_and(|e| e.stored.0 > at) {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.stored);
        }
        self.seq += 1;
        let stored = (at, self.seq);
        self.order.insert(stored, key.clone());
        self.entries.insert(key, Entry { value, stored });
        while self.entries.len() > self.cfg.max_entries {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the entries `now` is at least the TTL past. An `at` older than an entry (answers
    /// stored out of order) expires nothing, as it should.
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.order.first_entry() {
            let (stored, _) = *entry.key();
            if now.saturating_duration_since(stored) < self.cfg.ttl {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl_secs: u64, max_entries: usize) -> TtlCache<&'static str, u32> {
        TtlCache::new(CacheConfig {
            ttl: Duration::from_secs(ttl_secs),
            max_entries,
        })
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_answer_lives_exactly_the_ttl() {
        let t0 = Instant::now();
        let mut c = cache(30, 10);
        c.insert("alice", 1, t0);
        assert_eq!(c.get(&"alice", t0), Some(1));
        assert_eq!(c.get(&"alice", t0 + secs(29)), Some(1));
        assert_eq!(c.get(&"alice", t0 + secs(30)), None);
        assert!(c.is_empty(), "expired entries are dropped, not kept");
        assert_eq!(c.get(&"bob", t0), None);
    }

    #[test]
    fn a_new_answer_replaces_the_old_and_restarts_its_ttl() {
        let t0 = Instant::now();
        let mut c = cache(30, 10);
        c.insert("alice", 1, t0);
        c.insert("alice", 2, t0 + secs(20));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&"alice", t0 + secs(40)), Some(2));
        assert_eq!(c.get(&"alice", t0 + secs(50)), None);
    }

    #[test]
    fn a_slow_answer_to_an_earlier_question_never_replaces_a_newer_one() {
        let t0 = Instant::now();
        let mut c = cache(30, 10);
        // Asked at t0 (allowed then), answered late; asked again at t0+5 (refused now).
        c.insert("alice", 2, t0 + secs(5));
        c.insert("alice", 1, t0);
        assert_eq!(c.get(&"alice", t0 + secs(6)), Some(2));
    }

    #[test]
    fn the_bound_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut c = cache(30, 2);
        c.insert("a", 1, t0);
        c.insert("b", 2, t0);
        c.insert("a", 3, t0 + secs(1));
        c.insert("c", 4, t0 + secs(2));
        assert_eq!(c.len(), 2);
        // "b" was stored before the refreshed "a".
        assert_eq!(c.get(&"b", t0 + secs(2)), None);
        assert_eq!(c.get(&"a", t0 + secs(2)), Some(3));
        assert_eq!(c.get(&"c", t0 + secs(2)), Some(4));
    }

    #[test]
    fn a_zero_ttl_or_bound_caches_nothing() {
        let t0 = Instant::now();
        for mut c in [cache(0, 10), cache(30, 0)] {
            c.insert("alice", 1, t0);
            assert_eq!(c.get(&"alice", t0), None);
            assert!(c.is_empty());
        }
    }

    #[test]
    fn clear_forgets_everything() {
        let t0 = Instant::now();
        let mut c = cache(30, 10);
        c.insert("alice", 1, t0);
        c.insert("bob", 2, t0);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get(&"alice", t0), None);
        c.insert("alice", 3, t0 + secs(1));
        assert_eq!(c.get(&"alice", t0 + secs(1)), Some(3));
    }

    #[test]
    fn an_answer_stored_late_expires_from_when_it_was_asked() {
        let t0 = Instant::now();
        let mut c = cache(30, 10);
        c.insert("bob", 1, t0 + secs(10));
        // Asked at t0, stored after bob: still expires 30 s after t0.
        c.insert("alice", 2, t0);
        assert_eq!(c.get(&"alice", t0 + secs(29)), Some(2));
        assert_eq!(c.get(&"alice", t0 + secs(30)), None);
        assert_eq!(c.get(&"bob", t0 + secs(30)), Some(1));
    }
}
