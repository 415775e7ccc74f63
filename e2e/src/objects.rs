//! Manifests the suite submits, the user annotation, ownership lookups and per-test cleanup.
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Error;

/// Namespace the suite works in (alice and bob may edit there).
pub const NAMESPACE: &str = "team-a";
/// The annotation under test, written by iddecorator only.
pub const USER_ANNOTATION: &str = "kube2hadoop.io/user";
/// Every object a test creates carries this label with the test's id, so cleanup finds them and
/// controllers copy it to what they create from the templates.
pub const TEST_LABEL: &str = "e2e.kube2hadoop.io/test";
/// Image of every container: kwok never pulls it.
pub const IMAGE: &str = "registry.invalid/kube2hadoop-e2e/app:1";

/// A test's unique name; also the value of [`TEST_LABEL`] on everything it creates.
pub struct TestId(String);

impl TestId {
    /// `prefix` plus a random suffix; keep prefixes short, controllers append their own suffixes.
    pub fn new(prefix: &str) -> TestId {
        TestId(format!(
            "{prefix}-{:06x}",
            rand::random::<u32>() & 0xff_ffff
        ))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// Label selector matching what this test created.
    pub fn selector(&self) -> String {
        format!("{TEST_LABEL}={}", self.0)
    }

    /// Delete everything labelled with this test's id in [`NAMESPACE`], owners first. Failures are
    /// reported on stderr only: cleanup must not hide the test's own result.
    pub async fn cleanup(&self, admin: &Client) {
        let lp = ListParams::default().labels(&self.selector());
        let dp = DeleteParams::background();
        let ns = NAMESPACE;
        let tfjobs = Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &tfjob_resource());
        let results = [
            (
                "cronjobs",
                Api::<CronJob>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
            (
                "deployments",
                Api::<Deployment>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
            (
                "statefulsets",
                Api::<StatefulSet>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
            (
                "jobs",
                Api::<Job>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
            ("tfjobs", tfjobs.delete_collection(&dp, &lp).await.err()),
            (
                "replicasets",
                Api::<ReplicaSet>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
            (
                "pods",
                Api::<Pod>::namespaced(admin.clone(), ns)
                    .delete_collection(&dp, &lp)
                    .await
                    .err(),
            ),
        ];
        for (kind, err) in results {
            if let Some(err) = err {
                eprintln!(
                    "cleanup of {kind} labelled {} failed: {err}",
                    self.selector()
                );
            }
        }
    }
}

/// The user annotation of an object, if any.
pub fn user_of(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(USER_ANNOTATION)
        .map(String::as_str)
}

/// Whether `meta` has an ownerReference (controller or not) to the object with `uid`.
pub fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// The uid of a stored object (the apiserver always sets it).
pub fn uid_of<K: Resource>(obj: &K) -> String {
    obj.meta().uid.clone().unwrap_or_default()
}

/// Items of `list` owned by `uid`.
pub fn owned<K: Resource + Clone>(list: &[K], uid: &str) -> Vec<K> {
    list.iter()
        .filter(|o| owned_by(o.meta(), uid))
        .cloned()
        .collect()
}

/// A short description of who each object claims to act for, for failure messages.
pub fn users<K: Resource>(list: &[K]) -> String {
    let each: Vec<String> = list
        .iter()
        .map(|o| {
            format!(
                "{}={:?}",
                o.meta().name.as_deref().unwrap_or("?"),
                user_of(o.meta())
            )
        })
        .collect();
    format!("[{}]", each.join(", "))
}

/// The TFJob kind (the training operator's CRD, applied by e2e/scripts/up.sh).
pub fn tfjob_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "TFJob"),
        "tfjobs",
    )
}

fn decode<K: DeserializeOwned>(kind: &'static str, value: Value) -> Result<K, Error> {
    serde_json::from_value(value).map_err(|source| Error::Manifest { kind, source })
}

/// Labels and annotations of a top-level object claiming to be submitted by `claimed_user`.
fn metadata(id: &TestId, name: &str, claimed_user: &str) -> Value {
    json!({
        "name": name,
        "namespace": NAMESPACE,
        "labels": {TEST_LABEL: id.name()},
        "annotations": {USER_ANNOTATION: claimed_user},
    })
}

/// A pod template that claims `claimed_user` in its annotation.
pub fn pod_template(id: &TestId, claimed_user: &str, restart: &str) -> Value {
    json!({
        "metadata": {
            "labels": {TEST_LABEL: id.name(), "app": id.name()},
            "annotations": {USER_ANNOTATION: claimed_user},
        },
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": IMAGE}],
            // What injection adds: a node may mint a token for audience kube2hadoop only for
            // pods that declare it (Node authorizer), and only nodes may (iddecorator), so a
            // test minting as the pod's node (`pods::bound_token`) needs it.
            "volumes": [{"name": "e2e-kube2hadoop-sa-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "kube2hadoop", "path": "token"}}
            ]}}],
        },
    })
}

pub fn pod(id: &TestId, name: &str, claimed_user: &str) -> Result<Pod, Error> {
    let template = pod_template(id, claimed_user, "Always");
    let mut value =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata(id, name, claimed_user)});
    value["spec"] = template["spec"].clone();
    value["metadata"]["labels"] = template["metadata"]["labels"].clone();
    decode("Pod", value)
}

pub fn deployment(id: &TestId, claimed_user: &str) -> Result<Deployment, Error> {
    decode(
        "Deployment",
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(id, id.name(), claimed_user),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": id.name()}},
                "template": pod_template(id, claimed_user, "Always"),
            },
        }),
    )
}

pub fn statefulset(id: &TestId, claimed_user: &str) -> Result<StatefulSet, Error> {
    decode(
        "StatefulSet",
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata(id, id.name(), claimed_user),
            "spec": {
                "replicas": 2,
                "serviceName": id.name(),
                "selector": {"matchLabels": {"app": id.name()}},
                "template": pod_template(id, claimed_user, "Always"),
            },
        }),
    )
}

pub fn job(id: &TestId, claimed_user: &str) -> Result<Job, Error> {
    decode(
        "Job",
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(id, id.name(), claimed_user),
            "spec": {"backoffLimit": 0, "template": pod_template(id, claimed_user, "Never")},
        }),
    )
}

/// A CronJob due every minute: the suite waits for the real cronjob controller to run it.
pub fn cronjob(id: &TestId, claimed_user: &str) -> Result<CronJob, Error> {
    decode(
        "CronJob",
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata(id, id.name(), claimed_user),
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "metadata": {"labels": {TEST_LABEL: id.name()}, "annotations": {USER_ANNOTATION: claimed_user}},
                    "spec": {"backoffLimit": 0, "template": pod_template(id, claimed_user, "Never")},
                },
            },
        }),
    )
}

/// A TFJob with one worker whose template claims `claimed_user`. The training operator's
/// webhook wants a container named `tensorflow`.
pub fn tfjob(id: &TestId, claimed_user: &str) -> Result<DynamicObject, Error> {
    let mut template = pod_template(id, claimed_user, "Never");
    template["spec"]["containers"][0]["name"] = json!("tensorflow");
    decode(
        "TFJob",
        json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "TFJob",
            "metadata": metadata(id, id.name(), claimed_user),
            "spec": {"tfReplicaSpecs": {"Worker": {
                "replicas": 1,
                "restartPolicy": "Never",
                "template": template,
            }}},
        }),
    )
}
