#!/usr/bin/env bash
# Starts Debian's slapd on a loopback port with the bed's tree (e2e/ldap/tree.ldif) and writes
# e2e/.state/ldap/env with what the token service needs (URL, bind DN, password file, base DN).
# Prints the env file's path. Idempotent: a running bed that answers is reused. On failure it
# prints the end of slapd's log. Env: K2H_LDAP_PORT (default: a free port, so that beds of several
# checkouts on one machine do not collide). With the real node up (node.sh), slapd also listens
# on the pod gateway, for a token service running as a pod (K2H_LDAP_POD_URL).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=$STATE/ldap
url=
bind_dn="cn=kube2hadoop,ou=services,dc=k2h,dc=test"
base_dn="dc=k2h,dc=test"
logfile=$dir/slapd.log
mkdir -p "$dir"
exec 9>"$dir.lock"
flock 9

for tool in slapd slapadd slappasswd ldapsearch; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    die "$tool not found: run e2e/scripts/install-deps.sh (packages slapd, ldap-utils)"
done
PATH=$PATH:/usr/sbin

# answers [URL]: slapd answers a search at URL (default: the loopback one).
answers() {
  ldapsearch -x -LLL -o nettimeout=2 -H "${1:-$url}" -D "$bind_dn" -y "$dir/bind.password" \
    -b "$base_dn" "(uid=alice)" dn >/dev/null 2>&1
}

# Pods reach slapd at the gateway only while the real node's bridge holds that address.
pod_gateway=
[ -s "$STATE/node/ports" ] && pod_gateway=$NODE_GATEWAY
[ -s "$dir/env" ] && url=$(sed -n 's/^K2H_LDAP_URL=//p' "$dir/env")
had_pod_url=$(sed -n 's/^K2H_LDAP_POD_URL=//p' "$dir/env" 2>/dev/null || true)
if pid_alive "$dir/slapd.pid" && [ -n "$url" ] && answers &&
  { [ -z "$pod_gateway" ] || { [ -n "$had_pod_url" ] && answers "$had_pod_url"; }; }; then
  echo "$dir/env"
  exit 0
fi
stop_pid "$dir/slapd.pid"
port=${K2H_LDAP_PORT:-$(free_port)}
url=ldap://127.0.0.1:$port
listen="$url/"
pod_url=
if [ -n "$pod_gateway" ]; then
  pod_url=ldap://$pod_gateway:$port
  listen="$listen $pod_url/"
fi

rm -rf "$dir/data" "$dir/slapd.conf" "$dir/env"
mkdir -p "$dir/data"
chmod 700 "$dir"
# Fresh random passwords each start; the bind password is handed over as a file.
umask 077
head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/bind.password"
printf '%s' "$(cat "$dir/bind.password")" >"$dir/bind.password.tmp" && mv "$dir/bind.password.tmp" "$dir/bind.password"
rootpw=$(slappasswd -s "$(head -c 18 /dev/urandom | base64)")
bindhash=$(slappasswd -T "$dir/bind.password")
modules=/usr/lib/ldap
[ -e "$modules/back_mdb.la" ] || modules=$(dirname "$(find /usr/lib -name 'back_mdb*.la' -print -quit 2>/dev/null)")

sed -e "s|@STATE@|$dir|g" -e "s|@ROOTPW@|$rootpw|" -e "s|@MODULES@|$modules|" \
  "$E2E_DIR/ldap/slapd.conf.in" >"$dir/slapd.conf"
sed -e "s|@PASSWORD@|$bindhash|" "$E2E_DIR/ldap/tree.ldif" >"$dir/tree.ldif"
slapadd -f "$dir/slapd.conf" -l "$dir/tree.ldif" >"$logfile" 2>&1 ||
  die_component "slapadd (loading e2e/ldap/tree.ldif)" "$logfile"

# -d keeps slapd in the foreground (no daemon); setsid detaches it from this shell.
setsid slapd -f "$dir/slapd.conf" -h "$listen" -d stats >>"$logfile" 2>&1 </dev/null 9>&- &
echo $! >"$dir/slapd.pid"
wait_for "slapd on $url" 20 "$logfile" answers
[ -z "$pod_url" ] || wait_for "slapd on $pod_url" 20 "$logfile" answers "$pod_url"

cat >"$dir/env" <<ENV
K2H_LDAP_URL=$url
K2H_LDAP_BIND_DN=$bind_dn
K2H_LDAP_BIND_PASSWORD_FILE=$dir/bind.password
K2H_LDAP_BASE_DN=$base_dn
ENV
[ -z "$pod_url" ] || echo "K2H_LDAP_POD_URL=$pod_url" >>"$dir/env"
log "ldap-up: slapd serves $url (pid $(cat "$dir/slapd.pid"))"
echo "$dir/env"
