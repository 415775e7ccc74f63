#!/usr/bin/env bash
# Installs kube2hadoop on the bed as an admin would: `kubectl apply -k` of manifests/base, through
# e2e/cluster/install (images, placement, addresses) and an overlay generated in
# e2e/.state/install with the bed's certificates, credentials and config. iddecorator and
# token-service then run as pods on the real node, two replicas each: the API server calls the
# webhook through its Service, fetchers reach the token service at its Service address, and the
# token service reaches the API server, the KDC, the NameNode and slapd from its pods.
#
#   install.sh up     install and wait for both Deployments (replaces the bed's registration of
#                     the local iddecorator process with the Service one)
#   install.sh down   delete what `up` installed and register the local iddecorator again
#   install.sh generate   only write the bed's certificates, credentials and config into
#                     $K2H_INSTALL_DIR (default $STATE/install): helm-install.sh turns them into values
#
# Needs the real node (up.sh without K2H_E2E_REAL_NODE=0); starts the Hadoop and LDAP beds if
# they are not running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -s "$STATE/ports" ] || die "no test bed in $STATE: run e2e/scripts/up.sh first"
# shellcheck source=/dev/null
source "$STATE/ports"
[ -s "$STATE/node/ports" ] ||
  die "the installed manifests run on the real node: start the bed with it (K2H_E2E_REAL_NODE=1)"
DIR=${K2H_INSTALL_DIR:-$STATE/install}
PKI=$STATE/pki

kubectl_admin() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=30s "$@"; }

# generate: the bed overlay in $DIR (private: it holds keys, a keytab and a password).
generate() {
  local cluster ldap_env
  # The flags of the suite's shared bed (e2e/src/hadoop.rs, Cluster::shared): other flags would
  # restart it, with a new KDC port. Its KMS listens on loopback only: not in this config.
  # The same flags as the test suites' shared bed (e2e/src/hadoop.rs SHARED_FLAGS): no restart.
  cluster=$("$E2E_DIR/scripts/hadoop-up.sh" --kms --yarn --hive)
  ldap_env=$("$E2E_DIR/scripts/ldap-up.sh")
  # shellcheck source=/dev/null
  source "$ldap_env"
  [ -n "${K2H_LDAP_POD_URL:-}" ] || die "slapd does not listen for pods (restart it: e2e/scripts/ldap-down.sh)"
  j() { jq -er "$1" "$cluster" || die "$cluster has no $1: is the Hadoop bed up with the real node?"; }
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  cp "$PKI/installed-iddecorator.crt" "$DIR/iddecorator.crt"
  cp "$PKI/installed-iddecorator.key" "$DIR/iddecorator.key"
  cp "$PKI/installed-token-service.crt" "$DIR/token-service.crt"
  cp "$PKI/installed-token-service.key" "$DIR/token-service.key"
  cp "$PKI/stamp.key" "$DIR/stamp.key"
  cp "$(j .service_keytab)" "$DIR/kube2hadoop.keytab"
  cp "$(j .pod_hadoop_conf_dir)/krb5.conf" "$DIR/krb5.conf"
  cp "$K2H_LDAP_BIND_PASSWORD_FILE" "$DIR/bind-password"
  # token-service's config: the shipped keys, with the bed's values. Paths are the Deployment's
  # mounts. HDFS tokens are named after the NameNode as pods reach it.
  jq -n --arg principal "$(j .service_principal)" --arg http "$(j .pod_namenode_http)" \
    --arg rpc "$(j .pod_namenode_rpc)" --arg ldap "$K2H_LDAP_POD_URL" \
    --arg bindDn "$K2H_LDAP_BIND_DN" --arg base "$K2H_LDAP_BASE_DN" '{
      listen: "0.0.0.0:8443",
      tlsCertFile: "/etc/kube2hadoop/tls/tls.crt",
      tlsKeyFile: "/etc/kube2hadoop/tls/tls.key",
      stampKeyFile: "/etc/kube2hadoop/stamp/stamp.key",
      identityModes: ["sa-token"],
      kerberos: {principal: $principal, keytab: "/etc/kube2hadoop/keytab/kube2hadoop.keytab",
                 krb5Conf: "/etc/kube2hadoop/krb5/krb5.conf"},
      nameservices: [{name: "ns1", namenodes: [{http: $http, rpc: $rpc}]}],
      ldap: {url: $ldap, bindDn: $bindDn, bindPasswordFile: "/etc/kube2hadoop/ldap/bind-password",
             baseDn: ("ou=people," + $base), groupBaseDn: ("ou=groups," + $base),
             allowedGroup: "hadoop-users"},
      superusers: ["hdfs", "yarn", "mapred", "hive", "hbase", "root"],
      userMapping: {denyPrefixes: ["system:"], realms: ["EXAMPLE.COM"]}
    }' >"$DIR/config.yaml"
  # iddecorator's policy: the shipped one, injecting the bed's fetcher image and naming the token
  # service by its Service address.
  sed -e "s|^  image: kube2hadoop/init-fetcher:.*|  image: docker.io/kube2hadoop/init-fetcher:e2e|" \
    -e "s|^  imagePullPolicy: IfNotPresent|  imagePullPolicy: Never|" \
    -e "s|^  tokenServiceUrl: .*|  tokenServiceUrl: https://$INSTALLED_TOKEN_SERVICE_IP:8443|" \
    "$REPO_DIR/manifests/base/iddecorator-policy.yaml" >"$DIR/policy.yaml"
  grep -q "tokenServiceUrl: https://$INSTALLED_TOKEN_SERVICE_IP:8443" "$DIR/policy.yaml" &&
    grep -q "imagePullPolicy: Never" "$DIR/policy.yaml" ||
    die "manifests/base/iddecorator-policy.yaml changed shape: update install.sh's substitutions"
  local ca base
  ca=$(base64 -w0 "$PKI/ca.crt")
  base=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
    "$E2E_DIR/cluster/install" "$DIR")
  cat >"$DIR/kustomization.yaml" <<YAML
