"""A real worker node beside the kwok node: loopback image registry, containerd, kubelet.

Used by hack/cluster.py (`up` starts it after kwok when the machine allows it, `down` stops it and
undoes what it changed on the host). Everything lives under .cluster/node/ except what the kubelet
and CNI insist on (see docs/real-node.md): the node IP is an extra /32 on `lo`, pods sit on the
bridge `studio0`, and at most one checkout per machine runs a node (/run/studio-operator-node).

The node registers with the taint `studios.dev/real-node=true:NoSchedule`: pods land on it only
when they tolerate it (the `node` tests, `make run`), everything else keeps running on kwok.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import cluster as c
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from loopback import free_ports, http

NODE = c.CLUSTER / "node"
NODE_NAME = "studio-node-0"
NODE_IP = "10.250.0.1"
POD_CIDR = "10.251.0.0/24"
BRIDGE = "studio0"
CNI_NETWORK = "studio-node"
TAINT_KEY = "studios.dev/real-node"
REGISTRY_USER = "studio"
PULL_SECRET = "local-registry"
LOCAL_PATH_NS = "local-path-storage"
STORAGE_CLASS = "local-path"
IMAGES = ("pause", "web", "fuse-rclone", "jupyterlab")
# Host-wide: the fixed paths of a kubelet (/var/lib/kubelet/device-plugins, /run/containerd/s)
# allow one node per machine. The file names the checkout whose node runs.
OWNER = Path("/run/studio-operator-node")
COMPONENTS = ("registry", "containerd", "kubelet", "local-path")
HOST_TOOLS = ("runc", "iptables", "docker-registry", "htpasswd", "skopeo", "umoci", "mmdebstrap", "ip")
NODE_BINARIES = (
    "kubelet",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "crictl",
    "local-path-provisioner",
)
CNI_PLUGINS = ("bridge", "loopback", "host-local", "portmap")
NODE_TIMEOUT = 120.0


def _run(argv: list[str], *, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def _owner() -> str | None:
    """The checkout whose node runs on this machine, if its kubelet is alive."""
    try:
        data = json.loads(OWNER.read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("kubelet_pid")
    if isinstance(pid, int) and c.pid_alive(pid):
        return str(data.get("checkout"))
    return None


def disabled_reason() -> str | None:
    """Why no real node can run here, or None. Checked before anything is changed."""
    if os.environ.get("STUDIO_NODE", "1") == "0":
        return "STUDIO_NODE=0"
    if os.geteuid() != 0:
        return "not root (the kubelet and containerd need root)"
    missing = [n for n in NODE_BINARIES if not os.access(c.BIN / n, os.X_OK)]
    missing += [f"cni/{n}" for n in CNI_PLUGINS if not os.access(c.BIN / "cni" / n, os.X_OK)]
    if missing:
        return f"not built: {', '.join(missing)} (make node-binaries)"
    tools = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if tools:
        return f"missing host tools: {', '.join(tools)} (make node-binaries installs them)"
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse"
    owner = _owner()
    if owner is not None and owner != str(c.ROOT):
        return f"the machine's node is run by {owner}"
    return None


def build_images() -> dict[str, tuple[Path, str]]:
    """name -> (OCI layout, tag) of every image, from hack/build-images.sh: instant when cached,
    else it builds them (a cold JupyterLab image takes minutes)."""
    proc = subprocess.run(
        ["bash", str(c.ROOT / "hack" / "build-images.sh"), "all"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise c.ClusterError(f"hack/build-images.sh failed:\n{proc.stderr[-2000:]}")
    out: dict[str, tuple[Path, str]] = {}
    for line in proc.stdout.splitlines():
        name, _, layout = line.partition("=")
        index = json.loads((Path(layout) / "index.json").read_text())
        tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        out[name] = (Path(layout), tag)
    return out


# --------------------------------------------------------------------------------------------
# configuration files


def _node_pki() -> None:
    """Client certificate for the kubelet: user system:node:<name> in group system:nodes, which the
    API server's Node authorizer and NodeRestriction admission recognise."""
    pki = NODE / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key((c.PKI / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((c.PKI / "ca.crt").read_bytes())
    key = c._new_key()
    assert isinstance(ca_key, type(key))
    cert = c._issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{NODE_NAME}"),
            ]
        ),
        key,
        ca_cert=ca,
        ca_key=ca_key,
        days=365,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    c._write_key(pki / "node-client.key", key)
    (pki / "node-client.crt").write_bytes(c._pem(cert))


