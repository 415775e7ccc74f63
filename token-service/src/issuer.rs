//! Issuance: one token set per (workload, Hadoop user), fetched once and served to every pod
//! of the workload. Concurrent first requests share one fetch; a global semaphore bounds the
//! Hadoop calls in flight.
//!
//! This is the single place tokens come from, so the ledger (persisting, renewing, cancelling)
//! can wrap [`Issuer::credentials`] without touching the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::clock::Clock;
use crate::error::{ApiError, Kind};
use crate::hadoop::{SetError, TokenSet, TokenSource};
use crate::issued::{Expiry, Issued};
use crate::ledger::lifecycle::{self, Action, Liveness};
use crate::ledger::{Entry, Loaded, Persist, Saved, Serving, StoreError};
use crate::metrics::{CallObserver, observed};
use crate::services::Selection;
use crate::workload::WorkloadKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This request made the Hadoop calls.
    Issued,
    /// Served from the cache, or from a fetch another request started.
    Reused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Reused => "reused",
        }
    }
}

#[derive(Clone)]
pub struct IssuerConfig {
    pub max_concurrent_hadoop: usize,
    /// How long a request waits for a Hadoop slot before it is told to retry.
    pub queue_wait: Duration,
    /// A cached set this close to expiry is fetched again (until the ledger renews it).
    pub refresh_margin: Duration,
    /// Used when the first renewal cannot tell the expiry: Hadoop's default renew interval.
    pub assumed_renew_interval: Duration,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            max_concurrent_hadoop: 8,
            queue_wait: Duration::from_secs(10),
            refresh_margin: Duration::from_secs(600),
            assumed_renew_interval: Duration::from_secs(24 * 3600),
        }
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Issued>, ApiError>>>;

#[derive(Clone)]
enum Slot {
    Ready(Arc<Issued>),
    InFlight(Fetch),
}

/// (workload, Hadoop user, services): one set each.
type CacheKey = (WorkloadKey, String, Selection);

struct Inner {
    source: Arc<dyn TokenSource>,
    cfg: IssuerConfig,
    slots: Semaphore,
    cache: Mutex<HashMap<CacheKey, Slot>>,
    clock: Clock,
    observe: CallObserver,
    /// Where sets are remembered across restarts and replicas; `None` keeps them in memory only.
    ledger: Option<Arc<dyn Persist>>,
}

#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

impl Issuer {
    pub fn new(
        source: Arc<dyn TokenSource>,
        cfg: IssuerConfig,
        clock: Clock,
        observe: CallObserver,
    ) -> Issuer {
        Issuer::with_ledger(source, cfg, clock, observe, None)
    }

    /// An issuer that loads sets from and saves them to `ledger` before serving them.
    pub fn with_ledger(
        source: Arc<dyn TokenSource>,
        cfg: IssuerConfig,
        clock: Clock,
        observe: CallObserver,
        ledger: Option<Arc<dyn Persist>>,
    ) -> Issuer {
        Issuer {
            inner: Arc::new(Inner {
                source,
                slots: Semaphore::new(cfg.max_concurrent_hadoop.max(1)),
                cfg,
                cache: Mutex::new(HashMap::new()),
                clock,
                observe,
                ledger,
            }),
        }
    }

    /// The credentials of `workload` for `hadoop_user` from `services`, asked by a pod of
    /// `submitter` (the owner chain proved it is the workload's): cached, joined or fetched.
    pub async fn credentials(
        &self,
        workload: &WorkloadKey,
        hadoop_user: &str,
        submitter: &str,
        services: &Selection,
    ) -> Result<(Arc<Issued>, Outcome), ApiError> {
        let key = (workload.clone(), hadoop_user.to_owned(), services.clone());
        let (fetch, outcome) = {
            let mut cache = self.inner.lock_cache();
            match cache.get(&key).cloned() {
                Some(Slot::Ready(issued)) if self.inner.fresh(&issued) => {
                    return Ok((issued, Outcome::Reused));
                }
                Some(Slot::InFlight(fetch)) => (fetch, Outcome::Reused),
                _ => {
                    let fetch = self.start(key.clone(), submitter.to_owned());
                    cache.insert(key, Slot::InFlight(fetch.clone()));
                    (fetch, Outcome::Issued)
                }
            }
        };
        fetch.await.map(|issued| (issued, outcome))
    }

