#!/usr/bin/env python3
"""Local Kubernetes control plane on loopback, for development and the integration tests.

    python hack/cluster.py up       # idempotent: reuse a healthy cluster, else start a fresh one
    python hack/cluster.py down     # stop the processes recorded in .cluster/pids/ (logs are kept)
    python hack/cluster.py status   # exit code 0 iff the cluster is healthy
    python hack/cluster.py restart kube-apiserver [--down SECONDS]
                                    # stop one component (pid file) and start it again with the
                                    # same command line (fault injection: tests/reliability)

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler (if built) and kwok (if built)
from .cluster/bin/ (built by hack/build-control-plane.sh), each detached, logging to
.cluster/logs/<name>.log with its pid in .cluster/pids/<name>.pid. Where the machine allows it,
also a real worker node beside kwok's (hack/node.py: registry, containerd, kubelet; built by
hack/build-node.sh and hack/build-images.sh); else one line says why and the cluster is kwok only. Writes the admin kubeconfig
(embedded credentials) to .cluster/kubeconfig and ports plus an unprivileged token user to
.cluster/cluster.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from loopback import free_ports, http

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / ".cluster"
BIN = CLUSTER / "bin"
PKI = CLUSTER / "pki"
DATA = CLUSTER / "data"
PIDS = CLUSTER / "pids"
LOGS = CLUSTER / "logs"
KUBECONFIG = CLUSTER / "kubeconfig"
INFO = CLUSTER / "cluster.json"
LOCK = CLUSTER / ".lock"
BUILD_SCRIPT = ROOT / "hack" / "build-control-plane.sh"

REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
# Start order; down stops in reverse (etcd last). The last three are the real node (hack/node.py).
NODE_COMPONENTS = ("registry", "containerd", "kubelet", "local-path")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", *NODE_COMPONENTS)
# A /16 like a real cluster: a /24 (253 ClusterIPs) runs out at a few hundred studios, and a
# nearly full range makes every Service create slow (the allocator searches for a free address).
SERVICE_CIDR = "10.0.0.0/16"
SERVICE_IP = "10.0.0.1"
TOKEN_USER = "studio-test-user"
KWOK_NODE = "kwok-node-0"
ALWAYS_ALLOW = "/healthz,/readyz,/livez,/metrics"

APISERVER_TIMEOUT = 120.0
COMPONENT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[cluster +{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


class ClusterError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# processes


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc/<pid>/stat, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ..." - comm may contain spaces and parentheses
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def pid_is_ours(pid: int) -> bool:
    """True if the process runs something from this checkout's .cluster directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(CLUSTER) in cmdline


