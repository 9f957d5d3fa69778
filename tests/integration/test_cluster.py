"""The test control plane itself: version, authn/authz, controllers, fake nodes, idempotent up."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube_helpers import CLUSTER_DIR, ROOT, Cluster, kubectl_binary, wait_for


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_version(cluster: Cluster) -> None:
    info = client.VersionApi(cluster.api_client).get_code()
    pattern = r"v1\.36\.\d+" if cluster.local else r"v1\.\d+\.\d+"
    assert re.match(pattern, info.git_version), info.git_version


def test_rbac_denies_unprivileged_user(cluster: Cluster, as_user: Callable[..., client.ApiClient]) -> None:
    # the admin (system:masters) can
    cluster.core.list_namespaced_pod("default")

    # an authenticated user without any RBAC binding cannot (static token of hack/cluster.py)
    if cluster.token is not None:
        with cluster.token_client(cluster.token) as api, pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_namespaced_pod("default")
        assert exc.value.status == 403, exc.value

    # same through impersonation
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(as_user("studio-test-user")).list_namespaced_pod("default")
    assert exc.value.status == 403

    # impersonation carries every group (repeated Impersonate-Group headers)
    api = as_user("someone", groups=("team-a", "system:masters"))
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    )
    assert review.status.user_info.username == "someone"
    assert {"team-a", "system:masters"} <= set(review.status.user_info.groups)
    client.CoreV1Api(api).list_namespaced_pod("default")

    if kubectl_binary() is not None:
        denied = cluster.kubectl(
            "auth", "can-i", "list", "pods", "-n", "default", as_user="studio-test-user", check=False
        )
        assert denied.stdout.strip() == "no", denied
        allowed = cluster.kubectl("auth", "can-i", "list", "pods", "-n", "default")
        assert allowed.stdout.strip() == "yes", allowed


def test_garbage_collection(cluster: Cluster, namespace: str) -> None:
    core = cluster.core
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "1"})
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(
        lambda: _gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
        timeout=60,
        message="the garbage collector to delete the dependent ConfigMap",
    )


def test_namespace_deletion_completes(cluster: Cluster) -> None:
    core = cluster.core
    name = f"ns-delete-{int(time.time() * 1000) % 10**8}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content")))
    core.delete_namespace(name)
    wait_for(
        lambda: _gone(lambda: core.read_namespace(name)),
        timeout=60,
        message=f"namespace {name} to be deleted by the namespace controller",
    )


def test_pod_runs_on_kwok_node(cluster: Cluster, namespace: str) -> None:
    node = cluster.kwok_node
    if node is None:
        pytest.skip("kwok is not running (not built by hack/build-control-plane.sh): no fake nodes")
    scheduler = "kube-scheduler" in cluster.info.get("components", [])
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="main", image="registry.invalid/never-pulled:1")],
        # with a scheduler let it place the pod; without one bind it directly
        node_selector={"type": "kwok"} if scheduler else None,
        node_name=None if scheduler else node,
    )
    core = cluster.core
    core.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="p"), spec=spec))

    def running() -> str | None:
        pod = core.read_namespaced_pod("p", namespace)
        return pod.spec.node_name if pod.status.phase == "Running" else None

    assert wait_for(running, timeout=60, message="pod p Running on the kwok node") == node
    core.delete_namespaced_pod("p", namespace)
    wait_for(
        lambda: _gone(lambda: core.read_namespaced_pod("p", namespace)), timeout=60, message="pod p deleted"
    )
    if cluster.local:
        # One DELETE by kwok, not a replay a moment later: sent by name, a replay would take a
        # namesake created in between (hack/cluster.py: write_kwok_stages).
        time.sleep(1)
        log = (CLUSTER_DIR / "logs" / "kwok.log").read_text()
        attempts = [
            line
            for line in log.splitlines()
            if f'"pod":"{namespace}/p"' in line and ("Delete pod" in line or '"stage":"pod-delete"' in line)
        ]
        assert len(attempts) == 1 and "Delete pod" in attempts[0], attempts


def test_cluster_up_again_is_a_noop(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("STUDIO_TEST_KUBECONFIG: not the local control plane")
    pids_dir = ROOT / ".cluster" / "pids"
    before = {p.name: p.read_text() for p in pids_dir.glob("*.pid")}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), "up"], capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to do" in proc.stdout, proc.stdout
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert {p.name: p.read_text() for p in pids_dir.glob("*.pid")} == before
    status = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stdout
