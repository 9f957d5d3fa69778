"""Which existing objects the operator may write: only its own.

An object with the name the operator would use is this studio's when it carries the operator's
managed-by label, the studio label and an owner reference to this studio's uid. PersistentVolumes
are cluster-scoped and cannot be owned by a namespaced studio: theirs are the operator's labels for
this namespace, studio and data link. Anything else is somebody else's object: the operator does not
adopt, patch or delete it, the studio reports a NameConflict instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.common import DATA_LINK_LABEL, MANAGED_BY_KEY, MANAGED_BY_VALUE, NAMESPACE_LABEL, STUDIO_LABEL


class NameConflict(Exception):
    """An object the studio needs has a name that is taken by an object the operator does not own."""

    reason = "NameConflict"

    def __init__(self, kind: str, namespace: str | None, name: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        where = f" in namespace {namespace!r}" if namespace else ""
        super().__init__(
            f"{kind} {name!r}{where} already exists and does not belong to this studio; the operator "
            "leaves it untouched: delete or rename that object, or give the studio another name"
        )


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def owned_by_studio(obj: Mapping[str, Any], studio: str, uid: str) -> bool:
    """True when `obj` is the operator's object for the studio with this name and uid."""
    meta = _meta(obj)
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE or labels.get(STUDIO_LABEL) != studio:
        return False
    return any(
        ref.get("kind") == "Studio" and ref.get("uid") == uid for ref in meta.get("ownerReferences") or []
    )


def owned_volume(pv: Mapping[str, Any], namespace: str, studio: str, link: str | None = None) -> bool:
    """True when the PersistentVolume carries the operator's labels for this namespace/studio
    (and data link, when given)."""
    labels = _meta(pv).get("labels") or {}
    return (
        labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE
        and labels.get(STUDIO_LABEL) == studio
        and labels.get(NAMESPACE_LABEL) == namespace
        and (link is None or labels.get(DATA_LINK_LABEL) == link)
    )


def owns(obj: Mapping[str, Any], namespace: str, studio: str, uid: str) -> bool:
    """The ownership rule for any kind the operator writes for a studio."""
    if obj.get("kind") == "PersistentVolume":
        link = (_meta(obj).get("labels") or {}).get(DATA_LINK_LABEL)
        return owned_volume(obj, namespace, studio, link) and link is not None
    return owned_by_studio(obj, studio, uid)


def same_owner(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when `existing` belongs to the owner the operator's freshly built `desired` object names
    (its studio label and owner reference; for PVs, its namespace/studio/link labels)."""
    labels = _meta(desired).get("labels") or {}
    studio = labels.get(STUDIO_LABEL, "")
    if desired.get("kind") == "PersistentVolume":
        return owned_volume(existing, labels.get(NAMESPACE_LABEL, ""), studio, labels.get(DATA_LINK_LABEL))
    uids = [ref.get("uid", "") for ref in _meta(desired).get("ownerReferences") or []]
    return bool(uids) and owned_by_studio(existing, studio, uids[0])


class Rejected(Exception):
    """The API server refused an object the operator built for a studio (4xx other than a name
    conflict): a problem in the studio's or environment's configuration, or a namespace policy
    (ResourceQuota, Pod Security admission). Reported on the studio; never retried in a loop."""

    def __init__(self, kind: str, name: str, status: int, message: str) -> None:
        self.kind = kind
        self.name = name
        self.status = status
        self.server_message = message
        self.reason = rejection_reason(kind, message)
        super().__init__(f"the API server refused {kind} {name!r}: {message}")


def rejection_reason(kind: str, message: str) -> str:
    """The condition reason for a refused object: the policy that refused it where the server's
    message says so (ResourceQuota, Pod Security admission), else which object was refused."""
    lowered = message.lower()
    if "exceeded quota" in lowered or "must specify limits" in lowered or "must specify requests" in lowered:
        return "QuotaExceeded"
    if "violates podsecurity" in lowered:
        return "PodSecurityRejected"
    return {
        "Pod": "PodRejected",
        "PersistentVolumeClaim": "ClaimRejected",
        "PersistentVolume": "VolumeRejected",
        "Service": "ServiceRejected",
        "Role": "GrantRejected",
        "RoleBinding": "GrantRejected",
    }.get(kind, "ObjectRejected")


def rejection_fix(reason: str) -> str:
    """What the user can do about a refusal, by reason."""
    return {
        "QuotaExceeded": "lower the studio's resources or ask a workspace administrator to raise the quota",
        "PodSecurityRejected": (
            "use the default security profile, or ask an administrator to relax the namespace's "
            "pod-security level"
        ),
        "PodRejected": "fix the studio's or its environment's spec (resources, env, nodeSelector, tolerations)",
        "ClaimRejected": "fix spec.workspaceVolume (size, storageClassName)",
    }.get(reason, "fix the studio's or its environment's configuration")
