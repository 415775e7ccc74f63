#!/usr/bin/env bash
# Checks the monitoring manifests (`make monitoring`):
#  1. prometheusrule.yaml is rules.yaml wrapped in a PrometheusRule (rules.yaml is the source;
#     `check.sh --write` regenerates the wrapper);
#  2. every alert has a severity, summary, description and the README's runbook_url, the
#     README's `## Alerts` table has a row for it, and rules_test.yaml expects it both firing
#     and quiet; the threshold rule stays first (the README's patch path points at it);
#  3. `promtool check rules` and `promtool test rules` (rules_test.yaml);
#  4. dashboard.json is valid JSON, has the `datasource` variable, and each panel's PromQL parses
#     (its exprs go into a throwaway rules file that `promtool check rules` reads).
# promtool is built once from the Go module proxy at PROMETHEUS_VERSION (e2e/cluster/versions.env)
# into ~/.cache/kube2hadoop/promtool-<version>/ and reused; PROMTOOL=/path/to/promtool skips that.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../e2e/scripts/lib.sh
source "$HERE/../../e2e/scripts/lib.sh"

WRITE=0
case "${1:-}" in
  --write) WRITE=1 ;;
  "") ;;
  *) die "usage: $0 [--write]" ;;
esac

PROMTOOL_DIR=$CACHE/promtool-$PROMETHEUS_VERSION
ensure_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then return; fi
  PROMTOOL=$PROMTOOL_DIR/promtool
  [ -x "$PROMTOOL" ] && return
  ensure_go
  log "building promtool $PROMETHEUS_VERSION (once; cached in $PROMTOOL_DIR)"
  local start=$SECONDS
  rm -rf "$PROMTOOL_DIR.tmp" && mkdir -p "$PROMTOOL_DIR"
  # Prometheus' go.mod has no replace directives, so `go install mod@version` works; the tag
  # remove_all_sd leaves out the cloud service-discovery plugins (and their SDKs), which rules
  # do not need.
  GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOBIN=$PROMTOOL_DIR.tmp \
    GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)} GOCACHE=${GOCACHE:-$(go env GOCACHE)} \
    go install -trimpath -tags remove_all_sd \
    "-ldflags=-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  mv "$PROMTOOL_DIR.tmp/promtool" "$PROMTOOL" && rmdir "$PROMTOOL_DIR.tmp"
  log "promtool $PROMETHEUS_VERSION built in $((SECONDS - start))s"
}

cd "$HERE"
fail=0
bad() { log "FAIL: $*"; fail=1; }

# 1. The PrometheusRule embeds rules.yaml verbatim (indented under spec:).
render_prometheusrule() {
  cat <<'EOF'
# Generated from rules.yaml by `manifests/monitoring/check.sh --write`: edit rules.yaml, not this.
# For the prometheus-operator: `kubectl apply -f` (or `kubectl apply -k manifests/monitoring`).
# Its ruleSelector must select these labels (kube-prometheus-stack: add `release: <its name>`)
# and its ruleNamespaceSelector the namespace kube2hadoop.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: kube2hadoop
  namespace: kube2hadoop
  labels:
    app.kubernetes.io/name: kube2hadoop
    app.kubernetes.io/component: monitoring
spec:
EOF
  # Comment lines of rules.yaml stay out: they speak of the plain file.
  grep -v '^#' rules.yaml | sed -e '/./s/^/  /'
}
if ((WRITE)); then
  render_prometheusrule >prometheusrule.yaml
  log "wrote prometheusrule.yaml"
elif ! diff -u prometheusrule.yaml <(render_prometheusrule); then
  bad "prometheusrule.yaml does not match rules.yaml: run manifests/monitoring/check.sh --write"
fi

# 2. Every alert's labels and annotations, and its README row.
python3 - "$HERE/rules.yaml" "$HERE/../../README.md" "$HERE/../../Cargo.toml" <<'EOF' || fail=1
import re, sys
rules, readme, cargo = (open(p).read() for p in sys.argv[1:])
repo = re.search(r'^repository\s*=\s*"([^"]+)"', cargo, re.M).group(1)
runbook = f"{repo}/blob/main/README.md#alerts"
section = readme.split("\n## Alerts", 1)
if len(section) < 2:
    sys.exit("README.md has no `## Alerts` section (the runbook_url anchor)")
section = section[1].split("\n## ", 1)[0]
# The rules file is plain YAML without PyYAML: each `- alert:` block up to the next rule.
# README's kustomize patch replaces /spec/groups/0/rules/0/expr: the threshold must stay there.
first = re.search(r"^groups:\n- name: \S+\n  rules:\n(?:\s*#.*\n)*  - (record: \S+)", rules, re.M)
if not first or first.group(1) != "record: kube2hadoop:token_expiry_warning_seconds":
    sys.exit("the first rule of the first group must be kube2hadoop:token_expiry_warning_seconds")
