#!/usr/bin/env bash
# `make bench-token-service`: token-service (release) at 100 and 1,000 pods (10,000 with
# BENCH_TS_10K=1) on the control plane of `make e2e-up` (a running one is used and left up;
# else one is brought up and down) and a private Kerberized HDFS,
# then init-fetcher's size and start-to-file time. Writes bench/results/token-service.json and
# token-service.md. Nothing here asserts on timing.
#
# Everything it creates lives in namespaces bench-ts and bench-ts-ledger and on fake nodes
# bench-ts-node-* (tainted, podCIDRs 127.101.0.0/16 in /23s, so nobody else's pods land there
# and ours never take the bed's 127.100.x addresses); all of it is deleted at the end.
#
# Per step N: scale the Deployment to N while the previous service runs (the watch path: time
# until its index holds N pods, its CPU); start a fresh service with an empty ledger (the list
# path: time to ready); every pod asks at once from its own IP (cold burst: DT calls the
# NameNode saw, KDC exchanges from KRB5_TRACE, wall time, errors); 500 workers ask again for
# BENCH_TS_DURATION (answers from the ledger: p50/p99, requests/s); RSS and VmHWM. At 1,000
# pods the same again with bound service-account tokens (minted first, not timed).
#
# Sustained fetching (issue 9): BENCH_TS_FETCH_WORKLOADS Deployments (4) of
# BENCH_TS_FETCH_PODS pods in all (500), one client per pod, all starting together, each
# fetching back to back for BENCH_TS_FETCH_DURATION (60s), in each mode of BENCH_TS_FETCH_MODES
# (ip,sa) against a fresh service: errors, latency, CPU, RSS, the NameNode's DT calls against
# the number of workloads, and whether each workload's pods all got the same credentials.
#
# Environment: BENCH_TS_STEPS (100,1000; "none" skips the steps), BENCH_TS_10K (0; 1 adds
# 10000), BENCH_TS_SA_STEP (1000), BENCH_TS_CONCURRENCY (500), BENCH_TS_DURATION (5s),
# BENCH_TS_FETCH (1; 0 skips sustained fetching), BENCH_TS_SERVICE_ARGS (extra token-service
# flags, word-split, e.g. "--kube-timeout 300"), BENCH_FETCHER_RUNS (30; 0 skips the
# init-fetcher part), BENCH_MUSL (1: build init-fetcher for x86_64-unknown-linux-musl when
# that target is installed), BENCH_BUILD (1), BENCH_RESULTS (bench/results), K2H_E2E_STATE_DIR
# (the bed to use or bring up, as the e2e scripts; default e2e/.state), K2H_HADOOP_STATE for
# the private HDFS (/tmp/bench-hadoop, or $K2H_E2E_STATE_DIR/bench-hadoop; stopped at the end
# unless BENCH_TS_KEEP_HADOOP=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}
results=${BENCH_RESULTS:-$here/results}
steps=${BENCH_TS_STEPS:-100,1000}
[[ $steps == none ]] && steps=""
[[ ${BENCH_TS_10K:-0} == 1 ]] && steps+="${steps:+,}10000"
fetch=${BENCH_TS_FETCH:-1}
fetch_workloads=${BENCH_TS_FETCH_WORKLOADS:-4}
fetch_pods=${BENCH_TS_FETCH_PODS:-500}
fetch_duration=${BENCH_TS_FETCH_DURATION:-60s}
fetch_modes=${BENCH_TS_FETCH_MODES:-ip,sa}
fetcher_runs=${BENCH_FETCHER_RUNS:-30}
# Only the sustained fetch (make bench-fetchers): its own result files, the full ones stay.
out_name=${BENCH_TS_OUT:-token-service}
[[ -z $steps && $fetcher_runs == 0 && -z ${BENCH_TS_OUT:-} ]] && out_name=token-service-fetch
sa_step=${BENCH_TS_SA_STEP:-1000}
concurrency=${BENCH_TS_CONCURRENCY:-500}
duration=${BENCH_TS_DURATION:-5s}
export K2H_HADOOP_STATE=${K2H_HADOOP_STATE:-${K2H_E2E_STATE_DIR:+$K2H_E2E_STATE_DIR/bench-hadoop}}
export K2H_HADOOP_STATE=${K2H_HADOOP_STATE:-/tmp/bench-hadoop}
ns=bench-ts
ledger_ns=bench-ts-ledger
mkdir -p "$results"
started=$SECONDS

