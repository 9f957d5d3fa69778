"""The studio decision (studio/decide.py): from what is observed to the status, writes, Events and
next wake-up, without an API server. One row per situation a studio can be in."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from studio_operator.api.common import (
    CREATED_BY_ANNOTATION,
    INHERITED_LABELS,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    SESSION_HASH,
    SESSION_LIFESPAN_ANNOTATION,
    STUDIO_LABEL,
)
from studio_operator.api.kinds import StudioSpec
from studio_operator.controller import LATER, Scheduler, Store, WorkQueue
from studio_operator.controller.events import EventLane
from studio_operator.controller.kinds import store_policy
from studio_operator.resources import names
from studio_operator.resources.inputs import gather_inputs
from studio_operator.resources.lifespan import format_time
from studio_operator.resources.session import environment_hash
from studio_operator.studio import decide as d
from studio_operator.studio.controller import AFTER_BURST_SECONDS, StudioController
from studio_operator.studio.watched import WATCHED

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NS, NAME, UID = "team", "nb", "uid-1"
POD = names.pod_name(NAME, UID)
WARN = timedelta(minutes=15)


def ago(**delta: float) -> str:
    return format_time(NOW - timedelta(**delta))


def studio(
    state: str = "Running",
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": UID,
            "generation": 3,
            "resourceVersion": "10",
            "annotations": annotations or {},
        },
        "spec": {"computeEnvironment": "env", "template": {"image": "jupyter:4"}, "state": state, **spec},
        "status": status or {},
    }


def environment(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "env", "namespace": NS}, "spec": spec}


def link(ready: bool = True) -> dict[str, Any]:
    cond = {"type": "Ready", "status": "True" if ready else "False", "reason": "Ok" if ready else "NoBucket"}
    return {
        "metadata": {"name": "data", "namespace": NS, "generation": 1},
        "spec": {"uri": "s3://bucket/prefix"},
        "status": {"observedGeneration": 1, "conditions": [cond]},
    }


def workspace(policy: str = "StopAfter", hours: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "default", "namespace": NS},
        "spec": {"studioLifespan": {"policy": policy, "hours": hours}},
    }


def pod(
    phase: str = "Running",
    ready: bool = True,
    created: str | None = None,
    owned: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": POD,
        "namespace": NS,
        "uid": "pod-uid",
        "resourceVersion": "5",
        "creationTimestamp": created or ago(hours=1),
        "labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE, STUDIO_LABEL: NAME},
        "annotations": {INHERITED_LABELS: ""},
        "ownerReferences": [{"kind": "Studio", "uid": UID if owned else "someone-else"}],
    }
    meta.update(extra.pop("meta", {}))
    status: dict[str, Any] = {"phase": phase}
    if phase == "Running":
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    status.update(extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def at(**delta: float) -> float:
    return (NOW + timedelta(**delta)).timestamp()


def session(started: str, pod_name: str = POD) -> dict[str, Any]:
    return {"podName": pod_name, "startedAt": started}


def failed_pod() -> dict[str, Any]:
    terminated = {"terminated": {"exitCode": 1, "reason": "Error"}}
    return pod("Failed", containerStatuses=[{"name": "studio", "state": terminated}])


def observed(body: dict[str, Any], p: dict[str, Any] | None = None, **kw: Any) -> d.Observed:
    kw.setdefault("environment", environment())
    return d.Observed(studio=body, pod=p, now=NOW, warning_ahead=WARN, **kw)


def kinds(plan: d.Plan) -> list[list[str]]:
    return [
        [f"Apply {a.kind}" if isinstance(a, d.Apply) else type(a).__name__ for a in step]
        for step in plan.steps
    ]


def cond(plan: d.Plan, type_: str) -> Any:
    return next((c for c in plan.status.conditions or [] if c.type == type_), None)


def reasons(plan: d.Plan) -> list[str]:
    return [reason for _, reason, _ in plan.events]


@dataclass
class Case:
    id: str
    observed: d.Observed
    phase: str
    reason: str
    steps: list[list[str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    deadline: Any = d.KEEP
    check: Callable[[d.Plan], None] | None = None


def _expires(plan: d.Plan, hours: int | None, source: str) -> None:
    assert plan.status.session is not None
    assert (plan.status.session.lifespan_hours, plan.status.session.lifespan_source) == (hours, source)


def _with_status(**status: Any) -> dict[str, Any]:
    return studio(status=status)


RUNNING_STATUS = {"phase": "Running", "session": session(ago(hours=1))}

CASES = [
    # ---- phase transitions
    Case(
        "added stopped",
        observed(studio("Stopped")),
        "Stopped",
        "NeverStarted",
        [],
        stop_reason="NeverStarted",
        deadline=None,
    ),
    Case("start", observed(studio()), "Starting", "PodCreated", [["StartSession"]]),
    Case(
        "a recorded session lost its pod: confirm the studio first",
        observed(_with_status(phase="Running", session=session(ago(hours=1)))),
        "Starting",
        "PodCreated",
        [["ConfirmCurrent"], ["StartSession"]],
    ),
    Case(
        "pending pod",
        observed(studio(status={"phase": "Starting", "session": session(ago(minutes=1))}), pod("Pending")),
        "Starting",
        "PodPending",
        [["Apply services"], ["Apply roles"]],
        deadline=(NOW + timedelta(hours=7, minutes=44)).timestamp(),
    ),
    Case(
        "running: Event once, Service and grant re-created, the warning scheduled",
        observed(studio(status={"phase": "Starting", "session": session(ago(hours=1))}), pod()),
        "Running",
        "SessionRunning",
        [["Apply services"], ["Apply roles"]],
        ["SessionRunning"],
        deadline=(NOW + timedelta(hours=6, minutes=45)).timestamp(),
    ),
    Case(
        "still running: nothing to post, nothing missing",
        observed(studio(status=RUNNING_STATUS), pod(), service_exists=True),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        deadline=at(hours=6, minutes=45),
    ),
    Case(
        "image pull error: Errored and stalled, a Warning",
        observed(
            studio(status=RUNNING_STATUS),
            pod(
                "Pending",
                containerStatuses=[{"name": "studio", "state": {"waiting": {"reason": "ErrImagePull"}}}],
            ),
        ),
        "Errored",
        "ErrImagePull",
        [["Apply services"], ["Apply roles"]],
        ["ErrImagePull"],
        deadline=at(hours=6, minutes=45),
    ),
    Case(
        "ended on its own: Errored, the restart held, objects ended, pod kept",
        observed(studio(status=RUNNING_STATUS, annotations={"studios.dev/restart": "r1"}), failed_pod()),
        "Errored",
        "SessionFailed",
        [["ClearSessionAnnotation"]],
        ["SessionFailed"],
        stop_reason="Failed",
        deadline=None,
        check=lambda p: (p.status.held_restart == "r1" and p.outcome.stalled) or pytest.fail("not held"),
    ),
    Case(
        "held restart: nothing starts, the failed pod is kept",
        observed(
            studio(
                status={"phase": "Errored", "stopReason": "Failed", "heldRestart": "", "message": "exit 1"}
            ),
            failed_pod(),
        ),
        "Errored",
        "SessionFailed",
        [],
        stop_reason="Failed",
        deadline=None,
        check=lambda p: p.status.message == "exit 1" or pytest.fail(p.status.message),
    ),
    Case(
        "held restart released by a new annotation: the kept pod is replaced",
        observed(
            studio(
                status={"phase": "Errored", "stopReason": "Failed", "heldRestart": ""},
                annotations={"studios.dev/restart": "again"},
            ),
            failed_pod(),
        ),
        "Starting",
        "ReplacingPreviousSession",
        [["DeletePod"]],
    ),
    Case(
        "stop requested: pod deleted with the session's objects",
        observed(studio("Stopped", status=RUNNING_STATUS), pod()),
        "Stopping",
        "SessionStopping",
        [["DeletePod", "ClearSessionAnnotation"]],
        stop_reason="UserRequested",
        deadline=None,
    ),
    Case(
        "stopped once the pod is gone",
        observed(studio("Stopped", status={"phase": "Stopping", "stopReason": "UserRequested"})),
        "Stopped",
        "SessionStopped",
        [],
        ["SessionStopped"],
        stop_reason="UserRequested",
        deadline=None,
    ),
    Case(
        "the previous pod is terminating: wait",
        observed(studio(), pod(meta={"deletionTimestamp": format_time(NOW + timedelta(seconds=20))})),
        "Starting",
        "WaitingForPreviousSession",
        [["DeletePod"]],
    ),
    # ---- stall reasons
    Case(
        "invalid spec (schema)",
        observed(studio(template={})),
        "Stopped",
        "InvalidSpec",
        events=["InvalidSpec"],
    ),
    Case(
        "invalid spec (what the pod would be refused for)",
        observed(studio(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
        "Stopped",
        "InvalidSpec",
        events=["InvalidSpec"],
    ),
    Case(
        "environment missing",
        observed(studio(), environment=None),
        "Stopped",
        "EnvironmentNotFound",
        events=["EnvironmentNotFound"],
    ),
    Case(
        "environment invalid",
        observed(
            studio(), environment=environment(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})
        ),
        "Stopped",
        "EnvironmentInvalid",
        events=["EnvironmentInvalid"],
    ),
    Case(
        "reserved label",
        observed(studio(resourceLabels={"app.kubernetes.io/managed-by": "me"})),
        "Stopped",
        "LabelConflict",
        events=["LabelConflict"],
    ),
    Case(
        "data link missing",
        observed(studio(mounts=[{"dataLink": "data"}])),
        "Stopped",
        "DataLinkNotFound",
        events=["DataLinkNotFound"],
    ),
    Case(
        "data link not ready",
        observed(studio(mounts=[{"dataLink": "data"}]), links={"data": link(ready=False)}),
        "Stopped",
        "DataLinkNotReady",
        events=["DataLinkNotReady"],
    ),
    Case(
        "the same stall again: no second Warning",
        observed(
            studio(
                status={
                    "phase": "Stopped",
                    "conditions": [{"type": "Stalled", "status": "True", "reason": "EnvironmentNotFound"}],
                }
            ),
            environment=None,
        ),
        "Stopped",
        "EnvironmentNotFound",
    ),
    Case(
        "NameConflict: the pod's name is held by someone else's pod",
        observed(studio(status=RUNNING_STATUS), pod(owned=False)),
        "Errored",
        "NameConflict",
        events=["NameConflict"],
        check=lambda p: p.retry_after == d.BLOCKED_RETRY_SECONDS or pytest.fail("no slow retry"),
    ),
    # ---- lifespan: precedence, expiry, adoption
    Case(
        "default lifespan is 8 hours",
        observed(studio(status=RUNNING_STATUS), pod(), service_exists=True),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        check=lambda p: _expires(p, 8, "default"),
        deadline=at(hours=6, minutes=45),
    ),
    Case(
        "spec.lifespan over the default",
        observed(studio(status=RUNNING_STATUS, lifespan={"hours": 4}), pod(), service_exists=True),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        check=lambda p: _expires(p, 4, "studio"),
        deadline=at(hours=2, minutes=45),
    ),
    Case(
        "the session annotation over spec.lifespan",
        observed(
            studio(
                status=RUNNING_STATUS, annotations={SESSION_LIFESPAN_ANNOTATION: "12"}, lifespan={"hours": 4}
            ),
            pod(),
            service_exists=True,
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        check=lambda p: _expires(p, 12, "annotation"),
        deadline=at(hours=10, minutes=45),
    ),
    Case(
        "the workspace lock over everything; the annotation is reported ignored",
        observed(
            studio(status=RUNNING_STATUS, annotations={SESSION_LIFESPAN_ANNOTATION: "12"}),
            pod(),
            service_exists=True,
            workspace=workspace(hours=2),
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        ["InvalidLifespanAnnotation"],
        deadline=(NOW + timedelta(minutes=45)).timestamp(),
        check=lambda p: (
            _expires(p, 2, "workspace"),
            cond(p, "LifespanLocked").reason == "WorkspaceLock" or pytest.fail("lock"),
            cond(p, "LifespanAnnotationIgnored") or pytest.fail("ignored"),
        ),
    ),
    Case(
        "a locked keep-running workspace: no deadline",
        observed(
            studio(status=RUNNING_STATUS), pod(), service_exists=True, workspace=workspace("KeepRunning")
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        deadline=None,
        check=lambda p: (
            (p.status.session is not None and p.status.session.expires_at is None) or pytest.fail("end")
        ),
    ),
    Case(
        "a stopped studio shows the workspace lock too",
        observed(studio("Stopped"), workspace=workspace()),
        "Stopped",
        "NeverStarted",
        [],
        stop_reason="NeverStarted",
        deadline=None,
        check=lambda p: cond(p, "LifespanLocked") or pytest.fail("lock"),
    ),
    Case(
        "expired: the end is recorded while the pod and objects go",
        observed(
            studio(
                status={"phase": "Running", "session": session(ago(hours=9))},
                annotations={"studios.dev/restart": "r"},
            ),
            pod(),
        ),
        "Stopping",
        "LifespanExpired",
        [["RecordExpiry", "DeletePod"]],
        ["SessionExpired"],
        stop_reason="LifespanExpired",
        deadline=None,
        check=lambda p: p.status.held_restart == "r" or pytest.fail("held"),
    ),
    Case(
        "expired while the operator was away, pod gone: no new session, Stopped at once",
        observed(studio(status={"phase": "Running", "session": session(ago(hours=9))})),
        "Stopped",
        "LifespanExpired",
        [["RecordExpiry"]],
        ["SessionExpired"],
        stop_reason="LifespanExpired",
        deadline=None,
    ),
    Case(
        "expired while its pod terminates: expired, not waited for",
        observed(
            studio(status={"phase": "Running", "session": session(ago(hours=9))}),
            pod(meta={"deletionTimestamp": format_time(NOW)}),
        ),
        "Stopping",
        "LifespanExpired",
        [["RecordExpiry", "DeletePod"]],
        ["SessionExpired"],
        stop_reason="LifespanExpired",
        deadline=None,
    ),
    Case(
        "after an expiry, its pod terminating: still LifespanExpired (no status write to say Stopping again)",
        observed(
            studio(
                status={
                    "phase": "Stopping",
                    "stopReason": "LifespanExpired",
                    "heldRestart": "",
                    "message": "the session reached the end of its lifespan (8 hours)",
                    "conditions": [
                        {
                            "type": "Reconciling",
                            "status": "True",
                            "reason": "LifespanExpired",
                            "message": "the session reached the end of its lifespan (8 hours)",
                        }
                    ],
                }
            ),
            pod(meta={"deletionTimestamp": format_time(NOW)}),
        ),
        "Stopping",
        "LifespanExpired",
        [["DeletePod"]],
        stop_reason="LifespanExpired",
        deadline=None,
        check=lambda p: (
            p.status.message == "the session reached the end of its lifespan (8 hours)"
            or pytest.fail("message")
        ),
    ),
    Case(
        "a user's stop while its pod terminates: SessionStopping",
        observed(studio("Stopped", status={"phase": "Running", "session": session(ago(hours=1))}), pod()),
        "Stopping",
        "SessionStopping",
        [["DeletePod", "ClearSessionAnnotation"]],
        stop_reason="UserRequested",
        deadline=None,
    ),
    Case(
        "after an expiry: Stopped, the restart held",
        observed(studio(status={"phase": "Stopping", "stopReason": "LifespanExpired", "heldRestart": ""})),
        "Stopped",
        "LifespanExpired",
        [],
        stop_reason="LifespanExpired",
        deadline=None,
    ),
    Case(
        "an annotation extends a session past the default",
        observed(
            studio(
                status={"phase": "Running", "session": session(ago(hours=9))},
                annotations={SESSION_LIFESPAN_ANNOTATION: "12"},
            ),
            pod(),
            service_exists=True,
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        [],
        deadline=at(hours=2, minutes=45),
    ),
    Case(
        "adopted after a crash: the pod's creation is the start",
        observed(studio(), pod(created=ago(hours=2)), service_exists=True),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        ["SessionRunning"],
        check=lambda p: (
            (
                p.status.session is not None
                and (p.status.session.pod_name, p.status.session.started_at) == (POD, ago(hours=2))
            )
            or pytest.fail("not adopted")
        ),
        deadline=at(hours=5, minutes=45),
    ),
    Case(
        "adopted after a crash, already past its end: expired",
        observed(studio(), pod(created=ago(hours=9))),
        "Stopping",
        "LifespanExpired",
        [["RecordExpiry", "DeletePod"]],
        ["SessionExpired"],
        stop_reason="LifespanExpired",
        deadline=None,
    ),
    # ---- the warning window
    Case(
        "inside the warning window: ExpiringSoon, an Event, the expiry scheduled",
        observed(
            studio(status={"phase": "Running", "session": session(ago(hours=7, minutes=50))}),
            pod(),
            service_exists=True,
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        ["SessionExpiringSoon"],
        deadline=(NOW + timedelta(minutes=10)).timestamp(),
        check=lambda p: cond(p, "ExpiringSoon") or pytest.fail("no ExpiringSoon"),
    ),
    Case(
        "still inside the window, same end: no second Event",
        observed(
            studio(
                status={
                    "phase": "Running",
                    "session": {
                        **session(ago(hours=7, minutes=50)),
                        "expiresAt": format_time(NOW + timedelta(minutes=10)),
                    },
                    "conditions": [{"type": "ExpiringSoon", "status": "True"}],
                }
            ),
            pod(),
            service_exists=True,
        ),
        "Running",
        "SessionRunning",
        [["Apply roles"]],
        deadline=(NOW + timedelta(minutes=10)).timestamp(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    before = copy.deepcopy(case.observed.studio)
    plan = d.decide(case.observed)
    assert (plan.status.phase, plan.outcome.reason) == (case.phase, case.reason)
    assert kinds(plan) == case.steps
    assert reasons(plan) == case.events
    assert plan.status.stop_reason == case.stop_reason
    assert plan.deadline == case.deadline
    assert plan.status.observed_generation == 3
    assert case.observed.studio == before  # pure: the observation is not changed
    if case.check is not None:
        case.check(plan)


# ---------------------------------------------------------------- beyond the table


def _inputs_hash(body: dict[str, Any], env: dict[str, Any]) -> str:
    found = gather_inputs(body, StudioSpec.model_validate(body["spec"]), env, {})
    assert not found.problems
    return environment_hash(found.inputs)


def test_restart_required_when_the_environment_changed_since_the_start() -> None:
    body = studio(status=RUNNING_STATUS)
    old_env = environment(env=[{"name": "A", "value": "1"}])
    started = pod(meta={"annotations": {SESSION_HASH: _inputs_hash(body, old_env)}})
    same = d.decide(observed(body, started, environment=old_env, service_exists=True))
    assert cond(same, "RestartRequired") is None
    changed = d.decide(observed(body, started, environment=environment(env=[{"name": "A", "value": "2"}])))
    found = cond(changed, "RestartRequired")
    assert found is not None and found.reason == "EnvironmentChanged"
    assert changed.status.phase == "Running"  # the running session is not touched


def test_a_missing_environment_does_not_stop_a_running_session() -> None:
    plan = d.decide(observed(studio(status=RUNNING_STATUS), pod(), environment=None, service_exists=True))
    assert plan.status.phase == "Running"
    found = cond(plan, "EnvironmentAvailable")
    assert found is not None and found.status == "False" and found.reason == "EnvironmentNotFound"
    assert kinds(plan) == [["Apply roles"]]  # no Service without inputs to build it from


def test_a_session_started_by_this_pass_starts_now_with_its_mount_events() -> None:
    body = studio(status={"phase": "Stopped"}, mounts=[{"dataLink": "data"}])
    # pod-level credentials: the default S3 trust lends the driver's identity to no namespace
    env = environment(serviceAccountName="studio")
    plan = d.decide(observed(body, pod("Pending"), links={"data": link()}, started=True, environment=env))
    assert plan.status.session is not None and plan.status.session.started_at == format_time(NOW)
    assert plan.status.mounts and plan.status.mounts[0].data_link == "data"
    assert plan.status.inherited_labels == []


def test_private_studio_without_creator_grants_nobody() -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": names.connect_role_name(NAME),
            "namespace": NS,
            "labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE, STUDIO_LABEL: NAME},
            "ownerReferences": [{"kind": "Studio", "uid": UID}],
        },
    }
    plan = d.decide(
        observed(studio(status=RUNNING_STATUS, private=True), pod(), service_exists=True, binding=binding)
    )
    assert kinds(plan) == [["Apply roles"], ["DeleteOwned"]]
    found = cond(plan, "ConnectGranted")
    assert found is not None and found.reason == "CreatorUnknown"
    creator = studio(status=RUNNING_STATUS, private=True, annotations={CREATED_BY_ANNOTATION: "alice"})
    assert kinds(d.decide(observed(creator, pod(), service_exists=True))) == [
        ["Apply roles"],
        ["Apply rolebindings"],
    ]


def test_blocked_by_a_refusal_without_a_session_stays_stopped_with_one_warning() -> None:
    obs = observed(studio())
    plan = d.blocked(obs, "QuotaExceeded", "the API server refused Pod: exceeded quota")
    assert (plan.status.phase, plan.outcome.reason, plan.status.session) == ("Stopped", "QuotaExceeded", None)
    assert reasons(plan) == ["QuotaExceeded"] and plan.retry_after == d.BLOCKED_RETRY_SECONDS
    stalled = replace(obs, studio=studio(status=d.status_patch(plan.status)))
    assert reasons(d.blocked(stalled, "QuotaExceeded", "again")) == []


def test_preparing_storage_looks_again_in_a_second() -> None:
    plan = d.preparing_storage(observed(studio()), "replacing the data volumes")
    assert (plan.status.phase, plan.outcome.reason) == ("Starting", "PreparingStorage")
    assert plan.deadline == NOW.timestamp() + d.STORAGE_RETRY_SECONDS


def test_status_patch_clears_what_no_longer_applies_and_same_status_ignores_unset_fields() -> None:
    plan = d.decide(
        observed(
            studio(status=RUNNING_STATUS), pod(), service_exists=True, workspace=workspace("KeepRunning")
        )
    )
    patch = d.status_patch(plan.status)
    assert patch["stopReason"] is None and patch["heldRestart"] is None  # merge patch: cleared
    assert patch["session"]["expiresAt"] is None
    stored = {**patch, "session": {k: v for k, v in patch["session"].items() if v is not None}}
    assert d.same_status(stored, patch)
    assert not d.same_status({**stored, "phase": "Starting"}, patch)
    # A second decision over the written status changes nothing: the status settles.
    again = d.decide(
        observed(studio(status=stored), pod(), service_exists=True, workspace=workspace("KeepRunning"))
    )
    assert d.same_status(stored, d.status_patch(again.status)) and again.events == []


def test_pod_deletion_rechecks() -> None:
    stopping = d.Outcome(d.Phase.STOPPING, "SessionStopping", "")
    assert d.recheck_after(stopping, None, NOW) == d.POD_DELETION_CHECK_SECONDS
    soon = pod(meta={"deletionTimestamp": format_time(NOW + timedelta(seconds=10))})
    assert d.recheck_after(stopping, soon, NOW) == pytest.approx(15.5)
    late = pod(meta={"deletionTimestamp": format_time(NOW - timedelta(minutes=5))})
    assert d.recheck_after(stopping, late, NOW) == d.OVERDUE_POD_CHECK_SECONDS
    running = d.Outcome(d.Phase.RUNNING, "SessionRunning", "", retry_after=None)
    assert d.recheck_after(running, late, NOW) is None


def test_each_pass_reads_the_spec_as_stored() -> None:
    """Nothing parsed is kept between passes (memory per studio): a spec refused by the checks is
    reported on the pass that reads it, a valid one is parsed as is."""
    studio = {
        "metadata": {"name": "s", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {
            "computeEnvironment": "env",
            "template": {"image": "img:1", "port": 8888},
            "state": "Stopped",
        },
    }
    first = d._parse_spec(d.Observed(studio=studio, pod=None, now=datetime.now(UTC)))
    assert isinstance(first, StudioSpec) and first.template.image == "img:1"
    changed = {**studio, "metadata": {**studio["metadata"], "generation": 2}, "spec": {"state": "Bogus"}}
    bad = d._parse_spec(d.Observed(studio=changed, pod=None, now=datetime.now(UTC)))
    assert isinstance(bad, d.Outcome) and bad.reason == "InvalidSpec"


def test_an_expiry_without_its_pod_is_settled_in_one_write() -> None:
    """Stopped at once, and deciding again on what was written changes nothing (an operator
    restart must not rewrite the status of every studio that expired in a burst)."""
    first = d.decide(observed(studio(status={"phase": "Running", "session": session(ago(hours=9))})))
    assert first.status.phase == "Stopped"
    written = d.status_patch(first.status)
    again = d.decide(observed(studio(status=written)))
    assert d.same_status(written, d.status_patch(again.status)), (written, d.status_patch(again.status))


def test_what_a_burst_of_starts_may_put_off() -> None:
    """finishes_start: a pass that would only complete a start whose pod exists (Service, grant,
    the first status of the phase); never a stop, an expiry, a replacement or a stalled studio."""
    starting = observed(studio(status={"phase": "Stopped"}), pod("Pending"))
    assert d.finishes_start(starting, d.decide(starting))
    running = observed(studio(status={"phase": "Stopped"}), pod())
    assert d.finishes_start(running, d.decide(running))
    recorded = studio(status={"phase": "Running", "session": session(ago(minutes=1))})
    steady = observed(recorded, pod(), service_exists=True)
    assert not d.finishes_start(steady, d.decide(steady))  # nothing of a start left to record
    no_pod = observed(studio(status={"phase": "Stopped"}))
    assert not d.finishes_start(no_pod, d.decide(no_pod))  # the pod itself: never put off
    stopping = observed(studio("Stopped", status={"phase": "Running"}), pod())
    assert not d.finishes_start(stopping, d.decide(stopping))
    expired = studio(status={"phase": "Starting", "session": session(ago(hours=9))})
    expiring = observed(expired, pod())
    assert not d.finishes_start(expiring, d.decide(expiring))
    assert not d.finishes_start(running, d.blocked(running, "NameConflict", "a Role named nb exists"))


def test_a_burst_puts_off_the_rest_of_a_start_once() -> None:
    """The controller's rule, before any I/O (kube is not configured here: a write would raise):
    with other studios waiting, a studio whose pod exists but whose start is not recorded is put
    off; without a backlog, or once it was put off, its pass goes on."""
    store = Store(store_policy(WATCHED))
    body = studio(status={"phase": "Stopped"})
    store.put("studios", body)
    store.put("computeenvironments", {**environment(), "metadata": {**environment()["metadata"], "uid": "e"}})
    store.put("pods", pod("Pending", created=format_time(datetime.now(UTC))))  # the controller's clock
    backlog = [True]
    controller = StudioController(store, Scheduler(WorkQueue()), EventLane(), backlog=lambda: backlog[0])
    key = (NS, NAME)
    assert asyncio.run(controller.reconcile(key)) is LATER
    observed_ = controller.observe(copy.deepcopy(body))
    plan = d.decide(observed_)
    assert key in controller._put_off
    backlog[0] = False
    assert not controller._put_off_start(("other", "s"), observed_, plan)
    backlog[0] = True
    assert controller._put_off_start(("other", "s"), observed_, plan)
    stopped = controller.observe(copy.deepcopy(studio("Stopped", status={"phase": "Stopped"})))
    assert not controller._put_off_start(("other", "t"), stopped, d.decide(stopped))


def test_a_pod_deleted_by_a_burst_expiry_is_waited_for_without_a_stopping_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The controller's burst-expiry rule: a pass that finds the pod a burst expiry deleted still
    terminating writes nothing and looks again later; once the pod is gone, one status write
    (Stopped). Without that mark (e.g. after a restart) a pass records the end at once (Stopping),
    as a single expiry does. The studio writes are recorded here, not sent."""
    written: list[str] = []

    async def merge_patch(*args: Any, **kw: Any) -> dict[str, Any]:
        patch = args[4]
        written.append(patch["status"]["phase"])
        answer = copy.deepcopy(body)
        answer["status"] = patch["status"]
        answer["metadata"]["resourceVersion"] = str(len(written) + 10)
        return answer

    async def post_event(involved: Any, type_: str, reason: str, message: str) -> None:
        written.append(reason)

    monkeypatch.setattr("studio_operator.kube.merge_patch", merge_patch)
    monkeypatch.setattr("studio_operator.kube.post_event", post_event)
    store = Store(store_policy(WATCHED))
    real_now = datetime.now(UTC)  # the controller's clock
    started = format_time(real_now - timedelta(hours=9))
    body = studio(status={"phase": "Running", "session": session(started)})
    store.put("studios", body)
    store.put("computeenvironments", {**environment(), "metadata": {**environment()["metadata"], "uid": "e"}})
    grace_ends = format_time(real_now + timedelta(seconds=30))  # terminating, on time: no I/O
    store.put("pods", pod(created=started, meta={"deletionTimestamp": grace_ends}))
    controller = StudioController(store, Scheduler(WorkQueue()), EventLane(), backlog=lambda: False)
    key = (NS, NAME)

    async def pass_() -> float | Any:
        again = await controller.reconcile(key)
        await asyncio.gather(*controller.events._tasks)  # the Events it posted in the background
        return again

    controller._expired_in_burst[key] = "pod-uid"
    assert asyncio.run(pass_()) == 10.0
    assert written == []
    store.remove("pods", (NS, POD), "pod-uid")
    asyncio.run(pass_())
    assert written == ["Stopped", "SessionExpired"]  # the pod is gone: one status write, its Event
    assert key not in controller._expired_in_burst  # forgotten with its pod

    written.clear()
    body["metadata"]["resourceVersion"] = "100"  # the studio again, Running (a newer version)
    store.put("studios", body)
    store.put("pods", pod(created=started, meta={"deletionTimestamp": grace_ends, "uid": "pod-uid-2"}))
    controller._expired_in_burst[key] = "pod-uid"  # an earlier session's pod: not this one
    asyncio.run(pass_())
    assert written == ["Stopping", "SessionExpired"]


