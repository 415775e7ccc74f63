#!/usr/bin/env bash
# Restarts one component of a running test bed with the flags, ports and data up.sh gave it,
# or only stops it. Used by the fault tests (e2e/tests/faults_cluster.rs).
# usage: restart.sh COMPONENT | restart.sh stop COMPONENT | restart.sh start COMPONENT
#   COMPONENT: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
set -euo pipefail
here=$(dirname "$0")
case ${1:-} in
stop) exec "$here/up.sh" stop "${2:?usage: $0 stop COMPONENT}" ;;
start) exec "$here/up.sh" restart "${2:?usage: $0 start COMPONENT}" ;;
"") echo "usage: $0 COMPONENT | stop COMPONENT | start COMPONENT" >&2; exit 2 ;;
*) exec "$here/up.sh" restart "$1" ;;
esac
