#!/usr/bin/env bash
# The latency the real kube-apiserver records for our webhook, next to the Go reference's:
# release iddecorator and goref are started on loopback with the bed's webhook certificate and
# registered as two extra mutating webhooks (kube2hadoop-bench) that only match pods labelled
# app=k2h-bench in team-a, so they see exactly the benchmark's pods whatever else runs on the
# bed. BENCH_PODS (1000) such pods are created as alice, BENCH_APISERVER_CONCURRENCY (4) kubectl
# clients at a time; apiserver_admission_webhook_admission_duration_seconds is read from the
# apiserver's /metrics before and after. Pods and registration are removed afterwards.
#
# Uses a running bed (make e2e-up) as it is; otherwise brings one up and takes it down at the end.
#   bench/apiserver.sh [--out bench/results/apiserver.json]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$here/results/apiserver.json
[[ ${1:-} == --out && -n ${2:-} ]] && out=$2
pods=${BENCH_PODS:-1000}
conc=${BENCH_APISERVER_CONCURRENCY:-4}
bin=$root/target/release
state=${K2H_E2E_STATE_DIR:-$root/e2e/.state}
metric=apiserver_admission_webhook_admission_duration_seconds
# shellcheck source=SCRIPTDIR/../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"

work=$(mktemp -d)
brought_up="" registered="" pids=()
finish() {
  local rc=$?
  if [[ -n $registered ]]; then
    kc --context admin delete mutatingwebhookconfiguration kube2hadoop-bench \
      --ignore-not-found >/dev/null 2>&1 || echo "apiserver bench: could not remove kube2hadoop-bench" >&2
  fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $brought_up ]]; then "$root/e2e/scripts/down.sh" || rc=1; fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT

bed_up() {
  [[ -s $state/env ]] || return 1
  # shellcheck source=/dev/null
  (source "$state/env" && curl -fsS --max-time 3 --cacert "$K2H_E2E_CA" \
    --cert "$K2H_E2E_PKI/admin.crt" --key "$K2H_E2E_PKI/admin.key" \
    "$K2H_E2E_APISERVER/readyz" >/dev/null)
}
if bed_up; then
  echo "apiserver bench: using the running test bed" >&2
else
  echo "apiserver bench: bringing the test bed up" >&2
  brought_up=1
  IDDECORATOR_BIN=$bin/iddecorator "$root/e2e/scripts/up.sh"
fi
# shellcheck source=/dev/null
source "$state/env"
kc() { "$K2H_E2E_KUBECTL" --request-timeout=60s "$@"; }
bed_bin=$(readlink "/proc/$(cat "$state/pids/iddecorator.pid" 2>/dev/null)/exe" 2>/dev/null || echo unknown)
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Both servers: the bed's webhook certificate (for 127.0.0.1), per-request log lines to a file.
cp "$K2H_E2E_PKI/iddecorator.crt" "$work/tls.crt"
cp "$K2H_E2E_PKI/iddecorator.key" "$work/tls.key"
ours_port=$(free_port) ref_port=$(free_port)
"$bin/iddecorator" --listen "127.0.0.1:$ours_port" --tls-cert-file "$work/tls.crt" \
  --tls-key-file "$work/tls.key" --log-format json --stamp-key-file "$K2H_E2E_PKI/stamp.key" \
  2>"$work/iddecorator.log" &
pids+=($!)
"$("$here/goref/build.sh")" --listen "127.0.0.1:$ref_port" --cert-dir "$work" 2>"$work/go-ref.log" &
pids+=($!)
for port in "$ours_port" "$ref_port"; do
  "$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$K2H_E2E_CA" --timeout 30s
done

ca=$(base64 -w0 "$K2H_E2E_CA")
hook() {
  cat <<HOOK
- name: mutate.$1.bench.kube2hadoop.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "https://127.0.0.1:$2/mutate", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  timeoutSeconds: 5
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-a}}
  objectSelector: {matchLabels: {app: k2h-bench}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
HOOK
}
{
  printf 'apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n'
  printf 'metadata: {name: kube2hadoop-bench}\nwebhooks:\n'
  hook iddecorator "$ours_port"
  hook goref "$ref_port"
} >"$work/webhooks.yaml"
registered=1
kc --context admin apply -f "$work/webhooks.yaml" >/dev/null
# The apiserver picks registrations up through an informer: wait until a dry run reaches both.
deadline=$((SECONDS + 30))
probe='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-probe","labels":{"app":"k2h-bench"}},"spec":{"containers":[{"name":"c","image":"x"}]}}'
until echo "$probe" | kc --context alice -n team-a create --dry-run=server -f - >/dev/null 2>&1 &&
  grep -q bench-probe "$work/iddecorator.log" && grep -q bench-probe "$work/go-ref.log"; do
  ((SECONDS < deadline)) || { echo "apiserver bench: the bench webhooks are not called" >&2; exit 1; }
  sleep 0.5
done

# One List per kubectl client, so at most `conc` creations are in flight.
per=$(((pods + conc - 1) / conc))
for ((c = 0; c < conc; c++)); do
  {
    echo '{"apiVersion": "v1", "kind": "List", "items": ['
    for ((i = c * per; i < (c + 1) * per && i < pods; i++)); do
      ((i == c * per)) || echo ','
      printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-%04d","labels":{"app":"k2h-bench"},' "$i"
      printf '"annotations":{"kube2hadoop.io/user":"bob"}},"spec":{"containers":[{"name":"main",'
      printf '"image":"registry.example/bench:1"}],"restartPolicy":"Never"}}\n'
    done
    echo ']}'
  } >"$work/pods-$c.json"
