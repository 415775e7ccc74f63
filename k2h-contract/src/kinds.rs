//! The kinds iddecorator stamps and the owner kinds each trusted controller may pass a user on
//! for. token-service accepts a pod only when the top of its owner chain is a stamped kind.

/// An API group (empty for the core group) and a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: &'static str,
    pub kind: &'static str,
}

const fn gk(group: &'static str, kind: &'static str) -> GroupKind {
    GroupKind { group, kind }
}

/// The Kubeflow training operator's job kinds (v1 API), all stamped.
pub const TRAINING_KINDS: &[GroupKind] = &[
    gk("kubeflow.org", "TFJob"),
    gk("kubeflow.org", "PyTorchJob"),
    gk("kubeflow.org", "MPIJob"),
    gk("kubeflow.org", "XGBoostJob"),
    gk("kubeflow.org", "PaddleJob"),
    gk("kubeflow.org", "MXJob"),
    gk("kubeflow.org", "JAXJob"),
];

/// Kinds stamped without any configuration: the pod-creating built-ins and the training jobs.
pub const BUILTIN_STAMPED: &[GroupKind] = &[
    gk("", "Pod"),
    gk("", "ReplicationController"),
    gk("apps", "Deployment"),
    gk("apps", "ReplicaSet"),
    gk("apps", "StatefulSet"),
    gk("apps", "DaemonSet"),
    gk("batch", "Job"),
    gk("batch", "CronJob"),
    gk("kubeflow.org", "TFJob"),
    gk("kubeflow.org", "PyTorchJob"),
    gk("kubeflow.org", "MPIJob"),
    gk("kubeflow.org", "XGBoostJob"),
    gk("kubeflow.org", "PaddleJob"),
    gk("kubeflow.org", "MXJob"),
    gk("kubeflow.org", "JAXJob"),
];

const KCM_KINDS: &[GroupKind] = &[
    gk("", "ReplicationController"),
    gk("apps", "Deployment"),
    gk("apps", "ReplicaSet"),
    gk("apps", "StatefulSet"),
    gk("apps", "DaemonSet"),
    gk("batch", "Job"),
    gk("batch", "CronJob"),
];

/// Default trusted controllers: authenticated username → the owner kinds whose objects it
/// creates from templates we stamped. A controller keeps an incoming user only on an object
/// whose controller ownerReference is one of these kinds.
pub const DEFAULT_TRUSTED_CONTROLLERS: &[(&str, &[GroupKind])] = &[
    (
        "system:serviceaccount:kube-system:replicaset-controller",
        &[gk("apps", "ReplicaSet")],
    ),
    (
        "system:serviceaccount:kube-system:deployment-controller",
        &[gk("apps", "Deployment")],
    ),
    (
        "system:serviceaccount:kube-system:job-controller",
        &[gk("batch", "Job")],
    ),
    (
        "system:serviceaccount:kube-system:cronjob-controller",
        &[gk("batch", "CronJob")],
    ),
    (
        "system:serviceaccount:kube-system:statefulset-controller",
        &[gk("apps", "StatefulSet")],
    ),
    (
        "system:serviceaccount:kube-system:daemon-set-controller",
        &[gk("apps", "DaemonSet")],
    ),
    (
        "system:serviceaccount:kube-system:replication-controller",
        &[gk("", "ReplicationController")],
    ),
    // kube-controller-manager without --use-service-account-credentials.
    ("system:kube-controller-manager", KCM_KINDS),
    (
        "system:serviceaccount:kubeflow:training-operator",
        TRAINING_KINDS,
    ),
];

/// The group of an ownerReference's `apiVersion` (`apps/v1` → `apps`, `v1` → core).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_owner_kind_is_stamped() {
        for (user, kinds) in DEFAULT_TRUSTED_CONTROLLERS {
            for k in *kinds {
                assert!(BUILTIN_STAMPED.contains(k), "{user}: {k:?} is not stamped");
            }
        }
        for k in TRAINING_KINDS {
            assert!(BUILTIN_STAMPED.contains(k), "{k:?}");
        }
    }

    #[test]
    fn groups() {
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("kubeflow.org/v1"), "kubeflow.org");
    }
}
