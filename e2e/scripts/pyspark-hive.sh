#!/usr/bin/env bash
# PySpark with Hive support against the bed's metastore (hadoop-up.sh --hive), authenticated only
# by the tokens of HADOOP_TOKEN_FILE_LOCATION (an empty ticket cache: Kerberos cannot be used):
#   HADOOP_TOKEN_FILE_LOCATION=FILE pyspark-hive.sh DB.TABLE
# runs e2e/spark/read_table.py (spark.sql("SELECT * FROM DB.TABLE"), prints "row\t..." lines);
# exit 1 with "error: Class: message" lines on stderr when Spark fails.
#
# Spark 4.0's builtin Hive 2.3 client calls get_table, which Hive 4's metastore no longer serves
# (HIVE-26537), so Spark loads Hive 4.0.1's client instead (spark.sql.hive.metastore.version=4.0.1,
# jars=path): e2e/spark/pom.xml resolved by Maven into ~/.m2 (≈ 190 MB, shared with e2e/hive).
# The pyspark wheel goes into a venv outside the repo, made once and reused:
# ${K2H_PYSPARK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kube2hadoop}/pyspark-$K2H_PYSPARK_VERSION (≈ 500 MB).
# Env: K2H_PYSPARK_VERSION (4.0.5), K2H_PYSPARK_CACHE, K2H_SPARK_LOG_LEVEL (ERROR), JAVA_HOME.
set -euo pipefail
. "$(dirname "$0")/hadoop-lib.sh"
[[ $# -eq 1 && $1 == *.* ]] || k2h_die "usage: HADOOP_TOKEN_FILE_LOCATION=FILE $(basename "$0") DB.TABLE"
table=$1
json=$K2H_HADOOP_STATE/cluster.json
[[ -s $json ]] || k2h_die "no bed at $K2H_HADOOP_STATE: run hadoop-up.sh --hive"
[[ $(jq -r .hive "$json") != null ]] || k2h_die "the bed has no metastore: run hadoop-up.sh --hive"
[[ -n ${HADOOP_TOKEN_FILE_LOCATION:-} ]] || k2h_die "HADOOP_TOKEN_FILE_LOCATION names no credentials file"
command -v "$K2H_JAVA" >/dev/null || k2h_die "java not found: run e2e/scripts/install-deps.sh"

version=${K2H_PYSPARK_VERSION:-4.0.5}
cache=${K2H_PYSPARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube2hadoop}
venv=$cache/pyspark-$version
mkdir -p "$cache"
(
  flock 9
  [[ -e $venv/.k2h-installed ]] && exit 0
  command -v python3 >/dev/null || k2h_die "python3 not found"
  echo "$(basename "$0"): installing pyspark $version into $venv (first run downloads ≈ 450 MB)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || k2h_die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check "pyspark==$version" >&2 || k2h_die "pip install pyspark==$version failed"
  touch "$venv/.k2h-installed"
) 9>"$cache/.pyspark-$version.lock"

# Hive 4.0.1's metastore client for Spark's isolated loader, resolved once (and again when the pom changes).
module=$K2H_ROOT/e2e/spark
deps=$module/target/classpath.txt
mkdir -p "$module/target"
(
  flock 9
  [[ -s $deps && ! $module/pom.xml -nt $deps ]] && exit 0
  command -v mvn >/dev/null || k2h_die "mvn not found: run e2e/scripts/install-deps.sh"
  echo "$(basename "$0"): resolving e2e/spark (first run downloads Hive 4.0.1's client into ~/.m2)" >&2
  cd "$module" || exit 1
  mvn -q -B dependency:build-classpath -Dmdep.outputFile=target/classpath.txt 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' >&2 || k2h_die "maven resolution of e2e/spark failed (see above)"
  [[ -s $deps ]] || k2h_die "maven wrote no e2e/spark classpath"
) 9>"$module/target/.build.lock"
# Spark qualifies a path without a scheme with fs.defaultFS (HDFS): name the local files.
jars=$(tr ':' '\n' <"$deps" | sed 's|^|file://|' | paste -sd, -)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset KRB5_CLIENT_KTNAME
export KRB5CCNAME=FILE:$work/no-ticket
export HADOOP_CONF_DIR
HADOOP_CONF_DIR=$(jq -r .hadoop_conf_dir "$json")
export PYSPARK_PYTHON=$venv/bin/python
export SPARK_LOCAL_IP=127.0.0.1
[[ -n ${JAVA_HOME:-} ]] || JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v "$K2H_JAVA")")")")
export JAVA_HOME
log4j=$work/log4j2.properties
printf '%s\n' "rootLogger.level = ${K2H_SPARK_LOG_LEVEL:-ERROR}" 'rootLogger.appenderRef.stderr.ref = console' \
  'appender.console.type = Console' 'appender.console.name = console' 'appender.console.target = SYSTEM_ERR' \
  'appender.console.layout.type = PatternLayout' 'appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n' >"$log4j"

# No Kerberos ticket (empty cache above): the metastore client takes the HIVE_DELEGATION_TOKEN
# whose service is its token signature, HDFS the HDFS_DELEGATION_TOKEN for the NameNode.
conf=(
  --conf "spark.driver.extraJavaOptions=-Djava.security.krb5.conf=$(jq -r .krb5_conf "$json") -Dlog4j.configurationFile=file:$log4j -Djava.net.preferIPv4Stack=true"
  --conf spark.driver.memory=768m
  --conf spark.ui.enabled=false
  --conf spark.sql.shuffle.partitions=1
  --conf "spark.sql.warehouse.dir=file://$work/warehouse"
  --conf spark.sql.hive.metastore.version=4.0.1
  --conf spark.sql.hive.metastore.jars=path
  --conf "spark.sql.hive.metastore.jars.path=$jars"
  --conf spark.hadoop.hadoop.security.authentication=kerberos
  --conf "spark.hadoop.hive.metastore.uris=$(jq -r .hive.uri "$json")"
  --conf spark.hadoop.hive.metastore.sasl.enabled=true
  --conf "spark.hadoop.hive.metastore.kerberos.principal=$(jq -r .hive.principal "$json")"
  --conf "spark.hadoop.hive.metastore.token.signature=$(jq -r .hive.token_signature "$json")"
  --conf "spark.hadoop.hive.exec.scratchdir=file://$work/scratch"
  --conf "spark.hadoop.hive.exec.local.scratchdir=$work/local-scratch"
)
cd "$work"
status=0
"$venv/bin/python" "$K2H_ROOT/e2e/spark/read_table.py" "$table" "${conf[@]}" || status=$?
exit "$status"
