# Shared settings for the e2e scripts; sourced, not run.
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
# K2H_E2E_STATE_DIR gives a private bed (its own ports, kubeconfig, Hadoop and LDAP dirs), so
# suites that restart components can run beside others.
STATE=${K2H_E2E_STATE_DIR:-$E2E_DIR/.state}
# shellcheck source=../cluster/versions.env
source "$E2E_DIR/cluster/versions.env"
CACHE=${K2H_CACHE:-$HOME/.cache/kube2hadoop}
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
KWOK_BIN=$CACHE/kwok-$KWOK_VERSION/bin
# The training operator's binary (bin/) and its own manifests (crds/, rbac/, webhook/).
TRAINING_OPERATOR_DIR=$CACHE/training-operator-$TRAINING_OPERATOR_VERSION
# The machine's /usr/bin/kubectl is not the real one: always use ours.
KUBECTL=$K8S_BIN/kubectl

# The training operator's cert rotator checks a hard-coded global path; a bed that had to create
# it leaves a marker, and the last bed to stop removes it (training-operator.sh, down.sh).
OPERATOR_GLOBAL_DIR=/tmp/k8s-webhook-server
OPERATOR_GLOBAL_MARKER=.made-by-kube2hadoop-e2e

# remove_operator_global_certs: that global dir, once no training operator runs, if a bed made it.
remove_operator_global_certs() {
  [ -e "$OPERATOR_GLOBAL_DIR/$OPERATOR_GLOBAL_MARKER" ] || return 0
  pgrep -f "training-operator.v1" >/dev/null 2>&1 && return 0
  rm -rf "$OPERATOR_GLOBAL_DIR"
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# die_component NAME LOGFILE: fail naming the component, with the end of its log.
die_component() {
  log "ERROR: $1 failed; last lines of $2:"
  tail -n 30 "$2" >&2 2>/dev/null || true
  exit 1
}

# ensure_go: a Go toolchain at GO_VERSION or newer on PATH. An installed go >= 1.21 fetches
# the pinned one itself (GOTOOLCHAIN, checked against the checksum database); without go, the
# toolchain module's zip comes from the module proxy into the cache. Used by build.sh,
# manifests/monitoring/check.sh (promtool) and charts/helm.sh.
ensure_go() {
  local have
  have=$(go env GOVERSION 2>/dev/null || true)
  have=${have#go}
  if [ -n "$have" ] && [ "$(printf '%s\n' "$GO_VERSION" "$have" | sort -V | head -1)" = "$GO_VERSION" ]; then
    export GOTOOLCHAIN=local
  elif [ -n "$have" ] && [ "$(printf '%s\n' 1.21 "$have" | sort -V | head -1)" = 1.21 ]; then
    export GOTOOLCHAIN=go$GO_VERSION
  else
    local dir=$CACHE/go-$GO_VERSION arch
    arch=$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
    local mod=v0.0.1-go$GO_VERSION.linux-$arch
    if [ ! -x "$dir/bin/go" ]; then
      log "fetching Go $GO_VERSION from the module proxy"
      mkdir -p "$CACHE/build"
      curl -fsSL --max-time 600 -o "$CACHE/build/go.zip" \
        "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/$mod.zip"
      rm -rf "$CACHE/build/go-unzip" && python3 -m zipfile -e "$CACHE/build/go.zip" "$CACHE/build/go-unzip"
      mv "$CACHE/build/go-unzip/golang.org/toolchain@$mod" "$dir"
      chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
      rm -rf "$CACHE/build/go.zip" "$CACHE/build/go-unzip"
    fi
    export PATH=$dir/bin:$PATH GOTOOLCHAIN=local
  fi
}

# timed LABEL CMD...: run CMD and print how long it took.
timed() {
  local label=$1 start=$SECONDS; shift
  "$@"
  log "$label took $((SECONDS - start))s"
}

# free_port: a free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for DESC TIMEOUT_S LOGFILE CMD...: poll CMD until it succeeds or fail naming DESC.
wait_for() {
  local desc=$1 timeout=$2 logfile=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die_component "$desc (not ready after ${timeout}s)" "$logfile"
    sleep 0.5
  done
}

# pid_alive FILE: the process whose pid is in FILE is running.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid FILE: stop the process recorded in FILE (TERM, then KILL after 10s).
stop_pid() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Where pods on the real node (node.sh) reach this machine: the bridge address. With the real
# node on, the API server listens there too (up.sh), so pods reach it through the `kubernetes`
# Service like in any cluster.
NODE_GATEWAY=${K2H_E2E_NODE_GATEWAY:-10.244.0.1}
# The installed token service's Service address (install.sh; fixed: its certificate names it).
INSTALLED_TOKEN_SERVICE_IP=10.96.80.80

# apiserver_url: the API server of this bed ($STATE/ports must be sourced).
apiserver_url() { echo "https://${APISERVER_HOST:-127.0.0.1}:${APISERVER_PORT:?source \$STATE/ports first}"; }

# write_kubeconfig FILE NAME CERT KEY: a one-context kubeconfig for a component with a client
# certificate of the bed's CA.
write_kubeconfig() {
  local file=$1 name=$2 cert=$3 key=$4
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$(apiserver_url)", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$cert", client-key: "$key"}
contexts:
- name: $name
  context: {cluster: e2e, user: $name}
current-context: $name
KC
}

