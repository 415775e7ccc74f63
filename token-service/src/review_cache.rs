//! Successful TokenReviews of pod-bound tokens, reused for a short time so that a pod asking
//! again costs no API call.
//!
//! What is cached replaces only the round trip to the API server, never a decision: on every
//! hit [`judge`] requires the bound pod to be in the pod index now (live, not being deleted,
//! the same uid) and the service account to exist with the uid the review reported, both from
//! watches that follow the API server; then the server runs the same checks on the pod as
//! after a fresh review (uid, origin, service account, namespace). So an entry cannot outlive
//! the revocation of its token: bound tokens are revoked by deleting their pod or their
//! service account (a recreated account has a new uid), and either is seen by a watch.
//!
//! - Keyed by the SHA-256 of the token: the token itself is never stored.
//! - An entry lives at most the configured TTL (default 10 s, as the API server's own token
//!   success cache, `TokenSuccessCacheTTL`) and never past the token's own `exp`. The TTL runs
//!   on the monotonic clock, so a wall clock stepped back (NTP, a VM restored) cannot stretch
//!   it; `exp` is a wall-clock date and is compared with the wall clock.
//! - Bounded: at capacity the oldest entry goes.
//! - Only reviews that named a pod and a service-account uid, and whose token's `exp` can be
//!   read, are cached; failures never are.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

use crate::accounts::AccountLookup;
use crate::clock::{Clock, monotonic_clock};
use crate::identity::ReviewedPod;
use crate::pod::PodFacts;

/// The API server's own default (`TokenSuccessCacheTTL` in kube-apiserver's authentication
/// options): reusing a review this long adds no staleness an API server does not already have.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Longer than this, a review is no longer a recent answer; refused in the configuration.
pub const MAX_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// About 100 bytes an entry beyond its strings: a million is a few hundred MB.
pub const MAX_ENTRIES: usize = 1_000_000;
/// A JWT payload longer than this (base64) is not read: no pod-bound token comes near it.
const MAX_PAYLOAD: usize = 16 * 1024;

/// How the cache is set up; `ttl` zero turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewCacheConfig {
    pub ttl: Duration,
    pub max_entries: usize,
}

impl Default for ReviewCacheConfig {
    fn default() -> Self {
        ReviewCacheConfig {
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// SHA-256 of a bearer token. Its `Debug` shows a short prefix only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        TokenDigest(bytes)
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "TokenDigest({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

/// The `exp` claim of a JWT, in milliseconds since the epoch, read **without** verifying the
/// signature. Only for a token the API server has just verified byte for byte (the cache key
/// is its digest); anything unreadable gives `None`, and the review is then not cached.
pub fn token_expiry_ms(token: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: u64,
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    claims.exp.checked_mul(1000)
}

/// What a successful review established, as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedReview {
    pub target: ReviewedPod,
    /// The service account's uid as the review reported it (`status.user.uid`).
    pub service_account_uid: String,
    /// End of the TTL, on the monotonic clock.
    pub fresh_until_ms: u64,
    /// The token's own `exp`, on the wall clock.
    pub token_exp_ms: u64,
}

/// The two clocks an entry is judged by, read once per lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: u64,
    pub monotonic_ms: u64,
}

/// The bound pod as the pod index knows it now.
#[derive(Debug, Clone)]
pub enum PodNow {
    /// The index is not listed, or its watch failed since the last complete list.
    Stale,
    /// Not indexed: gone, finished, or never seen live.
    Absent,
    Present(Arc<PodFacts>),
}

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its TTL or its token's `exp` passed.
    Expired,
    /// Its pod was deleted, is being deleted, finished, or was replaced (uid).
    PodGone,
    /// Its service account was deleted or replaced (uid).
    SaGone,
    /// The cache was full and it was the oldest.
    Evicted,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::PodGone => "pod_gone",
            DropReason::SaGone => "sa_gone",
            DropReason::Evicted => "evicted",
        }
    }
}

/// What to do with a cached entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Reuse it: the pod and its account are as reviewed.
    Hit,
    /// A watch cannot tell now: review afresh, keep the entry.
    Bypass,
    Drop(DropReason),
}

