"""What one studio should look like, decided from what was observed (pure: no I/O, no clock).

`decide(observed)` returns a Plan: the status to write, the Events to post with it, the writes
that make the status true, and when to look again. The controller gathers `Observed` from its
store, executes the plan, and decides again when a write shows the observation was out of date
(a pod already gone, a session pod just created).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .. import rbac
from ..api.common import (
    CREATED_BY_ANNOTATION,
    INHERITED_LABELS,
    RESTART_ANNOTATION,
    SESSION_HASH,
    SESSION_LIFESPAN_ANNOTATION,
)
from ..api.kinds import DesiredState, Phase, StopReason, StudioSpec, StudioStatus, WorkspaceSettingsSpec
from ..api.pod_checks import studio_spec_errors
from ..resources import lifespan as ls
from ..resources import names
from ..resources.conditions import carry_transition_times, condition, find, kstatus_conditions
from ..resources.context import SessionInputs, StudioRef
from ..resources.hashing import with_applied_hash
from ..resources.inputs import gather_inputs
from ..resources.mounts import MountPlan, plan_mounts
from ..resources.ownership import NameConflict, owned_by_studio
from ..resources.podstate import PodState, pod_state
from ..resources.session import build_service, environment_hash
from .plan import (
    KEEP,
    Action,
    Apply,
    ClearSessionAnnotation,
    ConfirmCurrent,
    DeleteOwned,
    DeletePod,
    Event,
    Keep,
    Observed,
    Outcome,
    Plan,
    RecordExpiry,
    StartSession,
)

# A name taken by someone else's object, or an object the API server refused: the conflicting
# object is not watched (it is not ours) and a refusal can be a namespace policy that changes
# without an event on the studio, so look again now and then; a change to the studio looks at once.
BLOCKED_RETRY_SECONDS = 30.0
STORAGE_RETRY_SECONDS = 1.0
POD_DELETION_CHECK_SECONDS = 10.0
OVERDUE_POD_CHECK_SECONDS = 30.0
POD_DELETION_SLACK = timedelta(seconds=5)
WAITING_FOR_POD_DELETION = {"WaitingForPreviousSession", "ReplacingPreviousSession"}

# ---------------------------------------------------------------- the decision


def decide(observed: Observed) -> Plan:
    # parsed on every pass: 3-6 µs for the samples' specs, where a cache of parsed specs held
    # ≈2 KB per studio (10 MB at 5,000)
    found = _parse_spec(observed)
    if isinstance(found, Outcome):
        return finish(observed, found)
    spec = found
    pod = observed.pod
    meta = observed.meta
    if pod is not None and not owned_by_studio(pod, meta["name"], meta["uid"]):
        # Labelled like ours but not owned by this studio: never deleted nor taken as a session.
        conflict = NameConflict("Pod", meta["namespace"], pod["metadata"]["name"])
        return blocked(observed, conflict.reason, str(conflict))
    held = held_restart(observed, spec)
    if spec.state != DesiredState.RUNNING or held is not None:
        return _stop(observed, held)
    return _run(observed, spec)


def _parse_spec(observed: Observed) -> StudioSpec | Outcome:
    raw = observed.studio.get("spec") or {}
    try:
        spec = StudioSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "spec." + ".".join(str(p) for p in first["loc"])
        return _stalled("InvalidSpec", f"{where}: {first['msg']}; fix the studio's spec")
    problems = studio_spec_errors(raw)
    if problems:  # stored before the webhook could refuse it: the pod would be refused
        return _stalled("InvalidSpec", f"{'; '.join(problems[:5])}; fix the studio's spec")
    return spec


def held_restart(observed: Observed, spec: StudioSpec) -> str | None:
    """The restart annotation's value when the last session ended on its own; a new start request
    (state toggled or the annotation changed) releases it."""
    held = observed.status.get("heldRestart")
    restart = (observed.meta.get("annotations") or {}).get(RESTART_ANNOTATION, "")
    if spec.state != DesiredState.RUNNING or (held is not None and held != restart):
        return None
    return held


def workspace_lifespan(observed: Observed) -> Any:
    if observed.workspace is None:
        return None
    try:
        return WorkspaceSettingsSpec.model_validate(observed.workspace.get("spec") or {}).studio_lifespan
    except ValidationError:
        return None


def _stalled(reason: str, message: str) -> Outcome:
    return Outcome(Phase.STOPPED, reason, message, stalled=True)


def blocked(observed: Observed, reason: str, message: str) -> Plan:
    """A studio the operator cannot serve without writing to someone else's object, or whose
    objects the API server refused: Stalled with the reason and the fix, an Event when the reason
    is new, a slow retry. A running session keeps running (Errored: it cannot be served
    completely); without one the studio stays Stopped."""
    pod = observed.pod
    outcome = Outcome(
        Phase.ERRORED if pod is not None else Phase.STOPPED,
        reason,
        message,
        stalled=True,
        session=observed.status.get("session") if pod is not None else None,
        retry_after=BLOCKED_RETRY_SECONDS,
    )
    stalled = find(observed.status.get("conditions"), "Stalled")
    if pod is not None and (not stalled or stalled.get("reason") != reason):
        outcome.events.append(("Warning", reason, message))  # Stopped ones: see _events
    return finish(observed, outcome)


def preparing_storage(observed: Observed, message: str) -> Plan:
    """Data volumes of changed mounts are being replaced: look again in a second."""
    outcome = Outcome(Phase.STARTING, "PreparingStorage", message, reconciling=True)
    plan = finish(observed, outcome)
    plan.deadline = observed.now.timestamp() + STORAGE_RETRY_SECONDS
    return plan


# ---------------------------------------------------------------- stopping

_STOPPED_MESSAGES = {
    StopReason.NEVER_STARTED: "added without starting; set spec.state to Running to start a session",
    StopReason.USER_REQUESTED: "stopped; set spec.state to Running to start a new session",
    StopReason.LIFESPAN_EXPIRED: (
        "the session reached the end of its lifespan; toggle spec.state or set the "
        "studios.dev/restart annotation to start a new one"
    ),
    StopReason.FAILED: (
        "the session ended on its own; toggle spec.state or set the "
        "studios.dev/restart annotation to start a new one"
    ),
}
_STOPPED_REASONS = {
    StopReason.NEVER_STARTED: "NeverStarted",
    StopReason.USER_REQUESTED: "SessionStopped",
    StopReason.LIFESPAN_EXPIRED: "LifespanExpired",
    StopReason.FAILED: "SessionFailed",
}


def stop_reason(observed: Observed, held: str | None) -> StopReason:
    previous = observed.status.get("stopReason")
    if held is not None:
        if previous in (StopReason.LIFESPAN_EXPIRED, StopReason.FAILED):
            return StopReason(previous)
        return StopReason.FAILED
    if (
        observed.status.get("session")
        or observed.pod is not None
        or previous not in (None, StopReason.NEVER_STARTED)
    ):
        return StopReason.USER_REQUESTED
    return StopReason.NEVER_STARTED


def _stop(observed: Observed, held: str | None) -> Plan:
    pod = observed.pod
    reason = stop_reason(observed, held)
    keep_failed_pod = held is not None and pod is not None and pod_state(pod).kind == "ended"
    deleting = pod is not None and not keep_failed_pod
    # The session is the pod alone: the studio's Service and connect grant stay while it is stopped
    # (they live as long as the studio).
    step: list[Action] = [DeletePod(pod)] if deleting and pod is not None else []
    if observed.status.get("session"):
        step.append(ClearSessionAnnotation())
    if deleting:
        # Already Stopping (e.g. LifespanExpired, recorded with the pod's deletion): keep saying
        # why, rather than one more status write to say the same pod is being deleted.
        stopping = observed.status.get("phase") == Phase.STOPPING
        previous = (find(observed.status.get("conditions"), "Reconciling") or {}) if stopping else {}
        outcome = Outcome(
            Phase.STOPPING,
            previous.get("reason") or "SessionStopping",
            previous.get("message") or "the session pod is being deleted",
            stop_reason=reason,
            held=held,
            reconciling=True,
        )
    else:
        message = _STOPPED_MESSAGES[reason]
        if reason == StopReason.FAILED:
            message = observed.status.get("message") or message
        outcome = Outcome(
            Phase.ERRORED if reason == StopReason.FAILED else Phase.STOPPED,
            _STOPPED_REASONS[reason],
            message,
            stop_reason=reason,
            held=held,
            # kstatus: a failed session needs a new start request (as Argo CD's Degraded says)
            stalled=reason == StopReason.FAILED,
        )
        if observed.status.get("phase") not in (Phase.STOPPED, None) and reason == StopReason.USER_REQUESTED:
            outcome.events.append(("Normal", "SessionStopped", "the session ended at the user's request"))
    plan = finish(observed, outcome)
    plan.steps = [step] if step else []
    plan.deadline = None
    return plan


def _expire(observed: Observed, session: dict[str, Any]) -> Plan:
    """Record the end and delete the pod in one round trip: in a burst of
    expiries the round trips a worker waits for are what lateness is made of. Either may fail
    alone: the next pass finds the recorded session past its end and expires it again; its Event
    is posted only with the status that records it."""
    message = f"the session reached the end of its lifespan ({session.get('lifespanHours')} hours)"
    if observed.pod is None:  # nothing left to wait for: Stopped at once, as `_stop` says it
        stopped = _STOPPED_MESSAGES[StopReason.LIFESPAN_EXPIRED]
        outcome = Outcome(Phase.STOPPED, "LifespanExpired", stopped, stop_reason=StopReason.LIFESPAN_EXPIRED)
    else:
        outcome = Outcome(
            Phase.STOPPING,
            "LifespanExpired",
            message,
            stop_reason=StopReason.LIFESPAN_EXPIRED,
            reconciling=True,
        )
    expired = f"the session started at {session.get('startedAt')} expired at {session.get('expiresAt')}"
    deletes: list[Action] = [DeletePod(observed.pod)] if observed.pod is not None else []
    return _session_over(
        observed, outcome, ("Normal", "SessionExpired", expired), [[RecordExpiry(), *deletes]]
    )


def expires_pod(plan: Plan) -> bool:
    """The plan records a session's end and deletes its pod (see the controller's burst rule)."""
    actions = [a for step in plan.steps for a in step]
    return any(isinstance(a, RecordExpiry) for a in actions) and any(
        isinstance(a, DeletePod) for a in actions
    )


def finishes_start(observed: Observed, plan: Plan) -> bool:
    """The plan completes a session whose pod already exists: its status does not record the
    phase yet, and its writes are only the studio's own objects (Service, grants). What a burst
    of starts can put off until every waiting studio has its pod (see the controller)."""
    outcome = plan.outcome
    if observed.pod is None or outcome.stalled or outcome.phase not in (Phase.STARTING, Phase.RUNNING):
        return False
    if any(not isinstance(a, Apply | DeleteOwned) for step in plan.steps for a in step):
        return False
    return bool(observed.status.get("phase") != outcome.phase)


def _ended_on_its_own(observed: Observed, pod: Mapping[str, Any], state: PodState) -> Plan:
    message = (
        f"{state.message}; the pod {pod['metadata']['name']} is kept for `kubectl logs` until the next start"
    )
    outcome = Outcome(Phase.ERRORED, "SessionFailed", message, stop_reason=StopReason.FAILED, stalled=True)
    return _session_over(
        observed, outcome, ("Warning", "SessionFailed", message), [[ClearSessionAnnotation()]]
    )


def _session_over(observed: Observed, outcome: Outcome, event: Event, steps: list[list[Action]]) -> Plan:
    """A session that ended without a stop request: no new one starts until the user asks (state
    toggled, or the restart annotation changed from its value now)."""
    outcome.held = (observed.meta.get("annotations") or {}).get(RESTART_ANNOTATION, "")
    outcome.events.append(event)
    plan = finish(observed, outcome)
    plan.steps = steps
    plan.deadline = None
    return plan


# ---------------------------------------------------------------- running


def recorded_session(observed: Observed) -> dict[str, Any] | None:
    """status.session when it is the session in force: it names a start and a pod, and that pod
    is the one observed or is gone."""
    session = dict(observed.status.get("session") or {})
    pod = observed.pod
    if ls.parse_time(session.get("startedAt")) is None or not session.get("podName"):
        return None
    if pod is not None and pod["metadata"]["name"] != session["podName"]:
        return None
    return session


def session_of_pod(observed: Observed, pod: Mapping[str, Any]) -> dict[str, Any]:
    """The session a pod stands for: the recorded one, one started by this pass, or one adopted
    after a crash or a lost status (the pod's creation is its start)."""
    recorded = recorded_session(observed)
    if recorded is not None and not observed.started:
        return recorded
    pod_meta = pod["metadata"]
    started = ls.format_time(observed.now) if observed.started else None
    return {
        "podName": pod_meta["name"],
        "startedAt": started or pod_meta.get("creationTimestamp") or ls.format_time(observed.now),
        "environmentHash": (pod_meta.get("annotations") or {}).get(SESSION_HASH),
    }


def _replacing(observed: Observed) -> bool:
    """A pod kept from a session that ended on its own: a new start request replaces it."""
    pod = observed.pod
    return pod is not None and pod_state(pod).kind == "ended" and not observed.status.get("session")


def _terminating(observed: Observed) -> bool:
    return observed.pod is not None and bool(observed.pod["metadata"].get("deletionTimestamp"))


def _session_in_force(observed: Observed) -> dict[str, Any] | None:
    if observed.pod is None or _terminating(observed) or _replacing(observed):
        return recorded_session(observed)
    return session_of_pod(observed, observed.pod)


def _run(observed: Observed, spec: StudioSpec) -> Plan:
    annotations = observed.meta.get("annotations") or {}
    lifespan = ls.effective_lifespan(
        spec.lifespan, annotations.get(SESSION_LIFESPAN_ANNOTATION), workspace_lifespan(observed)
    )
    # The one expiry rule: the session in force (recorded, or adopted from its pod) ends at its
    # start plus the effective lifespan, whatever state its pod is in. An expiry interrupted after
    # its pod was deleted is finished here, and never followed by a new session.
    session = _session_in_force(observed)
    if session is not None:
        start = ls.parse_time(session["startedAt"]) or observed.now
        clock = ls.session_clock(start, lifespan, observed.warning_ahead)
        if clock.expired(observed.now):
            return _expire(observed, clock.record(session))
    if observed.pod is not None and (_terminating(observed) or _replacing(observed)):
        return _clear_previous(observed)
    inputs, mounts, problem = _inputs_and_mounts(observed, spec)
    if observed.pod is None:
        if inputs is None:
            assert problem is not None
            return finish(observed, problem)
        plan = finish(observed, Outcome(Phase.STARTING, "PodCreated", "the session pod was created"))
        # The session's pod vanished: is the studio still wanted? (one GET, not on ordinary starts)
        plan.steps = [[ConfirmCurrent()]] if (observed.status.get("session") or {}).get("podName") else []
        plan.steps.append([StartSession(inputs, mounts)])
        return plan
    return _running(observed, spec, lifespan, inputs, mounts, problem)


def _clear_previous(observed: Observed) -> Plan:
    assert observed.pod is not None
    if _terminating(observed):
        outcome = Outcome(
            Phase.STARTING,
            "WaitingForPreviousSession",
            "waiting for the previous session pod to terminate",
            reconciling=True,
        )
    else:
        outcome = Outcome(
            Phase.STARTING,
            "ReplacingPreviousSession",
            "removing the previous session's pod before starting",
            reconciling=True,
        )
    plan = finish(observed, outcome)
    plan.steps = [[DeletePod(observed.pod)]]
    return plan


def _inputs_and_mounts(
    observed: Observed, spec: StudioSpec
) -> tuple[SessionInputs | None, MountPlan, Outcome | None]:
    gathered = gather_inputs(observed.studio, spec, observed.environment, observed.links, observed.s3_policy)
    if gathered.problems:
        first = gathered.problems[0]
        return None, MountPlan(), _stalled(first.reason, first.message)
    try:
        return gathered.inputs, plan_mounts(gathered.inputs), None
    except ValueError as exc:
        return None, MountPlan(), _stalled(getattr(exc, "reason", "MountsInvalid"), f"{exc}")


def _running(
    observed: Observed,
    spec: StudioSpec,
    lifespan: ls.EffectiveLifespan,
    inputs: SessionInputs | None,
    mounts: MountPlan,
    problem: Outcome | None,
) -> Plan:
    pod = observed.pod
    assert pod is not None
    session = session_of_pod(observed, pod)
    clock = ls.session_clock(
        ls.parse_time(session["startedAt"]) or observed.now, lifespan, observed.warning_ahead
    )
    session = clock.record(session)
    state = pod_state(pod)
    if state.kind == "ended":
        return _ended_on_its_own(observed, pod, state)
    events: list[Event] = list(mounts.events) if observed.started else []
    extra = _lifespan_conditions(observed, lifespan, events)
    grant_steps, grant_conditions = _grant(observed, spec, pod)
    extra.extend(grant_conditions)
    extra.extend(_warning_conditions(observed, clock, session, events))
    extra.extend(_environment_conditions(observed, spec, pod, inputs, problem))
    outcome = _phase_from(observed, state)
    outcome.session = session
    outcome.mounts = [m.dump() for m in mounts.statuses] if mounts.statuses else observed.status.get("mounts")
    outcome.connect = _connect(observed, spec)
    outcome.inherited_labels = _inherited_labels(observed, pod, inputs)
    outcome.extra_conditions = extra
    outcome.events = events + outcome.events
    plan = finish(observed, outcome)
    plan.steps = list(grant_steps)
    if not observed.service_exists and inputs is not None:  # re-created if someone deleted it
        plan.steps.insert(0, [Apply("services", build_service(inputs))])
    wake = clock.next_wake(observed.now)
    plan.deadline = wake.timestamp() if wake is not None else None
    return plan


def _connect(observed: Observed, spec: StudioSpec) -> dict[str, Any]:
    name, ns = observed.meta["name"], observed.meta["namespace"]
    return {
        "service": names.service_name(name),
        "port": spec.template.port,
        "command": f"kubectl studio connect {name} -n {ns}",
    }


def _inherited_labels(
    observed: Observed, pod: Mapping[str, Any], inputs: SessionInputs | None
) -> list[str] | None:
    """What the running session's objects inherited: a changed environment applies (and shows
    here) from the next session on."""
    from_pod = (pod["metadata"].get("annotations") or {}).get(INHERITED_LABELS)
    if from_pod is not None:
        return [k for k in from_pod.split(",") if k]
    recorded: list[str] | None = observed.status.get("inheritedLabels")
    if inputs is not None and (observed.started or recorded is None):
        return inputs.labels.inherited
    return recorded


def _lifespan_conditions(
    observed: Observed, lifespan: ls.EffectiveLifespan, events: list[Event]
) -> list[dict[str, Any]]:
    gen = observed.generation
    extra = []
    if lifespan.locked:
        extra.append(
            condition("LifespanLocked", True, ls.WORKSPACE_LOCK_REASON, ls.lock_message(lifespan), gen)
        )
    if lifespan.annotation_problem:
        extra.append(
            condition(
                "LifespanAnnotationIgnored", True, "InvalidAnnotation", lifespan.annotation_problem, gen
            )
        )
        if not find(observed.status.get("conditions"), "LifespanAnnotationIgnored"):
            events.append(("Warning", "InvalidLifespanAnnotation", lifespan.annotation_problem))
    return extra


def _warning_conditions(
    observed: Observed, clock: ls.SessionClock, session: Mapping[str, Any], events: list[Event]
) -> list[dict[str, Any]]:
    """ExpiringSoon inside the warning window, with an Event when it opens or the end moves."""
    if not clock.warning(observed.now):
        return []
    name = observed.meta["name"]
    status = observed.status
    if not find(status.get("conditions"), "ExpiringSoon") or (
        (status.get("session") or {}).get("expiresAt") != session["expiresAt"]
    ):
        events.append(("Normal", "SessionExpiringSoon", f"the session stops at {session['expiresAt']}"))
    return [
        condition(
            "ExpiringSoon",
            True,
            "SessionExpiringSoon",
            f"the session stops at {session['expiresAt']}; extend it with kubectl studio extend {name} HOURS",
            observed.generation,
        )
    ]


def _environment_conditions(
    observed: Observed,
    spec: StudioSpec,
    pod: Mapping[str, Any],
    inputs: SessionInputs | None,
    problem: Outcome | None,
) -> list[dict[str, Any]]:
    gen = observed.generation
    pod_hash = (pod["metadata"].get("annotations") or {}).get(SESSION_HASH)
    if inputs is not None and pod_hash and pod_hash != environment_hash(inputs):
        return [
            condition(
                "RestartRequired",
                True,
                "EnvironmentChanged",
                f"ComputeEnvironment {spec.compute_environment!r} changed since this session "
                "started; stop and start the studio to apply it",
                gen,
            )
        ]
    if inputs is None and problem is not None:
        return [
            condition(
                "EnvironmentAvailable",
                False,
                problem.reason,
                f"{problem.message} (the running session is not affected)",
                gen,
            )
        ]
    return []


def _grant(
    observed: Observed, spec: StudioSpec, pod: Mapping[str, Any]
) -> tuple[list[list[Action]], list[dict[str, Any]]]:
    """Who may connect to the session: its Role, and a RoleBinding while anyone may."""
    meta = observed.meta
    ns, name = meta["namespace"], meta["name"]
    creator = (meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION)
    subjects = rbac.connect_subjects(
        ns,
        private=spec.private,
        creator=creator,
        rolebindings=observed.rolebindings,
        clusterrolebindings=observed.clusterrolebindings,
    )
    owner = StudioRef(name=name, namespace=ns, uid=meta["uid"]).owner_reference()
    labels = dict(pod["metadata"].get("labels") or {})
    role = rbac.connect_role(
        name,
        ns,
        pod["metadata"]["name"],
        names.service_name(name),
        labels,
        owner,
        ports=[spec.template.port, "http"],
    )
    steps: list[list[Action]] = [[Apply("roles", with_applied_hash(role))]]
    binding = rbac.connect_binding(name, ns, labels, owner, subjects)
    if binding is not None:
        steps.append([Apply("rolebindings", with_applied_hash(binding))])
    elif observed.binding is not None and owned_by_studio(observed.binding, name, meta["uid"]):
        steps.append([DeleteOwned("rolebindings", observed.binding)])
    conditions = []
    if spec.private and not creator:
        conditions.append(
            condition(
                "ConnectGranted",
                False,
                "CreatorUnknown",
                "private studio without a recorded creator: nobody may connect "
                "(recreate it through the API server with the webhook enabled)",
                observed.generation,
            )
        )
    return steps, conditions


def _phase_from(observed: Observed, state: PodState) -> Outcome:
    status = observed.status
    if state.kind == "running":
        out = Outcome(Phase.RUNNING, "SessionRunning", "the session is running")
        if status.get("phase") != Phase.RUNNING:
            out.events.append(("Normal", "SessionRunning", "the session is running"))
        return out
    if state.kind == "errored":
        out = Outcome(Phase.ERRORED, state.reason, state.message, stalled=True)
        stalled = find(status.get("conditions"), "Stalled")
        if not stalled or stalled.get("reason") != state.reason:
            out.events.append(("Warning", state.reason, state.message))
        return out
    return Outcome(Phase.STARTING, state.reason, state.message, reconciling=True)


# ---------------------------------------------------------------- status


def finish(observed: Observed, outcome: Outcome) -> Plan:
    """The plan that reports `outcome`: its status (with the workspace lock shown on stopped
    studios too, so a user sees it before starting) and the Events that go with it."""
    lock = workspace_lifespan(observed)
    if lock is not None and not any(c["type"] == "LifespanLocked" for c in outcome.extra_conditions):
        locked = ls.effective_lifespan(None, None, lock)
        outcome = replace(
            outcome,
            extra_conditions=[
                *outcome.extra_conditions,
                condition(
                    "LifespanLocked",
                    True,
                    ls.WORKSPACE_LOCK_REASON,
                    ls.lock_message(locked),
                    observed.generation,
                ),
            ],
        )
    return Plan(
        outcome=outcome,
        status=status_of(observed, outcome),
        events=_events(observed, outcome),
    )


def status_of(observed: Observed, outcome: Outcome) -> StudioStatus:
    gen = observed.generation
    conditions = [
        *kstatus_conditions(
            outcome.reason,
            outcome.message,
            reconciling=outcome.reconciling,
            stalled=outcome.stalled,
            generation=gen,
        ),
        *outcome.extra_conditions,
    ]
    carried = carry_transition_times(
        conditions, observed.status.get("conditions"), ls.format_time(observed.now)
    )
    return StudioStatus.model_validate(
        {
            "observedGeneration": gen,
            "phase": outcome.phase,
            "stopReason": outcome.stop_reason,
            "message": outcome.message,
            "conditions": carried,
            "session": outcome.session,
            "mounts": outcome.mounts,
            "connect": outcome.connect,
            "inheritedLabels": outcome.inherited_labels,
            "heldRestart": outcome.held,
        }
    )


def _events(observed: Observed, outcome: Outcome) -> list[Event]:
    """The outcome's Events, and a Warning when a stopped studio stalls for a new reason."""
    events = list(outcome.events)
    before = find(observed.status.get("conditions"), "Stalled")
    if (
        outcome.stalled
        and outcome.phase == Phase.STOPPED
        and (not before or before.get("status") != "True" or before.get("reason") != outcome.reason)
    ):
        events.append(("Warning", outcome.reason, outcome.message))
    return events


def status_patch(status: StudioStatus) -> dict[str, Any]:
    """The status as a merge patch: explicit nulls clear fields (and session fields) that no
    longer apply; list items carry only what is set."""
    out = status.model_dump(by_alias=True, mode="json")
    if status.conditions is not None:
        out["conditions"] = [c.dump() for c in status.conditions]
    if status.mounts is not None:
        out["mounts"] = [m.dump() for m in status.mounts]
    return out


def same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Equal but for condition transition times and fields that are unset on either side."""
    for key, value in new.items():
        if key == "conditions":
            if _strip_times(old.get("conditions")) != _strip_times(value):
                return False
        elif _unset_dropped(old.get(key)) != _unset_dropped(value):
            return False
    return True


def _strip_times(conditions: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


def _unset_dropped(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unset_dropped(v) for k, v in value.items() if v is not None}
    return value


def recheck_after(outcome: Outcome, pod: Mapping[str, Any] | None, now: datetime) -> float | None:
    """When to look again. The pod's DELETED event normally triggers the next pass; in case it
    was missed, look again once its deletion should have finished (its deadline plus slack),
    then every OVERDUE_POD_CHECK_SECONDS: each late look is a GET, and under load (thousands of
    pods being deleted) kubelets finish pods minutes late."""
    if outcome.phase != Phase.STOPPING and outcome.reason not in WAITING_FOR_POD_DELETION:
        return outcome.retry_after
    deadline = ls.parse_time(((pod or {}).get("metadata") or {}).get("deletionTimestamp"))
    if deadline is None:
        return POD_DELETION_CHECK_SECONDS
    due = (deadline + POD_DELETION_SLACK - now).total_seconds()
    return min(due + 0.5, 2 * OVERDUE_POD_CHECK_SECONDS) if due > 0 else OVERDUE_POD_CHECK_SECONDS


__all__ = [
    "KEEP",
    "Action",
    "Apply",
    "ClearSessionAnnotation",
    "ConfirmCurrent",
    "DeleteOwned",
    "DeletePod",
    "Event",
    "Keep",
    "Observed",
    "Outcome",
    "Phase",
    "Plan",
    "RecordExpiry",
    "StartSession",
    "blocked",
    "decide",
    "expires_pod",
    "finishes_start",
    "preparing_storage",
    "recheck_after",
    "same_status",
    "status_patch",
]
