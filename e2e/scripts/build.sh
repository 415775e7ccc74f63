#!/usr/bin/env bash
# Builds the control-plane binaries from the Go module proxy at the versions pinned in
# e2e/cluster/versions.env, into a versioned cache outside the repo. Each part is rebuilt only
# when missing. Run it on its own ahead of time: a cold build takes long on a small machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_go # lib.sh
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
# Reuse the user's module and build caches across versions and runs.
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)} GOCACHE=${GOCACHE:-$(go env GOCACHE)}
BUILD=(-trimpath "-ldflags=-s -w")

build_etcd() {
  local work=$CACHE/build/etcd-$ETCD_VERSION
  mkdir -p "$work" "$ETCD_BIN"
  cp "$E2E_DIR/cluster/etcd/main.go" "$work/"
  printf 'module kube2hadoop.io/e2e/etcd\n\ngo 1.23\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$work/go.mod"
  (cd "$work" && go mod tidy && go build "${BUILD[@]}" -o "$ETCD_BIN/etcd" .)
}

build_kwok() {
  mkdir -p "$KWOK_BIN"
  GOBIN=$KWOK_BIN go install "${BUILD[@]}" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_k8s() {
  local work=$CACHE/build/k8s-$K8S_VERSION
  mkdir -p "$work" "$K8S_BIN"
  rm -f "$work/go.mod" "$work/go.sum"
  "$E2E_DIR/cluster/k8s/gen-gomod.sh" "$K8S_VERSION" "$work"
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  local pkgs=("${cmds[@]/#/k8s.io/kubernetes/cmd/}")
  (cd "$work" && go get "k8s.io/kubernetes@$K8S_VERSION" &&
    go build "${BUILD[@]}" -o "$K8S_BIN/" "${pkgs[@]}")
}

# The Kubeflow training operator and the manifests of the same module version: its CRDs, its
# ClusterRole and its ValidatingWebhookConfiguration (the bed applies them as shipped, only
# pointing the webhook at loopback). Its go.mod has no replace directives: `go install` works.
build_training_operator() {
  local mod=github.com/kubeflow/training-operator dir=$TRAINING_OPERATOR_DIR src
  mkdir -p "$dir/bin"
  GOBIN=$dir/bin go install "${BUILD[@]}" "$mod/cmd/training-operator.v1@$TRAINING_OPERATOR_VERSION"
  src=$(go mod download -json "$mod@$TRAINING_OPERATOR_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$dir/crds" "$dir/rbac" "$dir/webhook"
  mkdir -p "$dir/crds" "$dir/rbac" "$dir/webhook"
  cp "$src"/manifests/base/crds/kubeflow.org_*.yaml "$dir/crds/"
  cp "$src/manifests/base/rbac/role.yaml" "$dir/rbac/"
  cp "$src/manifests/base/webhook/manifests.yaml" "$dir/webhook/"
  chmod -R u+w "$dir"
}

have() { local f; for f in "$@"; do [ -x "$f" ] || return 1; done; }

total=$SECONDS
have "$ETCD_BIN/etcd" || timed "build etcd $ETCD_VERSION" build_etcd
have "$KWOK_BIN/kwok" || timed "build kwok $KWOK_VERSION" build_kwok
have "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kubelet,kube-proxy} ||
  timed "build kubernetes $K8S_VERSION" build_k8s
have "$TRAINING_OPERATOR_DIR/bin/training-operator.v1" && [ -s "$TRAINING_OPERATOR_DIR/rbac/role.yaml" ] ||
  timed "build training-operator $TRAINING_OPERATOR_VERSION" build_training_operator
log "binaries ready in $CACHE (build.sh took $((SECONDS - total))s)"
