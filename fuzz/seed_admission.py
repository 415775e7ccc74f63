#!/usr/bin/env python3
"""Writes the structured seed corpus of the `admission` fuzz target: real AdmissionReview v1
JSON for every stamped kind, operation and kind of requester (see
iddecorator/src/decision/fixtures.rs, which the decision tests use). Run from fuzz/; the
fuzzer then grows the corpus and `cargo fuzz cmin admission` keeps it small."""
import copy, json, os

KINDS = [
    ("", "v1", "Pod", "pods", []),
    ("", "v1", "ReplicationController", "replicationcontrollers", ["spec.template"]),
    ("apps", "v1", "Deployment", "deployments", ["spec.template"]),
    ("apps", "v1", "ReplicaSet", "replicasets", ["spec.template"]),
    ("apps", "v1", "StatefulSet", "statefulsets", ["spec.template"]),
    ("apps", "v1", "DaemonSet", "daemonsets", ["spec.template"]),
    ("batch", "v1", "Job", "jobs", ["spec.template"]),
    ("batch", "v1", "CronJob", "cronjobs", ["spec.jobTemplate.spec.template"]),
    ("kubeflow.org", "v1", "TFJob", "tfjobs", ["spec.tfReplicaSpecs.Chief.template", "spec.tfReplicaSpecs.Worker.template"]),
    ("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs", ["spec.pytorchReplicaSpecs.Master.template", "spec.pytorchReplicaSpecs.Worker.template"]),
    ("kubeflow.org", "v2beta1", "MPIJob", "mpijobs", ["spec.mpiReplicaSpecs.Launcher.template"]),
    ("kubeflow.org", "v1", "XGBoostJob", "xgboostjobs", ["spec.xgbReplicaSpecs.Master.template"]),
    ("kubeflow.org", "v1", "PaddleJob", "paddlejobs", ["spec.paddleReplicaSpecs.Worker.template"]),
    ("kubeflow.org", "v1", "MXJob", "mxjobs", ["spec.mxReplicaSpecs.Scheduler.template", "spec.mxReplicaSpecs.Worker.template"]),
    ("kubeflow.org", "v1", "JAXJob", "jaxjobs", ["spec.jaxReplicaSpecs.Worker.template"]),
    # Kinds of iddecorator::fuzz::rich_policy().
    ("ray.io", "v1", "RayCluster", "rayclusters", ["spec.headGroupSpec.template", "spec.workerGroupSpecs.0.template"]),
    ("example.com", "v1", "Fanout", "fanouts", ["spec.a.template", "spec.b.template"]),
]
USER = "kube2hadoop.io/user"
RS = "system:serviceaccount:kube-system:replicaset-controller"
OPERATOR = "system:serviceaccount:kubeflow:training-operator"


