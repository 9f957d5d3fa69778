"""Which existing objects the operator may write (ownership rule) and PV names without collisions."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.resources import names
from studio_operator.resources.ownership import (
    NameConflict,
    Rejected,
    owned_by_studio,
    owned_volume,
    rejection_reason,
    same_owner,
)

OURS = {"app.kubernetes.io/managed-by": "studio-operator", "studios.dev/studio": "nb"}


def svc(labels: dict[str, str] | None = None, owner_uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "nb", "namespace": "ws"}
    if labels is not None:
        meta["labels"] = labels
    if owner_uid is not None:
        meta["ownerReferences"] = [{"kind": "Studio", "uid": owner_uid, "name": "nb"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta}


@pytest.mark.parametrize(
    ("obj", "owned"),
    [
        (svc(OURS, "uid-1"), True),
        (svc(None, None), False),  # someone else's Service
        (svc(OURS, None), False),  # our labels copied, no owner reference
        (svc(OURS, "uid-0"), False),  # a previous studio of the same name
        (svc({**OURS, "studios.dev/studio": "other"}, "uid-1"), False),
        (svc({"studios.dev/studio": "nb"}, "uid-1"), False),  # no managed-by label
    ],
)
def test_owned_by_studio(obj: dict[str, Any], owned: bool) -> None:
    assert owned_by_studio(obj, "nb", "uid-1") is owned
    assert same_owner(obj, svc(OURS, "uid-1")) is owned


def pv(ns: str, studio: str, link: str) -> dict[str, Any]:
    labels = {
        **OURS,
        "studios.dev/studio": studio,
        "studios.dev/namespace": ns,
        "studios.dev/data-link": link,
    }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "x", "labels": labels}}


def test_volumes_are_ours_by_namespace_studio_and_link() -> None:
    assert owned_volume(pv("ws", "a-nb", "data"), "ws", "a-nb", "data")
    assert not owned_volume(pv("ws-a", "nb", "data"), "ws", "a-nb", "data")
    assert same_owner(pv("ws", "a-nb", "data"), pv("ws", "a-nb", "data"))
    assert not same_owner(pv("ws-a", "nb", "data"), pv("ws", "a-nb", "data"))
    assert not same_owner(pv("ws", "a-nb", "other"), pv("ws", "a-nb", "data"))


def test_volume_names_never_collide_across_namespaces() -> None:
    # Joined by dashes these were the same name: studio-ws-a-nb-data.
    assert names.data_volume_name("ws", "a-nb", "data") != names.data_volume_name("ws-a", "nb", "data")
    assert names.data_volume_name("ws", "a", "nb-data") != names.data_volume_name("ws", "a-nb", "data")
    long = names.data_volume_name("n" * 63, "s" * 253, "l" * 63)
    assert len(long) <= 253
    assert names.data_volume_name("ws", "nb", "data") == names.data_volume_name("ws", "nb", "data")


def test_conflict_and_rejection_messages_name_the_object_and_the_fix() -> None:
    conflict = NameConflict("Service", "ws", "payments")
    assert "Service 'payments' in namespace 'ws'" in str(conflict)
    assert "delete or rename" in str(conflict)
    assert Rejected("Pod", "p", 403, 'pods "p" is forbidden: exceeded quota: q').reason == "QuotaExceeded"


@pytest.mark.parametrize(
    ("kind", "message", "reason"),
    [
        ("Pod", 'pods "p" is forbidden: exceeded quota: q, requested: pods=1', "QuotaExceeded"),
        ("Pod", 'pods "p" is forbidden: violates PodSecurity "restricted:latest"', "PodSecurityRejected"),
        ("Pod", 'pods "p" is forbidden: maximum cpu usage per Container is 1', "PodRejected"),
        ("PersistentVolumeClaim", "spec.storageClassName: Invalid value", "ClaimRejected"),
        ("RoleBinding", "forbidden", "GrantRejected"),
    ],
)
def test_rejection_reason(kind: str, message: str, reason: str) -> None:
    assert rejection_reason(kind, message) == reason
