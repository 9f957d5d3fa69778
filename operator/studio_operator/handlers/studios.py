"""Studio reconciliation: level-based, from the whole object and the store, every time.

Handlers elsewhere only feed the store and queue keys; `Reconciler.reconcile` decides what should
exist for one studio (pod, service, claims, volumes, connect grant), makes it so with idempotent
calls (deterministic names, create-or-adopt, server-side apply), and writes status only when it
changed. Deadlines (lifespan expiry and its warning) go to the one scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .. import kube, metrics, rbac
from ..api.common import (
    API_VERSION,
    CREATED_BY_ANNOTATION,
    DATA_LINK_LABEL,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    NAMESPACE_LABEL,
    RESTART_ANNOTATION,
    STUDIO_LABEL,
)
from ..api.kinds import (
    ComputeEnvironmentSpec,
    DesiredState,
    Phase,
    StopReason,
    StudioSpec,
    WorkspaceSettingsSpec,
)
from ..api.pod_checks import environment_spec_errors, studio_spec_errors
from ..config import OPTIONS
from ..resources import lifespan as ls
from ..resources import names
from ..resources.conditions import carry_transition_times, condition, find, kstatus_conditions
from ..resources.context import LinkView, SessionInputs, StudioRef
from ..resources.merge import LabelConflict, merge_labels
from ..resources.mounts import MountPlan, plan_mounts
from ..resources.ownership import NameConflict, Rejected, owned_by_studio, rejection_fix, same_owner
from ..resources.podstate import PodState, pod_state
from ..resources.retention import is_retained_for, release_patch, reown_patch, retains_workspace
from ..resources.session import (
    APPLIED_HASH,
    INHERITED_LABELS,
    SESSION_HASH,
    build_pod,
    build_service,
    build_workspace_claim,
    environment_hash,
)
from ..runtime import Key, Scheduler, Store, WorkQueue

log = logging.getLogger(__name__)


FINALIZER = "studios.dev/volumes"


def link_view_from(name: str, body: dict[str, Any] | None) -> LinkView | None:
    from ..resources.links import link_view

    return link_view(name, body)


STALE_RETRY_SECONDS = 1.0
# A name taken by someone else's object, or an object the API server refused: the conflicting
# object is not watched (it is not ours) and a refusal can be a namespace policy that changes
# without an event on the studio, so look again now and then; a change to the studio looks at once.
BLOCKED_RETRY_SECONDS = 30.0
POD_DELETION_CHECK_SECONDS = 10.0
OVERDUE_POD_CHECK_SECONDS = 30.0
POD_DELETION_SLACK = timedelta(seconds=5)
WAITING_FOR_POD_DELETION = {"WaitingForPreviousSession", "ReplacingPreviousSession"}


class StaleStudio(Exception):
    """The studio changed since this reconcile read it; look again at the newer version."""


@dataclass
class Outcome:
    """What one reconcile decided to report."""

    phase: Phase
    reason: str
    message: str
    stop_reason: StopReason | None = None
    session: dict[str, Any] | None = None
    mounts: list[dict[str, Any]] | None = None
    connect: dict[str, Any] | None = None
    held: str | None = None
    stalled: bool = False
    reconciling: bool = False
    extra_conditions: list[dict[str, Any]] = field(default_factory=list)
    inherited_labels: list[str] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    retry_after: float | None = None


class Reconciler:
    def __init__(self, store: Store, queue: WorkQueue, scheduler: Scheduler) -> None:
        self.store = store
        self.queue = queue
        self.scheduler = scheduler
        self._event_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ entry point

    async def reconcile(self, key: Key) -> float | None:
        started = time.perf_counter()
        try:
            return await self._reconcile(key)
        except StaleStudio as exc:
            # Someone else wrote the studio since it was read: its watch event queues it again
            # (with the newer body); the retry here is only a safety net.
            log.debug("studio %s changed while being reconciled; looking again", exc)
            return STALE_RETRY_SECONDS
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _reconcile(self, key: Key) -> float | None:
        ns, name = key
        stored = self.store.get("studios", key)
        if stored is None:
            self.scheduler.cancel(key)
            await self._delete_volumes(ns, name)
            return None
        # A private copy of the parts this pass updates after its own writes (resourceVersion,
        # status), so that later writes in the same pass are checked against them.
        body = {**stored, "metadata": dict(stored["metadata"])}
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            self.scheduler.cancel(key)
            await self._delete_volumes(ns, name)
            await self._release_workspace(body)
            await self._remove_finalizer(body)
            return None
        status = body.get("status") or {}
        try:
            spec = StudioSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "spec." + ".".join(str(p) for p in first["loc"])
            return await self._finish(
                body, self._stalled("InvalidSpec", f"{where}: {first['msg']}; fix the studio's spec")
            )

        problems = studio_spec_errors(body.get("spec") or {})
        if problems:  # stored before the webhook could refuse it: the pod would be refused
            return await self._finish(
                body, self._stalled("InvalidSpec", f"{'; '.join(problems[:5])}; fix the studio's spec")
            )

        annotations = meta.get("annotations") or {}
        restart = annotations.get(RESTART_ANNOTATION, "")
        held = status.get("heldRestart")
        want_running = spec.state == DesiredState.RUNNING
        if not want_running or (held is not None and held != restart):
            held = None  # a new start request (state toggled or restart annotation changed)
        pod = self.store.get("pods", (ns, names.pod_name(name, meta["uid"])))
        if pod is not None and not owned_by_studio(pod, name, meta["uid"]):
            # Labelled like ours but not owned by this studio: never deleted nor taken as a session.
            conflict = NameConflict("Pod", ns, pod["metadata"]["name"])
            return await self._finish(body, self._blocked(body, conflict.reason, str(conflict), None))

        try:
            if not want_running or held is not None:
                outcome = await self._stop(body, pod, held)
            else:
                outcome = await self._run(body, spec, pod)
        except (NameConflict, Rejected) as exc:
            outcome = self._blocked(body, exc.reason, self._blocked_message(exc), pod)
        return await self._finish(body, outcome)

    def _blocked_message(self, exc: NameConflict | Rejected) -> str:
        if isinstance(exc, Rejected):
            return f"{exc}; {rejection_fix(exc.reason)}"
        return str(exc)

    def _blocked(
        self, body: dict[str, Any], reason: str, message: str, pod: dict[str, Any] | None
    ) -> Outcome:
        """A studio the operator cannot serve without writing to someone else's object, or whose
        objects the API server refused: Stalled with the reason and the fix, an Event when the
        reason is new, a slow retry. A running session keeps running (Errored: it cannot be
        served completely); without one the studio stays Stopped."""
        status = body.get("status") or {}
        outcome = Outcome(
            Phase.ERRORED if pod is not None else Phase.STOPPED,
            reason,
            message,
            stalled=True,
            session=status.get("session") if pod is not None else None,
            retry_after=BLOCKED_RETRY_SECONDS,
        )
        stalled = find(status.get("conditions"), "Stalled")
        if pod is not None and (not stalled or stalled.get("reason") != reason):
            outcome.events.append(("Warning", reason, message))  # Stopped ones are posted by _write_status
        return outcome

    # ------------------------------------------------------------------ stopping

    async def _stop(self, body: dict[str, Any], pod: dict[str, Any] | None, held: str | None) -> Outcome:
        meta = body["metadata"]
        status = body.get("status") or {}
        previous_reason = status.get("stopReason")
        if held is not None:
            reason = (
                StopReason(previous_reason)
                if previous_reason in (StopReason.LIFESPAN_EXPIRED, StopReason.FAILED)
                else StopReason.FAILED
            )
        elif (
            status.get("session")
            or pod is not None
            or previous_reason not in (None, StopReason.NEVER_STARTED)
        ):
            reason = StopReason.USER_REQUESTED
        else:
            reason = StopReason.NEVER_STARTED
        keep_failed_pod = held is not None and pod is not None and pod_state(pod).kind == "ended"
        # Independent calls go out together: a stop costs one round trip. The studio's Service and
        # connect grant stay (they live as long as the studio): the session is the pod alone.
        results = await asyncio.gather(
            self._delete_pod(pod) if pod is not None and not keep_failed_pod else _nothing(),
            self._remove_session_annotation(body) if status.get("session") else _nothing(),
        )
        stopping = bool(results[0])
        self.scheduler.cancel((meta["namespace"], meta["name"]))
        messages = {
            StopReason.NEVER_STARTED: "added without starting; set spec.state to Running to start a session",
            StopReason.USER_REQUESTED: "stopped; set spec.state to Running to start a new session",
            StopReason.LIFESPAN_EXPIRED: (
                "the session reached the end of its lifespan; toggle spec.state or set the "
                "studios.dev/restart annotation to start a new one"
            ),
            StopReason.FAILED: (
                status.get("message")
                or "the session ended on its own; toggle spec.state or set the "
                "studios.dev/restart annotation to start a new one"
            ),
        }
        phase = (
            Phase.STOPPING if stopping else (Phase.ERRORED if reason == StopReason.FAILED else Phase.STOPPED)
        )
        outcome = Outcome(
            phase=phase,
            reason="SessionStopping"
            if stopping
            else {
                StopReason.NEVER_STARTED: "NeverStarted",
                StopReason.USER_REQUESTED: "SessionStopped",
                StopReason.LIFESPAN_EXPIRED: "LifespanExpired",
                StopReason.FAILED: "SessionFailed",
            }[reason],
            message="the session pod is being deleted" if stopping else messages[reason],
            stop_reason=reason,
            held=held,
            reconciling=stopping,
            # kstatus: a failed session needs a new start request (as Argo CD's Degraded says)
            stalled=not stopping and reason == StopReason.FAILED,
        )
        if (
            phase == Phase.STOPPED
            and status.get("phase") not in (Phase.STOPPED, None)
            and reason == StopReason.USER_REQUESTED
        ):
            outcome.events.append(("Normal", "SessionStopped", "the session ended at the user's request"))
        return outcome

    async def _confirm_current(self, body: dict[str, Any]) -> None:
        """Before replacing a session pod that vanished, ask the API server whether the studio read
        from the store is still the current one. The garbage collector removes the pods of a
        deleted studio, and that pod's DELETED event can be handled before the studio's own (they
        come from different watches; after a restart the store can lag further): without this
        check a new pod would be created for a studio that no longer exists. One GET, only when a
        recorded session lost its pod (not on ordinary starts)."""
        meta = body["metadata"]
        current = await kube.get(API_VERSION, "Studio", meta["namespace"], meta["name"])
        if current is None or (current.get("metadata") or {}).get("uid") != meta["uid"]:
            raise StaleStudio(f"{meta['namespace']}/{meta['name']} (deleted)")
        if current["metadata"].get("resourceVersion") != meta.get("resourceVersion"):
            self._remember("studios", API_VERSION, "Studio", current)
            raise StaleStudio(f"{meta['namespace']}/{meta['name']} (changed)")

    def _remember(self, store_kind: str, api_version: str, kind: str, body: dict[str, Any]) -> None:
        """Store an object the API server answered with (its watch event is then an echo)."""
        body.setdefault("apiVersion", api_version)
        body.setdefault("kind", kind)
        self.store.put(store_kind, body)

    async def _delete_pod(self, pod: dict[str, Any]) -> bool:
        """Delete the pod: True while it still exists, False when it is gone. The store can miss a
        deletion that happened while the operator was not watching (a restart): a terminating pod
        that should be gone by now is looked up (a read; deleting it again would only repeat a
        write the API server has, and under load kubelets finish pods late), and a 404, or another
        uid (a new namesake), corrects the store."""
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        deadline = ls.parse_time(meta.get("deletionTimestamp"))  # when the kubelet kills it
        if deadline is not None:
            if ls.now() < deadline + POD_DELETION_SLACK:
                return True  # being deleted, on time: its DELETED event will come
            current = await kube.get("v1", "Pod", ns, name)
            if current is not None and (current.get("metadata") or {}).get("uid") == meta["uid"]:
                self._remember("pods", "v1", "Pod", current)
                return True  # still finishing
            self.store.remove("pods", (ns, name), meta["uid"])
            return False
        answer = await kube.delete("v1", "Pod", ns, name, uid=meta["uid"])
        if answer is not None:
            if (answer.get("metadata") or {}).get("deletionTimestamp"):
                # Terminating: the store says so at once (its watch event is then an echo, and a
                # pass before that event does not delete it again).
                self._remember("pods", "v1", "Pod", answer)
            return True
        self.store.remove("pods", (meta["namespace"], meta["name"]), meta["uid"])
        return False

    async def _remove_session_annotation(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        if ls.SESSION_LIFESPAN_ANNOTATION in (meta.get("annotations") or {}):
            patched = await self._patch_studio(
                body, {"metadata": {"annotations": {ls.SESSION_LIFESPAN_ANNOTATION: None}}}, "annotation"
            )
            meta["annotations"] = patched["metadata"].get("annotations") or {}

    async def _patch_studio(
        self, body: dict[str, Any], patch: dict[str, Any], what: str, subresource: str | None = None
    ) -> dict[str, Any]:
        """A merge patch of the studio conditional on the version this pass read: the answer is
        that version plus this change and nothing else, so storing it (its watch event is then an
        echo) cannot hide another writer's change. 404/409: the studio changed or went away since
        it was read; its watch event brings the newer version. Later writes of the same pass are
        conditional on the new version."""
        meta = body["metadata"]
        conditional = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]},
        }
        try:
            patched = await kube.merge_patch(
                API_VERSION, "Studio", meta["namespace"], meta["name"], conditional, subresource=subresource
            )
        except kube.ApiError as exc:
            if exc.status in (404, 409):
                raise StaleStudio(f"{meta['namespace']}/{meta['name']} ({what})") from exc
            raise
        self.store.put("studios", patched)
        meta["resourceVersion"] = patched["metadata"]["resourceVersion"]
        return patched

    # ------------------------------------------------------------------ running

    def _workspace_lifespan(self, ns: str) -> Any:
        ws = self.store.get("workspacesettings", (ns, "default"))
        if ws is None:
            return None
        try:
            return WorkspaceSettingsSpec.model_validate(ws.get("spec") or {}).studio_lifespan
        except ValidationError:
            return None

    def _inputs(self, body: dict[str, Any], spec: StudioSpec) -> tuple[SessionInputs | None, Outcome | None]:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        env_body = self.store.get("computeenvironments", (ns, spec.compute_environment))
        if env_body is None:
            return None, self._stalled(
                "EnvironmentNotFound",
                f"ComputeEnvironment {spec.compute_environment!r} does not exist in namespace {ns!r}: "
                "create it or set spec.computeEnvironment to an existing one",
            )
        try:
            env = ComputeEnvironmentSpec.model_validate(env_body.get("spec") or {})
        except ValidationError as exc:
            return None, self._stalled(
                "EnvironmentInvalid", f"ComputeEnvironment {spec.compute_environment!r}: {exc}"
            )
        problems = environment_spec_errors(env_body.get("spec") or {})
        if problems:
            return None, self._stalled(
                "EnvironmentInvalid",
                f"ComputeEnvironment {spec.compute_environment!r}: {'; '.join(problems[:5])}; fix the environment",
            )
        try:
            labels = merge_labels(
                env.resource_labels, spec.resource_labels, spec.remove_resource_labels, name
            )
        except LabelConflict as exc:
            return None, self._stalled(
                "LabelConflict", f"{exc}; remove them from spec.resourceLabels/removeResourceLabels"
            )
        links: dict[str, LinkView] = {}
        for mount in spec.mounts or []:
            link_body = self.store.get("datalinks", (ns, mount.data_link))
            if link_body is None:
                return None, self._stalled(
                    "DataLinkNotFound",
                    f"DataLink {mount.data_link!r} does not exist in namespace {ns!r}: create it or remove "
                    "it from spec.mounts",
                )
            view = link_view_from(mount.data_link, link_body)
            if view is None or not view.ready:
                why = f" ({view.reason}: {view.message})" if view is not None and view.reason else ""
                return None, self._stalled(
                    "DataLinkNotReady",
                    f"DataLink {mount.data_link!r} is not Ready{why}: fix the link (bucket, region, "
                    "credentials) and the studio starts by itself",
                )
            links[mount.data_link] = view
        ref = StudioRef(
            name=name,
            namespace=ns,
            uid=meta["uid"],
            generation=meta.get("generation", 1),
            annotations=dict(meta.get("annotations") or {}),
        )
        inputs = SessionInputs(
            studio=ref,
            spec=spec,
            environment_name=spec.compute_environment,
            environment=env,
            labels=labels,
            links=links,
            creator=(meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION),
            s3_policy=OPTIONS.s3_policy,
        )
        return inputs, None

    async def _run(self, body: dict[str, Any], spec: StudioSpec, pod: dict[str, Any] | None) -> Outcome:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        status = body.get("status") or {}
        annotations = meta.get("annotations") or {}
        events: list[tuple[str, str, str]] = []

        lock = self._workspace_lifespan(ns)
        eff = ls.effective_lifespan(spec.lifespan, annotations.get(ls.SESSION_LIFESPAN_ANNOTATION), lock)
        # The recorded session is past its end: expire it, whatever state its pod is in. An expiry
        # interrupted after its pod was deleted (the operator stopped, or the status write lost a
        # race) is finished here, and never followed by a new session.
        last_session = dict(status.get("session") or {})
        last_start = ls.parse_time(last_session.get("startedAt"))
        if (
            last_start is not None
            and last_session.get("podName")
            and (pod is None or pod["metadata"]["name"] == last_session["podName"])
        ):
            end = ls.expires_at(last_start, eff)
            if end is not None and ls.now() >= end:
                last_session.update(
                    lifespanHours=eff.hours, lifespanSource=eff.source, expiresAt=ls.format_time(end)
                )
                return await self._expire(body, pod, last_session)

        terminating = pod is not None and bool(pod["metadata"].get("deletionTimestamp"))
        # A pod kept from a session that ended on its own: a new start request replaces it.
        replacing = pod is not None and pod_state(pod).kind == "ended" and not status.get("session")
        if pod is not None and (terminating or replacing):
            if await self._delete_pod(pod):
                if terminating:
                    return Outcome(
                        Phase.STARTING,
                        "WaitingForPreviousSession",
                        "waiting for the previous session pod to terminate",
                        reconciling=True,
                    )
                return Outcome(
                    Phase.STARTING,
                    "ReplacingPreviousSession",
                    "removing the previous session's pod before starting",
                    reconciling=True,
                )
            pod = None  # already gone: its deletion was missed (e.g. while the operator restarted)

        inputs, problem = self._inputs(body, spec)
        plan = MountPlan()
        if inputs is not None:
            try:
                plan = plan_mounts(inputs)
            except ValueError as exc:
                inputs, problem = None, self._stalled(getattr(exc, "reason", "MountsInvalid"), f"{exc}")

        session = dict(status.get("session") or {})
        started_now = False
        if pod is None:
            if problem is not None or inputs is None:
                assert problem is not None
                return problem
            if session.get("podName"):
                await self._confirm_current(body)  # the session's pod vanished: still wanted?
            try:
                pod = await self._start_session(body, inputs, plan)
            except RetryLater as wait:
                self.scheduler.at((ns, name), time.time() + 1.0)
                return Outcome(Phase.STARTING, "PreparingStorage", str(wait), reconciling=True)
            session = {
                "podName": pod["metadata"]["name"],
                "startedAt": ls.format_time(ls.now()),
                "environmentHash": pod["metadata"].get("annotations", {}).get(SESSION_HASH),
            }
            started_now = True
            events.extend(plan.events)
        elif session.get("podName") != pod["metadata"]["name"] or not ls.parse_time(session.get("startedAt")):
            # Adopted after a crash (or the status was lost): the pod's creation is the start.
            session = {
                "podName": pod["metadata"]["name"],
                "startedAt": pod["metadata"].get("creationTimestamp") or ls.format_time(ls.now()),
                "environmentHash": (pod["metadata"].get("annotations") or {}).get(SESSION_HASH),
            }

        started_at = ls.parse_time(session.get("startedAt")) or ls.now()
        expiry = ls.expires_at(started_at, eff)
        session["lifespanHours"] = eff.hours
        session["lifespanSource"] = eff.source
        session["expiresAt"] = ls.format_time(expiry) if expiry else None
        now = ls.now()
        key = (ns, name)

        extra: list[dict[str, Any]] = []
        gen = meta.get("generation", 1)
        if eff.locked:
            extra.append(
                condition(
                    "LifespanLocked",
                    True,
                    "WorkspaceLock",
                    f"the workspace sets every studio's lifespan to "
                    f"{'keep running' if eff.hours is None else f'{eff.hours} hours'}; "
                    "spec.lifespan and the session annotation are ignored",
                    gen,
                )
            )
        if eff.annotation_problem:
            extra.append(
                condition("LifespanAnnotationIgnored", True, "InvalidAnnotation", eff.annotation_problem, gen)
            )
            if not find(status.get("conditions"), "LifespanAnnotationIgnored"):
                events.append(("Warning", "InvalidLifespanAnnotation", eff.annotation_problem))

        if expiry is not None and now >= expiry:
            return await self._expire(body, pod, session)

        state = pod_state(pod)
        if state.kind == "ended":
            return await self._ended_on_its_own(body, pod, state)

        # Objects the session needs while it runs (re-created if someone deleted them).
        labels = dict(pod["metadata"].get("labels") or {})
        await self._ensure_service(body, spec, pod, inputs)
        connect_extra = await self._ensure_grant(body, spec, pod, labels)
        extra.extend(connect_extra)

        # Warning ahead of expiry, then the expiry itself, through the one scheduler.
        warn_at = ls.warning_at(expiry, OPTIONS.warning_ahead)
        if expiry is not None and warn_at is not None:
            if now >= warn_at:
                extra.append(
                    condition(
                        "ExpiringSoon",
                        True,
                        "SessionExpiringSoon",
                        f"the session stops at {session['expiresAt']}; extend it with "
                        f"kubectl studio extend {name} HOURS",
                        gen,
                    )
                )
                if not find(status.get("conditions"), "ExpiringSoon") or (
                    (status.get("session") or {}).get("expiresAt") != session["expiresAt"]
                ):
                    events.append(
                        ("Normal", "SessionExpiringSoon", f"the session stops at {session['expiresAt']}")
                    )
                self.scheduler.at(key, expiry.timestamp())
            else:
                self.scheduler.at(key, warn_at.timestamp())
        else:
            self.scheduler.cancel(key)

        pod_hash = (pod["metadata"].get("annotations") or {}).get(SESSION_HASH)
        if inputs is not None and pod_hash and pod_hash != environment_hash(inputs):
            extra.append(
                condition(
                    "RestartRequired",
                    True,
                    "EnvironmentChanged",
                    f"ComputeEnvironment {spec.compute_environment!r} changed since this session "
                    "started; stop and start the studio to apply it",
                    gen,
                )
            )
        if inputs is None and problem is not None:
            extra.append(
                condition(
                    "EnvironmentAvailable",
                    False,
                    problem.reason,
                    f"{problem.message} (the running session is not affected)",
                    gen,
                )
            )

        outcome = self._phase_from(state, body)
        outcome.session = session
        outcome.mounts = (
            [m.dump() for m in plan.statuses] if plan.statuses else ((body.get("status") or {}).get("mounts"))
        )
        outcome.connect = {
            "service": names.service_name(name),
            "port": spec.template.port,
            "command": f"kubectl studio connect {name} -n {ns}",
        }
        # What the running session's objects inherited: a changed environment applies (and shows
        # here) from the next session on.
        recorded = status.get("inheritedLabels")
        from_pod = (pod["metadata"].get("annotations") or {}).get(INHERITED_LABELS)
        if from_pod is not None:
            outcome.inherited_labels = [k for k in from_pod.split(",") if k]
        else:
            outcome.inherited_labels = (
                inputs.labels.inherited
                if inputs is not None and (started_now or recorded is None)
                else recorded
            )
        outcome.extra_conditions = extra
        outcome.events = events + outcome.events
        return outcome

    def _phase_from(self, state: PodState, body: dict[str, Any]) -> Outcome:
        if state.kind == "running":
            out = Outcome(Phase.RUNNING, "SessionRunning", "the session is running")
            if (body.get("status") or {}).get("phase") != Phase.RUNNING:
                out.events.append(("Normal", "SessionRunning", "the session is running"))
            return out
        if state.kind == "errored":
            out = Outcome(Phase.ERRORED, state.reason, state.message, stalled=True)
            conds = (body.get("status") or {}).get("conditions")
            stalled = find(conds, "Stalled")
            if not stalled or stalled.get("reason") != state.reason:
                out.events.append(("Warning", state.reason, state.message))
            return out
        return Outcome(Phase.STARTING, state.reason, state.message, reconciling=True)

    async def _start_session(
        self, body: dict[str, Any], inputs: SessionInputs, plan: MountPlan
    ) -> dict[str, Any]:
        meta = body["metadata"]
        # The finalizer holds the studio until its PVs are gone and a retained claim is released.
        keeps_claim = retains_workspace(body.get("spec"))
        if (plan.persistent_volumes or keeps_claim) and FINALIZER not in (meta.get("finalizers") or []):
            try:
                patched = await kube.json_patch(
                    API_VERSION,
                    "Studio",
                    meta["namespace"],
                    meta["name"],
                    [
                        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                        {
                            "op": "add",
                            "path": "/metadata/finalizers/-"
                            if meta.get("finalizers")
                            else "/metadata/finalizers",
                            "value": FINALIZER if meta.get("finalizers") else [FINALIZER],
                        },
                    ],
                )
            except kube.ApiError as exc:
                # 422: the `test` failed, someone wrote the studio since it was read; 404: deleted.
                # Its watch event brings the newer version: not an error, look again.
                if exc.status in (404, 409, 422):
                    raise StaleStudio(f"{meta['namespace']}/{meta['name']} (finalizer)") from exc
                raise
            self.store.put("studios", patched)
            meta["resourceVersion"] = patched["metadata"]["resourceVersion"]
        await self._converge_data_volumes(meta["namespace"], meta["name"], meta["uid"], plan)
        workspace = build_workspace_claim(inputs)
        if workspace is not None:
            existing = self.store.get(
                "persistentvolumeclaims", (meta["namespace"], workspace["metadata"]["name"])
            )
            if existing is None:  # kept across sessions; never resized or replaced behind the user's back
                await self._create_or_adopt("persistentvolumeclaims", workspace)
            elif is_retained_for(existing, meta["name"]):
                await self._reclaim_workspace(existing, inputs.studio.owner_reference())
            elif not same_owner(existing, workspace):
                raise NameConflict("PersistentVolumeClaim", meta["namespace"], workspace["metadata"]["name"])
        # The Service first: it lives as long as the studio, so this is a create only at the first
        # start (a no-op later, unless what it holds changed). A name held by someone else then
        # stops the start before any pod exists.
        await self._create_or_apply("services", build_service(inputs))
        pod = await self._create_or_adopt("pods", build_pod(inputs, plan))
        metrics.SESSIONS_STARTED.inc()
        created: dict[str, Any] = pod
        return created

    async def _converge_data_volumes(self, ns: str, name: str, uid: str, plan: MountPlan) -> None:
        """Data PVs and claims between sessions: create what is missing, replace what changed
        (their storage fields are immutable), remove those of links no longer mounted."""
        wanted_pvs = {pv["metadata"]["name"]: pv for pv in plan.persistent_volumes}
        wanted_claims = {c["metadata"]["name"]: c for c in plan.claims}
        stale = False
        for (_, claim_name), claim in list(self.store.items("persistentvolumeclaims", ns)):
            labels = claim["metadata"].get("labels") or {}
            if labels.get(STUDIO_LABEL) != name or DATA_LINK_LABEL not in labels:
                continue
            if not owned_by_studio(claim, name, uid):
                continue  # labelled like ours but not this studio's: not ours to delete
            want = wanted_claims.get(claim_name)
            if want is None or _hash_of(claim) != _hash_of(want):
                await kube.delete("v1", "PersistentVolumeClaim", ns, claim_name)
                stale = True
        for (_, pv_name), pv in list(self.store.items("persistentvolumes", "")):
            labels = pv["metadata"].get("labels") or {}
            if labels.get(STUDIO_LABEL) != name or labels.get(NAMESPACE_LABEL) != ns:
                continue
            want = wanted_pvs.get(pv_name)
            if want is None or _hash_of(pv) != _hash_of(want):
                await kube.delete("v1", "PersistentVolume", None, pv_name)
                stale = True
        if stale:
            # Deletion finishes asynchronously; the next pass (woken by the delete events or the
            # retry) creates the new objects under the same names.
            raise RetryLater("replacing the data volumes of changed or removed mounts")
        for pv in plan.persistent_volumes:
            await self._create_or_apply("persistentvolumes", pv)
        for claim in plan.claims:
            await self._create_or_apply("persistentvolumeclaims", claim)

    async def _create_or_adopt(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or on 409 take the existing object only if it is already this studio's (a
        crash between create and status): a name held by anyone else is a NameConflict."""
        meta = obj["metadata"]
        try:
            created = await kube.create(obj)
        except kube.ApiError as exc:
            if exc.status != 409:
                raise _refused(obj, exc) from exc
            found = await kube.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
            if found is None:
                raise
            if not same_owner(found, obj):
                raise NameConflict(obj["kind"], meta.get("namespace"), meta["name"]) from exc
            created = found
        self._remember(kind, obj["apiVersion"], obj["kind"], created)
        return created

    async def _create_or_apply(self, kind: str, obj: dict[str, Any]) -> None:
        """A plain create when the object does not exist yet (the common case: a Service or Role
        per session), a server-side apply only to change one that does. Under load the API server
        takes about three times longer for an apply that creates a Service than for a POST."""
        meta = obj["metadata"]
        current = self.store.get(kind, (meta.get("namespace") or "", meta["name"]))
        if current is None:
            found = await self._create_or_adopt(kind, obj)
            if _hash_of(found) == _hash_of(obj):
                return
        elif not same_owner(current, obj):
            raise NameConflict(obj["kind"], meta.get("namespace"), meta["name"])
        await self._apply_if_changed(kind, obj)

    async def _apply_if_changed(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        current = self.store.get(kind, (meta.get("namespace") or "", meta["name"]))
        wanted = (meta.get("annotations") or {}).get(APPLIED_HASH)
        if (
            current is not None
            and wanted
            and (current["metadata"].get("annotations") or {}).get(APPLIED_HASH) == wanted
        ):
            return
        try:
            if current is None:
                applied = await kube.apply(obj)
            else:
                # Our own object, changed: a merge patch that also drops the labels it no longer
                # has (an apply would keep those set by the create, which another manager owns).
                applied = await kube.merge_patch(
                    obj["apiVersion"],
                    obj["kind"],
                    meta.get("namespace"),
                    meta["name"],
                    _update_patch(current, obj),
                )
        except kube.ApiError as exc:
            raise _refused(obj, exc) from exc
        self.store.put(kind, applied)

    async def _ensure_service(
        self, body: dict[str, Any], spec: StudioSpec, pod: dict[str, Any], inputs: SessionInputs | None
    ) -> None:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        if self.store.has("services", (ns, names.service_name(name))) or inputs is None:
            return
        await self._create_or_apply("services", build_service(inputs))

    async def _ensure_grant(
        self, body: dict[str, Any], spec: StudioSpec, pod: dict[str, Any], labels: dict[str, str]
    ) -> list[dict[str, Any]]:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        gen = meta.get("generation", 1)
        creator = (meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION)
        subjects = rbac.connect_subjects(
            ns,
            private=spec.private,
            creator=creator,
            rolebindings=[b for _, b in self.store.items("rolebindings", ns)],
            clusterrolebindings=[b for _, b in self.store.items("clusterrolebindings", "")],
        )
        owner = StudioRef(name=name, namespace=ns, uid=meta["uid"]).owner_reference()
        role = rbac.connect_role(
            name,
            ns,
            pod["metadata"]["name"],
            names.service_name(name),
            labels,
            owner,
            ports=[spec.template.port, "http"],
        )
        await self._create_or_apply("roles", _hashed(role))
        binding = rbac.connect_binding(name, ns, labels, owner, subjects)
        role_name = names.connect_role_name(name)
        if binding is None:
            found = self.store.get("rolebindings", (ns, role_name))
            if found is not None and owned_by_studio(found, name, meta["uid"]):
                await kube.delete("rbac.authorization.k8s.io/v1", "RoleBinding", ns, role_name)
        else:
            await self._create_or_apply("rolebindings", _hashed(binding))
        conditions = []
        if spec.private and not creator:
            conditions.append(
                condition(
                    "ConnectGranted",
                    False,
                    "CreatorUnknown",
                    "private studio without a recorded creator: nobody may connect "
                    "(recreate it through the API server with the webhook enabled)",
                    gen,
                )
            )
        return conditions

    # ------------------------------------------------------------------ sessions ending

    async def _expire(
        self, body: dict[str, Any], pod: dict[str, Any] | None, session: dict[str, Any]
    ) -> Outcome:
        meta = body["metadata"]
        restart = (meta.get("annotations") or {}).get(RESTART_ANNOTATION, "")
        outcome = Outcome(
            Phase.STOPPING,
            "LifespanExpired",
            f"the session reached the end of its lifespan ({session.get('lifespanHours')} hours)",
            stop_reason=StopReason.LIFESPAN_EXPIRED,
            held=restart,
            reconciling=True,
        )
        outcome.events.append(
            (
                "Normal",
                "SessionExpired",
                f"the session started at {session.get('startedAt')} expired at {session.get('expiresAt')}",
            )
        )

        async def record() -> None:
            await self._write_status(body, outcome)  # posts SessionExpired once it is written
            metrics.EXPIRIES.inc()
            await self._remove_session_annotation(body)  # conditional on the status write's version

        # Recording the end and deleting go out together: one round trip, and in a burst of
        # expiries the round trips a worker waits for are what p99 lateness is made of. Either may
        # fail alone: the next pass finds the recorded session past its end (see _run) and expires
        # it again, its Event is posted only with the status that records it.
        try:
            _, pod_left = await _together(
                record(),
                self._delete_pod(pod) if pod is not None else _nothing(),
            )
        except StaleStudio:
            raise
        except Exception:
            metrics.EXPIRY_FAILURES.inc()  # the PrometheusRule alerts when expiries keep failing
            raise
        self.scheduler.cancel((meta["namespace"], meta["name"]))
        if not pod_left:
            return await self._stop(body, None, restart)  # nothing to wait for: Stopped now
        outcome.events = []
        return outcome

    async def _ended_on_its_own(self, body: dict[str, Any], pod: dict[str, Any], state: PodState) -> Outcome:
        meta = body["metadata"]
        restart = (meta.get("annotations") or {}).get(RESTART_ANNOTATION, "")
        await self._remove_session_annotation(body)
        self.scheduler.cancel((meta["namespace"], meta["name"]))
        outcome = Outcome(
            Phase.ERRORED,
            "SessionFailed",
            f"{state.message}; the pod {pod['metadata']['name']} is kept for `kubectl logs` until the next start",
            stop_reason=StopReason.FAILED,
            held=restart,
            stalled=True,
        )
        outcome.events.append(("Warning", "SessionFailed", outcome.message))
        return outcome

    # ------------------------------------------------------------------ status

    def _stalled(self, reason: str, message: str) -> Outcome:
        return Outcome(Phase.STOPPED, reason, message, stalled=True)

    def _status_for(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        meta = body["metadata"]
        gen = meta.get("generation", 1)
        old = body.get("status") or {}
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
        return {
            "observedGeneration": gen,
            "phase": outcome.phase.value,
            "stopReason": outcome.stop_reason.value if outcome.stop_reason else None,
            "message": outcome.message,
            "conditions": carry_transition_times(conditions, old.get("conditions"), ls.format_time(ls.now())),
            "session": outcome.session,
            "mounts": outcome.mounts,
            "connect": outcome.connect,
            "inheritedLabels": outcome.inherited_labels,
            "heldRestart": outcome.held,
        }

    async def _write_status(self, body: dict[str, Any], outcome: Outcome) -> None:
        new = self._status_for(body, outcome)
        old = body.get("status") or {}
        if _same_status(old, new):
            return
        # Merge patch: explicit nulls clear fields that no longer apply. Conditional: a status
        # computed from an outdated studio (e.g. before an administrator changed
        # status.session.startedAt, or while another operator instance acted) is never written,
        # and its events (SessionExpired ...) are never posted twice.
        patched = await self._patch_studio(body, {"status": new}, outcome.reason, subresource="status")
        body["status"] = patched.get("status") or new
        for type_, reason, message in outcome.events:
            self._post_event(body, type_, reason, message)
        stalled_before = find(old.get("conditions"), "Stalled")
        if (
            outcome.stalled
            and outcome.phase == Phase.STOPPED
            and (
                not stalled_before
                or stalled_before.get("status") != "True"
                or stalled_before.get("reason") != outcome.reason
            )
        ):
            self._post_event(body, "Warning", outcome.reason, outcome.message)

    def _post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Events are best effort and never hold up a reconcile: posted in the background."""
        snapshot = {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": dict(body["metadata"]),
        }
        task = asyncio.create_task(kube.post_event(snapshot, type_, reason, message))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _finish(self, body: dict[str, Any], outcome: Outcome) -> float | None:
        meta = body["metadata"]
        lock = self._workspace_lifespan(meta["namespace"])
        if lock is not None and not any(c["type"] == "LifespanLocked" for c in outcome.extra_conditions):
            # Stopped studios show the lock too, so a user sees it before starting.
            hours = ls.effective_lifespan(None, None, lock).hours
            outcome.extra_conditions.append(
                condition(
                    "LifespanLocked",
                    True,
                    "WorkspaceLock",
                    f"the workspace sets every studio's lifespan to "
                    f"{'keep running' if hours is None else f'{hours} hours'}; "
                    "spec.lifespan and the session annotation are ignored",
                    meta.get("generation", 1),
                )
            )
        await self._write_status(body, outcome)
        if outcome.phase == Phase.STOPPING or outcome.reason in WAITING_FOR_POD_DELETION:
            return self._pod_deletion_recheck(meta)
        return outcome.retry_after

    def _pod_deletion_recheck(self, meta: dict[str, Any]) -> float:
        """The pod's DELETED event normally triggers the next pass; in case it was missed, look
        again once its deletion should have finished (its deadline plus slack), then every
        OVERDUE_POD_CHECK_SECONDS: each late look is a GET, and under load (thousands of pods
        being deleted) kubelets finish pods minutes late."""
        pod = self.store.get("pods", (meta["namespace"], names.pod_name(meta["name"], meta["uid"])))
        deadline = ls.parse_time((pod or {}).get("metadata", {}).get("deletionTimestamp"))
        if deadline is None:
            return POD_DELETION_CHECK_SECONDS
        due = (deadline + POD_DELETION_SLACK - ls.now()).total_seconds()
        return min(due + 0.5, 2 * OVERDUE_POD_CHECK_SECONDS) if due > 0 else OVERDUE_POD_CHECK_SECONDS

    # ------------------------------------------------------------------ clean-up

    async def _delete_volumes(self, ns: str, name: str) -> None:
        """PVs are cluster-scoped: owner references cannot remove them, so the operator does."""
        for (_, pv_name), pv in list(self.store.items("persistentvolumes", "")):
            labels = pv["metadata"].get("labels") or {}
            if labels.get(STUDIO_LABEL) == name and labels.get(NAMESPACE_LABEL) == ns:
                await kube.delete("v1", "PersistentVolume", None, pv_name)

    async def _release_workspace(self, body: dict[str, Any]) -> None:
        """workspaceVolume.reclaim Retain: before the studio goes, its claim stops being owned
        (so the garbage collector keeps it) and is labelled retained."""
        meta = body["metadata"]
        if not retains_workspace(body.get("spec")):
            return
        key = (meta["namespace"], names.workspace_claim_name(meta["name"]))
        claim = self.store.get("persistentvolumeclaims", key)
        if claim is None or not any(
            ref.get("uid") == meta["uid"] for ref in claim["metadata"].get("ownerReferences") or []
        ):
            return
        ops = release_patch(claim)
        if ops:
            try:
                released = await kube.json_patch("v1", "PersistentVolumeClaim", key[0], key[1], ops)
            except kube.ApiError as exc:
                if exc.status == 404:
                    return
                raise  # 422: changed meanwhile; the retry reads the newer claim
            self._remember("persistentvolumeclaims", "v1", "PersistentVolumeClaim", released)
            log.info("workspace claim %s/%s retained after studio deletion", *key)

    async def _reclaim_workspace(self, claim: dict[str, Any], owner_reference: dict[str, Any]) -> None:
        """A studio of the same name is back: it owns its retained claim again."""
        meta = claim["metadata"]
        reowned = await kube.json_patch(
            "v1",
            "PersistentVolumeClaim",
            meta["namespace"],
            meta["name"],
            reown_patch(claim, owner_reference),
        )
        self._remember("persistentvolumeclaims", "v1", "PersistentVolumeClaim", reowned)
        log.info("workspace claim %s/%s re-used by a new studio", meta["namespace"], meta["name"])

    async def _remove_finalizer(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        index = finalizers.index(FINALIZER)
        try:
            await kube.json_patch(
                API_VERSION,
                "Studio",
                meta["namespace"],
                meta["name"],
                [
                    {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
                    {"op": "remove", "path": f"/metadata/finalizers/{index}"},
                ],
            )
        except kube.ApiError as exc:
            if exc.status not in (404, 422):
                raise


async def _together(*calls: Awaitable[Any]) -> list[Any]:
    """Run calls concurrently and wait for all of them (none is left running unobserved); then
    raise the first failure, if any."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def _nothing() -> None:
    return None


class RetryLater(Exception):
    """Not an error: the reconcile waits for something asynchronous and looks again soon."""


def _refused(obj: dict[str, Any], exc: kube.ApiError) -> Exception:
    """A 4xx answer to a write of an object built for a studio is the studio's problem (its spec,
    its environment, a namespace policy), reported on it; anything else is retried as an error."""
    if exc.status in (400, 403, 413, 422):
        return Rejected(obj["kind"], obj["metadata"]["name"], exc.status, exc.message or exc.reason)
    return exc


def _hash_of(obj: dict[str, Any]) -> str | None:
    value = (obj["metadata"].get("annotations") or {}).get(APPLIED_HASH)
    return str(value) if value is not None else None


def _update_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning `current` into `desired`: every field the operator builds, and a null
    for each label `current` has that `desired` no longer has."""
    patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    labels = dict(desired["metadata"].get("labels") or {})
    for key in (current["metadata"].get("labels") or {}).keys() - labels.keys():
        labels[key] = None
    patch["metadata"] = {**desired["metadata"], "labels": labels}
    return patch


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    from ..resources.session import with_applied_hash

    return with_applied_hash(obj)


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    for key, value in new.items():
        if key == "conditions":
            if _strip_times(old.get("conditions")) != _strip_times(value):
                return False
        elif old.get(key) != value:
            return False
    return True


def _strip_times(conditions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


def _unused(_: datetime) -> None:  # keeps the datetime import for type readers
    return None


__all__ = ["MANAGED_BY_KEY", "MANAGED_BY_VALUE", "Reconciler"]