die() { echo "bench-token-service: $*" >&2; exit 1; }
state=${K2H_E2E_STATE_DIR:-$root/e2e/.state}
bed_up() {
  [[ -s $state/env ]] || return 1
  # shellcheck source=/dev/null
  (source "$state/env" && curl -fsS --max-time 3 --cacert "$K2H_E2E_CA" \
    --cert "$K2H_E2E_PKI/admin.crt" --key "$K2H_E2E_PKI/admin.key" \
    "$K2H_E2E_APISERVER/readyz" >/dev/null)
}
# A running bed (shared) is used and left running; one this script brings up it takes down.
brought_up=""
if ! bed_up; then
  echo "bench-token-service: bringing the test bed up" >&2
  brought_up=1
  "$root/e2e/scripts/up.sh"
fi
# shellcheck source=/dev/null
source "$state/env"
kubectl() { "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context admin "$@"; }

[[ ${BENCH_BUILD:-1} == 0 ]] || "$cargo" build --release -p token-service -p init-fetcher -p loadgen
bin=$root/target/release
loadgen=$bin/loadgen

work=$(mktemp -d)
shm=""
service_pid=""
stop_service() {
  if [[ -n $service_pid ]] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$service_pid" 2>/dev/null || true
  fi
  service_pid=""
}
cleanup() {
  stop_service
  echo "bench-token-service: removing namespaces $ns, $ledger_ns and nodes bench-ts-node-*" >&2
  kubectl delete namespace "$ns" "$ledger_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  # The Deployment's pods go with the namespace; wait for them (bounded) before their nodes.
  for _ in $(seq 120); do
    [[ $(kubectl get pods -n "$ns" --no-headers 2>/dev/null | wc -l) == 0 ]] && break
    sleep 2
  done
  kubectl delete nodes -l k2h-bench=ts --ignore-not-found --wait=false >/dev/null 2>&1 || true
  [[ ${BENCH_TS_KEEP_HADOOP:-0} == 1 ]] || "$root/e2e/scripts/hadoop-down.sh" >/dev/null 2>&1 || true
  [[ -z $brought_up ]] || "$root/e2e/scripts/down.sh" || true
  rm -rf "$work" "${shm:-}"
}
trap cleanup EXIT

cluster=$("$root/e2e/scripts/hadoop-up.sh")
jq_c() { jq -r "$1" "$cluster"; }
audit_log=$(jq_c .audit_log)

# --- objects: namespaces, alice's rights, fake nodes, the Deployment (replicas 0) ---
# A previous run's namespaces may still be terminating (deleted without waiting): wait them out.
for _ in $(seq 150); do
  [[ $(kubectl get namespace "$ns" "$ledger_ns" -o jsonpath='{.items[*].status.phase}' 2>/dev/null) == *Terminating* ]] || break
  sleep 2
done
max_step=$(tr ',' '\n' <<<"$steps" | sort -n | tail -1)
[[ $fetch == 1 ]] || fetch_pods=0
nodes=$(((${max_step:-0} + fetch_pods) / 400 + 1))
{
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {k2h-bench: ts}}
---
apiVersion: v1
kind: Namespace
metadata: {name: $ledger_ns, labels: {k2h-bench: ts}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edit, namespace: $ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
EOF
  for ((i = 0; i < nodes; i++)); do
    # /23: 510 addresses for kwok's 500-pod capacity.
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: bench-ts-node-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, k2h-bench: ts, kubernetes.io/hostname: bench-ts-node-$i, kubernetes.io/os: linux}
spec:
  podCIDR: 127.101.$((2 * i)).0/23
  podCIDRs: [127.101.$((2 * i)).0/23]
  taints: [{key: k2h-bench, value: ts, effect: NoSchedule}]
EOF
  done
} | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Ready --timeout=60s node -l k2h-bench=ts >/dev/null
for _ in $(seq 60); do kubectl get serviceaccount default -n "$ns" >/dev/null 2>&1 && break; sleep 1; done
cat <<EOF | "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context alice apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench, namespace: $ns}
spec:
  replicas: 0
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      nodeSelector: {k2h-bench: ts}
      tolerations: [{key: k2h-bench, operator: Equal, value: ts, effect: NoSchedule}]
      automountServiceAccountToken: false
      containers: [{name: app, image: registry.invalid/app:1}]
