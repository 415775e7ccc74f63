#!/usr/bin/env bash
# install.sh's twin through Helm: charts/kube2hadoop installed on the bed with values equivalent
# to what install.sh applies (e2e/cluster/install's images, placement and addresses; the bed's
# certificates, credentials and config, written by `install.sh generate` into $STATE/helm).
# iddecorator and token-service then run as pods on the real node; e2e/tests/helm.rs drives it.
#
#   helm-install.sh up [HELM ARGS]        install (objects of the bed's own registration or of an
#                                         earlier install are removed first) and wait for both
#                                         Deployments
#   helm-install.sh upgrade [HELM ARGS]   `helm upgrade` with the same values plus HELM ARGS, wait
#   helm-install.sh down                  uninstall and register the local iddecorator again
#
# Needs the real node and starts the Hadoop and LDAP beds if needed, as install.sh does.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -s "$STATE/ports" ] || die "no test bed in $STATE: run e2e/scripts/up.sh first"
DIR=$STATE/helm
RELEASE=kube2hadoop
NS=kube2hadoop
CHART=$REPO_DIR/charts/kube2hadoop

kubectl_admin() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=30s "$@"; }
helm_admin() { "$REPO_DIR/charts/helm.sh" --kubeconfig "$STATE/kubeconfig" --kube-context admin "$@"; }

# values: $DIR/values.json from install.sh's generated files. The config drops the mount paths
# the chart sets itself (the same paths: install.sh writes the base's).
write_values() {
  K2H_INSTALL_DIR=$DIR "$E2E_DIR/scripts/install.sh" generate
  python3 - "$DIR" "$STATE/pki/ca.crt" "$INSTALLED_TOKEN_SERVICE_IP" "$NODE_GATEWAY" \
    "${K2H_E2E_INSTALL_NAMESPACES:-team-a}" >"$DIR/values.json" <<'PY'
import base64, json, sys
d, ca, ts_ip, gateway, namespaces = sys.argv[1:6]
text = lambda name: open(f"{d}/{name}").read()
config = json.loads(text("config.yaml"))
for k in ("listen", "tlsCertFile", "tlsKeyFile", "stampKeyFile"):
    config.pop(k)
for k in ("keytab", "krb5Conf"):
    config["kerberos"].pop(k)
config["ldap"].pop("bindPasswordFile")
# As e2e/cluster/install: on the real node (tainted), our images, never pulled.
node = {"nodeSelector": {"kube2hadoop.io/real-node": "true"},
        "tolerations": [{"key": "kube2hadoop.io/real-node", "operator": "Exists", "effect": "NoSchedule"}]}
image = lambda name: {"registry": "docker.io", "repository": f"kube2hadoop/{name}", "tag": "e2e", "pullPolicy": "Never"}
json.dump({
    # The bed made the namespace (bootstrap.yaml); uninstalling must leave it.
    "namespace": {"create": False},
    "images": {"iddecorator": image("iddecorator"), "tokenService": image("token-service"),
               "initFetcher": image("init-fetcher")},
    # No cluster DNS for the bed's pods: the fetcher dials the Service address its certificate names.
    "iddecorator": {**node, "policy": {"injection": {"tokenServiceUrl": f"https://{ts_ip}:8443"}}},
    "tokenService": {**node, "service": {"clusterIP": ts_ip}, "config": config,
                     "hostAliases": [{"ip": gateway, "hostnames": ["k2h-hadoop", "k2h-hadoop-datanode"]}]},
    "secrets": {"keytab": {"base64": base64.b64encode(open(f"{d}/kube2hadoop.keytab", "rb").read()).decode()},
                "krb5Conf": {"content": text("krb5.conf")},
                "ldapBindPassword": {"value": text("bind-password")},
                "stampKey": {"value": text("stamp.key")}},
    # The bed's CA and serving certificates (pki.sh), as install.sh's Secrets and caBundle.
    "certManager": {"enabled": False},
    "certificates": {"caBundle": open(ca).read(),
                     "iddecorator": {"cert": text("iddecorator.crt"), "key": text("iddecorator.key")},
                     "tokenService": {"cert": text("token-service.crt"), "key": text("token-service.key")}},
    "caConfigMap": {"namespaces": namespaces.split()},
}, sys.stdout, indent=1)
PY
}

