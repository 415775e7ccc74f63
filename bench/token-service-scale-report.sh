#!/usr/bin/env bash
# Tables (token-service-scale.md) and the plot (token-service-scale.png: RSS and p99 against
# pods, before and after) from token-service-scale.json. matplotlib comes from a venv cached
# in ~/.cache/kube2hadoop (made on first use, from PyPI).
set -euo pipefail
json=${1:?usage: token-service-scale-report.sh RESULTS.json}
dir=$(dirname "$json")
md=$dir/token-service-scale.md
png=$dir/token-service-scale.png
jq -r '
  def mib: if . == null then "–" else (. / 1024 * 10 | round / 10 | tostring) end;
  def ms: if . == null then "–" else (. / 1000 * 10 | round / 10 | tostring) end;
  def per(a; b): if a == null or b == null or b == 0 then "–" else (a / b | round | tostring) end;
  "\(.when), \(.cpu), load after: \(.load_after). Before: `\(.before)`; after: `\(.after)`.",
  "API reads (GET + LIST) per minute with no service running: \(.api_reads_per_min_without_service).",
  "",
  "### At rest with every workload in the ledger, and answers from the ledger",
  "| pods | workloads | service | indexed | ledger entries | DT calls | API reads/min at rest | CPU s at rest | RSS index only MiB | RSS at rest MiB | heap live at rest MiB | RSS restarted MiB | VmHWM MiB | cached req/s | cached p99 ms | CPU ms/req | issue p99 ms | errors |",
  "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  (.steps[] | "| \(.pods) | \(.workloads) | \(.service) | \(.indexed_pods) | \(.ledger_entries) | \(.namenode_dt_calls) | \(.api_reads_per_min_at_rest | round) | \(.cpu_s_at_rest // "–") | \(.rss_kib_index_only | mib) | \(.rss_kib_at_rest | mib) | \(if .heap_bytes_at_rest then .heap_bytes_at_rest / 1024 else null end | mib) | \(.restarted.rss_kib | mib) | \(.vmhwm_kib | mib) | \(.cached.requests_per_s | round) | \(.cached.p99_us | ms) | \(if .cached.server_cpu_s and .cached.requests > 0 then (.cached.server_cpu_s * 1000 / .cached.requests * 100 | round / 100) else "–" end) | \(.issue.p99_us | ms) | \((.issue.requests - .issue.ok) + (.cached.requests - .cached.ok)) |"),
  "",
  "API reads at rest by verb and resource (per minute):",
  (.steps[] | select(.api_reads_by != {}) | "- \(.pods) pods, \(.service): \(.api_reads_by | to_entries | map("\(.key) \(.value)") | join(", "))"),
  "",
  "### Bytes per indexed pod and per ledger entry (after, slope between the smallest and largest step)",
  (.steps | map(select(.service == "after")) | sort_by(.pods) | if length >= 2 then
     (.[0]) as $a | (.[-1]) as $b |
     "- per indexed pod: \(per(($b.rss_kib_index_only - $a.rss_kib_index_only) * 1024; ($b.indexed_pods - $a.indexed_pods))) B (RSS with the index only), \(if $a.heap_bytes_index_only and $b.heap_bytes_index_only then per($b.heap_bytes_index_only - $a.heap_bytes_index_only; ($b.indexed_pods - $a.indexed_pods)) else "–" end) B (live heap), between \($a.pods) and \($b.pods) pods",
     "- per ledger entry: \(per(($b.rss_kib_at_rest - $b.rss_kib_index_only) * 1024; $b.ledger_entries)) B (RSS at rest less RSS with the index only, at \($b.pods) pods)"
   else "- per indexed pod: one step only" end),
  (.steps | map(select(.service == "after")) | sort_by(.pods) | .[-1] | select(.restarted.heap_bytes != null and .heap_bytes_index_only != null) |
     "- live heap (jemalloc statistics, at \(.pods) pods): \(per(.heap_bytes_index_only; .indexed_pods)) B per indexed pod with the index only (process baseline included); \(per(.restarted.heap_bytes - .heap_bytes_index_only; .restarted.ledger_entries)) B per ledger entry (restarted on its ledger less the index only)"),
  "",
  "### Where the resident memory is (MiB): at rest after the cold burst, and restarted on the ledger",
  "jemalloc counts its resident pages as an upper bound, so the last column reads slightly negative (to about −2.5 MiB) when nothing else is there.",
  "",
  "| pods | service | when | RSS | file-backed | anonymous | jemalloc resident | jemalloc live | other anonymous (glibc malloc of the C libraries, stacks) | threads |",
  "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
  (.steps[] | . as $s | ([["at rest", .memory_at_rest, .rss_kib_at_rest, .heap_bytes_at_rest], ["restarted", .restarted.memory, .restarted.rss_kib, .restarted.heap_bytes]][]
    | select(.[1] != null) | . as [$when, $m, $rss, $heap] |
    "| \($s.pods) | \($s.service) | \($when) | \($rss | mib) | \($m.rss_file_kib | mib) | \($m.rss_anon_kib | mib) | \($m.jemalloc_resident_kib | mib) | \(if $heap then $heap / 1024 else null end | mib) | \($m.other_anon_kib | mib) | \($m.threads) |")),
  "",
  "### SA-token mode against IP mode, answers from the ledger (500 workers, fresh TLS connection per request)",
  "| pods | service | IP req/s | IP CPU ms/req | SA req/s | SA CPU ms/req | SA/IP throughput | SA/IP CPU per request | errors |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  (.modes[]? | def cpu(x): if x.server_cpu_s and x.requests > 0 then x.server_cpu_s * 1000 / x.requests else null end;
    def r2: if . == null then "–" else (. * 100 | round / 100 | tostring) end;
    "| \(.pods) | \(.service) | \(.ip.requests_per_s | round) | \(cpu(.ip) | r2) | \(.sa.requests_per_s | round) | \(cpu(.sa) | r2) | \(.sa.requests_per_s / .ip.requests_per_s | r2) | \(if cpu(.sa) and cpu(.ip) then cpu(.sa) / cpu(.ip) else null end | r2) | \((.ip.requests - .ip.ok) + (.sa.requests - .sa.ok)) |"),
  "",
  "### A burst of new pods in one workload",
  (.burst | "| pods | Deployment ready s | index full s | lag s | DT calls | ok | errors | p50 ms | p99 ms | service CPU s | VmHWM MiB |",
   "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
   "| \(.pods) | \(.deployment_ready_ms | ms) | \(.index_full_ms | ms) | \(.index_lag_ms | ms) | \(.namenode_dt_calls) | \(.answers.ok) | \(.answers.requests - .answers.ok) | \(.answers.p50_us | ms) | \(.answers.p99_us | ms) | \(.service_cpu_s // "–") | \(.vmhwm_kib | mib) |")