EOF

# --- the service ---
"$loadgen" certs --dir "$work"
config=$work/config.yaml
# saTokenOrigin any: the bench's SA-token clients (loadgen, init-fetcher) run on this machine,
# not at the addresses of the kwok pods their tokens name.
jq '{nameservices: [.nameservices | to_entries[] | {name: (.value.name // "nn\(.key)"),
      namenodes: [.value.namenodes[] | {http, rpc}]}],
     kerberos: {principal: .service_principal, keytab: .service_keytab, krb5Conf: .krb5_conf},
     identityModes: ["sa-token", "ip"],
     saTokenOrigin: "any"}' \
  "$cluster" >"$config"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=https://127.0.0.1:$port
metric() { curl -s --max-time 5 --cacert "$work/ca.crt" "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
cpu_s() { awk '{sub(/.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / 100}' "/proc/$1/stat"; }
service_log=""
krb_trace=""

# start_service NAME [default-limits]: a fresh process with an empty ledger; sets service_pid,
# ready_s. Rate limits are lifted unless `default-limits` (per pod 30/min burst 5, per source
# address 10x that), so the phases measure the service, not its limiter.
start_service() {
  local limits=(--pod-rate 10000000 --pod-burst 100000) extra=()
  [[ ${2:-} == default-limits ]] && limits=()
  read -r -a extra <<<"${BENCH_TS_SERVICE_ARGS:-}"
  stop_service
  kubectl delete secrets,leases --all -n "$ledger_ns" >/dev/null 2>&1 || true
  service_log=$work/$1.log krb_trace=$work/$1.krb5trace
  local t0ns
  t0ns=$(date +%s%N)
  KRB5_TRACE=$krb_trace RUST_LOG=info "$bin/token-service" --config "$config" \
    --listen "127.0.0.1:$port" --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" \
    --stamp-key-file "$K2H_E2E_PKI/stamp.key" \
    --kubeconfig "$KUBECONFIG" --kube-context admin \
    --namespace-selector "kubernetes.io/metadata.name in ($ns)" --ledger-namespace "$ledger_ns" \
    --audit-log "$work/$1.audit" "${limits[@]}" "${extra[@]}" --log-format json \
    </dev/null >/dev/null 2>"$service_log" &
  service_pid=$!
  "$loadgen" wait-ready --url "$url/readyz" --ca "$work/ca.crt" --timeout 300s ||
    { tail -20 "$service_log" >&2; die "token-service not ready (log above)"; }
  ready_s=$(( ($(date +%s%N) - t0ns) / 1000000 ))
  ready_s=$(awk -v ms="$ready_s" 'BEGIN {printf "%.2f", ms / 1000}')
}

count() { local c; c=$(grep -c "$1" "$2" 2>/dev/null) || true; echo "${c:-0}"; }
dt_calls() { count 'cmd=getDelegationToken' "$audit_log"; }
# MIT krb5 traces each message to a KDC as "Sending request (N bytes) to REALM".
kdc_requests() { count 'Sending request' "$krb_trace"; }

# mint_tokens OUT [SELECTOR]: IP<TAB>bound SA token<TAB>workload label for every running pod
# matching SELECTOR (app=bench) (TokenRequest as the pod's node, as its kubelet would: only
# kubelets may mint for audience kube2hadoop; 8 at once).
mint_tokens() {
  kubectl get pods -n "$ns" -l "${2:-app=bench}" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.podIP} {.spec.nodeName} {.metadata.labels.workload}{"\n"}{end}' |
    # $1 = $1 drops the trailing blank a missing label leaves: xargs -L would join the lines.
    awk 'NF >= 4 {$1 = $1; print}' | xargs -P 8 -L 1 bash -c '
      body="{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"kube2hadoop\"],\"expirationSeconds\":3600,\"boundObjectRef\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"name\":\"$0\",\"uid\":\"$1\"}}}"
      tok=$(curl -s --max-time 10 --cacert "$K2H_E2E_CA" --cert "$K2H_E2E_PKI/node-$3.crt" --key "$K2H_E2E_PKI/node-$3.key" \
        -H "Content-Type: application/json" -X POST --data "$body" \
        "$K2H_E2E_APISERVER/api/v1/namespaces/'"$ns"'/serviceaccounts/default/token" | jq -r ".status.token // empty")
      [[ -n $tok ]] && printf "%s\t%s\t%s\n" "$2" "$tok" "${4:-}"' >"$1"
}

