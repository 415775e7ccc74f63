#!/usr/bin/env bash
# `make bench-scale`: token-service at cluster scale (issue 17), two builds side by side in one
# run on the `make e2e-up` control plane (a running bed is used and left up) and a private
# Kerberized HDFS. BEFORE and AFTER are token-service binaries (default: AFTER the release
# build of this tree; BEFORE unset runs AFTER alone). Nothing here asserts on timing.
#
# Steps (BENCH_SCALE_STEPS, default 10000,5000,1000 pods, 5 pods per workload, or a fixed
# number of workloads with BENCH_SCALE_WORKLOADS): alice's
# Deployments on kwok nodes; at each step, for each binary: a fresh service with an empty
# ledger (RSS once its index holds every pod), one cold request per workload from one of its
# pods (every workload gets its ledger entry), the ledger at rest for BENCH_SCALE_REST seconds
# (100: three reconcile passes, and longer than the 90 s an idle pooled API connection lives) counting the API server's GET and LIST requests, RSS and VmHWM,
# then BENCH_SCALE_CACHED (5s) of 500 workers asking back to back (p99, CPU per request), then
# the same binary restarted on that ledger (RSS of the live data with no burst behind it). Each
# step starts with a discarded warm-up (BENCH_SCALE_WARMUP=0 leaves it out): a fresh service of
# the binary measured first and every workload's first request. At
# the last step: a burst of 1,000 new pods of one new workload (how far the index trails the
# Deployment), then all 1,000 ask at once (one DT call per service, p99).
#
# SA-token mode (issue 17's TokenReview cache), at the first step unless BENCH_SCALE_SA=0: every
# pod's bound token is minted (TokenRequest as its kwok node, certificates signed here with the
# bed's CA), then for each binary a fresh service with both identity modes answers BENCH_SCALE_CACHED
# of 500 workers from the ledger in IP mode, then in SA mode: requests/s and CPU per request,
# and SA against IP as a ratio.
#
# Results: bench/results/token-service-scale.{json,md} and token-service-scale.png (RSS and p99
# against pods, matplotlib from a private venv). Namespaces bench-scale, bench-scale-ledger
# and nodes bench-scale-node-* are deleted at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
results=${BENCH_RESULTS:-$here/results}
# Largest first: one creation of the pods, then deletions (faster than creating each step's).
steps=${BENCH_SCALE_STEPS:-10000,5000,1000}
sa_step=${BENCH_SCALE_SA_STEP:-1000}
per_workload=${BENCH_SCALE_PODS_PER_WORKLOAD:-5}
# BENCH_SCALE_WORKLOADS=W: W workloads at every step (their replicas scale with the step), so
# steps differ in pods only: the ledger, the cold burst and the answers stay the same.
fixed_workloads=${BENCH_SCALE_WORKLOADS:-}
workloads_at() { if [[ -n $fixed_workloads ]]; then echo "$fixed_workloads"; else echo $(($1 / per_workload)); fi; }
rest=${BENCH_SCALE_REST:-100}
cached=${BENCH_SCALE_CACHED:-5s}
# After a restart on the ledger, before its RSS is read (the watches settle).
settle=${BENCH_SCALE_SETTLE:-20}
burst_pods=${BENCH_SCALE_BURST:-1000}
after=${AFTER:-$root/target/release/token-service}
before=${BEFORE:-}
export K2H_HADOOP_STATE=${K2H_HADOOP_STATE:-/tmp/bench-hadoop}
ns=bench-scale
ledger_ns=bench-scale-ledger
mkdir -p "$results"
die() { echo "bench-scale: $*" >&2; exit 1; }

