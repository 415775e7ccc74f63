//! Leader election over a `coordination.k8s.io/v1` Lease: the one replica that renews and
//! cancels. Every write carries the resourceVersion that was read, so two replicas racing for
//! the Lease cannot both win; a leader that cannot renew within the deadline steps down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use super::bounded;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (pod name or host name plus a random suffix).
    pub holder: String,
    /// How long a Lease not renewed stays with its holder.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops acting (shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often the Lease is renewed or tried.
    pub retry_period: Duration,
}

/// What the Lease as read allows this replica to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    /// Ours already: write a new renew time.
    Renew,
    /// Its holder let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds it.
    Follow,
}

/// `holder`, `renewed_ms`, `duration_ms` as read from the Lease (`None`: no Lease).
pub fn step(
    current: Option<(Option<&str>, Option<u64>, Option<u64>)>,
    me: &str,
    now_ms: u64,
) -> Step {
    let Some((holder, renewed_ms, duration_ms)) = current else {
        return Step::Create;
    };
    match holder {
        Some(h) if h == me => Step::Renew,
        None | Some("") => Step::TakeOver,
        Some(_) => {
            let expires = renewed_ms
                .unwrap_or(0)
                .saturating_add(duration_ms.unwrap_or(0));
            if now_ms >= expires {
                Step::TakeOver
            } else {
                Step::Follow
            }
        }
    }
}

fn micro_ms(t: &MicroTime) -> u64 {
    u64::try_from(t.0.as_millisecond()).unwrap_or(0)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Keeps trying for the Lease until the process ends; `leader` says whether we hold it.
pub fn run(client: kube::Client, cfg: LeaseConfig, timeout: Duration) -> Arc<AtomicBool> {
    let leader = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&leader);
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    tokio::spawn(async move {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            let held = match bounded(timeout, "hold the leader Lease", attempt(&api, &cfg)).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(lease = %cfg.name, error = %e, "cannot read or write the leader Lease");
                    None
                }
            };
            let was = flag.load(Ordering::SeqCst);
            let now_leader = match held {
                Some(true) => {
                    last_renewed = tokio::time::Instant::now();
                    true
                }
                Some(false) => false,
                // Unknown: keep leading until the renew deadline passes.
                None => was && last_renewed.elapsed() < cfg.renew_deadline,
            };
            if now_leader != was {
                tracing::info!(holder = %cfg.holder, leader = now_leader, "leadership changed");
            }
            flag.store(now_leader, Ordering::SeqCst);
            tokio::time::sleep(cfg.retry_period).await;
        }
    });
    leader
}

/// One round: `Some(true)` we hold the Lease, `Some(false)` someone else does.
async fn attempt(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Option<bool>, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let now = now_micro();
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let read = current.as_ref().map(|_| {
        (
            spec.and_then(|s| s.holder_identity.as_deref()),
            spec.and_then(|s| s.renew_time.as_ref()).map(micro_ms),
            spec.and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .map(|d| d * 1000),
        )
    });
    let duration_s = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let step = step(read, &cfg.holder, micro_ms(&now));
    let mut lease = current.clone().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let mut spec = lease.spec.clone().unwrap_or_default();
    match step {
        Step::Follow => return Ok(Some(false)),
        Step::Create | Step::TakeOver => {
            spec = LeaseSpec {
                holder_identity: Some(cfg.holder.clone()),
                acquire_time: Some(now.clone()),
                lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + 1),
                ..spec
            };
        }
        Step::Renew => {}
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(duration_s);
    lease.spec = Some(spec);
    let written = if step == Step::Create {
        api.create(&PostParams::default(), &lease).await
    } else {
        api.replace(&cfg.name, &PostParams::default(), &lease).await
    };
    match written {
        Ok(_) => Ok(Some(true)),
        // Another replica wrote first (resourceVersion moved on, or it created the Lease).
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(false)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        assert_eq!(step(None, "a", 0), Step::Create);
        assert_eq!(
            step(Some((Some("a"), Some(0), Some(15_000))), "a", 99_000),
            Step::Renew
        );
    }

    #[test]
    fn anothers_lease_is_followed_until_it_expires() {
        let theirs = Some((Some("b"), Some(10_000), Some(15_000)));
        assert_eq!(step(theirs, "a", 24_999), Step::Follow);
        assert_eq!(step(theirs, "a", 25_000), Step::TakeOver);
        assert_eq!(
            step(Some((None, None, None)), "a", 0),
            Step::TakeOver,
            "released"
        );
    }
}
