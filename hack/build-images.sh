#!/usr/bin/env bash
# Builds the local node's container images without Docker: root filesystems from Debian packages
# (mmdebstrap) and PyPI, turned into OCI image layouts by umoci. Each image is built once per
# version into ~/.cache/studio-operator/images/<name>-<version>/ (an OCI layout tagged <version>);
# hack/node.py pushes them to the loopback registry with skopeo.
#   bash hack/build-images.sh [all|pause|web|fuse-rclone|jupyterlab]   (prints name=dir lines)
#
#   pause        the pods' sandbox image (hack/node/pause, nothing else)
#   web          a small generic web tool: python3 -m http.server on 8080 serving /workspace, uid 1000
#   fuse-rclone  the FUSE mounter sidecar: rclone, fuse3, a POSIX shell
#   jupyterlab   JupyterLab from PyPI on port 8888 as jovyan (uid 1000, gid 100)
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${STUDIO_CACHE:-$HOME/.cache/studio-operator}
IMAGES="$CACHE/images"
SUITE=${DEBIAN_SUITE:-bookworm}
JUPYTERLAB=${JUPYTERLAB_VERSION:-4.6.6}
# The Debian mirror of this machine's apt configuration (no host named here).
SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[ -f "$SOURCES" ] || SOURCES=/etc/apt/sources.list
# An image is rebuilt when its recipe changes: the functions and arguments that make it.
recipe() { printf '%s\n' "$SUITE" "$@" | sha256sum | cut -c1-8; }
log() { echo "[build-images] $*" >&2; }
mkdir -p "$IMAGES"
# One build at a time on a machine (cluster-up in several checkouts, make node-binaries).
exec 9>"$IMAGES/.lock"
flock 9
# What failed builds left behind (a build in progress is younger than that).
find "$IMAGES" -maxdepth 1 -name '.build-*' -mmin +180 -exec rm -rf {} +

# Smaller root filesystems: no docs, man pages or translations.
DPKG_OPTS=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*')
# The studio user of every tool image (API.md: the restricted default runs as 1000:100).
ADD_USER='chroot "$1" useradd --create-home --uid 1000 --gid 100 --shell /bin/sh jovyan'

# rootfs_image NAME VERSION "pkg,pkg" CONFIG_FN [mmdebstrap hook args...]: a one-layer image from
# Debian; CONFIG_FN DIR TAG sets its runtime configuration (user, entrypoint, ...).
rootfs_image() {
  local name=$1 version=$2 include=$3 configure=$4; shift 4
  local out tmp
  out="$IMAGES/$name-$version-$(recipe "$include" "$@" "$(declare -f rootfs_image config "$configure")")"
  if [ -f "$out/index.json" ]; then echo "$name=$out"; return; fi
  tmp=$(mktemp -d "$IMAGES/.build-$name-XXXXXX")
  log "$name $version: mmdebstrap $SUITE (+$include)"
  local t0=$SECONDS
  mmdebstrap --quiet --mode=root --variant=essential --include="$include" "${DPKG_OPTS[@]}" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    "$@" "$SUITE" "$tmp/rootfs.tar" "$SOURCES"
  umoci init --layout "$tmp/oci"
  umoci new --image "$tmp/oci:$version"
  umoci raw add-layer --image "$tmp/oci:$version" "$tmp/rootfs.tar"
  rm -f "$tmp/rootfs.tar"
  "$configure" "$tmp/oci" "$version"
  umoci gc --layout "$tmp/oci"
  mv "$tmp/oci" "$out"; rm -rf "$tmp"
  log "$name $version built in $((SECONDS - t0))s"
  echo "$name=$out"
}

config() { # config DIR TAG umoci-config-args...
  local dir=$1 tag=$2; shift 2
  umoci config --image "$dir:$tag" --author studio-operator "$@"
}

pause() {
  local out
  out="$IMAGES/pause-1-$(recipe "$(declare -f pause config)" "$(cat "$ROOT"/hack/node/pause/*)")"
  if [ ! -f "$out/index.json" ]; then
    local tmp; tmp=$(mktemp -d "$IMAGES/.build-pause-XXXXXX")
    (cd "$ROOT/hack/node/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$tmp/pause" .)
    umoci init --layout "$tmp/oci"; umoci new --image "$tmp/oci:1"
    umoci insert --image "$tmp/oci:1" "$tmp/pause" /pause
    config "$tmp/oci" 1 --config.entrypoint /pause --config.user 65535:65535
    mv "$tmp/oci" "$out"; rm -rf "$tmp"
  fi
  echo "pause=$out"
}

web_config() {
  config "$1" "$2" --config.user 1000:100 --config.workingdir /workspace \
    --config.entrypoint /usr/bin/tini --config.entrypoint -- \
    --config.cmd python3 --config.cmd -m --config.cmd http.server --config.cmd 8080 \
    --config.exposedports 8080/tcp
}
web() {
  rootfs_image web 1 python3,tini,passwd web_config --customize-hook="$ADD_USER" \
    --customize-hook='mkdir -p "$1"/workspace && chown 1000:100 "$1"/workspace'
}

fuse_config() { config "$1" "$2" --config.user 0:0 --config.entrypoint /bin/sh; }
fuse_rclone() {
  local v
  v=$(dpkg-query -W -f='${Version}' rclone 2>/dev/null | sed 's/[^A-Za-z0-9._-]/_/g'); v=${v:-bookworm}
  rootfs_image fuse-rclone "$v" rclone,fuse3,mount,ca-certificates fuse_config
}

# A token-less server: the studio's connect path (RBAC on pods/portforward) is the access control.
jupyterlab_config() {
  config "$1" "$2" --config.user 1000:100 --config.workingdir /workspace \
    --config.env HOME=/home/jovyan --config.env PATH=/opt/jupyter/bin:/usr/local/bin:/usr/bin:/bin \
    --config.env SHELL=/bin/sh \
    --config.entrypoint /usr/bin/tini --config.entrypoint -- \
    --config.cmd jupyter --config.cmd lab --config.cmd --ip=0.0.0.0 --config.cmd --port=8888 \
    --config.cmd --no-browser --config.cmd --ServerApp.token= --config.cmd --ServerApp.password= \
    --config.cmd --ServerApp.root_dir=/workspace \
    --config.exposedports 8888/tcp
}
jupyterlab() {
  # pip runs inside the new root but must trust what the host trusts (a TLS-inspecting proxy's CA
  # may be in the host's bundle only, and SSL_CERT_FILE & co. name the bundle's path): the
  # host's bundle stands in for the image's own during the install.
  local ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
  local hook="set -e
    chroot \"\$1\" python3 -m venv /opt/jupyter
    bundle=\"\$1\"/etc/ssl/certs/ca-certificates.crt
    cp \"\$bundle\" \"\$bundle.image\" && cp '$ca' \"\$bundle\"
    env -u PIP_FIND_LINKS chroot \"\$1\" /opt/jupyter/bin/pip install \\
      --quiet --no-cache-dir --disable-pip-version-check jupyterlab==$JUPYTERLAB
    mv \"\$bundle.image\" \"\$bundle\"
    mkdir -p \"\$1\"/workspace && chown 1000:100 \"\$1\"/workspace"
  rootfs_image jupyterlab "$JUPYTERLAB" python3,python3-venv,libstdc++6,tini,passwd,ca-certificates jupyterlab_config \
    --customize-hook="$ADD_USER" --customize-hook="$hook"
}

what=${1:-all}
case "$what" in
  pause) pause ;; web) web ;; fuse-rclone) fuse_rclone ;; jupyterlab) jupyterlab ;;
  all) pause; web; fuse_rclone; jupyterlab ;;
  *) log "unknown image $what"; exit 2 ;;
esac
