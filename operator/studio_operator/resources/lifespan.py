"""Effective session lifespan and deadline arithmetic (pure; all datetimes are UTC-aware)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.common import SESSION_LIFESPAN_ANNOTATION
from ..api.kinds import (
    DEFAULT_LIFESPAN_HOURS,
    MAX_LIFESPAN_HOURS,
    MIN_LIFESPAN_HOURS,
    Lifespan,
    LifespanPolicy,
)

DEFAULT_WARNING = timedelta(minutes=15)


@dataclass(frozen=True)
class EffectiveLifespan:
    hours: int | None  # None: KeepRunning, no expiry
    source: str  # workspace | annotation | studio | default
    locked: bool = False
    annotation_problem: str | None = None  # why the annotation was ignored, if it was

    @property
    def keep_running(self) -> bool:
        return self.hours is None


def parse_hours_annotation(value: str | None) -> tuple[int | None, str | None]:
    """(hours, problem). Whole numbers 1..120 only; anything else is reported and ignored."""
    if value is None:
        return None, None
    text = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²" (int() then raises) and other scripts' digits.
    if not re.fullmatch(r"[0-9]+", text):
        return None, f"{SESSION_LIFESPAN_ANNOTATION}={value!r} is not a whole number of hours (1..120)"
    text = text.lstrip("0") or "0"
    hours = int(text) if len(text) <= 3 else MAX_LIFESPAN_HOURS + 1  # no huge int() conversions
    if not MIN_LIFESPAN_HOURS <= hours <= MAX_LIFESPAN_HOURS:
        return None, f"{SESSION_LIFESPAN_ANNOTATION}={value!r} is out of range (1..120 hours)"
    return hours, None


def _of(
    lifespan: Lifespan, source: str, locked: bool = False, problem: str | None = None
) -> EffectiveLifespan:
    hours = None if lifespan.policy == LifespanPolicy.KEEP_RUNNING else lifespan.hours
    return EffectiveLifespan(hours=hours, source=source, locked=locked, annotation_problem=problem)


def effective_lifespan(
    own: Lifespan | None, annotation: str | None, workspace: Lifespan | None
) -> EffectiveLifespan:
    """Workspace lock > session annotation > the studio's spec.lifespan > 8 hours."""
    hours, problem = parse_hours_annotation(annotation)
    if workspace is not None:
        ignored = (
            f"{SESSION_LIFESPAN_ANNOTATION} is ignored: the workspace locks the lifespan"
            if annotation
            else None
        )
        return _of(workspace, "workspace", locked=True, problem=ignored)
    if hours is not None:
        return EffectiveLifespan(hours=hours, source="annotation")
    if own is not None:
        return _of(own, "studio", problem=problem)
    return EffectiveLifespan(hours=DEFAULT_LIFESPAN_HOURS, source="default", annotation_problem=problem)


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 from status; naive values are taken as UTC. None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def expires_at(started_at: datetime, lifespan: EffectiveLifespan) -> datetime | None:
    if lifespan.hours is None:
        return None
    return started_at.astimezone(UTC) + timedelta(hours=lifespan.hours)


def warning_at(expiry: datetime | None, ahead: timedelta = DEFAULT_WARNING) -> datetime | None:
    return None if expiry is None else expiry - ahead


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- the expiry rule

WORKSPACE_LOCK_REASON = "WorkspaceLock"


@dataclass(frozen=True)
class SessionClock:
    """One session's deadlines: it ends at its start plus the effective lifespan, whatever its
    pod's state; the warning comes `ahead` of that end."""

    lifespan: EffectiveLifespan
    started_at: datetime
    expires_at: datetime | None
    warn_at: datetime | None

    def expired(self, at: datetime) -> bool:
        return self.expires_at is not None and at >= self.expires_at

    def warning(self, at: datetime) -> bool:
        return self.warn_at is not None and at >= self.warn_at

    def next_wake(self, at: datetime) -> datetime | None:
        """The warning, then the expiry; None for a session that keeps running."""
        if self.expires_at is None or self.warn_at is None:
            return None
        return self.expires_at if at >= self.warn_at else self.warn_at

    def record(self, session: dict[str, Any]) -> dict[str, Any]:
        """`session` (status.session, camelCase) with this clock's lifespan and end."""
        return {
            **session,
            "lifespanHours": self.lifespan.hours,
            "lifespanSource": self.lifespan.source,
            "expiresAt": format_time(self.expires_at) if self.expires_at else None,
        }


def session_clock(
    started_at: datetime, lifespan: EffectiveLifespan, ahead: timedelta = DEFAULT_WARNING
) -> SessionClock:
    end = expires_at(started_at, lifespan)
    return SessionClock(lifespan, started_at, end, warning_at(end, ahead))


def lock_message(lifespan: EffectiveLifespan) -> str:
    what = "keep running" if lifespan.hours is None else f"{lifespan.hours} hours"
    return (
        f"the workspace sets every studio's lifespan to {what}; "
        "spec.lifespan and the session annotation are ignored"
    )
