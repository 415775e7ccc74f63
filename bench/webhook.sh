#!/usr/bin/env bash
# Drive any admission webhook (iddecorator, a Go reference, ...) with the fixtures in
# bench/fixtures at concurrency 1, 16 and 64 back to back, then at a fixed arrival rate;
# print a table and write a JSON report.
#
#   bench/webhook.sh --target NAME --url https://127.0.0.1:PORT/mutate --ca CA.crt \
#                    [--pid SERVER_PID] [--out bench/results/NAME.json]
#
# Environment: LOADGEN (binary, default target/release/loadgen), BENCH_DURATION (5s),
# BENCH_WARMUP (1s), BENCH_CONCURRENCY (1,16,64), BENCH_RATE (2000 requests/s; empty: no
# fixed-rate run) over BENCH_RATE_CONCURRENCY (16) connections, BENCH_LOAD_CPU (pin the load
# generator to this CPU with taskset; unset: not pinned), BENCH_RT (1: under chrt -f 10).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
loadgen=${LOADGEN:-$root/target/release/loadgen}

target="" url="" ca="" pid="" out=""
while (($#)); do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --pid) pid=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "webhook.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $target && -n $url && -n $ca ]] || { echo "webhook.sh: --target, --url and --ca are required" >&2; exit 2; }
[[ -x $loadgen ]] || { echo "webhook.sh: $loadgen missing; run: cargo build --release -p loadgen" >&2; exit 2; }
out=${out:-$here/results/$target.json}

pin=()
[[ -n ${BENCH_LOAD_CPU:-} ]] && pin=(taskset -c "$BENCH_LOAD_CPU")
[[ ${BENCH_RT:-0} == 1 ]] && pin=(chrt -f 10 "${pin[@]}")
args=(run --target "$target" --url "$url" --ca "$ca"
  --fixture "pod=$here/fixtures/pod-create.json"
  --fixture "deployment=$here/fixtures/deployment-create.json"
  --duration "${BENCH_DURATION:-5s}" --warmup "${BENCH_WARMUP:-1s}"
  --out "$out")
[[ -n $pid ]] && args+=(--pid "$pid")
"${pin[@]}" "$loadgen" "${args[@]}" --concurrency "${BENCH_CONCURRENCY:-1,16,64}"
rate=${BENCH_RATE-2000}
if [[ -n $rate ]]; then
  "${pin[@]}" "$loadgen" "${args[@]}" --append --rate "$rate" \
    --concurrency "${BENCH_RATE_CONCURRENCY:-16}"
fi
