//! Any directory, with its answers reused for a short time: at cluster scale the pods of one
//! workload start together, and each would otherwise cost two or more LDAP searches.
//!
//! What reuse costs, at most the TTL each: a user disabled or taken out of a group in the
//! directory is still allowed, and a user just added is still refused. Errors are never
//! cached. Every noticed failure (a failed call, a connection the server or the network
//! closed) empties the cache before the next lookup, so during a known outage every request
//! is refused `directory_unavailable` as without a cache. Only an outage nobody has noticed
//! yet (a hung server or a silent network cut, before a miss or a lost connection shows it)
//! can be answered from the cache, again for at most the TTL.
//!
//! Questions asked while the same one is on its way to the directory wait for that answer
//! instead of asking again (single flight): a burst of one workload's pods costs one search,
//! and during an outage one timeout, not one per pod. Its error is shared like its answer. A
//! waiter whose asker gave up (its request was dropped) asks itself.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::metrics::DirectoryMetrics;

use super::cache::{CacheConfig, TtlCache};
use super::{Directory, DirectoryError, Failures, RunAsStatus, UserStatus};

/// Exactly what was asked, as asked: `Alice` and `alice` are separate questions, because the
/// answer carries the stored name and callers compare it with theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Question {
    User(String),
    RunAs { user: String, account: String },
}

#[derive(Debug, Clone)]
enum Answer {
    User(UserStatus),
    RunAs(RunAsStatus),
}

pub struct Cached<D> {
    inner: D,
    ttl: Duration,
    state: Mutex<State>,
    /// Questions on their way to the directory, each with the channel its answer goes out on.
    in_flight: Mutex<HashMap<Question, broadcast::Sender<Outcome>>>,
    failures: Failures,
    metrics: DirectoryMetrics,
}

type Outcome = Result<Answer, DirectoryError>;

/// The asker's claim on a question: dropped without [`Flight::land`] (the request was
/// cancelled), it frees the question and its waiters ask themselves.
struct Flight<'a> {
    in_flight: &'a Mutex<HashMap<Question, broadcast::Sender<Outcome>>>,
    question: Option<Question>,
}

impl Flight<'_> {
    /// Hands the outcome to every waiter. Under the lock, so nobody subscribes after the send
    /// (a later asker finds the cache filled instead).
    fn land(mut self, outcome: &Outcome) {
        if let Some(q) = self.question.take() {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(tx) = map.remove(&q) {
                // No receiver left is fine: they gave up.
                let _ = tx.send(outcome.clone());
            }
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.question.take() {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.remove(&q);
        }
    }
}

struct State {
    cache: TtlCache<Question, Answer>,
    /// The failure count when the cache was last emptied: entries are no older than it.
    seen: u64,
}

/// The monotonic clock, through tokio so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<D: Directory> Cached<D> {
    /// `failures` is shared with `inner` when it notices failures of its own (lost
    /// connections); failed calls are noted here.
    pub fn new(
        inner: D,
        cfg: CacheConfig,
        failures: Failures,
        metrics: DirectoryMetrics,
    ) -> Cached<D> {
        let seen = failures.count();
        Cached {
            inner,
            ttl: cfg.ttl,
            state: Mutex::new(State {
                cache: TtlCache::new(cfg),
                seen,
            }),
            in_flight: Mutex::new(HashMap::new()),
            failures,
            metrics,
        }
    }

    /// The state, emptied first if a failure was noticed since; `failures` is the count read
    /// before the question was asked.
    fn state(&self, failures: u64) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (no method panics halfway).
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.seen != failures {
            state.cache.clear();
            state.seen = failures;
            self.metrics.cache_clears.inc();
        }
        state
    }

    async fn ask(
        &self,
        op: &str,
        question: Question,
        query: BoxFuture<'_, Result<Answer, DirectoryError>>,
    ) -> Result<Answer, DirectoryError> {
        loop {
            let asked = now();
            let failures = self.failures.count();
            let cached = {
                let mut state = self.state(failures);
                let hit = state.cache.get(&question, asked);
                self.metrics.cache_entries.set(state.cache.len() as i64);
                hit
            };
            if let Some(answer) = cached {
                self.metrics.lookup("hit");
                return Ok(answer);
            }
            let waiting = {
                let mut map = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match map.get(&question) {
                    Some(tx) => Some(tx.subscribe()),
                    None => {
                        map.insert(question.clone(), broadcast::channel(1).0);
                        None
                    }
                }
            };
            if let Some(mut rx) = waiting {
                match rx.recv().await {
                    // An answer from before a failure noticed meanwhile may predate an outage
                    // (it is not cached for that reason): only an unchanged count shares it.
                    Ok(Ok(_)) if self.failures.count() != failures => continue,
                    Ok(outcome) => {
                        self.metrics.lookup("shared");
                        return outcome;
                    }
                    // The asker was cancelled: ask again, maybe as the asker.
                    Err(_) => continue,
                }
            }
            let flight = Flight {
                in_flight: &self.in_flight,
                question: Some(question.clone()),
            };
            self.metrics.lookup("miss");
            let result = query.await;
            self.metrics
                .query(op, result.is_ok(), now().saturating_duration_since(asked));
            match &result {
                // Not when a failure was noticed while asking: the answer may predate the
                // outage, and the cache was (or is about to be) emptied of everything else from
                // before it. Nor when it took longer than the TTL: it would be stored already
                // stale.
                Ok(answer)
                    if self.failures.count() == failures
                        && now().saturating_duration_since(asked) < self.ttl =>
                {
                    let mut state = self.state(failures);
                    state.cache.insert(question, answer.clone(), asked);
                    self.metrics.cache_entries.set(state.cache.len() as i64);
                }
                Ok(_) => {}
                Err(e) if e.is_connection_failure() => self.failures.note(),
                // The directory answered something we cannot use (an ambiguous name): not an
                // outage, and not cached either.
                Err(_) => {}
            }
            flight.land(&result);
            return result;
        }
    }
}

