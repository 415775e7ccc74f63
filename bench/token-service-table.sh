#!/usr/bin/env bash
# Markdown tables from bench/results/token-service.json (written by bench/token-service.sh).
#   bench/token-service-table.sh [bench/results/token-service.json]
set -euo pipefail
file=${1:-$(dirname "$0")/results/token-service.json}
jq -r '
  def mib: if . == null then "–" else (. / 1024 * 10 | round / 10 | tostring) end;
  def ms: if . == null then "–" else (. / 1000 | . * 10 | round / 10 | tostring) end;
  def r1: if . == null then "–" else (. * 10 | round / 10 | tostring) end;
  def errs: (.outcomes | to_entries | map(select(.key != "200")) | map("\(.key): \(.value)") | join(", ")) as $e
    | if $e == "" then "0" else $e end;
  .meta as $m |
  "\($m.date), \($m.cores) cores (\($m.cpu_model)), \($m.token_service), \($m.rustc), load after: \($m.loadavg_after).",
  "Method: \($m.method).",
  (if (.steps | length) > 0 then (
    "",
    "### Cold burst: every pod asks once, at the same instant (empty ledger)",
    "| pods | mode | wall s | ok | errors | p50 ms | p99 ms | NameNode DT calls | KDC requests (start / total) | GSS acquisitions |",
    "|---:|---|---:|---:|---|---:|---:|---:|---|---:|",
    (.steps[] | "| \(.pods) | \(.mode) | \(.burst.wall_s | r1) | \(.burst.ok) | \(.burst | errs) | \(.burst.p50_us | ms) | \(.burst.p99_us | ms) | \(.namenode_dt_calls_in_burst) | \(.kdc_requests_at_start) / \(.kdc_requests_total) | \(.gss_acquisitions) |")
  ) else empty end),
  (if (.steps | length) > 0 then (
    "",
    "### Answers from the ledger (cached), fresh TLS connection per request",
    "| pods | mode | workers | req/s | p50 ms | p99 ms | max ms | errors | service CPU ms/req | RSS MiB | VmHWM MiB | ready after start s |",
    "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    (.steps[] | select(.cached) | "| \(.pods) | \(.mode) | \(.cached.concurrency) | \(.cached.requests_per_s | round) | \(.cached.p50_us | ms) | \(.cached.p99_us | ms) | \(.cached.max_us | ms) | \(.cached | errs) | \(if .cached.server_cpu_s then (.cached.server_cpu_s * 1000 / ([.cached.requests, 1] | max) * 100 | round / 100) else "–" end) | \(.rss_kib | mib) | \(.vmhwm_kib | mib) | \(.ready_s) |")
  ) else empty end),
  (if (.index | length) > 0 then (
    "",
    "### Pod index (watch path): scale the Deployment, wait for the service to hold every pod",
    "| pods | added | Deployment ready s | index full s | lag s | service CPU s | CPU ms/added pod | pods indexed/s | RSS MiB | VmHWM MiB |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    (.index[] | "| \(.pods) | \(.added) | \(.deployment_ready_ms | ms) | \(.index_full_ms | ms) | \(.index_lag_ms | ms) | \(.service_cpu_s) | \(.service_cpu_ms_per_added_pod | r1) | \(if .pods_indexed_per_s then (.pods_indexed_per_s | round) else "–" end) | \(.rss_kib | mib) | \(.vmhwm_kib | mib) |")
  ) else empty end),
  (if ((.sustained_fetch // []) | length) > 0 then (
    "",
    "### Sustained fetching: one client per pod, all starting together, each fetching back to back (fresh service, empty ledger)",
    "| mode | workloads | pods = clients | s | requests | req/s | errors | p50 ms | p99 ms | p99.9 ms | max ms | NameNode DT calls / expected | answers per workload | service CPU ms/req | VmHWM MiB | load avg before |",
    "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---:|---:|---|",
    ((.sustained_fetch // [])[] | "| \(.mode) | \(.workloads) | \(.run.clients) | \(.run.wall_s | r1) | \(.run.requests) | \(.run.requests_per_s | round) | \(.run | errs) | \(.run.p50_us | ms) | \(.run.p99_us | ms) | \(.run.p999_us | ms) | \(.run.max_us | ms) | \(.namenode_dt_calls) / \(.expected_dt_calls) | \(.run.workloads | to_entries | map(.value.distinct_answers | tostring) | join(", ")) | \(.run.server_cpu_ms_per_request // null | if . == null then "–" else (. * 100 | round / 100 | tostring) end) | \(.vmhwm_kib | mib) | \(.loadavg_before) |")
  ) else empty end),
  (if .init_fetcher != null then (
    "",
    "### init-fetcher",
    "| build | size MiB | stripped MiB | start to file p50 ms | p99 ms | runs |",
    "|---|---:|---:|---:|---:|---:|",
    ((.init_fetcher // {}) | to_entries[] | select(.value != null) | .key as $k | .value |
      "| \($k)\(if .linkage then " (\(.linkage))" else "" end) | \(.bytes / 1048576 * 10 | round / 10) | \(.stripped_bytes / 1048576 * 10 | round / 10) | \(.start_to_file.p50_ms // null | r1) | \(.start_to_file.p99_ms // null | r1) | \(.start_to_file.runs // "–") |")
  ) else empty end)
' "$file"
