#!/usr/bin/env bash
# Installs the system packages and toolchain parts the build and tests need. Idempotent.
set -euo pipefail
# The real node (node.sh): containerd, runc, the CNI plugins, nft for kube-proxy; busybox-static
# for its test image.
need=(libkrb5-dev libclang-dev musl-tools krb5-user slapd ldap-utils pkg-config openjdk-17-jdk-headless maven curl openssl python3 python3-venv jq linux-perf
  containerd runc containernetworking-plugins busybox-static iproute2 file nftables)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
