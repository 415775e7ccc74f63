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
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
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

# Server and load generator under SCHED_FIFO, both targets alike; builds (see lib.sh).
bench_setup
export BENCH_RT

# measure NAME CMD...: start the server pinned, drive it, stop it. Per-request log lines go to
# a file, as a collector would take them; they are part of the cost for both servers.
measure() {
  local name=$1; shift
  start_server "$name" "$@"
  "$here/webhook.sh" --target "$name" --url "https://127.0.0.1:$port/mutate" \
    --ca "$work/ca.crt" --pid "$server_pid" --out "$results/$name.json"
  stop_and_count "$name"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure iddecorator "$bin/iddecorator" --listen "127.0.0.1:$port" \
  --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" --log-format json \
  --stamp-key-file "$work/stamp.key"
measure go-ref "$goref" --listen "127.0.0.1:$port" --cert-dir "$work"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

attach=()
if [[ ${BENCH_APISERVER:-1} != 0 ]]; then
  "$here/apiserver.sh" --out "$results/apiserver.json"
  attach=(--attach "apiserver=$results/apiserver.json")
fi

bench_meta
"$bin/loadgen" compare --ours "$results/iddecorator.json" --reference "$results/go-ref.json" \
  --out "$results/webhook.json" --markdown "$results/webhook.md" "${attach[@]}" \
  "${meta[@]}" \
  --meta "pinning=server taskset -c $server_cpu, loadgen taskset -c $BENCH_LOAD_CPU${prio[*]:+, both under ${prio[*]}}" \
  --meta "method=${BENCH_DURATION:-5s} per run after ${BENCH_WARMUP:-1s} warm-up; keep-alive; rate ${BENCH_RATE-2000}/s over ${BENCH_RATE_CONCURRENCY:-16} connections" \
  --meta "loadavg_before=$load_before" --meta "loadavg_after=$load_after"
echo "bench: done in $((SECONDS - started))s"
