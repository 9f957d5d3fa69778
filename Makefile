SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
LINT_PATHS := operator tests hack bench

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# --- Python environment ----------------------------------------------------------------------

.PHONY: venv
venv: $(STAMP) ## create .venv (python3.11+) and install the project with its dev extras

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "need Python >= 3.11, got " + sys.version)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,dev]'
	@touch $@

# --- Checks and tests -------------------------------------------------------------------------

.PHONY: lint
lint: venv ## ruff check + ruff format --check
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

.PHONY: typecheck
typecheck: venv ## mypy (strict) on the operator package and hack/cluster.py
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict hack/cluster.py hack/node.py

.PHONY: test
test: venv lint typecheck cluster-binaries clients ## the whole suite (what .ci/run calls)
	$(PY) -m pytest tests

.PHONY: test-unit
test-unit: venv ## the unit tests: no control plane, seconds
	$(PY) -m pytest -q tests/unit

# --- Local control plane (hack/cluster.py) ----------------------------------------------------

.PHONY: cluster-binaries
cluster-binaries: ## build etcd, kube-apiserver, ... into ~/.cache/studio-operator (once per version)
	bash hack/build-control-plane.sh
	@$(MAKE) --no-print-directory node-binaries

# The real node (hack/node.py) needs root; elsewhere, or with STUDIO_NODE=0, the cluster is kwok only.
.PHONY: node-binaries
node-binaries: ## real node: Debian packages, kubelet, containerd, CNI plugins, images (cached by version)
	@if [ "$${STUDIO_NODE:-1}" = 0 ]; then echo "STUDIO_NODE=0: no real node"; \
	elif [ "$$(id -u)" != 0 ]; then echo "not root: no real node (kwok only)"; \
	else bash hack/build-node.sh all && bash hack/build-images.sh all >/dev/null; fi

.PHONY: clients
clients: ## build hack/clients (kstatus, Argo CD Lua, Flux CEL; tests/integration/test_gitops_clients.py)
	bash hack/build-clients.sh

.PHONY: cluster-up
cluster-up: venv ## start the loopback control plane (idempotent); kubeconfig in .cluster/kubeconfig
	$(PY) hack/cluster.py up

.PHONY: cluster-down
cluster-down: ## stop the control plane processes and the loopback S3 server (logs stay in .cluster/logs)
	@if [ -x $(PY) ]; then $(PY) hack/s3.py down; else python3 hack/s3.py down; fi
	@if [ -x $(PY) ]; then $(PY) hack/cluster.py down; else python3 hack/cluster.py down; fi

.PHONY: cluster-status
cluster-status: venv ## show the control plane processes; exit code 0 iff healthy
	$(PY) hack/cluster.py status

# --- Operator from the checkout (hack/operator.sh) --------------------------------------------

.PHONY: operator-up
operator-up: venv cluster-up ## run the operator in the background (pid .cluster/operator.pid)
	bash hack/operator.sh up

.PHONY: operator-down
operator-down: ## stop the background operator
	bash hack/operator.sh down

# --- kind (needs Docker; not available on the build machines) --------------------------------

KIND_CLUSTER := studio
KIND_KUBECONFIG := .cluster/kind-kubeconfig
IMAGE := studio-operator:dev
# helm as linked by `make cluster-binaries`, else the one on PATH
HELM := $(if $(wildcard .cluster/bin/helm),.cluster/bin/helm,helm)

.PHONY: kind-up
kind-up: ## create a kind cluster (kubeconfig in .cluster/kind-kubeconfig)
	@mkdir -p .cluster
	@if kind get clusters | grep -qx '$(KIND_CLUSTER)'; then \
	  kind export kubeconfig --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG); \
	else \
	  kind create cluster --name $(KIND_CLUSTER) --config hack/kind-config.yaml --kubeconfig $(KIND_KUBECONFIG); \
	fi

.PHONY: kind-down
kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)

.PHONY: kind-e2e
kind-e2e: venv kind-up ## build the image, install the chart into kind, run the e2e tests
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(HELM) upgrade --install studio-operator charts/studio-operator --kubeconfig $(KIND_KUBECONFIG) \
	  --set image.repository=studio-operator --set image.tag=dev --set image.pullPolicy=Never --wait
	STUDIO_TEST_KUBECONFIG=$(KIND_KUBECONFIG) $(PY) -m pytest -m e2e tests

# --- First look ------------------------------------------------------------------------------

.PHONY: run
run: venv cluster-binaries ## control plane, CRDs, S3 endpoint, operator, samples in namespace demo, status
	bash hack/run.sh

# --- Housekeeping -----------------------------------------------------------------------------

