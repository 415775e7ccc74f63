#!/usr/bin/env bash
# `make demo`: the whole flow on one machine, as local processes. Installs what it needs, builds,
# starts the local control plane, the Kerberized HDFS, slapd, token-service and iddecorator (with
# injection pointing at that token service), submits examples/ as alice, runs init-fetcher as her
# pod and lists /user/alice with the file it wrote. Idempotent: parts already running are reused.
# `demo.sh down` (`make demo-down`) stops what the demo started and leaves the rest as it was.
# usage: demo.sh [up|down]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DEMO=$STATE/demo
PKI=$STATE/pki
BIN=${K2H_DEMO_BIN:-$REPO_DIR/target/debug}
NS=team-a
TOTAL=9
n=0

kc() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --request-timeout=20s "$@"; }

# step LABEL CMD...: run CMD with its output in a log; print progress and time; on failure name
# the step, show the end of its log (which holds the failing component's log tail) and stop.
step() {
  local label=$1 t0=$EPOCHREALTIME rc=0; shift
  n=$((n + 1))
  local out=$DEMO/logs/$n-${label//[^a-zA-Z0-9]/-}.log
  mkdir -p "$DEMO/logs"
  printf '[%d/%d] %s ... ' "$n" "$TOTAL" "$label"
  ("$@") >"$out" 2>&1 </dev/null || rc=$?
  local took
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
  if ((rc == 0)); then
    printf 'ok (%ss)\n' "$took"
  else
    printf 'FAILED (%ss, exit %d)\n' "$took" "$rc"
    printf '\ndemo: step %d/%d "%s" failed; last lines of %s:\n' "$n" "$TOTAL" "$label" "$out"
    tail -n 40 "$out" | sed 's/^/  | /'
    echo
    echo "Fix and run 'make demo' again (finished steps are reused); 'make demo-down' stops it."
    exit 1
  fi
}

# started PART: the demo brought PART up, so `down` takes it down again.
mark_started() { grep -qx "$1" "$DEMO/started" 2>/dev/null || echo "$1" >>"$DEMO/started"; }
was_started() { grep -qx "$1" "$DEMO/started" 2>/dev/null; }

cluster_up() {
  [ -s "$STATE/env" ] && pid_alive "$STATE/pids/kube-apiserver.pid" &&
    kc --context admin get --raw /readyz >/dev/null 2>&1
}

# --- steps --------------------------------------------------------------------------------------

do_deps() { "$E2E_DIR/scripts/install-deps.sh"; }

do_build() {
  cd "$REPO_DIR"
  cargo build -p iddecorator -p token-service -p init-fetcher --bins
}

do_cluster() {
  if cluster_up; then
    echo "control plane already running: reused"
  else
    mark_started cluster
    "$E2E_DIR/scripts/up.sh"
  fi
}

do_hadoop() {
  # The flags the e2e suite uses, so a running bed is shared rather than restarted.
  if pid_alive "$STATE/hadoop/harness.pid" && [ -s "$STATE/hadoop/cluster.json" ]; then
    echo "Hadoop bed already running: reused"
  else
    mark_started hadoop
  fi
  "$E2E_DIR/scripts/hadoop-up.sh" --kms
}

do_ldap() {
  if pid_alive "$STATE/ldap/slapd.pid"; then echo "slapd already running: reused"; else mark_started ldap; fi
  "$E2E_DIR/scripts/ldap-up.sh"
}

# A serving certificate from the bed's CA, so pods (and we) trust it with $PKI/ca.crt.
token_service_cert() {
  [ -s "$DEMO/tls.crt" ] && openssl verify -CAfile "$PKI/ca.crt" "$DEMO/tls.crt" >/dev/null 2>&1 &&
    return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DEMO/tls.key" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$DEMO/tls.ext"
  openssl req -new -key "$DEMO/tls.key" -subj "/CN=token-service" |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 7 \
      -extfile "$DEMO/tls.ext" -out "$DEMO/tls.crt" 2>/dev/null
}

token_service_config() {
  local ldap_env=$STATE/ldap/env
  # shellcheck source=/dev/null
  source "$ldap_env"
  jq --arg url "$K2H_LDAP_URL" --arg dn "$K2H_LDAP_BIND_DN" --arg pw "$K2H_LDAP_BIND_PASSWORD_FILE" \
    --arg base "$K2H_LDAP_BASE_DN" '{
      nameservices: [.nameservices | to_entries[] | {
        name: (.value.name // "nn\(.key)"),
        namenodes: [.value.namenodes[] | {http, rpc}]}],
      kerberos: {principal: .service_principal, keytab: .service_keytab, krb5Conf: .krb5_conf},
      ldap: {url: $url, bindDn: $dn, bindPasswordFile: $pw, baseDn: "ou=people,\($base)",
        groupBaseDn: "ou=groups,\($base)", allowedGroup: "hadoop-users"}
    }' "$STATE/hadoop/cluster.json" >"$DEMO/token-service.yaml.new"
}

token_service_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" "https://127.0.0.1:$(cat "$DEMO/port")/readyz"
}

