#!/usr/bin/env bash
# Proves the bed end to end with stock tools: kinit + curl SPNEGO gets a WebHDFS token for alice by
# proxy; a Hadoop client holding only a token file lists /user/alice and is refused /user/bob;
# after cancel the token is refused; with --kms, the KMS issues tokens too; with --yarn, the RM's
# REST API issues, renews and cancels an RM token for alice that a stock YarnClient uses; with
# --rbf, the HDFS Router issues a token a stock client uses for both subclusters, renew, cancel. Starts
# the bed if needed (same flags as hadoop-up.sh), leaves it running. Prints "N passed, N failed";
# exit 1 if anything failed.
set -euo pipefail
here=$(dirname "$0")
json=$("$here/hadoop-up.sh" "$@")
command -v jq >/dev/null || { echo "hadoop-smoke: jq missing: run e2e/scripts/install-deps.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$tmp/out"
  fi
}
refused() { # expected text, then a command that must fail printing it
  local want=$1
  shift
  ! "$@" && grep -qF -- "$want" "$tmp/out.err"
}

export KRB5_CONFIG KRB5CCNAME=FILE:$tmp/cc
KRB5_CONFIG=$(jq -r .krb5_conf "$json")
http=$(jq -r '.nameservices[0].namenodes[0].http' "$json")
rpc=$(jq -r '.nameservices[0].namenodes[0].rpc' "$json")
client="$here/hadoop-client.sh"

check "kinit -kt service keytab" kinit -kt "$(jq -r .service_keytab "$json")" "$(jq -r .service_principal "$json")"
check "curl --negotiate GETDELEGATIONTOKEN doas=alice" \
  sh -c "curl -sSf --max-time 30 --negotiate -u : '$http/webhdfs/v1/?op=GETDELEGATIONTOKEN&doas=alice&renewer=kube2hadoop' >'$tmp/dt.json'"
check "WebHDFS answer has a urlString" jq -e '.Token.urlString | length > 20' "$tmp/dt.json"
check "impersonating carol is refused" \
  sh -c "curl -sS --max-time 30 --negotiate -u : '$http/webhdfs/v1/?op=GETDELEGATIONTOKEN&doas=carol' | grep -q 'not allowed to impersonate'"
check "creds-write-real (RPC, proxy user)" "$client" creds-write-real "$tmp/real.tok"
check "ls /user/alice with the token" env HADOOP_TOKEN_FILE_LOCATION="$tmp/real.tok" "$client" ls /user/alice
check "ls /user/bob is refused" refused 'Permission denied: user=alice' \
  env HADOOP_TOKEN_FILE_LOCATION="$tmp/real.tok" sh -c "'$client' ls /user/bob 2>'$tmp/out.err'"
check "whoami says alice" sh -c "HADOOP_TOKEN_FILE_LOCATION='$tmp/real.tok' '$client' whoami 2>/dev/null | grep -qx alice"
check "WebHDFS token re-kinded works over RPC" sh -c \
  "'$client' creds-import '$tmp/web.tok' --url-string \"\$(jq -r .Token.urlString '$tmp/dt.json')\" --kind HDFS_DELEGATION_TOKEN --service '$rpc' &&
   HADOOP_TOKEN_FILE_LOCATION='$tmp/web.tok' '$client' put /user/alice/smoke-\$\$.txt"
check "renew as the service" "$client" renew "$tmp/real.tok"
check "cancel as the service" "$client" cancel "$tmp/real.tok"
check "cancelled token is refused" refused "can't be found in cache" \
  env HADOOP_TOKEN_FILE_LOCATION="$tmp/real.tok" sh -c "'$client' ls /user/alice 2>'$tmp/out.err'"
check "no token, no access" refused 'Client cannot authenticate' sh -c "'$client' ls / 2>'$tmp/out.err'"
if [[ $(jq '.kms | length' "$json") -gt 0 ]]; then
  kms=$(jq -r '.kms[0].http' "$json")
  check "KMS: curl --negotiate GETDELEGATIONTOKEN doas=alice" \
    sh -c "curl -sSf --max-time 30 --negotiate -u : '$kms/v1/?op=GETDELEGATIONTOKEN&doas=alice&renewer=kube2hadoop' | jq -e '.Token.urlString | length > 20'"
  check "KMS: a stock client collects a kms-dt with its HDFS token" \
    sh -c "'$client' creds-write-real '$tmp/kms.tok' | grep -q 'kind=kms-dt'"
