"""What a session pod's status means for its studio (resources/podstate.py)."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.resources.podstate import PodState, pod_state


def pod(
    phase: str | None = None,
    *,
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    rv: str | None = "10",
    **status: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "s-abcde"}
    if rv:
        meta["resourceVersion"] = rv
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    st: dict[str, Any] = dict(status)
    if phase:
        st["phase"] = phase
    if conditions is not None:
        st["conditions"] = conditions
    if containers is not None:
        st["containerStatuses"] = containers
    if init is not None:
        st["initContainerStatuses"] = init
    return {"metadata": meta, "status": st}


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def waiting(reason: str, message: str = "", name: str = "studio") -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"waiting": {"reason": reason, "message": message}}}


def test_just_created_pod_without_status() -> None:
    state = pod_state({"metadata": {"name": "p"}})
    assert state == PodState("starting", "PodCreated", "the session pod was created")


def test_pending_pod_is_starting() -> None:
    assert pod_state(pod("Pending")).kind == "starting"
    assert pod_state(pod("Pending")).reason == "PodPending"
    assert pod_state(pod(None)).kind == "starting"


def test_running_and_ready() -> None:
    state = pod_state(pod("Running", conditions=[cond("PodScheduled", "True"), cond("Ready", "True")]))
    assert state.kind == "running" and state.reason == "SessionRunning"


def test_running_not_ready_is_starting() -> None:
    state = pod_state(pod("Running", conditions=[cond("Ready", "False", "ContainersNotReady")]))
    assert state.kind == "starting" and state.reason == "ContainersNotReady"
    assert pod_state(pod("Running")).kind == "starting"


@pytest.mark.parametrize(
    "reason",
    [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CrashLoopBackOff",
    ],
)
def test_waiting_errors(reason: str) -> None:
    state = pod_state(pod("Pending", containers=[waiting(reason, f"details of {reason}")]))
    assert state == PodState("errored", reason, f"details of {reason}")


def test_waiting_error_without_message_uses_reason() -> None:
    state = pod_state(pod("Pending", containers=[waiting("ImagePullBackOff")]))
    assert state == PodState("errored", "ImagePullBackOff", "ImagePullBackOff")


def test_init_container_errors_count() -> None:
    state = pod_state(pod("Pending", init=[waiting("ErrImagePull", "mounter image", name="mounter")]))
    assert state.kind == "errored" and state.reason == "ErrImagePull"


def test_ordinary_waiting_is_starting() -> None:
    assert pod_state(pod("Pending", containers=[waiting("ContainerCreating")])).kind == "starting"
    assert pod_state(pod("Pending", containers=[waiting("PodInitializing")])).kind == "starting"


def test_unschedulable() -> None:
    msg = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    state = pod_state(pod("Pending", conditions=[cond("PodScheduled", "False", "Unschedulable", msg)]))
    assert state == PodState("errored", "Unschedulable", msg)


def test_not_yet_scheduled_without_reason_is_starting() -> None:
    assert pod_state(pod("Pending", conditions=[cond("PodScheduled", "False")])).kind == "starting"


def test_failed_with_container_exit() -> None:
    term = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "out of memory"}}
    state = pod_state(pod("Failed", containers=[{"name": "studio", "state": term}]))
    assert state.kind == "ended" and state.reason == "PodFailed"
    assert "137" in state.message and "OOMKilled" in state.message and "out of memory" in state.message


def test_failed_without_container_status_uses_pod_reason() -> None:
    state = pod_state(pod("Failed", reason="Evicted", message="The node was low on resource: memory."))
    assert state == PodState("ended", "Evicted", "The node was low on resource: memory.")
    bare = pod_state(pod("Failed"))
    assert bare.kind == "ended" and bare.reason == "PodFailed" and bare.message


def test_succeeded_is_ended_completed() -> None:
    term = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    state = pod_state(pod("Succeeded", containers=[{"name": "studio", "state": term}]))
    assert state.kind == "ended" and state.reason == "PodCompleted" and "code 0" in state.message


def test_other_containers_exit_does_not_name_the_studio() -> None:
    term = {"terminated": {"exitCode": 1, "reason": "Error"}}
    state = pod_state(pod("Failed", containers=[{"name": "mounter", "state": term}]))
    assert state.kind == "ended" and state.reason == "PodFailed"


def test_deleting_pod_is_terminating_whatever_its_phase() -> None:
    for phase in ("Pending", "Running", "Failed"):
        assert pod_state(pod(phase, deleting=True)).kind == "terminating"


def test_unbound_claims_are_a_wait_not_an_error() -> None:
    from studio_operator.resources.podstate import pod_state as _state

    pod = {
        "metadata": {"name": "p", "resourceVersion": "1"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                }
            ],
        },
    }
    assert _state(pod).kind == "starting"
    assert _state(pod).reason == "WaitingForVolumes"
