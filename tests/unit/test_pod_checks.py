"""Specs the CRD accepts but pod or claim validation would refuse: found up front."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from studio_operator.api.pod_checks import parse_quantity, spec_errors


def studio(**spec: Any) -> dict[str, Any]:
    return {"spec": {"computeEnvironment": "env", "template": {"image": "i"}, **spec}}


# The hostile corpus of specs that used to leave an empty status and a traceback every retry.
REFUSED = [
    ("env-valueFrom-empty", studio(env=[{"name": "A", "valueFrom": {}}]), "spec.env[0].valueFrom"),
    (
        "env-two-sources",
        studio(
            env=[
                {
                    "name": "A",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ]
        ),
        "exactly one",
    ),
    (
        "env-secret-name-number",
        studio(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": 123, "key": "k"}}}]),
        "secretKeyRef.name",
    ),
    ("cpu-negative", studio(resources={"requests": {"cpu": "-1"}}), "negative"),
    (
        "requests-above-limits",
        studio(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        "less than",
    ),
    ("gpu-fraction", studio(resources={"limits": {"nvidia.com/gpu": "0.5"}}), "whole number"),
    ("unknown-resource", studio(resources={"limits": {"gpus": "1"}}), "unknown resource"),
    ("node-selector-key", studio(nodeSelector={"bad key!": "x"}), "label key"),
    ("node-selector-value", studio(nodeSelector={"zone": "has space"}), "label value"),
    (
        "toleration-exists-value",
        studio(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        "empty",
    ),
    ("toleration-no-key-equal", studio(tolerations=[{"operator": "Equal", "value": "v"}]), "Exists"),
    (
        "toleration-seconds",
        studio(tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
        "NoExecute",
    ),
    ("claim-negative", studio(workspaceVolume={"size": "-1Gi"}), "positive"),
    ("claim-zero", studio(workspaceVolume={"size": 0}), "positive"),
    (
        "claim-class",
        studio(workspaceVolume={"size": "1Gi", "storageClassName": "Bad Class"}),
        "storageClassName",
    ),
]


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
