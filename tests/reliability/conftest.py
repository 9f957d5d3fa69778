"""Fixtures for the reliability suite: the integration fixtures plus fault injection.

The integration fixtures (``cluster``, ``namespace``, ``operator``, ``operator_factory``,
``as_user``) are re-exported from tests/integration/conftest.py, loaded once under a module name of
its own, so this directory needs no symlinks or packages. Added here:

- ``n_studios``: the scale of the load scenarios, ``STUDIO_RELIABILITY_N`` (``make test`` trims it;
  ``make test-reliability`` runs the full 200).
- ``figures``: ``figures.record(scenario, key, value)`` collects measurements; they are printed at
  the end of the run and written to ``.cluster/reliability/figures.json`` (merged across runs).
- ``apiserver``: a second kube-apiserver of the local control plane (same etcd, same flags, its
  own port and kubeconfig) that a test may stop, kill and restart. The operator under test talks
  only to it, so "the API server goes down" is real for the operator while the shared one (and the
  other tests using it) never notice.
- ``s3``: a loopback S3 endpoint (moto server, tests/s3_server.py) without authentication, for data
  links that must be Ready (mounts, PersistentVolumes, the ``studios.dev/volumes`` finalizer).

Every test here is marked ``reliability`` (and ``integration``: it needs the control plane).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from loopback import free_ports, http_get
from rel_helpers import ApiServer

from kube_helpers import CLUSTER_DIR, ROOT, Cluster

HERE = Path(__file__).resolve().parent
INTEGRATION_CONFTEST = HERE.parent / "integration" / "conftest.py"
FIGURES_PATH = Path(
    os.environ.get("STUDIO_RELIABILITY_FIGURES", CLUSTER_DIR / "reliability" / "figures.json")
)
DEFAULT_N = 60  # `make test`; `make test-reliability` sets 200
GROUP, VERSION = "studios.dev", "v1alpha1"


def _integration_fixtures() -> ModuleType:
    name = "studio_integration_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INTEGRATION_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_fx = _integration_fixtures()
cluster = _fx.cluster
as_user = _fx.as_user
operator_session = _fx.operator_session
operator = _fx.operator
operator_factory = _fx.operator_factory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _one_operator_at_a_time(request: pytest.FixtureRequest) -> None:
    """When tests/integration ran first in this session, pytest holds its own copy of the
    integration conftest with its own shared operator: stop it, two operators must never reconcile
    the same objects (operator_factory only knows the copy loaded here)."""
    plugin = request.config.pluginmanager.get_plugin(str(INTEGRATION_CONFTEST))
    shared = getattr(plugin, "_shared_operator", None) if plugin is not _fx else None
    if shared is not None:
        shared.stop()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest, operator_factory: Any) -> Iterator[str]:
    """The integration ``namespace``, torn down before the test's operators are stopped (it asks
    for ``operator_factory`` first): its studios are deleted while an operator can still remove the
    ``studios.dev/volumes`` finalizers, so no namespace is left Terminating. When no operator is
    left to do it (a test killed it for good), the finalizers are removed by hand."""
    name = _fx._namespace_name(request.node.name)
    cluster.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"studio-test": "true"},
                annotations={"studio-test/nodeid": request.node.nodeid[:250]},
            )
        )
    )
    yield name
    _delete_studios(cluster, name)
    with contextlib.suppress(ApiException):
        cluster.core.delete_namespace(name, propagation_policy="Background")


def _delete_studios(cluster: Cluster, ns: str, timeout: float = 30) -> None:
    api = cluster.custom
    with contextlib.suppress(ApiException):
        api.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, "studios")
    deadline = time.monotonic() + timeout
    left: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            left = api.list_namespaced_custom_object(GROUP, VERSION, ns, "studios")["items"]
        except ApiException:
            return
        if not left:
            return
        time.sleep(0.5)
    for body in left:  # best effort: needs the webhooks to be served or unregistered
        with contextlib.suppress(ApiException):
            api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "studios",
                body["metadata"]["name"],
                {"metadata": {"finalizers": None}},
                _content_type="application/merge-patch+json",
            )


def foreign_operators(kubeconfig: Path) -> list[str]:
    """Operator processes on this machine that are not this test session's but reconcile every
    namespace of the same cluster (same kubeconfig): they would act on our studios too."""
    found = []
    target = kubeconfig.resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
            head = " ".join(argv[:3])  # python -m studio_operator run | .../studio-operator run
            if ("studio_operator" not in head and "studio-operator" not in head) or "run" not in argv:
                continue
            if any(a in ("--namespace", "-n") or a.startswith("--namespace=") for a in argv):
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid():
                continue  # ours (OperatorProcess)
            env = dict(
                e.decode(errors="replace").split("=", 1)
                for e in (proc / "environ").read_bytes().split(b"\0")
                if b"=" in e
            )
            cwd = Path(os.readlink(proc / "cwd"))
        except (OSError, ValueError, IndexError):
            continue
        config = next((a.split("=", 1)[1] for a in argv if a.startswith("--kubeconfig=")), None)
        config = config or env.get("KUBECONFIG") or str(cwd / ".cluster" / "kubeconfig")
        with contextlib.suppress(OSError):
            if (cwd / config).resolve() == target:
                found.append(f"pid {proc.name}: {' '.join(argv)[:160]}")
    return found


@pytest.fixture(autouse=True)
def _cluster_to_ourselves(cluster: Cluster) -> None:
    """These scenarios kill, count and time the operator: another operator reconciling the same
    cluster (a developer's `make operator-up`, a concurrent test run) would make them fail for
    reasons that are not the code's. Skip, saying who, rather than fail confusingly."""
    if not cluster.local:
        return
    others = foreign_operators(cluster.kubeconfig)
    if others:
        pytest.skip("another studio operator reconciles this cluster: " + "; ".join(others[:3]))


# ---------------------------------------------------------------- scale and figures


@pytest.fixture(scope="session")
def n_studios() -> int:
    return max(10, int(os.environ.get("STUDIO_RELIABILITY_N", str(DEFAULT_N))))


@pytest.fixture(scope="session")
def full_scale() -> bool:
    """True for ``make test-reliability`` (STUDIO_RELIABILITY_FULL=1): the long outages too."""
    return os.environ.get("STUDIO_RELIABILITY_FULL", "") not in ("", "0")


class Figures:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}

    def record(self, scenario: str, key: str, value: Any) -> None:
        if isinstance(value, float):
            value = round(value, 2)
        self.values.setdefault(scenario, {})[key] = value
        print(f"[figure] {scenario}: {key} = {value}", flush=True)

    def save(self) -> None:
        if not self.values:
            return
        FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
        try:
            merged = json.loads(FIGURES_PATH.read_text())
        except (OSError, ValueError):
            merged = {}
        for scenario, values in self.values.items():
            merged[scenario] = {**values, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        FIGURES_PATH.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    yield _FIGURES
    _FIGURES.save()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES.values:
        return
    terminalreporter.section("reliability figures")
    for scenario, values in sorted(_FIGURES.values.items()):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{scenario}: {shown}")
    terminalreporter.write_line(f"(saved to {FIGURES_PATH})")


# ---------------------------------------------------------------- a second API server


def _apiserver_argv(cluster: Cluster) -> list[str]:
    pid = int((CLUSTER_DIR / "pids" / "kube-apiserver.pid").read_text().strip())
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    argv = [a.decode() for a in raw.split(b"\0") if a]
    if not argv or not argv[0].endswith("kube-apiserver"):
        raise AssertionError(f"pid {pid} is not the cluster's kube-apiserver: {argv[:1]}")
    return argv


@pytest.fixture
def apiserver(cluster: Cluster) -> Iterator[ApiServer]:
    if not cluster.local:
        pytest.skip("needs the local control plane (a second kube-apiserver on its etcd)")
    (port,) = free_ports(1)
    argv = [a for a in _apiserver_argv(cluster) if not a.startswith("--secure-port=")]
    argv.append(f"--secure-port={port}")
    logs = CLUSTER_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    kubeconfig = CLUSTER_DIR / "reliability" / f"kubeconfig-{port}"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in doc.get("clusters") or []:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig.write_text(yaml.safe_dump(doc))
    kubeconfig.chmod(0o600)
    server = ApiServer(argv, port, kubeconfig, logs / f"kube-apiserver-reliability-{port}.log")
    server.start()
    yield server
    server.stop()
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()


# ---------------------------------------------------------------- S3


@pytest.fixture(scope="session")
def s3() -> Iterator[Any]:
    from s3_server import start_s3_server

    server = start_s3_server(CLUSTER_DIR / "logs" / "moto-reliability.log", auth=False)
    yield server
    server.stop()


def operator_healthy(url: str) -> bool:
    return http_get(url)[0] == 200


__all__ = ["ROOT", "ApiServer", "Figures"]


@pytest.fixture
def slow_proxy(cluster: Cluster) -> Iterator[Any]:
    """A DelayProxy in front of the cluster's API server (``.delay`` seconds per response chunk)."""
    from rel_helpers import DelayProxy

    proxy = DelayProxy(cluster.kubeconfig, CLUSTER_DIR / "reliability")
    yield proxy
    proxy.close()
