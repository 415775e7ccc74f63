#!/usr/bin/env bash
# Stops every process of the test bed and removes its state (etcd's tmpfs dir included).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# Clients of the apiserver together, then the apiserver, then etcd.
stop_all() {
  local name
  for name in "$@"; do
    if pid_alive "$STATE/pids/$name.pid"; then log "stopping $name"; fi
    stop_pid "$STATE/pids/$name.pid" &
  done
  wait
}
# The real node first: its kubelet still reports to the API server while its pods stop.
"$E2E_DIR/scripts/node.sh" down
stop_all training-operator iddecorator kwok kube-scheduler kube-controller-manager
stop_all kube-apiserver
stop_all etcd
remove_operator_global_certs
if [ -s "$STATE/ports" ]; then
  etcd_data=$(sed -n 's/^ETCD_DATA=//p' "$STATE/ports")
  case $etcd_data in /dev/shm/kube2hadoop-e2e-etcd.*) rm -rf "$etcd_data" ;; esac
fi
# The Hadoop and LDAP beds keep their state under e2e/.state too and are stopped by their own
# scripts; never pull their files from under a running process.
# K2H_E2E_KEEP_LOGS=1 keeps e2e/.state/logs (e.g. after a failed run, for CI artifacts).
keep=(! -name hadoop ! -name ldap)
[ -n "${K2H_E2E_KEEP_LOGS:-}" ] && keep+=(! -name logs)
[ -d "$STATE" ] && find "$STATE" -mindepth 1 -maxdepth 1 "${keep[@]}" -exec rm -rf {} +
rmdir "$STATE" 2>/dev/null || true
log "test bed down${K2H_E2E_KEEP_LOGS:+; logs kept in $STATE/logs}"
