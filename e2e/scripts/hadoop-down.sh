#!/usr/bin/env bash
# Stops the test bed started by hadoop-up.sh (SIGTERM, then SIGKILL after a grace period). Keeps
# the state dir (logs, audit log) for inspection; hadoop-up.sh wipes it on the next start.
# Idempotent: nothing running is not an error.
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"

if [[ ${1:-} != --locked ]]; then
  mkdir -p "$(dirname "$K2H_HADOOP_STATE")"
  exec 8>"$K2H_HADOOP_STATE.lock"
  flock 8
fi
pid=$(k2h_hadoop_pid) || {
  rm -f "$K2H_HADOOP_STATE/harness.pid"
  exit 0
}
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 60); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
  echo "hadoop-down: pid $pid ignored SIGTERM for 30s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$K2H_HADOOP_STATE/harness.pid"
echo "hadoop-down: stopped pid $pid" >&2
