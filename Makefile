# kube2hadoop: build, test, demo. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help build images test unit e2e e2e-up e2e-down e2e-kind bench bench-webhook bench-sustained bench-token-service bench-fetchers bench-scale bench-pod-start bench-profile demo lint monitoring fmt docs chart

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build the three binaries (release)
	$(CARGO) build --release --workspace --bins

images: ## the three images as OCI archives in target/images/, built without Docker (umoci)
	e2e/scripts/images.sh

test: unit e2e ## everything CI runs: unit and integration tests, then the e2e suite on real beds

# The LDAP test starts slapd (e2e/scripts/ldap-up.sh) or reuses a running one: stop it after,
# unless it was running before, so the machine is left as it was found.
LDAP_PID = $(or $(K2H_E2E_STATE_DIR),e2e/.state)/ldap/slapd.pid
unit: ## Rust unit and integration tests (no cluster; the LDAP test starts its own slapd)
	@set -euo pipefail; \
	was=$$([ -s $(LDAP_PID) ] && kill -0 "$$(cat $(LDAP_PID))" 2>/dev/null && echo 1 || true); \
	trap '[ -n "$$was" ] || e2e/scripts/ldap-down.sh >/dev/null 2>&1 || true' EXIT; \
	$(CARGO) test --workspace --exclude e2e

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# promtool is built once (about 4 minutes on 2 cores) into ~/.cache/kube2hadoop/promtool-<version>/;
# later runs take seconds. `manifests/monitoring/check.sh --write` regenerates prometheusrule.yaml.
monitoring: ## alerts and dashboard: PrometheusRule matches rules.yaml, promtool check and test rules, dashboard exprs parse
	manifests/monitoring/check.sh

# helm is built once into ~/.cache/kube2hadoop (charts/helm.sh, about 5 minutes cold); kubectl is
# the bed's (e2e/scripts/build.sh); then the check takes seconds.
chart: ## helm lint --strict and template of charts/kube2hadoop, schema checks, drift from manifests/ overlays
	CARGO=$(CARGO) charts/check-drift.sh

fmt: ## format the code
	$(CARGO) fmt --all

docs: ## regenerate docs/cli.md from the binaries' --help
	docs/gen-cli.sh

# Empty: every e2e test file (webhook, Hadoop formats and client, token service, manifests), then
# the manifests installed as pods (install.sh, tests/installed.rs; on the real node only), then
# the Helm chart installed, upgraded and uninstalled (helm-install.sh, tests/helm.rs).
E2E_SUITE ?=

# The bed always comes down, also when bring-up or the suite fails; logs of a failed run stay in
# e2e/.state/logs. Test binaries are built first so the bed does not idle during compilation.
e2e: ## start the test bed, run the e2e suite, stop the bed
	@set -euo pipefail; \
	$(CARGO) build -p iddecorator; $(CARGO) test -p e2e $(E2E_SUITE) --no-run; \
	$(CARGO) test -p e2e --test installed --test helm --no-run; e2e/scripts/images.sh; \
	t0=$$SECONDS; t1=; t2=; \
	trap 'rc=$$?; echo "e2e: bring-up $$(($${t1:-$$SECONDS} - t0))s, suite $$(($${t2:-$$SECONDS} - $${t1:-$$SECONDS}))s, installed $$(($$SECONDS - $${t2:-$$SECONDS}))s"; \
	  e2e/scripts/hadoop-down.sh || true; e2e/scripts/ldap-down.sh 2>/dev/null || true; \
	  K2H_E2E_KEEP_LOGS=$$([ $$rc = 0 ] || echo 1) e2e/scripts/down.sh; exit $$rc' EXIT; \
	e2e/scripts/up.sh; t1=$$SECONDS; \
	source e2e/.state/env; $(CARGO) test -p e2e $(E2E_SUITE); t2=$$SECONDS; \
	if [ -z "$(E2E_SUITE)" ] && [ -n "$${K2H_E2E_NODE:-}" ]; then \
	  e2e/scripts/install.sh up; $(CARGO) test -p e2e --test installed; \
	  e2e/scripts/install.sh down; $(CARGO) test -p e2e --test helm; fi

e2e-up: ## build (first time: long) and start the local test bed; then `source e2e/.state/env`
	e2e/scripts/up.sh

e2e-down: ## stop the local test bed and remove its state
	e2e/scripts/down.sh

# Not run in our CI (no Docker engine there). See e2e/scripts/kind.sh for what it does.
e2e-kind: ## the e2e suite on a kind cluster (needs docker and kind; not run in CI)
	@set -euo pipefail; \
	trap 'e2e/scripts/kind.sh down' EXIT; \
	e2e/scripts/kind.sh up; source e2e/.state/kind/env; $(CARGO) test -p e2e $(E2E_SUITE)

bench: ## webhook vs a Go controller-runtime reference, kube-apiserver's view, bench-sustained, bench-token-service, then bench-pod-start; bench/results/
	CARGO=$(CARGO) bench/run.sh
	CARGO=$(CARGO) bench/sustained.sh
	CARGO=$(CARGO) bench/token-service.sh
	CARGO=$(CARGO) bench/pod-start.sh

bench-pod-start: ## pod start on the bed's real node with and without injection (and with a do-nothing init container) → results/pod-start.*
	CARGO=$(CARGO) bench/pod-start.sh

bench-sustained: ## 5,000 admissions/s for 60 s over HTTP/2, iddecorator then the Go reference (no control plane)
	CARGO=$(CARGO) bench/sustained.sh

bench-fetchers: ## only the sustained-fetch part of bench-token-service (500 clients, 60 s, ip and sa) → results/token-service-fetch.*
	CARGO=$(CARGO) BENCH_TS_STEPS=none BENCH_FETCHER_RUNS=0 bench/token-service.sh

bench-token-service: ## token-service at 100 and 1,000 pods (BENCH_TS_10K=1 adds 10,000) and init-fetcher; uses a running `make e2e-up` bed, else brings one up and down
	CARGO=$(CARGO) bench/token-service.sh

bench-scale: ## token-service at 1,000 / 5,000 / 10,000 pods, BEFORE=path/to/older/token-service side by side (needs a running `make e2e-up` bed) → results/token-service-scale.*
	CARGO=$(CARGO) bench/token-service-scale.sh

bench-webhook: ## only the side-by-side webhook part of `make bench` (no control plane)
	CARGO=$(CARGO) BENCH_APISERVER=0 bench/run.sh

bench-profile: ## perf profile of iddecorator and of the Go reference under load (not part of bench)
	CARGO=$(CARGO) bench/profile.sh iddecorator
	BENCH_BUILD=0 bench/profile.sh go-ref

demo: ## one command: control plane, HDFS, LDAP, webhook, token service, a pod with a token
	@e2e/scripts/demo.sh up

.PHONY: demo-down
demo-down: ## stop what `make demo` started (a bed that was already running stays up)
	@e2e/scripts/demo.sh down

# Not part of `make test` (nightly); `make test` replays fuzz/corpus and fuzz/regressions.
FUZZ_SECONDS ?= 600
.PHONY: fuzz
fuzz: ## cargo-fuzz (nightly) every target (or FUZZ_TARGETS) for FUZZ_SECONDS (600) each; see docs/reliability.md
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh
