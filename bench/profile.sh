#!/usr/bin/env bash
# `make bench-profile`: where a webhook server's CPU time goes under load. Starts the target
# pinned like `make bench`, samples it with `perf record` while loadgen drives /mutate with the
# Pod fixture at concurrency 16, and prints the time by category and the top symbols. Output in
# bench/results/profile-<target>.txt. Not run by `make bench`.
#   bench/profile.sh [iddecorator|go-ref]     (BENCH_PROFILE_SECONDS, default 8)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${1:-iddecorator}
seconds=${BENCH_PROFILE_SECONDS:-8}
port=${BENCH_PORT:-18443}
bin=$root/target/release
command -v perf >/dev/null || { echo "profile: perf missing; run e2e/scripts/install-deps.sh" >&2; exit 1; }
[[ ${BENCH_BUILD:-1} == 0 ]] || "${CARGO:-cargo}" build --release -p iddecorator -p loadgen

work=$(mktemp -d)
server_pid=""
trap '[[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null; wait; rm -rf "$work"' EXIT
"$bin/loadgen" certs --dir "$work"
(umask 077 && openssl rand -base64 32 >"$work/stamp.key")
case $target in
iddecorator)
  server=("$bin/iddecorator" --listen "127.0.0.1:$port" --tls-cert-file "$work/tls.crt"
    --tls-key-file "$work/tls.key" --log-format json --stamp-key-file "$work/stamp.key") ;;
go-ref) server=("$("$here/goref/build.sh")" --listen "127.0.0.1:$port" --cert-dir "$work") ;;
*) echo "profile: unknown target $target (iddecorator or go-ref)" >&2; exit 2 ;;
esac
taskset -c "${BENCH_SERVER_CPU:-0}" "${server[@]}" 2>"$work/server.log" &
server_pid=$!
"$bin/loadgen" wait-ready --url "https://127.0.0.1:$port/readyz" --ca "$work/ca.crt" --timeout 30s

# The server's whole CPU, filtered to its pid below: `-p` misses threads a Go process starts
# after perf attaches.
perf record -q -F 999 -g -o "$work/perf.data" -C "${BENCH_SERVER_CPU:-0}" -- sleep "$((seconds + 1))" \
  2>"$work/perf.log" &
perf_pid=$!
taskset -c "${BENCH_LOAD_CPU:-1}" "$bin/loadgen" run --target "$target" \
  --url "https://127.0.0.1:$port/mutate" --ca "$work/ca.crt" --pid "$server_pid" \
  --fixture "pod=$here/fixtures/pod-create.json" --concurrency 16 --duration "${seconds}s" \
  --warmup 0s
wait "$perf_pid" || { cat "$work/perf.log" >&2; exit 1; }

perf report -i "$work/perf.data" --pid "$server_pid" --percentage relative --no-children --sort symbol -g none --stdio 2>/dev/null |
  grep '%' >"$work/flat.txt"
out=$here/results/profile-$target.txt
python3 - "$work/flat.txt" "$target" >"$out" <<'PY'
import collections, re, sys
# First match wins; kernel symbols are marked [k].
categories = [
    ("kernel: loopback TCP, syscalls, wake-ups", r"\[k\]"),
    ("TLS (rustls/ring, crypto/tls, AES-GCM)", r"ring_core|rustls|crypto/|aes|gcm|ghash|sha256"),
    ("garbage collector (Go)", r"runtime\.(gc|scan|mark|sweep|bgsweep|heap|wb|greyobject|findObject|spanOf|tryDefer)|gcWriteBarrier|runtime/gc/|gcDrain"),
    ("allocation (malloc/free, Go mallocgc)", r"malloc|free|_int_|unlink_chunk|consolidate|realloc|tcache|rust_alloc|rdl_alloc|mallocgc|nextFreeFast|memclr"),
    ("JSON decode/encode and object model", r"serde|json|Content|kube_core|k8s_openapi|btree|BTree|from_utf8|parse_str|escape|reflect|encoding/|apimachinery|jsonpatch|base64|strconv|unicode"),
    ("logging", r"tracing|zap|logr|fmt::|core::fmt|Formatter"),
    ("memcpy/memcmp/memmove", r"mem(move|cpy|cmp|set)"),
    ("HTTP and runtime (hyper/tokio, net/http, Go scheduler)", r"hyper|tokio|mio|http|httparse|futures|runtime\.|net\.|bufio|internal/poll|syscall"),
]
totals = collections.Counter()
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(.*?)\s*$", line)
    if not m:
        continue
    share, symbol = float(m.group(1)), m.group(2)
    rows.append((share, symbol))
    for name, rx in categories:
        if re.search(rx, symbol):
            totals[name] += share
            break
    else:
        totals["other"] += share
print(f"where {sys.argv[2]}'s CPU time goes (perf samples, Pod CREATE, concurrency 16)")
for name, share in totals.most_common():
    print(f"{share:6.1f}%  {name}")
print("\ntop symbols")
for share, symbol in rows[:25]:
    print(f"{share:6.2f}%  {symbol[:110]}")
PY
cat "$out"
