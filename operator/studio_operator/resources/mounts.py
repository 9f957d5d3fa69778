"""S3 data mounts: what a studio's `mounts` add to its pod and which storage objects they need.

(Owned by the data-links work; the session builder only relies on `plan_mounts` and `MountPlan`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.kinds import MountStatus
from .context import SessionInputs

DATA_ROOT = "/workspace/data"


@dataclass(frozen=True)
class MountPlan:
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)  # studio container
    init_containers: list[dict[str, Any]] = field(default_factory=list)  # e.g. FUSE native sidecars
    persistent_volumes: list[dict[str, Any]] = field(default_factory=list)  # cluster-scoped
    claims: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[MountStatus] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    needs_privileged: bool = False  # FUSE: the pod cannot pass the restricted Pod Security level


def plan_mounts(inputs: SessionInputs) -> MountPlan:
    if not inputs.spec.mounts:
        return MountPlan()
    raise NotImplementedError("data mounts are not implemented yet")