@dataclass
class BurstRig:
    """Expired studios in a store, their controller wired to a queue as the operator wires it;
    status patches are recorded in `written` (name, phase), not sent."""

    store: Store
    queue: WorkQueue
    scheduler: Scheduler
    controller: StudioController
    backlog: list[bool]  # whether studios wait for a worker
    started: str
    written: list[tuple[str, str]] = field(default_factory=list)

    def due(self, name: str) -> bool:
        when = self.scheduler.deadline((NS, name))
        return when is not None and when <= datetime.now(UTC).timestamp()


def burst_rig(monkeypatch: pytest.MonkeyPatch, studios: tuple[str, ...], backlog: bool) -> BurstRig:
    store = Store(store_policy(WATCHED))
    store.put("computeenvironments", {**environment(), "metadata": {**environment()["metadata"], "uid": "e"}})
    queue = WorkQueue()
    scheduler = Scheduler(queue)
    waiting = [backlog]
    controller = StudioController(store, scheduler, EventLane(), backlog=lambda: waiting[0])
    queue.on_drained = controller.release_after_burst
    started = format_time(datetime.now(UTC) - timedelta(hours=9))  # the controller's clock
    rig = BurstRig(store, queue, scheduler, controller, waiting, started)
    bodies: dict[str, dict[str, Any]] = {}
    for name in studios:
        body = studio(
            status={"phase": "Running", "session": session(started, names.pod_name(name, f"u{name}"))}
        )
        body["metadata"].update(name=name, uid=f"u{name}")
        bodies[name] = body
        store.put("studios", body)

    async def merge_patch(*args: Any, **kw: Any) -> dict[str, Any]:
        name, patch = args[3], args[4]
        rig.written.append((name, patch["status"]["phase"]))
        answer = copy.deepcopy(bodies[name])
        answer["status"] = patch["status"]
        answer["metadata"]["resourceVersion"] = str(len(rig.written) + 10)
        return answer

    async def post_event(*args: Any) -> None:
        pass

    monkeypatch.setattr("studio_operator.kube.merge_patch", merge_patch)
    monkeypatch.setattr("studio_operator.kube.post_event", post_event)
    return rig


