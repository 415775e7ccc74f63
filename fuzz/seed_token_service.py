#!/usr/bin/env python3
"""Writes the seed corpus of the `token-service` fuzz target (token_service::fuzz::request):
seven NUL-separated parts (method, request target, Authorization, Accept, TokenReview, Pod,
owner ObjectMeta list), built from the objects in seeds/token-service/, which a kube-apiserver
v1.34 of the e2e bed returned (pods created by alice, a Deployment's pod with its ReplicaSet and
Deployment, TokenReviews of bound, unbound, wrong-audience and invalid tokens; the reviewed
tokens are replaced by REDACTED), plus variations of them the service must refuse. Run from
fuzz/; the fuzzer grows the corpus and `cargo fuzz cmin token-service` keeps it small."""
import copy, json, os

SEEDS = "seeds/token-service"
OUT = "corpus/token-service"
BEARER = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2lnbmF0dXJl"
USER, RUN_AS = "kube2hadoop.io/user", "kube2hadoop.io/run-as"


def load(name):
    with open(os.path.join(SEEDS, name + ".json")) as f:
        return json.load(f)


def meta(obj):
    return obj["metadata"]


def seed(name, pod, review=None, owners=(), auth=BEARER, accept="application/json",
         method="POST", target="/v1/credentials"):
    parts = [method, target, auth or "", accept,
             json.dumps(review, separators=(",", ":")) if review is not None else "",
             json.dumps(pod, separators=(",", ":")),
             json.dumps([meta(o) for o in owners], separators=(",", ":"))]
    with open(os.path.join(OUT, "seed-" + name), "wb") as f:
        f.write("\0".join(parts).encode())


def changed(obj, edit):
    obj = copy.deepcopy(obj)
    edit(obj)
    return obj


def main():
    os.makedirs(OUT, exist_ok=True)
    web, bare = load("pod-web"), load("pod-bare")
    rs, deploy = load("replicaset-web"), load("deployment-web")
    rev_web, rev_bare = load("review-pod-web"), load("review-pod-bare")
    # Real answers.
    seed("web-sa-token", web, rev_web, [rs, deploy])
    seed("bare-sa-token-octets", bare, rev_bare, accept="*/*")
    seed("web-by-ip", web, None, [rs, deploy], auth=None, accept="")
    for name in ["unbound", "wrongaud", "bad"]:
        seed("review-" + name, web, load("review-" + name), [rs, deploy])
    # Requests the server refuses before identification, or identifies by address.
    seed("get", web, rev_web, method="GET", target="/v1/credentials?x=1", auth="Basic eDp5")
    seed("bearer-empty", bare, rev_bare, auth="Bearer   ", accept="text/plain\napplication/json")
    # Pods the review or the address must not verify.
    seed("terminating", changed(web, lambda p: meta(p).update(
        deletionTimestamp="2026-11-25T15:00:00Z")), rev_web, [rs, deploy])
    seed("host-network", changed(bare, lambda p: p["spec"].update(hostNetwork=True)), rev_bare)
    seed("succeeded", changed(bare, lambda p: p["status"].update(phase="Succeeded")), rev_bare)
    seed("other-sa", changed(bare, lambda p: p["spec"].update(serviceAccountName="etl")), rev_bare)
    seed("other-uid", changed(bare, lambda p: meta(p).update(uid="0000")), rev_bare)
    seed("other-namespace", changed(bare, lambda p: meta(p).update(namespace="team-z")), rev_bare)
    seed("dual-stack", changed(web, lambda p: p["status"].update(
        podIPs=[{"ip": "127.100.1.1"}, {"ip": "fd00::1:1"}])), None, [rs, deploy], auth=None)
    # Annotations the mapping and authorization must refuse or rewrite.
    for i, user in enumerate(["alice@EXAMPLE.COM", "oidc:Bob@example.com", "system:node:n1",
                              "  carol  ", "al ice", "(uid=*)", "hdfs", "admin-x", "d@EVIL.ORG"]):
        seed("user-%d" % i, changed(bare, lambda p: meta(p)["annotations"].update(
            {USER: user})), None, auth=None)
    seed("run-as-superuser", changed(bare, lambda p: meta(p)["annotations"].update(
        {RUN_AS: "hdfs"})), None, auth=None)
    # Owner chains: vanished, replaced and cyclic owners.
    seed("owner-gone", web, rev_web, [rs])
    seed("owner-replaced", web, rev_web, [changed(rs, lambda o: meta(o).update(uid="0000"))])
    cycle = changed(deploy, lambda o: meta(o).update(ownerReferences=[
        dict(meta(rs)["ownerReferences"][0], kind="ReplicaSet", name=meta(rs)["name"],
             uid=meta(rs)["uid"])]))
    seed("owner-cycle", web, rev_web, [rs, cycle])


if __name__ == "__main__":
    main()
