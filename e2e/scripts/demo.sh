#!/usr/bin/env bash
# `make demo`: the whole flow on one machine. Installs what it needs, builds the binaries and
# images, starts the local control plane with its real node (kubelet + containerd), the Kerberized
# HDFS, slapd, token-service (where the node's pods reach it) and iddecorator (injecting the
# fetcher), then submits examples/ as alice: her pods really run, the injected fetcher gets her
# tokens, and the stock Hadoop client in her container writes a file to /user/alice and reads it
# back. Then bob submits a pod that claims to be alice, and is refused. Idempotent: parts already
# running are reused.
# `demo.sh down` (`make demo-down`) stops what the demo started and leaves the rest as it was.
# usage: demo.sh [up|down]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DEMO=$STATE/demo
PKI=$STATE/pki
BIN=${K2H_DEMO_BIN:-$REPO_DIR/target/debug}
NS=team-a
TOTAL=9
# Where the real node's pods reach this machine, and the token service there (node.sh, pki.sh).
GATEWAY=${K2H_E2E_NODE_GATEWAY:-10.244.0.1}
LISTEN=$GATEWAY:8443
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
  # The images the real node runs (the fetcher's among them); imported by node.sh.
  "$E2E_DIR/scripts/images.sh"
}

do_cluster() {
  if cluster_up; then
    echo "control plane already running: reused"
  else
    mark_started cluster
    "$E2E_DIR/scripts/up.sh"
  fi
  [ -s "$STATE/node/ports" ] ||
    die "the bed runs without its real node (K2H_E2E_REAL_NODE=0?): the demo runs real pods; make e2e-down, then make demo as root"
  # A running bed gets the images just built.
  "$E2E_DIR/scripts/node.sh" import
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

token_service_config() {
  local ldap_env=$STATE/ldap/env
  # shellcheck source=/dev/null
  source "$ldap_env"
  jq --arg url "$K2H_LDAP_URL" --arg dn "$K2H_LDAP_BIND_DN" --arg pw "$K2H_LDAP_BIND_PASSWORD_FILE" \
    --arg base "$K2H_LDAP_BASE_DN" '{
      # Tokens named after the NameNode as the pods reach it, so their client selects them.
      nameservices: [.pod_namenode_rpc as $pod | .nameservices | to_entries[] | {
        name: (.value.name // "nn\(.key)"),
        namenodes: [.value.namenodes[] | {http, rpc: (if $pod then $pod else .rpc end)}]}],
      kerberos: {principal: .service_principal, keytab: .service_keytab, krb5Conf: .krb5_conf},
      ldap: {url: $url, bindDn: $dn, bindPasswordFile: $pw, baseDn: "ou=people,\($base)",
        groupBaseDn: "ou=groups,\($base)", allowedGroup: "hadoop-users"}
    }' "$STATE/hadoop/cluster.json" >"$DEMO/token-service.yaml.new"
}

token_service_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" "https://$LISTEN/readyz"
}

