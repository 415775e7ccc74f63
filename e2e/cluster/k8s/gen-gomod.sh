#!/usr/bin/env bash
# Writes a go.mod that builds k8s.io/kubernetes commands at VERSION from the module proxy.
# kubernetes' own go.mod points its staging modules at ./staging/...; a module that requires
# k8s.io/kubernetes must replace each of them with the published v0.X.Y tag instead. The list is
# read from kubernetes' go.mod so it stays right across bumps.
# usage: gen-gomod.sh VERSION OUT_DIR
set -euo pipefail
version=$1 out=$2
staging=v0.${version#v1.}
# `go mod download -json` prints the path of the cached go.mod of that exact version.
upstream=$(cd "$out" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')
[ -s "$upstream" ] || { echo "gen-gomod: cannot read go.mod of k8s.io/kubernetes@$version" >&2; exit 1; }
goline=$(grep -m1 '^go ' "$upstream")
{
  echo "module kube2hadoop.io/e2e/k8s"
  echo
  echo "$goline"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\t\1 => \1 '"$staging"'#p' "$upstream"
  echo ")"
} >"$out/go.mod"
n=$(grep -c '=> k8s.io/' "$out/go.mod")
[ "$n" -gt 20 ] || { echo "gen-gomod: only $n staging replaces found in $upstream" >&2; exit 1; }
