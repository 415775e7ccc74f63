#!/usr/bin/env bash
# `make bench-pod-start`: what kube2hadoop adds to a pod's start on the bed's real node, against
# the same pod without injection, side by side in one run (e2e/src/bin/pod-start-bench.rs).
# Writes bench/results/pod-start.json and pod-start.md. Nothing here asserts on timing.
#
# Uses a running `make e2e-up` bed with its real node (else brings one up and takes it down),
# the shared Kerberized HDFS and slapd (started when not running, stopped after if this script
# started them), and a release token-service.
# Environment: BENCH_POD_START_PODS (15 of each kind), BENCH_RESULTS (bench/results),
# BENCH_BUILD (1), K2H_E2E_STATE_DIR (the bed, as the e2e scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo=${CARGO:-cargo}
results=${BENCH_RESULTS:-$here/results}
state=${K2H_E2E_STATE_DIR:-$root/e2e/.state}
die() { echo "bench-pod-start: $*" >&2; exit 1; }

bed_up() {
  [[ -s $state/env ]] || return 1
  # shellcheck source=/dev/null
  (source "$state/env" && curl -fsS --max-time 3 --cacert "$K2H_E2E_CA" \
    --cert "$K2H_E2E_PKI/admin.crt" --key "$K2H_E2E_PKI/admin.key" \
    "$K2H_E2E_APISERVER/readyz" >/dev/null)
}
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ ${BENCH_BUILD:-1} == 1 ]]; then
  (cd "$root" && "$cargo" build -q --release -p token-service && "$cargo" build -q -p e2e --bin pod-start-bench)
fi
brought_up="" hadoop_was="" ldap_was=""
alive "$state/hadoop/harness.pid" && hadoop_was=1
alive "$state/ldap/slapd.pid" && ldap_was=1
cleanup() {
  [[ -n $hadoop_was ]] || "$root/e2e/scripts/hadoop-down.sh" >/dev/null 2>&1 || true
  [[ -n $ldap_was ]] || "$root/e2e/scripts/ldap-down.sh" >/dev/null 2>&1 || true
  [[ -z $brought_up ]] || "$root/e2e/scripts/down.sh" || true
}
trap cleanup EXIT
if ! bed_up; then
  echo "bench-pod-start: bringing the test bed up" >&2
  brought_up=1
  "$root/e2e/scripts/up.sh"
fi
# shellcheck source=/dev/null
source "$state/env"
[[ -n ${K2H_E2E_NODE:-} ]] || die "the bed has no real node (K2H_E2E_REAL_NODE=0?)"
"$root/e2e/scripts/ldap-up.sh" >/dev/null
"$root/e2e/scripts/hadoop-up.sh" --kms >/dev/null
K2H_E2E_TOKEN_SERVICE_BIN=$root/target/release/token-service \
  "$root/target/debug/pod-start-bench" "${BENCH_POD_START_PODS:-15}" "$results"