/// Whether `entry` may stand in for a fresh TokenReview at `now`, given what the pod index
/// and the ServiceAccount watch know now. Both must follow the API server (else [`Verdict::Bypass`]);
/// the pod must be indexed, live, not being deleted and the very pod reviewed; the account must
/// exist with the reviewed uid.
pub fn judge(entry: &CachedReview, now: Now, pod: &PodNow, account: &AccountLookup) -> Verdict {
    if now.monotonic_ms >= entry.fresh_until_ms || now.wall_ms >= entry.token_exp_ms {
        return Verdict::Drop(DropReason::Expired);
    }
    judge_facts(&entry.target, &entry.service_account_uid, pod, account)
}

/// Whether the pod and the account a token was found bound to (by a review, or by its
/// signature: `crate::signed_token`) are, as the watches show them now, those very objects:
/// [`Verdict::Hit`] only then. The expiry of what vouched for the token is the caller's.
pub fn judge_facts(
    target: &ReviewedPod,
    service_account_uid: &str,
    pod: &PodNow,
    account: &AccountLookup,
) -> Verdict {
    if matches!(pod, PodNow::Stale) || matches!(account, AccountLookup::Stale) {
        return Verdict::Bypass;
    }
    let same_pod = match pod {
        PodNow::Present(p) => {
            p.uid == target.uid
                && p.namespace == target.namespace
                && p.name == target.name
                && p.is_live()
                && !p.deleting
        }
        PodNow::Stale | PodNow::Absent => false,
    };
    if !same_pod {
        return Verdict::Drop(DropReason::PodGone);
    }
    match account {
        AccountLookup::Present(uid) if uid == service_account_uid => Verdict::Hit,
        _ => Verdict::Drop(DropReason::SaGone),
    }
}

/// What the cache tells its observer (the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    /// No usable entry: a full review follows.
    Miss,
    /// An entry exists but a watch is not current: a full review follows.
    Bypassed,
    Dropped(DropReason),
}

pub type CacheObserver = Arc<dyn Fn(CacheEvent) + Send + Sync>;

/// The answer of [`ReviewCache::lookup`].
#[derive(Debug, Clone)]
pub enum Found {
    /// The cached review and the indexed pod it names, to be checked as after a fresh review.
    Hit(Arc<CachedReview>, Arc<PodFacts>),
    Miss,
}

struct Slot {
    seq: u64,
    entry: Arc<CachedReview>,
}

#[derive(Default)]
struct Entries {
    slots: HashMap<TokenDigest, Slot>,
    /// Insertion order: the first is the oldest.
    order: BTreeMap<u64, TokenDigest>,
    /// Entries by bound pod uid, so the pod watch's delete events find them.
    by_pod: HashMap<String, HashSet<TokenDigest>>,
    next_seq: u64,
}

impl Entries {
    fn remove(&mut self, digest: &TokenDigest) -> Option<Arc<CachedReview>> {
        let slot = self.slots.remove(digest)?;
        self.order.remove(&slot.seq);
        let uid = &slot.entry.target.uid;
        if let Some(set) = self.by_pod.get_mut(uid) {
            set.remove(digest);
            if set.is_empty() {
                self.by_pod.remove(uid);
            }
        }
        Some(slot.entry)
    }

    fn oldest(&self) -> Option<(TokenDigest, &CachedReview)> {
        let (_, digest) = self.order.first_key_value()?;
        let slot = self.slots.get(digest)?;
        Some((*digest, &slot.entry))
    }
}

/// The bounded cache; cheap to clone (one shared map under a mutex held only for map work).
#[derive(Clone)]
pub struct ReviewCache {
    entries: Arc<Mutex<Entries>>,
    config: ReviewCacheConfig,
    clock: Clock,
    monotonic: Clock,
    observe: CacheObserver,
}

impl ReviewCache {
    /// `clock` is the wall clock (tokens' `exp`); the TTL runs on the process's monotonic one.
    pub fn new(config: ReviewCacheConfig, clock: Clock, observe: CacheObserver) -> ReviewCache {
        ReviewCache {
            entries: Arc::default(),
            config,
            clock,
            monotonic: monotonic_clock(),
            observe,
        }
    }

    /// The same cache with another monotonic clock (tests drive both clocks).
    pub fn with_monotonic(mut self, monotonic: Clock) -> ReviewCache {
        self.monotonic = monotonic;
        self
    }

    fn now(&self) -> Now {
        Now {
            wall_ms: (self.clock)(),
            monotonic_ms: (self.monotonic)(),
        }
    }

