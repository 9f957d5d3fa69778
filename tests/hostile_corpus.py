"""Specs the CRD schema accepts but pod or claim creation refuses (issue 14, finding 7): each as
(case, Studio body with a spec, a part of the error that names the problem). Shared by the unit tests
of the checks and the integration test that stores them with no webhook in the way."""

from __future__ import annotations

from typing import Any


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
