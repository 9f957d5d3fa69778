"""Lease-based leader election: the records written and when a standby may take over."""

from __future__ import annotations

from datetime import UTC, datetime

from studio_operator.controller.leader import Observation, lease_body, released_body

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def test_first_acquire_and_renew_keep_acquire_time() -> None:
    first = lease_body("op", "ns", "a", 8, None, NOW)
    assert first["spec"]["holderIdentity"] == "a" and first["spec"]["leaseTransitions"] == 0
    assert first["spec"]["renewTime"] == "2026-12-02T06:00:00.000000Z"
    assert "resourceVersion" not in first["metadata"]
    stored = {**first, "metadata": {**first["metadata"], "resourceVersion": "10"}}
    later = datetime(2026, 12, 2, 6, 0, 2, tzinfo=UTC)
    renewed = lease_body("op", "ns", "a", 8, stored, later)
    assert renewed["metadata"]["resourceVersion"] == "10"
    assert renewed["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert renewed["spec"]["renewTime"] == "2026-12-02T06:00:02.000000Z"
    assert renewed["spec"]["leaseTransitions"] == 0


def test_takeover_counts_a_transition() -> None:
    held = lease_body("op", "ns", "a", 8, None, NOW)
    held["metadata"]["resourceVersion"] = "3"
    taken = lease_body("op", "ns", "b", 8, held, NOW)
    assert taken["spec"]["holderIdentity"] == "b" and taken["spec"]["leaseTransitions"] == 1
    assert taken["spec"]["acquireTime"] == taken["spec"]["renewTime"]


def test_release_leaves_no_holder() -> None:
    held = lease_body("op", "ns", "a", 8, None, NOW)
    released = released_body(held, NOW)
    assert released["spec"]["holderIdentity"] is None and released["spec"]["leaseDurationSeconds"] == 1
    assert Observation().expired(released["spec"], 0.0)


def test_standby_waits_a_lease_duration_on_its_own_clock() -> None:
    seen = Observation()
    spec = lease_body("op", "ns", "a", 8, None, NOW)["spec"]
    seen.see(spec, 100.0)
    assert not seen.expired(spec, 107.9)
    # a renewal (new renewTime) restarts the wait, whatever the clocks say
    renewed = {**spec, "renewTime": "2026-12-02T06:00:02.000000Z"}
    seen.see(renewed, 107.0)
    assert not seen.expired(renewed, 114.0)
    seen.see(renewed, 114.0)  # unchanged: the clock keeps running from 107
    assert seen.expired(renewed, 115.1)
