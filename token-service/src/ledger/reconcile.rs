//! The loop the leader runs: for every ledger entry, judge the workload, decide with
//! [`lifecycle::decide`] and act — renew, re-issue, cancel — recording the outcome in the
//! Secret, the audit log and the metrics. Each pass reads the ledger afresh, so a restart or a
//! new leader simply continues where the Secrets say things stand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use super::Serving;
use super::lifecycle::{self, Action, Liveness};
use super::record::Record;
use super::store::{Entry, Ledger, Listed, StoreError};
use crate::audit::{AuditEvent, AuditSink, rfc3339_ms};
use crate::clock::Clock;
use crate::events::{EventSink, Happened};
use crate::hadoop::{HadoopError, SetError, TokenSet, TokenSource};
use crate::issued::{Expiry, Issued, Unencodable};
use crate::metrics::{Metrics, observed};
use crate::workload::WorkloadKey;

/// Why an action on an entry did not happen. A Hadoop failure is recorded in the entry and
/// retried after a backoff ([`Reconciler::error_policy`]); a ledger failure is retried on the
/// next pass, which reads the entries afresh.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("renewing the set failed: {0}")]
    Renew(SetError),
    #[error("obtaining a new set failed: {0}")]
    Reissue(SetError),
    #[error(transparent)]
    Unencodable(Unencodable),
    #[error("cancelling the set failed: {0}")]
    Cancel(SetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReconcileError {
    /// The operation, as kept in the record's `last_error`.
    fn op(&self) -> &'static str {
        match self {
            ReconcileError::Renew(_) => "renew",
            ReconcileError::Reissue(_) | ReconcileError::Unencodable(_) => "reissue",
            ReconcileError::Cancel(_) => "cancel",
            ReconcileError::Store(_) => "record",
        }
    }

    /// The outcome label of metrics and the audit log.
    fn outcome(&self) -> &'static str {
        match self {
            ReconcileError::Renew(_) => "renew_failed",
            ReconcileError::Reissue(_) | ReconcileError::Unencodable(_) => "reissue_failed",
            ReconcileError::Cancel(_) => "cancel_failed",
            ReconcileError::Store(_) => "not_recorded",
        }
    }

    /// What failed, without the operation the record names already.
    fn detail(&self) -> String {
        match self {
            ReconcileError::Renew(e) | ReconcileError::Reissue(e) | ReconcileError::Cancel(e) => {
                e.to_string()
            }
            ReconcileError::Unencodable(e) => e.to_string(),
            ReconcileError::Store(e) => e.to_string(),
        }
    }
}

/// Whether a workload still runs; the Kubernetes implementation lives in `cluster`.
pub trait WorkloadState: Send + Sync {
    /// `submitter`: the record's pods' user; only its pods keep the workload alive (`None`:
    /// a record of an older version, any pod of the workload does).
    fn liveness<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        submitter: Option<&'a str>,
    ) -> BoxFuture<'a, Liveness>;
}

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time between passes: the resolution of every renewal and cancellation.
    pub period: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            period: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(600),
        }
    }
}

pub struct Reconciler {
    pub ledger: Ledger,
    pub source: Arc<dyn TokenSource>,
    /// The sets being served: they follow every renewal, re-issue and cancellation.
    pub serving: Arc<dyn Serving>,
    pub workloads: Arc<dyn WorkloadState>,
    pub leader: Arc<AtomicBool>,
    pub audit: Arc<AuditSink>,
    /// Kubernetes Events on the workload for each renewal, re-issue, cancellation and failure.
    pub events: Arc<dyn EventSink>,
    pub metrics: Metrics,
    pub clock: Clock,
    pub cfg: ReconcileConfig,
}

impl Reconciler {
    pub fn spawn(self) {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "ledger pass failed; retrying");
                }
                tokio::time::sleep(self.cfg.period).await;
            }
        });
    }

    /// One pass over the ledger; returns the actions taken. Non-leaders only count entries.
    pub async fn pass(&self) -> Result<Vec<Action>, StoreError> {
        let entries = self.ledger.records().await?;
        let leading = self.leader.load(Ordering::SeqCst);
        self.gauge(&entries, leading);
        if !leading {
            return Ok(Vec::new());
        }
        let mut taken = Vec::new();
        for entry in entries {
            let now_ms = (self.clock)();
            let liveness = self
                .workloads
                .liveness(&entry.record.workload, entry.record.submitter.as_deref())
                .await;
            if let Action::WaitUntil(_) = lifecycle::decide(&entry.record.facts(now_ms, liveness)) {
                continue;
            }
            // The list may trail this replica's own writes (it comes from a watch): decide
            // and act on the record as stored now, about one read per action.
            let entry = match self.ledger.reread(&entry).await {
                // Liveness was judged for the listed record's user: another user now, next pass.
                Ok(Some(fresh)) if fresh.record.submitter == entry.record.submitter => fresh,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(workload = %entry.record.workload, error = %e, "ledger entry not re-read; next pass");
                    continue;
                }
            };
            let action = lifecycle::decide(&entry.record.facts(now_ms, liveness));
            let result = match action {
                Action::WaitUntil(_) => continue,
                Action::Renew => self.renew(&entry, now_ms).await,
                Action::Reissue => self.reissue(&entry, now_ms).await,
                Action::Cancel => self.cancel(&entry, now_ms).await,
            };
            if let Err(e) = result {
                self.error_policy(&entry, e, now_ms).await;
            }
            taken.push(action);
        }
        Ok(taken)
    }

    /// What alerts watch: the ledger's size, the nearest expiry and max date, failing entries,
    /// and who leads (every replica reports, so a missing leader shows).
    fn gauge(&self, entries: &[Listed], leading: bool) {
        let m = &self.metrics;
        let secs = |ms: Option<u64>| ms.map_or(0, |ms| (ms / 1000) as i64);
        m.ledger_entries.set(entries.len() as i64);
        m.ledger_leader.set(i64::from(leading));
        let records = || entries.iter().map(|e| &e.record);
        m.ledger_next_expiry
            .set(secs(records().map(|r| r.expires_at_ms).min()));
        m.ledger_next_max_date
            .set(secs(records().filter_map(Record::max_date_ms).min()));
        m.ledger_failing
            .set(records().filter(|r| r.failures > 0).count() as i64);
    }

    /// A failed action: a Hadoop failure is counted in the entry, which waits its backoff; a
    /// ledger failure leaves the entry as it is, for the next pass.
    async fn error_policy(&self, entry: &Entry, error: ReconcileError, now_ms: u64) {
        if let ReconcileError::Store(e) = &error {
            tracing::warn!(workload = %entry.record.workload, error = %e, "ledger action not recorded");
            return;
        }
        let failures = entry.record.failures.saturating_add(1);
        let wait = lifecycle::backoff(failures, self.cfg.backoff_base, self.cfg.backoff_cap);
        let detail = error.detail();
        let record = entry.record.failed(error.op(), &detail, now_ms, wait);
        self.metrics.ledger_action(error.outcome());
        self.record(error.outcome(), &record, Some(detail));
        let happened = Happened::LedgerFailed {
            outcome: error.outcome(),
        };
        self.events.emit(&record.workload, happened);
        if let Err(e) = self.ledger.update(entry, &record, &entry.issued).await {
            tracing::warn!(workload = %entry.record.workload, error = %e, "ledger action not recorded");
        }
    }

    fn observe(&self) -> impl Fn(&'static str, bool, Duration) + '_ {
        |op, ok, took| self.metrics.observe_call(op, ok, took)
    }

    async fn renew(&self, entry: &Entry, now_ms: u64) -> Result<(), ReconcileError> {
        let renewed = observed(
            self.observe(),
            "renew",
            self.source.renew(&entry.issued.set),
        )
        .await;
        let renewal = match renewed {
            Ok(r) => r,
            // Nothing left to renew (the server forgot the set, or it is past the expiry we
            // recorded and the server agrees it is dead): a fresh set now, while the workload runs.
            Err(e) if dead_at_server(&e) || now_ms >= entry.record.expires_at_ms => {
                self.metrics.ledger_action("renew_failed");
                self.record("renew_failed", &entry.record, Some(e.to_string()));
                return self.reissue(entry, now_ms).await;
            }
            Err(e) => return Err(ReconcileError::Renew(e)),
        };
        let record = entry.record.renewed(&renewal, now_ms);
        let issued = record.serve(
            entry.issued.file.clone(),
            entry.issued.set.clone(),
            entry.issued.selection.clone(),
        );
        let stored = self.ledger.update(entry, &record, &issued).await?;
        self.serving.replace(&record.workload, stored.issued);
        self.metrics.ledger_action("renewed");
        self.record("renewed", &record, None);
        let happened = Happened::Renewed {
            hadoop_user: record.hadoop_user.clone(),
            expires_at_ms: record.expires_at_ms,
        };
        self.events.emit(&record.workload, happened);
        Ok(())
    }

    async fn reissue(&self, entry: &Entry, now_ms: u64) -> Result<(), ReconcileError> {
        let user = &entry.record.hadoop_user;
        // Exactly the services the workload's pods chose, as when the set was first issued.
        let services = &entry.issued.selection;
        let obtained = observed(self.observe(), "obtain", self.source.obtain(user, services)).await;
        let set = obtained.map_err(ReconcileError::Reissue)?;
        // The new set's expiry from the interval the server granted the old one: no renewal
        // call just to learn it.
        let expiry = Expiry::Assumed {
            now_ms,
            interval_ms: entry.record.interval_ms(),
        };
        let submitter = entry.record.submitter.clone();
        let issued = match Issued::obtained(user, submitter, services.clone(), &set, expiry) {
            Ok(issued) => issued,
            Err(e) => {
                self.cancel_quietly(&set).await;
                return Err(ReconcileError::Unencodable(e));
            }
        };
        let record = entry.record.reissued(&issued, now_ms);
        let stored = match self.ledger.update(entry, &record, &issued).await {
            Ok(stored) => stored,
            Err(e) => {
                // Unrecorded tokens would never be renewed nor cancelled: give them back.
                self.cancel_quietly(&issued.set).await;
                return Err(e.into());
            }
        };
        self.serving.replace(&record.workload, stored.issued);
        self.metrics.ledger_action("reissued");
        self.record("reissued", &record, None);
        let happened = Happened::Reissued {
            hadoop_user: record.hadoop_user.clone(),
            tokens: record.tokens.clone(),
        };
        self.events.emit(&record.workload, happened);
        // Pods switch to the new file on their next refresh; the old set goes now.
        if let Err(e) = self.source.cancel(&entry.issued.set).await {
            self.metrics.ledger_action("cancel_failed");
            self.record("cancel_failed", &entry.record, Some(e.to_string()));
        }
        Ok(())
    }

    async fn cancel(&self, entry: &Entry, now_ms: u64) -> Result<(), ReconcileError> {
        let cancelled = observed(
            self.observe(),
            "cancel",
            self.source.cancel(&entry.issued.set),
        )
        .await;
        if let Err(e) = cancelled {
            // A set past its expiry or unknown to the server is dead anyway; anything else is
            // retried.
            if now_ms < entry.record.expires_at_ms && !dead_at_server(&e) {
                return Err(ReconcileError::Cancel(e));
            }
            self.record(
                "cancel_failed",
                &entry.record,
                Some(format!("{e}; expired anyway")),
            );
        }
        self.ledger.remove(entry).await?;
        self.serving.forget(
            &entry.record.workload,
            &entry.record.hadoop_user,
            &entry.issued.selection,
        );
        self.metrics.ledger_action("cancelled");
        self.record(
            "cancelled",
            &entry.record,
            Some("the workload is gone".into()),
        );
        let happened = Happened::Cancelled {
            hadoop_user: entry.record.hadoop_user.clone(),
        };
        self.events.emit(&entry.record.workload, happened);
        Ok(())
    }

    async fn cancel_quietly(&self, set: &TokenSet) {
        if let Err(e) = self.source.cancel(set).await {
            tracing::warn!(error = %e, "cannot cancel an unused token set; it expires by itself");
        }
    }

    fn record(&self, outcome: &'static str, record: &Record, reason: Option<String>) {
        self.audit.record(&AuditEvent {
            time: rfc3339_ms((self.clock)()),
            outcome,
            reason,
            pod_namespace: Some(record.workload.namespace.clone()),
            hadoop_user: Some(record.hadoop_user.clone()),
            workload: Some(record.workload.to_string()),
            tokens: record.tokens.clone(),
            ..AuditEvent::default()
        });
    }
}

