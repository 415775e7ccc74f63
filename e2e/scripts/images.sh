#!/usr/bin/env bash
# Builds the three images without Docker, as OCI archives (an OCI image layout in a tar), into
# target/images/: what the Dockerfiles describe, assembled with umoci (opencontainers, built
# from the Go module proxy into the cache) and GNU tar instead of a Docker engine.
#
#   images.sh      build kube2hadoop-{iddecorator,init-fetcher,token-service}.oci.tar and
#                  digests.txt (K2H_IMAGES_DIR, IMAGE_TAG, SOURCE_DATE_EPOCH change where, the
#                  tag, and the files' time); e2e/tests/images.rs checks the result
#   images.sh bed  the test bed's pause and busybox images, into bed/ (node.sh imports them)
#   images.sh hadoop-client  the stock Hadoop client (JRE + jars) for test pods, into bed/
#
# iddecorator and init-fetcher are static (musl) binaries on an empty base; token-service
# links MIT Kerberos' GSSAPI, so its image holds the Debian packages its binary loads (found
# with ldd, at the versions this machine has installed) plus the CA store and a passwd entry.
# Every file gets the commit's time (SOURCE_DATE_EPOCH) and root ownership, and the image
# config a fixed creation time, so the same binaries give the same digests. The archives name
# their image `docker.io/kube2hadoop/<name>:$IMAGE_TAG` (containerd's `ctr images import`,
# `kind load image-archive`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IMAGE_TAG=${IMAGE_TAG:-e2e}
OUT=${K2H_IMAGES_DIR:-$REPO_DIR/target/images}
MUSL=x86_64-unknown-linux-musl
UMOCI_DIR=$CACHE/umoci-$UMOCI_VERSION
UMOCI=$UMOCI_DIR/bin/umoci
NONROOT=65532
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_DIR" log -1 --format=%ct 2>/dev/null || echo 0)}

