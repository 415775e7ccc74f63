# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Sourced by hadoop-up.sh, hadoop-down.sh and hadoop-client.sh: paths, JVM flags, build step.
# K2H_HADOOP_STATE overrides the bed's work dir; K2H_HADOOP_LOG_LEVEL the log4j level (harness
# WARN, client tools ERROR so stderr holds only the failure).
K2H_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
K2H_HADOOP_MODULE=$K2H_ROOT/e2e/hadoop
K2H_HADOOP_DEFAULT_STATE=${K2H_E2E_STATE_DIR:-$K2H_ROOT/e2e/.state}/hadoop
K2H_HADOOP_STATE=${K2H_HADOOP_STATE:-$K2H_HADOOP_DEFAULT_STATE}
K2H_HADOOP_JAR=$K2H_HADOOP_MODULE/target/k2h-hadoop-e2e.jar
K2H_HADOOP_DEPS=$K2H_HADOOP_MODULE/target/classpath.txt
K2H_JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

# Hadoop 3.4 on Java 17 reflects into JDK internals (Kerberos config, direct buffers, UGI).
K2H_JAVA_OPENS=(
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-exports=java.base/sun.net.dns=ALL-UNNAMED
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5.internal=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5.internal.ktab=ALL-UNNAMED
  -Djava.net.preferIPv4Stack=true
)

k2h_die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# Builds the harness jar and its runtime classpath file when missing or older than the sources.
# Serialised with flock: several test processes may call this at once.
k2h_hadoop_build() {
  command -v "$K2H_JAVA" >/dev/null || k2h_die "java not found: run e2e/scripts/install-deps.sh"
  mkdir -p "$K2H_HADOOP_MODULE/target"
  (
    flock 9
    if [[ -s $K2H_HADOOP_JAR && -s $K2H_HADOOP_DEPS ]] &&
      [[ -z $(find "$K2H_HADOOP_MODULE/src" "$K2H_HADOOP_MODULE/pom.xml" -newer "$K2H_HADOOP_JAR" -print -quit) ]]; then
      exit 0
    fi
    command -v mvn >/dev/null || k2h_die "mvn not found: run e2e/scripts/install-deps.sh"
    echo "$(basename "$0"): building e2e/hadoop (first run downloads Hadoop into ~/.m2)" >&2
    cd "$K2H_HADOOP_MODULE" || exit 1
    # Maven's jansi prints colour resets even with -B; strip them.
    mvn -q -B package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt 2>&1 |
      sed 's/\x1b\[[0-9;]*m//g' >&2 || k2h_die "maven build of e2e/hadoop failed (see above)"
    touch "$K2H_HADOOP_JAR"
  ) 9>"$K2H_HADOOP_MODULE/target/.build.lock"
}

# The Hive metastore's classpath (harness flag --hive runs it as a separate JVM): e2e/hive is a
# dependency set only (no code), resolved into target/classpath.txt when missing or older than its pom.
K2H_HIVE_MODULE=$K2H_ROOT/e2e/hive
K2H_HIVE_DEPS=$K2H_HIVE_MODULE/target/classpath.txt
k2h_hive_build() {
  mkdir -p "$K2H_HIVE_MODULE/target"
  (
    flock 9
    if [[ -s $K2H_HIVE_DEPS && ! $K2H_HIVE_MODULE/pom.xml -nt $K2H_HIVE_DEPS ]]; then
      exit 0
    fi
    echo "$(basename "$0"): resolving e2e/hive (first run downloads the Hive metastore into ~/.m2)" >&2
    cd "$K2H_HIVE_MODULE" || exit 1
    mvn -q -B dependency:build-classpath -Dmdep.outputFile=target/classpath.txt 2>&1 |
      sed 's/\x1b\[[0-9;]*m//g' >&2 || k2h_die "maven resolution of e2e/hive failed (see above)"
    [[ -s $K2H_HIVE_DEPS ]] || k2h_die "maven wrote no e2e/hive classpath"
  ) 9>"$K2H_HIVE_MODULE/target/.build.lock"
}

k2h_hadoop_classpath() {
  echo "$K2H_HADOOP_JAR:$(cat "$K2H_HADOOP_DEPS")"
}

# Prints the harness pid if the one recorded in the state dir is alive and really ours.
k2h_hadoop_pid() {
  local pidfile=$K2H_HADOOP_STATE/harness.pid pid
  [[ -s $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'io.kube2hadoop.e2e.Harness' || return 1
  echo "$pid"
}

# Prints pids of harnesses started for this work dir (any, recorded or not); fails if none.
k2h_hadoop_orphans() {
  local found=1 f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "io.kube2hadoop.e2e.Harness --workdir $K2H_HADOOP_STATE "; then
      echo "$pid"
      found=0
    fi
  done
  return $found
}