    /// How many workloads have credentials cached.
    pub fn cached(&self) -> usize {
        self.inner
            .lock_cache()
            .values()
            .filter(|s| matches!(s, Slot::Ready(_)))
            .count()
    }

    /// Runs the fetch as its own task, so a caller that disconnects does not cancel it for
    /// the others; the task records the result in the cache itself.
    fn start(&self, key: CacheKey, submitter: String) -> Fetch {
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let result = inner.fetch(&key.0, &key.1, &submitter, &key.2).await;
            let mut cache = inner.lock_cache();
            match &result {
                Ok(issued) => {
                    cache.insert(key, Slot::Ready(Arc::clone(issued)));
                }
                Err(_) => {
                    cache.remove(&key);
                }
            }
            result
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(ApiError::new(
                    Kind::Internal,
                    "issue_task_failed",
                    format!("obtaining tokens stopped unexpectedly: {e}"),
                ))
            })
        }
        .boxed()
        .shared()
    }
}

impl Serving for Issuer {
    fn replace(&self, workload: &WorkloadKey, issued: Arc<Issued>) {
        let key = (
            workload.clone(),
            issued.hadoop_user.clone(),
            issued.selection.clone(),
        );
        let mut cache = self.inner.lock_cache();
        // A fetch in flight will fill the slot itself, from the ledger.
        if !matches!(cache.get(&key), Some(Slot::InFlight(_))) {
            cache.insert(key, Slot::Ready(issued));
        }
    }

    fn forget(&self, workload: &WorkloadKey, hadoop_user: &str, services: &Selection) {
        let key = (workload.clone(), hadoop_user.to_owned(), services.clone());
        let mut cache = self.inner.lock_cache();
        if matches!(cache.get(&key), Some(Slot::Ready(_))) {
            cache.remove(&key);
        }
    }
}

impl Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Slot>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, issued: &Issued) -> bool {
        let margin = self.cfg.refresh_margin.as_millis() as u64;
        issued.expires_at_ms > (self.clock)().saturating_add(margin)
    }

    /// The ledger's set if it has a usable one (or one a renewal brings back), else a new one,
    /// recorded before it is served.
    async fn fetch(
        &self,
        workload: &WorkloadKey,
        user: &str,
        submitter: &str,
        services: &Selection,
    ) -> Result<Arc<Issued>, ApiError> {
        let Some(ledger) = &self.ledger else {
            return self.obtain(user, submitter, services).await.map(Arc::new);
        };
        match ledger
            .load(workload, user, services)
            .await
            .map_err(|e| ledger_unavailable(&e))?
        {
            Some(Loaded::Usable(stored)) => return Ok(stored),
            Some(Loaded::Expired(expired)) => {
                if let Some(renewed) = self.renew_first(ledger.as_ref(), &expired).await? {
                    return Ok(renewed);
                }
            }
            None => {}
        }
        let ours = Arc::new(self.obtain(user, submitter, services).await?);
        match ledger.save(workload, &ours).await {
            Ok(Saved::Ours) => Ok(ours),
            Ok(Saved::Replaced(old)) => {
                // Nobody renews the old set any more: one live set per workload.
                self.give_back(&old).await;
                Ok(ours)
            }
            Ok(Saved::Theirs(theirs)) => {
                // Another replica stored a set first: one live set per workload.
                self.give_back(&ours.set).await;
                Ok(theirs)
            }
            Err(e) => {
                // A set nobody remembers would never be renewed nor cancelled.
                self.give_back(&ours.set).await;
                Err(ledger_unavailable(&e))
            }
        }
    }

    /// A set expired by its record may still live at the server: a process killed with a
    /// renewal in flight leaves the set renewed there and not in the record, and replacing it
    /// would cancel the file the workload's pods already hold. So, as the reconciler does
    /// ([`lifecycle::decide`]), the server decides: the renewed set, recorded, or `None` to
    /// replace it (no renewal can help, or the renewal failed: past the recorded expiry the
    /// reconciler re-issues on any failure too).
    async fn renew_first(
        &self,
        ledger: &dyn Persist,
        expired: &Entry,
    ) -> Result<Option<Arc<Issued>>, ApiError> {
        // A pod of the workload is asking: it runs.
        let facts = expired.record.facts((self.clock)(), Liveness::Alive);
        if lifecycle::decide(&facts) != Action::Renew {
            return Ok(None);
        }
        let renewed = {
            let _slot = self.hadoop_slot().await?;
            observed(
                &*self.observe,
                "renew",
                self.source.renew(&expired.issued.set),
            )
            .await
        };
        match renewed {
            Ok(renewal) => {
                let served = ledger
                    .renewed(expired, &renewal)
                    .await
                    .map_err(|e| ledger_unavailable(&e))?;
                tracing::info!(workload = %expired.record.workload, "renewed a set its ledger record called expired instead of replacing it");
                Ok(Some(served))
            }
            Err(e) => {
                tracing::info!(workload = %expired.record.workload, error = %e, "a set its ledger record calls expired cannot be renewed; replacing it");
                Ok(None)
            }
        }
    }

    async fn give_back(&self, set: &TokenSet) {
        let cancelled = observed(&*self.observe, "cancel", self.source.cancel(set)).await;
        if let Err(e) = cancelled {
            tracing::warn!(error = %e, "cannot cancel a token set nobody will use; it expires by itself");
        }
    }

    /// Bounds the Hadoop calls in flight; a request that waits too long is told to retry.
    async fn hadoop_slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        tokio::time::timeout(self.cfg.queue_wait, self.slots.acquire())
            .await
            .map_err(|_| {
                ApiError::new(
                    Kind::Unavailable,
                    "hadoop_busy",
                    "too many token requests are waiting for Hadoop; retry shortly",
                )
            })?
            .map_err(|_| {
                ApiError::new(
                    Kind::Unavailable,
                    "shutting_down",
                    "the service is stopping",
                )
            })
    }

    async fn obtain(
        &self,
        user: &str,
        submitter: &str,
        services: &Selection,
    ) -> Result<Issued, ApiError> {
        let _slot = self.hadoop_slot().await?;
        let obtained = observed(&*self.observe, "obtain", self.source.obtain(user, services)).await;
        let set = obtained.map_err(|e| obtain_error(user, &e))?;
        let renewed = observed(&*self.observe, "renew", self.source.renew(&set)).await;
        let expiry = match &renewed {
            Ok(renewal) => Expiry::Renewed(renewal),
            Err(e) => {
                tracing::warn!(user, error = %e, "cannot learn the token expiry by renewing; assuming the default renew interval");
                Expiry::Assumed {
                    now_ms: (self.clock)(),
                    interval_ms: self.cfg.assumed_renew_interval.as_millis() as u64,
                }
            }
        };
        match Issued::obtained(
            user,
            Some(submitter.to_owned()),
            services.clone(),
            &set,
            expiry,
        ) {
            Ok(issued) => Ok(issued),
            Err(e) => {
                // Nobody can be served this set: give it back rather than leave it live.
                self.give_back(&set).await;
                Err(ApiError::new(
                    Kind::Upstream,
                    "hadoop_bad_token",
                    e.to_string(),
                ))
            }
        }
    }
}

