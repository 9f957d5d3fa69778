#!/usr/bin/env bash
# Builds the local control plane binaries from the Go module proxy, once per version, into a
# cache outside the repository, then links them into .cluster/bin/.
#   kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes via a wrapper module)
#   etcd (go.etcd.io/etcd/server/v3 via a wrapper module), kwok (if served), helm.
set -euo pipefail
K8S=${K8S_VERSION:-1.36.3}
ETCD=${ETCD_VERSION:-3.6.13}
KWOK=${KWOK_VERSION:-0.8.0}
HELM=${HELM_VERSION:-3.22.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${STUDIO_CACHE:-$HOME/.cache/studio-operator}
OUT="$CACHE/bin/k8s-v$K8S-etcd-v$ETCD"
BIN="$ROOT/.cluster/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$OUT" "$BIN" "$CACHE/build"

STAGING=v0.${K8S#1.}
MINOR=${K8S#1.}; MINOR=${MINOR%%.*}
log() { echo "[build-control-plane] $*" >&2; }

# A wrapper module requiring k8s.io/kubernetes with its staging repos replaced by their published
# versions; cd into it. The kubelet gets a wrapper of its own (same go.mod, so the Go build cache
# shares every package it has in common with the control plane).
k8s_module() {
  local W=$1; mkdir -p "$W"; cd "$W"
  log "resolving k8s.io/kubernetes v$K8S"
  local KMOD
  KMOD=$(go mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')
  {
    echo "module local.invalid/k8sbin"; echo; echo "go 1.26.0"
    grep -E '^godebug ' "$KMOD" || true
    echo; echo "require k8s.io/kubernetes v$K8S"; echo; echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\t\1 => \1 '"$STAGING"'#p' "$KMOD"
    echo ")"
  } > go.mod
  rm -f go.sum
}

k8s_ldflags() {
  local LD="-s -w"
  for kv in gitVersion=v$K8S gitMajor=1 gitMinor=$MINOR gitTreeState=clean buildDate=1970-01-01T00:00:00Z; do
    LD="$LD -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  echo "$LD"
}

build_k8s() {
  if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/kube-scheduler" ] \
     && "$OUT/kube-apiserver" --version | grep -q "v$K8S"; then
    log "kubernetes v$K8S cached in $OUT"; return
  fi
  k8s_module "$CACHE/build/k8s-v$K8S"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S" \
               "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S" \
               "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S"
  local LD; LD=$(k8s_ldflags)
  log "building kube-apiserver, kube-controller-manager, kube-scheduler (slow on a cold machine)"
  go build -trimpath -tags notest -ldflags "$LD" -o "$OUT/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
}

# The kubelet of the local worker node (hack/build-node.sh); not part of `all`.
build_kubelet() {
  local KOUT="$CACHE/bin/kubelet-v$K8S"
  if [ -x "$KOUT/kubelet" ] && "$KOUT/kubelet" --version | grep -q "v$K8S"; then
    log "kubelet v$K8S cached in $KOUT"
  else
    mkdir -p "$KOUT"
    k8s_module "$CACHE/build/kubelet-v$K8S"
    go get -tool "k8s.io/kubernetes/cmd/kubelet@v$K8S"
    log "building kubelet v$K8S"
    go build -trimpath -tags notest -ldflags "$(k8s_ldflags)" -o "$KOUT/kubelet" k8s.io/kubernetes/cmd/kubelet
  fi
  ln -sfn "$KOUT/kubelet" "$BIN/kubelet"
}

build_etcd() {
  if [ -x "$OUT/etcd" ]; then log "etcd cached"; return; fi
  local W="$CACHE/build/etcd-v$ETCD"; mkdir -p "$W"; cd "$W"
  printf 'module local.invalid/etcdbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD"
  log "building etcd v$ETCD"
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  if [ -x "$OUT/kwok" ] && [ -f "$OUT/kwok-stages.yaml" ]; then log "kwok cached"; return; fi
  local W="$CACHE/build/kwok-v$KWOK"; mkdir -p "$W"; cd "$W"
  printf 'module local.invalid/kwokbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
  if ! go get -tool "sigs.k8s.io/kwok/cmd/kwok@v$KWOK"; then
    log "kwok v$KWOK is not served: tests will play the kubelet themselves"; return
  fi
  go build -trimpath -ldflags "-s -w" -o "$OUT/kwok" sigs.k8s.io/kwok/cmd/kwok
  local S; S=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo '---'; cat "$S/$f"
  done > "$OUT/kwok-stages.yaml"
}

build_helm() {
  if [ -x "$OUT/helm" ]; then log "helm cached"; return; fi
  local W="$CACHE/build/helm-v$HELM"; mkdir -p "$W"; cd "$W"
  printf 'module local.invalid/helmbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
  go get -tool "helm.sh/helm/v3/cmd/helm@v$HELM"
  go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$MINOR" \
    -o "$OUT/helm" helm.sh/helm/v3/cmd/helm
}

what=${1:-all}
case "$what" in
  kubelet) build_kubelet; exit 0 ;;
  k8s) build_k8s ;; etcd) build_etcd ;; kwok) build_kwok ;; helm) build_helm ;;
  all) build_etcd; build_k8s; build_kwok || true; build_helm ;;
esac
for b in "$OUT"/*; do ln -sfn "$b" "$BIN/$(basename "$b")"; done
log "binaries in $BIN"
