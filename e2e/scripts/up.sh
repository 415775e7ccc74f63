#!/usr/bin/env bash
# Brings up the local test bed (idempotent): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok with two fake nodes, the bootstrap objects and the training operator's
# CRDs, iddecorator with its webhook registrations, and the Kubeflow training operator. Writes
# e2e/.state/kubeconfig (contexts admin, alice, bob) and e2e/.state/env. `down.sh` undoes all of it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$SECONDS

# `up.sh restart COMPONENT` (what restart.sh runs) stops one running component and starts it
# again with the same flags, ports and data.
mode=${1:-up}
if [ "$mode" = up ]; then
  "$E2E_DIR/scripts/build.sh"
  mkdir -p "$STATE/logs" "$STATE/pids"
  timed "pki" "$E2E_DIR/scripts/pki.sh"
fi
PKI=$STATE/pki

# Ports and the etcd data dir are chosen once and kept, so a second `up` finds the same bed.
if [ "$mode" != up ] && [ ! -s "$STATE/ports" ]; then
  die "no test bed in $STATE: run e2e/scripts/up.sh first"
fi
if [ ! -s "$STATE/ports" ]; then
  {
    echo "ETCD_PORT=$(free_port)"
    echo "ETCD_PEER_PORT=$(free_port)"
    echo "APISERVER_PORT=$(free_port)"
    echo "KCM_PORT=$(free_port)"
    echo "SCHEDULER_PORT=$(free_port)"
    echo "KWOK_PORT=$(free_port)"
    echo "IDDECORATOR_PORT=$(free_port)"
    # With the real node the API server listens on its bridge, where pods reach it.
    if [ "${K2H_E2E_REAL_NODE:-1}" != 0 ]; then echo "APISERVER_HOST=$NODE_GATEWAY"; else echo "APISERVER_HOST=127.0.0.1"; fi
    # etcd's data lives in memory: fsync-heavy writes on a shared disk would dominate.
    echo "ETCD_DATA=$(mktemp -d /dev/shm/kube2hadoop-e2e-etcd.XXXXXX)"
  } >"$STATE/ports"
fi
# shellcheck source=/dev/null
source "$STATE/ports"
APISERVER=$(apiserver_url)


token_of() { awk -F, -v u="$1" '$2 == u {print $1}' "$PKI/tokens.csv"; }

write_kubeconfigs() {
  local c
  for c in controller-manager scheduler kwok; do
    write_kubeconfig "$STATE/$c.kubeconfig" "$c" "$PKI/$c.crt" "$PKI/$c.key"
  done
  umask 077
  cat >"$STATE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$APISERVER", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
- name: alice
  user: {token: "$(token_of alice)"}
- name: bob
  user: {token: "$(token_of bob)"}
contexts:
- {name: admin, context: {cluster: e2e, user: admin}}
- {name: alice, context: {cluster: e2e, user: alice}}
- {name: bob, context: {cluster: e2e, user: bob}}
current-context: admin
KC
  umask 022
}

# start NAME CMD...: run CMD in the background with its log and pid in the state dir, unless
# it is already running.
start() {
  local name=$1; shift
  if pid_alive "$STATE/pids/$name.pid"; then
    log "$name already running (pid $(cat "$STATE/pids/$name.pid"))"
    return 0
  fi
  log "starting $name"
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

# healthy NAME URL [CURL_ARGS...]: the component is alive and answers 200 on URL.
healthy() {
  local name=$1 url=$2; shift 2
  pid_alive "$STATE/pids/$name.pid" || return 1
  curl -fsS --max-time 2 "$@" "$url" >/dev/null
}

# wait_healthy NAME TIMEOUT URL [CURL_ARGS...]: fail naming the component if it dies or stalls.
wait_healthy() {
  local name=$1 timeout=$2 url=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until healthy "$name" "$url" "$@" 2>/dev/null; do
    pid_alive "$STATE/pids/$name.pid" || die_component "$name (exited)" "$STATE/logs/$name.log"
    ((SECONDS < deadline)) || die_component "$name (not healthy after ${timeout}s)" "$STATE/logs/$name.log"
    sleep 0.5
  done
}

kubectl_admin() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=20s "$@"; }

