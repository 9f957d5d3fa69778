"""PersistentVolume names cannot collide across namespaces (issue 14, finding 2).

PVs are cluster-scoped. Joined with dashes, namespace `ws` + studio `a-nb` and namespace `ws-a` +
studio `nb` used to give the same PV name for the same link, so one tenant could squat the other's
volume name (the victim then retried forever). Both studios now run, each with its own PV, labelled
for its own namespace, and deleting one studio leaves the other's volume alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for
from s3_server import S3Server

pytest_plugins = ["conftest_s3"]


@pytest.fixture
def two_namespaces(cluster: Cluster, operator: OperatorProcess) -> Iterator[tuple[str, str]]:
    base = f"ws{secrets.token_hex(3)}"
    made = [base, f"{base}-a"]
    for name in made:
        cluster.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"studio-test": "true"}))
        )
    yield made[0], made[1]
    for name in made:
        try:
            cluster.core.delete_namespace(name, propagation_policy="Background")
        except ApiException as e:
            if e.status not in (404, 409):
                raise


def pvs(cluster: Cluster, ns: str, studio: str) -> list[dict[str, Any]]:
    items = cluster.core.list_persistent_volume(
        label_selector=f"studios.dev/namespace={ns},{sh.STUDIO_LABEL}={studio}"
    )
    found: list[dict[str, Any]] = cluster.api_client.sanitize_for_serialization(items)["items"]
    return found


def test_lookalike_namespace_and_studio_names_get_their_own_volumes(
    cluster: Cluster, two_namespaces: tuple[str, str], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    first_ns, second_ns = two_namespaces
    data = bucket("shared", region="eu-west-1")
    for ns, studio in ((first_ns, "a-nb"), (second_ns, "nb")):
        cluster.core.create_namespaced_secret(
            ns,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="s3-creds"), string_data=s3_server.admin.secret_data()
            ),
        )
        spec = {"uri": f"s3://{data}", "endpointURL": s3_server.endpoint, "credentialsSecret": "s3-creds"}
        sh.create(cluster, ns, sh.obj("DataLink", "data", spec))
        sh.create_environment(cluster, ns, "env", {"region": "eu-west-1"})
        sh.create_studio(cluster, ns, studio, mounts=[{"dataLink": "data"}])
    for ns, studio in ((first_ns, "a-nb"), (second_ns, "nb")):
        sh.wait_phase(cluster, ns, studio, "Running", timeout=90)

    (first,) = pvs(cluster, first_ns, "a-nb")
    (second,) = pvs(cluster, second_ns, "nb")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["spec"]["claimRef"]["namespace"] == first_ns
    assert second["spec"]["claimRef"]["namespace"] == second_ns

    # Deleting one studio removes its own volume, never the look-alike's.
    sh.delete(cluster, first_ns, "a-nb")
    wait_for(lambda: not pvs(cluster, first_ns, "a-nb"), timeout=60, message="the first studio's PV removed")
    (kept,) = pvs(cluster, second_ns, "nb")
    assert kept["metadata"]["uid"] == second["metadata"]["uid"]
    assert sh.status(sh.get(cluster, second_ns, "nb"))["phase"] == "Running"
