#!/usr/bin/env bash
# Runs a stock Hadoop client against the test bed, authenticated only by the delegation tokens in
# HADOOP_TOKEN_FILE_LOCATION: KRB5CCNAME points at an empty cache, so no ticket can be used.
#   hadoop-client.sh ls PATH | put PATH | whoami | creds-write FILE ... | creds-read FILE | ...
# (`hadoop-client.sh help` lists the commands.) Exit 0 on success; 1 with "error: Class: message"
# lines on stderr when Hadoop refuses; 2 on a bad command line.
# Env: HADOOP_CONF_DIR and KRB5_CONFIG default to the bed's (K2H_HADOOP_STATE).
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"

k2h_hadoop_build
conf=${HADOOP_CONF_DIR:-$K2H_HADOOP_STATE/conf}
krb5=${KRB5_CONFIG:-$K2H_HADOOP_STATE/krb5.conf}
[[ -s $conf/core-site.xml ]] || k2h_die "no $conf/core-site.xml: start the bed with hadoop-up.sh or set HADOOP_CONF_DIR"

empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
unset KRB5_CLIENT_KTNAME
export KRB5CCNAME=FILE:$empty/no-ticket
status=0
"$K2H_JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${K2H_JAVA_OPENS[@]}" \
  "-Dk2h.log.level=${K2H_HADOOP_LOG_LEVEL:-ERROR}" "-Djava.security.krb5.conf=$krb5" -cp "$conf:$(k2h_hadoop_classpath)" \
  io.kube2hadoop.e2e.ClientTools "$@" || status=$?
exit "$status"
