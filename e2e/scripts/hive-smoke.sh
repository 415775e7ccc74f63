#!/usr/bin/env bash
# Proves the bed's Hive metastore (hadoop-up.sh --hive) with a stock HiveMetaStoreClient: the token
# service (kube2hadoop/localhost, Kerberos SASL) gets a HIVE_DELEGATION_TOKEN for alice by proxy
# (get_delegation_token(alice, kube2hadoop)); a client holding only that token lists databases and
# creates one that alice owns; carol is refused; renew by the renewer works, by alice is refused;
# after cancel the token is refused. Starts the bed if needed (flags as hadoop-up.sh; --hive is
# added), leaves it running. Prints "N passed, N failed"; exit 1 if anything failed.
set -euo pipefail
here=$(dirname "$0")
[[ " $* " == *" --hive "* ]] || set -- "$@" --hive
json=$("$here/hadoop-up.sh" "$@")
K2H_HADOOP_STATE=$(dirname "$json")
export K2H_HADOOP_STATE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>"$tmp/out.err"; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$tmp/out" "$tmp/out.err" | grep -v '^\s*at ' | head -20 || true
  fi
  cp "$tmp/out" "$tmp/last" # what the next check greps
}
refused() { # expected text, then a command that must fail printing it
  local want=$1
  shift
  ! "$@" && grep -qF -- "$want" "$tmp/out.err"
}
hc="$here/hive-client.sh"
tok=$tmp/alice.tok
alice=(env "K2H_PRINCIPAL=alice@$(jq -r .realm "$json")" "K2H_KEYTAB=$(jq -r .users.alice.keytab "$json")")
db=alice_db_$RANDOM

check "get_delegation_token(alice, kube2hadoop) as kube2hadoop/localhost" "$hc" token --out "$tok"
check "token: HIVE_DELEGATION_TOKEN, service = signature, owner alice, realUser the service" \
  grep -qP "^token\t.*kind=HIVE_DELEGATION_TOKEN\tservice=$(jq -r .hive.token_signature "$json")\towner=alice\trenewer=kube2hadoop\trealUser=kube2hadoop/localhost@" "$tmp/last"
check "only the token: list databases" env HADOOP_TOKEN_FILE_LOCATION="$tok" "$hc" dbs
check "... default is there" grep -qP '^db\tdefault$' "$tmp/last"
check "only the token: create database, owner alice" env HADOOP_TOKEN_FILE_LOCATION="$tok" "$hc" dbs --create "$db"
check "... owner=alice" grep -qP "^created\t$db\towner=alice\t" "$tmp/last"
check "metastore audit: ugi=alice" grep -qP "ugi=alice\t.*cmd=create_database_req: $db" "$(jq -r .hive.audit_log "$json")"
check "token signature mismatch: no token picked, GSS fails" \
  refused "GSS initiate failed" env K2H_HMS_SIGNATURE=other HADOOP_TOKEN_FILE_LOCATION="$tok" "$hc" dbs
check "proxy rule refuses carol" refused "User: kube2hadoop/localhost@EXAMPLE.COM is not allowed to impersonate carol" "$hc" token --out "$tmp/carol.tok" --owner carol
check "alice may not ask for bob's token" refused "User: alice@EXAMPLE.COM is not allowed to impersonate bob" "${alice[@]}" "$hc" token --out "$tmp/bob.tok" --owner bob
check "renew as kube2hadoop" "$hc" renew "$tok"
check "renew as alice: non-matching renewer" refused "alice tries to renew a token" "${alice[@]}" "$hc" renew "$tok"
check "cancel as kube2hadoop" "$hc" cancel "$tok"
check "cancelled token refused" refused "DIGEST-MD5: IO error acquiring password" env HADOOP_TOKEN_FILE_LOCATION="$tok" "$hc" dbs
check "renew a cancelled token: does not exist" refused "token does not exist" "$hc" renew "$tok"
echo "$passed passed, $failed failed"
((failed == 0))
