//! Whether a ledger workload still runs: the rules, over the workload's top object as the API
//! shows it and the pods the index holds. The lookups are ports (`cluster` implements them),
//! so every rule is a unit test with fakes.

use futures::future::BoxFuture;

use super::lifecycle::Liveness;
use crate::index::SharedIndex;
use crate::workload::{LookupError, OwnerLookup, StampedKinds, WorkloadKey, reaches};

/// A workload's top object as the API shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStatus {
    Running,
    /// A Job or training job that completed or failed, or a pod that terminated.
    Finished,
    /// Deleted, or deleted and recreated under the same name.
    Gone,
}

/// Reads the status of a workload's top object.
pub trait StatusLookup: Send + Sync {
    fn status<'a>(
        &'a self,
        workload: &'a WorkloadKey,
    ) -> BoxFuture<'a, Result<OwnerStatus, LookupError>>;
}

/// The status of `w` from the object found under its name (its uid and `status`), if any:
/// an object of another uid is a successor, and `w` is gone.
pub fn status_of(
    w: &WorkloadKey,
    found: Option<(Option<&str>, Option<&serde_json::Value>)>,
) -> OwnerStatus {
    match found {
        Some((uid, status)) if uid == Some(w.uid.as_str()) => {
            if is_finished(&w.kind, status) {
                OwnerStatus::Finished
            } else {
                OwnerStatus::Running
            }
        }
        _ => OwnerStatus::Gone,
    }
}

/// Final conditions of Jobs (`Complete`, `Failed`) and of the training operator's jobs
/// (`Succeeded`, `Failed`); pods finish with their phase.
pub fn is_finished(kind: &str, status: Option<&serde_json::Value>) -> bool {
    let Some(status) = status else {
        return false;
    };
    if kind == "Pod" {
        return matches!(
            status.get("phase").and_then(|p| p.as_str()),
            Some("Succeeded" | "Failed")
        );
    }
    status
        .get("conditions")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .any(|c| {
            matches!(
                c.get("type").and_then(|t| t.as_str()),
                Some("Complete" | "Failed" | "Succeeded")
            ) && c.get("status").and_then(|s| s.as_str()) == Some("True")
        })
}