blocks = re.split(r"\n\s*- (?=alert:|record:)", rules)
alerts, severities, errors = [], [], []
for b in blocks:
    m = re.match(r"alert:\s*(\S+)", b)
    if not m:
        continue
    name = m.group(1)
    alerts.append(name)
    sev = re.search(r"\n\s+severity:\s*(warning|critical)\s*\n", b)
    severities.append(sev and sev.group(1))
    if not sev:
        errors.append(f"{name}: no severity warning|critical")
    for key in ("summary", "description"):
        if not re.search(rf"\n\s+{key}:", b):
            errors.append(f"{name}: no {key} annotation")
    urls = re.findall(r"\n\s+runbook_url:\s*(\S+)", b)
    if urls != [runbook]:
        errors.append(f"{name}: runbook_url {urls} is not [{runbook}]")
    if f"`{name}`" not in section:
        errors.append(f"{name}: no row in README.md's ## Alerts table")
pairs = [(n, s) for n, s in zip(alerts, severities)]
if len(set(pairs)) != len(pairs):
    errors.append("an alert name is used twice with the same severity")
# rules_test.yaml: each alert seen firing and seen quiet at least once.
tests = open(sys.argv[1].replace("rules.yaml", "rules_test.yaml")).read()
seen = re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:(\s*\[\])?", tests)
for name in sorted(set(alerts)):
    if not any(n == name and not quiet for n, quiet in seen):
        errors.append(f"{name}: rules_test.yaml never expects it to fire")
    if not any(n == name and quiet for n, quiet in seen):
        errors.append(f"{name}: rules_test.yaml never expects it quiet (exp_alerts: [])")
for e in errors:
    print("FAIL:", e, file=sys.stderr)
print(f"{len(alerts)} alerts ({len(set(alerts))} names): severity, summary, description, runbook_url, README rows, tests firing and quiet checked")
sys.exit(1 if errors else 0)
EOF

ensure_promtool
"$PROMTOOL" --version 2>&1 | head -1

# 3. The rules themselves and their unit tests.
"$PROMTOOL" check rules rules.yaml || bad "promtool check rules rules.yaml"
"$PROMTOOL" test rules rules_test.yaml || bad "promtool test rules rules_test.yaml"

# 4. The dashboard: JSON, the datasource variable, and every expr through promtool.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - dashboard.json "$tmp/dashboard-exprs.yaml" <<'EOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
errors = []
variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no `datasource` template variable of type datasource (prometheus)")
# What Grafana substitutes before sending a query: a plausible value for each.
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
for name, v in variables.items():
    if v.get("type") == "query":
        subst[f"${name}"] = ".*"
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        if p.get("type") == "row":
            continue
        pds = p.get("datasource", {})
        if pds.get("uid") != "${datasource}":
            errors.append(f"panel {p.get('title')!r}: datasource is not ${{datasource}}")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"panel {p.get('title')!r}: a target's datasource is not ${{datasource}}")
            e = t["expr"]
            for k in sorted(subst, key=len, reverse=True):
                e = e.replace(k, subst[k])
            if "$" in e:
                errors.append(f"panel {p.get('title')!r}: unknown variable in {t['expr']!r}")
            exprs.append((f"dashboard:panel_{p.get('id')}_{t.get('refId')}", e))
walk(d.get("panels", []))
ids = [p["id"] for p in d.get("panels", [])]
if len(ids) != len(set(ids)):
    errors.append("panel ids are not unique")
# Named after the panel id and target refId, so promtool's complaint points at the panel.
rules = [{"record": name, "expr": e} for name, e in exprs]
# JSON is YAML: promtool reads it as a rules file.
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"), indent=1)
for e in errors:
    print("FAIL:", e, file=sys.stderr)
print(f"dashboard.json: {len(exprs)} exprs in {len(ids)} top-level panels")
sys.exit(1 if errors else 0)
EOF
if [ -s "$tmp/dashboard-exprs.yaml" ]; then
  "$PROMTOOL" check rules "$tmp/dashboard-exprs.yaml" >"$tmp/out" 2>&1 ||
    { cat "$tmp/out" >&2; bad "a dashboard expr does not parse"; }
  grep -q SUCCESS "$tmp/out" && echo "dashboard.json: every expr parses ($(grep -o 'SUCCESS.*' "$tmp/out"))"
fi

((fail == 0)) || die "monitoring checks failed"
log "monitoring: all checks passed"
