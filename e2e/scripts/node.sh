#!/usr/bin/env bash
# The bed's real node: containerd + runc + the CNI bridge (Debian's packages) and a kubelet built
# from the same Kubernetes module as the control plane, registered as node k2h-node. Pods on it
# really run: images come from target/images (imported, never pulled), their network is a bridge
# of the bed's own (k2h0, 10.244.0.0/24), and the host reaches them and they reach the host at
# the bridge's address (10.244.0.1), where the bed serves what pods need.
#
#   node.sh net    only the bridge (up.sh makes it first: the API server listens on it)
#   node.sh up     start it (idempotent); needs up.sh's control plane
#   node.sh import import target/images/ again (after images.sh) into the running node
#   node.sh down   stop it and leave the machine as found: pods' netns, mounts, cgroups, shims,
#                  the bridge, and the sysctls kubelet and the bridge plugin change
#
# kube-proxy (nftables mode) routes Service addresses for pods: its rules live in nftables tables
# of their own (ip and ip6 `kube-proxy`), deleted on down; nothing else on the host changes.
#
# Everything lives under e2e/.state/node (containerd's root and state, kubelet's root dir, the
# CNI config and IPAM); the node is tainted kube2hadoop.io/real-node so only pods that ask for it
# (toleration and nodeSelector) land on it; kwok nodes keep the rest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_NAME=${K2H_E2E_NODE_NAME:-k2h-node}
BRIDGE=k2h0
SUBNET=10.244.0.0/24
GATEWAY=$NODE_GATEWAY
NODE=$STATE/node
PKI=$STATE/pki
SOCK=$NODE/containerd/containerd.sock
# Sysctls kubelet (kernel tunables) and the bridge plugin (forwarding) set on the host.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Fixed paths kubelet and libcni write whatever their configuration (device-plugin socket, CNI
# result cache, log symlinks): removed on down when the bed made them.
HOST_DIRS=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers)
# Pods live in this cgroup subtree of every controller, removed on down.
CGROUP_ROOT=/kube2hadoop-e2e
# containerd 1.6 keeps shim sockets in a fixed dir; removed on down if the bed made it.
SHIM_DIR=/run/containerd
SNAPSHOTTER=${K2H_E2E_SNAPSHOTTER:-overlayfs}

ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

require() {
  local t
  for t in containerd runc ctr ip; do
    command -v "$t" >/dev/null || die "$t is missing: run e2e/scripts/install-deps.sh"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing: run e2e/scripts/install-deps.sh"
  [ -x "$K8S_BIN/kubelet" ] && [ -x "$K8S_BIN/kube-proxy" ] ||
    die "no kubelet or kube-proxy in $K8S_BIN: run e2e/scripts/build.sh"
  command -v nft >/dev/null || die "nft is missing (kube-proxy's nftables mode): run e2e/scripts/install-deps.sh"
  [ "$(id -u)" = 0 ] || die "the real node needs root (containers, mounts, a bridge)"
}

# note_host_dirs: which of HOST_DIRS this bed is about to create.
note_host_dirs() {
  [ -e "$NODE/host-dirs.ours" ] && return 0
  local d
  for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] || echo "$d"; done >"$NODE/host-dirs.ours"
}

remove_host_dirs() {
  [ -s "$NODE/host-dirs.ours" ] || return 0
  local d
  while read -r d; do
    case $d in /var/lib/kubelet | /var/lib/cni | /var/log/pods | /var/log/containers) rm -rf "$d" ;; esac
  done <"$NODE/host-dirs.ours"
}

save_sysctls() {
  [ -s "$NODE/sysctls.saved" ] && return 0
  local k
  for k in "${SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$NODE/sysctls.saved"
}

restore_sysctls() {
  [ -s "$NODE/sysctls.saved" ] || return 0
  local line
  while read -r line; do sysctl -q -w "$line" >/dev/null || log "could not restore $line"; done \
    <"$NODE/sysctls.saved"
  rm -f "$NODE/sysctls.saved"
}

bridge_up() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    [ -e "$NODE/bridge.ours" ] || die "a bridge $BRIDGE exists that this bed did not make (another bed?)"
    return 0
  fi
  # A route into the subnet that is not ours means the address range is taken.
  if ip route show to match "$GATEWAY" | grep -v '^default' | grep -q .; then
    die "$SUBNET is already routed on this machine: set K2H_E2E_NODE_GATEWAY and the subnet"
  fi
  ip link add "$BRIDGE" type bridge
  touch "$NODE/bridge.ours"
  ip addr add "$GATEWAY/${SUBNET#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

