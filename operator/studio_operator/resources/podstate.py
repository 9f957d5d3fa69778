"""What a session pod's status means for the studio (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Waiting reasons that will not fix themselves without a change by someone.
ERROR_WAITING_REASONS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
}


@dataclass(frozen=True)
class PodState:
    kind: str  # starting | running | errored | ended | terminating
    reason: str = ""
    message: str = ""


def _container_statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def pod_state(pod: Mapping[str, Any]) -> PodState:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return PodState("terminating", "PodTerminating", "the session pod is shutting down")
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase in ("Failed", "Succeeded"):
        for cs in status.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term and cs.get("name") == "studio":
                code = term.get("exitCode")
                why = term.get("reason") or "Error"
                detail = (term.get("message") or "").strip()
                msg = f"the studio container exited with code {code} ({why})" + (
                    f": {detail}" if detail else ""
                )
                return PodState("ended", "PodFailed" if phase == "Failed" else "PodCompleted", msg)
        reason = status.get("reason") or ("PodFailed" if phase == "Failed" else "PodCompleted")
        return PodState("ended", reason, status.get("message") or f"the session pod {phase.lower()}")
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ERROR_WAITING_REASONS:
            return PodState("errored", waiting["reason"], waiting.get("message") or waiting["reason"])
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        if "unbound immediate PersistentVolumeClaims" in (scheduled.get("message") or ""):
            # The claims are being bound (static data volumes bind within seconds): not an error.
            return PodState("starting", "WaitingForVolumes", "waiting for the session's volumes to be bound")
        return PodState(
            "errored", "Unschedulable", scheduled.get("message") or "no node can run the session pod"
        )
    ready = conditions.get("Ready")
    if phase == "Running" and ready and ready.get("status") == "True":
        return PodState("running", "SessionRunning", "the session is running")
    if phase == "Running":
        return PodState("starting", "ContainersNotReady", "the studio container is starting")
    if not meta.get("resourceVersion") and not status:
        return PodState("starting", "PodCreated", "the session pod was created")
    return PodState("starting", "PodPending", "waiting for the session pod to be scheduled and started")