running_ips() {
  kubectl get pods -n "$ns" -l app=bench --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | grep -v '^$' >"$1"
}

# measure_mode STEP MODE PODFILE [default-limits]: cold burst then cached phase against a
# fresh service; with default-limits only the burst (what a Deployment meets out of the box).
measure_mode() {
  local n=$1 mode=$2 pods=$3 variant=${4:-} dt0 dt1 k0
  local name=$n-$mode${variant:+-$variant}
  start_service "svc-$name" "$variant"
  echo "step $n $mode: service ready in ${ready_s}s (initial list of $(metric kube2hadoop_indexed_pods) pods)"
  dt0=$(dt_calls)
  k0=$(kdc_requests)
  "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$pods" \
    --mode "$mode" --phase burst --pid "$service_pid" --label "$name-burst" \
    --out "$work/$name-burst.json"
  sleep 1 # the audit log is written by the NameNode asynchronously
  dt1=$(dt_calls)
  if [[ -z $variant ]]; then
    "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$pods" \
      --mode "$mode" --phase cached --concurrency "$concurrency" --duration "$duration" \
      --pid "$service_pid" --label "$name-cached" --out "$work/$name-cached.json"
  else
    echo null >"$work/$name-cached.json"
  fi
  jq -n --argjson n "$n" --arg mode "$mode${variant:+, $variant}" --slurpfile burst "$work/$name-burst.json" \
    --slurpfile cached "$work/$name-cached.json" --argjson ready "$ready_s" \
    --argjson dt "$((dt1 - dt0))" --argjson kdc "$(kdc_requests)" --argjson kdc0 "$k0" \
    --argjson acq "$(count 'acquired Kerberos credentials' "$service_log")" \
    --argjson rss "$(status_kib "$service_pid" VmRSS)" --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    --argjson indexed "$(v=$(metric kube2hadoop_indexed_pods); echo "${v:-null}")" \
    '{pods: $n, mode: $mode, ready_s: $ready, indexed_pods_cluster_wide: ($indexed // null),
      namenode_dt_calls_in_burst: $dt, kdc_requests_at_start: $kdc0, kdc_requests_total: $kdc,
      gss_acquisitions: $acq, rss_kib: $rss, vmhwm_kib: $hwm,
      burst: $burst[0], cached: $cached[0]}' >"$work/mode-$name.json"
}