def read_pids() -> dict[str, int]:
    pids: dict[str, int] = {}
    if not PIDS.is_dir():
        return pids
    for f in sorted(PIDS.glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pids[f.stem] = int(f.read_text().strip())
    return pids


def _stop_pids(pids: dict[str, int], timeout: float) -> None:
    for name, pid in pids.items():
        log(f"stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids.values()):
        time.sleep(0.1)
    for name, pid in pids.items():
        if pid_alive(pid):
            log(f"{name} (pid {pid}) did not exit after {timeout:.0f}s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop_all(timeout: float = STOP_TIMEOUT) -> None:
    """Stop exactly the processes from the pid files (clients first, etcd last); remove the files."""
    pids = read_pids()
    ours: dict[str, int] = {}
    for name, pid in pids.items():
        if not pid_alive(pid):
            log(f"{name} (pid {pid}) is not running")
        elif not pid_is_ours(pid):
            log(f"{name}: pid {pid} belongs to another program now; leaving it alone")
        else:
            ours[name] = pid
    if "kubelet" in ours:
        # The kubelet first (it would restart pods), then the pods through the CRI while
        # containerd still runs.
        _stop_pids({"kubelet": ours.pop("kubelet")}, timeout)
    if "containerd" in ours:
        _node().remove_pods()
    order = [n for n in reversed(COMPONENTS) if n in ours] + sorted(set(ours) - set(COMPONENTS))
    clients = {n: ours[n] for n in order if n != "etcd"}
    if clients:
        _stop_pids(clients, timeout)
    if "etcd" in ours:
        _stop_pids({"etcd": ours["etcd"]}, timeout)
    for name in pids:
        with contextlib.suppress(FileNotFoundError):
            (PIDS / f"{name}.pid").unlink()
    _node().cleanup()


def _node() -> Any:
    """hack/node.py, which imports this module as `cluster` (the same one when run as a script)."""
    sys.modules.setdefault("cluster", sys.modules[__name__])
    import node

    return node


def start_process(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    log_path = LOGS / f"{name}.log"
    if log_path.exists():
        log_path.replace(LOGS / f"{name}.log.1")
    with open(log_path, "wb") as out:
        out.write(f"# {dt.datetime.now().isoformat(timespec='seconds')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=CLUSTER,
            env=env,
            start_new_session=True,
        )
    (PIDS / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def log_tail(name: str, lines: int = 30) -> str:
    try:
        text = (LOGS / f"{name}.log").read_text(errors="replace")
    except OSError:
        return f"(no log for {name})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# PKI


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    *,
    ca_cert: x509.Certificate | None,
    ca_key: rsa.RSAPrivateKey,
    days: int,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    is_ca = ca_cert is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if ca_cert is None else ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
        .add_extension(_key_usage(ca=is_ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def generate_pki() -> str:
    """CA, apiserver serving cert, admin client cert, SA key pair, token file. Returns the token."""
    PKI.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studio-local-ca")]),
        ca_key,
        ca_cert=None,
        ca_key=ca_key,
        days=3650,
    )
    _write_key(PKI / "ca.key", ca_key)
    (PKI / "ca.crt").write_bytes(_pem(ca))

    srv_key = _new_key()
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(SERVICE_IP)),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
    ]
    srv = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        srv_key,
        ca_cert=ca,
        ca_key=ca_key,
        days=365,
        sans=sans,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    _write_key(PKI / "apiserver.key", srv_key)
    (PKI / "apiserver.crt").write_bytes(_pem(srv))

    admin_key = _new_key()
    admin = _issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
            ]
        ),
        admin_key,
        ca_cert=ca,
        ca_key=ca_key,
        days=365,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _write_key(PKI / "admin.key", admin_key)
    (PKI / "admin.crt").write_bytes(_pem(admin))

    sa_key = _new_key()
    _write_key(PKI / "sa.key", sa_key)
    (PKI / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    token = secrets.token_hex(24)
    # token,user,uid[,"group1,group2"] - no groups: the user only gets system:authenticated
    tokens = PKI / "tokens.csv"
    tokens.write_text(f"{token},{TOKEN_USER},{TOKEN_USER}\n")
    tokens.chmod(0o600)
    return token


def write_kubeconfig(server: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "studio-local",
                "cluster": {"server": server, "certificate-authority-data": b64(PKI / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(PKI / "admin.crt"),
                    "client-key-data": b64(PKI / "admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": "studio-local",
                "context": {"cluster": "studio-local", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "studio-local",
        "preferences": {},
    }
    tmp = KUBECONFIG.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(KUBECONFIG)


# --------------------------------------------------------------------------------------------
# HTTP


def admin_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return ctx


def insecure_context() -> ssl.SSLContext:
    # kube-controller-manager and kube-scheduler serve a self-signed in-memory certificate
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    watch: dict[str, int] | None = None,
    interval: float = 0.25,
) -> float:
    """Poll check() until true; fail early if a watched process dies. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if check():
            waited = time.monotonic() - start
            log(f"{what}: ok after {waited:.1f}s")
            return waited
        for name, pid in (watch or {}).items():
            if not pid_alive(pid):
                raise ClusterError(f"{name} (pid {pid}) exited while waiting for {what}:\n{log_tail(name)}")
        if time.monotonic() - start > timeout:
            names = list(watch or {})
            tails = "\n".join(f"--- {n} log tail ---\n{log_tail(n)}" for n in names)
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# state


@dataclass
class Health:
    healthy: bool
    reasons: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    alive: dict[str, bool] = field(default_factory=dict)


def read_info() -> dict[str, Any]:
    try:
        data = json.loads(INFO.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_info(info: dict[str, Any]) -> None:
    tmp = INFO.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(INFO)


def available_components() -> list[str]:
    names = [n for n in COMPONENTS if n not in NODE_COMPONENTS and os.access(BIN / n, os.X_OK)]
    if "kwok" in names and kwok_stages() is None:
        names.remove("kwok")
    return names


def kwok_stages() -> Path | None:
    for candidate in (BIN / "kwok-stages.yaml", (BIN / "kwok").resolve().parent / "kwok-stages.yaml"):
        if candidate.is_file():
            return candidate
    return None


# kwok's pod-delete stage ends a terminating pod with a DELETE by name (grace 0, no uid
# precondition). That DELETE itself first sets deletionGracePeriodSeconds to 0 (a MODIFIED event
# that matches the stage again) and then removes the pod: the replayed DELETE, sent a moment
# later, took the namesake when one had been created in between (a studio's session pod keeps
# its name for the studio's life), which no kubelet does (it deletes its own pod, by uid). A pod
# at grace 0 is removed by the API server itself, so the stage leaves it alone.
NO_REPLAY = {"key": ".metadata.deletionGracePeriodSeconds == 0", "operator": "NotIn", "values": ["true"]}


def write_kwok_stages(source: Path) -> Path:
    """kwok's stages as built, with the pod-delete stage made not to replay its own deletion."""
    stages = [doc for doc in yaml.safe_load_all(source.read_text()) if doc]
    for stage in stages:
        if stage.get("kind") == "Stage" and stage["metadata"]["name"] == "pod-delete":
            expressions = stage["spec"]["selector"]["matchExpressions"]
            if NO_REPLAY not in expressions:
                expressions.append(NO_REPLAY)
    target = CLUSTER / "kwok-stages.yaml"
    target.write_text(yaml.safe_dump_all(stages, sort_keys=False))
    return target


def check_health() -> Health:
    info = read_info()
    health = Health(healthy=True, info=info)
    if not info:
        return Health(healthy=False, reasons=["no .cluster/cluster.json"])
    if info.get("state") != "ready":
        health.reasons.append(f"cluster state is {info.get('state')!r}, not 'ready'")
    pids = read_pids()
    for name in info.get("components", []):
        pid = pids.get(name)
        ok = pid is not None and pid_alive(pid) and pid_is_ours(pid)
        health.alive[name] = ok
        if not ok:
            health.reasons.append(f"{name} is not running")
    missing = [n for n in available_components() if n not in info.get("components", [])]
    if missing:
        health.reasons.append(f"built since the cluster started: {', '.join(missing)}")
    skipped = str(info.get("node_skipped") or "")
    if skipped.startswith("not built") and _node().disabled_reason() is None:
        health.reasons.append("the real node was built since the cluster started")
    if (PKI / "admin.crt").exists() and "apiserver" in info:
        status, body = http(f"{info['apiserver']}/readyz", ctx=admin_context())
        if status != 200:
            health.reasons.append(f"/readyz answered {status}: {body[:200]!r}")
    else:
        health.reasons.append("no admin credentials")
    health.healthy = not health.reasons
    return health


def wipe() -> None:
    for d in (DATA, PKI, PIDS):
        shutil.rmtree(d, ignore_errors=True)
    for f in (INFO, KUBECONFIG):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


@contextlib.contextmanager
def locked() -> Iterator[None]:
    CLUSTER.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_binaries() -> None:
    missing = [n for n in REQUIRED_BINARIES if not os.access(BIN / n, os.X_OK)]
    if not missing:
        return
    log(f"missing in {BIN}: {', '.join(missing)}; running {BUILD_SCRIPT.relative_to(ROOT)} (slow once)")
    subprocess.run(["bash", str(BUILD_SCRIPT)], cwd=ROOT, check=True)
    missing = [n for n in REQUIRED_BINARIES if not os.access(BIN / n, os.X_OK)]
    if missing:
        raise ClusterError(f"still missing after the build: {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# start


def _kwok_node() -> dict[str, Any]:
    resources = {"cpu": "64", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": KWOK_NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": KWOK_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {},
        "status": {"capacity": resources, "allocatable": resources},
    }


def _node_ready(api: str, ctx: ssl.SSLContext) -> bool:
    status, body = http(f"{api}/api/v1/nodes/{KWOK_NODE}", ctx=ctx)
    if status != 200:
        return False
    conditions = json.loads(body).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def start_cluster() -> None:
    timings: dict[str, float] = {}
    t = time.monotonic()
    for d in (PKI, DATA, PIDS, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    token = generate_pki()
    timings["pki"] = time.monotonic() - t

    components = available_components()
    etcd_port, etcd_peer, api_port, kcm_port, sched_port = free_ports(5)
    api = f"https://127.0.0.1:{api_port}"
    info: dict[str, Any] = {
        "state": "starting",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "apiserver": api,
        "kubeconfig": str(KUBECONFIG),
        "components": components,
        "ports": {
            "etcd": etcd_port,
            "etcd_peer": etcd_peer,
            "apiserver": api_port,
            "kube-controller-manager": kcm_port,
            "kube-scheduler": sched_port,
        },
        "token_user": {"name": TOKEN_USER, "token": token},
        "kwok_node": KWOK_NODE if "kwok" in components else None,
    }
    write_info(info)
    write_kubeconfig(api)
    ctx = admin_context()
    pids: dict[str, int] = {}

    t = time.monotonic()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{etcd_peer}"
    pids["etcd"] = start_process(
        "etcd",
        [
            str(BIN / "etcd"),
            "--name=studio",
            f"--data-dir={DATA / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=studio={peer_url}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=8589934592",
        ],
    )
    wait_until(
        "etcd /health",
        lambda: http(f"{etcd_url}/health")[0] == 200,
        timeout=COMPONENT_TIMEOUT,
        watch=pids,
    )
    timings["etcd"] = time.monotonic() - t

    t = time.monotonic()
    pids["kube-apiserver"] = start_process(
        "kube-apiserver",
        [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={PKI / 'apiserver.crt'}",
            f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            f"--token-auth-file={PKI / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={PKI / 'sa.pub'}",
            f"--service-account-signing-key-file={PKI / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Node: what a kubelet may read and write (its pods, their secrets, its node)
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # logs, exec and port-forward reach the real node's kubelet by its IP, as admin
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={PKI / 'admin.crt'}",
            f"--kubelet-client-key={PKI / 'admin.key'}",
            "--allow-privileged=true",
            # webhook Services resolve to their endpoints, not a ClusterIP (no kube-proxy here):
            # an install test points a selectorless webhook Service at an operator run outside
            "--enable-aggregator-routing=true",
            # TaintNodesByCondition would give new nodes a not-ready taint that only the (disabled)
            # node-lifecycle-controller removes
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
        ],
    )
    wait_until(
        "kube-apiserver /readyz",
        lambda: http(f"{api}/readyz", ctx=ctx)[0] == 200,
        timeout=APISERVER_TIMEOUT,
        watch=pids,
    )
    timings["kube-apiserver"] = time.monotonic() - t

    t = time.monotonic()
    pids["kube-controller-manager"] = start_process(
        "kube-controller-manager",
        [
            str(BIN / "kube-controller-manager"),
            f"--kubeconfig={KUBECONFIG}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--authorization-always-allow-paths={ALWAYS_ALLOW}",
            f"--service-account-private-key-file={PKI / 'sa.key'}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
            f"--cluster-signing-key-file={PKI / 'ca.key'}",
            # fake (kwok) nodes have no kubelet; never taint or evict them
            "--controllers=*,-node-lifecycle-controller",
            "--use-service-account-credentials=false",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
    )
    if "kube-scheduler" in components:
        pids["kube-scheduler"] = start_process(
            "kube-scheduler",
            [
                str(BIN / "kube-scheduler"),
                f"--kubeconfig={KUBECONFIG}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--authorization-always-allow-paths={ALWAYS_ALLOW}",
            ],
        )
    wait_until(
        "namespace default",
        lambda: http(f"{api}/api/v1/namespaces/default", ctx=ctx)[0] == 200,
        timeout=COMPONENT_TIMEOUT,
        watch=pids,
    )
    wait_until(
        "kube-controller-manager /healthz",
        lambda: http(f"https://127.0.0.1:{kcm_port}/healthz", ctx=insecure_context())[0] == 200,
        timeout=COMPONENT_TIMEOUT,
        watch=pids,
    )
    if "kube-scheduler" in components:
        wait_until(
            "kube-scheduler /healthz",
            lambda: http(f"https://127.0.0.1:{sched_port}/healthz", ctx=insecure_context())[0] == 200,
            timeout=COMPONENT_TIMEOUT,
            watch=pids,
        )
    timings["controllers"] = time.monotonic() - t

    if "kwok" in components:
        t = time.monotonic()
        stages = kwok_stages()
        assert stages is not None
        pids["kwok"] = start_process(
            "kwok",
            [
                str(BIN / "kwok"),
                f"--kubeconfig={KUBECONFIG}",
                f"--config={write_kwok_stages(stages)}",
                # only its own fake nodes: never the real node's status or pods
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            ],
        )
        status, body = http(f"{api}/api/v1/nodes", ctx=ctx, method="POST", body=_kwok_node())
        if status not in (201, 409):
            raise ClusterError(f"creating node {KWOK_NODE}: {status} {body[:300]!r}")
        wait_until(
            f"node {KWOK_NODE} Ready", lambda: _node_ready(api, ctx), timeout=COMPONENT_TIMEOUT, watch=pids
        )
        timings["kwok"] = time.monotonic() - t
    else:
        log("kwok not built: no fake nodes (tests play the kubelet themselves)")

    info["node"] = start_node(api, pids, info)

    info["state"] = "ready"
    info["pids"] = pids
    info["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    write_info(info)
    summary = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    log(f"cluster ready: {api} ({summary})")


def start_node(api: str, pids: dict[str, int], info: dict[str, Any]) -> dict[str, Any] | None:
    """The real node where the machine allows it; else ONE line saying why, and kwok only."""
    node = _node()
    t = time.monotonic()
    reason = node.disabled_reason()
    if reason is None:
        try:
            entry: dict[str, Any] = node.start(api, pids)
        except (ClusterError, OSError, subprocess.SubprocessError) as e:
            detail = str(e).strip()
            (LOGS / "node-failure.log").write_text(detail + "\n")
            reason = f"failed: {detail.splitlines()[0] if detail else type(e).__name__} (.cluster/logs/node-failure.log)"
            node_pids = {n: pids.pop(n) for n in NODE_COMPONENTS if n in pids}
            if "kubelet" in node_pids:
                _stop_pids({"kubelet": node_pids["kubelet"]}, STOP_TIMEOUT)
            if "containerd" in node_pids:
                node.remove_pods()
            _stop_pids(node_pids, STOP_TIMEOUT)
            for n in node_pids:
                with contextlib.suppress(FileNotFoundError):
                    (PIDS / f"{n}.pid").unlink()
            node.cleanup()
        else:
            info["components"] = [*info["components"], *NODE_COMPONENTS]
            log(
                f"real node {entry['name']} Ready after {time.monotonic() - t:.1f}s (registry {entry['registry']})"
            )
            return entry
    log(f"REAL NODE NOT STARTED ({reason}): kwok only, the `node` tests will fail")
    info["node_skipped"] = reason
    return None


# --------------------------------------------------------------------------------------------
# commands


def cmd_up() -> int:
    ensure_binaries()
    with locked():
        health = check_health()
        if health.healthy:
            log(f"cluster already healthy at {health.info.get('apiserver')}: nothing to do")
            log(f"export KUBECONFIG={KUBECONFIG}")
            return 0
        if health.info.get("state") == "stopped" and not read_pids():
            log("the previous cluster was stopped: starting a fresh one")
            wipe()
        elif read_pids() or INFO.exists() or PKI.exists() or DATA.exists():
            log("existing cluster is not healthy (" + "; ".join(health.reasons) + "): starting fresh")
            stop_all()
            wipe()
        try:
            start_cluster()
        except (ClusterError, OSError) as e:
            print(f"cluster up failed: {e}", file=sys.stderr, flush=True)
            stop_all()
            return 1
    log(f"done in {time.monotonic() - _T0:.1f}s; export KUBECONFIG={KUBECONFIG}")
    return 0


def cmd_down() -> int:
    with locked():
        if not read_pids():
            _node().cleanup()  # what a crashed node may have left (mounts, bridge, address)
            log("nothing running")
            return 0
        stop_all()
        info = read_info()
        if info:
            info["state"] = "stopped"
            write_info(info)
    log(f"stopped in {time.monotonic() - _T0:.1f}s (logs kept in {LOGS})")
    return 0


def cmd_status() -> int:
    health = check_health()
    pids = read_pids()
    names = health.info.get("components") or list(pids)
    for name in names:
        pid = pids.get(name)
        alive = pid is not None and pid_alive(pid) and pid_is_ours(pid)
        print(f"{name:<24} {'alive' if alive else 'dead':<6} pid {pid if pid is not None else '-'}")
    if health.info.get("apiserver") and (PKI / "admin.crt").exists():
        status, body = http(f"{health.info['apiserver']}/version", ctx=admin_context())
        version = json.loads(body).get("gitVersion") if status == 200 else f"unreachable ({status})"
        print(f"{'apiserver':<24} {health.info['apiserver']} {version}")
    if health.healthy:
        print("healthy")
        return 0
    print("not healthy: " + "; ".join(health.reasons))
    return 1


def cmd_restart(name: str, down: float) -> int:
    """Stop one running component and start it again with the very same command line."""
    with locked():
        pid = read_pids().get(name)
        if pid is None or not pid_alive(pid) or not pid_is_ours(pid):
            raise ClusterError(f"{name} is not running (pid file {PIDS / (name + '.pid')})")
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        argv = [a.decode() for a in raw.split(b"\0") if a]
        t = time.monotonic()
        _stop_pids({name: pid}, STOP_TIMEOUT)
        log(f"{name} stopped after {time.monotonic() - t:.1f}s; starting again in {down:.1f}s")
        time.sleep(down)
        new_pid = start_process(name, argv)
        info = read_info()
        info.setdefault("pids", {})[name] = new_pid
        write_info(info)
        ready: dict[str, Callable[[], bool]] = {
            "etcd": lambda: http(f"http://127.0.0.1:{info['ports']['etcd']}/health")[0] == 200,
            "kube-apiserver": lambda: http(f"{info['apiserver']}/readyz", ctx=admin_context())[0] == 200,
        }
        check = ready.get(name, lambda: pid_alive(new_pid))
        wait_until(f"{name} ready", check, timeout=APISERVER_TIMEOUT, watch={name: new_pid})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "restart"])
    parser.add_argument("component", nargs="?", choices=COMPONENTS, help="restart: which process")
    parser.add_argument("--down", type=float, default=0.0, help="restart: seconds to stay stopped")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return cmd_up()
        if args.command == "down":
            return cmd_down()
        if args.command == "restart":
            if not args.component:
                parser.error("restart needs a component, e.g. kube-apiserver")
            return cmd_restart(args.component, args.down)
        return cmd_status()
    except (ClusterError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