fi
if [[ $(jq '.yarn' "$json") != null ]]; then
  rm_http=$(jq -r '.yarn.resourcemanagers[0].http' "$json")
  rm_dt=$rm_http/ws/v1/cluster/delegation-token
  check "YARN: curl --negotiate POST delegation-token doAs=alice" \
    sh -c "curl -sSf --max-time 30 --negotiate -u : -X POST -H 'Content-Type: application/json' -d '{\"renewer\":\"kube2hadoop\"}' '$rm_dt?doAs=alice' >'$tmp/rm.json'"
  check "YARN: the token is alice's, renewer kube2hadoop" jq -e '.owner == "alice" and .renewer == "kube2hadoop" and .kind == "RM_DELEGATION_TOKEN"' "$tmp/rm.json"
  check "YARN: impersonating carol is refused" \
    sh -c "curl -sS --max-time 30 --negotiate -u : -X POST -H 'Content-Type: application/json' -d '{}' '$rm_dt?doAs=carol' | grep -q 'not allowed to impersonate'"
  check "YARN: renew as the renewer" sh -c \
    "curl -sSf --max-time 30 --negotiate -u : -X POST -H \"Hadoop-YARN-RM-Delegation-Token: \$(jq -r .token '$tmp/rm.json')\" '$rm_dt/expiration' | jq -e '.\"expiration-time\" > 0'"
  check "YARN: yarn-wrap the REST token" "$client" yarn-wrap --url-string "$(jq -r .token "$tmp/rm.json")" --out "$tmp/rm.tok"
  check "YARN: yarn-apps with the token says alice" sh -c "'$client' yarn-apps --tokens '$tmp/rm.tok' | head -n1 | grep -qx 'as alice'"
  check "YARN: yarn-submit runs as alice" sh -c "'$client' yarn-submit --tokens '$tmp/rm.tok' --name k2h-smoke | grep -q ' user alice\$'"
  check "YARN: cancel" sh -c \
    "curl -sSf --max-time 30 --negotiate -u : -X DELETE -H \"Hadoop-YARN-RM-Delegation-Token: \$(jq -r .token '$tmp/rm.json')\" '$rm_dt'"
  check "YARN: cancelled token is refused" refused "can't be found in cache" \
    sh -c "'$client' yarn-apps --tokens '$tmp/rm.tok' 2>'$tmp/out.err'"
  check "YARN: yarn-token (RPC, proxy user) works for yarn-apps" sh -c \
    "'$client' yarn-token --out '$tmp/rm-ref.tok' | grep -q 'realUser=kube2hadoop/localhost@' && '$client' yarn-apps --tokens '$tmp/rm-ref.tok' >/dev/null"
fi
if [[ $(jq '.router' "$json") != null ]]; then
  r_http=$(jq -r '.router.http' "$json")
  r_conf=$(jq -r '.router_conf_dir' "$json")
  r_svc=$(jq -r '.router.token_service' "$json")
  rclient() { HADOOP_CONF_DIR=$r_conf "$client" "$@"; }
  check "RBF: curl --negotiate GETDELEGATIONTOKEN doas=alice at the router" \
    sh -c "curl -sSf --max-time 30 --negotiate -u : '$r_http/webhdfs/v1/?op=GETDELEGATIONTOKEN&renewer=kube2hadoop&doas=alice' >'$tmp/r.json' && jq -e '.Token.urlString | length > 20' '$tmp/r.json'"
  check "RBF: impersonating carol is refused" \
    sh -c "curl -sS --max-time 30 --negotiate -u : '$r_http/webhdfs/v1/?op=GETDELEGATIONTOKEN&doas=carol' | grep -q 'not allowed to impersonate carol'"
  check "RBF: hdfs-wrap gives HDFS_DELEGATION_TOKEN for $r_svc, owner alice" sh -c \
    "HADOOP_CONF_DIR='$r_conf' '$client' hdfs-wrap --url-string \"\$(jq -r .Token.urlString '$tmp/r.json')\" --out '$tmp/r.tok' |
     grep -q 'kind=HDFS_DELEGATION_TOKEN	service=$r_svc	owner=alice	renewer=kube2hadoop'"
  for p in $(jq -r '.router.paths[]' "$json"); do
    check "RBF: ls $(dirname "$p") through the router with only the router token" sh -c \
      "HADOOP_CONF_DIR='$r_conf' HADOOP_TOKEN_FILE_LOCATION='$tmp/r.tok' '$client' ls '$(dirname "$p")' | grep -q '	alice	.*	$p\$'"
  done
  for m in $(jq -r '.router.mounts | keys[]' "$json"); do
    check "RBF: $m/user/bob is refused" refused 'Permission denied: user=alice' \
      sh -c "HADOOP_CONF_DIR='$r_conf' HADOOP_TOKEN_FILE_LOCATION='$tmp/r.tok' '$client' ls '$m/user/bob' 2>'$tmp/out.err'"
  done
  check "RBF: renew at the router" sh -c \
    "curl -sSf --max-time 30 --negotiate -u : -X PUT \"$r_http/webhdfs/v1/?op=RENEWDELEGATIONTOKEN&token=\$(jq -r .Token.urlString '$tmp/r.json')\" | jq -e '.long > 0'"
  check "RBF: cancel at the router" sh -c \
    "curl -sSf --max-time 30 --negotiate -u : -X PUT \"$r_http/webhdfs/v1/?op=CANCELDELEGATIONTOKEN&token=\$(jq -r .Token.urlString '$tmp/r.json')\""
  check "RBF: the cancelled token is refused" refused "can't be found in cache" \
    sh -c "HADOOP_CONF_DIR='$r_conf' HADOOP_TOKEN_FILE_LOCATION='$tmp/r.tok' '$client' ls '$(jq -r '.router.mounts | keys[0]' "$json")/user/alice' 2>'$tmp/out.err'"
  check "RBF: creds-write-real (RPC, proxy user) via the router" sh -c \
    "HADOOP_CONF_DIR='$r_conf' '$client' creds-write-real '$tmp/r-rpc.tok' | grep -q 'service=$r_svc	owner=alice	renewer=kube2hadoop	realUser=kube2hadoop/localhost@'"
  check "RBF: that token lists every mount" sh -c \
    "for m in \$(jq -r '.router.mounts | keys[]' '$json'); do HADOOP_CONF_DIR='$r_conf' HADOOP_TOKEN_FILE_LOCATION='$tmp/r-rpc.tok' '$client' ls \$m/user/alice >/dev/null || exit 1; done"
  check "RBF: cancel via the client tool" rclient cancel "$tmp/r-rpc.tok"
fi
check "audit log counts getDelegationToken" sh -c "grep -q 'cmd=getDelegationToken' '$(jq -r .audit_log "$json")'"
kdestroy >/dev/null 2>&1 || true
echo "$passed passed, $failed failed"
((failed == 0))
