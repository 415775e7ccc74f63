#!/usr/bin/env bash
# The e2e suite on a kind cluster, for machines with a Docker engine (`make e2e-kind`).
# NOT run in our CI, which has no Docker engine; the local bed (up.sh) is what CI runs.
#   kind.sh up                     cluster, iddecorator image (images.sh + kind load),
#                                  bootstrap objects, the Kubeflow training operator (its
#                                  standalone overlay at TRAINING_OPERATOR_VERSION; needs git and
#                                  network access), webhooks, users alice and bob (client certs
#                                  via the CSR API); writes e2e/.state/kind/env
#   kind.sh iddecorator start|stop scales iddecorator (the suite's webhook-down test calls it)
#   kind.sh down                   deletes the cluster and the state
# The rogue-webhook test serves from the test process: the apiserver reaches it at the host's
# address on the kind network (K2H_E2E_ROGUE_HOST, taken from `docker network inspect kind`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
KSTATE=$STATE/kind
CLUSTER=${K2H_KIND_CLUSTER:-kube2hadoop-e2e}
# kind node image matching the Kubernetes minor version of the local bed.
NODE_IMAGE=${K2H_KIND_NODE_IMAGE:-kindest/node:${K8S_VERSION%.*}.0}
IMAGE=kube2hadoop/iddecorator:e2e
KC=$KSTATE/kubeconfig

k() { kubectl --kubeconfig "$KC" --request-timeout=30s "$@"; }

need() { command -v "$1" >/dev/null || die "$1 is required for the kind path: install it"; }

user_cert() { # user_cert NAME: a client cert for NAME through the CSR API, added to the kubeconfig
  local name=$1 dir=$KSTATE/users
  mkdir -p "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "/O=team-a/CN=$name" -out "$dir/$name.csr" 2>/dev/null
  k delete csr "e2e-$name" --ignore-not-found >/dev/null
  k apply -f - >/dev/null <<CSR
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: e2e-$name}
spec:
  request: $(base64 -w0 "$dir/$name.csr")
  signerName: kubernetes.io/kube-apiserver-client
  usages: [client auth]
CSR
  k certificate approve "e2e-$name" >/dev/null
  local deadline=$((SECONDS + 60))
  until k get csr "e2e-$name" -o jsonpath='{.status.certificate}' | base64 -d >"$dir/$name.crt" 2>/dev/null &&
    [ -s "$dir/$name.crt" ]; do
    ((SECONDS < deadline)) || die "CSR for $name not signed after 60s"
    sleep 1
  done
  k config set-credentials "$name" --client-certificate="$dir/$name.crt" --client-key="$dir/$name.key" \
    --embed-certs >/dev/null
  k config set-context "$name" --cluster="kind-$CLUSTER" --user="$name" >/dev/null
}

up() {
  need docker; need kind; need kubectl; need openssl
  mkdir -p "$KSTATE"
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER" ||
    timed "kind create cluster" kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --kubeconfig "$KC"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KC" >/dev/null
  k config rename-context "kind-$CLUSTER" admin >/dev/null 2>&1 || true

  # The same OCI archives the local bed and `make images` use, built without Docker.
  IMAGE_TAG=${IMAGE#*:} "$E2E_DIR/scripts/images.sh"
  timed "kind load" kind load image-archive "$REPO_DIR/target/images/kube2hadoop-iddecorator.oci.tar" \
    --name "$CLUSTER"

  k --context admin apply -f "$E2E_DIR/cluster/bootstrap.yaml" >/dev/null
  # The training operator as Kubeflow installs it standalone (its CRDs, RBAC, webhook and
  # Deployment in namespace kubeflow, service account training-operator); kustomize fetches
  # the manifests of the pinned tag, the node pulls the image the overlay names.
  timed "training operator" k --context admin apply --server-side --force-conflicts \
    -k "github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=$TRAINING_OPERATOR_VERSION" >/dev/null
  k --context admin wait --for=condition=Established --timeout=60s crd/tfjobs.kubeflow.org \
    crd/mxjobs.kubeflow.org >/dev/null
  k --context admin -n kubeflow rollout status deploy/training-operator --timeout=300s

  # Serving cert for the Service name, from a throwaway CA that becomes the caBundle.
  local pki=$KSTATE/pki svc=iddecorator.kube2hadoop.svc
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
    -out "$pki/ca.crt" -days 7 -subj /CN=kube2hadoop-kind-ca 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/tls.key" \
    -subj "/CN=$svc" 2>/dev/null |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 7 \
      -extfile <(printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local\nextendedKeyUsage=serverAuth\n' "$svc" "$svc") \
      -out "$pki/tls.crt" 2>/dev/null
  k --context admin -n kube2hadoop create secret tls iddecorator-tls --cert "$pki/tls.crt" \
    --key "$pki/tls.key" --dry-run=client -o yaml | k --context admin apply -f - >/dev/null
  # The stamp key, shared with the token-service the tests start on the host.
  [ -s "$pki/stamp.key" ] || (umask 077 && openssl rand -base64 32 >"$pki/stamp.key")
  k --context admin -n kube2hadoop create secret generic kube2hadoop-stamp-key \
    --from-file=stamp.key="$pki/stamp.key" --dry-run=client -o yaml | k --context admin apply -f - >/dev/null
  k --context admin apply -f "$E2E_DIR/cluster/kind/iddecorator.yaml" >/dev/null
  k --context admin -n kube2hadoop rollout status deploy/iddecorator --timeout=180s

  # Same registration as the local bed, pointed at the Service instead of a url.
  sed -e "s/@CA_BUNDLE@/$(base64 -w0 "$pki/ca.crt")/g" \
    -e 's#url: https://127.0.0.1:@PORT@/\(.*\)#service: {namespace: kube2hadoop, name: iddecorator, path: /\1}#' \
    "$E2E_DIR/cluster/webhooks.yaml.tmpl" | k --context admin apply -f - >/dev/null

  user_cert alice
  user_cert bob
  k config use-context admin >/dev/null

  local gateway
  gateway=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
  cat >"$KSTATE/env" <<ENV
export KUBECONFIG=$KC
export K2H_E2E_IDDECORATOR_CTL="$E2E_DIR/scripts/kind.sh iddecorator"
export K2H_E2E_ROGUE_HOST=$gateway
ENV
  log "kind cluster $CLUSTER ready: source $KSTATE/env"
}

iddecorator() {
  case ${1:-} in
  stop)
    k --context admin -n kube2hadoop scale deploy/iddecorator --replicas=0 >/dev/null
    k --context admin -n kube2hadoop wait --for=delete pod -l app=iddecorator --timeout=120s >/dev/null ;;
  start)
    k --context admin -n kube2hadoop scale deploy/iddecorator --replicas=1 >/dev/null
    k --context admin -n kube2hadoop rollout status deploy/iddecorator --timeout=180s >/dev/null ;;
  *) die "usage: $0 iddecorator start|stop" ;;
  esac
}

down() {
  if command -v kind >/dev/null; then kind delete cluster --name "$CLUSTER" || true; fi
  rm -rf "$KSTATE"
}

case ${1:-} in
up) up ;;
iddecorator) shift; iddecorator "$@" ;;
down) down ;;
*) die "usage: $0 up|iddecorator start|stop|down" ;;
esac