start_etcd() {
  start etcd "$ETCD_BIN/etcd" --name e2e --data-dir "$ETCD_DATA" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=2147483648 --log-level=warn
  wait_healthy etcd 60 "http://127.0.0.1:$ETCD_PORT/health"
}

# --enable-aggregator-routing: webhooks registered by Service (the installed manifests,
# install.sh) are called at an endpoint's address, so the API server does not depend on
# kube-proxy, which only runs with the real node and starts after it.
start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="${APISERVER_HOST:-127.0.0.1}" --secure-port="$APISERVER_PORT" \
    --advertise-address="${APISERVER_HOST:-127.0.0.1}" \
    --enable-aggregator-routing=true \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-key-file="$PKI/sa.pub" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --allow-privileged=true --profiling=false --enable-priority-and-fairness=false
  wait_healthy kube-apiserver 120 "$APISERVER/readyz" --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key"
}

start_controller_manager() {
  local kc=$STATE/controller-manager.kubeconfig
  # Client QPS above the defaults (20; the scheduler's 50) so the 10,000 pods of
  # bench-scale do not queue behind the client-side limiter.
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --controllers='*,-nodeipam' --profiling=false \
    --kube-api-qps=100 --kube-api-burst=200
  wait_healthy kube-controller-manager 60 "https://127.0.0.1:$KCM_PORT/healthz" -k
}

start_scheduler() {
  local kc=$STATE/scheduler.kubeconfig
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false \
    --profiling=false --kube-api-qps=100 --kube-api-burst=200
  wait_healthy kube-scheduler 60 "https://127.0.0.1:$SCHEDULER_PORT/healthz" -k
}

start_kwok() {
  start kwok "$KWOK_BIN/kwok" --kubeconfig="$STATE/kwok.kubeconfig" \
    -c "$E2E_DIR/cluster/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --cidr=127.100.255.0/24 --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:$KWOK_PORT"
  wait_healthy kwok 60 "http://127.0.0.1:$KWOK_PORT/healthz"
}

bootstrap() {
  kubectl_admin apply -f "$E2E_DIR/cluster/nodes.yaml" >/dev/null
  kubectl_admin apply -f "$E2E_DIR/cluster/bootstrap.yaml" >/dev/null
  # The training operator's own CRDs, as its module ships them. Server-side: each is over the
  # size client-side apply can keep in its last-applied annotation.
  kubectl_admin apply --server-side --force-conflicts -f "$TRAINING_OPERATOR_DIR/crds/" >/dev/null
  kubectl_admin wait --for=condition=Established --timeout=60s \
    -f "$TRAINING_OPERATOR_DIR/crds/" >/dev/null
  kubectl_admin wait --for=condition=Ready --timeout=60s node/kwok-node-0 node/kwok-node-1 >/dev/null ||
    die_component "kwok (nodes not Ready)" "$STATE/logs/kwok.log"
  # Pods are created by the namespace's default service account; its controller adds it.
  local deadline=$((SECONDS + 60))
  until kubectl_admin -n team-a get serviceaccount default >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die_component "kube-controller-manager (no default SA in team-a)" \
      "$STATE/logs/kube-controller-manager.log"
    sleep 0.5
  done
}