do_token_service() {
  token_service_config
  local pidfile=$DEMO/token-service.pid log=$DEMO/token-service.log
  # A running service with the same configuration is reused; a changed one is restarted.
  if pid_alive "$pidfile" && cmp -s "$DEMO/token-service.yaml.new" "$DEMO/token-service.yaml"; then
    echo "token-service already running: reused"
  else
    stop_pid "$pidfile"
    mv "$DEMO/token-service.yaml.new" "$DEMO/token-service.yaml"
    setsid "$BIN/token-service" --config "$DEMO/token-service.yaml" \
      --listen "$LISTEN" \
      --tls-cert-file "$PKI/token-service-node.crt" --tls-key-file "$PKI/token-service-node.key" \
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

# The bed's own policy already injects the fetcher image, pointed at $LISTEN with the bed's CA
# (iddecorator.sh); a policy an older demo wrote is taken back.
do_iddecorator() {
  if [ -f "$STATE/iddecorator-policy.yaml" ] || ! pid_alive "$STATE/pids/iddecorator.pid"; then
    rm -f "$STATE/iddecorator-policy.yaml"
    IDDECORATOR_BIN=$BIN/iddecorator "$E2E_DIR/scripts/iddecorator.sh" restart
  else
    echo "iddecorator already running with the bed's policy: reused"
  fi
  cat "$STATE/bed-policy.yaml"
}

# pod_of LABEL_SELECTOR: the newest pod matching it.
pod_of() {
  kc --context admin -n "$NS" get pods -l "$1" --sort-by=.metadata.creationTimestamp \
    -o jsonpath='{.items[-1:].metadata.name}' 2>/dev/null
}

# examples/ through the bed's overlay (e2e/cluster/examples: our Hadoop client image, the real
# node, the bed's Hadoop config), as alice. Waits until her reader read back what it wrote and
# her Job finished.
do_submit() {
  kc --context admin -n "$NS" create configmap hadoop-conf \
    --from-file="$(jq -r .pod_hadoop_conf_dir "$STATE/hadoop/cluster.json")" \
    --dry-run=client -o yaml | kc --context admin apply -f -
  # Submitting again is a new submission: a finished Job cannot be changed, so it goes first.
  kc --context alice -n "$NS" delete job hdfs-report --ignore-not-found --wait=true
  "$KUBECTL" kustomize --load-restrictor=LoadRestrictionsNone "$E2E_DIR/cluster/examples" |
    kc --context alice apply -f -
  local deadline=$((SECONDS + 180)) pod="" said=""
  until grep -q "^hello from" <<<"$said"; do
    ((SECONDS < deadline)) || {
      kc --context admin -n "$NS" describe pod "${pod:-none}" || true
      die "alice's hdfs-reader pod did not read its file within 180s (token-service log: $DEMO/token-service.log)"
    }
    sleep 1
    pod=$(pod_of app=hdfs-reader)
    [ -n "$pod" ] && said=$(kc --context admin -n "$NS" logs "$pod" -c reader 2>/dev/null || true)
  done
  echo "$pod" >"$DEMO/pod"
  printf '%s\n' "$said" >"$DEMO/reader.txt"
  kc --context admin -n "$NS" wait --for=condition=Complete --timeout=120s job/hdfs-report ||
    die "alice's Job hdfs-report did not complete: $(kc --context admin -n "$NS" logs job/hdfs-report 2>&1 | tail -5)"
  kc --context admin -n "$NS" logs job/hdfs-report >"$DEMO/job.txt"
  kc --context admin -n "$NS" get pod "$pod" -o jsonpath='{.metadata.annotations.kube2hadoop\.io/user}' \
    >"$DEMO/reader-user.txt"
}

# bob's pod says it is alice's (the annotation) and asks to run as alice: iddecorator stamps
# bob, the token service refuses bob acting as alice, the fetcher ends with the reason and the
# app never starts.
do_forgery() {
  kc --context admin -n "$NS" delete pod forged-by-bob --ignore-not-found --wait=true
  kc --context bob -n "$NS" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: forged-by-bob
  annotations:
    kube2hadoop.io/user: alice
    kube2hadoop.io/run-as: alice
    kube2hadoop.io/inject: "true"
spec:
  restartPolicy: Never
  nodeSelector: {kube2hadoop.io/real-node: "true"}
  tolerations: [{key: kube2hadoop.io/real-node, operator: Exists, effect: NoSchedule}]
  securityContext: {runAsUser: 1000, runAsNonRoot: true}
  containers:
  - {name: app, image: docker.io/kube2hadoop-e2e/busybox:e2e, imagePullPolicy: Never,
     command: [sh, -c, 'cat \$HADOOP_TOKEN_FILE_LOCATION']}
YAML
  local deadline=$((SECONDS + 120)) code=""
  until [ -n "$code" ]; do
    ((SECONDS < deadline)) || die "bob's pod neither failed nor ran within 120s"
    sleep 1
    code=$(kc --context admin -n "$NS" get pod forged-by-bob \
      -o jsonpath='{.status.initContainerStatuses[0].state.terminated.exitCode}')
  done
  [ "$code" = 2 ] || die "bob's fetcher ended with exit $code, not 2 (refused)"
  kc --context admin -n "$NS" get pod forged-by-bob \
    -o jsonpath='{.metadata.annotations.kube2hadoop\.io/user}{"\n"}{.status.phase}{"\n"}{.status.initContainerStatuses[0].state.terminated.message}' \
    >"$DEMO/forgery.txt"
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
  step "running examples/ as alice on the real node" do_submit
  step "bob's pod claiming to be alice" do_forgery
  local pod
  pod=$(cat "$DEMO/pod")
  # shellcheck source=/dev/null
  source "$STATE/env"
  local forged_user forged_reason
  { read -r forged_user; read -r _phase; forged_reason=$(cat); } <"$DEMO/forgery.txt"
  # The fetcher logs JSON: its error line is the reason.
  forged_reason=$(jq -rR 'fromjson? | select(.level == "ERROR") | .message' <<<"$forged_reason")
  cat <<EOF

alice's pod $pod (kube2hadoop.io/user: $(cat "$DEMO/reader-user.txt")) ran on node k2h-node: the
injected fetcher got her tokens, and the stock Hadoop client wrote /user/alice/hello-from-$pod
and read it back:
$(sed 's/^/  /' "$DEMO/reader.txt")
alice's Job hdfs-report: $(cat "$DEMO/job.txt")

bob's pod forged-by-bob claimed kube2hadoop.io/user: alice and run-as alice. iddecorator stamped
"$forged_user"; the token service refused, the fetcher stopped the pod before its app started:
$(fold -s -w 94 <<<"$forged_reason" | sed 's/^/  /' | head -n 4)

demo ready in $((SECONDS - t0))s. Look around:
  export KUBECONFIG=$KUBECONFIG     # contexts: admin, alice, bob
  export PATH=$K8S_BIN:\$PATH       # the bed's kubectl
  kubectl --context alice get deploy,jobs,pods -n $NS -o wide
  kubectl --context alice describe pod $pod -n $NS        # the injected fetcher, volumes, env
  kubectl --context alice logs $pod -n $NS -c kube2hadoop-fetcher
  kubectl --context bob describe pod forged-by-bob -n $NS
  token-service audit log:  $DEMO/audit.log   (service log: $DEMO/token-service.log)
  token-service metrics:    curl --cacert $PKI/ca.crt https://$LISTEN/metrics
  iddecorator metrics:      curl --cacert $PKI/ca.crt https://127.0.0.1:$K2H_E2E_IDDECORATOR_PORT/metrics
  iddecorator log:          $STATE/logs/iddecorator.log   (policy: $STATE/bed-policy.yaml)
  node logs:                $STATE/logs/kubelet.log, $STATE/logs/containerd.log
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
    kc --context admin -n "$NS" delete pod forged-by-bob --ignore-not-found --wait=false || true
    kc --context admin -n "$NS" delete configmap hadoop-conf --ignore-not-found || true
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
