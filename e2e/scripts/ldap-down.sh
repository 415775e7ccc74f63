#!/usr/bin/env bash
# Stops the slapd started by ldap-up.sh. Keeps e2e/.state/ldap (log, data) for inspection;
# ldap-up.sh rebuilds it on the next start. Idempotent: nothing running is not an error.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=$STATE/ldap
mkdir -p "$dir"
exec 9>"$dir.lock"
flock 9
if pid_alive "$dir/slapd.pid"; then
  stop_pid "$dir/slapd.pid"
  log "ldap-down: stopped slapd"
fi
rm -f "$dir/slapd.pid" "$dir/env"