def test_a_burst_of_expiries_records_its_stopped_statuses_after_its_last_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While other pods of the burst are still terminating, a studio whose pod is gone waits
    (no write, a bounded wait); the last pod gone writes its own Stopped and releases the others."""
    rig = burst_rig(monkeypatch, ("a", "b"), backlog=False)
    controller, written = rig.controller, rig.written
    for name in ("a", "b"):
        controller._expired_in_burst[(NS, name)] = f"pod-{name}"  # deleted by the burst, gone since

    assert asyncio.run(controller.reconcile((NS, "a"))) == AFTER_BURST_SECONDS
    assert written == []  # b's pod is still terminating
    asyncio.run(controller.reconcile((NS, "b")))
    assert written == [("b", "Stopped")]  # the last pod of the burst: its own status at once ...
    assert rig.due("a")  # ... and a's is due now
    asyncio.run(controller.reconcile((NS, "a")))
    assert written == [("b", "Stopped"), ("a", "Stopped")]
    assert not controller._expired_in_burst and not controller._after_burst  # the burst is over


def test_a_burst_is_not_over_while_studios_wait_or_a_deletion_is_on_its_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The burst's last tracked pod gone is not the burst's end while studios still wait for a
    worker (more of its expiries may be among them), nor while a burst deletion is on its way:
    no `Stopped` goes out before that last deletion. Then the queue, drained, releases them."""
    rig = burst_rig(monkeypatch, ("a", "b", "c"), backlog=True)
    controller, written, store = rig.controller, rig.written, rig.store
    proceed = asyncio.Event()
    c_pod = pod(created=rig.started)
    c_pod["metadata"].update(
        name=names.pod_name("c", "uc"), uid="pod-c", ownerReferences=[{"kind": "Studio", "uid": "uc"}]
    )
    c_pod["metadata"]["labels"][STUDIO_LABEL] = "c"
    store.put("pods", c_pod)

    async def delete(api_version: str, kind: str, ns: str, name: str, **kw: Any) -> dict[str, Any]:
        written.append((name, "delete"))
        await proceed.wait()  # the deletion on its way
        return {
            **c_pod,
            "metadata": {**c_pod["metadata"], "deletionTimestamp": format_time(datetime.now(UTC))},
        }

    monkeypatch.setattr("studio_operator.kube.delete", delete)
    for name in ("a", "b"):
        controller._expired_in_burst[(NS, name)] = f"pod-{name}"  # deleted by the burst, gone since

    async def main() -> None:
        assert await controller.reconcile((NS, "a")) == AFTER_BURST_SECONDS
        again = await controller.reconcile((NS, "b"))  # the last tracked pod, but c still waits
        assert isinstance(again, float) and again > 0 and written == []
        deleting = asyncio.create_task(controller.reconcile((NS, "c")))  # taken: nothing waits
        await asyncio.sleep(0.01)
        assert written == [(c_pod["metadata"]["name"], "delete")]
        rig.backlog[0] = False
        rig.queue.on_drained()  # what the queue calls when a key is done and none waits
        assert not rig.due("a") and not rig.due("b")  # c's deletion is on its way: still held
        proceed.set()
        assert await deleting == 10.0  # terminating: looked at again later
        store.remove("pods", (NS, c_pod["metadata"]["name"]), "pod-c")
        assert await controller.reconcile((NS, "c")) is None
        assert written[1:] == [("c", "Stopped")]  # the burst's last pod: its own status at once ...
        assert rig.due("a") and rig.due("b")  # ... and the held ones are due now
        for name in ("a", "b"):
            await controller.reconcile((NS, name))
        assert written[2:] == [("a", "Stopped"), ("b", "Stopped")]
        assert not controller._expired_in_burst and not controller._after_burst

    asyncio.run(main())


