"""Which node placement a studio may choose without permission to create pods (resources/placement)."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.resources import placement

ENV = {
    "nodeSelector": {"pool": "cpu"},
    "tolerations": [{"key": "spot", "operator": "Exists"}],
    "allowedNodeSelectors": {"pool": ["gpu", "highmem"], "zone": ["a"]},
    "allowedTolerations": [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "rna"},
    ],
}


def problems(old: dict[str, Any] | None, new: dict[str, Any], env: dict[str, Any] | None = ENV) -> list[str]:
    entries = placement.requested(old, {"computeEnvironment": "ce", **new})
    return placement.violations(entries, "ce", env)


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeSelector": {"pool": "cpu"}},  # the environment's own
        {"nodeSelector": {"pool": "gpu", "zone": "a"}},
        {"tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoExecute"}]},
        {"tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}]},
        {"tolerations": [{"key": "team", "value": "rna", "effect": "NoExecute"}]},  # Equal is the default
    ],
)
def test_within_the_environment(spec: dict[str, Any]) -> None:
    assert problems(None, spec) == []


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"nodeSelector": {"pool": "control-plane"}}, 'spec.nodeSelector["pool"]'),
        ({"nodeSelector": {"kubernetes.io/hostname": "n1"}}, 'spec.nodeSelector["kubernetes.io/hostname"]'),
        ({"tolerations": [{"operator": "Exists"}]}, "spec.tolerations[0]"),  # every taint
        ({"tolerations": [{"key": "gpu", "operator": "Exists"}]}, "spec.tolerations[0]"),  # every effect
        ({"tolerations": [{"key": "team", "operator": "Exists"}]}, "spec.tolerations[0]"),  # every value
        ({"tolerations": [{"key": "team", "value": "other"}]}, "spec.tolerations[0]"),
    ],
)
def test_beyond_the_environment(spec: dict[str, Any], path: str) -> None:
    (message,) = problems(None, spec)
    assert message.startswith(f"{path}: ") and 'ComputeEnvironment "ce"' in message


def test_only_what_changes_is_checked() -> None:
    old = {
        "computeEnvironment": "ce",
        "nodeSelector": {"pool": "control-plane"},
        "tolerations": [{"operator": "Exists"}],
    }
    assert (
        problems(old, {"nodeSelector": {"pool": "control-plane"}, "tolerations": [{"operator": "Exists"}]})
        == []
    )
    assert len(problems(old, {"nodeSelector": {"pool": "other"}})) == 1
    # another environment: everything again
    moved = placement.requested(old, {**old, "computeEnvironment": "other"})
    assert [e.path for e in moved] == ['spec.nodeSelector["pool"]', "spec.tolerations[0]"]


def test_a_missing_environment_allows_nothing() -> None:
    (message,) = problems(None, {"nodeSelector": {"pool": "cpu"}}, env=None)
    assert (
        message
        == 'spec.nodeSelector["pool"]: ComputeEnvironment "ce" does not exist, so it allows no placement of its own'
    )
