#!/usr/bin/env bash
# `make bench`: build release binaries, start iddecorator on a loopback port with throwaway
# certificates, drive it with bench/webhook.sh, stop it. Results: bench/results/webhook.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}
port=${BENCH_PORT:-18443}

"$cargo" build --release -p iddecorator -p loadgen
bin=$root/target/release

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/loadgen" certs --dir "$work"
# Per-request log lines go to a file, as a collector would take them; they are part of the cost.
"$bin/iddecorator" --listen "127.0.0.1:$port" \
  --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" \
  --log-format json 2>"$work/iddecorator.log" &
server_pid=$!
"$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$work/ca.crt" --timeout 30s

"$here/webhook.sh" --target iddecorator --url "https://127.0.0.1:$port/mutate" \
  --ca "$work/ca.crt" --pid "$server_pid" --out "$here/results/webhook.json"

kill -TERM "$server_pid"
wait "$server_pid" && echo "iddecorator stopped cleanly" || echo "iddecorator exited with $?" >&2
server_pid=""
