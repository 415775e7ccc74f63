//! Prometheus metrics: requests by outcome and identity method, Hadoop call latency, cache size,
//! the TokenReview cache's lookups, drops and size, the ledger's size and its renewals,
//! re-issues, cancellations and failures, the directory's answer cache and LDAP connections.

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
use crate::hadoop::{ProviderCall, ProviderObserver};

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

/// One provider's calls: `service` is what workloads select it by (`hdfs`, `kms`, `yarn`),
/// `source` the configured provider (`hdfs:ns1`); both come from the configuration only.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub service: String,
    pub source: String,
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `hit`, `miss` (this request asks the directory) or `shared` (it waited for the answer
    /// of an identical question already on its way).
    pub result: String,
}

/// The directory's answer cache and its LDAP connections. Unregistered (`Default`) in tests
/// and wherever nobody scrapes them.
#[derive(Clone)]
pub struct DirectoryMetrics {
    pub cache_lookups: Family<LookupLabels, Counter>,
    pub cache_entries: Gauge,
    /// Each clear follows a failed directory call or a lost connection.
    pub cache_clears: Counter,
    /// Calls that reached the directory (cache misses), by operation and result.
    pub queries: Family<CallLabels, Histogram>,
    pub connections_opened: Counter,
    pub connect_failures: Counter,
    /// Connections ended by the server or the network, not by the pool.
    pub connections_lost: Counter,
    /// Connections open now (the pool's in use, plus any still finishing after being dropped).
    pub connections_open: Gauge,
}

impl Default for DirectoryMetrics {
    fn default() -> DirectoryMetrics {
        DirectoryMetrics {
            cache_lookups: Family::default(),
            cache_entries: Gauge::default(),
            cache_clears: Counter::default(),
            queries: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
            connections_opened: Counter::default(),
            connect_failures: Counter::default(),
            connections_lost: Counter::default(),
            connections_open: Gauge::default(),
        }
    }
}

impl DirectoryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "kube2hadoop_directory_cache_lookups",
            "Directory answers looked up in the cache, by result (hit or miss)",
            self.cache_lookups.clone(),
        );
        registry.register(
            "kube2hadoop_directory_cache_entries",
            "Directory answers cached",
            self.cache_entries.clone(),
        );
        registry.register(
            "kube2hadoop_directory_cache_clears",
            "Times the answer cache was emptied because the directory failed or a connection was lost",
            self.cache_clears.clone(),
        );
        registry.register(
            "kube2hadoop_directory_query_seconds",
            "Latency of directory checks not answered from the cache, by operation and result",
            self.queries.clone(),
        );
        registry.register(
            "kube2hadoop_ldap_connections_opened",
            "LDAP connections opened and bound",
            self.connections_opened.clone(),
        );
        registry.register(
            "kube2hadoop_ldap_connect_failures",
            "LDAP connections that could not be opened or bound",
            self.connect_failures.clone(),
        );
        registry.register(
            "kube2hadoop_ldap_connections_lost",
            "LDAP connections closed by the server or the network while pooled",
            self.connections_lost.clone(),
        );
        registry.register(
            "kube2hadoop_ldap_connections",
            "LDAP connections open now (at most the pool size, plus any finishing after a failure)",
            self.connections_open.clone(),
        );
    }

    /// `result`: `hit`, `miss` or `shared`.
    pub fn lookup(&self, result: &str) {
        self.cache_lookups
            .get_or_create(&LookupLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn query(&self, op: &str, ok: bool, elapsed: Duration) {
        self.queries
            .get_or_create(&CallLabels {
                op: op.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub hadoop_calls: Family<CallLabels, Histogram>,
    pub provider_calls: Family<ProviderLabels, Histogram>,
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
    /// Bound tokens checked against the API server's keys, by result (`verified`, or why a
    /// TokenReview was asked instead).
    pub signature_checks: Family<ResultLabels, Counter>,
    /// Reads of the API server's signing keys, `ok` or `error`.
    pub token_key_reads: Family<ResultLabels, Counter>,
    /// Signing keys that vouch for tokens now (0: none read, or stale).
    pub token_keys: Gauge,
    pub directory: DirectoryMetrics,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            hadoop_calls: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            provider_calls: Family::new_with_constructor(|| {
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
            signature_checks: Family::default(),
            token_key_reads: Family::default(),
            token_keys: Gauge::default(),
            directory: DirectoryMetrics::default(),
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
            "kube2hadoop_provider_call_seconds",
            "Latency of each Hadoop provider's token calls (NameNode, KMS, ResourceManager) by \
             service, provider, operation and result",
            m.provider_calls.clone(),
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
        registry.register(
            "kube2hadoop_token_signature_checks",
            "Bound tokens checked against the API server's published keys: verified (no API \
             call), or why a TokenReview was asked instead",
            m.signature_checks.clone(),
        );
        registry.register(
            "kube2hadoop_token_key_reads",
            "Reads of the API server's service-account signing keys, by result",
            m.token_key_reads.clone(),
        );
        registry.register(
            "kube2hadoop_token_keys",
            "Service-account signing keys loaded from the API server (0: every token is reviewed)",
            m.token_keys.clone(),
        );
        m.directory.register(registry);
        m
    }

    /// `result`: `verified`, or a reason a TokenReview follows (`unknown_key`, `no_keys`…).
    pub fn signature_check(&self, result: &str) {
        self.signature_checks
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// One read of the API server's signing keys, `ok` or not.
    pub fn token_key_read(&self, ok: bool) {
        self.token_key_reads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
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

    /// What the federation reports each provider call to.
    pub fn provider_observer(&self) -> ProviderObserver {
        let calls = self.provider_calls.clone();
        Arc::new(move |call: &ProviderCall<'_>| {
            calls
                .get_or_create(&ProviderLabels {
                    service: call.service.to_owned(),
                    source: call.source.to_owned(),
                    op: call.op.to_owned(),
                    result: if call.ok { "ok" } else { "error" }.to_owned(),
                })
                .observe(call.elapsed.as_secs_f64());
        })
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
        m.directory.lookup("hit");
        m.directory.connections_open.inc();
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
        assert!(
            text.contains(r#"kube2hadoop_directory_cache_lookups_total{result="hit"} 1"#),
            "{text}"
        );
        assert!(text.contains("kube2hadoop_ldap_connections 1"), "{text}");
    }
}
