//! Prometheus metrics: requests by outcome and identity method, Hadoop call latency, cache size,
//! the TokenReview cache's lookups, drops and size, the ledger's size and its renewals,
//! re-issues, cancellations and failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::review_cache::{CacheEvent, CacheObserver};

/// Told about each Hadoop call: operation, success, how long it took.
pub type CallObserver = Arc<dyn Fn(&'static str, bool, Duration) + Send + Sync>;

/// Runs one Hadoop call and tells `observe` its operation, outcome and duration.
pub async fn observed<T, E>(
    observe: impl Fn(&'static str, bool, Duration),
    op: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    observe(op, result.is_ok(), started.elapsed());
    result
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `issued`, `reused` or the refusal code.
    pub outcome: String,
    /// `sa-token`, `ip` or `none`.
    pub method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub op: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LedgerLabels {
    /// `renewed`, `reissued`, `cancelled`, or `<op>_failed`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `published`, `failed`, `throttled` (spam filter) or `dropped` (queue full).
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLookupLabels {
    /// `hit`, `miss` (a full TokenReview follows) or `bypassed` (an entry exists, but a watch
    /// it is checked against is not current: a full TokenReview follows).
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewDropLabels {
    /// `expired`, `pod_gone`, `sa_gone` or `evicted` (the cache was full).
    pub reason: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub hadoop_calls: Family<CallLabels, Histogram>,
    pub cached_workloads: Gauge,
    pub indexed_pods: Gauge,
    pub ledger_entries: Gauge,
    /// 1 while this replica holds the ledger's Lease.
    pub ledger_leader: Gauge,
    /// The earliest expiry and max date among ledger entries (Unix seconds; 0: none).
    pub ledger_next_expiry: Gauge,
    pub ledger_next_max_date: Gauge,
    /// Entries whose last action failed and waits for its backoff.
    pub ledger_failing: Gauge,
    pub ledger_actions: Family<LedgerLabels, Counter>,
    pub events: Family<EventLabels, Counter>,
    pub review_cache_lookups: Family<ReviewLookupLabels, Counter>,
    pub review_cache_drops: Family<ReviewDropLabels, Counter>,
    pub review_cache_entries: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            hadoop_calls: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            cached_workloads: Gauge::default(),
            indexed_pods: Gauge::default(),
            ledger_entries: Gauge::default(),
            ledger_leader: Gauge::default(),
            ledger_next_expiry: Gauge::default(),
            ledger_next_max_date: Gauge::default(),
            ledger_failing: Gauge::default(),
            ledger_actions: Family::default(),
            events: Family::default(),
            review_cache_lookups: Family::default(),
            review_cache_drops: Family::default(),
            review_cache_entries: Gauge::default(),
        };
        registry.register(
            "kube2hadoop_token_requests",
            "Credential requests by outcome and identity method",
            m.requests.clone(),
        );
        registry.register(
            "kube2hadoop_hadoop_call_seconds",
            "Latency of Hadoop token calls by operation and result",
            m.hadoop_calls.clone(),
        );
        registry.register(
            "kube2hadoop_cached_workloads",
            "Workloads whose token set is cached",
            m.cached_workloads.clone(),
        );
        registry.register(
            "kube2hadoop_indexed_pods",
            "Live pods in the by-IP index",
            m.indexed_pods.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_entries",
            "Token sets in the ledger (one per workload and Hadoop user)",
            m.ledger_entries.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_leader",
            "1 on the replica holding the ledger Lease (it renews, re-issues and cancels)",
            m.ledger_leader.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_next_expiry_timestamp_seconds",
            "The earliest expiry among ledger token sets unless renewed (0: no entries)",
            m.ledger_next_expiry.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_next_max_date_timestamp_seconds",
            "The earliest max date among ledger tokens: no renewal reaches past it (0: none)",
            m.ledger_next_max_date.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_failing_entries",
            "Ledger entries whose last renewal, re-issue or cancellation failed",
            m.ledger_failing.clone(),
        );
        registry.register(
            "kube2hadoop_ledger_actions",
            "Renewals, re-issues and cancellations of ledger token sets, and their failures",
            m.ledger_actions.clone(),
        );
        registry.register(
            "kube2hadoop_events",
            "Kubernetes Events about workloads' tokens, by what became of them",
            m.events.clone(),
        );
        registry.register(
            "kube2hadoop_token_review_cache_lookups",
            "Service-account token requests by what the TokenReview cache had for them",
            m.review_cache_lookups.clone(),
        );
        registry.register(
            "kube2hadoop_token_review_cache_drops",
            "TokenReview cache entries dropped, by reason",
            m.review_cache_drops.clone(),
        );
        registry.register(
            "kube2hadoop_token_review_cache_entries",
            "TokenReview results cached",
            m.review_cache_entries.clone(),
        );
        m
    }

    /// Counts what the TokenReview cache reports.
    pub fn review_cache_observer(&self) -> CacheObserver {
        let (lookups, drops) = (
            self.review_cache_lookups.clone(),
            self.review_cache_drops.clone(),
        );
        Arc::new(move |event| {
            let lookup = |result: &str| {
                lookups
                    .get_or_create(&ReviewLookupLabels {
                        result: result.to_owned(),
                    })
                    .inc();
            };
            match event {
                CacheEvent::Hit => lookup("hit"),
                CacheEvent::Miss => lookup("miss"),
                CacheEvent::Bypassed => lookup("bypassed"),
                CacheEvent::Dropped(reason) => {
                    drops
                        .get_or_create(&ReviewDropLabels {
                            reason: reason.as_str().to_owned(),
                        })
                        .inc();
                }
            }
        })
    }

    pub fn event(&self, result: &str) {
        self.events
            .get_or_create(&EventLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn ledger_action(&self, outcome: &str) {
        self.ledger_actions
            .get_or_create(&LedgerLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn observe_call(&self, op: &'static str, ok: bool, elapsed: Duration) {
        (self.observer())(op, ok, elapsed);
    }

    pub fn request(&self, outcome: &str, method: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                outcome: outcome.to_owned(),
                method: method.to_owned(),
            })
            .inc();
    }

    pub fn observer(&self) -> CallObserver {
        let calls = self.hadoop_calls.clone();
        Arc::new(move |op, ok, elapsed| {
            calls
                .get_or_create(&CallLabels {
                    op: op.to_owned(),
                    result: if ok { "ok" } else { "error" }.to_owned(),
                })
                .observe(elapsed.as_secs_f64());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_appear_in_the_text_format() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.request("issued", "ip");
        (m.observer())("obtain", true, Duration::from_millis(20));
        m.ledger_action("renewed");
        let observe = m.review_cache_observer();
        observe(CacheEvent::Hit);
        observe(CacheEvent::Dropped(crate::review_cache::DropReason::SaGone));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"kube2hadoop_token_requests_total{outcome="issued",method="ip"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("kube2hadoop_hadoop_call_seconds_count{op=\"obtain\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"kube2hadoop_ledger_actions_total{outcome="renewed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kube2hadoop_token_review_cache_lookups_total{result="hit"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kube2hadoop_token_review_cache_drops_total{reason="sa_gone"} 1"#),
            "{text}"
        );
    }
}
