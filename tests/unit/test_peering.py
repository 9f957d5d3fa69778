"""The HA gate follows kopf's peering rule: act only without a live peer of higher or equal priority."""

from datetime import UTC, datetime, timedelta

from studio_operator.controller.gate import may_act

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(),
    }


def test_alone_acts() -> None:
    assert may_act({"me": peer(10, 0)}, "me", 10, NOW)
    assert may_act({}, "me", 10, NOW)


def test_higher_priority_live_peer_wins() -> None:
    assert not may_act({"me": peer(5, 0), "other": peer(10, 1)}, "me", 5, NOW)
    assert may_act({"me": peer(10, 0), "other": peer(5, 1)}, "me", 10, NOW)


def test_tie_pauses_everyone_like_kopf() -> None:
    assert not may_act({"me": peer(5, 0), "other": peer(5, 1)}, "me", 5, NOW)


def test_dead_peer_is_ignored_after_its_lifetime() -> None:
    assert may_act({"me": peer(5, 0), "other": peer(10, 61)}, "me", 5, NOW)
    assert not may_act({"me": peer(5, 0), "other": peer(10, 59)}, "me", 5, NOW)


def test_garbage_entries_do_not_crash() -> None:
    assert may_act({"x": "nonsense", "y": {"lastseen": "not a date"}}, "me", 1, NOW)
