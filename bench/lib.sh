# shellcheck shell=bash disable=SC2154,SC2034  # inputs set by the caller, outputs used by it
# Sourced by run.sh and sustained.sh (not run): the parts they share for pitting a pinned
# server against loadgen. The caller sets cargo, here, root, port and server_cpu first.

# bench_prio: SCHED_FIFO (chrt -f 10) for server and load generator where the user may;
# BENCH_RT=0 turns it off. On a machine shared with (niced) builds, every CFS time slice handed
# to them shows up as a multi-ms tail and a lower throughput that is not ours; the kernel's RT
# throttling still leaves the other processes 5 % of each core. Sets BENCH_RT and prio.
bench_prio() {
  if [[ -z ${BENCH_RT:-} ]]; then
    BENCH_RT=0
    chrt -f 10 true 2>/dev/null && BENCH_RT=1
  fi
  prio=()
  if [[ $BENCH_RT == 1 ]]; then prio=(chrt -f 10); fi
}

# bench_setup: bench_prio; a release build of iddecorator and loadgen (BENCH_BUILD=0 measures
# the binaries already in target/release, e.g. while the tree is mid-edit) and of the Go
# reference; then bench_workdir. Sets started, bin and goref.
bench_setup() {
  bench_prio
  started=$SECONDS
  [[ ${BENCH_BUILD:-1} == 0 ]] || "$cargo" build --release -p iddecorator -p loadgen
  bin=$root/target/release
  goref=$("$here/goref/build.sh")
  bench_workdir
}

# bench_workdir: a scratch dir with loadgen's certificates and a stamp key (stamp.key) in
# $work, removed (and the server stopped) on exit.
bench_workdir() {
  work=$(mktemp -d)
  server_pid=""
  trap 'stop_server; rm -rf "$work"' EXIT
  "$bin/loadgen" certs --dir "$work"
  (umask 077 && openssl rand -base64 32 >"$work/stamp.key")
}

stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

# start_server NAME CMD...: CMD pinned to server_cpu, its stderr (one JSON log line per request,
# part of the cost for both servers) in $work/NAME.log; returns once it answers /readyz.
start_server() {
  local name=$1; shift
  "${prio[@]}" taskset -c "$server_cpu" "$@" 2>"$work/$name.log" &
  server_pid=$!
  "$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$work/ca.crt" --timeout 30s
}

# stop_and_count NAME: stops the server and says how many admissions it logged.
stop_and_count() {
  echo "$1: $(grep -c '"admission"' "$work/$1.log" || true) admission log lines"
  stop_server
}

# bench_meta: the --meta arguments every comparison carries (date, commit, versions, CPU) in
# the array meta.
bench_meta() {
  meta=(
    --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    --meta "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    --meta "iddecorator=$("$bin/iddecorator" --version)"
    --meta "go_reference=sigs.k8s.io/controller-runtime $(awk '$1 == "sigs.k8s.io/controller-runtime" {print $2}' "$here/goref/go.mod"), $(cat "$(dirname "$(dirname "$goref")")/go-version")"
    --meta "rustc=$(rustc --version)"
    --meta "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  )
}