.PHONY: clean
clean: operator-down cluster-down ## stop everything and remove .cluster (cached binaries stay)
	rm -rf .cluster

# --- Install artifacts: CRDs, RBAC, webhooks, Helm chart, kustomize, image ---------------------
# Everything under charts/studio-operator/{crds,files} and manifests/{crds,rbac,default/webhooks.yaml}
# is generated from the code by hack/gen_install.py; tests/unit/test_install_generated.py fails on drift.

.PHONY: crds
crds: venv ## regenerate the CRDs (manifests/crds; crds/ and the chart's crds/ link there)
	$(PY) hack/gen_install.py crds

.PHONY: rbac
rbac: venv ## regenerate manifests/rbac and the chart's copy from rbac.py
	$(PY) hack/gen_install.py rbac

.PHONY: manifests
manifests: venv ## regenerate every install artifact (CRDs, RBAC, webhook entries)
	$(PY) hack/gen_install.py all

.PHONY: lock
lock: venv ## pin the runtime dependencies for the image (requirements.lock)
	$(PY) hack/lock_requirements.py

.PHONY: chart-lint
chart-lint: ## helm lint --strict the chart (helm from `make cluster-binaries`)
	@command -v $(HELM) >/dev/null || { echo "$(HELM) missing: run make cluster-binaries"; exit 1; }
	$(HELM) lint --strict charts/studio-operator

.PHONY: krew
krew: venv ## build dist/kubectl-studio.tar.gz (krew archive) and update plugins/krew/studio.yaml
	$(PY) hack/krew_archive.py --write

.PHONY: plugin-install
plugin-install: venv ## put kubectl-studio on PATH (~/.local/bin) for `kubectl studio`
	@mkdir -p $(HOME)/.local/bin
	ln -sf $(abspath $(VENV)/bin/kubectl-studio) $(HOME)/.local/bin/kubectl-studio
	@echo "kubectl studio --help   (needs ~/.local/bin on PATH)"

# --- bench: benchmarks (bench/run.py, bench/README.md) ---------------------------------------
# Sizes and knobs from the environment, e.g. `BENCH_SIZES=100,1000 make bench`. Both write
# bench/results/latest.{json,md,png}. BENCH_ISOLATED=1 runs them on a control plane of their own
# (bench/isolated.sh, .cluster/bench-cp): operators started by tests or `make operator-up` watch
# every namespace of the shared one and would reconcile the benchmark's studios too.

BENCH_SIZES ?= 100,1000,5000
BENCH_QUICK_SIZES ?= 100
BENCH_LATENCY_SAMPLES ?= 50
BENCH_ISOLATED ?= 0
BENCH_ARGS ?=
BENCH_CLUSTER := $(if $(filter 1,$(BENCH_ISOLATED)),cluster-binaries,cluster-up)
BENCH_RUN = if [ "$(BENCH_ISOLATED)" = 1 ]; then kc=$$(bash bench/isolated.sh up); \
	else kc=$${BENCH_KUBECONFIG:-.cluster/kubeconfig}; fi; \
	$(PY) bench/run.py --kubeconfig "$$kc" --latency-samples $(BENCH_LATENCY_SAMPLES)

.PHONY: bench
bench: venv $(BENCH_CLUSTER) ## full benchmark, N = 100,1000,5000 (BENCH_SIZES; 2 h or more on 2 CPUs)
	$(BENCH_RUN) --sizes $(BENCH_SIZES) --label full $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: venv $(BENCH_CLUSTER) ## quick benchmark, about 100 studios (about 3 min)
	$(BENCH_RUN) --sizes $(BENCH_QUICK_SIZES) --label quick $(BENCH_ARGS)

.PHONY: bench-clean
bench-clean: venv ## delete what interrupted benchmark runs left (label studio-bench/run); stop bench-cp
	$(PY) bench/run.py --cleanup
	-bash bench/isolated.sh down

# --- Reliability: fault injection (tests/reliability, docs/reliability.md) -------------------
# `make test` runs the same suite trimmed (60 studios, short outages: a few minutes). The full run
# kills the operator during 200 studios' starts, stops and deletions, keeps API servers away for
# 30 s, delays responses past the request timeout; about 15 minutes on 2 CPUs. Figures are printed
# at the end and merged into .cluster/reliability/figures.json. STUDIO_RELIABILITY_SEED=N replays
# the crash scenario's random kills.

RELIABILITY_N ?= 200

.PHONY: test-reliability
test-reliability: venv cluster-binaries ## fault-injection suite at full scale (200 studios, long outages)
	STUDIO_RELIABILITY_N=$(RELIABILITY_N) STUDIO_RELIABILITY_FULL=1 $(PY) -m pytest tests/reliability -m reliability