def template(user, image, inject=None):
    t = {"metadata": {"labels": {"app": "train"}},
         "spec": {"containers": [{"name": "main", "image": image,
                                  "env": [{"name": "A", "value": "b"}],
                                  "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                  "volumes": [{"name": "data", "emptyDir": {}}],
                  "restartPolicy": "Never"}}
    ann = {}
    if user is not None:
        ann[USER] = user
    if inject:
        ann["kube2hadoop.io/inject"] = "true"
        if inject == "refresh":
            ann["kube2hadoop.io/refresh"] = "true"
    if ann:
        t["metadata"]["annotations"] = ann
    return t


def put(obj, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        if k.isdigit():
            while len(obj) <= int(k):
                obj.append({})
            obj = obj[int(k)]
        else:
            nxt = keys[keys.index(k) + 1]
            obj = obj.setdefault(k, [] if nxt.isdigit() else {})
    obj[keys[-1]] = value


def workload(kind, user, image, inject=None, owner=None, owner_kind=("apps/v1", "ReplicaSet")):
    group, version, name, _, paths = kind
    obj = {"apiVersion": f"{group}/{version}" if group else version, "kind": name,
           "metadata": {"name": "train", "namespace": "ml", "labels": {"app": "train"}}}
    if user is not None:
        obj["metadata"]["annotations"] = {USER: user}
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [{
            "apiVersion": owner_kind[0], "kind": owner_kind[1], "name": "train-7d4b9c",
            "uid": "6f1c2d3e-0000-4000-8000-000000000001", "controller": owner,
            "blockOwnerDeletion": True}]
    if not paths:
        t = template(user, image, inject)
        obj["spec"] = t["spec"]
        if inject:
            obj["metadata"].setdefault("annotations", {}).update(t["metadata"]["annotations"])
    for p in paths:
        put(obj, p, template(user, image, inject))
    if name == "CronJob":
        obj["spec"]["schedule"] = "*/5 * * * *"
    return obj


def review(op, kind, username, obj, old=None, sub=None, groups=("system:authenticated",)):
    group, version, name, resource, _ = kind
    req = {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
           "kind": {"group": group, "version": version, "kind": name},
           # A TokenRequest is a subresource of the core group's serviceaccounts.
           "resource": {"group": "" if name == "TokenRequest" else group, "version": version,
                        "resource": resource},
           "name": "train", "namespace": "ml", "operation": op,
           "userInfo": {"username": username, "uid": "014fbff9a07c", "groups": list(groups)},
           "object": obj, "oldObject": old, "dryRun": False}
    if sub:
        req["subResource"] = sub
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def main():
    out = "corpus/admission"
    os.makedirs(out, exist_ok=True)
    n = 0

    def emit(doc, label):
        nonlocal n
        with open(f"{out}/seed-{n:03}-{label}.json", "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        n += 1

    for k in KINDS:
        name = k[2]
        emit(review("CREATE", k, "alice", workload(k, "mallory", "busybox")), f"{name}-create")
        emit(review("CREATE", k, "oidc:alice@corp.example", workload(k, None, "busybox", inject="true")), f"{name}-create-inject")
        emit(review("CREATE", k, RS, workload(k, "alice", "busybox", owner=True)), f"{name}-controller")
        old = workload(k, "alice", "busybox:1")
        emit(review("UPDATE", k, "bob", workload(k, "alice", "evil:1", inject="refresh"), old), f"{name}-update-image")
        relabel = copy.deepcopy(old)
        relabel["metadata"]["labels"]["x"] = "y"
        relabel["metadata"]["annotations"][USER] = "bob"
        emit(review("UPDATE", k, "bob", relabel, old), f"{name}-update-relabel")
    pod = KINDS[0]
    old = workload(pod, "alice", "busybox")
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    emit(review("UPDATE", pod, "bob", new, old, sub="ephemeralcontainers"), "pod-ephemeral")
    emit(review("DELETE", pod, "bob", None, old), "pod-delete")
    emit(review("CREATE", pod, "system:serviceaccount:etl:runner", workload(pod, None, "x")), "pod-sa")
    # Issue 13: owner kinds a controller does or does not manage, pod takeover, CONNECT, tokens.
    for owner_kind in [("kubeflow.org/v1", "MXJob"), ("v1", "ConfigMap"), ("batch/v1", "Job")]:
        emit(review("CREATE", pod, OPERATOR, workload(pod, "alice", "x", owner=True, owner_kind=owner_kind)),
             f"pod-operator-{owner_kind[1]}")
    emit(review("UPDATE", pod, "root", workload(pod, "alice", "evil:1"), old, groups=["system:masters"]),
         "pod-update-admin")
    options = {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "stdin": True}
    for sub in ["exec", "attach", "portforward"]:
        emit(review("CONNECT", ("", "v1", "PodExecOptions", "pods", []), "bob", options, sub=sub), f"connect-{sub}")
    token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "metadata": {"name": "default", "namespace": "ml"},
             "spec": {"audiences": ["kube2hadoop"], "expirationSeconds": 600,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "train"}}}
    tr = ("authentication.k8s.io", "v1", "TokenRequest", "serviceaccounts", [])
    emit(review("CREATE", tr, "bob", token, sub="token"), "token-user")
    emit(review("CREATE", tr, "system:node:n1", token, sub="token", groups=["system:nodes"]), "token-node")
    for f in sorted(os.listdir("../bench/fixtures")):
        with open(f"../bench/fixtures/{f}") as src:
            emit(json.load(src), "bench-" + f.removesuffix(".json"))


main()