# --- the steps ---
prev_pods=0
for n in $(tr ',' '\n' <<<"$steps" | sort -n); do
  # Watch path: the service started at the previous step (or now) sees the new pods arrive.
  [[ -n $service_pid ]] || start_service "svc-watch"
  cpu0=$(cpu_s "$service_pid")
  # The index holds every live pod with an address in the cluster (not only served
  # namespaces), other people's included: wait for the count to grow by what we add.
  base=$(metric kube2hadoop_indexed_pods)
  goal=$(( ${base:-0} + n - prev_pods ))
  t0=$(date +%s%N)
  "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context alice scale deployment/bench -n "$ns" \
    --replicas "$n" >/dev/null
  running_at="" indexed_at=""
  deadline=$((SECONDS + 60 + n / 5))
  while ((SECONDS < deadline)); do
    now=$(date +%s%N)
    if [[ -z $running_at ]] &&
      [[ $(kubectl get deployment bench -n "$ns" -o jsonpath='{.status.readyReplicas}') == "$n" ]]; then
      running_at=$now
    fi
    if [[ -z $indexed_at ]] && (( $(v=$(metric kube2hadoop_indexed_pods); echo "${v:-0}") >= goal )); then
      indexed_at=$now
    fi
    [[ -n $running_at && -n $indexed_at ]] && break
    sleep 0.5
  done
  [[ -n $running_at ]] || die "step $n: the Deployment did not get $n ready pods within $((60 + n / 5))s"
  [[ -n $indexed_at ]] ||
    echo "step $n: the index did not reach $goal pods within $((60 + n / 5))s (others' pods may have gone meanwhile)" >&2
  cpu1=$(cpu_s "$service_pid")
  ms_since() { if [[ -n $1 ]]; then echo $(( ($1 - t0) / 1000000 )); else echo null; fi; }
  jq -n --argjson n "$n" --argjson prev "$prev_pods" \
    --argjson ready "$(ms_since "$running_at")" --argjson indexed "$(ms_since "$indexed_at")" \
    --argjson cpu "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.2f", b - a}')" \
    --argjson rss "$(status_kib "$service_pid" VmRSS)" --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    '{pods: $n, added: ($n - $prev), deployment_ready_ms: $ready, index_full_ms: $indexed,
      index_lag_ms: (if $indexed then $indexed - $ready else null end), service_cpu_s: $cpu,
      service_cpu_ms_per_added_pod: (if $n > $prev then ($cpu * 1000 / ($n - $prev)) else null end),
      pods_indexed_per_s: (if $indexed then ($n - $prev) * 1000 / ([$indexed, 1] | max) else null end),
      rss_kib: $rss, vmhwm_kib: $hwm}' >"$work/index-$n.json"
  echo "step $n: $(jq -c . "$work/index-$n.json")"
  prev_pods=$n

  running_ips "$work/ips-$n"
  measure_mode "$n" ip "$work/ips-$n"
  if [[ $n == "$sa_step" ]]; then
    mint_tokens "$work/tokens-$n"
    echo "step $n: minted $(wc -l <"$work/tokens-$n") bound tokens"
    measure_mode "$n" sa "$work/tokens-$n"
    # Every SA-mode request came from 127.0.0.1, as from behind SNAT or from outside the
    # cluster: the per-address limit (checked before identification) then applies to all.
    measure_mode "$n" sa "$work/tokens-$n" default-limits
    head -1 "$work/tokens-$n" | cut -f2 >"$work/fetcher-sa-token"
  fi
done

