//! The workload a pod belongs to: its top controller owner (Pod → ReplicaSet → Deployment,
//! Pod → Job → CronJob, StatefulSet, DaemonSet, TFJob and other operators' kinds), or the pod
//! itself when it has no controller. One token set is kept per workload.

use futures::future::BoxFuture;

use crate::error::{ApiError, Kind};
use crate::pod::{OwnerRef, PodFacts};

/// Ownership chains are short (three levels at most in practice); this bounds a cycle.
const MAX_DEPTH: usize = 8;

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct WorkloadKey {
    pub namespace: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An owner object's own identity as the API returns it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerObject {
    pub uid: String,
    pub owners: Vec<OwnerRef>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {kind} {namespace}/{name}: {detail}")]
pub struct LookupError {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub detail: String,
}

pub trait OwnerLookup: Send + Sync {
    /// The object `owner` points to, `None` when it no longer exists.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>>;
}

/// The managing controller among `refs`: the one marked `controller: true`.
pub fn controller_of(refs: &[OwnerRef]) -> Option<&OwnerRef> {
    refs.iter().find(|r| r.controller)
}

fn key(namespace: &str, r: &OwnerRef) -> WorkloadKey {
    WorkloadKey {
        namespace: namespace.to_owned(),
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        uid: r.uid.clone(),
    }
}

pub async fn resolve(pod: &PodFacts, lookup: &dyn OwnerLookup) -> Result<WorkloadKey, ApiError> {
    let Some(mut current) = controller_of(&pod.owners).cloned() else {
        return Ok(WorkloadKey {
            namespace: pod.namespace.clone(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        });
    };
    for _ in 0..MAX_DEPTH {
        let object = lookup.get(&pod.namespace, &current).await.map_err(|e| {
            ApiError::new(
                Kind::Unavailable,
                "owner_lookup_failed",
                format!(
                    "cannot find the workload of pod {}: {e}",
                    pod.display_name()
                ),
            )
        })?;
        let Some(object) = object else {
            // The owner is gone (orphaning delete): the last owner we know is the workload.
            return Ok(key(&pod.namespace, &current));
        };
        if object.uid != current.uid {
            return Err(ApiError::new(
                Kind::Forbidden,
                "owner_replaced",
                format!(
                    "the {} {} that owns pod {} was deleted and recreated; the pod is orphaned",
                    current.kind,
                    current.name,
                    pod.display_name()
                ),
            ));
        }
        match controller_of(&object.owners) {
            Some(next) => current = next.clone(),
            None => return Ok(key(&pod.namespace, &current)),
        }
    }
    Err(ApiError::new(
        Kind::Internal,
        "owner_chain_too_long",
        format!(
            "pod {} has an owner chain deeper than {MAX_DEPTH}; is there a cycle?",
            pod.display_name()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::pod::fixtures::pod;

    fn owner(kind: &str, name: &str) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: true,
        }
    }

    /// Objects by name: their owner refs.
    struct Fake(HashMap<String, Vec<OwnerRef>>);

    impl OwnerLookup for Fake {
        fn get<'a>(
            &'a self,
            _: &'a str,
            owner: &'a OwnerRef,
        ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
            Box::pin(async move {
                Ok(self.0.get(&owner.name).map(|owners| OwnerObject {
                    uid: format!("uid-{}", owner.name),
                    owners: owners.clone(),
                }))
            })
        }
    }

    fn owned_pod(by: Vec<OwnerRef>) -> PodFacts {
        let mut p = pod("p", "pod-uid", "127.100.0.1");
        p.owners = by;
        p
    }

    #[tokio::test]
    async fn a_bare_pod_is_its_own_workload() {
        let k = resolve(&owned_pod(vec![]), &Fake(HashMap::new()))
            .await
            .expect("key");
        assert_eq!(
            (k.kind.as_str(), k.name.as_str(), k.uid.as_str()),
            ("Pod", "p", "pod-uid")
        );
    }

    #[tokio::test]
    async fn deployment_and_cronjob_chains_end_at_the_top_owner() {
        let fake = Fake(HashMap::from([
            ("web-abc".into(), vec![owner("Deployment", "web")]),
            ("web".into(), vec![]),
            ("nightly-1".into(), vec![owner("CronJob", "nightly")]),
            ("nightly".into(), vec![]),
            ("train".into(), vec![]),
        ]));
        let k = resolve(&owned_pod(vec![owner("ReplicaSet", "web-abc")]), &fake)
            .await
            .expect("d");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("Deployment", "web"));
        let k = resolve(&owned_pod(vec![owner("Job", "nightly-1")]), &fake)
            .await
            .expect("c");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("CronJob", "nightly"));
        let k = resolve(&owned_pod(vec![owner("TFJob", "train")]), &fake)
            .await
            .expect("tf");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("TFJob", "train"));
    }

    #[tokio::test]
    async fn only_the_controller_reference_is_followed() {
        let mut not_controller = owner("ConfigMap", "cm");
        not_controller.controller = false;
        let fake = Fake(HashMap::from([("db".into(), vec![])]));
        let k = resolve(
            &owned_pod(vec![not_controller, owner("StatefulSet", "db")]),
            &fake,
        )
        .await
        .expect("sts");
        assert_eq!(k.kind, "StatefulSet");
    }

    #[tokio::test]
    async fn a_vanished_owner_ends_the_chain_and_a_cycle_is_an_error() {
        let fake = Fake(HashMap::from([(
            "rs".into(),
            vec![owner("Deployment", "gone")],
        )]));
        let k = resolve(&owned_pod(vec![owner("ReplicaSet", "rs")]), &fake)
            .await
            .expect("k");
        assert_eq!(k.name, "gone");
        let cyclic = Fake(HashMap::from([
            ("a".into(), vec![owner("X", "b")]),
            ("b".into(), vec![owner("X", "a")]),
        ]));
        let e = resolve(&owned_pod(vec![owner("X", "a")]), &cyclic)
            .await
            .expect_err("cycle");
        assert_eq!(e.code, "owner_chain_too_long");
    }
}
