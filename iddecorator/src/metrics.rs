//! The webhook's Prometheus metrics.
use k2h_http::ReloadCounters;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Which admission endpoint answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Validate,
}

/// What the endpoint answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed without changes.
    Allow,
    /// Allowed with a JSON patch.
    Patch,
    Deny,
    /// The body was not a usable AdmissionReview (400).
    Invalid,
    /// The decision panicked (500).
    Panic,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Patch => "patch",
            Outcome::Deny => "deny",
            Outcome::Invalid => "invalid",
            Outcome::Panic => "panic",
        }
    }
}

// Prometheus label values are conventionally lower case.
impl EncodeLabelValue for Endpoint {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Endpoint,
    kind: String,
    operation: String,
    decision: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Endpoint,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s: the decision is pure, so anything slow is worth seeing.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// All metrics, registered once at start.
pub struct Metrics {
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    pub reloads: ReloadCounters,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "iddecorator_admission_requests",
            "Admission requests by endpoint, object kind, operation and decision",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "iddecorator_admission_duration_seconds",
            "Time from a complete request body to the encoded AdmissionReview response",
            latency.clone(),
        );
        let reloads = ReloadCounters::register(&mut registry);
        Metrics {
            registry,
            requests,
            latency,
            reloads,
        }
    }

    /// Counts one answered admission request.
    pub fn observe(
        &self,
        endpoint: Endpoint,
        kind: &str,
        operation: &str,
        decision: Outcome,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                kind: kind.to_owned(),
                operation: operation.to_owned(),
                decision,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
