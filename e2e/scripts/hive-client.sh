#!/usr/bin/env bash
# Stock Hive metastore client tools against the bed's metastore (hadoop-up.sh --hive):
#   hive-client.sh token --out FILE [--owner alice] [--renewer kube2hadoop] [--service S]
#   hive-client.sh read FILE | dbs [--create NAME] | table --create DB.T | table --read DB.T | renew FILE | cancel FILE
# "token", "renew", "cancel" log in from the token service's keytab; "dbs" has an empty ticket
# cache, so only the tokens in HADOOP_TOKEN_FILE_LOCATION authenticate it.
# Env: K2H_HMS_SIGNATURE (the client's metastore.token.signature; default the bed's), K2H_PRINCIPAL and
# K2H_KEYTAB (who "token", "renew", "cancel" log in as; default the token service)
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"
json=$K2H_HADOOP_STATE/cluster.json
[[ -s $json ]] || k2h_die "no bed at $K2H_HADOOP_STATE: run hadoop-up.sh --hive"
[[ $(jq -r .hive "$json") != null ]] || k2h_die "the bed has no metastore: run hadoop-up.sh --hive"
jar=$K2H_HIVE_MODULE/target/k2h-hive-e2e.jar
if [[ ! -s $jar || -n $(find "$K2H_HIVE_MODULE/src" "$K2H_HIVE_MODULE/pom.xml" -newer "$jar" -print -quit) ]]; then
  (cd "$K2H_HIVE_MODULE" && mvn -q -B package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' >&2) || k2h_die "maven build of e2e/hive failed"
  touch "$jar"
fi
export K2H_HMS_URI=$(jq -r .hive.uri "$json")
export K2H_HMS_PRINCIPAL=$(jq -r .hive.principal "$json")
export K2H_HMS_SIGNATURE=${K2H_HMS_SIGNATURE-$(jq -r .hive.token_signature "$json")}
export K2H_PRINCIPAL=${K2H_PRINCIPAL:-$(jq -r .service_principal "$json")}
export K2H_KEYTAB=${K2H_KEYTAB:-$(jq -r .service_keytab "$json")}
cc=$(mktemp -d)
trap 'rm -rf "$cc"' EXIT
export KRB5CCNAME=FILE:$cc/none
exec "$K2H_JAVA" "${K2H_JAVA_OPENS[@]}" "-Djava.security.krb5.conf=$(jq -r .krb5_conf "$json")" \
  -Dlog4j2.level="${K2H_HADOOP_LOG_LEVEL:-ERROR}" -Droot.logger=ERROR,console \
  -cp "$(jq -r .hadoop_conf_dir "$json"):$jar:$(cat "$K2H_HIVE_DEPS")" io.kube2hadoop.e2e.hive.HiveTools "$@"
