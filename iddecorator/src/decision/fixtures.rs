//! What the decision tests share: realistic AdmissionReview requests, decoded through the real
//! types, and the steps most tests take with them.
use super::{Decision, mutate, validate};
use crate::policy::Policy;
use k2h_contract::annotations::USER;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionReview},
};
use serde_json::{Value, json};

/// The submitter most tests use.
pub const ALICE: &str = "alice";
/// The ReplicaSet controller, trusted by the default policy for pods its ReplicaSets own.
pub const RS_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

/// (group, version, kind, resource, template paths as JSON pointers for a [`workload`] object).
pub type Kind = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The kinds [`workload`] builds.
pub const KINDS: &[Kind] = &[
    ("", "v1", "Pod", "pods", &[]),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        &["/spec/template"],
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["/spec/template"],
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        &["/spec/template"],
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["/spec/template"],
    ),
    ("apps", "v1", "DaemonSet", "daemonsets", &["/spec/template"]),
    ("batch", "v1", "Job", "jobs", &["/spec/template"]),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        &["/spec/jobTemplate/spec/template"],
    ),
    (
        "kubeflow.org",
        "v1",
        "TFJob",
        "tfjobs",
        &[
            "/spec/tfReplicaSpecs/Chief/template",
            "/spec/tfReplicaSpecs/PS/template",
            "/spec/tfReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v1",
        "PyTorchJob",
        "pytorchjobs",
        &[
            "/spec/pytorchReplicaSpecs/Master/template",
            "/spec/pytorchReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v2beta1",
        "MPIJob",
        "mpijobs",
        &[
            "/spec/mpiReplicaSpecs/Launcher/template",
            "/spec/mpiReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v1",
        "XGBoostJob",
        "xgboostjobs",
        &[
            "/spec/xgbReplicaSpecs/Master/template",
            "/spec/xgbReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v1",
        "PaddleJob",
        "paddlejobs",
        &[
            "/spec/paddleReplicaSpecs/Master/template",
            "/spec/paddleReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v1",
        "MXJob",
        "mxjobs",
        &[
            "/spec/mxReplicaSpecs/Scheduler/template",
            "/spec/mxReplicaSpecs/Worker/template",
        ],
    ),
    (
        "kubeflow.org",
        "v1",
        "JAXJob",
        "jaxjobs",
        &["/spec/jaxReplicaSpecs/Worker/template"],
    ),
];

pub fn kind(kind: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.2 == kind)
        .unwrap_or_else(|| panic!("no fixture for kind {kind}"))
}

/// A pod template (or pod) body with an optional user annotation.
pub fn pod_template(user: Option<&str>, image: &str) -> Value {
    let mut t = json!({
        "metadata": {"labels": {"app": "train"}},
        "spec": {"containers": [{"name": "main", "image": image}], "restartPolicy": "Never"}
    });
    if let Some(u) = user {
        t["metadata"]["annotations"] = json!({USER: u, "team": "ml"});
    }
    t
}

/// A realistic object of `kind` whose metadata and every template carry `user` (if given).
pub fn workload(kind_name: &str, user: Option<&str>, image: &str) -> Value {
    let (group, version, kind_name, _, paths) = kind(kind_name);
    let api_version = if group.is_empty() {
        (*version).to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind_name,
        "metadata": {"name": "train", "namespace": "ml", "labels": {"app": "train"}},
    });
    if let Some(u) = user {
        obj["metadata"]["annotations"] = json!({USER: u});
    }
    if paths.is_empty() {
        obj["spec"] = pod_template(None, image)["spec"].clone();
        return obj;
    }
    for p in *paths {
        set(&mut obj, p, pod_template(user, image));
    }
    if *kind_name == "CronJob" {
        obj["spec"]["schedule"] = json!("*/5 * * * *");
    }
    obj
}

/// Set `value` at a JSON pointer, creating objects (or, for numeric keys, arrays) on the way.
pub fn set(obj: &mut Value, pointer: &str, value: Value) {
    let mut here = obj;
    for t in pointer.split('/').skip(1) {
        if let Ok(n) = t.parse::<usize>() {
            if !here.is_array() {
                *here = json!([]);
            }
            let a = here.as_array_mut().expect("made an array");
            while a.len() <= n {
                a.push(json!({}));
            }
            here = &mut a[n];
        } else {
            if !here.is_object() {
                *here = json!({});
            }
            here = &mut here[t];
        }
    }
    *here = value;
}

/// An AdmissionReview v1 JSON document, as the apiserver sends it.
pub fn review_json(
    operation: &str,
    kind_name: &str,
    sub_resource: Option<&str>,
    username: &str,
    object: Option<Value>,
    old_object: Option<Value>,
) -> Value {
    let (group, version, kind_name, resource, _) = kind(kind_name);
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": kind_name},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind_name},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": "train",
        "namespace": "ml",
        "operation": operation,
        "userInfo": {"username": username, "uid": "014fbff9a07c", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": old_object,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
        request["requestSubResource"] = json!(s);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// Decode a review through kube's types, as the server does.
pub fn decode(review: Value) -> AdmissionRequest<DynamicObject> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review).expect("fixture is a valid AdmissionReview");
    review.try_into().expect("fixture has a request")
}

pub fn create(kind_name: &str, username: &str, object: Value) -> AdmissionRequest<DynamicObject> {
    decode(review_json(
        "CREATE",
        kind_name,
        None,
        username,
        Some(object),
        None,
    ))
}

pub fn update(
    kind_name: &str,
    username: &str,
    old: Value,
    new: Value,
) -> AdmissionRequest<DynamicObject> {
    decode(review_json(
        "UPDATE",
        kind_name,
        None,
        username,
        Some(new),
        Some(old),
    ))
}

/// The object with its patch applied, or a panic naming the failing operation.
pub fn patched(object: &Value, patch: &json_patch::Patch) -> Value {
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &patch.0)
        .unwrap_or_else(|e| panic!("patch {patch:?} does not apply to {object}: {e}"));
    doc
}

/// A controller ownerReference as kube-controller-manager writes it.
pub fn owner_ref(controller: bool) -> Value {
    owner_ref_to("apps/v1", "ReplicaSet", controller)
}

/// An ownerReference to an owner of `api_version`/`kind`.
pub fn owner_ref_to(api_version: &str, kind: &str, controller: bool) -> Value {
    json!([{
        "apiVersion": api_version, "kind": kind, "name": "train-7d4b9c", "uid": "6f1c2d3e-0000-4000-8000-000000000001",
        "controller": controller, "blockOwnerDeletion": true
    }])
}

/// The user annotation at a template site (or the root, for `""`).
pub fn user_at<'v>(obj: &'v Value, site: &str) -> Option<&'v str> {
    obj.pointer(&format!("{site}/metadata/annotations"))?
        .get(USER)?
        .as_str()
}

