#!/usr/bin/env bash
# helm at the version pinned in e2e/cluster/versions.env (HELM_VERSION), built once from the Go
# module proxy into the cache outside the repo (like e2e/scripts/build.sh builds the cluster
# binaries), then reused. No helm from the machine: its version would decide what renders.
#   charts/helm.sh ARGS...   run helm (building it first if missing)
#   charts/helm.sh --path    print the binary's path (building it first if missing)
set -euo pipefail
source "$(dirname "$0")/../e2e/scripts/lib.sh"
HELM_DIR=$CACHE/helm-$HELM_VERSION
HELM=$HELM_DIR/helm

build_helm() {
  ensure_go
  mkdir -p "$HELM_DIR"
  # helm's go.mod has no replace directives, so `go install mod@version` works; the version
  # string is stamped as helm's own Makefile does (else `helm version` says v4.3 only).
  GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOBIN=$HELM_DIR go install -trimpath \
    "-ldflags=-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

[ -x "$HELM" ] || timed "build helm $HELM_VERSION" build_helm
if [ "${1:-}" = --path ]; then
  echo "$HELM"
else
  exec "$HELM" "$@"
fi