fn ledger_unavailable(e: &StoreError) -> ApiError {
    ApiError::new(
        Kind::Unavailable,
        "ledger_unavailable",
        format!("the token ledger cannot be read or written: {e}"),
    )
}

/// A server or the KDC that is down now is 503 (the fetcher retries with backoff and the pod
/// starts once it is back); a refusal only an admin can fix is 502.
fn obtain_error(user: &str, e: &SetError) -> ApiError {
    if e.is_transient() {
        ApiError::new(
            Kind::Unavailable,
            "hadoop_unavailable",
            format!(
                "cannot obtain delegation tokens for {user} now, a Hadoop service or the KDC is \
                 down or starting ({e}); retry later"
            ),
        )
    } else {
        ApiError::new(
            Kind::Upstream,
            "hadoop_failed",
            format!("obtaining delegation tokens for {user} failed: {e}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::Notify;

    use hadoop_token::{Credentials, Format};

    use super::*;
    use crate::fixtures::{FakeSecrets, FakeSource, clock, workload};
    use crate::ledger::{Ledger, Record};

    fn issuer(source: Arc<FakeSource>, now: Arc<AtomicU64>) -> Issuer {
        Issuer::new(
            source,
            IssuerConfig {
                refresh_margin: Duration::from_millis(1000),
                ..IssuerConfig::default()
            },
            Arc::new(move || now.load(Ordering::SeqCst)),
            Arc::new(|_, _, _| {}),
        )
    }

    #[tokio::test]
    async fn later_pods_of_a_workload_reuse_the_first_set() {
        let source = Arc::new(FakeSource::default());
        let issuer = issuer(Arc::clone(&source), Arc::new(AtomicU64::new(0)));
        let (first, o1) = issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("first");
        let (second, o2) = issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("second");
        assert_eq!((o1, o2), (Outcome::Issued, Outcome::Reused));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(source.obtained.load(Ordering::SeqCst), 1);
        assert_eq!(first.expires_at_ms, 5_000_000, "expiry learnt by renewing");
        assert_eq!(first.tokens[0].sequence_number, Some(40));
        assert_eq!(first.tokens[0].master_key_id, Some(3));
        assert_eq!(first.tokens[0].expires_at_ms, Some(5_000_000));
        let (creds, format) = Credentials::decode_with_format(&first.file).expect("HDTS");
        assert_eq!(format, Format::Writable);
        assert_eq!(creds.tokens[0].0, "ha-hdfs:ns1");
        issuer
            .credentials(&workload("db"), "alice", "alice", &Selection::All)
            .await
            .expect("other workload");
        assert_eq!(
            source.obtained.load(Ordering::SeqCst),
            2,
            "another workload, another set"
        );
        assert_eq!(issuer.cached(), 2);
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_fetch() {
        let source = Arc::new(FakeSource {
            gate: Some(Notify::new()),
            ..FakeSource::default()
        });
        let issuer = issuer(Arc::clone(&source), Arc::new(AtomicU64::new(0)));
        let w = workload("web");
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let (issuer, w) = (issuer.clone(), w.clone());
                tokio::spawn(async move {
                    issuer
                        .credentials(&w, "alice", "alice", &Selection::All)
                        .await
                })
            })
            .collect();
        while source.obtained.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        source.gate.as_ref().expect("gate").notify_one();
        let mut issued = 0;
        for call in calls {
            let (_, outcome) = call.await.expect("task").expect("credentials");
            issued += usize::from(outcome == Outcome::Issued);
        }
        assert_eq!(source.obtained.load(Ordering::SeqCst), 1);
        assert_eq!(issued, 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_map_to_502() {
        let source = Arc::new(FakeSource {
            fail: true,
            ..FakeSource::default()
        });
        let issuer = issuer(Arc::clone(&source), Arc::new(AtomicU64::new(0)));
        let e = issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect_err("down");
        assert_eq!((e.status().as_u16(), e.code), (502, "hadoop_failed"));
        issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect_err("down again");
        assert_eq!(
            source.obtained.load(Ordering::SeqCst),
            2,
            "a failure is retried"
        );
    }

    #[test]
    fn a_namenode_that_is_down_is_503_with_its_address_and_a_refusal_is_502() {
        use crate::hadoop::HadoopError;
        let down = SetError {
            failures: vec![(
                "hdfs:nn0".into(),
                HadoopError::Timeout {
                    endpoint: "http://127.0.0.1:9870 GETDELEGATIONTOKEN".into(),
                    timeout: Duration::from_secs(30),
                },
            )],
        };
        let e = obtain_error("alice", &down);
        assert_eq!((e.status().as_u16(), e.code), (503, "hadoop_unavailable"));
        assert!(e.message.contains("http://127.0.0.1:9870"), "{}", e.message);
        let refused = SetError {
            failures: vec![("hdfs:nn0".into(), HadoopError::Config("bad".into()))],
        };
        let e = obtain_error("alice", &refused);
        assert_eq!((e.status().as_u16(), e.code), (502, "hadoop_failed"));
    }

    #[tokio::test]
    async fn a_set_near_expiry_is_fetched_again() {
        let source = Arc::new(FakeSource::default());
        let now = Arc::new(AtomicU64::new(0));
        let issuer = issuer(Arc::clone(&source), Arc::clone(&now));
        issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("first");
        now.store(4_999_500, Ordering::SeqCst);
        let (_, outcome) = issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("again");
        assert_eq!(outcome, Outcome::Issued);
        assert_eq!(source.obtained.load(Ordering::SeqCst), 2);
    }

    /// A token service over an in-memory ledger, renew interval 1 000 s, max date 9 000 s.
    struct LedgerBed {
        now: Arc<AtomicU64>,
        source: Arc<FakeSource>,
        secrets: Arc<FakeSecrets>,
        ledger: Ledger,
    }

    impl LedgerBed {
        fn new() -> LedgerBed {
            let now = Arc::new(AtomicU64::new(1_000_000));
            let source = Arc::new(FakeSource {
                clock: Some(Arc::clone(&now)),
                ..FakeSource::default()
            });
            let secrets = Arc::new(FakeSecrets::default());
            let ledger = Ledger::new(secrets.clone(), "kube2hadoop".into(), self::clock(&now));
            LedgerBed {
                now,
                source,
                secrets,
                ledger,
            }
        }

        /// A process started now: an empty cache over the shared ledger.
        fn issuer(&self) -> Issuer {
            let persist: Arc<dyn Persist> = Arc::new(self.ledger.clone());
            Issuer::with_ledger(
                self.source.clone(),
                IssuerConfig::default(),
                clock(&self.now),
                Arc::new(|_, _, _| {}),
                Some(persist),
            )
        }

        async fn record(&self) -> Record {
            let mut entries = self.ledger.entries().await.expect("entries");
            assert_eq!(entries.len(), 1, "one ledger entry");
            entries.remove(0).record
        }

        fn renewed(&self) -> Vec<i32> {
            self.source.renewed.lock().expect("lock").clone()
        }

        fn cancelled(&self) -> Vec<i32> {
            self.source.cancelled.lock().expect("lock").clone()
        }
    }

    #[tokio::test]
    async fn an_expired_by_record_set_the_server_still_knows_is_renewed_not_replaced() {
        // A process killed before it recorded a renewal's answer: the record says expired,
        // the server renewed the set, the pods hold its file.
        let b = LedgerBed::new();
        let (first, _) = b
            .issuer()
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("issue");
        assert_eq!(b.record().await.expires_at_ms, 2_000_000);
        b.now.store(2_500_000, Ordering::SeqCst);
        let restarted = b.issuer();
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let issuer = restarted.clone();
                tokio::spawn(async move {
                    issuer
                        .credentials(&workload("web"), "alice", "alice", &Selection::All)
                        .await
                })
            })
            .collect();
        for call in calls {
            let (served, _) = call.await.expect("task").expect("credentials");
            assert_eq!(served.tokens[0].sequence_number, Some(40), "the same set");
            assert_eq!(served.file, first.file, "the file the pods hold");
            assert_eq!(served.expires_at_ms, 3_500_000, "the renewed expiry");
        }
        assert_eq!(
            b.renewed(),
            [40, 40],
            "learning the expiry at issue, then one shared renewal"
        );
        assert_eq!(b.source.obtained.load(Ordering::SeqCst), 1, "no second set");
        assert!(b.cancelled().is_empty());
        let r = b.record().await;
        assert_eq!(
            (r.tokens[0].sequence_number, r.renewals, r.reissues),
            (Some(40), 1, 0)
        );
        assert_eq!(
            (
                r.window_start_ms,
                r.expires_at_ms,
                r.tokens[0].expires_at_ms
            ),
            (2_500_000, 3_500_000, Some(3_500_000)),
            "the renewal is recorded as the reconciler records it"
        );
    }

    #[tokio::test]
    async fn an_expired_set_the_server_forgot_is_replaced_and_cancelled() {
        let b = LedgerBed::new();
        let issuer = b.issuer();
        issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("issue");
        b.source.forgotten.lock().expect("lock").push(40);
        b.now.store(2_500_000, Ordering::SeqCst);
        let (served, outcome) = issuer
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("replace");
        assert_eq!(outcome, Outcome::Issued);
        assert_eq!(served.tokens[0].sequence_number, Some(41), "a new set");
        assert_eq!(b.source.obtained.load(Ordering::SeqCst), 2);
        assert_eq!(b.cancelled(), [40], "the old set is given back");
        assert_eq!(b.secrets.count(), 1);
        let r = b.record().await;
        assert_eq!(
            (r.tokens[0].sequence_number, r.expires_at_ms),
            (Some(41), 3_500_000),
            "the record is overwritten with the served set"
        );
    }

    #[tokio::test]
    async fn a_set_past_its_max_date_is_replaced_without_a_renewal() {
        let b = LedgerBed::new();
        b.issuer()
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("issue");
        b.now.store(9_500_000, Ordering::SeqCst);
        let (served, _) = b
            .issuer()
            .credentials(&workload("web"), "alice", "alice", &Selection::All)
            .await
            .expect("replace");
        assert_eq!(served.tokens[0].sequence_number, Some(41));
        assert_eq!(
            b.renewed(),
            [40, 41],
            "only the issues' renewals: none of the old set past its max date"
        );
        assert_eq!(b.cancelled(), [40]);
        assert_eq!(b.record().await.tokens[0].sequence_number, Some(41));
    }
}