do_token_service() {
  [ -s "$DEMO/port" ] || free_port >"$DEMO/port"
  token_service_cert
  token_service_config
  local pidfile=$DEMO/token-service.pid log=$DEMO/token-service.log
  # A running service with the same configuration is reused; a changed one is restarted.
  if pid_alive "$pidfile" && cmp -s "$DEMO/token-service.yaml.new" "$DEMO/token-service.yaml"; then
    echo "token-service already running: reused"
  else
    stop_pid "$pidfile"
    mv "$DEMO/token-service.yaml.new" "$DEMO/token-service.yaml"
    setsid "$BIN/token-service" --config "$DEMO/token-service.yaml" \
      --listen "127.0.0.1:$(cat "$DEMO/port")" \
      --tls-cert-file "$DEMO/tls.crt" --tls-key-file "$DEMO/tls.key" \
      --stamp-key-file "$PKI/stamp.key" \
      --kubeconfig "$STATE/kubeconfig" --kube-context admin \
      --namespace-selector "kubernetes.io/metadata.name in ($NS)" \
      --audit-log "$DEMO/audit.log" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  fi
  local deadline=$((SECONDS + 120))
  until token_service_ready >/dev/null 2>&1; do
    pid_alive "$pidfile" || die_component "token-service (exited)" "$log"
    ((SECONDS < deadline)) || die_component "token-service (not ready after 120s)" "$log"
    sleep 0.5
  done
}

# iddecorator.sh uses $STATE/iddecorator-policy.yaml when present: injection names our service.
do_iddecorator() {
  local policy=$STATE/iddecorator-policy.yaml
  cat >"$policy.new" <<YAML
# Written by e2e/scripts/demo.sh; removed by \`make demo-down\`.
injection:
  tokenServiceUrl: https://127.0.0.1:$(cat "$DEMO/port")
  caConfigMap: {name: kube2hadoop-ca, key: ca.crt}
  deadline: 2m
YAML
  kc --context admin -n "$NS" create configmap kube2hadoop-ca --from-file=ca.crt="$PKI/ca.crt" \
    --dry-run=client -o yaml | kc --context admin apply -f -
  if cmp -s "$policy.new" "$policy" && pid_alive "$STATE/pids/iddecorator.pid"; then
    rm -f "$policy.new"
    echo "iddecorator already running with the demo policy: reused"
  else
    mv "$policy.new" "$policy"
    IDDECORATOR_BIN=$BIN/iddecorator "$E2E_DIR/scripts/iddecorator.sh" restart
  fi
}

