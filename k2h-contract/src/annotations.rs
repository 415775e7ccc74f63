//! The annotation keys that form kube2hadoop's stable interface.

/// Who submitted the workload. Written by iddecorator only; token-service trusts nothing else.
pub const USER: &str = "kube2hadoop.io/user";
/// A headless account the submitter asks to run as; checked by token-service against LDAP.
pub const RUN_AS: &str = "kube2hadoop.io/run-as";
/// Opt-in: iddecorator injects the fetcher, volume, mount and env var.
pub const INJECT: &str = "kube2hadoop.io/inject";
/// With `inject`: run the fetcher as a refreshing sidecar instead of a one-shot init container.
pub const REFRESH: &str = "kube2hadoop.io/refresh";
/// Proof that iddecorator wrote `user` here: `v1.` + base64url(HMAC-SHA256(key, namespace,
/// user)), see [`crate::stamp`]. token-service serves only pods whose owner chain carries it.
pub const STAMP: &str = "kube2hadoop.io/stamp";
/// The Hadoop services a workload needs tokens from, comma-separated (`hdfs,hive,kms,yarn`); see
/// [`crate::services`]. Read from the pod (set it in the pod template); without it,
/// token-service's `defaultServices` apply. Part of what runs: iddecorator treats a change as
/// a new submission (on a Pod, only its owner may make it).
pub const SERVICES: &str = "kube2hadoop.io/services";