done

# A bed someone else brought up may be taken down meanwhile: then there is nothing to delete.
gone() { ! bed_up || [[ -z $(kc --context admin get pods -n team-a -l app=k2h-bench -o name) ]]; }
# Delete without kubectl's per-object wait (slow for 1000 pods), then poll, bounded.
delete_pods() {
  kc --context admin delete pods -n team-a -l app=k2h-bench --wait=false >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 180))
  until gone; do
    ((SECONDS < deadline)) || { echo "apiserver bench: bench pods still there after 180s" >&2; return 1; }
    sleep 2
  done
}
delete_pods

kc --context admin get --raw /metrics >"$work/before.txt"
t0=$(date +%s.%N)
creators=()
for ((c = 0; c < conc; c++)); do
  kc --context alice -n team-a create -f "$work/pods-$c.json" -o name >/dev/null &
  creators+=($!)
done
failed=0
for p in "${creators[@]}"; do wait "$p" || failed=1; done
t1=$(date +%s.%N)
kc --context admin get --raw /metrics >"$work/after.txt"
created=$(kc --context admin get pods -n team-a -l app=k2h-bench -o name | wc -l)
stamped=$(kc --context admin get pods -n team-a -l app=k2h-bench \
  -o jsonpath='{range .items[*]}{.metadata.annotations.kube2hadoop\.io/user}{"\n"}{end}' | grep -cx alice || true)
delete_pods

q() { # NAME TYPE → JSON quantiles of that webhook's CREATE latencies in the window
  "$bin/loadgen" prom-quantiles --metric "$metric" --before "$work/before.txt" \
    --after "$work/after.txt" --label "name=$1" --label operation=CREATE --label "type=$2" \
    --out "$work/$1.json" >/dev/null
  echo "$work/$1.json"
}
# What each server itself logged as its handling time for the benchmark's pods.
self_time() {
  jq -R 'fromjson? | select((.name? // "") | test("^bench-[0-9]+$")) | .micros' "$1" |
    jq -s 'sort | {count: length, p50_us: .[(length * 0.5 | floor)], p99_us: .[(length * 0.99 | floor)]}'
}
self_time "$work/iddecorator.log" >"$work/ours-self.json"
self_time "$work/go-ref.log" >"$work/ref-self.json"
seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
jq -n --slurpfile ours "$(q mutate.iddecorator.bench.kube2hadoop.io admit)" \
  --slurpfile ref "$(q mutate.goref.bench.kube2hadoop.io admit)" \
  --slurpfile bed_m "$(q mutate.iddecorator.kube2hadoop.io admit)" \
  --slurpfile bed_v "$(q validate.iddecorator.kube2hadoop.io validating)" \
  --slurpfile ours_self "$work/ours-self.json" --slurpfile ref_self "$work/ref-self.json" \
  --arg pods "$pods" --arg conc "$conc" --arg created "$created" --arg stamped "$stamped" \
  --arg seconds "$seconds" --arg k8s "$K8S_VERSION" \
  --arg bed_bin "$bed_bin" '{
    what: "kube-apiserver histogram apiserver_admission_webhook_admission_duration_seconds (buckets 5, 25, 100, 500 ms...) over the creation of the pods: difference of two /metrics scrapes, quantiles interpolated inside the buckets like histogram_quantile",
    kube_apiserver: $k8s, pods: ($pods|tonumber), kubectl_clients: ($conc|tonumber),
    created: ($created|tonumber), stamped_alice: ($stamped|tonumber),
    seconds: ($seconds|tonumber), pods_per_second: (($created|tonumber) / ($seconds|tonumber)),
    iddecorator_release: $ours[0], go_reference: $ref[0],
    handling_time_logged_by_the_servers: {iddecorator: $ours_self[0], go_reference: $ref_self[0]},
    bed_webhooks: {note: "the bed'"'"'s own registration (binary below, any other traffic on the bed in the window counts too)",
      binary: $bed_bin, mutating: $bed_m[0], validating: $bed_v[0]}}' >"$out"
jq -r 'def ms: if . == null then "-" else (.*100|round/100|tostring) + " ms" end;
  "apiserver: \(.created) pods created in \(.seconds) s (\(.pods_per_second|round)/s), \(.stamped_alice) stamped alice",
  "  as seen by kube-apiserver   p50        p99        mean       n",
  (["iddecorator (release)", .iddecorator_release], ["go reference", .go_reference],
   ["bed iddecorator mutate", .bed_webhooks.mutating], ["bed iddecorator validate", .bed_webhooks.validating]
   | "  \(.[0] | . + " " * (26 - length)) \(.[1].p50_ms|ms)  \(.[1].p99_ms|ms)  \(.[1].mean_ms|ms)  \(.[1].count)"),
  (.handling_time_logged_by_the_servers | "  own handling time (log): iddecorator p50 \(.iddecorator.p50_us) µs p99 \(.iddecorator.p99_us) µs; go reference p50 \(.go_reference.p50_us) µs p99 \(.go_reference.p99_us) µs")' "$out"
((failed == 0)) || { echo "apiserver bench: some pod creations failed" >&2; exit 1; }
