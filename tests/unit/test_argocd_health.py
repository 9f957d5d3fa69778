"""The Argo CD health check shipped for Studio (data/argocd-health.lua), executed with lupa on
status objects shaped as the operator writes them (tests/integration/test_cli.py also runs it on
live objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argocd_health import health, script, script_path

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
    stop_reason: str | None = None,
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
            "stopReason": stop_reason,
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
        (studio("Stopped", ready=True, stop_reason="UserRequested"), "Healthy"),  # stopped as declared
        (studio("Stopped", ready=True, stop_reason="NeverStarted"), "Healthy"),
        (studio("Stopped", ready=True, stop_reason="LifespanExpired"), "Suspended"),  # someone must act
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


@pytest.mark.parametrize("kind", ["Studio", "DataLink"])
def test_shipped_in_docs(kind: str) -> None:
    """docs/gitops.md carries the same scripts (for argocd-cm and the argo-cd chart's values)."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    body = script(kind).strip()
    for indent in (4, 6):  # argocd-cm, and the argo-cd Helm chart's values
        indented = "\n".join((" " * indent + line) if line else "" for line in body.splitlines())
        assert f"resource.customizations.health.studios.dev_{kind}: |\n{indented}" in docs


def link(
    *,
    generation: int = 2,
    observed: int | None = 2,
    ready: bool,
    reason: str,
    stalled: bool,
    reconciling: bool,
) -> dict[str, Any]:
    return {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "DataLink",
        "metadata": {"name": "genomes", "namespace": "team-a", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "conditions": [
                cond("Ready", ready, reason, f"{reason} message", generation),
                cond("Reconciling", reconciling, reason if reconciling else "Checked", "", generation),
                cond(
                    "Stalled", stalled, reason if stalled else "NotStalled", f"{reason} message", generation
                ),
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (link(ready=True, reason="BucketReachable", stalled=False, reconciling=False), "Healthy"),
        (link(ready=False, reason="NoSuchBucket", stalled=True, reconciling=False), "Degraded"),
        (link(ready=False, reason="EndpointUnreachable", stalled=False, reconciling=True), "Progressing"),
        (
            link(ready=True, reason="BucketReachable", stalled=False, reconciling=False, observed=1),
            "Progressing",
        ),
        (
            link(ready=True, reason="BucketReachable", stalled=False, reconciling=False, observed=None),
            "Progressing",
        ),
        ({"kind": "DataLink", "metadata": {"name": "x", "generation": 1}}, "Progressing"),
    ],
)
def test_datalink_health(obj: dict[str, Any], expected: str) -> None:
    verdict = health(obj, "DataLink")
    assert verdict["status"] == expected
    if expected == "Degraded":
        assert verdict["message"] == "NoSuchBucket message"


def test_script_paths() -> None:
    assert script_path("Studio").name == "argocd-health.lua"
    assert script_path("DataLink").name == "argocd-health-datalink.lua"
