#!/usr/bin/env bash
# Builds hack/clients (kstatus, Argo CD's Lua interpreter and Flux's CEL, as GitOps tools read
# studios) once per version of its sources into ~/.cache/studio-operator/clients/, and prints the
# binary's path. Used by `make clients` and by tests/gitops_clients.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC="$ROOT/hack/clients"
CACHE=${STUDIO_CACHE:-$HOME/.cache/studio-operator}
HASH=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go | sha256sum | cut -c1-16)
OUT="$CACHE/clients/studio-clients-$HASH"
if [ ! -x "$OUT" ]; then
  mkdir -p "$CACHE/clients"
  echo "[build-clients] building $OUT (kstatus, gopher-lua, cel-go from the Go module proxy)" >&2
  TMP=$(mktemp "$OUT.XXXXXX")
  trap 'rm -f "$TMP"' EXIT
  (cd "$SRC" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -o "$TMP" .)
  mv -f "$TMP" "$OUT"  # atomic: a concurrent build of the same sources writes the same file
fi
echo "$OUT"