def _kubeconfig(api: str) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path = NODE / "kubelet" / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": api, "certificate-authority-data": b64(c.PKI / "ca.crt")},
                    }
                ],
                "users": [
                    {
                        "name": "kubelet",
                        "user": {
                            "client-certificate-data": b64(NODE / "pki" / "node-client.crt"),
                            "client-key-data": b64(NODE / "pki" / "node-client.key"),
                        },
                    }
                ],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "kubelet"}}],
                "current-context": "local",
            },
            sort_keys=False,
        )
    )
    path.chmod(0o600)
    return path


def registry_config(port: int, password: str) -> Path:
    d = NODE / "registry"
    (d / "data").mkdir(parents=True, exist_ok=True)
    htpasswd = _run(["htpasswd", "-Bbn", REGISTRY_USER, password]).stdout
    (d / "htpasswd").write_text(htpasswd)
    (d / "htpasswd").chmod(0o600)
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        # Pulls need credentials: pods pull with imagePullSecrets, as from any private registry.
        "auth": {"htpasswd": {"realm": "studio-local", "path": str(d / "htpasswd")}},
    }
    path = d / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def containerd_config(registry: str) -> Path:
    d = NODE / "containerd"
    certs = d / "certs.d" / registry
    certs.mkdir(parents=True, exist_ok=True)
    # Plain HTTP to the loopback registry (no TLS on loopback).
    (certs / "hosts.toml").write_text(
        f'server = "http://{registry}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    sock = d / "state" / "containerd.sock"
    (d / "cni-ipam").mkdir(parents=True, exist_ok=True)
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    text = f"""version = 4
root = '{d / "root"}'
state = '{d / "state"}'
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins.'io.containerd.server.v1.grpc']
  address = '{sock}'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '{sock}.ttrpc'
[plugins.'io.containerd.internal.v1.opt']
  path = '{d / "opt"}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{registry}/studio/pause:1'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '{d / "certs.d"}'

[{runtime}]
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{runtime}.containerd]
    default_runtime_name = 'runc'
    [{runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = '{shutil.which("runc")}'
        Root = '{d / "runc"}'
        SystemdCgroup = false
  [{runtime}.cni]
    bin_dirs = ['{c.BIN / "cni"}']
    conf_dir = '{NODE / "cni"}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""
    path = d / "config.toml"
    path.write_text(text)
    return path


def cni_config() -> None:
    d = NODE / "cni"
    d.mkdir(parents=True, exist_ok=True)
    conf = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(NODE / "containerd" / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (d / "10-studio.conflist").write_text(json.dumps(conf, indent=2))


def kubelet_config(port: int, healthz_port: int) -> Path:
    d = NODE / "kubelet"
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(c.PKI / "ca.crt")},
        },
        # Only holders of a certificate from the cluster CA reach it (the API server's is admin).
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{NODE / 'containerd' / 'state' / 'containerd.sock'}",
        "imageServiceEndpoint": f"unix://{NODE / 'containerd' / 'state' / 'containerd.sock'}",
        "podCIDR": POD_CIDR,
        "podLogsDir": str(d / "pod-logs"),
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "maxPods": 60,
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# host changes


def _lo_address(add: bool) -> None:
    addrs = _run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    present = f" {NODE_IP}/32 " in addrs
    if add and not present:
        _run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])
    elif not add and present:
        _run(["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"], check=False)


def _push_images(images: dict[str, tuple[Path, str]], registry: str, password: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for name, (layout, tag) in sorted(images.items()):
        ref = f"{registry}/studio/{name}:{tag}"
        _run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--dest-creds",
                f"{REGISTRY_USER}:{password}",
                f"oci:{layout}:{tag}",
                f"docker://{ref}",
            ],
            timeout=600,
        )
        refs[name] = ref
    return refs


def _node_ready(api: str) -> bool:
    status, body = http(f"{api}/api/v1/nodes/{NODE_NAME}", ctx=c.admin_context())
    if status != 200:
        return False
    conditions = json.loads(body).get("status", {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)


def start(api: str, pids: dict[str, int]) -> dict[str, Any]:
    """Start registry, containerd and kubelet; wait for the node to be Ready. Returns the node's
    entry for cluster.json. Raises ClusterError (the caller cleans up and falls back to kwok)."""
    t0 = time.monotonic()
    images = build_images()
    for sub in ("kubelet", "containerd", "cni", "registry"):
        (NODE / sub).mkdir(parents=True, exist_ok=True)
    reg_port, kubelet_port, healthz_port = free_ports(3)
    registry = f"127.0.0.1:{reg_port}"
    password = secrets.token_hex(12)
    _lo_address(True)
    OWNER.write_text(json.dumps({"checkout": str(c.ROOT), "kubelet_pid": None}))

    pids["registry"] = c.start_process(
        "registry", ["docker-registry", "serve", str(registry_config(reg_port, password))]
    )
    c.wait_until(
        "registry /v2/",
        lambda: http(f"http://{registry}/v2/")[0] == 401,
        timeout=c.COMPONENT_TIMEOUT,
        watch={"registry": pids["registry"]},
    )
    refs = _push_images(images, registry, password)
    c.log(f"images pushed to {registry}: {', '.join(sorted(refs))}")

    cni_config()
    env = dict(os.environ, PATH=f"{c.BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    pids["containerd"] = c.start_process(
        "containerd", [str(c.BIN / "containerd"), f"--config={containerd_config(registry)}"], env=env
    )
    sock = NODE / "containerd" / "state" / "containerd.sock"
    c.wait_until(
        "containerd socket",
        sock.exists,
        timeout=c.COMPONENT_TIMEOUT,
        watch={"containerd": pids["containerd"]},
    )
    # The sandbox image is pulled by containerd itself, without the pods' credentials.
    _run(
        [
            str(c.BIN / "ctr"),
            f"--address={sock}",
            "-n",
            "k8s.io",
            "images",
            "pull",
            "--local",
            f"--hosts-dir={NODE / 'containerd' / 'certs.d'}",
            "--user",
            f"{REGISTRY_USER}:{password}",
            refs["pause"],
        ]
    )

    _node_pki()
    pids["kubelet"] = c.start_process(
        "kubelet",
        [
            str(c.BIN / "kubelet"),
            f"--config={kubelet_config(kubelet_port, healthz_port)}",
            f"--kubeconfig={_kubeconfig(api)}",
            f"--root-dir={NODE / 'kubelet' / 'root'}",
            f"--cert-dir={NODE / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=studios.dev/node=real",
            "--v=1",
        ],
        env=env,
    )
    OWNER.write_text(json.dumps({"checkout": str(c.ROOT), "kubelet_pid": pids["kubelet"]}))
    watch = {n: pids[n] for n in COMPONENTS if n in pids}
    c.wait_until(f"node {NODE_NAME} Ready", lambda: _node_ready(api), timeout=NODE_TIMEOUT, watch=watch)
    pids["local-path"] = _start_local_path(api, registry, password, refs["web"])
    return {
        "name": NODE_NAME,
        "ip": NODE_IP,
        "taint": f"{TAINT_KEY}=true:NoSchedule",
        "registry": registry,
        "registry_user": REGISTRY_USER,
        "registry_password": password,
        "images": refs,
        "storage_class": STORAGE_CLASS,
        "seconds": round(time.monotonic() - t0, 1),
    }


def _api(api: str, method: str, path: str, body: dict[str, Any]) -> None:
    status, text = http(f"{api}{path}", ctx=c.admin_context(), method=method, body=body)
    if status not in (200, 201, 409):
        raise c.ClusterError(f"{method} {path}: {status} {text[:300]!r}")


def pull_secret(registry: str, password: str, namespace: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PULL_SECRET, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps({"auths": {registry: {"auth": auth}}})},
    }


def _start_local_path(api: str, registry: str, password: str, helper_image: str) -> int:
    """rancher's local-path-provisioner, run beside the control plane with the admin kubeconfig:
    StorageClass `local-path` (WaitForFirstConsumer) gives claims a directory under
    .cluster/node/local-path on the real node, created and removed by helper pods there."""
    d = NODE / "local-path"
    d.mkdir(parents=True, exist_ok=True)
    ns = LOCAL_PATH_NS
    _api(
        api, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    _api(api, "POST", f"/api/v1/namespaces/{ns}/secrets", pull_secret(registry, password, ns))
    _api(
        api,
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "local-path-provisioner"}},
    )
    scripts = {
        "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
        "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
    }
    _api(
        api,
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "local-path-config"}, "data": scripts},
    )
    _api(
        api,
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    )
    config = d / "config.json"
    config.write_text(json.dumps({"nodePathMap": [{"node": NODE_NAME, "paths": [str(d / "volumes")]}]}))
    helper = d / "helper-pod.yaml"
    helper.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "helper-pod"},
                "spec": {
                    "imagePullSecrets": [{"name": PULL_SECRET}],
                    "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                    "containers": [
                        {"name": "helper-pod", "image": helper_image, "imagePullPolicy": "IfNotPresent"}
                    ],
                },
            }
        )
    )
    return c.start_process(
        "local-path",
        [
            str(c.BIN / "local-path-provisioner"),
            "start",
            f"--kubeconfig={c.KUBECONFIG}",
            f"--config={config}",
            f"--helper-pod-file={helper}",
            "--provisioner-name=rancher.io/local-path",
            f"--namespace={ns}",
            f"--helper-image={helper_image}",
            "--configmap-name=local-path-config",
            "--service-account-name=local-path-provisioner",
        ],
    )


def _mounts_under(root: Path) -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return found


def _ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(NODE) in cmdline


def remove_pods() -> None:
    """With containerd still running: stop and remove every pod sandbox through the CRI, which also
    tears down the pods' networks (IP leases, veths)."""
    sock = NODE / "containerd" / "state" / "containerd.sock"
    if not sock.exists() or not os.access(c.BIN / "crictl", os.X_OK):
        return
    r = _run(
        [
            str(c.BIN / "crictl"),
            f"--runtime-endpoint=unix://{sock}",
            "--timeout=20s",
            "rmp",
            "--all",
            "--force",
        ],
        check=False,
        timeout=90,
    )
    if r.returncode != 0:
        c.log(f"crictl rmp: {r.stderr.strip()[:300]}")


def cleanup() -> None:
    """After the node's processes stopped: kill what is left of its containers, unmount everything
    under .cluster/node, remove the bridge, the lo address and the owner file."""
    if not NODE.exists():
        return
    runc = shutil.which("runc")
    runc_root = NODE / "containerd" / "runc"
    if runc and runc_root.exists():
        for ns_root in [runc_root, *[p for p in runc_root.iterdir() if p.is_dir()]]:
            listing = _run([runc, "--root", str(ns_root), "list", "-q"], check=False).stdout.split()
            for cid in listing:
                _run([runc, "--root", str(ns_root), "kill", cid, "KILL"], check=False)
                _run([runc, "--root", str(ns_root), "delete", "--force", cid], check=False)
    # containerd shims of this node (their command line names its socket)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _ours(int(proc.name)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)
    for point in sorted(_mounts_under(NODE), key=len, reverse=True):
        _run(["umount", "-l", point], check=False)
    other = _owner()
    if other is not None and other != str(c.ROOT):
        return  # the bridge and the node IP belong to another checkout's running node
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
        _run(["ip", "link", "del", BRIDGE], check=False)
    _lo_address(False)
    # kubelet's symlinks into our pod log dir
    with contextlib.suppress(OSError):
        for link in Path("/var/log/containers").iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(NODE) in os.readlink(link):
                    link.unlink()
    owner = _owner_file_checkout()
    if owner in (None, str(c.ROOT)):
        with contextlib.suppress(FileNotFoundError):
            OWNER.unlink()
    # Fresh state for the next node (the registry's blobs and pulled images are kept).
    for sub in ("kubelet", "pki", "containerd/state", "containerd/runc", "containerd/cni-ipam"):
        shutil.rmtree(NODE / sub, ignore_errors=True)


def _owner_file_checkout() -> str | None:
    try:
        return str(json.loads(OWNER.read_text()).get("checkout"))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# `make run`: the sample studio on the real node


def sample_manifests(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A pull Secret for the loopback registry, an environment whose studios run on the real node,
    and a JupyterLab studio on it (the images' references carry the registry's port)."""
    auth = base64.b64encode(f"{entry['registry_user']}:{entry['registry_password']}".encode()).decode()
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "local-registry"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": json.dumps({"auths": {entry["registry"]: {"auth": auth}}})},
        },
        {
            "apiVersion": "studios.dev/v1alpha1",
            "kind": "ComputeEnvironment",
            "metadata": {"name": "local-node"},
            "spec": {
                "env": [{"name": "TEAM", "value": "demo"}],
                "resourceLabels": {"team": "demo"},
                "nodeSelector": {"studios.dev/node": "real"},
                "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                "imagePullSecrets": [{"name": "local-registry"}],
            },
        },
        {
            "apiVersion": "studios.dev/v1alpha1",
            "kind": "Studio",
            "metadata": {"name": "jupyterlab"},
            "spec": {
                "displayName": "JupyterLab on the local node",
                "computeEnvironment": "local-node",
                "template": {"image": entry["images"]["jupyterlab"], "port": 8888},
                "lifespan": {"policy": "StopAfter", "hours": 8},
            },
        },
    ]


def main(argv: list[str]) -> int:
    if argv[:1] != ["sample"]:
        print("usage: node.py sample   (prints the real node's sample studio as YAML, or nothing)")
        return 2
    entry = c.read_info().get("node")
    if entry:
        print(yaml.safe_dump_all(sample_manifests(entry), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    import sys

    sys.modules.setdefault("cluster", c)
    raise SystemExit(main(sys.argv[1:]))