impl<D: Directory> Directory for Cached<D> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
        Box::pin(async move {
            let query = Box::pin(async move { self.inner.user(user).await.map(Answer::User) });
            match self
                .ask("user", Question::User(user.to_owned()), query)
                .await?
            {
                Answer::User(status) => Ok(status),
                // A question's key fixes its answer's kind; should that ever break, ask again.
                Answer::RunAs(_) => self.inner.user(user).await,
            }
        })
    }

    fn run_as<'a>(
        &'a self,
        user: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
        Box::pin(async move {
            let question = Question::RunAs {
                user: user.to_owned(),
                account: account.to_owned(),
            };
            let query =
                Box::pin(async move { self.inner.run_as(user, account).await.map(Answer::RunAs) });
            match self.ask("run_as", question, query).await? {
                Answer::RunAs(status) => Ok(status),
                Answer::User(_) => self.inner.run_as(user, account).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Answers alice allowed (or the outage error while `down`), and counts the calls.
    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        down: AtomicBool,
    }

    impl Fake {
        fn answer<T>(&self, ok: T) -> Result<T, DirectoryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(DirectoryError::Unavailable {
                    url: "ldap://x".into(),
                    detail: "refused".into(),
                });
            }
            Ok(ok)
        }
    }

    impl Directory for &Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn user<'a>(&'a self, u: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
            let status = match u {
                "alice" => UserStatus::Allowed { name: u.into() },
                _ => UserStatus::Unknown,
            };
            Box::pin(async move { self.answer(status) })
        }
        fn run_as<'a>(
            &'a self,
            _: &'a str,
            account: &'a str,
        ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
            let status = RunAsStatus::Allowed {
                account: account.into(),
            };
            Box::pin(async move { self.answer(status) })
        }
    }

    fn cached<'a>(fake: &'a Fake, failures: &Failures) -> Cached<&'a Fake> {
        Cached::new(
            fake,
            CacheConfig::default(),
            failures.clone(),
            DirectoryMetrics::default(),
        )
    }

    fn calls(fake: &Fake) -> usize {
        fake.calls.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_reused_until_the_ttl_then_asked_again() {
        let fake = Fake::default();
        let dir = cached(&fake, &Failures::default());
        let alice = UserStatus::Allowed {
            name: "alice".into(),
        };
        assert_eq!(dir.user("alice").await.expect("first"), alice);
        assert_eq!(dir.user("alice").await.expect("second"), alice);
        assert_eq!(
            dir.user("mallory").await.expect("unknown"),
            UserStatus::Unknown
        );
        assert_eq!(
            dir.user("mallory").await.expect("cached"),
            UserStatus::Unknown
        );
        assert_eq!(
            calls(&fake),
            2,
            "one call per question, negative answers too"
        );
        dir.run_as("alice", "svc").await.expect("run-as");
        dir.run_as("alice", "svc2").await.expect("another account");
        dir.run_as("alice", "svc").await.expect("cached run-as");
        assert_eq!(calls(&fake), 4, "run-as is keyed by user and account");
        tokio::time::advance(Duration::from_secs(30)).await;
        dir.user("alice").await.expect("after the ttl");
        assert_eq!(calls(&fake), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_empties_the_cache_and_is_never_cached() {
        let fake = Fake::default();
        let dir = cached(&fake, &Failures::default());
        dir.user("alice").await.expect("cached while up");
        fake.down.store(true, Ordering::SeqCst);
        // Another question finds the outage...
        dir.user("bob").await.expect_err("down");
        dir.user("bob").await.expect_err("errors are not cached");
        assert_eq!(calls(&fake), 3);
        // ...and alice's cached answer is gone with it: she is refused as without a cache.
        dir.user("alice")
            .await
            .expect_err("no positive answer outlives a seen outage");
        assert_eq!(calls(&fake), 4);
        fake.down.store(false, Ordering::SeqCst);
        dir.user("alice").await.expect("back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_noted_elsewhere_empties_the_cache() {
        let fake = Fake::default();
        let failures = Failures::default();
        let dir = cached(&fake, &failures);
        dir.user("alice").await.expect("first");
        failures.note();
        dir.user("alice").await.expect("asked again");
        assert_eq!(calls(&fake), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_asks_every_time() {
        let fake = Fake::default();
        let dir = Cached::new(
            &fake,
            CacheConfig {
                ttl: Duration::ZERO,
                max_entries: 10,
            },
            Failures::default(),
            DirectoryMetrics::default(),
        );
        dir.user("alice").await.expect("first");
        dir.user("alice").await.expect("second");
        assert_eq!(calls(&fake), 2);
    }

    /// An answer obtained while another request saw the directory fail may predate the
    /// outage: it is returned to its caller but not kept.
    #[tokio::test(start_paused = true)]
    async fn an_answer_racing_a_failure_is_not_stored() {
        struct Racing<'a>(&'a Failures, AtomicUsize);
        impl Directory for Racing<'_> {
            fn describe(&self) -> String {
                "racing".into()
            }
            fn user<'a>(&'a self, u: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
                Box::pin(async move {
                    if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                        self.0.note();
                    }
                    Ok(UserStatus::Allowed { name: u.into() })
                })
            }
            fn run_as<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
            ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
                Box::pin(async { Ok(RunAsStatus::NotMember) })
            }
        }
        let failures = Failures::default();
        let dir = Cached::new(
            Racing(&failures, AtomicUsize::new(0)),
            CacheConfig::default(),
            failures.clone(),
            DirectoryMetrics::default(),
        );
        dir.user("alice").await.expect("first");
        dir.user("alice").await.expect("second");
        assert_eq!(dir.inner.1.load(Ordering::SeqCst), 2);
        dir.user("alice").await.expect("third, from the cache");
        assert_eq!(dir.inner.1.load(Ordering::SeqCst), 2);
    }

    /// Answers after a pause, counting calls: concurrent questions overlap in it.
    struct Slow(AtomicUsize, AtomicBool);

    impl Directory for Slow {
        fn describe(&self) -> String {
            "slow".into()
        }
        fn user<'a>(&'a self, u: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
            Box::pin(async move {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                if self.1.load(Ordering::SeqCst) {
                    return Err(DirectoryError::Unavailable {
                        url: "ldap://x".into(),
                        detail: "timed out".into(),
                    });
                }
                Ok(UserStatus::Allowed { name: u.into() })
            })
        }
        fn run_as<'a>(
            &'a self,
            _: &'a str,
            account: &'a str,
        ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
            Box::pin(async move {
                Ok(RunAsStatus::Allowed {
                    account: account.into(),
                })
            })
        }
    }

    fn slow(down: bool) -> Cached<Slow> {
        Cached::new(
            Slow(AtomicUsize::new(0), AtomicBool::new(down)),
            CacheConfig::default(),
            Failures::default(),
            DirectoryMetrics::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_question_asks_the_directory_once() {
        let dir = slow(false);
        let answers = futures::future::join_all((0..20).map(|_| dir.user("alice"))).await;
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Ok(UserStatus::Allowed { .. })))
        );
        assert_eq!(dir.inner.0.load(Ordering::SeqCst), 1);
        let other = futures::future::join_all([dir.user("bob"), dir.user("carol")]).await;
        assert!(other.iter().all(Result::is_ok));
        assert_eq!(
            dir.inner.0.load(Ordering::SeqCst),
            3,
            "other questions fly alone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn during_an_outage_a_burst_waits_for_one_timeout_and_all_are_refused() {
        let dir = slow(true);
        let answers = futures::future::join_all((0..20).map(|_| dir.user("alice"))).await;
        assert!(
            answers.iter().all(Result::is_err),
            "fails closed, every one"
        );
        assert_eq!(dir.inner.0.load(Ordering::SeqCst), 1);
        dir.inner.1.store(false, Ordering::SeqCst);
        dir.user("alice").await.expect("the error was not cached");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_whose_asker_gave_up_asks_itself() {
        let dir = slow(false);
        let mut asker = Box::pin(dir.user("alice"));
        // The asker starts its query, then its request is dropped mid-flight.
        assert!(futures::poll!(asker.as_mut()).is_pending());
        let waiter = dir.user("alice");
        let dropped = async {
            tokio::task::yield_now().await;
            drop(asker);
        };
        let (answer, ()) = tokio::join!(waiter, dropped);
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(dir.inner.0.load(Ordering::SeqCst), 2);
    }
}
