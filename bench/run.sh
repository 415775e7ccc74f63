#!/usr/bin/env bash
# `make bench`: iddecorator and the Go reference (bench/goref) side by side, one after the
# other, pinned the same way (server on BENCH_SERVER_CPU, load generator on BENCH_LOAD_CPU),
# same certificate, same bodies; then the kube-apiserver's view of our webhook
# (bench/apiserver.sh). Writes bench/results/{iddecorator,go-ref,apiserver,webhook}.json and
# webhook.md. Nothing here asserts on timing.
#
# Environment: BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1), BENCH_APISERVER (1; 0 skips the
# control-plane part), BENCH_BUILD (1), BENCH_RT (1 where allowed), BENCH_RESULTS (bench/results), and those
# of webhook.sh and apiserver.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}
port=${BENCH_PORT:-18443}
results=${BENCH_RESULTS:-$here/results}
mkdir -p "$results"
export BENCH_LOAD_CPU=${BENCH_LOAD_CPU:-1}
server_cpu=${BENCH_SERVER_CPU:-0}
cores=$(nproc)
((server_cpu < cores && BENCH_LOAD_CPU < cores)) ||
  { echo "bench: needs CPUs $server_cpu and $BENCH_LOAD_CPU, this machine has $cores" >&2; exit 2; }

# Server and load generator run under SCHED_FIFO (chrt -f 10), both targets alike, where the
# user may (BENCH_RT=0 turns it off): on a machine shared with (niced) builds, every CFS time
# slice handed to them shows up as a multi-ms tail and a lower throughput that is not ours.
# The kernel's RT throttling still leaves the other processes 5 % of each core meanwhile.
if [[ -z ${BENCH_RT:-} ]]; then
  BENCH_RT=0
  chrt -f 10 true 2>/dev/null && BENCH_RT=1
fi
export BENCH_RT
prio=()
[[ $BENCH_RT == 1 ]] && prio=(chrt -f 10)
started=$SECONDS
# BENCH_BUILD=0 measures the binaries already in target/release (e.g. while the tree is mid-edit).
[[ ${BENCH_BUILD:-1} == 0 ]] || "$cargo" build --release -p iddecorator -p loadgen
bin=$root/target/release
goref=$("$here/goref/build.sh")

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

"$bin/loadgen" certs --dir "$work"

# measure NAME CMD...: start the server pinned, drive it, stop it. Per-request log lines go to
# a file, as a collector would take them; they are part of the cost for both servers.
measure() {
  local name=$1; shift
  "${prio[@]}" taskset -c "$server_cpu" "$@" 2>"$work/$name.log" &
  server_pid=$!
  "$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$work/ca.crt" --timeout 30s
  "$here/webhook.sh" --target "$name" --url "https://127.0.0.1:$port/mutate" \
    --ca "$work/ca.crt" --pid "$server_pid" --out "$results/$name.json"
  echo "$name: $(grep -c '"admission"' "$work/$name.log" || true) admission log lines"
  stop_server
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure iddecorator "$bin/iddecorator" --listen "127.0.0.1:$port" \
  --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" --log-format json
measure go-ref "$goref" --listen "127.0.0.1:$port" --cert-dir "$work"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

attach=()
if [[ ${BENCH_APISERVER:-1} != 0 ]]; then
  "$here/apiserver.sh" --out "$results/apiserver.json"
  attach=(--attach "apiserver=$results/apiserver.json")
fi

"$bin/loadgen" compare --ours "$results/iddecorator.json" --reference "$results/go-ref.json" \
  --out "$results/webhook.json" --markdown "$results/webhook.md" "${attach[@]}" \
  --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --meta "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --meta "iddecorator=$("$bin/iddecorator" --version)" \
  --meta "go_reference=sigs.k8s.io/controller-runtime $(awk '$1 == "sigs.k8s.io/controller-runtime" {print $2}' "$here/goref/go.mod"), $(cat "$(dirname "$(dirname "$goref")")/go-version")" \
  --meta "rustc=$(rustc --version)" \
  --meta "pinning=server taskset -c $server_cpu, loadgen taskset -c $BENCH_LOAD_CPU${prio[*]:+, both under ${prio[*]}}" \
  --meta "method=${BENCH_DURATION:-5s} per run after ${BENCH_WARMUP:-1s} warm-up; keep-alive; rate ${BENCH_RATE-2000}/s over ${BENCH_RATE_CONCURRENCY:-16} connections" \
  --meta "loadavg_before=$load_before" --meta "loadavg_after=$load_after" \
  --meta "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "bench: done in $((SECONDS - started))s"
