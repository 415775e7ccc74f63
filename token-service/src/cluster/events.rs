//! Publishes [`crate::events`] as Kubernetes Events (events.k8s.io/v1) with kube-runtime's
//! recorder, which folds a repeated Event into one with a count. Requests never wait on it:
//! Events queue (bounded) for one worker; a limit per namespace keeps one tenant from filling
//! the queue, and a spam filter per object, as client-go's recorder has, caps what one
//! workload can cost the API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use super::bounded;
use crate::events::{EventSink, Happened, report};
use crate::metrics::Metrics;
use crate::ratelimit::{Limit, RateLimiter};
use crate::workload::WorkloadKey;

/// Events waiting for the worker; more are dropped (and counted).
const QUEUE: usize = 1024;
/// Per object: 25 at once, then one a minute (client-go's spam filter allows one per 5 min).
const PER_OBJECT: Limit = Limit {
    per_minute: 1,
    burst: 25,
};
/// Per namespace, before the queue: one tenant's refused pods (new uids each time) cannot
/// crowd the others' Events out of the shared queue.
const PER_NAMESPACE: Limit = Limit {
    per_minute: 60,
    burst: 100,
};

pub struct KubeEvents {
    queue: mpsc::Sender<(WorkloadKey, Happened)>,
    per_namespace: RateLimiter,
    metrics: Metrics,
}

impl KubeEvents {
    /// Starts the worker. `instance` names this replica in each Event (its pod name).
    pub fn start(
        client: kube::Client,
        instance: Option<String>,
        timeout: Duration,
        metrics: Metrics,
    ) -> Arc<KubeEvents> {
        let (queue, mut rx) = mpsc::channel::<(WorkloadKey, Happened)>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "kube2hadoop-token-service".into(),
                instance,
            },
        );
        let counted = metrics.clone();
        tokio::spawn(async move {
            let spam = RateLimiter::new(PER_OBJECT);
            while let Some((regarding, happened)) = rx.recv().await {
                if spam.check(&regarding.uid, Instant::now()).is_err() {
                    counted.event("throttled");
                    continue;
                }
                let r = report(&happened);
                let event = Event {
                    type_: if r.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: r.reason.into(),
                    note: Some(r.note),
                    action: r.action.into(),
                    secondary: None,
                };
                let published = bounded(
                    timeout,
                    "publish an Event",
                    recorder.publish(&event, &reference(&regarding)),
                )
                .await;
                match published {
                    Ok(()) => counted.event("published"),
                    Err(e) => {
                        counted.event("failed");
                        tracing::warn!(workload = %regarding, error = %e, "cannot publish an Event (does the token service's role allow create and patch on events.k8s.io events?)");
                    }
                }
            }
        });
        Arc::new(KubeEvents {
            queue,
            per_namespace: RateLimiter::new(PER_NAMESPACE),
            metrics,
        })
    }
}

impl EventSink for KubeEvents {
    fn emit(&self, regarding: &WorkloadKey, happened: Happened) {
        if self
            .per_namespace
            .check(&regarding.namespace, Instant::now())
            .is_err()
        {
            self.metrics.event("throttled");
            return;
        }
        if self.queue.try_send((regarding.clone(), happened)).is_err() {
            self.metrics.event("dropped");
        }
    }
}

fn reference(w: &WorkloadKey) -> ObjectReference {
    ObjectReference {
        api_version: Some(w.api_version.clone()),
        kind: Some(w.kind.clone()),
        namespace: Some(w.namespace.clone()),
        name: Some(w.name.clone()),
        uid: Some(w.uid.clone()),
        ..ObjectReference::default()
    }
}
