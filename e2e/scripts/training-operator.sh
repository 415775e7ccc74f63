#!/usr/bin/env bash
# Runs the real Kubeflow training operator (TRAINING_OPERATOR_VERSION, built by build.sh) out of
# cluster against the test bed, as its own service account kubeflow/training-operator.
# usage: training-operator.sh start|stop
#
# What an in-cluster deployment gets from its manifests, the bed provides by hand:
# - credentials: a TokenRequest for the service account (the API server's audience, never
#   kube2hadoop), minted by admin into a kubeconfig of its own;
# - RBAC: the module's own ClusterRole, bound to that service account;
# - its webhook: the Secret its cert rotator manages, pre-filled with a CA and a serving cert
#   that also names 127.0.0.1 (the rotator keeps valid certs and injects the CA), and the
#   module's ValidatingWebhookConfiguration with `url: https://127.0.0.1:PORT/...` instead of
#   its Service. The rotator only checks that /tmp/k8s-webhook-server/serving-certs/tls.crt
#   exists (that path is hard-coded); the webhook server reads $TMPDIR/k8s-webhook-server/…,
#   which is private to this bed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -s "$STATE/ports" ] || die "no test bed in $STATE: run e2e/scripts/up.sh first"
NAME=training-operator
DIR=$STATE/training-operator
PIDFILE=$STATE/pids/$NAME.pid
LOGFILE=$STATE/logs/$NAME.log
BIN=$TRAINING_OPERATOR_DIR/bin/training-operator.v1
CERTS=$DIR/tmp/k8s-webhook-server/serving-certs
SECRET=training-operator-webhook-cert
VWC=validator.training-operator.kubeflow.org
GLOBAL_CERTS=$OPERATOR_GLOBAL_DIR/serving-certs

# Beds brought up before the operator existed have no ports for it yet.
if ! grep -q '^TRAINING_OPERATOR_PROBE_PORT=' "$STATE/ports"; then
  {
    echo "TRAINING_OPERATOR_PROBE_PORT=$(free_port)"
    echo "TRAINING_OPERATOR_METRICS_PORT=$(free_port)"
    echo "TRAINING_OPERATOR_WEBHOOK_PORT=$(free_port)"
  } >>"$STATE/ports"
fi
# shellcheck source=/dev/null
source "$STATE/ports"
APISERVER=$(apiserver_url)

kubectl_admin() {
  "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=20s "$@"
}

# The operator's webhook PKI: an RSA CA (the rotator parses its key as PKCS#1 and checks the
# CA against its own name) and a serving cert for the Service name and 127.0.0.1, valid well
# past the rotator's 90-day look-ahead so it never rotates them under the bed.
webhook_pki() {
  mkdir -p "$DIR/pki" "$CERTS"
  chmod 700 "$DIR/pki"
  local p=$DIR/pki
  if [ ! -s "$p/tls.crt" ]; then
    openssl genrsa -traditional -out "$p/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$p/ca.key" -out "$p/ca.crt" -days 3650 \
      -subj "/O=training-operator/CN=training-operator-ca" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,digitalSignature \
      -addext subjectAltName=DNS:training-operator-ca 2>/dev/null
    openssl genrsa -traditional -out "$p/tls.key" 2048 2>/dev/null
    openssl req -new -key "$p/tls.key" -subj "/CN=training-operator.kubeflow.svc" 2>/dev/null |
      openssl x509 -req -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
        -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
          "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
          "subjectAltName=DNS:training-operator.kubeflow.svc,IP:127.0.0.1") \
        -out "$p/tls.crt" 2>/dev/null
  fi
  cp "$p/tls.crt" "$p/tls.key" "$CERTS/"
  # The rotator's hard-coded mount check; any bed's cert satisfies it. The marker lets the last
  # bed's `stop` remove what a bed created, so the machine is left as it was found.
  if [ ! -e "$GLOBAL_CERTS/tls.crt" ]; then
    mkdir -p "$GLOBAL_CERTS"
    cp "$p/tls.crt" "$GLOBAL_CERTS/tls.crt"
    touch "$OPERATOR_GLOBAL_DIR/$OPERATOR_GLOBAL_MARKER"
  fi
}

