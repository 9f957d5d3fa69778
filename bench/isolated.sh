#!/usr/bin/env bash
# A control plane of the benchmarks' own: hack/cluster.py run from a copy of hack/ under
# .cluster/bench-cp (so its state lives in .cluster/bench-cp/.cluster, apart from the shared one).
# Nothing else runs against it: no other operator reconciles the benchmark's studios.
#   bash bench/isolated.sh up      # start (idempotent); prints the kubeconfig path on stdout
#   bash bench/isolated.sh down    # stop it (its data stays until `make clean`)
#   bash bench/isolated.sh status
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_CP_DIR:-.cluster/bench-cp}
PY=${PY:-.venv/bin/python}
case "${1:-up}" in
  up)
    mkdir -p "$DIR"
    rm -rf "$DIR/hack"
    cp -r hack "$DIR/hack"
    "$PY" "$DIR/hack/cluster.py" up >&2
    echo "$(cd "$DIR" && pwd)/.cluster/kubeconfig"
    ;;
  down)
    if [ -f "$DIR/hack/cluster.py" ]; then "$PY" "$DIR/hack/cluster.py" down; fi
    ;;
  status)
    "$PY" "$DIR/hack/cluster.py" status
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
