"""The inputs of one studio's desired state, gathered by the handlers and read by the builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.common import API_VERSION
from ..api.kinds import ComputeEnvironmentSpec, DataLinkSpec, StudioSpec
from .endpoints import S3Policy
from .merge import MergedLabels

# The uid/gid common notebook images (jovyan 1000:100) run as; mounted data appears as theirs.
DEFAULT_UID = 1000
DEFAULT_GID = 100


@dataclass(frozen=True)
class StudioRef:
    name: str
    namespace: str
    uid: str
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "Studio",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class LinkView:
    """A DataLink as the studio sees it: its spec plus what the link's status resolved."""

    name: str
    spec: DataLinkSpec
    bucket: str
    prefix: str
    region: str | None
    ready: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class SessionInputs:
    studio: StudioRef
    spec: StudioSpec
    environment_name: str
    environment: ComputeEnvironmentSpec
    labels: MergedLabels
    links: dict[str, LinkView] = field(default_factory=dict)
    creator: str | None = None
    # The administrator's S3 trust policy (config.OPTIONS.s3_policy); the default trusts AWS S3
    # only and binds no bucket to any namespace.
    s3_policy: S3Policy = field(default_factory=S3Policy)
