#!/usr/bin/env bash
# Builds the Go reference webhook (bench/goref) from the Go module proxy at the versions pinned
# in go.mod/go.sum into ${K2H_CACHE:-~/.cache/kube2hadoop}/goref-<controller-runtime>-<hash>/,
# only when missing (the hash covers the sources and this script, so an edit rebuilds). Prints
# the binary path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${K2H_CACHE:-$HOME/.cache/kube2hadoop}
# shellcheck source=SCRIPTDIR/../../e2e/cluster/versions.env
source "$root/e2e/cluster/versions.env"

# The e2e build fetches the pinned Go toolchain into the cache when the machine has none.
[ -x "$cache/go-$GO_VERSION/bin/go" ] && export PATH=$cache/go-$GO_VERSION/bin:$PATH
command -v go >/dev/null || {
  echo "goref: no Go toolchain; run e2e/scripts/build.sh (fetches Go $GO_VERSION) or install Go" >&2
  exit 1
}
# go.mod says `go 1.26.0`: an older go >= 1.21 fetches that toolchain itself.
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

cr=$(awk '$1 == "sigs.k8s.io/controller-runtime" {print $2}' "$here/go.mod")
hash=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$0" | sha256sum | cut -c1-10)
dir=$cache/goref-$cr-$hash
if [ ! -x "$dir/bin/goref" ]; then
  echo "goref: building controller-runtime $cr reference into $dir (first time: a few minutes)" >&2
  mkdir -p "$dir/bin"
  # Symbols kept (no -s -w) so `make bench-profile` can name Go functions; no runtime cost.
  (cd "$here" && go build -trimpath -o "$dir/bin/goref.tmp" .)
  mv "$dir/bin/goref.tmp" "$dir/bin/goref"
  go version >"$dir/go-version"
fi
echo "$dir/bin/goref"
