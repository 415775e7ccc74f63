#!/usr/bin/env bash
# Fault injection on a running Kerberized HDFS bed (hadoop-up.sh), through the harness's control
# port (cluster.json key "control"). Each command returns when done.
#   hadoop-ctl.sh nn-stop [INDEX]    stop NameNode INDEX (default 0): its ports refuse connections
#   hadoop-ctl.sh nn-start [INDEX]   start it again on the same ports; returns once it has left
#                                    safe mode (its tokens survive: they are in its edit log)
# The KDC is not restarted here (MiniKdc would come back with new keys): put the fault proxy of
# e2e/src/faults.rs in front of it instead (see e2e/hadoop/README.md).
# Env: K2H_HADOOP_STATE as for hadoop-up.sh.
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"

usage() {
  sed -n '2,9p' "$0" >&2
  exit 2
}
[[ $# -ge 1 ]] || usage
cmd=$1 index=${2:-0}
[[ $index =~ ^[0-9]+$ ]] || usage
case $cmd in
  nn-stop) path=/namenode/stop ;;
  nn-start) path=/namenode/start ;;
  *) usage ;;
esac
json=$K2H_HADOOP_STATE/cluster.json
k2h_hadoop_pid >/dev/null || k2h_die "no bed running in $K2H_HADOOP_STATE: start it with hadoop-up.sh"
control=$(jq -r '.control // empty' "$json")
[[ -n $control ]] || k2h_die "$json has no control port: the bed predates it; restart it (hadoop-down.sh; hadoop-up.sh)"
# A NameNode restart reloads its edits and waits for the DataNode: allow a few minutes.
curl -sS --fail-with-body --max-time 180 -X POST "$control$path?index=$index"
