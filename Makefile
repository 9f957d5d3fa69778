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
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# --- Checks and tests -------------------------------------------------------------------------

.PHONY: lint
lint: venv ## ruff check + ruff format --check
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

.PHONY: typecheck
typecheck: venv ## mypy (strict) on the operator package and hack/cluster.py
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict hack/cluster.py

.PHONY: test
test: venv lint typecheck cluster-binaries ## the whole suite (what .ci/run calls)
	$(PY) -m pytest tests

# --- Local control plane (hack/cluster.py) ----------------------------------------------------

.PHONY: cluster-binaries
cluster-binaries: ## build etcd, kube-apiserver, ... into ~/.cache/studio-operator (once per version)
	bash hack/build-control-plane.sh

.PHONY: cluster-up
cluster-up: venv ## start the loopback control plane (idempotent); kubeconfig in .cluster/kubeconfig
	$(PY) hack/cluster.py up

.PHONY: cluster-down
cluster-down: ## stop the control plane processes (logs stay in .cluster/logs)
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
