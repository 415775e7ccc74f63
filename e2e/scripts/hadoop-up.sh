#!/usr/bin/env bash
# Starts the Kerberized HDFS test bed (MiniKdc + MiniDFSCluster; optionally KMS, YARN) in the
# background and prints the path of its cluster.json. Idempotent: a bed already running with the same flags is reused, one
# with other flags is restarted. Flags go to the harness:
#   --nameservices 1|2  --renew-interval-ms N  --max-lifetime-ms N  --key-update-interval-ms N  --kms
#   --yarn (also a Kerberized YARN ResourceManager with one NodeManager)
#   --hive (also a Kerberized Hive standalone metastore, a separate JVM started by the harness)
#   --rbf (also a Kerberized HDFS Router in front of two nameservices; implies --nameservices 2)
#   --pod-gateway IP (added when the bed's real node is up: pods reach HDFS at that address)
# Env: K2H_HADOOP_STATE (work dir, default e2e/.state/hadoop), K2H_HADOOP_START_TIMEOUT (s, 240),
#      K2H_HADOOP_HEAP (default 768m), K2H_HADOOP_LOG_LEVEL (WARN).
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"

# With the bed's real node up, pods must reach HDFS too (the harness's --pod-gateway).
node_ports=${K2H_E2E_STATE_DIR:-$K2H_ROOT/e2e/.state}/node/ports
if [[ -s $node_ports && " $* " != *" --pod-gateway "* ]]; then
  set -- "$@" --pod-gateway "${K2H_E2E_NODE_GATEWAY:-10.244.0.1}"
fi

k2h_hadoop_build
hive_args=()
if [[ " $* " == *" --hive "* ]]; then
  k2h_hive_build
  # The state dir's copy (below): a changed dependency set restarts the bed, like a new harness jar.
  hive_args=(--hive-classpath "$K2H_HADOOP_STATE/hive-classpath.txt")
fi
mkdir -p "$(dirname "$K2H_HADOOP_STATE")"
exec 8>"$K2H_HADOOP_STATE.lock"
flock 8

json=$K2H_HADOOP_STATE/cluster.json
args="$*"
if pid=$(k2h_hadoop_pid); then
  # Same flags and the same harness build: reuse. A bed started from an older build lacks what
  # newer tests use (cluster.json keys, the control port), so it is restarted.
  if [[ -s $json && "$(cat "$K2H_HADOOP_STATE/harness.args" 2>/dev/null)" == "$args" ]] &&
    cmp -s "$K2H_HADOOP_JAR" "$K2H_HADOOP_STATE/k2h-hadoop-e2e.jar" &&
    { ((${#hive_args[@]} == 0)) || cmp -s "$K2H_HIVE_DEPS" "$K2H_HADOOP_STATE/hive-classpath.txt"; }; then
    echo "$json"
    exit 0
  fi
  echo "hadoop-up: restarting the bed (pid $pid) with flags: $args (new flags or harness build)" >&2
  "$(dirname "$0")/hadoop-down.sh" --locked
fi

# A harness for this work dir without a pid file (its dir was wiped) stops itself within seconds
# (it watches cluster.json); wait for it so two beds never share the dir.
for _ in $(seq 1 20); do
  k2h_hadoop_orphans >/dev/null || break
  sleep 0.5
done

# Only ever wipe the default dir, an empty one, or one this script made.
if [[ -e $K2H_HADOOP_STATE ]]; then
  [[ $K2H_HADOOP_STATE == "$K2H_HADOOP_DEFAULT_STATE" || -e $K2H_HADOOP_STATE/.k2h-hadoop-state ||
    -z $(ls -A "$K2H_HADOOP_STATE") ]] ||
    k2h_die "$K2H_HADOOP_STATE exists and was not made by hadoop-up.sh; remove it or set K2H_HADOOP_STATE"
  rm -rf "$K2H_HADOOP_STATE"
fi
mkdir -p "$K2H_HADOOP_STATE"
touch "$K2H_HADOOP_STATE/.k2h-hadoop-state"
printf '%s' "$args" >"$K2H_HADOOP_STATE/harness.args"
log=$K2H_HADOOP_STATE/harness.log
# Run from a copy: a rebuild (hadoop-client.sh rebuilds when sources change) must not rewrite the
# jar under a running JVM.
cp "$K2H_HADOOP_JAR" "$K2H_HADOOP_STATE/k2h-hadoop-e2e.jar"
((${#hive_args[@]} == 0)) || cp "$K2H_HIVE_DEPS" "$K2H_HADOOP_STATE/hive-classpath.txt"

# setsid: the bed outlives this script and the test process that ran it, until hadoop-down.sh.
setsid "$K2H_JAVA" "-Xmx${K2H_HADOOP_HEAP:-768m}" -XX:+UseSerialGC "${K2H_JAVA_OPENS[@]}" \
  "-Dk2h.log.level=${K2H_HADOOP_LOG_LEVEL:-WARN}" -cp "$K2H_HADOOP_STATE/k2h-hadoop-e2e.jar:$(cat "$K2H_HADOOP_DEPS")" io.kube2hadoop.e2e.Harness --workdir "$K2H_HADOOP_STATE" "$@" "${hive_args[@]}" \
  </dev/null >"$log" 2>&1 8>&- &
pid=$!
echo "$pid" >"$K2H_HADOOP_STATE/harness.pid"

deadline=$((SECONDS + ${K2H_HADOOP_START_TIMEOUT:-240}))
until grep -q '^READY ' "$log" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 60 "$log" >&2
    k2h_die "the harness exited before READY (log: $log)"
  fi
  if ((SECONDS >= deadline)); then
    tail -n 60 "$log" >&2
    kill -TERM "$pid" 2>/dev/null || true
    k2h_die "no READY within ${K2H_HADOOP_START_TIMEOUT:-240}s (log: $log)"
  fi
  sleep 0.5
done
echo "hadoop-up: ready in ${SECONDS}s, pid $pid" >&2
echo "$json"