/// Alive while the top object runs, or while a pod of `submitter` still reaches it (pods
/// outlive their owner while the garbage collector works); unknown whenever a lookup fails or
/// the index may miss pods. `submitter` `None` (a record of an older version): any pod counts.
pub async fn judge<A: OwnerLookup + StatusLookup>(
    w: &WorkloadKey,
    submitter: Option<&str>,
    index: &SharedIndex,
    api: &A,
    stamped: &StampedKinds,
) -> Liveness {
    // A stale index may lack a pod created while the watch was down: judge nothing then.
    if !index.is_current() {
        return Liveness::Unknown;
    }
    match api.status(w).await {
        Ok(OwnerStatus::Running) => return Liveness::Alive,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(workload = %w, error = %e, "cannot tell whether the workload runs");
            return Liveness::Unknown;
        }
    }
    // Pods whose chain cannot be proven any more (an owner vanished) are refused new tokens,
    // but still count here if they carry the record's user: only lookups that fail leave it
    // unknown. Another user's pod pointing at the workload never counts.
    for pod in index.pods_in(&w.namespace) {
        if pod.deleting {
            continue;
        }
        match reaches(&pod, api, stamped, &w.uid, submitter).await {
            Ok(true) => return Liveness::Alive,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(workload = %w, error = %e, "cannot follow a pod's owners");
                return Liveness::Unknown;
            }
        }
    }
    Liveness::Gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FakeOwners, owned_pod, owner, workload};
    use crate::index::{IndexEvent, IndexWriter};
    use crate::pod::{OwnerRef, PodFacts};
    use crate::workload::OwnerObject;

    /// Alice's Deployment `web` (uid-web) with ReplicaSet `rs`, its top object's status as given.
    struct Api {
        owners: FakeOwners,
        status: Option<OwnerStatus>,
    }

    impl OwnerLookup for Api {
        fn get<'a>(
            &'a self,
            namespace: &'a str,
            owner: &'a OwnerRef,
        ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
            self.owners.get(namespace, owner)
        }
    }

    impl StatusLookup for Api {
        fn status<'a>(
            &'a self,
            w: &'a WorkloadKey,
        ) -> BoxFuture<'a, Result<OwnerStatus, LookupError>> {
            let found = self.status.ok_or_else(|| LookupError {
                kind: w.kind.clone(),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                detail: "no answer within 5s".into(),
            });
            Box::pin(std::future::ready(found))
        }
    }

    fn api(status: Option<OwnerStatus>) -> Api {
        Api {
            owners: FakeOwners::alice(vec![("rs", vec![owner("Deployment", "web")])]),
            status,
        }
    }

    fn index(pods: Vec<PodFacts>, current: bool) -> SharedIndex {
        let shared = SharedIndex::default();
        let mut writer = IndexWriter::new(shared.clone());
        writer.on_event(IndexEvent::Init);
        for p in pods {
            writer.on_event(IndexEvent::InitApply(p));
        }
        writer.on_event(IndexEvent::InitDone);
        if !current {
            writer.on_event(IndexEvent::Broken);
        }
        shared
    }

    #[tokio::test]
    async fn the_top_object_then_the_submitters_pods_decide_and_any_doubt_is_unknown() {
        let stamped = StampedKinds::default();
        let w = workload("web");
        let alices = owned_pod(vec![owner("ReplicaSet", "rs")]);
        let mut bobs = alices.clone();
        bobs.user = Some("bob".into());
        let mut leaving = alices.clone();
        leaving.deleting = true;
        let alice = Some("alice");
        for (status, pods, current, want) in [
            (Some(OwnerStatus::Running), vec![], true, Liveness::Alive),
            (Some(OwnerStatus::Running), vec![], false, Liveness::Unknown),
            (None, vec![alices.clone()], true, Liveness::Unknown),
            (Some(OwnerStatus::Finished), vec![], true, Liveness::Gone),
            (
                Some(OwnerStatus::Gone),
                vec![alices.clone()],
                true,
                Liveness::Alive,
            ),
            (Some(OwnerStatus::Gone), vec![bobs], true, Liveness::Gone),
            (Some(OwnerStatus::Gone), vec![leaving], true, Liveness::Gone),
        ] {
            let shown = format!("{status:?} with {} pods, current {current}", pods.len());
            let got = judge(&w, alice, &index(pods, current), &api(status), &stamped).await;
            assert_eq!(got, want, "{shown}");
        }
    }

    #[test]
    fn a_successor_under_the_same_name_is_not_the_workload() {
        let w = workload("web");
        let running = serde_json::json!({});
        assert_eq!(
            status_of(&w, Some((Some("uid-web"), Some(&running)))),
            OwnerStatus::Running
        );
        assert_eq!(
            status_of(&w, Some((Some("uid-other"), Some(&running)))),
            OwnerStatus::Gone
        );
        assert_eq!(status_of(&w, None), OwnerStatus::Gone);
    }

    #[test]
    fn finished_jobs_and_pods() {
        let cond = |t: &str, s: &str| serde_json::json!({"conditions": [{"type": t, "status": s}]});
        assert!(is_finished("Job", Some(&cond("Complete", "True"))));
        assert!(is_finished("Job", Some(&cond("Failed", "True"))));
        assert!(is_finished("TFJob", Some(&cond("Succeeded", "True"))));
        assert!(!is_finished("Job", Some(&cond("Complete", "False"))));
        assert!(!is_finished("TFJob", Some(&cond("Running", "True"))));
        assert!(!is_finished("Deployment", Some(&cond("Available", "True"))));
        assert!(!is_finished("Job", None));
        assert!(is_finished(
            "Pod",
            Some(&serde_json::json!({"phase": "Succeeded"}))
        ));
        assert!(!is_finished(
            "Pod",
            Some(&serde_json::json!({"phase": "Running"}))
        ));
    }
}