# --- sustained fetching: several workloads, one client per pod, every client fetching again
# and again (init containers all at once, then refreshing sidecars), against a fresh service ---
# fetch_mode MODE PODFILE: one run; DT calls the NameNode saw against the workloads' count.
fetch_mode() {
  local mode=$1 pods=$2 dt0 dt1 k0 load0
  start_service "svc-fetch-$mode"
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  dt0=$(dt_calls)
  k0=$(kdc_requests)
  "$loadgen" fetchers --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$pods" \
    --mode "$mode" --duration "$fetch_duration" --pid "$service_pid" --label "fetch-$mode" \
    --out "$work/run-fetch-$mode.json"
  sleep 2 # the audit log is written by the NameNode asynchronously
  dt1=$(dt_calls)
  if [[ $(jq .errors "$work/run-fetch-$mode.json") != 0 ]]; then
    echo "fetch $mode: errors; the service's first warnings:"
    grep -m 10 -E '"level":"(WARN|ERROR)"' "$service_log" || true
  fi
  jq -n --arg mode "$mode" --argjson workloads "$fetch_workloads" --argjson pods "$(wc -l <"$pods")" \
    --argjson nameservices "$(jq_c '.nameservices | length')" --argjson dt "$((dt1 - dt0))" \
    --argjson kdc0 "$k0" --argjson kdc "$(kdc_requests)" \
    --argjson rss "$(status_kib "$service_pid" VmRSS)" --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    --slurpfile run "$work/run-fetch-$mode.json" --arg load0 "$load0" \
    --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{mode: $mode, workloads: $workloads, pods: $pods, nameservices: $nameservices,
      namenode_dt_calls: $dt, expected_dt_calls: ($workloads * $nameservices),
      one_issuance_per_workload: ($dt == $workloads * $nameservices),
      kdc_requests_at_start: $kdc0, kdc_requests_total: $kdc, rss_kib: $rss, vmhwm_kib: $hwm,
      loadavg_before: $load0, loadavg_after: $load1, run: $run[0]}' >"$work/fetch-$mode.json"
  echo "fetch $mode: $(jq -c '{namenode_dt_calls, expected_dt_calls, errors: .run.errors,
    requests: .run.requests, same: .run.same_credentials_per_workload}' "$work/fetch-$mode.json")"
}
if [[ $fetch == 1 ]]; then
  per=$((fetch_pods / fetch_workloads))
  for ((i = 0; i < fetch_workloads; i++)); do
    cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: fetch-$i, namespace: $ns}
spec:
  replicas: $per
  selector: {matchLabels: {app: bench-fetch, workload: fetch-$i}}
  template:
    metadata: {labels: {app: bench-fetch, workload: fetch-$i}}
    spec:
      nodeSelector: {k2h-bench: ts}
      tolerations: [{key: k2h-bench, operator: Equal, value: ts, effect: NoSchedule}]
      automountServiceAccountToken: false
      containers: [{name: app, image: registry.invalid/app:1}]
EOF
  done | "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context alice apply -f - >/dev/null
  fetch_total=$((per * fetch_workloads))
  deadline=$((SECONDS + 60 + fetch_total / 5))
  until [[ $(kubectl get pods -n "$ns" -l app=bench-fetch --field-selector=status.phase=Running \
    -o name | wc -l) -ge $fetch_total ]]; do
    ((SECONDS < deadline)) || die "fetch: $fetch_total pods of $fetch_workloads Deployments not running within $((60 + fetch_total / 5))s"
    sleep 1
  done
  for mode in ${fetch_modes//,/ }; do
    case $mode in
    ip)
      kubectl get pods -n "$ns" -l app=bench-fetch --field-selector=status.phase=Running \
        -o jsonpath='{range .items[*]}{.status.podIP} {.metadata.labels.workload}{"\n"}{end}' |
        awk 'NF == 2 {printf "%s\t-\t%s\n", $1, $2}' >"$work/fetch-pods-ip" ;;
    sa) mint_tokens "$work/fetch-pods-sa" app=bench-fetch ;;
    *) die "BENCH_TS_FETCH_MODES: unknown mode $mode (ip, sa)" ;;
    esac
    fetch_mode "$mode" "$work/fetch-pods-$mode"
  done
fi

# --- init-fetcher: size, start-to-file time (SA mode against the running service) ---
fetcher=null
if ((fetcher_runs > 0)); then
size() { stat -c %s "$1"; }
linkage() { file -b "$1" | grep -oE '(static-pie|statically|dynamically) linked' | head -1; }
strip -o "$work/init-fetcher.stripped" "$bin/init-fetcher"
musl_json=null
musl_bin=$root/target/x86_64-unknown-linux-musl/release/init-fetcher
if [[ ${BENCH_MUSL:-1} == 1 ]] && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  if "$cargo" build --release --target x86_64-unknown-linux-musl -p init-fetcher; then
    strip -o "$work/init-fetcher.musl" "$musl_bin"
    musl_json=$(jq -n --argjson raw "$(size "$musl_bin")" --argjson stripped "$(size "$work/init-fetcher.musl")" \
      --arg linkage "$(linkage "$work/init-fetcher.musl")" \
      '{bytes: $raw, stripped_bytes: $stripped, linkage: $linkage}')
  fi
