#!/usr/bin/env bash
# `make bench-sustained` (also part of `make bench`): issue 9's load target for the webhook,
# 5,000 admissions/s for 60 s through TLS, open loop, over a few HTTP/2 connections as
# kube-apiserver keeps them, Pod and Deployment AdmissionReviews in turn. iddecorator and the
# Go controller-runtime reference (bench/goref) one after the other, pinned like `make bench`
# (server on BENCH_SERVER_CPU, loadgen on BENCH_LOAD_CPU, both under chrt -f 10 where allowed).
# Writes bench/results/sustained-{iddecorator,go-ref}.json, webhook-sustained.json and
# webhook-sustained.md. Nothing here asserts on timing.
#
# Environment: BENCH_SUSTAINED_RATE (5000), BENCH_SUSTAINED_DURATION (60s),
# BENCH_SUSTAINED_WARMUP (2s), BENCH_SUSTAINED_CONNECTIONS (4), BENCH_SERVER_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_RT (1 where allowed), BENCH_BUILD (1), BENCH_PORT (18443),
# BENCH_RESULTS (bench/results).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
root=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}
port=${BENCH_PORT:-18443}
results=${BENCH_RESULTS:-$here/results}
rate=${BENCH_SUSTAINED_RATE:-5000}
duration=${BENCH_SUSTAINED_DURATION:-60s}
warmup=${BENCH_SUSTAINED_WARMUP:-2s}
connections=${BENCH_SUSTAINED_CONNECTIONS:-4}
server_cpu=${BENCH_SERVER_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
mkdir -p "$results"
((server_cpu < $(nproc) && load_cpu < $(nproc))) ||
  { echo "bench-sustained: needs CPUs $server_cpu and $load_cpu, this machine has $(nproc)" >&2; exit 2; }
# SCHED_FIFO for both sides and the builds, as in run.sh (see lib.sh).
bench_setup

# sustain NAME CMD...: start the server pinned, hold the rate, stop it. One JSON log line per
# request goes to a file for both servers, as in run.sh.
sustain() {
  local name=$1; shift
  start_server "$name" "$@"
  "${prio[@]}" taskset -c "$load_cpu" "$bin/loadgen" sustained --target "$name" \
    --url "https://127.0.0.1:$port/mutate" --ca "$work/ca.crt" --pid "$server_pid" \
    --fixture "pod=$here/fixtures/pod-create.json" \
    --fixture "deployment=$here/fixtures/deployment-create.json" \
    --rate "$rate" --duration "$duration" --warmup "$warmup" --connections "$connections" \
    --out "$results/sustained-$name.json"
  stop_and_count "$name"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sustain iddecorator "$bin/iddecorator" --listen "127.0.0.1:$port" \
  --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" --log-format json \
  --stamp-key-file "$work/stamp.key"
sustain go-ref "$goref" --listen "127.0.0.1:$port" --cert-dir "$work"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
bench_meta

"$bin/loadgen" sustained-compare --ours "$results/sustained-iddecorator.json" \
  --reference "$results/sustained-go-ref.json" \
  --out "$results/webhook-sustained.json" --markdown "$results/webhook-sustained.md" \
  "${meta[@]}" \
  --meta "cores=$(nproc)" \
  --meta "pinning=server taskset -c $server_cpu, loadgen taskset -c $load_cpu${prio[*]:+, both under ${prio[*]}}" \
  --meta "loadavg_before=$load_before" --meta "loadavg_after=$load_after"
echo "bench-sustained: done in $((SECONDS - started))s"
