"""workspaceVolume.reclaim (issue 15 item 7): a deleted studio's workspace claim is kept by
default (released: no owner, labelled retained) and taken back by a new studio of the same name;
with `reclaim: Delete` it goes with the studio (garbage collector)."""

from __future__ import annotations

import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

RETAINED = "studios.dev/retained"


def claim_of(cluster: Cluster, namespace: str, studio: str) -> client.V1PersistentVolumeClaim | None:
    claims = cluster.core.list_namespaced_persistent_volume_claim(
        namespace, label_selector=f"studios.dev/studio={studio}"
    )
    return claims.items[0] if claims.items else None


def owner_uids(claim: client.V1PersistentVolumeClaim) -> list[str]:
    return [ref.uid for ref in claim.metadata.owner_references or []]


def studio_gone(cluster: Cluster, namespace: str, name: str) -> bool:
    try:
        sh.get(cluster, namespace, name)
    except ApiException as e:
        return e.status == 404
    return False


def test_retained_claim_survives_the_studio_and_is_reused(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    sh.create_environment(cluster, namespace)
    first = sh.create_studio(cluster, namespace, "lab", workspaceVolume={"size": "1Gi"})
    claim = wait_for(lambda: claim_of(cluster, namespace, "lab"), timeout=30, message="workspace claim")
    assert owner_uids(claim) == [first["metadata"]["uid"]]
    assert "studios.dev/volumes" in sh.get(cluster, namespace, "lab")["metadata"]["finalizers"]
    data_uid = claim.metadata.uid

    sh.delete(cluster, namespace, "lab")
    wait_for(lambda: studio_gone(cluster, namespace, "lab"), timeout=30, message="studio deleted")
    time.sleep(3)  # the garbage collector had its chance
    kept = claim_of(cluster, namespace, "lab")
    assert kept is not None and kept.metadata.uid == data_uid, "the workspace claim was deleted"
    assert not kept.metadata.owner_references and kept.metadata.labels[RETAINED] == "true"

    second = sh.create_studio(cluster, namespace, "lab", workspaceVolume={"size": "1Gi"})
    wait_for(
        lambda: owner_uids(claim_of(cluster, namespace, "lab")) == [second["metadata"]["uid"]],  # type: ignore[arg-type]
        timeout=30,
        message="the new studio owns the retained claim",
    )
    reused = claim_of(cluster, namespace, "lab")
    assert reused is not None and reused.metadata.uid == data_uid
    assert RETAINED not in (reused.metadata.labels or {})


def test_reclaim_delete_removes_the_claim_with_the_studio(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    sh.create_environment(cluster, namespace)
    sh.create_studio(cluster, namespace, "tmp", workspaceVolume={"size": "1Gi", "reclaim": "Delete"})
    wait_for(lambda: claim_of(cluster, namespace, "tmp"), timeout=30, message="workspace claim")
    sh.delete(cluster, namespace, "tmp")
    wait_for(lambda: claim_of(cluster, namespace, "tmp") is None, timeout=60, message="claim collected")
