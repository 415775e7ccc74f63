#!/usr/bin/env bash
# Generates the test bed's PKI in e2e/.state/pki (idempotent: existing files are kept):
# one CA, the apiserver and iddecorator serving certs, client certs for the components (and
# each kwok node's kubelet identity), the service-account signing key pair, and the static
# token file for admin, alice and bob.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PKI=$STATE/pki
mkdir -p "$PKI"
chmod 700 "$PKI"
cd "$PKI"

key() { [ -s "$1.key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

if [ ! -s ca.crt ]; then
  key ca
  openssl req -x509 -new -key ca.key -out ca.crt -days 7 -subj "/CN=kube2hadoop-e2e-ca" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi

# cert NAME SUBJECT EXT_USAGE [SAN]: a leaf signed by the CA.
cert() {
  local name=$1 subj=$2 usage=$3 san=${4:-}
  [ -s "$name.crt" ] && return 0
  key "$name"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -key "$name.key" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile "$ext" \
      -out "$name.crt" 2>/dev/null
  rm -f "$ext"
}

# The key iddecorator signs kube2hadoop.io/stamp with and token-service verifies it with: one
# random 32-byte base64 key per bed, readable by its owner only.
if [ ! -s stamp.key ]; then
  (umask 077 && openssl rand -base64 32 >stamp.key)
fi
chmod 600 stamp.key

local_san="IP:127.0.0.1,DNS:localhost"
NODE_NAME=${K2H_E2E_NODE_NAME:-k2h-node}
# The API server listens on the real node's bridge when the node is on (up.sh); pods reach it
# there through the `kubernetes` Service (10.96.0.1).
cert apiserver "/CN=kube-apiserver" serverAuth \
  "$local_san,IP:$NODE_GATEWAY,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
cert iddecorator "/CN=iddecorator" serverAuth "$local_san"
cert admin "/O=system:masters/CN=admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
# kwok plays every kubelet (node status, leases, pod status): simplest as a cluster admin.
cert kwok "/O=system:masters/CN=kwok" clientAuth
# iddecorator reads the pod of an exec/attach/port-forward as its service account would in a
# cluster, so the bed exercises the manifests' own RBAC (manifests/base/iddecorator-rbac.yaml).
cert iddecorator-client \
  "/O=system:serviceaccounts/O=system:serviceaccounts:kube2hadoop/CN=system:serviceaccount:kube2hadoop:iddecorator" \
  clientAuth
# Each node's kubelet identity: only kubelets may mint service-account tokens for audience
# kube2hadoop (iddecorator's tokens webhook), so tests and the demo mint a pod's token as the
# node it is bound to (node-<name>.crt), as the kubelet does for the projected volume.
for node in $(awk '$1 == "name:" {print $2}' "$E2E_DIR/cluster/nodes.yaml"); do
  cert "node-$node" "/O=system:nodes/CN=system:node:$node" clientAuth
done

# The real node (node.sh): its kubelet's client identity and serving certificate (the API server
# reaches it at the bridge address for logs and exec), and the API server's client certificate
# for kubelets. The token service the node's pods reach gets a certificate for that address.
cert "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth \
  "IP:$NODE_GATEWAY,DNS:$NODE_NAME"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert token-service-node "/CN=token-service" serverAuth \
  "IP:$NODE_GATEWAY,DNS:token-service.kube2hadoop.svc"
# kube-proxy on the real node, as the identity the default system:node-proxier binding names.
cert kube-proxy "/CN=system:kube-proxy" clientAuth
# The manifests installed as pods (install.sh): their Services' names, and for the token service
# the fixed ClusterIP the injected fetcher dials (the bed's pods have no cluster DNS).
cert installed-iddecorator "/CN=iddecorator.kube2hadoop.svc" serverAuth \
  "DNS:iddecorator.kube2hadoop.svc,DNS:iddecorator.kube2hadoop.svc.cluster.local"
cert installed-token-service "/CN=token-service.kube2hadoop.svc" serverAuth \
  "DNS:token-service.kube2hadoop.svc,DNS:token-service.kube2hadoop.svc.cluster.local,IP:$INSTALLED_TOKEN_SERVICE_IP"

[ -s sa.key ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
[ -s sa.pub ] || openssl pkey -in sa.key -pubout -out sa.pub

if [ ! -s tokens.csv ]; then
  tok() { openssl rand -hex 24; }
  umask 077
  {
    echo "$(tok),admin,admin-uid,\"system:masters\""
    echo "$(tok),alice,alice-uid,\"team-a\""
    echo "$(tok),bob,bob-uid,\"team-a\""
  } >tokens.csv
fi
chmod 600 ./*.key tokens.csv
