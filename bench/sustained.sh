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
# SCHED_FIFO for both sides, as in run.sh: niced builds on the same cores otherwise show up
# as multi-ms tails that are not the servers'.
if [[ -z ${BENCH_RT:-} ]]; then
  BENCH_RT=0
  chrt -f 10 true 2>/dev/null && BENCH_RT=1
fi
prio=()
[[ $BENCH_RT == 1 ]] && prio=(chrt -f 10)
started=$SECONDS
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

# sustain NAME CMD...: start the server pinned, hold the rate, stop it. One JSON log line per
# request goes to a file for both servers, as in run.sh.
sustain() {
  local name=$1; shift
  "${prio[@]}" taskset -c "$server_cpu" "$@" 2>"$work/$name.log" &
  server_pid=$!
  "$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$work/ca.crt" --timeout 30s
  "${prio[@]}" taskset -c "$load_cpu" "$bin/loadgen" sustained --target "$name" \
    --url "https://127.0.0.1:$port/mutate" --ca "$work/ca.crt" --pid "$server_pid" \
    --fixture "pod=$here/fixtures/pod-create.json" \
    --fixture "deployment=$here/fixtures/deployment-create.json" \
    --rate "$rate" --duration "$duration" --warmup "$warmup" --connections "$connections" \
    --out "$results/sustained-$name.json"
  echo "$name: $(grep -c '"admission"' "$work/$name.log" || true) admission log lines"
  stop_server
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sustain iddecorator "$bin/iddecorator" --listen "127.0.0.1:$port" \
  --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" --log-format json
sustain go-ref "$goref" --listen "127.0.0.1:$port" --cert-dir "$work"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$bin/loadgen" sustained-compare --ours "$results/sustained-iddecorator.json" \
  --reference "$results/sustained-go-ref.json" \
  --out "$results/webhook-sustained.json" --markdown "$results/webhook-sustained.md" \
  --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --meta "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --meta "iddecorator=$("$bin/iddecorator" --version)" \
  --meta "go_reference=sigs.k8s.io/controller-runtime $(awk '$1 == "sigs.k8s.io/controller-runtime" {print $2}' "$here/goref/go.mod"), $(cat "$(dirname "$(dirname "$goref")")/go-version")" \
  --meta "rustc=$(rustc --version)" \
  --meta "cores=$(nproc)" \
  --meta "pinning=server taskset -c $server_cpu, loadgen taskset -c $load_cpu${prio[*]:+, both under ${prio[*]}}" \
  --meta "loadavg_before=$load_before" --meta "loadavg_after=$load_after" \
  --meta "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "bench-sustained: done in $((SECONDS - started))s"