# A kubeconfig holding a token of the operator's service account for the API server's own
# audience. One year: the bed never outlives it.
operator_kubeconfig() {
  local token
  # The API audience explicitly: the bed's default audiences include kube2hadoop, which only
  # kubelets may mint for (iddecorator's tokens webhook).
  token=$(kubectl_admin -n kubeflow create token "$NAME" --duration=8760h \
    --audience https://kubernetes.default.svc.cluster.local)
  umask 077
  cat >"$DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$APISERVER", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: $NAME
  user: {token: "$token"}
contexts:
- {name: $NAME, context: {cluster: e2e, user: $NAME}}
current-context: $NAME
KC
  umask 022
}

# RBAC as shipped (the module's ClusterRole, with the binding its kustomization namespaces)
# and the webhook Secret the rotator expects to find.
apply_objects() {
  kubectl_admin apply -f "$TRAINING_OPERATOR_DIR/rbac/role.yaml" \
    -f "$E2E_DIR/cluster/training-operator/rbac-binding.yaml" >/dev/null
  local p=$DIR/pki
  kubectl_admin -n kubeflow create secret generic "$SECRET" --from-file=ca.crt="$p/ca.crt" \
    --from-file=ca.key="$p/ca.key" --from-file=tls.crt="$p/tls.crt" \
    --from-file=tls.key="$p/tls.key" --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
}

# The module's ValidatingWebhookConfiguration with its kustomize patch (the name the rotator
# looks for) and each Service reference turned into a loopback url.
register_webhook() {
  kubectl_admin create --dry-run=client -o json -f "$TRAINING_OPERATOR_DIR/webhook/manifests.yaml" |
    python3 "$E2E_DIR/cluster/training-operator/webhook.py" "$VWC" \
      "https://127.0.0.1:$TRAINING_OPERATOR_WEBHOOK_PORT" "$DIR/pki/ca.crt" >"$DIR/webhook.yaml"
  kubectl_admin apply -f "$DIR/webhook.yaml" >/dev/null
}

do_start() {
  [ -x "$BIN" ] || die "no training operator at $BIN: run e2e/scripts/build.sh"
  mkdir -p "$DIR" "$STATE/pids" "$STATE/logs"
  if pid_alive "$PIDFILE"; then
    log "$NAME already running (pid $(cat "$PIDFILE"))"
  else
    webhook_pki
    operator_kubeconfig
    apply_objects
    log "starting $NAME $TRAINING_OPERATOR_VERSION"
    setsid env TMPDIR="$DIR/tmp" MY_POD_NAMESPACE=kubeflow KUBECONFIG="$DIR/kubeconfig" \
      "$BIN" --kubeconfig "$DIR/kubeconfig" \
      --metrics-bind-address "127.0.0.1:$TRAINING_OPERATOR_METRICS_PORT" \
      --health-probe-bind-address "127.0.0.1:$TRAINING_OPERATOR_PROBE_PORT" \
      --webhook-server-port "$TRAINING_OPERATOR_WEBHOOK_PORT" --zap-log-level info \
      >>"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  # Ready once its certs are in place, its CA injected and its webhook server listening.
  local deadline=$((SECONDS + 120))
  until curl -fsS --max-time 2 "http://127.0.0.1:$TRAINING_OPERATOR_PROBE_PORT/readyz" >/dev/null 2>&1; do
    pid_alive "$PIDFILE" || die_component "$NAME (exited)" "$LOGFILE"
    ((SECONDS < deadline)) || die_component "$NAME (not ready after 120s)" "$LOGFILE"
    sleep 0.5
  done
  # Registered once it serves: its failurePolicy is Fail.
  register_webhook
}

case ${1:-} in
start) do_start ;;
stop) stop_pid "$PIDFILE"; remove_operator_global_certs; log "$NAME stopped" ;;
*) die "usage: $0 start|stop" ;;
esac