# Written by e2e/scripts/install.sh: the bed's secrets and config over e2e/cluster/install.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $base
generatorOptions: {disableNameSuffixHash: true}
secretGenerator:
- {name: iddecorator-tls, namespace: kube2hadoop, type: kubernetes.io/tls,
   files: [tls.crt=iddecorator.crt, tls.key=iddecorator.key]}
- {name: token-service-tls, namespace: kube2hadoop, type: kubernetes.io/tls,
   files: [tls.crt=token-service.crt, tls.key=token-service.key]}
- {name: token-service-keytab, namespace: kube2hadoop, behavior: replace, files: [kube2hadoop.keytab]}
- {name: token-service-krb5, namespace: kube2hadoop, behavior: replace, files: [krb5.conf]}
- {name: token-service-ldap, namespace: kube2hadoop, behavior: replace, files: [bind-password]}
- {name: kube2hadoop-stamp-key, namespace: kube2hadoop, behavior: replace, files: [stamp.key]}
configMapGenerator:
- {name: token-service-config, namespace: kube2hadoop, behavior: replace, files: [config.yaml]}
- {name: iddecorator-policy, namespace: kube2hadoop, behavior: replace, files: [policy.yaml]}
patches:
- patch: |-
    apiVersion: admissionregistration.k8s.io/v1
    kind: MutatingWebhookConfiguration
    metadata: {name: kube2hadoop-iddecorator}
    webhooks:
    - {name: mutate.iddecorator.kube2hadoop.io, clientConfig: {caBundle: $ca}}
- patch: |-
    apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingWebhookConfiguration
    metadata: {name: kube2hadoop-iddecorator}
    webhooks:
    - {name: validate.iddecorator.kube2hadoop.io, clientConfig: {caBundle: $ca}}
    - {name: access.iddecorator.kube2hadoop.io, clientConfig: {caBundle: $ca}}
    - {name: tokens.iddecorator.kube2hadoop.io, clientConfig: {caBundle: $ca}}
YAML
}

render() { kubectl_admin kustomize --load-restrictor=LoadRestrictionsNone "$DIR"; }

# wait_rollout NAME: both replicas Ready, or fail with the pods' state and the last log lines.
wait_rollout() {
  local name=$1
  if ! kubectl_admin -n kube2hadoop rollout status "deployment/$name" --timeout=120s >/dev/null; then
    kubectl_admin -n kube2hadoop get pods -o wide >&2 || true
    kubectl_admin -n kube2hadoop logs "deployment/$name" --tail=30 >&2 || true
    die "$name did not become ready"
  fi
}

do_up() {
  timed "install overlay generated" generate
  local again=
  kubectl_admin -n kube2hadoop get deployment token-service >/dev/null 2>&1 && again=1
  render | kubectl_admin apply -f - >/dev/null
  # Installed before: the pods restart on the new Secrets and config.
  if [ -n "$again" ]; then
    kubectl_admin -n kube2hadoop rollout restart deployment/iddecorator deployment/token-service >/dev/null
  fi
  timed "iddecorator ready (2 pods)" wait_rollout iddecorator
  timed "token-service ready (2 pods)" wait_rollout token-service
  # Each namespace using injection trusts the token service's CA (caConfigMap in the policy).
  local ns
  for ns in ${K2H_E2E_INSTALL_NAMESPACES:-team-a}; do
    kubectl_admin -n "$ns" create configmap kube2hadoop-ca --from-file=ca.crt="$PKI/ca.crt" \
      --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
  done
  log "kube2hadoop installed from manifests/ (iddecorator and token-service: 2 pods each on $NODE_GATEWAY's node)"
}

do_down() {
  if [ -s "$DIR/kustomization.yaml" ]; then
    # Not the namespace: the bed made it (bootstrap.yaml), and the local iddecorator's identity
    # and the ledger's Secrets of the process token services live there.
    render | python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") != "Namespace"]
yaml.safe_dump_all(docs, sys.stdout)' | kubectl_admin delete --ignore-not-found --wait=true -f - >/dev/null
  fi
  rm -rf "$DIR"
  "$E2E_DIR/scripts/iddecorator.sh" start
  log "kube2hadoop uninstalled; the local iddecorator is registered again"
}

case ${1:-} in
up) do_up ;;
down) do_down ;;
generate) generate ;;
*) die "usage: $0 up|down|generate" ;;
esac