fi
[[ -s $work/fetcher-sa-token ]] || { mint_tokens "$work/tokens-fetcher" 'app in (bench,bench-fetch)'; head -1 "$work/tokens-fetcher" | cut -f2 >"$work/fetcher-sa-token"; }
# The file goes to tmpfs, as into the pod's emptyDir (medium: Memory): init-fetcher fsyncs the
# file and its directory, which on this VM's disk costs tens of ms (measured too, `gnu_disk`).
shm=$(mktemp -d /dev/shm/bench-ts.XXXXXX)
fetch_cmd=(--url "$url/v1/credentials" --ca-file "$work/ca.crt" --sa-token-file "$work/fetcher-sa-token"
  --out "$shm/token")
# Limits lifted (one pod asks 60 times) and the ledger warm: one untimed run first.
start_service svc-fetcher
"$bin/init-fetcher" "${fetch_cmd[@]}" 2>/dev/null || die "init-fetcher failed against the bench service"
"$loadgen" spawn-times --runs "$fetcher_runs" --file "$shm/token" --out "$work/fetcher-gnu.json" \
  -- "$bin/init-fetcher" "${fetch_cmd[@]}"
if [[ $musl_json != null ]]; then
  "$loadgen" spawn-times --runs "$fetcher_runs" --file "$shm/token" --out "$work/fetcher-musl.json" \
    -- "$work/init-fetcher.musl" "${fetch_cmd[@]}"
fi
"$loadgen" spawn-times --runs "$fetcher_runs" --file "$work/token" --out "$work/fetcher-disk.json" \
  -- "$bin/init-fetcher" "${fetch_cmd[@]:0:6}" --out "$work/token"
rm -rf "$shm"
fetcher=$(jq -n --argjson raw "$(size "$bin/init-fetcher")" --argjson stripped "$(size "$work/init-fetcher.stripped")" \
  --arg linkage "$(linkage "$bin/init-fetcher")" \
  --slurpfile gnu "$work/fetcher-gnu.json" --slurpfile disk "$work/fetcher-disk.json" --argjson musl "$musl_json" \
  --argjson musl_times "$(cat "$work/fetcher-musl.json" 2>/dev/null || echo null)" \
  '{gnu: {bytes: $raw, stripped_bytes: $stripped, linkage: $linkage, start_to_file: $gnu[0]},
    musl: (if $musl then $musl + {start_to_file: $musl_times} else null end),
    gnu_disk: {bytes: $raw, stripped_bytes: $stripped, linkage: "\($linkage), file on ext4 (fsync)", start_to_file: $disk[0]}}')
fi
stop_service

# --- report ---
jq -n --slurpfile index <(cat "$work"/index-*.json 2>/dev/null) \
  --slurpfile modes <(cat "$work"/mode-*.json 2>/dev/null) \
  --slurpfile fetch <(cat "$work"/fetch-*.json 2>/dev/null) \
  --argjson fetcher "$fetcher" --argjson cores "$(nproc)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg commit "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --arg version "$("$bin/token-service" --version)" --arg rustc "$(rustc --version)" \
  --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg method "fresh TLS connection per request; burst: every pod once, released together; cached: $concurrency workers for $duration; service unpinned (it shares the 2 cores with kube-apiserver, etcd, kwok and the load generator); sustained fetch: $fetch_pods clients over $fetch_workloads Deployments for $fetch_duration, modes $fetch_modes; extra service flags: ${BENCH_TS_SERVICE_ARGS:-none}" \
  '{meta: {date: $date, commit: $commit, token_service: $version, rustc: $rustc, cores: $cores,
           cpu_model: $cpu, loadavg_after: $load, method: $method},
    index: ($index | sort_by(.pods)), steps: ($modes | sort_by(.pods, .mode)),
    sustained_fetch: ($fetch | sort_by(.mode)), init_fetcher: $fetcher}' \
  >"$results/$out_name.json"
"$here/token-service-table.sh" "$results/$out_name.json" | tee "$results/$out_name.md"
echo "bench-token-service: done in $((SECONDS - started))s"
