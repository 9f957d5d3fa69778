"""The Argo CD health check shipped for Studio (data/argocd-health.lua), executed with lupa on
status objects shaped as the operator writes them (tests/integration/test_cli.py also runs it on
live objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argocd_health import health, script

ROOT = Path(__file__).resolve().parents[2]


def cond(
    type_: str, status: bool, reason: str = "", message: str = "", generation: int = 3
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-11-25T10:00:00Z",
    }


def studio(
    phase: str | None,
    *,
    generation: int = 3,
    observed: int | None = 3,
    stalled: bool = False,
    ready: bool = False,
    reconciling: bool = False,
    message: str = "msg",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {"name": "s1", "namespace": "team-a", "generation": generation},
        "spec": {"computeEnvironment": "ce", "template": {"image": "img"}},
    }
    if phase is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "phase": phase,
            "message": message,
            "conditions": [
                cond("Ready", ready, "SessionRunning" if ready else "X"),
                cond("Reconciling", reconciling, "Reconciled"),
                cond(
                    "Stalled",
                    stalled,
                    "EnvironmentNotFound" if stalled else "NotStalled",
                    "ComputeEnvironment 'ce' does not exist" if stalled else "",
                ),
            ],
        }
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (studio("Running", ready=True), "Healthy"),
        (studio("Starting", reconciling=True), "Progressing"),
        (studio("Stopping", reconciling=True), "Progressing"),
        (studio("Stopped", ready=True), "Suspended"),
        (studio("Errored", stalled=True), "Degraded"),
        (studio("Errored"), "Degraded"),  # a session that failed on its own: no Stalled, still Degraded
        (studio("Stopped", stalled=True), "Degraded"),  # configuration error: no pod, Stalled
        (studio(None), "Progressing"),  # no status yet
        (studio("Running", ready=True, generation=4, observed=3), "Progressing"),  # not yet observed
        (studio("Running", ready=True, observed=None), "Progressing"),
        (studio("SomethingNew"), "Progressing"),
    ],
)
def test_health(obj: dict[str, Any], expected: str) -> None:
    assert health(obj)["status"] == expected


def test_messages() -> None:
    assert health(studio("Stopped", stalled=True))["message"] == "ComputeEnvironment 'ce' does not exist"
    assert health(studio("Running", ready=True, message="the session is running"))["message"] == (
        "the session is running"
    )
    assert "generation 4" in health(studio("Running", generation=4, observed=3))["message"]


def test_shipped_in_docs() -> None:
    """docs/gitops.md carries the same script (for argocd-cm and the argo-cd chart's values)."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    body = script().strip()
    for indent in (4, 6):  # argocd-cm, and the argo-cd Helm chart's values
        indented = "\n".join((" " * indent + line) if line else "" for line in body.splitlines())
        assert indented in docs