# umoci's go.mod has a replace directive, so `go install mod@version` refuses it: build it
# inside its own module, downloaded from the proxy.
ensure_umoci() {
  [ -x "$UMOCI" ] && return
  command -v go >/dev/null || die "go is needed to build umoci (or run e2e/scripts/build.sh)"
  local src
  src=$(GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/umoci@$UMOCI_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$UMOCI_DIR/src" && mkdir -p "$UMOCI_DIR/bin" && cp -r "$src" "$UMOCI_DIR/src"
  chmod -R u+w "$UMOCI_DIR/src"
  (cd "$UMOCI_DIR/src" && CGO_ENABLED=0 go build -trimpath -o "$UMOCI" ./cmd/umoci)
  rm -rf "$UMOCI_DIR/src"
}

build_binaries() {
  rustup target list --installed | grep -qx "$MUSL" || rustup target add "$MUSL" >/dev/null
  command -v musl-gcc >/dev/null || die "musl-gcc is missing: apt-get install musl-tools (install-deps.sh)"
  # Paths of this machine stay out of the binaries.
  local remap="--remap-path-prefix=$REPO_DIR=/src --remap-path-prefix=$HOME=/home"
  # Without SOURCE_DATE_EPOCH: ring's build script tracks it, so a new commit would rebuild.
  env -u SOURCE_DATE_EPOCH RUSTFLAGS="$remap" CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked -q --target "$MUSL" -p iddecorator -p init-fetcher
  env -u SOURCE_DATE_EPOCH RUSTFLAGS="$remap" cargo build --release --locked -q -p token-service
}

# tar_layer DIR FILE: DIR as a layer tar, byte-for-byte the same for the same tree.
tar_layer() {
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2" .
}

# rootfs_static DIR BINARY: the binary at /<name>, nothing else.
rootfs_static() {
  mkdir -p "$1"
  install -m 0755 -s "$2" "$1/$(basename "$2")"
}

# rootfs_token_service DIR: the binary and the Debian packages of the libraries it loads.
rootfs_token_service() {
  local root=$1 bin=$REPO_DIR/target/release/token-service
  mkdir -p "$root/usr/local/bin"
  install -m 0755 -s "$bin" "$root/usr/local/bin/token-service"
  debs_for "$root" ca-certificates -- "$bin"
  # What update-ca-certificates would write, from the package's certificates only.
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort |
    xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
  # libkrb5 looks the uid up (getpwuid) for default names.
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:%s:%s:nonroot:/nonexistent:/usr/sbin/nologin\n' \
    "$NONROOT" "$NONROOT" >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$NONROOT" >"$root/etc/group"
  mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
  rm -rf "$root"/usr/share/{doc,man,lintian,locale} "$root/usr/sbin"
  mv "$root/.packages" "$root/etc/kube2hadoop-packages"
}

# debs_for DIR [EXTRA_PACKAGE...] -- BINARY...: into DIR, the Debian packages (at the versions
# installed here, cached in $CACHE/debs) that ship the libraries the binaries load (ldd), the
# loader, and the extra packages; DIR/.packages lists them.
debs_for() {
  local root=$1 debs=$CACHE/debs pkgs p v extra=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do extra+=("$1"); shift; done
  shift
  mkdir -p "$debs"
  # Each library ldd resolves (outside DIR: the image brings those), to the package that ships
  # it; the loader too.
  pkgs=$( (for bin in "$@"; do ldd "$bin"; done |
    awk -v own="$root/" '/=>/ && $3 ~ /^\// && index($3, own) != 1 {print $3} /ld-linux/ {print $1}' |
    while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"; done |
    cut -d: -f1; printf '%s\n' "${extra[@]}") | grep -v '^$' | sort -u)
  for p in $pkgs; do
    v=$(dpkg-query -W -f='${Version}' "$p")
    local deb
    deb=$(find "$debs" -name "${p}_${v//:/%3a}_*.deb" | head -1)
    if [ -z "$deb" ]; then
      (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "$p=$v" >/dev/null) || die "apt-get download $p=$v failed"
      deb=$(find "$debs" -name "${p}_${v//:/%3a}_*.deb" | head -1)
    fi
    dpkg-deb -x "$deb" "$root"
    printf '%s %s\n' "$p" "$v" >>"$root/.packages"
  done
}

# image NAME ROOTFS ENTRYPOINT [CMD]: target/images/kube2hadoop-NAME.oci.tar. IMAGE_REF, IMAGE_FILE
# and IMAGE_USER (the bed's images) change the full name, the archive and the user.
image() {
  local name=$1 rootfs=$2 entrypoint=$3 cmd=${4:-} work=$OUT/work/$1
  local ref=${IMAGE_REF:-docker.io/kube2hadoop/$name:$IMAGE_TAG}
  local file=${IMAGE_FILE:-$OUT/kube2hadoop-$name.oci.tar} tag=${ref##*:}
  local created
  created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  rm -rf "$work/layout" && mkdir -p "$work"
  tar_layer "$rootfs" "$work/layer.tar"
  "$UMOCI" init --layout "$work/layout"
  "$UMOCI" new --image "$work/layout:$tag"
  "$UMOCI" raw add-layer --compress gzip --image "$work/layout:$tag" \
    --history.created "$created" --history.created_by "kube2hadoop e2e/scripts/images.sh" \
    "$work/layer.tar"
  local args=(--no-history --image "$work/layout:$tag" --created "$created"
    --os linux --architecture amd64 --config.user "${IMAGE_USER:-$NONROOT:$NONROOT}"
    --config.entrypoint "$entrypoint")
  [ -n "$cmd" ] && args+=(--config.cmd "$cmd")
  case $name in iddecorator | token-service) args+=(--config.exposedports 8443/tcp) ;; esac
  [ "$name" = token-service ] && args+=(--config.env KRB5CCNAME=MEMORY:)
  "$UMOCI" config "${args[@]}"
  "$UMOCI" gc --layout "$work/layout"
  # The full name for containerd's importers, beside the OCI tag.
  local index=$work/layout/index.json
  jq -c --arg n "$ref" '.manifests[0].annotations["io.containerd.image.name"] = $n' "$index" >"$index.new"
  mv "$index.new" "$index"
  tar_layer "$work/layout" "$file"
  rm -rf "$work"
  printf '%s %s\n' "$name" "$(digest "$file")"
}

# digest ARCHIVE: the manifest digest the archive's index names.
digest() {
  tar -xOf "$1" ./index.json | jq -r '.manifests[0].digest'
}

build() {
  need_tools
  ensure_umoci
  timed "release binaries" build_binaries
  rm -rf "$OUT"/*.oci.tar "$OUT/work" && mkdir -p "$OUT/work"
  local roots=$OUT/work/roots
  rootfs_static "$roots/iddecorator" "$REPO_DIR/target/$MUSL/release/iddecorator"
  rootfs_static "$roots/init-fetcher" "$REPO_DIR/target/$MUSL/release/init-fetcher"
  rootfs_token_service "$roots/token-service"
  {
    image iddecorator "$roots/iddecorator" /iddecorator
    image init-fetcher "$roots/init-fetcher" /init-fetcher fetch
    image token-service "$roots/token-service" /usr/local/bin/token-service
  } | tee "$OUT/digests.txt"
  rm -rf "$OUT/work"
}

need_tools() {
  local t
  for t in jq tar dpkg-deb apt-get ldd; do command -v "$t" >/dev/null || die "$t is needed"; done
}

# The test bed's own images, for the real node (node.sh), which pulls nothing: Kubernetes' pause
# (its C source from the pinned module, linked statically) and busybox (Debian's static build)
# for test pods that only look at files.
build_bed() {
  need_tools
  ensure_umoci
  command -v musl-gcc >/dev/null || die "musl-gcc is missing: apt-get install musl-tools (install-deps.sh)"
  local bed=$OUT/bed roots=$OUT/work/bed-roots k8s
  rm -rf "$bed" "$roots" && mkdir -p "$bed" "$roots/pause" "$roots/busybox/bin"
  k8s=$(cd "$CACHE/build/k8s-$K8S_VERSION" 2>/dev/null && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    jq -r .Dir) || die "the Kubernetes module is not in the Go cache: run e2e/scripts/build.sh"
  musl-gcc -Os -Wall -static -DVERSION="v3.10.1-kube2hadoop" -o "$roots/pause/pause" \
    "$k8s/build/pause/linux/pause.c"
  strip "$roots/pause/pause"
  local bb=/usr/bin/busybox
  [ -x /bin/busybox ] && bb=/bin/busybox
  file -L "$bb" 2>/dev/null | grep -q 'statically linked' || die "busybox-static is missing (install-deps.sh)"
  install -m 0755 "$bb" "$roots/busybox/bin/busybox"
  local applet
  for applet in sh cat ls stat id sleep grep awk base64 md5sum mount df echo test head wc od; do
    ln -s busybox "$roots/busybox/bin/$applet"
  done
  {
    IMAGE_REF=registry.k8s.io/pause:3.10.1 IMAGE_FILE=$bed/pause.oci.tar IMAGE_USER=65535:65535 \
      image pause "$roots/pause" /pause
    IMAGE_REF=docker.io/kube2hadoop-e2e/busybox:e2e IMAGE_FILE=$bed/busybox.oci.tar \
      image busybox "$roots/busybox" /bin/sh
  } | tee "$bed/digests.txt"
  rm -rf "$OUT/work"
}

# The stock Hadoop client for test pods (FsShell, `hdfs dfs`): a JRE cut from this machine's
# JDK 17 with jlink, Hadoop's jars as the e2e harness resolves them from Maven Central (its
# test-only jars left out), the Debian packages the JRE loads, and busybox for a shell.
build_hadoop_client() {
  need_tools
  ensure_umoci
  # shellcheck source=hadoop-lib.sh
  source "$E2E_DIR/scripts/hadoop-lib.sh"
  k2h_hadoop_build
  local root=$OUT/work/hadoop-client-root jdk jar
  jdk=$(dirname "$(dirname "$(readlink -f "$(command -v jlink)")")")
  rm -rf "$root" && mkdir -p "$root/opt/hadoop/lib" "$root/usr/local/bin" "$root/bin" "$OUT/bed"
  "$jdk/bin/jlink" --add-modules "java.base,java.logging,java.management,java.naming,java.security.jgss,java.security.sasl,java.xml,java.desktop,java.sql,jdk.unsupported,jdk.crypto.ec,java.scripting,jdk.security.auth,jdk.naming.dns,java.net.http" \
    --strip-debug --no-man-pages --no-header-files --output "$root/opt/java"
  # java.desktop is there for java.beans (log4j's configurator); its native AWT, sound and font
  # libraries are not, nor the X11 and image libraries they would pull in.
  rm -f "$root"/opt/java/lib/{libawt*,libsplashscreen,libjsound,libfontmanager,liblcms,libjavajpeg,libmlib_image}.so
  # shellcheck disable=SC2046  # one argument per library
  debs_for "$root" -- "$root/opt/java/bin/java" $(find "$root/opt/java/lib" -name '*.so')
  rm -f "$root/.packages"
  tr ':' '\n' <"$K2H_HADOOP_DEPS" | grep -v -- '-tests\.jar$' | while read -r jar; do
    cp "$jar" "$root/opt/hadoop/lib/"
  done
  install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
  local applet
  for applet in sh cat echo test md5sum base64 id ls; do ln -s busybox "$root/bin/$applet"; done
  # `hdfs dfs ARGS`: the stock shell, with the client config (and krb5.conf, which Hadoop's
  # Kerberos name rules read) from /etc/hadoop/conf.
  cat >"$root/usr/local/bin/hdfs" <<'SH'
#!/bin/sh
[ "$1" = dfs ] || { echo "usage: hdfs dfs ARGS (the FsShell)" >&2; exit 2; }
shift
exec /opt/java/bin/java -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
  -Djava.net.preferIPv4Stack=true -Djava.security.krb5.conf=/etc/hadoop/conf/krb5.conf \
  -Dlog4j.configuration=file:/opt/hadoop/log4j.properties \
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED \
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED \
  -cp "/etc/hadoop/conf:/opt/hadoop/lib/*" org.apache.hadoop.fs.FsShell "$@"
SH
  chmod 0755 "$root/usr/local/bin/hdfs"
  # Warnings and errors on stderr; not the missing native library (this image has none).
  printf '%s\n' 'log4j.rootLogger=WARN, stderr' \
    'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
    'log4j.appender.stderr.Target=System.err' \
    'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
    'log4j.appender.stderr.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n' \
    'log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR' >"$root/opt/hadoop/log4j.properties"
  mkdir -p "$root/etc" "$root/tmp" && chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnonroot:x:%s:%s:nonroot:/tmp:/bin/sh\n' \
    "$NONROOT" "$NONROOT" >"$root/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\nnonroot:x:%s:\n' "$NONROOT" >"$root/etc/group"
  IMAGE_REF=docker.io/kube2hadoop-e2e/hadoop-client:e2e IMAGE_FILE=$OUT/bed/hadoop-client.oci.tar \
    IMAGE_USER=1000:1000 image hadoop-client "$root" /usr/local/bin/hdfs | tee -a "$OUT/bed/digests.txt"
  rm -rf "$OUT/work"
}

case ${1:-} in
"") timed "images" build ;;
bed) timed "bed images" build_bed ;;
hadoop-client) timed "hadoop-client image" build_hadoop_client ;;
*) die "usage: images.sh [bed|hadoop-client] (see the top of the script)" ;;
esac