write_env() {
  cat >"$STATE/env" <<ENV
# Written by e2e/scripts/up.sh; source it to reach the test bed.
export KUBECONFIG=$STATE/kubeconfig
export K2H_E2E_STATE=$STATE
export K2H_E2E_STATE_DIR=$STATE
export K2H_E2E_KUBECTL=$KUBECTL
export K2H_E2E_APISERVER=$APISERVER
export K2H_E2E_CA=$PKI/ca.crt
export K2H_E2E_PKI=$PKI
export K2H_E2E_ETCD_PORT=$ETCD_PORT
export K2H_E2E_ETCD_DATA=$ETCD_DATA
export K2H_E2E_KWOK_PORT=$KWOK_PORT
export K2H_E2E_IDDECORATOR_PORT=$IDDECORATOR_PORT
export K2H_E2E_IDDECORATOR_SCRIPT=$E2E_DIR/scripts/iddecorator.sh
export K2H_E2E_POD_CIDR=127.100.0.0/16
export K2H_E2E_TRAINING_OPERATOR_SCRIPT=$E2E_DIR/scripts/training-operator.sh
export K2H_E2E_TRAINING_OPERATOR_VERSION=$TRAINING_OPERATOR_VERSION
ENV
  if [ -s "$STATE/node/ports" ]; then
    cat >>"$STATE/env" <<ENV
# The real node (node.sh): pods on it reach the bed's token service at this address.
export K2H_E2E_NODE=${K2H_E2E_NODE_NAME:-k2h-node}
export K2H_E2E_NODE_GATEWAY=${K2H_E2E_NODE_GATEWAY:-10.244.0.1}
export K2H_E2E_NODE_TOKEN_SERVICE=${K2H_E2E_NODE_GATEWAY:-10.244.0.1}:8443
ENV
  fi
  local f
  for f in "$STATE"/pids/*.pid; do
    local n
    n=$(basename "$f" .pid | tr 'a-z-' 'A-Z_')
    echo "export K2H_E2E_PID_$n=$(cat "$f")" >>"$STATE/env"
  done
}

# restart COMPONENT: stop it (TERM, then KILL after 10s) and start it as `up` does.
restart() {
  local name=$1 fn
  case $name in
  etcd) fn=start_etcd ;;
  kube-apiserver) fn=start_apiserver ;;
  kube-controller-manager) fn=start_controller_manager ;;
  kube-scheduler) fn=start_scheduler ;;
  kwok) fn=start_kwok ;;
  *) die "restart: unknown component $name (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)" ;;
  esac
  stop_pid "$STATE/pids/$name.pid"
  log "$name stopped"
  timed "$name up" "$fn"
  write_env
}

case $mode in
up) ;;
restart) restart "${2:?usage: up.sh restart COMPONENT}"; exit 0 ;;
stop)
  # stop COMPONENT: only stop it (restart.sh start brings it back).
  stop_pid "$STATE/pids/${2:?usage: up.sh stop COMPONENT}.pid"; log "$2 stopped"; exit 0 ;;
*) die "usage: $0 [restart|stop COMPONENT]" ;;
esac

write_kubeconfigs
# The real node's bridge comes first: the API server listens on it.
if [ "${APISERVER_HOST:-127.0.0.1}" != 127.0.0.1 ]; then "$E2E_DIR/scripts/node.sh" net; fi
timed "etcd up" start_etcd
timed "kube-apiserver up" start_apiserver
timed "kube-controller-manager up" start_controller_manager
timed "kube-scheduler up" start_scheduler
timed "kwok up" start_kwok
timed "bootstrap objects" bootstrap
# K2H_E2E_REAL_NODE=0: kwok nodes only (no root, no containers).
if [ "${K2H_E2E_REAL_NODE:-1}" != 0 ]; then "$E2E_DIR/scripts/node.sh" up; fi
write_env
# The training operator starts beside iddecorator (independent; its start is mostly waiting).
timed "training-operator up" "$E2E_DIR/scripts/training-operator.sh" start &
operator=$!
timed "iddecorator up" "$E2E_DIR/scripts/iddecorator.sh" start
wait "$operator" || die "the training operator did not start (see $STATE/logs/training-operator.log)"
write_env
log "test bed up in $((SECONDS - started))s: source $STATE/env (KUBECONFIG=$STATE/kubeconfig)"