do_submit() {
  kc --context alice apply -f "$REPO_DIR/examples/deployment.yaml"
  kc --context alice apply -f "$REPO_DIR/examples/job.yaml"
  if kc --context admin get crd tfjobs.kubeflow.org >/dev/null 2>&1; then
    kc --context alice apply -f "$REPO_DIR/examples/tfjob.yaml"
  else
    echo "no TFJob CRD: examples/tfjob.yaml skipped"
  fi
  local deadline=$((SECONDS + 90)) pod=""
  until [ -n "$pod" ]; do
    pod=$(kc --context admin -n "$NS" get pods -l app=hdfs-reader \
      --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    ((SECONDS < deadline)) || die "no running hdfs-reader pod after 90s (kwok log: $STATE/logs/kwok.log)"
    [ -n "$pod" ] || sleep 1
  done
  echo "$pod" >"$DEMO/pod"
  echo "pod $pod, injected init containers:"
  kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{range .spec.initContainers[*]}{.name} {.args}{"\n"}{end}'
  kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{.spec.initContainers[0].name}' |
    grep -qx kube2hadoop-fetcher || die "pod $pod was not injected (iddecorator log: $STATE/logs/iddecorator.log)"
}

# What kubelet would do for the injected pod: a projected token bound to it (audience
# kube2hadoop), minted as the pod's node (only kubelets may mint for that audience), then the
# fetcher with the injected arguments, on this machine.
do_fetch() {
  local pod uid sa node
  pod=$(cat "$DEMO/pod")
  uid=$(kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{.metadata.uid}')
  sa=$(kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{.spec.serviceAccountName}')
  node=$(kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{.spec.nodeName}')
  mkdir -p "$DEMO/pod-fs/sa" "$DEMO/pod-fs/hadoop"
  (umask 077 && kc --context admin --client-certificate "$PKI/node-$node.crt" \
    --client-key "$PKI/node-$node.key" -n "$NS" create token "${sa:-default}" --audience kube2hadoop \
    --bound-object-kind Pod --bound-object-name "$pod" --bound-object-uid "$uid" --duration 10m \
    >"$DEMO/pod-fs/sa/token")
  "$BIN/init-fetcher" fetch --url "https://127.0.0.1:$(cat "$DEMO/port")" --ca-file "$PKI/ca.crt" \
    --sa-token-file "$DEMO/pod-fs/sa/token" --out "$DEMO/pod-fs/hadoop/token" --deadline 2m \
    || die_component "init-fetcher" "$DEMO/token-service.log"
  "$BIN/init-fetcher" print "$DEMO/pod-fs/hadoop/token" >"$DEMO/print.txt"
  HADOOP_TOKEN_FILE_LOCATION=$DEMO/pod-fs/hadoop/token "$E2E_DIR/scripts/hadoop-client.sh" \
    ls /user/alice >"$DEMO/ls.txt"
}

# --- up / down ----------------------------------------------------------------------------------

up() {
  local t0=$SECONDS
  mkdir -p "$DEMO"
  echo "kube2hadoop demo (logs: $DEMO/logs)"
  step "installing dependencies" do_deps
  step "building the binaries" do_build
  step "starting the control plane" do_cluster
  step "starting Kerberized HDFS" do_hadoop
  step "starting slapd" do_ldap
  step "starting token-service" do_token_service
  step "starting iddecorator with injection" do_iddecorator
  step "submitting examples/ as alice" do_submit
  step "fetching tokens as alice's pod" do_fetch
  local port pod
  port=$(cat "$DEMO/port")
  pod=$(cat "$DEMO/pod")
  # shellcheck source=/dev/null
  source "$STATE/env"
  cat <<EOF

init-fetcher print $DEMO/pod-fs/hadoop/token:
$(sed 's/^/  /' "$DEMO/print.txt")

hadoop fs -ls /user/alice with HADOOP_TOKEN_FILE_LOCATION=$DEMO/pod-fs/hadoop/token:
$(sed 's/^/  /' "$DEMO/ls.txt")

demo ready in $((SECONDS - t0))s. Look around:
  export KUBECONFIG=$KUBECONFIG     # contexts: admin, alice, bob
  export PATH=$K8S_BIN:\$PATH       # the bed's kubectl
  kubectl --context alice get deploy,jobs,tfjobs,pods -n $NS
  kubectl --context alice get pods -n $NS -o yaml      # kube2hadoop.io/user, injected fetcher
  kubectl --context alice get pod $pod -n $NS -o jsonpath='{.spec.initContainers[0].args}'
  $BIN/init-fetcher print $DEMO/pod-fs/hadoop/token
  token-service audit log:  $DEMO/audit.log   (service log: $DEMO/token-service.log)
  token-service metrics:    curl --cacert $PKI/ca.crt https://127.0.0.1:$port/metrics
  iddecorator metrics:      curl --cacert $PKI/ca.crt https://127.0.0.1:$K2H_E2E_IDDECORATOR_PORT/metrics
  iddecorator log:          $STATE/logs/iddecorator.log   (policy: $STATE/iddecorator-policy.yaml)
  Hadoop bed:               $STATE/hadoop/cluster.json, NameNode audit $STATE/hadoop/audit.log
Stop: make demo-down
EOF
}

down() {
  if [ ! -d "$DEMO" ]; then
    log "no demo state in $DEMO: nothing to stop"
    return 0
  fi
  # down.sh removes $DEMO with the rest of the bed's state: read what to stop first.
  local cluster="" hadoop="" ldap=""
  was_started cluster && cluster=1
  was_started hadoop && hadoop=1
  was_started ldap && ldap=1
  stop_pid "$DEMO/token-service.pid"
  log "token-service stopped"
  rm -f "$STATE/iddecorator-policy.yaml"
  if [ -n "$cluster" ]; then
    "$E2E_DIR/scripts/down.sh"
  elif cluster_up; then
    # The bed was there before the demo: take back only what the demo added.
    kc --context alice delete --ignore-not-found --wait=false \
      -f "$REPO_DIR/examples/deployment.yaml" -f "$REPO_DIR/examples/job.yaml" || true
    kc --context alice delete --ignore-not-found --wait=false -f "$REPO_DIR/examples/tfjob.yaml" \
      2>/dev/null || true
    kc --context admin -n "$NS" delete configmap kube2hadoop-ca --ignore-not-found || true
    "$E2E_DIR/scripts/iddecorator.sh" restart
    log "iddecorator back on its default policy"
  fi
  if [ -n "$hadoop" ]; then "$E2E_DIR/scripts/hadoop-down.sh"; fi
  if [ -n "$ldap" ]; then "$E2E_DIR/scripts/ldap-down.sh"; fi
  rm -rf "$DEMO"
  log "demo stopped"
}

case ${1:-up} in
up) up ;;
down) down ;;
*) die "usage: $0 [up|down]" ;;
esac