# clear_the_way: objects the chart would create that exist outside the release (the bed's
# webhook registration and iddecorator RBAC, a CA ConfigMap install.sh left) are deleted, as
# install.sh replaces them; a Kustomize install (install.sh up) must be taken down first.
clear_the_way() {
  if kubectl_admin -n "$NS" get deployment token-service >/dev/null 2>&1 &&
    ! helm_admin -n "$NS" status "$RELEASE" >/dev/null 2>&1; then
    die "kube2hadoop is installed without Helm: run e2e/scripts/install.sh down first"
  fi
  helm_admin template "$RELEASE" "$CHART" -n "$NS" -f "$DIR/values.json" >"$DIR/rendered.yaml"
  kubectl_admin get --ignore-not-found -o json -f "$DIR/rendered.yaml" >"$DIR/existing.json"
  # Prints what it found (kind/name), and writes it as a List to delete.
  local foreign
  foreign=$(python3 - "$RELEASE" "$DIR/existing.json" "$DIR/foreign.json" <<'PY'
import json, sys
release, existing, out = sys.argv[1:4]
text = open(existing).read().strip()
found = json.loads(text) if text else {"items": []}
items = found.get("items", []) if found.get("kind") == "List" else [found]
foreign = [o for o in items if o.get("kind") != "Namespace" and
           o["metadata"].get("annotations", {}).get("meta.helm.sh/release-name") != release]
json.dump({"apiVersion": "v1", "kind": "List", "items": foreign}, open(out, "w"))
print(" ".join(f"{o['kind']}/{o['metadata']['name']}" for o in foreign))
PY
  )
  if [ -n "$foreign" ]; then
    log "removing what the release will own: $foreign"
    kubectl_admin delete --ignore-not-found --wait=true -f "$DIR/foreign.json" >&2
  fi
}

# helm_wait CMD ARGS...: the release installed or upgraded and both Deployments ready, or fail
# with the pods' state and the last log lines.
helm_wait() {
  if ! helm_admin "$@" "$RELEASE" "$CHART" -n "$NS" -f "$DIR/values.json" --wait --timeout 4m >&2; then
    kubectl_admin -n "$NS" get pods -o wide >&2 || true
    local d
    for d in iddecorator token-service; do
      kubectl_admin -n "$NS" logs "deployment/$d" --tail=30 >&2 || true
    done
    die "helm $1 of $CHART failed"
  fi
}

do_up() {
  [ -s "$STATE/node/ports" ] || die "the chart's pods run on the real node: start the bed with it"
  # Private, like install.sh's: keys, a keytab and a password (generate makes it anew).
  timed "values generated" write_values
  clear_the_way
  # The bed made the namespace (namespace.create=false): labelled restricted as the chart's own
  # Namespace would be (and as install.sh's apply of manifests/base does), so the pods pass it.
  kubectl_admin label --overwrite namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/enforce-version=latest >/dev/null
  timed "helm install, both Deployments ready" helm_wait upgrade --install "$@"
  log "kube2hadoop installed by helm from charts/kube2hadoop"
}

do_upgrade() {
  [ -s "$DIR/values.json" ] || die "not installed by helm-install.sh up"
  timed "helm upgrade ($*), both Deployments ready" helm_wait upgrade "$@"
}

do_down() {
  if helm_admin -n "$NS" status "$RELEASE" >/dev/null 2>&1; then
    helm_admin -n "$NS" uninstall "$RELEASE" --cascade foreground --wait --timeout 2m >&2
  fi
  rm -rf "$DIR"
  "$E2E_DIR/scripts/iddecorator.sh" start
  log "kube2hadoop uninstalled by helm; the local iddecorator is registered again"
}

cmd=${1:-}
shift || true
case $cmd in
up) do_up "$@" ;;
upgrade) do_upgrade "$@" ;;
down) do_down ;;
*) die "usage: $0 up|upgrade|down [helm args]" ;;
esac
