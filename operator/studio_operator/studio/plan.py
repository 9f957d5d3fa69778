"""What the studio decision reads and returns: the observation, the writes a plan asks the
controller to make, and the plan itself (pure data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..api.kinds import Phase, StopReason, StudioStatus
from ..resources import lifespan as ls
from ..resources.context import SessionInputs
from ..resources.endpoints import S3Policy
from ..resources.mounts import MountPlan

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Observed:
    """One studio and what it depends on, as the store holds them at `now`."""

    studio: Mapping[str, Any]
    pod: Mapping[str, Any] | None  # the object under the session pod's deterministic name
    now: datetime
    environment: Mapping[str, Any] | None = None
    links: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    workspace: Mapping[str, Any] | None = None  # the namespace's WorkspaceSettings "default"
    service_exists: bool = False
    rolebindings: Sequence[Mapping[str, Any]] = ()  # this namespace's, for who may connect
    clusterrolebindings: Sequence[Mapping[str, Any]] = ()
    binding: Mapping[str, Any] | None = None  # the stored connect RoleBinding
    warning_ahead: timedelta = ls.DEFAULT_WARNING
    s3_policy: S3Policy = field(default_factory=S3Policy)  # the administrator's S3 trust
    started: bool = False  # `pod` was created by this pass: the session starts now

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.studio["metadata"]  # type: ignore[no-any-return]

    @property
    def status(self) -> Mapping[str, Any]:
        return self.studio.get("status") or {}

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation", 1))


# ---------------------------------------------------------------- writes a plan asks for


@dataclass(frozen=True)
class DeletePod:
    """Delete the session pod; when it turns out gone, the controller decides again without it."""

    pod: Mapping[str, Any]


@dataclass(frozen=True)
class ClearSessionAnnotation:
    """Remove the per-session lifespan annotation (it applies to one session)."""


@dataclass(frozen=True)
class RecordExpiry:
    """Write the plan's status now (with its Events), then clear the session annotation."""


@dataclass(frozen=True)
class ConfirmCurrent:
    """Ask the API server whether the studio is still the one read (its session's pod vanished)."""


@dataclass(frozen=True)
class StartSession:
    """Volumes, workspace claim, Service and pod; the controller decides again with the pod."""

    inputs: SessionInputs
    mounts: MountPlan


@dataclass(frozen=True)
class Apply:
    """Create, or apply when changed, an object of this studio (`kind`: the store's kind)."""

    kind: str
    obj: dict[str, Any]


@dataclass(frozen=True)
class DeleteOwned:
    """Delete an object this studio owns."""

    kind: str
    obj: Mapping[str, Any]


Action = (
    DeletePod | ClearSessionAnnotation | RecordExpiry | ConfirmCurrent | StartSession | Apply | DeleteOwned
)


class Keep:
    """The scheduled deadline stays as it is."""


KEEP = Keep()


@dataclass
class Outcome:
    """What one decision reports: phase, kstatus conditions and what else goes into status."""

    phase: Phase
    reason: str
    message: str
    stop_reason: StopReason | None = None
    session: dict[str, Any] | None = None
    mounts: list[dict[str, Any]] | None = None
    connect: dict[str, Any] | None = None
    held: str | None = None
    stalled: bool = False
    reconciling: bool = False
    extra_conditions: list[dict[str, Any]] = field(default_factory=list)
    inherited_labels: list[str] | None = None
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None


@dataclass
class Plan:
    outcome: Outcome
    status: StudioStatus
    events: list[Event]  # posted once the status that reports them is written
    steps: list[list[Action]] = field(default_factory=list)  # in order; each step's go out together
    deadline: float | Keep | None = KEEP  # epoch seconds of the next look (None: no deadline)

    @property
    def retry_after(self) -> float | None:
        """Seconds after which to look again whatever happens (a slow retry when blocked)."""
        return self.outcome.retry_after