    /// A cache that keeps nothing (TTL zero).
    pub fn disabled() -> ReviewCache {
        ReviewCache::new(
            ReviewCacheConfig {
                ttl: Duration::ZERO,
                max_entries: 0,
            },
            Arc::new(|| 0),
            Arc::new(|_| {}),
        )
    }

    pub fn is_enabled(&self) -> bool {
        !self.config.ttl.is_zero() && self.config.max_entries > 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        match self.entries.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn len(&self) -> usize {
        self.with(|e| e.slots.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `digest` if [`judge`] lets it stand in for a review; `facts` reads the
    /// pod index and the ServiceAccount watch for the entry's pod and account. An entry judged
    /// unusable is dropped.
    pub fn lookup(
        &self,
        digest: &TokenDigest,
        facts: impl FnOnce(&CachedReview) -> (PodNow, AccountLookup),
    ) -> Found {
        if !self.is_enabled() {
            return Found::Miss;
        }
        let found = self.with(|e| e.slots.get(digest).map(|s| (s.seq, Arc::clone(&s.entry))));
        let Some((seq, entry)) = found else {
            (self.observe)(CacheEvent::Miss);
            return Found::Miss;
        };
        // The watches are read without the cache's lock held.
        let (pod, account) = facts(&entry);
        match (judge(&entry, self.now(), &pod, &account), pod) {
            (Verdict::Hit, PodNow::Present(pod)) => {
                (self.observe)(CacheEvent::Hit);
                Found::Hit(entry, pod)
            }
            (Verdict::Drop(reason), _) => {
                // Only the entry judged: a fresh one stored meanwhile stays.
                let dropped = self.with(|e| {
                    let same = e.slots.get(digest).is_some_and(|s| s.seq == seq);
                    same && e.remove(digest).is_some()
                });
                if dropped {
                    (self.observe)(CacheEvent::Dropped(reason));
                }
                (self.observe)(CacheEvent::Miss);
                Found::Miss
            }
            _ => {
                (self.observe)(CacheEvent::Bypassed);
                Found::Miss
            }
        }
    }

    /// Remembers a successful review of the token whose digest is `digest`: `target` is what
    /// it named, `token_exp_ms` the token's own expiry ([`token_expiry_ms`]). Not cached
    /// without a service-account uid or an expiry, or when the token expires within the TTL's
    /// first millisecond.
    pub fn insert(&self, digest: TokenDigest, target: &ReviewedPod, token_exp_ms: Option<u64>) {
        if !self.is_enabled() {
            return;
        }
        let (Some(exp), Some(sa_uid)) = (token_exp_ms, target.service_account_uid.as_ref()) else {
            return;
        };
        if sa_uid.is_empty() {
            return;
        }
        let now = self.now();
        let ttl_ms = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        if exp <= now.wall_ms {
            return;
        }
        let entry = Arc::new(CachedReview {
            target: target.clone(),
            service_account_uid: sa_uid.clone(),
            fresh_until_ms: now.monotonic_ms.saturating_add(ttl_ms),
            token_exp_ms: exp,
        });
        let dropped = self.with(|e| {
            let mut dropped = Vec::new();
            e.remove(&digest);
            // The oldest first: every entry ends by its insertion plus the TTL at the latest.
            while let Some((old, entry)) = e.oldest() {
                if entry.fresh_until_ms > now.monotonic_ms && entry.token_exp_ms > now.wall_ms {
                    break;
                }
                e.remove(&old);
                dropped.push(DropReason::Expired);
            }
            while e.slots.len() >= self.config.max_entries {
                let Some((old, _)) = e.oldest() else { break };
                e.remove(&old);
                dropped.push(DropReason::Evicted);
            }
            let seq = e.next_seq;
            e.next_seq = e.next_seq.wrapping_add(1);
            e.order.insert(seq, digest);
            e.by_pod
                .entry(entry.target.uid.clone())
                .or_default()
                .insert(digest);
            e.slots.insert(digest, Slot { seq, entry });
            dropped
        });
        for reason in dropped {
            (self.observe)(CacheEvent::Dropped(reason));
        }
    }

    /// The pod watch saw pod `uid` deleted: its entries go at once (lookups would refuse them
    /// anyway).
    pub fn forget_pod(&self, uid: &str) {
        let n = self.with(|e| {
            let digests = e.by_pod.remove(uid).unwrap_or_default();
            digests.iter().filter(|d| e.remove(d).is_some()).count()
        });
        for _ in 0..n {
            (self.observe)(CacheEvent::Dropped(DropReason::PodGone));
        }
    }

    /// The ServiceAccount watch saw `namespace/name` deleted. Rare: a scan.
    pub fn forget_account(&self, namespace: &str, name: &str) {
        let n = self.with(|e| {
            let gone: Vec<TokenDigest> = e
                .slots
                .iter()
                .filter(|(_, s)| {
                    s.entry.target.namespace == namespace && s.entry.target.service_account == name
                })
                .map(|(d, _)| *d)
                .collect();
            gone.iter().filter(|d| e.remove(d).is_some()).count()
        });
        for _ in 0..n {
            (self.observe)(CacheEvent::Dropped(DropReason::SaGone));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::fixtures::pod;

    const NOW: u64 = 1_000_000_000;

    fn target(pod_uid: &str) -> ReviewedPod {
        ReviewedPod {
            namespace: "team-a".into(),
            service_account: "default".into(),
            name: "web-1".into(),
            uid: pod_uid.into(),
            username: "system:serviceaccount:team-a:default".into(),
            service_account_uid: Some("sa1".into()),
        }
    }

    fn entry() -> CachedReview {
        CachedReview {
            target: target("u1"),
            service_account_uid: "sa1".into(),
            fresh_until_ms: NOW + 10_000,
            token_exp_ms: NOW + 3_600_000,
        }
    }

    /// Both clocks at `ms` (the tests move them together unless they say otherwise).
    fn at(ms: u64) -> Now {
        Now {
            wall_ms: ms,
            monotonic_ms: ms,
        }
    }

    fn live() -> PodNow {
        PodNow::Present(Arc::new(pod("web-1", "u1", "127.100.0.1")))
    }

    fn sa(uid: &str) -> AccountLookup {
        AccountLookup::Present(uid.into())
    }

    /// A JWT whose payload is `claims` (header and signature are not read).
    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(claims))
    }

    #[test]
    fn the_digest_is_sha256_and_shows_only_a_prefix() {
        let d = TokenDigest::of("abc");
        // SHA-256("abc") = ba7816bf...
        assert_eq!(format!("{d:?}"), "TokenDigest(ba7816bf…)");
        assert_ne!(d, TokenDigest::of("abd"));
    }

    #[test]
    fn the_expiry_is_read_from_the_payload_or_not_at_all() {
        assert_eq!(
            token_expiry_ms(&jwt(r#"{"exp":1700000000}"#)),
            Some(1_700_000_000_000)
        );
        for bad in [
            jwt(r#"{"iat":1}"#),
            jwt(r#"{"exp":"soon"}"#),
            jwt(r#"{"exp":-1}"#),
            jwt(r#"{"exp":1.5}"#),
            jwt(r#"{"exp":18446744073709551615}"#),
            "not-a-jwt".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "a.!!!.c".into(),
            format!("a.{}.c", "A".repeat(MAX_PAYLOAD + 4)),
        ] {
            assert_eq!(token_expiry_ms(&bad), None, "{bad:.60}");
        }
    }

    #[test]
    fn a_hit_needs_the_same_live_pod_and_the_same_account_now() {
        let e = entry();
        assert_eq!(judge(&e, at(NOW), &live(), &sa("sa1")), Verdict::Hit);
    }

    #[test]
    fn an_entry_never_outlives_its_expiry() {
        let e = entry();
        assert_eq!(
            judge(&e, at(NOW + 9_999), &live(), &sa("sa1")),
            Verdict::Hit
        );
        for ms in [NOW + 10_000, NOW + 60_000] {
            assert_eq!(
                judge(&e, at(ms), &live(), &sa("sa1")),
                Verdict::Drop(DropReason::Expired)
            );
        }
    }

    #[test]
    fn a_wall_clock_stepped_back_does_not_stretch_the_ttl_and_exp_stays_a_date() {
        let e = entry();
        // The wall clock jumps an hour back after the TTL ran out on the monotonic clock.
        let stepped_back = Now {
            wall_ms: NOW - 3_600_000,
            monotonic_ms: NOW + 10_000,
        };
        assert_eq!(
            judge(&e, stepped_back, &live(), &sa("sa1")),
            Verdict::Drop(DropReason::Expired)
        );
        // Within the TTL, a wall clock past the token's exp ends the entry.
        let past_exp = Now {
            wall_ms: NOW + 3_600_000,
            monotonic_ms: NOW + 1,
        };
        assert_eq!(
            judge(&e, past_exp, &live(), &sa("sa1")),
            Verdict::Drop(DropReason::Expired)
        );
    }

    #[test]
    fn a_deleted_deleting_finished_or_replaced_pod_drops_the_entry() {
        let e = entry();
        let gone = Verdict::Drop(DropReason::PodGone);
        assert_eq!(judge(&e, at(NOW), &PodNow::Absent, &sa("sa1")), gone);
        let variants: [fn(&mut PodFacts); 5] = [
            |p| p.deleting = true,
            |p| p.phase = crate::pod::Phase::Other("Succeeded".into()),
            |p| p.uid = "u2".into(),
            |p| p.name = "web-2".into(),
            |p| p.namespace = "team-b".into(),
        ];
        for change in variants {
            let mut p = pod("web-1", "u1", "127.100.0.1");
            change(&mut p);
            assert_eq!(
                judge(&e, at(NOW), &PodNow::Present(Arc::new(p)), &sa("sa1")),
                gone
            );
        }
    }

    #[test]
    fn a_deleted_or_recreated_service_account_drops_the_entry() {
        let e = entry();
        let gone = Verdict::Drop(DropReason::SaGone);
        assert_eq!(judge(&e, at(NOW), &live(), &AccountLookup::Absent), gone);
        assert_eq!(judge(&e, at(NOW), &live(), &sa("sa2")), gone);
    }

    #[test]
    fn a_stale_watch_bypasses_the_cache_but_expiry_still_drops() {
        let e = entry();
        assert_eq!(
            judge(&e, at(NOW), &PodNow::Stale, &sa("sa1")),
            Verdict::Bypass
        );
        assert_eq!(
            judge(&e, at(NOW), &live(), &AccountLookup::Stale),
            Verdict::Bypass
        );
        assert_eq!(
            judge(&e, at(NOW), &PodNow::Absent, &AccountLookup::Stale),
            Verdict::Bypass,
            "nothing is concluded from a stale watch"
        );
        assert_eq!(
            judge(&e, at(NOW + 10_000), &PodNow::Stale, &AccountLookup::Stale),
            Verdict::Drop(DropReason::Expired)
        );
    }

    struct Bed {
        cache: ReviewCache,
        now: Arc<AtomicU64>,
        events: Arc<Mutex<Vec<CacheEvent>>>,
    }

    impl Bed {
        fn new(ttl_secs: u64, max_entries: usize) -> Bed {
            let now = Arc::new(AtomicU64::new(NOW));
            let (clock_now, mono_now) = (Arc::clone(&now), Arc::clone(&now));
            let events = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&events);
            let cache = ReviewCache::new(
                ReviewCacheConfig {
                    ttl: Duration::from_secs(ttl_secs),
                    max_entries,
                },
                Arc::new(move || clock_now.load(Ordering::SeqCst)),
                Arc::new(move |e| seen.lock().expect("events").push(e)),
            )
            .with_monotonic(Arc::new(move || mono_now.load(Ordering::SeqCst)));
            Bed { cache, now, events }
        }

        fn advance(&self, ms: u64) {
            self.now.fetch_add(ms, Ordering::SeqCst);
        }

        fn events(&self) -> Vec<CacheEvent> {
            std::mem::take(&mut *self.events.lock().expect("events"))
        }

        fn lookup(&self, token: &str, pod: PodNow, account: AccountLookup) -> bool {
            let found = self
                .cache
                .lookup(&TokenDigest::of(token), |_| (pod, account));
            matches!(found, Found::Hit(..))
        }

        fn hit(&self, token: &str) -> bool {
            self.lookup(token, live(), sa("sa1"))
        }
    }

    const FAR: Option<u64> = Some(NOW + 3_600_000);

    #[test]
    fn a_stored_review_is_reused_until_its_ttl() {
        let bed = Bed::new(10, 10);
        assert!(!bed.hit("t1"));
        assert_eq!(bed.events(), [CacheEvent::Miss]);
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(bed.hit("t1"));
        assert!(!bed.hit("t2"), "another token is another key");
        bed.advance(9_999);
        assert!(bed.hit("t1"));
        bed.advance(1);
        assert!(!bed.hit("t1"));
        assert_eq!(
            bed.events(),
            [
                CacheEvent::Hit,
                CacheEvent::Miss,
                CacheEvent::Hit,
                CacheEvent::Dropped(DropReason::Expired),
                CacheEvent::Miss
            ]
        );
        assert!(bed.cache.is_empty());
    }

    #[test]
    fn the_tokens_own_expiry_shortens_the_ttl() {
        let bed = Bed::new(10, 10);
        bed.cache
            .insert(TokenDigest::of("t1"), &target("u1"), Some(NOW + 2_000));
        bed.advance(1_999);
        assert!(bed.hit("t1"));
        bed.advance(1);
        assert!(!bed.hit("t1"));
        // Already expired, or with no readable expiry or account uid: not stored at all.
        bed.cache
            .insert(TokenDigest::of("t2"), &target("u1"), Some(NOW));
        bed.cache.insert(TokenDigest::of("t3"), &target("u1"), None);
        let mut no_uid = target("u1");
        no_uid.service_account_uid = None;
        bed.cache.insert(TokenDigest::of("t4"), &no_uid, FAR);
        no_uid.service_account_uid = Some(String::new());
        bed.cache.insert(TokenDigest::of("t5"), &no_uid, FAR);
        assert!(bed.cache.is_empty());
    }

    #[test]
    fn a_deleted_pod_or_account_is_never_served_and_its_entry_goes() {
        let bed = Bed::new(10, 10);
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(!bed.lookup("t1", PodNow::Absent, sa("sa1")));
        assert!(bed.cache.is_empty());
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(!bed.lookup("t1", live(), sa("sa2")));
        assert!(bed.cache.is_empty());
        bed.events();
        // A stale watch keeps the entry but does not use it.
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(!bed.lookup("t1", PodNow::Stale, sa("sa1")));
        assert_eq!(bed.cache.len(), 1);
        assert_eq!(bed.events(), [CacheEvent::Bypassed]);
    }

    #[test]
    fn delete_events_drop_the_entries_of_a_pod_or_an_account() {
        let bed = Bed::new(10, 10);
        bed.cache.insert(TokenDigest::of("a1"), &target("u1"), FAR);
        bed.cache.insert(TokenDigest::of("a2"), &target("u1"), FAR);
        bed.cache.insert(TokenDigest::of("b1"), &target("u2"), FAR);
        bed.cache.forget_pod("u1");
        assert_eq!(bed.cache.len(), 1);
        assert_eq!(bed.events(), [CacheEvent::Dropped(DropReason::PodGone); 2]);
        bed.cache.forget_pod("u1");
        bed.cache.forget_account("team-a", "other");
        assert_eq!(bed.cache.len(), 1);
        bed.cache.forget_account("team-a", "default");
        assert!(bed.cache.is_empty());
        assert_eq!(bed.events(), [CacheEvent::Dropped(DropReason::SaGone)]);
        // The secondary index went with them: a re-insert is found again.
        bed.cache.insert(TokenDigest::of("a1"), &target("u1"), FAR);
        bed.cache.forget_pod("u1");
        assert!(bed.cache.is_empty());
    }

    #[test]
    fn at_capacity_the_oldest_goes_and_expired_ones_first() {
        let bed = Bed::new(10, 2);
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        bed.advance(1);
        bed.cache.insert(TokenDigest::of("t2"), &target("u2"), FAR);
        bed.advance(1);
        bed.cache.insert(TokenDigest::of("t3"), &target("u3"), FAR);
        assert_eq!(bed.cache.len(), 2);
        assert!(!bed.hit("t1"), "the oldest was evicted");
        bed.events();
        // Replacing an entry does not count against the bound.
        bed.cache.insert(TokenDigest::of("t3"), &target("u3"), FAR);
        assert_eq!(bed.cache.len(), 2);
        assert_eq!(bed.events(), []);
        bed.advance(10_000);
        bed.cache.insert(TokenDigest::of("t4"), &target("u4"), FAR);
        assert_eq!(bed.cache.len(), 1, "both older entries had expired");
        assert_eq!(bed.events(), [CacheEvent::Dropped(DropReason::Expired); 2]);
    }

    #[test]
    fn a_disabled_cache_keeps_and_counts_nothing() {
        let bed = Bed::new(0, 10);
        bed.cache.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(!bed.hit("t1"));
        assert!(bed.cache.is_empty());
        assert_eq!(bed.events(), []);
        let off = ReviewCache::disabled();
        off.insert(TokenDigest::of("t1"), &target("u1"), FAR);
        assert!(off.is_empty() && !off.is_enabled());
    }
}
