"""Effective session lifespan and deadline arithmetic (resources/lifespan.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from studio_operator.api.kinds import Lifespan, LifespanPolicy
from studio_operator.resources.lifespan import (
    DEFAULT_WARNING,
    EffectiveLifespan,
    effective_lifespan,
    expires_at,
    format_time,
    parse_hours_annotation,
    parse_time,
    warning_at,
)

STOP_4 = Lifespan(policy=LifespanPolicy.STOP_AFTER, hours=4)
STOP_24 = Lifespan(policy=LifespanPolicy.STOP_AFTER, hours=24)
KEEP = Lifespan(policy=LifespanPolicy.KEEP_RUNNING)


# ---------------------------------------------------------------- precedence


def test_default_is_eight_hours() -> None:
    eff = effective_lifespan(None, None, None)
    assert eff == EffectiveLifespan(hours=8, source="default")
    assert not eff.keep_running and not eff.locked


def test_spec_lifespan_over_default() -> None:
    assert effective_lifespan(STOP_4, None, None) == EffectiveLifespan(hours=4, source="studio")


def test_spec_lifespan_defaults_to_eight_hours_stop_after() -> None:
    assert effective_lifespan(Lifespan(), None, None).hours == 8


def test_annotation_over_spec() -> None:
    assert effective_lifespan(STOP_4, "12", None) == EffectiveLifespan(hours=12, source="annotation")
    assert effective_lifespan(None, "2", None) == EffectiveLifespan(hours=2, source="annotation")


def test_annotation_over_keep_running_spec() -> None:
    eff = effective_lifespan(KEEP, "3", None)
    assert eff.hours == 3 and eff.source == "annotation"


def test_workspace_lock_over_everything() -> None:
    eff = effective_lifespan(STOP_4, "12", STOP_24)
    assert eff.hours == 24 and eff.source == "workspace" and eff.locked
    assert eff.annotation_problem is not None and "ignored" in eff.annotation_problem


def test_workspace_lock_without_annotation_reports_nothing() -> None:
    eff = effective_lifespan(STOP_4, None, STOP_24)
    assert eff == EffectiveLifespan(hours=24, source="workspace", locked=True)


def test_keep_running_spec() -> None:
    eff = effective_lifespan(KEEP, None, None)
    assert eff.keep_running and eff.hours is None and eff.source == "studio"


def test_keep_running_workspace_lock() -> None:
    eff = effective_lifespan(STOP_4, None, KEEP)
    assert eff.keep_running and eff.locked and eff.source == "workspace"


def test_workspace_lock_stop_after_overrides_keep_running_studio() -> None:
    eff = effective_lifespan(KEEP, None, STOP_4)
    assert eff.hours == 4 and eff.locked


@pytest.mark.parametrize(
    "value", ["0", "121", "-1", "abc", "1.5", "8h", "", " ", "+8", "1e2", "\u00b2", "\u0661\u0662", "\uff18"]
)
def test_bad_annotation_is_ignored_with_a_problem(value: str) -> None:
    eff = effective_lifespan(STOP_4, value, None)  # never raises
    assert eff.hours == 4 and eff.source == "studio"
    assert eff.annotation_problem is not None
    assert "studios.dev/session-lifespan-hours" in eff.annotation_problem
    no_spec = effective_lifespan(None, value, None)
    assert no_spec.hours == 8 and no_spec.source == "default" and no_spec.annotation_problem


@pytest.mark.parametrize(("value", "hours"), [("1", 1), ("120", 120), (" 8 ", 8), ("08", 8)])
def test_annotation_bounds(value: str, hours: int) -> None:
    assert parse_hours_annotation(value) == (hours, None)


def test_absent_annotation_is_no_problem() -> None:
    assert parse_hours_annotation(None) == (None, None)


@pytest.mark.parametrize("value", ["0", "000", "121", "999999999999999999999", "9" * 5000])
def test_annotation_out_of_range_message(value: str) -> None:
    hours, problem = parse_hours_annotation(value)
    assert hours is None and problem is not None and "1..120" in problem


# ---------------------------------------------------------------- time parsing and formatting


def test_parse_time_forms() -> None:
    expected = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert parse_time("2026-11-25T10:00:00Z") == expected
    assert parse_time("2026-11-25T10:00:00.123456Z") == expected + timedelta(microseconds=123456)
    assert parse_time("2026-11-25T12:00:00+02:00") == expected
    assert parse_time("2026-11-25T05:00:00-05:00") == expected
    assert parse_time("2026-11-25T10:00:00") == expected  # naive: taken as UTC
    for bad in (None, "", "yesterday", "2026-13-01T00:00:00Z"):
        assert parse_time(bad) is None


def test_format_time_is_utc_rfc3339_seconds() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    value = datetime(2026, 11, 25, 15, 30, 0, 999999, tzinfo=tz)
    assert format_time(value) == "2026-11-25T10:00:00Z"
    assert parse_time(format_time(value)) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------- deadlines


def test_expiry_is_start_plus_hours_in_utc() -> None:
    start = datetime(2026, 11, 25, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    expiry = expires_at(start, EffectiveLifespan(hours=8, source="default"))
    assert expiry == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert expiry is not None and expiry.utcoffset() == timedelta(0)
    assert format_time(expiry) == "2026-11-25T18:00:00Z"


def test_expiry_crosses_days_and_dst_without_shifting() -> None:
    # 120 hours across the end of European summer time is still exactly 120 elapsed hours.
    start = datetime(2026, 10, 23, 22, 0, tzinfo=UTC)
    expiry = expires_at(start, EffectiveLifespan(hours=120, source="studio"))
    assert expiry == datetime(2026, 10, 28, 22, 0, tzinfo=UTC)


def test_keep_running_has_no_expiry_and_no_warning() -> None:
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    expiry = expires_at(start, EffectiveLifespan(hours=None, source="studio"))
    assert expiry is None
    assert warning_at(expiry) is None


def test_warning_default_fifteen_minutes_ahead() -> None:
    expiry = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert timedelta(minutes=15) == DEFAULT_WARNING
    assert warning_at(expiry) == datetime(2026, 11, 25, 17, 45, tzinfo=UTC)
    assert warning_at(expiry, timedelta(hours=10)) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_annotation_moves_the_expiry_of_the_same_session() -> None:
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    before = expires_at(start, effective_lifespan(STOP_4, None, None))
    after = expires_at(start, effective_lifespan(STOP_4, "10", None))
    assert before == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert after == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
