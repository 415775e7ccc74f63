#!/usr/bin/env bash
# Starts or stops iddecorator on the test bed; the e2e suite calls it to take the webhook away
# and bring it back. `start` also (re)registers the webhook configurations, which stay in place
# on `stop` so that failurePolicy=Fail can be observed.
# usage: iddecorator.sh start|stop|restart
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -s "$STATE/ports" ] || die "no test bed in $STATE: run e2e/scripts/up.sh first"
# shellcheck source=/dev/null
source "$STATE/ports"
PKI=$STATE/pki
PIDFILE=$STATE/pids/iddecorator.pid
LOGFILE=$STATE/logs/iddecorator.log
BIN=${IDDECORATOR_BIN:-$REPO_DIR/target/debug/iddecorator}
# The bed's policy: injection as the real node runs it (our images, never pulled; the token
# service the node's pods reach at the bridge address, with the bed's CA). A policy written
# into the bed (the demo writes one naming its token service) wins.
POLICY=$STATE/bed-policy.yaml
[ ! -f "$STATE/iddecorator-policy.yaml" ] || POLICY=$STATE/iddecorator-policy.yaml

write_bed_policy() {
  cat >"$STATE/bed-policy.yaml" <<YAML
# Written by e2e/scripts/iddecorator.sh.
injection:
  image: docker.io/kube2hadoop/init-fetcher:e2e
  imagePullPolicy: Never
  tokenServiceUrl: https://${K2H_E2E_NODE_GATEWAY:-10.244.0.1}:8443
  caPemFile: $PKI/ca.crt
  deadline: 2m
YAML
}

# The kubeconfig iddecorator reads pods with (exec/attach/port-forward checks), as its own
# service account, bound by the manifests' RBAC.
write_iddecorator_kubeconfig() {
  write_kubeconfig "$STATE/iddecorator.kubeconfig" iddecorator \
    "$PKI/iddecorator-client.crt" "$PKI/iddecorator-client.key"
  "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=20s \
    apply -f "$REPO_DIR/manifests/base/iddecorator-rbac.yaml" >/dev/null
}

do_start() {
  [ -s "$PKI/iddecorator-client.crt" ] && [ -s "$PKI/stamp.key" ] || "$E2E_DIR/scripts/pki.sh"
  write_iddecorator_kubeconfig
  write_bed_policy
  if [ ! -x "$BIN" ]; then
    log "building iddecorator"
    (cd "$REPO_DIR" && cargo build -q -p iddecorator)
  fi
  if ! pid_alive "$PIDFILE"; then
    local args=(--listen "127.0.0.1:$IDDECORATOR_PORT" --tls-cert-file "$PKI/iddecorator.crt"
      --tls-key-file "$PKI/iddecorator.key" --kubeconfig "$STATE/iddecorator.kubeconfig"
      --stamp-key-file "$PKI/stamp.key"
      --log-format json)
    args+=(--config "$POLICY")
    log "starting iddecorator on 127.0.0.1:$IDDECORATOR_PORT"
    mkdir -p "$STATE/pids" "$STATE/logs"
    setsid "$BIN" "${args[@]}" >>"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 --cacert "$PKI/ca.crt" \
    "https://127.0.0.1:$IDDECORATOR_PORT/readyz" >/dev/null 2>&1; do
    pid_alive "$PIDFILE" || die_component "iddecorator (exited)" "$LOGFILE"
    ((SECONDS < deadline)) || die_component "iddecorator (not ready after 60s)" "$LOGFILE"
    sleep 0.5
  done
  # Register only once it answers: with failurePolicy=Fail an absent webhook blocks pods.
  sed -e "s/@PORT@/$IDDECORATOR_PORT/g" -e "s/@CA_BUNDLE@/$(base64 -w0 "$PKI/ca.crt")/g" \
    "$E2E_DIR/cluster/webhooks.yaml.tmpl" >"$STATE/webhooks.yaml"
  "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=20s \
    apply -f "$STATE/webhooks.yaml" >/dev/null
}

case ${1:-} in
start) do_start ;;
stop) stop_pid "$PIDFILE"; log "iddecorator stopped" ;;
restart) stop_pid "$PIDFILE"; do_start ;;
*) die "usage: $0 start|stop|restart" ;;
esac
