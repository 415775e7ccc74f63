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
# The Hive metastore (--hive) is the harness's child JVM; the harness stops it, but a harness that
# was killed (SIGKILL below) leaves it running: stop it by the pid in cluster.json, if it is ours.
stop_metastore() {
  local hpid
  hpid=$(grep -o '"hive": {[^}]*"pid": [0-9]*' "$K2H_HADOOP_STATE/cluster.json" 2>/dev/null | grep -o '[0-9]*$') || return 0
  { tr '\0' ' ' <"/proc/$hpid/cmdline"; } 2>/dev/null |
    grep -qF -- "-Dderby.system.home=$K2H_HADOOP_STATE/hive " || return 0
  kill -TERM "$hpid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$hpid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL "$hpid" 2>/dev/null || true
  echo "hadoop-down: killed the metastore (pid $hpid)" >&2
}
pid=$(k2h_hadoop_pid) || {
  stop_metastore
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
stop_metastore
rm -f "$K2H_HADOOP_STATE/harness.pid"
echo "hadoop-down: stopped pid $pid" >&2