' "$json" | tee "$md"

venv=${XDG_CACHE_HOME:-$HOME/.cache}/kube2hadoop/plot-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" -q install matplotlib >/dev/null
fi
"$venv/bin/python" - "$json" "$png" <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1]))
fig, (rss, p99) = plt.subplots(1, 2, figsize=(10, 4))
for service in sorted({s["service"] for s in data["steps"]}):
    steps = sorted((s for s in data["steps"] if s["service"] == service), key=lambda s: s["pods"])
    pods = [s["pods"] for s in steps]
    rss.plot(pods, [s["rss_kib_at_rest"] / 1024 for s in steps], marker="o", label=f"{service}: RSS at rest")
    rss.plot(pods, [s["vmhwm_kib"] / 1024 for s in steps], marker="x", linestyle="--", label=f"{service}: peak (VmHWM)")
    p99.plot(pods, [s["cached"]["p99_us"] / 1000 for s in steps], marker="o", label=f"{service}: answers from the ledger")
    p99.plot(pods, [s["issue"]["p99_us"] / 1000 for s in steps], marker="x", linestyle="--", label=f"{service}: first request per workload")
rss.set(xlabel="pods watched", ylabel="MiB", title="token-service memory")
p99.set(xlabel="pods watched", ylabel="p99 ms", title="token-service p99 (500 workers / cold issue)")
for ax in (rss, p99):
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
PY
echo "plot: $png"