def test_held_stopped_statuses_go_out_once_the_queue_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst whose last pod went while unrelated studios waited for a worker: nothing else of
    the burst comes, and the held `Stopped` writes are released when the queue drains, not after
    the longest wait (AFTER_BURST_SECONDS)."""
    rig = burst_rig(monkeypatch, ("a",), backlog=True)
    rig.controller._expired_in_burst[(NS, "a")] = "pod-a"  # deleted by the burst, gone since
    assert asyncio.run(rig.controller.reconcile((NS, "a"))) == AFTER_BURST_SECONDS
    rig.scheduler.at((NS, "a"), datetime.now(UTC).timestamp() + AFTER_BURST_SECONDS)  # as a worker does
    assert rig.written == [] and not rig.due("a")
    rig.backlog[0] = False
    rig.queue.on_drained()
    assert rig.due("a") and not rig.controller._after_burst


def test_a_pass_reads_the_grants_not_every_studios_binding() -> None:
    """Who may connect comes from the bindings that grant studios-connect or above: the controller
    hands `decide` those alone, not the connect RoleBinding every other studio of the namespace
    has (a pass would be O(studios in the namespace)), and the studio's own binding by name."""
    store = Store(store_policy(WATCHED))
    started = format_time(datetime.now(UTC) - timedelta(minutes=1))  # the controller's clock
    body = studio(status={"phase": "Running", "session": session(started)})
    store.put("studios", body)
    store.put("computeenvironments", {**environment(), "metadata": {**environment()["metadata"], "uid": "e"}})
    store.put("pods", pod(created=started))
    managed = {"app.kubernetes.io/managed-by": "studio-operator"}
    for i in range(200):
        other = f"s{i}"
        store.put(
            "rolebindings",
            {
                "metadata": {
                    "name": names.connect_role_name(other),
                    "namespace": NS,
                    "uid": f"b{i}",
                    "resourceVersion": "1",
                    "labels": {**managed, "studios.dev/studio": other},
                },
                "roleRef": {"kind": "Role", "name": names.connect_role_name(other)},
                "subjects": [{"kind": "User", "name": "mallory"}],
            },
        )
    store.put(
        "rolebindings",
        {
            "metadata": {"name": "team-connect", "namespace": NS, "uid": "g", "resourceVersion": "1"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "studios-connect",
            },
            "subjects": [{"kind": "Group", "name": "team", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    controller = StudioController(store, Scheduler(WorkQueue()), EventLane())
    seen = controller.observe(copy.deepcopy(body))
    assert [b["metadata"]["name"] for b in seen.rolebindings] == ["team-connect"]
    binding = next(
        a.obj
        for step in d.decide(seen).steps
        for a in step
        if isinstance(a, d.Apply) and a.kind == "rolebindings"
    )
    assert [s["name"] for s in binding["subjects"]] == ["team"]  # not the other studios' subjects
