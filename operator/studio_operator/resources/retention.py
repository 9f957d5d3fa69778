"""Workspace volume retention (pure): what `workspaceVolume.reclaim: Retain` does to the claim.

A retained claim is released when its studio is deleted (the owner reference goes, so the garbage
collector leaves it; a label marks it), and a later studio of the same name takes it back. Only a
claim that carries all three marks is taken back: our managed-by label, the studio's name label
and the retained label, so nothing a user made, nor a claim another studio still owns, is adopted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.common import MANAGED_BY_KEY, MANAGED_BY_VALUE, STUDIO_LABEL
from ..api.kinds import ReclaimPolicy

RETAINED_LABEL = "studios.dev/retained"
_RETAINED_PATH = "/metadata/labels/" + RETAINED_LABEL.replace("~", "~0").replace("/", "~1")


def retains_workspace(spec: Mapping[str, Any] | None) -> bool:
    """Whether deleting the studio keeps its workspace claim (a raw spec: also on invalid specs,
    anything but an explicit Delete keeps the data)."""
    volume = (spec or {}).get("workspaceVolume")
    if not isinstance(volume, Mapping):
        return False
    return bool(volume.get("reclaim", ReclaimPolicy.RETAIN.value) != ReclaimPolicy.DELETE.value)


def _labels(claim: Mapping[str, Any]) -> Mapping[str, str]:
    return (claim.get("metadata") or {}).get("labels") or {}


def is_retained_for(claim: Mapping[str, Any], studio: str) -> bool:
    labels = _labels(claim)
    return (
        labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE
        and labels.get(STUDIO_LABEL) == studio
        and labels.get(RETAINED_LABEL) == "true"
        and not (claim.get("metadata") or {}).get("ownerReferences")
    )


def _test_version(claim: Mapping[str, Any]) -> dict[str, Any]:
    version = (claim.get("metadata") or {}).get("resourceVersion")
    return {"op": "test", "path": "/metadata/resourceVersion", "value": version}


def release_patch(claim: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON patch: drop the owner reference, mark retained (empty if already released)."""
    meta = claim.get("metadata") or {}
    ops: list[dict[str, Any]] = []
    if meta.get("ownerReferences"):
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    if _labels(claim).get(RETAINED_LABEL) != "true":
        ops.append({"op": "add", "path": _RETAINED_PATH, "value": "true"})
    return [_test_version(claim), *ops] if ops else []


def reown_patch(claim: Mapping[str, Any], owner_reference: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON patch: the new studio owns the retained claim again; the retained mark goes."""
    return [
        _test_version(claim),
        {"op": "add", "path": "/metadata/ownerReferences", "value": [dict(owner_reference)]},
        {"op": "remove", "path": _RETAINED_PATH},
    ]