state=${K2H_E2E_STATE_DIR:-$root/e2e/.state}
[[ -s $state/env ]] || die "no test bed: run make e2e-up first"
# shellcheck source=/dev/null
source "$state/env"
kubectl() { "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context admin "$@"; }
as_alice() { "$K2H_E2E_KUBECTL" --kubeconfig "$KUBECONFIG" --context alice "$@"; }
[[ ${BENCH_BUILD:-1} == 0 ]] || cargo build --release -p token-service -p loadgen
loadgen=$root/target/release/loadgen
[[ -x $after ]] || die "no token-service at $after"

work=$(mktemp -d)
# Per-step results, kept if a later phase fails (the JSON is assembled from them).
parts=$results/token-service-scale.parts
logs=$results/token-service-scale-logs
rm -rf "$logs"
rm -rf "$parts" && mkdir -p "$parts"
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
  echo "bench-scale: removing $ns, $ledger_ns and nodes bench-scale-node-*" >&2
  kubectl delete namespace "$ns" "$ledger_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 300); do
    [[ $(kubectl get pods -n "$ns" --no-headers 2>/dev/null | wc -l) == 0 ]] && break
    sleep 2
  done
  kubectl delete nodes -l k2h-bench=scale --ignore-not-found --wait=false >/dev/null 2>&1 || true
  "$root/e2e/scripts/hadoop-down.sh" >/dev/null 2>&1 || true
  # The services' logs, to explain a figure afterwards (*.log is not committed).
  mkdir -p "$logs" && cp "$work"/*.log "$logs"/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cluster=$("$root/e2e/scripts/hadoop-up.sh")
audit_log=$(jq -r .audit_log "$cluster")

max_step=$(tr ',' '\n' <<<"$steps" | sort -n | tail -1)
nodes=$(((max_step + burst_pods) / 400 + 1))
{
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {k2h-bench: scale}}
---
apiVersion: v1
kind: Namespace
metadata: {name: $ledger_ns, labels: {k2h-bench: scale}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edit, namespace: $ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
EOF
  for ((i = 0; i < nodes; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: bench-scale-node-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, k2h-bench: scale, kubernetes.io/hostname: bench-scale-node-$i, kubernetes.io/os: linux}
spec:
  podCIDR: 127.102.$((2 * i)).0/23
  podCIDRs: [127.102.$((2 * i)).0/23]
  taints: [{key: k2h-bench, value: scale, effect: NoSchedule}]
EOF
  done
} | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Ready --timeout=120s node -l k2h-bench=scale >/dev/null
for _ in $(seq 60); do kubectl get serviceaccount default -n "$ns" >/dev/null 2>&1 && break; sleep 1; done

# deployments FROM TO REPLICAS: alice's Deployments w-FROM..w-(TO-1).
deployments() {
  for ((i = $1; i < $2; i++)); do
    cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w-$i, namespace: $ns, labels: {bench: scale}}
spec:
  replicas: $3
  selector: {matchLabels: {app: w-$i}}
  template:
    metadata: {labels: {app: w-$i, bench: scale, workload: w-$i}}
    spec:
      nodeSelector: {k2h-bench: scale}
      tolerations: [{key: k2h-bench, operator: Equal, value: scale, effect: NoSchedule}]
      automountServiceAccountToken: false
      containers: [{name: app, image: registry.invalid/app:1}]
      # A kubelet may only mint bound tokens for audiences its pod's volumes name.
      volumes: [{name: k2h-token, projected: {sources: [{serviceAccountToken: {audience: kube2hadoop, path: token}}]}}]
EOF
  done
}
# ensure_workloads W REPLICAS: exactly Deployments w-0..w-(W-1), extra ones deleted (steps may
# shrink).
ensure_workloads() {
  deployments 0 "$1" "$2" | as_alice apply -f - >/dev/null
  local extra
  extra=$(kubectl get deployments -n "$ns" -l bench=scale -o name |
    awk -F/ -v w="$1" '{n = substr($2, 3) + 0} n >= w {print}')
  [[ -z $extra ]] || xargs kubectl delete -n "$ns" --wait=false >/dev/null <<<"$extra"
}
# wait_pods N SECONDS: exactly N bench pods, all running (deleted ones gone).
wait_pods() {
  local deadline=$((SECONDS + $2)) all run
  while :; do
    all=$(kubectl get pods -n "$ns" -l bench=scale --no-headers 2>/dev/null | wc -l)
    run=$(kubectl get pods -n "$ns" -l bench=scale --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
    [[ $all == "$1" && $run == "$1" ]] && return 0
    ((SECONDS < deadline)) || die "wanted $1 running bench pods, have $run running of $all after $2 s"
    # Each poll lists every bench pod twice: at 50,000 pods that is a load of its own.
    sleep $((3 + $1 / 5000))
  done
}

"$loadgen" certs --dir "$work"
config=$work/config.yaml
jq '{nameservices: [.nameservices | to_entries[] | {name: (.value.name // "nn\(.key)"),
      namenodes: [.value.namenodes[] | {http, rpc}]}],
     kerberos: {principal: .service_principal, keytab: .service_keytab, krb5Conf: .krb5_conf},
     identityModes: ["ip"]}' "$cluster" >"$config"
jq '.identityModes = ["sa-token", "ip"] | .saTokenOrigin = "any"' "$config" >"$work/config-sa.yaml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=https://127.0.0.1:$port
metric() { curl -s --max-time 5 --cacert "$work/ca.crt" "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# status_kib PID FIELD: a field of /proc/PID/status (KiB for the Vm*/Rss* ones).
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
cpu_s() { awk '{sub(/.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / 100}' "/proc/$1/stat"; }
# first_requests STEP LABEL: every workload's first request, from one of its pods, all at once
# (its ledger entry), to the running service; the answers in $work/LABEL.json.
first_requests() {
  "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$work/one-$1" \
    --mode ip --phase burst --pid "$service_pid" --label "$2" --out "$work/$2.json"
}
# memory_breakdown PID: where the resident memory is, as JSON (KiB): anonymous and file-backed
# pages, what jemalloc holds resident (where the binary exports it; the rest of the anonymous
# pages are glibc's malloc, used by the C libraries, and thread stacks) and the thread count.
memory_breakdown() {
  local jr
  jr=$(metric kube2hadoop_heap_resident_bytes)
  jq -n --argjson anon "$(status_kib "$1" RssAnon)" --argjson file "$(status_kib "$1" RssFile)" \
    --argjson threads "$(status_kib "$1" Threads)" \
    --argjson jemalloc "${jr:-null}" \
    '{rss_anon_kib: $anon, rss_file_kib: $file, threads: $threads,
      jemalloc_resident_kib: (if $jemalloc then ($jemalloc / 1024 | round) else null end),
      other_anon_kib: (if $jemalloc then ($anon - $jemalloc / 1024 | round) else null end)}'
}
dt_calls() { local c; c=$(grep -c 'cmd=getDelegationToken' "$audit_log" 2>/dev/null) || true; echo "${c:-0}"; }
# GET and LIST requests the API server has answered (every client; at rest the service's), as
# JSON {"VERB resource": count}.
api_reads() {
  curl -s --max-time 10 --cacert "$K2H_E2E_CA" --cert "$K2H_E2E_PKI/admin.crt" \
    --key "$K2H_E2E_PKI/admin.key" "$K2H_E2E_APISERVER/metrics" |
    awk '/^apiserver_request_total\{/ && /verb="(GET|LIST)"/ {
        match($0, /resource="[^"]*"/); r = substr($0, RSTART + 10, RLENGTH - 11)
        match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
        s[v " " r] += $NF }
      END {printf "{"; sep = ""; for (k in s) {printf "%s\"%s\": %d", sep, k, s[k]; sep = ","} print "}"}'
}
# reads_between BEFORE_JSON AFTER_JSON SECONDS: per minute, in total and by verb and resource.
reads_between() {
  jq -n --argjson a "$1" --argjson b "$2" --argjson s "$3" '
    [$b | to_entries[] | {key, value: ((.value - ($a[.key] // 0)) * 60 / $s | round)} | select(.value > 0)]
    | {total: (map(.value) | add // 0), by: from_entries}'
}

# clear_ledger: every Secret and Lease of the ledger namespace, one collection delete each
# (kubectl deletes 2,000 Secrets one by one, about 5 minutes).
clear_ledger() {
  local kind
  for kind in api/v1/namespaces/$ledger_ns/secrets apis/coordination.k8s.io/v1/namespaces/$ledger_ns/leases; do
    curl -s --max-time 60 --cacert "$K2H_E2E_CA" --cert "$K2H_E2E_PKI/admin.crt" \
      --key "$K2H_E2E_PKI/admin.key" -X DELETE "$K2H_E2E_APISERVER/$kind" >/dev/null || true
  done
}

start_service() { # NAME BINARY [CONFIG] (KEEP_LEDGER=1: start on the ledger left behind)
  local config=${3:-$config}
  stop_service
  [[ ${KEEP_LEDGER:-0} == 1 ]] || clear_ledger
  RUST_LOG=info "$2" --config "$config" \
    --listen "127.0.0.1:$port" --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" \
    --stamp-key-file "$K2H_E2E_PKI/stamp.key" --kubeconfig "$KUBECONFIG" --kube-context admin \
    --namespace-selector "kubernetes.io/metadata.name in ($ns)" --ledger-namespace "$ledger_ns" \
    --audit-log "$work/$1.audit" --pod-rate 10000000 --pod-burst 100000 --log-format json \
    </dev/null >/dev/null 2>"$work/$1.log" &
  service_pid=$!
  "$loadgen" wait-ready --url "$url/readyz" --ca "$work/ca.crt" --timeout 300s ||
    { tail -20 "$work/$1.log" >&2; die "token-service not ready"; }
}

# pods_file SELECTOR OUT [one]: IP<TAB><TAB>workload of running pods (one: one per workload).
pods_file() {
  kubectl get pods -n "$ns" -l "$1" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.status.podIP} {.metadata.labels.workload}{"\n"}{end}' |
    awk -v one="${3:-}" 'NF == 2 && (one == "" || !seen[$2]++) {printf "%s\t-\t%s\n", $1, $2}' >"$2"
}

measure() { # STEP LABEL BINARY
  local n=$1 label=$2 bin=$3 name="$1-$2" w
  w=$(workloads_at "$1")
  start_service "$name" "$bin"
  local indexed t0
  indexed=$(metric kube2hadoop_indexed_pods)
  sleep 5
  local rss_index hwm_index
  rss_index=$(status_kib "$service_pid" VmRSS) hwm_index=$(status_kib "$service_pid" VmHWM)
  # Live heap bytes, where the binary exports them (jemalloc): data against fragmentation.
  local heap_index
  heap_index=$(metric kube2hadoop_heap_allocated_bytes)
  # Every workload's first request: its ledger entry.
  local dt0
  dt0=$(dt_calls)
  first_requests "$n" "$name-issue"
  sleep 2
  # At rest: nobody asks; the ledger's passes run.
  local cpu0 reads0 reads1
  cpu0=$(cpu_s "$service_pid")
  reads0=$(api_reads)
  sleep "$rest"
  reads1=$(api_reads)
  local entries
  entries=$(metric kube2hadoop_ledger_entries)
  local cpu_rest
  cpu_rest=$(awk -v a="$cpu0" -v b="$(cpu_s "$service_pid")" 'BEGIN {printf "%.2f", b - a}')
  local rss_rest hwm_rest
  rss_rest=$(status_kib "$service_pid" VmRSS) hwm_rest=$(status_kib "$service_pid" VmHWM)
  local heap_rest memory_rest
  heap_rest=$(metric kube2hadoop_heap_allocated_bytes)
  memory_rest=$(memory_breakdown "$service_pid")
  cp "/proc/$service_pid/smaps" "$work/$name.smaps.log" 2>/dev/null || true
  "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$work/all-$n" \
    --mode ip --phase cached --concurrency 500 --duration "$cached" \
    --pid "$service_pid" --label "$name-cached" --out "$work/$name-cached.json"
  jq -n --argjson n "$n" --arg svc "$label" --argjson w "$w" \
    --argjson indexed "${indexed:-null}" --argjson entries "${entries:-null}" \
    --argjson dt "$(($(dt_calls) - dt0))" \
    --argjson reads "$(reads_between "$reads0" "$reads1" "$rest")" --argjson cpu_rest "$cpu_rest" \
    --argjson rss_index "$rss_index" --argjson hwm_index "$hwm_index" \
    --argjson rss_rest "$rss_rest" --argjson hwm_rest "$hwm_rest" \
    --argjson rss "$(status_kib "$service_pid" VmRSS)" --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    --argjson heap_index "${heap_index:-null}" --argjson heap_rest "${heap_rest:-null}" \
    --argjson memory_rest "$memory_rest" \
    --slurpfile issue "$work/$name-issue.json" --slurpfile cached "$work/$name-cached.json" \
    '{pods: $n, service: $svc, workloads: $w, indexed_pods: $indexed, ledger_entries: $entries,
      namenode_dt_calls: $dt, api_reads_per_min_at_rest: $reads.total, api_reads_by: $reads.by,
      cpu_s_at_rest: $cpu_rest, rss_kib_index_only: $rss_index, vmhwm_kib_index_only: $hwm_index,
      rss_kib_at_rest: $rss_rest, vmhwm_kib_at_rest: $hwm_rest, rss_kib: $rss, vmhwm_kib: $hwm,
      heap_bytes_index_only: $heap_index, heap_bytes_at_rest: $heap_rest, memory_at_rest: $memory_rest,
      issue: $issue[0], cached: $cached[0]}' >"$parts/m-$name.json"
  # Restarted on the same ledger: the index and every entry loaded, no burst behind it (the
  # live data's own RSS).
  KEEP_LEDGER=1 start_service "$name-restarted" "$bin"
  # Entries written after the count at rest (requests still in flight then) load too: wait
  # for at least that many, not for exactly that many.
  local loaded
  for _ in $(seq 120); do
    loaded=$(metric kube2hadoop_ledger_entries)
    ((${loaded:-0} >= ${entries:-0})) && break
    sleep 1
  done
  sleep "$settle"
  local restarted heap_restarted
  loaded=$(metric kube2hadoop_ledger_entries) heap_restarted=$(metric kube2hadoop_heap_allocated_bytes)
  restarted=$(jq -n --argjson rss "$(status_kib "$service_pid" VmRSS)" --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    --argjson entries "${loaded:-null}" --argjson heap "${heap_restarted:-null}" \
    --argjson memory "$(memory_breakdown "$service_pid")" \
    '{rss_kib: $rss, vmhwm_kib: $hwm, ledger_entries: $entries, heap_bytes: $heap, memory: $memory}')
  jq --argjson r "$restarted" '.restarted = $r' "$parts/m-$name.json" >"$parts/m-$name.json.tmp" &&
    mv "$parts/m-$name.json.tmp" "$parts/m-$name.json"
  echo "step $n $label: $(jq -c '{indexed_pods, ledger_entries, namenode_dt_calls, api_reads_per_min_at_rest, rss_kib_index_only, rss_kib_at_rest, vmhwm_kib, heap_bytes_at_rest, restarted}' "$parts/m-$name.json")"
  stop_service
}

# warm_up STEP BINARY: one fresh service and every workload's first request, not recorded.
warm_up() {
  start_service "$1-warm-up" "$2"
  first_requests "$1" "$1-warm-up" >/dev/null
  stop_service
  echo "step $1: warm-up done ($(jq -c '{ok, outcomes}' "$work/$1-warm-up.json"))"
}

# node_certs: a client certificate per bench node, as its kubelet has (only a pod's node may
# mint its bound tokens for audience kube2hadoop).
node_certs() {
  local node
  for node in $(kubectl get nodes -l k2h-bench=scale -o jsonpath='{.items[*].metadata.name}'); do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/node-$node.key" \
      -subj "/O=system:nodes/CN=system:node:$node" 2>/dev/null |
      openssl x509 -req -CA "$K2H_E2E_PKI/ca.crt" -CAkey "$K2H_E2E_PKI/ca.key" -CAcreateserial \
        -CAserial "$work/ca.srl" -days 1 -out "$work/node-$node.crt" 2>/dev/null
  done
}
# mint_tokens OUT: IP<TAB>bound token<TAB>workload for every running bench pod (8 at once).
mint_tokens() {
  kubectl get pods -n "$ns" -l bench=scale --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.podIP} {.spec.nodeName} {.metadata.labels.workload}{"\n"}{end}' |
    awk 'NF == 5' | W="$work" NS="$ns" xargs -P 8 -L 1 bash -c '
      body="{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"kube2hadoop\"],\"expirationSeconds\":3600,\"boundObjectRef\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"name\":\"$0\",\"uid\":\"$1\"}}}"
      ans=$(curl -s --max-time 10 --cacert "$K2H_E2E_CA" --cert "$W/node-$3.crt" --key "$W/node-$3.key" \
        -H "Content-Type: application/json" -X POST --data "$body" \
        "$K2H_E2E_APISERVER/api/v1/namespaces/$NS/serviceaccounts/default/token")
      tok=$(jq -r "if (.status | type) == \"object\" then .status.token // empty else empty end" <<<"$ans" 2>/dev/null)
      if [[ -n $tok ]]; then printf "%s\t%s\t%s\n" "$2" "$tok" "$4"; else jq -r ".message // ." <<<"$ans" >"$W/mint-error" 2>/dev/null || true; fi' >"$1"
}
# sa_vs_ip STEP LABEL BINARY: answers from the ledger in IP then SA mode, one fresh service.
sa_vs_ip() {
  local n=$1 name="$1-$2-modes"
  start_service "$name" "$3" "$work/config-sa.yaml"
  first_requests "$n" "$name-issue"
  local mode
  for mode in ip sa; do
    local pods=$work/all-$n
    [[ $mode == sa ]] && pods=$work/tokens-$n
    "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$pods" \
      --mode "$mode" --phase cached --concurrency 500 --duration "$cached" \
      --pid "$service_pid" --label "$name-$mode" --out "$work/$name-$mode.json"
  done
  jq -n --argjson n "$n" --arg svc "$2" --slurpfile ip "$work/$name-ip.json" --slurpfile sa "$work/$name-sa.json" \
    --argjson hwm "$(status_kib "$service_pid" VmHWM)" \
    '{pods: $n, service: $svc, ip: $ip[0], sa: $sa[0], vmhwm_kib: $hwm}' >"$parts/modes-$name.json"
  stop_service
}

# Baseline: API reads at rest with no service running.
b0=$(api_reads); sleep 30; b1=$(api_reads)
baseline=$(reads_between "$b0" "$b1" 30)
echo "baseline: $(jq -c . <<<"$baseline") GET+LIST per minute without a service"

# burst: 1,000 new pods of one new workload while the service runs: how far the index trails
# the Deployment; then all ask at once (one DT call, p99). The workload is deleted after.
burst() {
  start_service burst "$after"
  base=$(metric kube2hadoop_indexed_pods)
  cpu0=$(cpu_s "$service_pid")
  t0=$(date +%s%N)
  cat <<EOF | as_alice apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: burst, namespace: $ns}
spec:
  replicas: $burst_pods
  selector: {matchLabels: {app: burst}}
  template:
    metadata: {labels: {app: burst, workload: burst}}
    spec:
      nodeSelector: {k2h-bench: scale}
      tolerations: [{key: k2h-bench, operator: Equal, value: scale, effect: NoSchedule}]
      automountServiceAccountToken: false
      containers: [{name: app, image: registry.invalid/app:1}]
EOF
  ready_at="" indexed_at=""
  deadline=$((SECONDS + 300))
  while ((SECONDS < deadline)) && [[ -z $ready_at || -z $indexed_at ]]; do
    now=$(date +%s%N)
    [[ -n $ready_at ]] || [[ $(kubectl get deployment burst -n "$ns" -o jsonpath='{.status.readyReplicas}') != "$burst_pods" ]] || ready_at=$now
    [[ -n $indexed_at ]] || (($(v=$(metric kube2hadoop_indexed_pods); echo "${v:-0}") < base + burst_pods)) || indexed_at=$now
    sleep 0.5
  done
  ms() { [[ -n $1 ]] && echo $((($1 - t0) / 1000000)) || echo null; }
  pods_file app=burst "$work/burst"
  dt0=$(dt_calls)
  "$loadgen" credentials --url "$url/v1/credentials" --ca "$work/ca.crt" --pods "$work/burst" \
    --mode ip --phase burst --pid "$service_pid" --label burst --out "$work/burst.json"
  sleep 2
  jq -n --argjson ready "$(ms "$ready_at")" --argjson indexed "$(ms "$indexed_at")" \
    --argjson pods "$burst_pods" --argjson dt "$(($(dt_calls) - dt0))" \
    --argjson cpu "$(awk -v a="$cpu0" -v b="$(cpu_s "$service_pid")" 'BEGIN {printf "%.2f", b - a}')" \
    --argjson hwm "$(status_kib "$service_pid" VmHWM)" --slurpfile b "$work/burst.json" \
    '{pods: $pods, deployment_ready_ms: $ready, index_full_ms: $indexed,
      index_lag_ms: (if $indexed and $ready then $indexed - $ready else null end),
      service_cpu_s: $cpu, namenode_dt_calls: $dt, vmhwm_kib: $hwm, answers: $b[0]}' >"$parts/burst-summary.json"
  echo "burst: $(jq -c '{deployment_ready_ms, index_full_ms, index_lag_ms, namenode_dt_calls}' "$parts/burst-summary.json")"
  stop_service
  kubectl delete deployment burst -n "$ns" --wait=false >/dev/null
  for _ in $(seq 150); do
    [[ $(kubectl get pods -n "$ns" -l app=burst --no-headers 2>/dev/null | wc -l) == 0 ]] && break
    sleep 2
  done
}

# The binary measured first at each step (and warmed up for).
first=$before
if [[ ${BENCH_SCALE_AFTER_FIRST:-0} == 1 || -z $before ]]; then first=$after; fi
for n in $(tr ',' '\n' <<<"$steps"); do
  w=$(workloads_at "$n")
  ensure_workloads "$w" $((n / w))
  wait_pods "$n" $((180 + n / 10))
  pods_file bench=scale "$work/all-$n"
  pods_file bench=scale "$work/one-$n" one
  echo "step $n: $(wc -l <"$work/all-$n") pods running, $(wc -l <"$work/one-$n") workloads"
  # A discarded warm-up: the binary measured first otherwise shares the cores with a control
  # plane still settling after the pods' creation, and meets a cold bed the second one does not.
  [[ ${BENCH_SCALE_WARMUP:-1} != 1 ]] || warm_up "$n" "$first"
  # BENCH_SCALE_AFTER_FIRST=1 swaps the order, to tell an order effect from a change.
  if [[ ${BENCH_SCALE_AFTER_FIRST:-0} == 1 ]]; then
    measure "$n" after "$after"
    [[ -z $before ]] || measure "$n" before "$before"
  else
    [[ -z $before ]] || measure "$n" before "$before"
    measure "$n" after "$after"
  fi
  if [[ ${BENCH_SCALE_SA:-1} == 1 && $n == "$sa_step" ]]; then
    node_certs
    mint_tokens "$work/tokens-$n" || true
    minted=$(wc -l <"$work/tokens-$n")
    echo "step $n: minted $minted bound tokens"
    if ((minted * 10 >= n * 9)); then
      [[ -z $before ]] || sa_vs_ip "$n" before "$before"
      sa_vs_ip "$n" after "$after"
    else
      echo "step $n: too few tokens minted; SA against IP skipped (first refusal: $(cat "$work/mint-error" 2>/dev/null))" >&2
    fi
  fi
  [[ $n != "$max_step" ]] || burst
done


jq -n --arg when "$(date -u +%FT%TZ)" --arg cpu "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson baseline "$baseline" \
  --arg before "${before:-none}" --arg after "$after" \
  --slurpfile m <(cat "$parts"/m-*.json) --slurpfile burst <(cat "$parts"/burst-summary.json 2>/dev/null || echo null) \
  --slurpfile modes <(cat "$parts"/modes-*.json 2>/dev/null) \
  '{when: $when, cpu: $cpu, load_after: $load, before: $before, after: $after,
    api_reads_per_min_without_service: $baseline.total, api_reads_without_service_by: $baseline.by, steps: ($m | sort_by(.pods, .service)),
    burst: $burst[0], modes: $modes}' >"$results/token-service-scale.json"
"$here/token-service-scale-report.sh" "$results/token-service-scale.json"
rm -rf "$parts"
