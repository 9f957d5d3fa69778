#!/usr/bin/env bash
# Builds the local worker node's binaries once per version into ~/.cache/studio-operator and links
# them into .cluster/bin (CNI plugins into .cluster/bin/cni):
#   kubelet (k8s.io/kubernetes wrapper module, hack/build-control-plane.sh kubelet),
#   containerd, containerd-shim-runc-v2, ctr (github.com/containerd/containerd/v2),
#   CNI plugins bridge, loopback, host-local, portmap (github.com/containernetworking/plugins),
#   crictl (sigs.k8s.io/cri-tools: removes the node's pods, with their networks, on cluster-down),
#   local-path-provisioner (github.com/rancher/local-path-provisioner: the workspace volumes).
# and installs the Debian packages the node and the image builds use (idempotent, root only).
#   bash hack/build-node.sh [all|debs|containerd|cni|crictl|local-path|kubelet]
set -euo pipefail
K8S=${K8S_VERSION:-1.36.3}
CONTAINERD=${CONTAINERD_VERSION:-2.4.2}
CNI=${CNI_VERSION:-1.10.0}
CRICTL=${CRICTL_VERSION:-1.37.0}
LOCAL_PATH=${LOCAL_PATH_VERSION:-0.0.30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${STUDIO_CACHE:-$HOME/.cache/studio-operator}
BIN="$ROOT/.cluster/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$BIN/cni" "$CACHE/build"
log() { echo "[build-node] $*" >&2; }

# runc: the OCI runtime; iptables: the kubelet's and portmap's rules; docker-registry: the
# loopback image registry; apache2-utils: htpasswd; mmdebstrap, umoci, skopeo: image builds;
# rclone, fuse3: the FUSE mounter image's contents; chromium: the node test that opens JupyterLab.
DEBS=(runc iptables docker-registry apache2-utils mmdebstrap umoci skopeo rclone fuse3 chromium)
debs() {
  local missing=()
  for p in "${DEBS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages present"; return; fi
  if [ "$(id -u)" != 0 ]; then log "missing Debian packages (need root): ${missing[*]}"; return 1; fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

containerd() {
  local OUT="$CACHE/bin/containerd-v$CONTAINERD"
  if [ -x "$OUT/containerd" ] && [ -x "$OUT/containerd-shim-runc-v2" ] && [ -x "$OUT/ctr" ]; then
    log "containerd v$CONTAINERD cached"
  else
    local W="$CACHE/build/containerd-v$CONTAINERD"; mkdir -p "$W" "$OUT"; cd "$W"
    printf 'module local.invalid/containerdbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
    local M=github.com/containerd/containerd/v2
    go get -tool "$M/cmd/containerd@v$CONTAINERD" "$M/cmd/containerd-shim-runc-v2@v$CONTAINERD" "$M/cmd/ctr@v$CONTAINERD"
    log "building containerd v$CONTAINERD"
    go build -trimpath -ldflags "-s -w -X $M/version.Version=v$CONTAINERD" -o "$OUT/" \
      "$M/cmd/containerd" "$M/cmd/containerd-shim-runc-v2" "$M/cmd/ctr"
  fi
  for b in containerd containerd-shim-runc-v2 ctr; do ln -sfn "$OUT/$b" "$BIN/$b"; done
}

cni() {
  local OUT="$CACHE/bin/cni-plugins-v$CNI" P=(bridge loopback host-local portmap)
  if [ -x "$OUT/bridge" ] && [ -x "$OUT/loopback" ] && [ -x "$OUT/host-local" ] && [ -x "$OUT/portmap" ]; then
    log "CNI plugins v$CNI cached"
  else
    local W="$CACHE/build/cni-v$CNI"; mkdir -p "$W" "$OUT"; cd "$W"
    printf 'module local.invalid/cnibin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
    local M=github.com/containernetworking/plugins/plugins
    go get -tool "$M/main/bridge@v$CNI" "$M/main/loopback@v$CNI" "$M/ipam/host-local@v$CNI" "$M/meta/portmap@v$CNI"
    log "building CNI plugins v$CNI"
    go build -trimpath -ldflags "-s -w" -o "$OUT/" \
      "$M/main/bridge" "$M/main/loopback" "$M/ipam/host-local" "$M/meta/portmap"
  fi
  for b in "${P[@]}"; do ln -sfn "$OUT/$b" "$BIN/cni/$b"; done
}

crictl() {
  local OUT="$CACHE/bin/crictl-v$CRICTL"
  if [ ! -x "$OUT/crictl" ]; then
    local W="$CACHE/build/crictl-v$CRICTL"; mkdir -p "$W" "$OUT"; cd "$W"
    printf 'module local.invalid/crictlbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
    go get -tool "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL"
    log "building crictl v$CRICTL"
    go build -trimpath -ldflags "-s -w" -o "$OUT/crictl" sigs.k8s.io/cri-tools/cmd/crictl
  fi
  ln -sfn "$OUT/crictl" "$BIN/crictl"
}

local_path() {
  local OUT="$CACHE/bin/local-path-provisioner-v$LOCAL_PATH"
  if [ ! -x "$OUT/local-path-provisioner" ]; then
    local W="$CACHE/build/local-path-v$LOCAL_PATH"; mkdir -p "$W" "$OUT"; cd "$W"
    printf 'module local.invalid/localpathbin\n\ngo 1.26.0\n' > go.mod; rm -f go.sum
    go get -tool "github.com/rancher/local-path-provisioner@v$LOCAL_PATH"
    log "building local-path-provisioner v$LOCAL_PATH"
    go build -trimpath -ldflags "-s -w -X main.VERSION=v$LOCAL_PATH" -o "$OUT/local-path-provisioner" \
      github.com/rancher/local-path-provisioner
  fi
  ln -sfn "$OUT/local-path-provisioner" "$BIN/local-path-provisioner"
}

kubelet() { K8S_VERSION=$K8S bash "$ROOT/hack/build-control-plane.sh" kubelet; }

what=${1:-all}
case "$what" in
  debs) debs ;; containerd) containerd ;; cni) cni ;; crictl) crictl ;; local-path) local_path ;; kubelet) kubelet ;;
  all) debs; containerd; cni; crictl; local_path; kubelet ;;
  *) log "unknown target $what"; exit 2 ;;
esac
log "done ($what)"