/// A stamp key for tests (32 bytes, base64).
pub fn stamp_keys() -> std::sync::Arc<k2h_contract::stamp::Keys> {
    std::sync::Arc::new(
        k2h_contract::stamp::Keys::parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .expect("test key"),
    )
}

/// The default policy, which most tests decide under.
pub fn policy() -> Policy {
    Policy::default()
}

/// An allow that changes nothing.
pub fn allow_empty() -> Decision {
    Decision::Allow {
        patch: json_patch::Patch(Vec::new()),
    }
}

pub fn denied(d: Decision) -> String {
    match d {
        Decision::Deny { reason } => reason,
        other => panic!("expected Deny, got {other:?}"),
    }
}

/// Mutate, apply, check the patch applies and `/validate` accepts the result; returns the
/// patched object.
pub fn admit(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> Value {
    let Decision::Allow { patch } = mutate(req, policy) else {
        panic!("mutate denied: {:?}", mutate(req, policy));
    };
    let before = req
        .object
        .as_ref()
        .map(|o| serde_json::to_value(o).unwrap());
    let after = before
        .as_ref()
        .map(|o| patched(o, &patch))
        .unwrap_or(Value::Null);
    let mut again = req.clone();
    again.object = Some(serde_json::from_value(after.clone()).unwrap());
    assert_eq!(
        validate(&again, policy),
        allow_empty(),
        "validate refused {after}"
    );
    after
}
