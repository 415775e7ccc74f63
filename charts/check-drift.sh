#!/usr/bin/env bash
# `make chart`: charts/kube2hadoop linted (--strict) and rendered, its schema checked, and its
# objects compared one by one with the Kustomize overlays' (charts/drift.py), so chart and
# manifests/ cannot drift apart:
#   static-certs  `kubectl kustomize` with fresh `iddecorator certs` output in generated/,
#                 against `helm template` given the same certificates as values;
#   cert-manager  against `helm template` with the chart's defaults.
# Allowed differences, all by construction: Helm's labels and checksum annotations, Kustomize's
# ConfigMap hash suffixes, and the ConfigMaps' YAML files compared parsed (drift.py).
# Exits non-zero on a lint finding, a stale schema, a schema that accepts a typo, or any drift.
# IDDECORATOR=path uses that binary for `certs` instead of `cargo run`.
set -euo pipefail
source "$(dirname "$0")/../e2e/scripts/lib.sh"
CHARTS=$REPO_DIR/charts
CHART=$CHARTS/kube2hadoop
HELM=$("$CHARTS/helm.sh" --path)
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML is needed (pip install pyyaml, or Debian's python3-yaml)"
# The machine's kubectl may be a stand-in: ours, built with the bed's binaries when missing.
[ -x "$KUBECTL" ] || "$E2E_DIR/scripts/build.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

python3 "$CHARTS/gen-schema.py" | diff -u "$CHART/values.schema.json" - >&2 ||
  die "charts/kube2hadoop/values.schema.json is stale: charts/gen-schema.py > charts/kube2hadoop/values.schema.json"

# manifests/ copied without a developer's generated/, which gets fresh certificates.
cp -r "$REPO_DIR/manifests" "$work/"
gen=$work/manifests/overlays/static-certs/generated
rm -rf "$gen"
certs=(certs --service iddecorator --namespace kube2hadoop --token-service token-service --days 2 --out-dir "$gen")
if [ -n "${IDDECORATOR:-}" ]; then
  "$IDDECORATOR" "${certs[@]}" >/dev/null
else
  (cd "$REPO_DIR" && ${CARGO:-cargo} run -q -p iddecorator -- "${certs[@]}") >/dev/null
fi

# The values that stand for static-certs (cert-manager's are the defaults).
static=(--set certManager.enabled=false --set-file "certificates.caBundle=$gen/ca.crt"
  --set-file "certificates.iddecorator.cert=$gen/tls.crt" --set-file "certificates.iddecorator.key=$gen/tls.key"
  --set-file "certificates.tokenService.cert=$gen/token-service.crt"
  --set-file "certificates.tokenService.key=$gen/token-service.key")

# check OVERLAY VALUES...: lint, render both ways, compare.
check() {
  local overlay=$1
  shift
  log "chart vs manifests/overlays/$overlay"
  "$HELM" lint --strict --quiet "$CHART" -n kube2hadoop "$@" || fail=1
  "$HELM" template kube2hadoop "$CHART" -n kube2hadoop "$@" >"$work/$overlay.helm.yaml"
  "$KUBECTL" kustomize "$work/manifests/overlays/$overlay" >"$work/$overlay.kustomize.yaml"
  python3 "$CHARTS/drift.py" "$work/$overlay.kustomize.yaml" "$work/$overlay.helm.yaml" || fail=1
}
check static-certs "${static[@]}"
check cert-manager # the defaults

# Every option at once (ci/everything-values.yaml) lints and renders, in another namespace.
log "chart with every option"
"$HELM" lint --strict --quiet "$CHART" -n k2h-other -f "$CHART/ci/everything-values.yaml" "${static[@]}" || fail=1
"$HELM" template kube2hadoop "$CHART" -n k2h-other -f "$CHART/ci/everything-values.yaml" "${static[@]}" \
  >"$work/everything.yaml" || fail=1

# must_refuse WHY ARGS...: `helm template` must fail (a typo, a wrong type, a missing CA).
must_refuse() {
  local why=$1
  shift
  if "$HELM" template kube2hadoop "$CHART" -n kube2hadoop "$@" >/dev/null 2>"$work/err"; then
    log "FAIL: the chart accepted $why ($*)"
    fail=1
  fi
}
must_refuse "an unknown key" --set iddecorator.replicaz=3
must_refuse "an unknown config key" --set tokenService.config.ldap.urll=ldaps://x
must_refuse "an unknown policy key" --set iddecorator.policy.injection.image=x
must_refuse "a string for a number" --set-string tokenService.replicas=2
must_refuse "an unknown identity mode" --set 'tokenService.config.identityModes={sa-token,tls}'
must_refuse "no CA without cert-manager" --set certManager.enabled=false

((fail == 0)) || die "charts/kube2hadoop: see above"
log "charts/kube2hadoop: lint clean, schema current and strict, no drift from manifests/overlays"
