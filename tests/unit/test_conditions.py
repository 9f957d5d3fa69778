"""The kstatus conditions of studios and data links (pure): exactly one of Ready, Reconciling and
Stalled is True, so kstatus settles on Current or Failed, and InProgress only while the operator
acts. Live objects and the real clients: tests/integration/test_gitops_clients.py."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.resources.conditions import kstatus_conditions
from studio_operator.resources.links import link_conditions


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


@pytest.mark.parametrize(
    ("reason", "reconciling", "stalled", "true"),
    [
        ("SessionRunning", False, False, "Ready"),
        ("NeverStarted", False, False, "Ready"),
        ("SessionStopped", False, False, "Ready"),
        ("LifespanExpired", False, False, "Ready"),  # settled: kstatus Current (was InProgress forever)
        ("PodPending", True, False, "Reconciling"),
        ("SessionStopping", True, False, "Reconciling"),
        ("ImagePullBackOff", False, True, "Stalled"),
        ("SessionFailed", False, True, "Stalled"),
        ("EnvironmentNotFound", False, True, "Stalled"),
    ],
)
def test_studio_exactly_one_true(reason: str, reconciling: bool, stalled: bool, true: str) -> None:
    conds = by_type(kstatus_conditions(reason, "why", reconciling=reconciling, stalled=stalled, generation=4))
    assert list(conds) == ["Ready", "Reconciling", "Stalled"]
    assert [t for t, c in conds.items() if c["status"] == "True"] == [true]
    assert all(c["observedGeneration"] == 4 for c in conds.values())
    # Ready's reason and message explain the state whichever condition is True (REASON column).
    assert (conds["Ready"]["reason"], conds["Ready"]["message"]) == (reason, "why")
    assert (conds[true]["reason"], conds[true]["message"]) == (reason, "why")
    if true != "Reconciling":
        assert (conds["Reconciling"]["reason"], conds["Reconciling"]["message"]) == ("Reconciled", "")
    if true != "Stalled":
        assert (conds["Stalled"]["reason"], conds["Stalled"]["message"]) == ("NotStalled", "")


def test_studio_cannot_be_both() -> None:
    with pytest.raises(ValueError):
        kstatus_conditions("X", "", reconciling=True, stalled=True, generation=1)


@pytest.mark.parametrize(
    ("ready", "reason", "true"),
    [
        (True, "BucketReachable", "Ready"),
        (False, "NoSuchBucket", "Stalled"),
        (False, "AccessDenied", "Stalled"),
        (False, "InvalidCredentials", "Stalled"),
        (False, "SecretNotFound", "Stalled"),
        (False, "SecretInvalid", "Stalled"),
        (False, "InvalidSpec", "Stalled"),
        (False, "SomethingNew", "Stalled"),  # unknown failures need someone: Failed, not InProgress
        (False, "EndpointUnreachable", "Reconciling"),
        (False, "CheckFailed", "Reconciling"),
    ],
)
def test_datalink_exactly_one_true(ready: bool, reason: str, true: str) -> None:
    conds = by_type(link_conditions(ready, reason, "what happened", 3))
    assert list(conds) == ["Ready", "Reconciling", "Stalled"]
    assert [t for t, c in conds.items() if c["status"] == "True"] == [true]
    assert all(c["observedGeneration"] == 3 for c in conds.values())
    assert conds["Ready"]["reason"] == reason and conds[true]["reason"] == reason
    if true == "Reconciling":
        assert "checked again" in conds["Reconciling"]["message"]
    if true == "Stalled":
        assert conds["Stalled"]["message"] == "what happened"
