"""workspaceVolume.reclaim: which claims are released on deletion and which are taken back."""

from __future__ import annotations

from typing import Any

from studio_operator.api.kinds import ReclaimPolicy, StudioSpec
from studio_operator.resources import retention as rt

OWNER = {
    "apiVersion": "studios.dev/v1alpha1",
    "kind": "Studio",
    "name": "lab",
    "uid": "u-2",
    "controller": True,
}


def claim(**labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "lab-workspace",
            "namespace": "ns",
            "resourceVersion": "5",
            "labels": {
                "app.kubernetes.io/managed-by": "studio-operator",
                "studios.dev/studio": "lab",
                **labels,
            },
            "ownerReferences": [{**OWNER, "uid": "u-1"}],
        }
    }


def test_default_is_retain() -> None:
    spec = StudioSpec.model_validate(
        {"computeEnvironment": "e", "template": {"image": "i"}, "workspaceVolume": {"size": "1Gi"}}
    )
    assert spec.workspace_volume is not None and spec.workspace_volume.reclaim == ReclaimPolicy.RETAIN
    assert rt.retains_workspace({"workspaceVolume": {"size": "1Gi"}})
    assert rt.retains_workspace({"workspaceVolume": {"reclaim": "Retain"}})
    assert not rt.retains_workspace({"workspaceVolume": {"reclaim": "Delete"}})
    assert not rt.retains_workspace({})
    assert not rt.retains_workspace(None)


def test_release_drops_the_owner_and_marks_the_claim() -> None:
    ops = rt.release_patch(claim())
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
        {"op": "remove", "path": "/metadata/ownerReferences"},
        {"op": "add", "path": "/metadata/labels/studios.dev~1retained", "value": "true"},
    ]
    released = claim(**{"studios.dev/retained": "true"})
    del released["metadata"]["ownerReferences"]
    assert rt.release_patch(released) == []
    assert rt.is_retained_for(released, "lab")


def test_only_our_retained_claim_of_that_name_is_taken_back() -> None:
    released = claim(**{"studios.dev/retained": "true"})
    del released["metadata"]["ownerReferences"]
    assert not rt.is_retained_for(released, "other")
    assert not rt.is_retained_for(claim(), "lab")  # still owned by a studio
    users = claim(**{"studios.dev/retained": "true"})
    del users["metadata"]["ownerReferences"]
    users["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "someone"
    assert not rt.is_retained_for(users, "lab")
    ops = rt.reown_patch(released, OWNER)
    assert ops[1] == {"op": "add", "path": "/metadata/ownerReferences", "value": [OWNER]}
    assert ops[2] == {"op": "remove", "path": "/metadata/labels/studios.dev~1retained"}
