"""Pure formatting for the plugin: tables, durations, expiry and the `ls` rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..api.common import CREATED_BY_ANNOTATION
from ..resources.lifespan import parse_time

NONE = "<none>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """kubectl-style columns: upper-case headers, left-aligned, three spaces apart."""
    rows = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        lines.append("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """Compact like kubectl's AGE: 45s, 12m, 3h12m, 2d4h."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def relative(when: datetime, now: datetime) -> str:
    delta = (when - now).total_seconds()
    return f"in {duration(delta)}" if delta >= 0 else f"{duration(delta)} ago"


def now_utc() -> datetime:
    return datetime.now(UTC)


def phase(studio: Mapping[str, Any]) -> str:
    status = studio.get("status") or {}
    value = status.get("phase")
    if not value:
        return "Pending"  # not seen by the operator yet
    reason = status.get("stopReason")
    if value in ("Stopped", "Errored") and reason and reason not in ("UserRequested", "NeverStarted"):
        return f"{value} ({reason})"
    return str(value)


def expiry(studio: Mapping[str, Any], now: datetime) -> str:
    """`in 3h12m` while a session runs, `never` for KeepRunning, `-` without a session."""
    status = studio.get("status") or {}
    session = status.get("session") or {}
    if not session or status.get("phase") in ("Stopped", "Errored"):
        return "-"
    expires = parse_time(session.get("expiresAt"))
    if expires is None:
        return "never" if session.get("startedAt") else "-"
    return relative(expires, now)


def creator(studio: Mapping[str, Any]) -> str:
    annotations = (studio.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(CREATED_BY_ANNOTATION) or NONE)


def private(studio: Mapping[str, Any]) -> str:
    return "true" if (studio.get("spec") or {}).get("private") else "false"


def ready_condition(studio: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Ready condition: its status, and its reason and message that explain the state (the
    same as `kubectl get studios` shows as READY, REASON and MESSAGE)."""
    for cond in (studio.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return {}


LS_HEADERS = ["NAME", "PHASE", "READY", "REASON", "EXPIRES", "PRIVATE", "CREATOR", "AGE"]


def ls_rows(
    studios: Iterable[Mapping[str, Any]], now: datetime, *, all_namespaces: bool, wide: bool = False
) -> list[list[str]]:
    rows = []
    ordered = sorted(
        studios,
        key=lambda s: (
            (s.get("metadata") or {}).get("namespace", ""),
            (s.get("metadata") or {}).get("name", ""),
        ),
    )
    for studio in ordered:
        meta = studio.get("metadata") or {}
        created = parse_time(meta.get("creationTimestamp"))
        ready = ready_condition(studio)
        row = [
            str(meta.get("name", "")),
            phase(studio),
            str(ready.get("status") or NONE),
            str(ready.get("reason") or NONE),
            expiry(studio, now),
            private(studio),
            creator(studio),
            duration((now - created).total_seconds()) if created else "-",
        ]
        if wide:
            spec = studio.get("spec") or {}
            message = str(ready.get("message") or (studio.get("status") or {}).get("message") or NONE)
            row += [
                str((spec.get("template") or {}).get("image") or NONE),
                str(spec.get("computeEnvironment") or NONE),
                (message[:77] + "...") if len(message) > 80 else message,
            ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return rows


WIDE_HEADERS = ["IMAGE", "ENVIRONMENT", "MESSAGE"]


def ls_table(
    studios: Iterable[Mapping[str, Any]], now: datetime, *, all_namespaces: bool, wide: bool = False
) -> str:
    """`ls`; `-o wide` adds the image, the environment and the message that explains the state."""
    headers = (["NAMESPACE"] if all_namespaces else []) + LS_HEADERS + (WIDE_HEADERS if wide else [])
    return table(headers, ls_rows(studios, now, all_namespaces=all_namespaces, wide=wide))