write_containerd_config() {
  mkdir -p "$NODE/containerd" "$NODE/cni/net.d" "$NODE/cni/ipam"
  cat >"$NODE/containerd/config.toml" <<TOML
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
# Plugins that would write outside the bed or need kernel features the bed does not use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  # Without CAP_SYS_RESOURCE runc cannot lower a sandbox's OOM score below its parent's.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$SNAPSHOTTER"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
    max_conf_num = 1
TOML
  # The bridge is made by bridge_up; no masquerading (pods only talk to the host), no iptables.
  cat >"$NODE/cni/net.d/10-k2h.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "k2h-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$NODE/cni/ipam",
              "ranges": [[{"subnet": "$SUBNET", "gateway": "$GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
JSON
}

write_kubelet_config() {
  mkdir -p "$NODE/kubelet"
  write_kubeconfig "$NODE/kubelet.kubeconfig" kubelet "$PKI/node-$NODE_NAME.crt" "$PKI/node-$NODE_NAME.key"
  cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
podCIDR: $SUBNET
maxPods: 60
registerWithTaints:
- {key: kube2hadoop.io/real-node, value: "true", effect: NoSchedule}
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: "1%", imagefs.available: "1%"}
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
fileCheckFrequency: 0s
podLogsDir: $NODE/pod-logs
resolvConf: /etc/resolv.conf
logging: {format: text}
YAML
}

# import_images: the product images and the bed's own (pause, busybox) into containerd.
import_images() {
  local dir=$REPO_DIR/target/images archive
  [ -s "$dir/kube2hadoop-init-fetcher.oci.tar" ] || "$E2E_DIR/scripts/images.sh"
  [ -s "$dir/bed/pause.oci.tar" ] || "$E2E_DIR/scripts/images.sh" bed
  [ -s "$dir/bed/hadoop-client.oci.tar" ] || "$E2E_DIR/scripts/images.sh" hadoop-client
  for archive in "$dir"/*.oci.tar "$dir"/bed/*.oci.tar; do
    ctr_ images import --snapshotter "$SNAPSHOTTER" "$archive" >/dev/null ||
      die "ctr images import $archive failed"
  done
}

# kube-proxy: Service addresses for pods (clusterCIDR: their traffic keeps its source address,
# which the token service's IP mode relies on). Conntrack limits and timeouts are left as they
# are (0); its metrics and health listen on loopback.
write_kube_proxy_config() {
  write_kubeconfig "$NODE/kube-proxy.kubeconfig" kube-proxy "$PKI/kube-proxy.crt" "$PKI/kube-proxy.key"
  cat >"$NODE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $SUBNET
nodePortAddresses: [$GATEWAY/32]
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# nft_tables_ours: remember that no kube-proxy table existed before ours (another kube-proxy on
# this machine would own them: refuse rather than delete its rules on down).
nft_tables_ours() {
  [ -e "$NODE/nft.ours" ] && return 0
  local fam
  for fam in ip ip6; do
    if nft list table "$fam" kube-proxy >/dev/null 2>&1; then
      die "an nftables table $fam kube-proxy exists that this bed did not make (a kube-proxy runs here?)"
    fi
  done
  touch "$NODE/nft.ours"
}

remove_nft_tables() {
  [ -e "$NODE/nft.ours" ] || return 0
  local fam
  for fam in ip ip6; do
    nft list table "$fam" kube-proxy >/dev/null 2>&1 || continue
    nft delete table "$fam" kube-proxy || log "could not delete the nftables table $fam kube-proxy"
  done
  rm -f "$NODE/nft.ours"
}

start_kube_proxy() {
  pid_alive "$STATE/pids/kube-proxy.pid" && return 0
  nft_tables_ours
  write_kube_proxy_config
  log "starting kube-proxy (nftables)"
  setsid "$K8S_BIN/kube-proxy" --config "$NODE/kube-proxy.yaml" \
    >>"$STATE/logs/kube-proxy.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/kube-proxy.pid"
  # Ready once its first sync has written the table.
  wait_for "kube-proxy" 60 "$STATE/logs/kube-proxy.log" \
    curl -fsS --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
}

# start_net: the bridge, and the sysctls and host dirs noted before anything changes them.
start_net() {
  require
  mkdir -p "$NODE"
  save_sysctls
  note_host_dirs
  bridge_up
}

start_node() {
  require
  [ -s "$STATE/ports" ] || die "no test bed in $STATE: run e2e/scripts/up.sh first"
  # shellcheck source=/dev/null
  source "$STATE/ports"
  mkdir -p "$NODE" "$STATE/logs" "$STATE/pids"
  if [ ! -s "$NODE/ports" ]; then
    {
      echo "KUBELET_PORT=10250"
      echo "KUBELET_HEALTHZ_PORT=$(free_port)"
      echo "KUBE_PROXY_HEALTHZ_PORT=$(free_port)"
      echo "KUBE_PROXY_METRICS_PORT=$(free_port)"
    } >"$NODE/ports"
  fi
  # shellcheck source=/dev/null
  source "$NODE/ports"
  start_net
  [ -d "$SHIM_DIR" ] || { mkdir -p "$SHIM_DIR" && touch "$NODE/shim-dir.ours"; }
  write_containerd_config
  write_kubelet_config
  make_cgroups
  if ! pid_alive "$STATE/pids/containerd.pid"; then
    log "starting containerd"
    setsid containerd --config "$NODE/containerd/config.toml" \
      >>"$STATE/logs/containerd.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/containerd.pid"
  fi
  wait_for "containerd" 30 "$STATE/logs/containerd.log" ctr --address "$SOCK" version
  timed "images imported" import_images
  if ! pid_alive "$STATE/pids/kubelet.pid"; then
    log "starting kubelet ($NODE_NAME on $GATEWAY)"
    setsid "$K8S_BIN/kubelet" --config "$NODE/kubelet.yaml" \
      --kubeconfig "$NODE/kubelet.kubeconfig" --root-dir "$NODE/kubelet" \
      --hostname-override "$NODE_NAME" --node-ip "$GATEWAY" \
      --node-labels "type=real,kube2hadoop.io/real-node=true" \
      >>"$STATE/logs/kubelet.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/kubelet.pid"
  fi
  wait_ready
  start_kube_proxy
}

# umount_under DIR: every mount below DIR, deepest first.
umount_under() {
  local dir=$1 m
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"; done
}

# remove_cgroups: the pods' cgroups, leaves first, in every v1 controller.
remove_cgroups() {
  local c
  for c in /sys/fs/cgroup/*/; do
    [ -d "$c${CGROUP_ROOT#/}" ] || continue
    find "$c${CGROUP_ROOT#/}" -depth -type d -exec rmdir {} + 2>/dev/null ||
      log "could not remove every cgroup under $c${CGROUP_ROOT#/}"
  done
}

# make_cgroups: the subtree kubelet puts pods under must exist in every controller; cpuset's
# needs its parent's CPUs and memory nodes before any task can join.
make_cgroups() {
  local c
  for c in /sys/fs/cgroup/*/; do
    [ -d "$c${CGROUP_ROOT#/}" ] && continue
    mkdir "$c${CGROUP_ROOT#/}" || die "cannot create the cgroup $c${CGROUP_ROOT#/}"
    if [ -e "$c/cpuset.cpus" ]; then
      cat "$c/cpuset.cpus" >"$c${CGROUP_ROOT#/}/cpuset.cpus"
      cat "$c/cpuset.mems" >"$c${CGROUP_ROOT#/}/cpuset.mems"
    fi
  done
}

# wait_ready: the node reports Ready; fail early, with kubelet's log, if kubelet exits.
wait_ready() {
  local deadline=$((SECONDS + 90))
  until "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=5s \
    wait --for=condition=Ready --timeout=2s "node/$NODE_NAME" >/dev/null 2>&1; do
    pid_alive "$STATE/pids/kubelet.pid" || die_component "kubelet (exited)" "$STATE/logs/kubelet.log"
    pid_alive "$STATE/pids/containerd.pid" || die_component "containerd (exited)" "$STATE/logs/containerd.log"
    ((SECONDS < deadline)) || die_component "kubelet (node $NODE_NAME not Ready after 90s)" "$STATE/logs/kubelet.log"
    sleep 0.5
  done
}

stop_node() {
  # kubelet first (it would restart what we stop), then every container, then containerd; the
  # node object goes while the API server is still reachable on the bridge.
  stop_pid "$STATE/pids/kube-proxy.pid"
  stop_pid "$STATE/pids/kubelet.pid"
  "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --context admin --request-timeout=5s \
    delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if pid_alive "$STATE/pids/containerd.pid"; then
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  stop_pid "$STATE/pids/containerd.pid"
  # Shims of this containerd outlive it by design.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true
  sleep 0.2
  if [ -d "$NODE" ]; then umount_under "$NODE"; fi
  remove_cgroups
  remove_nft_tables
  if [ -e "$NODE/bridge.ours" ]; then
    ip link del "$BRIDGE" 2>/dev/null || true
    ip link show "$BRIDGE" >/dev/null 2>&1 && log "could not remove the bridge $BRIDGE"
  fi
  restore_sysctls
  remove_host_dirs
  if [ -e "$NODE/shim-dir.ours" ]; then
    rm -rf "$SHIM_DIR"
    rm -f "$NODE/shim-dir.ours"
  fi
  # An `if`, not `&&`: with no node state (a kwok-only bed, K2H_E2E_REAL_NODE=0) the function
  # must still succeed, or down.sh stops here under `set -e` and leaves the control plane up.
  if [ -d "$NODE" ]; then rm -rf "$NODE"; fi
}

case ${1:-} in
net) start_net ;;
up) timed "real node up" start_node ;;
down) stop_node; log "real node down" ;;
import)
  pid_alive "$STATE/pids/containerd.pid" || die "the real node is not running: run e2e/scripts/up.sh"
  timed "images imported" import_images ;;
*) die "usage: $0 net|up|down|import" ;;
esac
