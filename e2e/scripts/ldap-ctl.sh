#!/usr/bin/env bash
# Stops and starts the slapd of ldap-up.sh on the same URL with the same data and bind password,
# so a token service configured for it sees a directory outage and the directory's return.
# usage: ldap-ctl.sh stop|start|status
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PATH=$PATH:/usr/sbin

dir=$STATE/ldap
logfile=$dir/slapd.log
if [ ! -s "$dir/env" ] || [ ! -s "$dir/slapd.conf" ]; then
  die "no LDAP bed in $dir: run e2e/scripts/ldap-up.sh first"
fi
url=$(sed -n 's/^K2H_LDAP_URL=//p' "$dir/env")
# And where pods reach it, if ldap-up.sh listened there too.
pod_url=$(sed -n 's/^K2H_LDAP_POD_URL=//p' "$dir/env")
listen="$url/${pod_url:+ $pod_url/}"
exec 9>"$dir.lock"
flock 9

answers() {
  ldapsearch -x -LLL -o nettimeout=2 -H "$url" -D "cn=kube2hadoop,ou=services,dc=k2h,dc=test" \
    -y "$dir/bind.password" -b "dc=k2h,dc=test" "(uid=alice)" dn >/dev/null 2>&1
}

case ${1:-} in
stop)
  stop_pid "$dir/slapd.pid"
  log "ldap-ctl: slapd on $url stopped (data and env kept)"
  ;;
start)
  if pid_alive "$dir/slapd.pid" && answers; then exit 0; fi
  stop_pid "$dir/slapd.pid"
  # The port may linger in TIME_WAIT; slapd sets SO_REUSEADDR, so it can bind at once.
  setsid slapd -f "$dir/slapd.conf" -h "$listen" -d stats >>"$logfile" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/slapd.pid"
  wait_for "slapd on $url" 20 "$logfile" answers
  log "ldap-ctl: slapd serves $url again (pid $(cat "$dir/slapd.pid"))"
  ;;
status) answers ;;
*) die "usage: $0 stop|start|status" ;;
esac
