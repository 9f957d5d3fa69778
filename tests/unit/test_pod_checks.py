"""Specs the CRD accepts but pod or claim validation would refuse: found up front."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hostile_corpus import REFUSED, studio
from studio_operator.api.pod_checks import parse_quantity, spec_errors


@pytest.mark.parametrize(("case", "body", "needle"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_specs_are_found(case: str, body: dict[str, Any], needle: str) -> None:
    errors = spec_errors("studios", body)
    assert errors, case
    assert any(needle in e for e in errors), errors


def test_valid_specs_pass() -> None:
    body = studio(
        env=[
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password", "optional": True}}},
            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        resources={
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"memory": "4Gi", "nvidia.com/gpu": 1},
        },
        nodeSelector={"topology.kubernetes.io/zone": "eu-west-1a"},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
        workspaceVolume={"size": "10Gi", "storageClassName": "standard"},
    )
    assert spec_errors("studios", body) == []
    assert spec_errors("computeenvironments", {"spec": {"resources": {"limits": {"cpu": "-2"}}}})


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("500m", Decimal("0.5")),
        ("4Gi", Decimal(4 * 2**30)),
        (2, Decimal(2)),
        ("1e3", Decimal(1000)),
        ("x", None),
    ],
)
def test_parse_quantity(raw: Any, value: Decimal | None) -> None:
    assert parse_quantity(raw) == value