/// Every token of the set is expired or unknown at its server.
fn dead_at_server(e: &SetError) -> bool {
    !e.failures.is_empty()
        && e.failures.iter().all(|(_, h)| {
            matches!(
                h,
                HadoopError::TokenNotFound { .. } | HadoopError::TokenExpired { .. }
            )
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    use super::*;
    use crate::fixtures::{FakeSecrets, RecordedEvents, forgotten, token_set, workload};
    use crate::hadoop::error::HadoopError;
    use crate::hadoop::{Renewal, SetError};
    use crate::issued::describe;
    use crate::issuer::{Issuer, IssuerConfig};
    use crate::ledger::Persist;
    use prometheus_client::registry::Registry;

    /// Hadoop with a 20 s renew interval; every token's max date is 9 000 s (`url_string`).
    const INTERVAL: u64 = 20_000;
    const MAX_DATE: u64 = 9_000_000;

    struct Hadoop {
        /// Renewals answer "token can't be found in cache".
        forgotten: AtomicBool,
        now: Arc<AtomicU64>,
        obtained: AtomicUsize,
        renewed: AtomicUsize,
        cancelled: Mutex<Vec<i32>>,
        fail_renew: AtomicBool,
        /// The services each obtain asked for, in order.
        asked: Mutex<Vec<crate::services::Selection>>,
    }

    fn seq(set: &TokenSet) -> i32 {
        describe(set)[0].sequence_number.unwrap_or(-1)
    }

    fn failure() -> SetError {
        SetError {
            failures: vec![(
                "hdfs:ns1".into(),
                HadoopError::Config("NameNode down".into()),
            )],
        }
    }

    impl TokenSource for Hadoop {
        fn obtain<'a>(
            &'a self,
            user: &'a str,
            services: &'a crate::services::Selection,
        ) -> BoxFuture<'a, Result<TokenSet, SetError>> {
            Box::pin(async move {
                self.asked.lock().expect("lock").push(services.clone());
                let n = self.obtained.fetch_add(1, Ordering::SeqCst) as i32;
                Ok(token_set(user, 40 + n))
            })
        }

        fn renew<'a>(&'a self, _: &'a TokenSet) -> BoxFuture<'a, Result<Renewal, SetError>> {
            Box::pin(async move {
                if self.fail_renew.load(Ordering::SeqCst) {
                    return Err(failure());
                }
                if self.forgotten.load(Ordering::SeqCst) {
                    return Err(forgotten());
                }
                self.renewed.fetch_add(1, Ordering::SeqCst);
                let e = (self.now.load(Ordering::SeqCst) + INTERVAL).min(MAX_DATE);
                Ok(Renewal {
                    expires_at_ms: e,
                    per_token: vec![("hdfs:ns1".into(), e)],
                })
            })
        }

        fn cancel<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<(), SetError>> {
            Box::pin(async move {
                self.cancelled.lock().expect("lock").push(seq(set));
                Ok(())
            })
        }
    }

    struct Workloads(Mutex<HashMap<String, Liveness>>);

    impl WorkloadState for Workloads {
        fn liveness<'a>(
            &'a self,
            w: &'a WorkloadKey,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Liveness> {
            let l = self.0.lock().expect("lock").get(&w.name).copied();
            Box::pin(async move { l.unwrap_or(Liveness::Alive) })
        }
    }

    struct Bed {
        now: Arc<AtomicU64>,
        hadoop: Arc<Hadoop>,
        secrets: Arc<FakeSecrets>,
        workloads: Arc<Workloads>,
        leader: Arc<AtomicBool>,
        registry: Registry,
        /// The issuer the reconciler keeps current.
        issuer: Issuer,
        events: Arc<RecordedEvents>,
        r: Reconciler,
    }

    fn issuer(b: &Bed) -> Issuer {
        let persist: Arc<dyn Persist> = Arc::new(b.r.ledger.clone());
        Issuer::with_ledger(
            b.hadoop.clone(),
            IssuerConfig {
                refresh_margin: Duration::from_millis(1000),
                ..IssuerConfig::default()
            },
            b.r.clock.clone(),
            Arc::new(|_, _, _| {}),
            Some(persist),
        )
    }

    fn bed() -> Bed {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let clock = crate::fixtures::clock(&now);
        let hadoop = Arc::new(Hadoop {
            forgotten: AtomicBool::new(false),
            now: Arc::clone(&now),
            obtained: AtomicUsize::new(0),
            renewed: AtomicUsize::new(0),
            cancelled: Mutex::new(Vec::new()),
            fail_renew: AtomicBool::new(false),
            asked: Mutex::new(Vec::new()),
        });
        let secrets = Arc::new(FakeSecrets::default());
        let ledger = Ledger::new(secrets.clone(), "kube2hadoop".into(), clock.clone());
        let workloads = Arc::new(Workloads(Mutex::new(HashMap::new())));
        let leader = Arc::new(AtomicBool::new(true));
        let events = Arc::new(RecordedEvents::default());
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let persist: Arc<dyn Persist> = Arc::new(ledger.clone());
        let issuer = Issuer::with_ledger(
            hadoop.clone(),
            IssuerConfig::default(),
            clock.clone(),
            Arc::new(|_, _, _| {}),
            Some(persist),
        );
        let r = Reconciler {
            ledger,
            source: hadoop.clone(),
            serving: Arc::new(issuer.clone()),
            workloads: workloads.clone(),
            leader: leader.clone(),
            audit: Arc::new(AuditSink::Tracing),
            events: events.clone(),
            metrics,
            clock,
            cfg: ReconcileConfig {
                period: Duration::from_secs(1),
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(8),
            },
        };
        Bed {
            now,
            hadoop,
            secrets,
            workloads,
            leader,
            registry,
            issuer,
            events,
            r,
        }
    }

    impl Bed {
        fn at(&self, ms: u64) {
            self.now.store(ms, Ordering::SeqCst);
        }

        async fn record(&self) -> Record {
            let mut entries = self.r.ledger.entries().await.expect("entries");
            assert_eq!(entries.len(), 1, "one ledger entry");
            entries.remove(0).record
        }

        fn metrics(&self) -> String {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
            text
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_or_second_replica_serves_the_ledger_set_without_hadoop() {
        let b = bed();
        let (first, _) = issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        assert_eq!(b.hadoop.obtained.load(Ordering::SeqCst), 1);
        let (again, _) = issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("from the ledger");
        assert_eq!(b.hadoop.obtained.load(Ordering::SeqCst), 1, "no second set");
        assert_eq!(again.file, first.file);
        let r = b.record().await;
        assert_eq!((r.issued_at_ms, r.expires_at_ms), (1_000_000, 1_020_000));
        assert_eq!(r.renew_interval_ms, Some(INTERVAL));
    }

    /// A replica that read the ledger just before another one stored its set.
    struct LateReader(Ledger);

    impl Persist for LateReader {
        fn load<'a>(
            &'a self,
            _: &'a WorkloadKey,
            _: &'a str,
            _: &'a crate::services::Selection,
        ) -> BoxFuture<'a, Result<Option<crate::ledger::Loaded>, StoreError>> {
            Box::pin(async { Ok(None) })
        }

        fn renewed<'a>(
            &'a self,
            expired: &'a Entry,
            renewal: &'a Renewal,
        ) -> BoxFuture<'a, Result<Arc<Issued>, StoreError>> {
            self.0.renewed(expired, renewal)
        }

        fn save<'a>(
            &'a self,
            workload: &'a WorkloadKey,
            issued: &'a Arc<Issued>,
        ) -> BoxFuture<'a, Result<crate::ledger::Saved, StoreError>> {
            self.0.save(workload, issued)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_loses_the_create_race_cancels_its_set_and_serves_the_winner() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        let late = Issuer::with_ledger(
            b.hadoop.clone(),
            IssuerConfig::default(),
            b.r.clock.clone(),
            Arc::new(|_, _, _| {}),
            Some(Arc::new(LateReader(b.r.ledger.clone()))),
        );
        let (served, _) = late
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("serve");
        assert_eq!(
            served.tokens[0].sequence_number,
            Some(40),
            "the winner's set"
        );
        assert_eq!(
            *b.hadoop.cancelled.lock().expect("lock"),
            [41],
            "ours is given back"
        );
        assert_eq!(b.secrets.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn renews_at_ninety_percent_and_serves_the_new_expiry() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        let renewed_at_issue = b.hadoop.renewed.load(Ordering::SeqCst);
        b.at(1_017_999);
        assert!(b.r.pass().await.expect("pass").is_empty(), "too early");
        b.at(1_018_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        assert_eq!(
            b.hadoop.renewed.load(Ordering::SeqCst),
            renewed_at_issue + 1
        );
        let r = b.record().await;
        assert_eq!(
            (r.renewals, r.window_start_ms, r.expires_at_ms),
            (1, 1_018_000, 1_038_000)
        );
        let (served, _) = b
            .issuer
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("serve");
        assert_eq!(served.expires_at_ms, 1_038_000);
        assert!(
            b.metrics()
                .contains(r#"kube2hadoop_ledger_actions_total{outcome="renewed"} 1"#)
        );
        assert_eq!(b.events.reasons(), [("web".into(), "TokensRenewed")]);
        assert!(b.metrics().contains("kube2hadoop_ledger_entries 1"));
        // As the pass found the ledger: the issue's expiry and the tokens' max date.
        for gauge in [
            "kube2hadoop_ledger_leader 1",
            "kube2hadoop_ledger_next_expiry_timestamp_seconds 1020",
            "kube2hadoop_ledger_next_max_date_timestamp_seconds 9000",
            "kube2hadoop_ledger_failing_entries 0",
        ] {
            assert!(b.metrics().contains(gauge), "{gauge}");
        }
        b.leader.store(false, Ordering::SeqCst);
        b.r.pass().await.expect("pass");
        assert!(b.metrics().contains("kube2hadoop_ledger_leader 0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reissue_asks_for_exactly_the_services_the_set_was_issued_from() {
        let b = bed();
        let hdfs = crate::services::Selection::Only(["hdfs"].into());
        issuer(&b)
            .credentials(&workload("web"), "alice", "alice", &hdfs)
            .await
            .expect("issue");
        assert_eq!(b.record().await.services.as_deref(), Some("hdfs"));
        b.at(MAX_DATE - 10_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Reissue]);
        let r = b.record().await;
        assert_eq!(r.services.as_deref(), Some("hdfs"), "the choice is kept");
        assert_eq!(r.reissues, 1);
        assert_eq!(*b.hadoop.asked.lock().expect("lock"), [hdfs.clone(), hdfs]);
    }

    #[tokio::test(start_paused = true)]
    async fn reissues_before_the_max_date_then_cancels_the_old_set() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        // Renewed until the last full window: 8 990 s, 10 s before the max date.
        b.at(MAX_DATE - 10_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Reissue]);
        let r = b.record().await;
        assert_eq!(r.tokens[0].sequence_number, Some(41), "a new token");
        assert_eq!(r.reissues, 1);
        assert_eq!(
            r.expires_at_ms, MAX_DATE,
            "the new set's expiry, capped by its max date"
        );
        assert_eq!(
            *b.hadoop.cancelled.lock().expect("lock"),
            [40],
            "the old set is cancelled"
        );
        let renewed = b.hadoop.renewed.load(Ordering::SeqCst);
        assert_eq!(
            renewed, 1,
            "only the issue renewed to learn the expiry; the re-issue did not"
        );
        let (served, _) = b
            .issuer
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("serve");
        assert_eq!(served.tokens[0].sequence_number, Some(41));
        assert_eq!(b.events.reasons(), [("web".into(), "TokensReissued")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gone_workload_is_cancelled_and_its_secret_deleted() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        b.workloads
            .0
            .lock()
            .expect("lock")
            .insert("web".into(), Liveness::Unknown);
        b.at(2_000_000);
        assert!(
            b.r.pass().await.expect("pass").is_empty(),
            "nothing judged before the index is ready"
        );
        assert_eq!(b.secrets.count(), 1);
        b.leader.store(false, Ordering::SeqCst);
        b.workloads
            .0
            .lock()
            .expect("lock")
            .insert("web".into(), Liveness::Gone);
        assert!(
            b.r.pass().await.expect("pass").is_empty(),
            "followers do not act"
        );
        b.leader.store(true, Ordering::SeqCst);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Cancel]);
        assert_eq!(*b.hadoop.cancelled.lock().expect("lock"), [40]);
        assert_eq!(b.secrets.count(), 0);
        assert!(
            b.metrics()
                .contains(r#"kube2hadoop_ledger_actions_total{outcome="cancelled"} 1"#)
        );
        assert_eq!(b.events.reasons(), [("web".into(), "TokensCancelled")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_backs_off_is_recorded_and_never_drops_the_set() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        b.hadoop.fail_renew.store(true, Ordering::SeqCst);
        b.at(1_018_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        let r = b.record().await;
        assert_eq!((r.failures, r.next_attempt_ms), (1, Some(1_019_000)));
        assert!(
            r.last_error
                .as_deref()
                .is_some_and(|e| e.contains("NameNode down")),
            "{r:?}"
        );
        assert!(
            b.r.pass().await.expect("pass").is_empty(),
            "waits for the backoff"
        );
        b.at(1_019_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        assert_eq!(b.record().await.next_attempt_ms, Some(1_021_000), "doubled");
        // Expired unrenewed while the workload runs: one more renewal (the server decides),
        // which fails, so a fresh set at once, not silence.
        b.at(1_021_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        let r = b.record().await;
        assert_eq!((r.failures, r.last_error.as_deref()), (0, None));
        assert_eq!(r.tokens[0].sequence_number, Some(41));
        assert_eq!(r.reissues, 1);
        assert!(
            b.metrics()
                .contains(r#"kube2hadoop_ledger_actions_total{outcome="renew_failed"} 3"#)
        );
        // Two backoffs told as Warnings, then the re-issue (the last failure re-issued at once).
        let reasons: Vec<_> = b.events.reasons().into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            reasons,
            ["TokenRenewalFailed", "TokenRenewalFailed", "TokensReissued"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_the_server_forgot_is_reissued_at_once_and_cancelled_without_retries() {
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        b.hadoop.forgotten.store(true, Ordering::SeqCst);
        b.at(1_018_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        let r = b.record().await;
        assert_eq!(
            (r.tokens[0].sequence_number, r.reissues),
            (Some(41), 1),
            "re-issued in the same pass"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_renewed_by_a_killed_process_is_renewed_again_not_reissued() {
        // The record says expired (the renewal's answer died with the process), the server
        // still knows the set: renewing keeps the file the pods hold working.
        let b = bed();
        issuer(&b)
            .credentials(
                &workload("web"),
                "alice",
                "alice",
                &crate::services::Selection::All,
            )
            .await
            .expect("issue");
        let expires = b.record().await.expires_at_ms;
        b.at(expires + 5_000);
        assert_eq!(b.r.pass().await.expect("pass"), [Action::Renew]);
        let r = b.record().await;
        assert_eq!((r.tokens[0].sequence_number, r.reissues), (Some(40), 0));
        assert_eq!(r.renewals, 1);
        assert!(r.expires_at_ms > expires + 5_000, "{r:?}");
        assert!(b.hadoop.cancelled.lock().expect("lock").is_empty());
    }
}
