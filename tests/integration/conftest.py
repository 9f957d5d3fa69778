"""Fixtures for tests against a real API server.

By default the loopback control plane of hack/cluster.py (started or reused by the ``cluster``
fixture); with STUDIO_TEST_KUBECONFIG=<path> any other cluster (e.g. kind), used as it is.

Fixtures:
- ``cluster`` (session): kube_helpers.Cluster with the CRDs from crds/ applied and Established.
- ``as_user`` (function): factory ``as_user(name, groups=()) -> ApiClient`` (impersonation).
- ``namespace`` (function): a fresh namespace name, deleted afterwards (without waiting).
- ``operator`` (function) / ``operator_session`` (session): one shared operator process for the
  session; ``operator`` (re)starts it if it is not running (e.g. a previous test killed it).
- ``operator_factory`` (function): ``operator_factory(*args, env=None, kubeconfig=None,
  start=True, s3_args=None) -> OperatorProcess`` (``s3_args``: the S3 trust flags, default
  kube_helpers.TEST_S3_TRUST), a dedicated process stopped after the test. Creating one
  stops the shared operator first (two operators must not reconcile the same objects); the next
  test that requests ``operator`` restarts it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from install_helpers import CHART, helm, kubectl
from kube_helpers import ROOT, Cluster, OperatorProcess, apply_crds, load_configuration, token_kubeconfig

HERE = Path(__file__).resolve().parent
CLUSTER_UP_TIMEOUT = 1800  # a fresh machine builds the binaries first (hack/build-control-plane.sh)

_shared_operator: OperatorProcess | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("STUDIO_TEST_KUBECONFIG")
    if external:
        kubeconfig = Path(external).resolve()
        info: dict[str, Any] = {}
    else:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "hack" / "cluster.py"), "up"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CLUSTER_UP_TIMEOUT,
        )
        if proc.returncode != 0:
            pytest.fail(f"hack/cluster.py up failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        kubeconfig = ROOT / ".cluster" / "kubeconfig"
        info = json.loads((ROOT / ".cluster" / "cluster.json").read_text())
    api_client = client.ApiClient(load_configuration(kubeconfig))
    result = Cluster(kubeconfig=kubeconfig, api_client=api_client, local=not external, info=info)
    apply_crds(result, ROOT / "crds")
    yield result
    api_client.close()


@pytest.fixture
def as_user(cluster: Cluster) -> Iterator[Callable[..., client.ApiClient]]:
    """``as_user("alice", groups=("team-a",))``: an ApiClient impersonating that user (as admin)."""
    made: list[client.ApiClient] = []

    def factory(name: str, groups: Sequence[str] = ()) -> client.ApiClient:
        api = cluster.impersonate(name, groups)
        made.append(api)
        return api

    yield factory
    for api in made:
        api.close()


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "test"
    if not base[0].isalpha():
        base = f"t-{base}"
    return f"{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.name)
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
    try:
        cluster.core.delete_namespace(name, propagation_policy="Background")
    except ApiException as e:
        if e.status not in (404, 409):
            raise


@pytest.fixture(scope="session")
def operator_session(cluster: Cluster) -> Iterator[OperatorProcess]:
    global _shared_operator
    op = OperatorProcess(cluster.kubeconfig)
    _shared_operator = op
    op.start()
    yield op
    op.stop()
    _shared_operator = None


@pytest.fixture
def operator(operator_session: OperatorProcess) -> OperatorProcess:
    operator_session.start()  # no-op while running; restarts after a previous test stopped/killed it
    return operator_session


@pytest.fixture
def operator_factory(cluster: Cluster) -> Iterator[Callable[..., OperatorProcess]]:
    made: list[OperatorProcess] = []

    def factory(
        *args: str,
        env: dict[str, str] | None = None,
        kubeconfig: Path | str | None = None,
        start: bool = True,
        s3_args: Sequence[str] | None = None,
    ) -> OperatorProcess:
        if _shared_operator is not None:
            _shared_operator.stop()
        op = OperatorProcess(kubeconfig or cluster.kubeconfig, args=args, env=env, s3_args=s3_args)
        made.append(op)
        if start:
            op.start()
        return op

    yield factory
    for op in made:
        op.stop()


# ---------------------------------------------------------------- the chart's own identity


@pytest.fixture
def chart_identity(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(service account name, kubeconfig with its token): the chart's SA, ClusterRole and binding."""
    fullname = f"rbac-{secrets.token_hex(3)}"
    rendered = [
        d
        for d in yaml.safe_load_all(
            helm(
                cluster,
                "template",
                "rbac",
                str(CHART),
                "-n",
                namespace,
                "--set",
                f"fullnameOverride={fullname}",
                "--set",
                "rbac.userRoles=false",
            )
        )
        if d
    ]
    wanted = [
        d
        for d in rendered
        if (d["kind"], d["metadata"]["name"])
        in {("ServiceAccount", fullname), ("ClusterRole", fullname), ("ClusterRoleBinding", fullname)}
    ]
    assert len(wanted) == 3, [(d["kind"], d["metadata"]["name"]) for d in rendered]
    kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=studio-tests",
        "-f",
        "-",
        input=yaml.safe_dump_all(wanted),
    )
    try:
        token = kubectl(cluster, "create", "token", fullname, "-n", namespace, "--duration=2h").strip()
        assert token
        yield fullname, token_kubeconfig(cluster, token, tmp_path / "operator-kubeconfig")
    finally:
        rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
        for delete in (rbac_api.delete_cluster_role_binding, rbac_api.delete_cluster_role):
            try:
                delete(fullname)
            except ApiException as e:
                if e.status != 404:
                    raise
