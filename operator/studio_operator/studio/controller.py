"""The studio controller: observe one studio from the store, `decide`, execute the plan.

Level-based, from the whole object and the store, every time. Writes are idempotent
(deterministic names, create-or-adopt, server-side apply) and touch only objects this studio owns:
a name held by someone else is a NameConflict, a 4xx refusal is Rejected, and both become the
Stalled outcome of `decide.blocked`. Status is written only when it changed, conditionally on the
version read; deadlines (lifespan expiry and its warning) go to the one scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from .. import kube, metrics
from ..api.common import (
    API_VERSION,
    APPLIED_HASH,
    SESSION_LIFESPAN_ANNOTATION,
)
from ..api.common import VOLUMES_FINALIZER as FINALIZER
from ..config import OPTIONS
from ..controller import LATER, Key, Later, Scheduler, Store
from ..controller.events import EventLane
from ..resources import lifespan as ls
from ..resources import names
from ..resources.mounts import MountPlan
from ..resources.ownership import NameConflict, Rejected, owned_by_studio, rejection_fix, same_owner
from ..resources.retention import is_retained_for, release_patch, reown_patch, retains_workspace
from ..resources.session import build_pod, build_service, build_workspace_claim
from . import decide as d
from .watched import GRANTS, volumes_of

log = logging.getLogger(__name__)

STALE_RETRY_SECONDS = 1.0
MAX_DECISIONS = 4  # a pass decides again after a pod turns out gone or is created: at most thrice
EXPIRY_RECHECK_SECONDS = 10.0  # ... a deferred expiry after this, or when its pod is gone
AFTER_BURST_SECONDS = 30.0  # the longest a Stopped waits for the rest of its burst's pods


class StaleStudio(Exception):
    """The studio changed since this reconcile read it; look again at the newer version."""


class RetryLater(Exception):
    """Not an error: the reconcile waits for something asynchronous and looks again soon."""


class StudioController:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        events: EventLane,
        backlog: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.events = events
        self.backlog = backlog  # other studios wait for a worker
        self._put_off: set[Key] = set()  # studios whose pass was put off once (see _put_off_start)
        self._expired_in_burst: dict[Key, str] = {}  # the uid of the pod a burst expiry deleted
        self._after_burst: dict[Key, float] = {}  # pods gone, Stopped held (since, monotonic)

    # ------------------------------------------------------------------ entry point

    async def reconcile(self, key: Key) -> float | Later | None:
        started = time.perf_counter()
        try:
            return await self._reconcile(key)
        except StaleStudio as exc:
            # Someone else wrote the studio since it was read: its watch event queues it again
            # (with the newer body); the retry here is only a safety net.
            log.debug("studio %s changed while being reconciled; looking again", exc)
            return STALE_RETRY_SECONDS
        except Exception as exc:
            metrics.RECONCILE_ERRORS.labels(kind=type(exc).__name__).inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _reconcile(self, key: Key) -> float | Later | None:
        stored = self.store.get("studios", key)
        put_off = key in self._put_off
        self._put_off.discard(key)
        if stored is None or stored["metadata"].get("deletionTimestamp"):
            self.scheduler.cancel(key)
            self._after_burst.pop(key, None)
            if self._expired_in_burst.pop(key, None) is not None:
                self.release_after_burst()  # it may have been the burst's last pod
            await self._delete_volumes(*key)
            if stored is not None:
                await self._release_workspace(stored)
                await self._remove_finalizer(stored)
            return None
        # A private copy of the parts this pass updates after its own writes (resourceVersion,
        # status, annotations), so that later writes in the same pass are checked against them.
        body = {**stored, "metadata": dict(stored["metadata"])}
        first = observed = self.observe(body)
        plan = d.decide(observed)
        wait = await self._burst_expiry(key, observed, plan)
        if wait is not None:
            return wait
        if not put_off and self._put_off_start(key, observed, plan):
            return LATER
        for _ in range(MAX_DECISIONS):
            try:
                again = await self._execute(body, plan)
            except (NameConflict, Rejected) as exc:
                plan = d.blocked(first, exc.reason, _blocked_message(exc))
                break
            except RetryLater as wait:
                plan = d.preparing_storage(observed, str(wait))
                break
            if again is None:
                break
            observed = self.observe(body, **again)
            plan = d.decide(observed)
            if not put_off and self._put_off_start(key, observed, plan):
                return LATER
        plan = self._recheck_start(body, observed, plan)
        await self._write_status(body, plan)
        self._schedule(key, plan)
        return d.recheck_after(plan.outcome, self._pod_of(body), ls.now())

    async def _burst_expiry(self, key: Key, observed: d.Observed, plan: d.Plan) -> float | None:
        """A burst of expiries (other studios wait for a worker): the pods go first (what frees
        the resources, and what each Stopped waits for). The pass deletes the pod and nothing
        else; the passes that find it still terminating write nothing; once it is gone, one
        status write, Stopped, after the burst's other pods (see `_gone_in_burst`). No Stopping
        in between. An interruption is safe: a recorded session past its end is expired whatever
        its pod's state (after a restart a terminating pod gets the usual Stopping write).
        Returns when to look again, or None for the ordinary pass."""
        pod = observed.pod
        if pod is None:
            return self._gone_in_burst(key)
        if not d.expires_pod(plan) or not (self.backlog() or self._expiring_in_burst(key, pod)):
            return None
        # Part of the burst from here on, before the first await: a pass of another worker must
        # not take the burst for over while this deletion is on its way.
        self._expired_in_burst[key] = pod["metadata"]["uid"]
        present = False
        try:
            present = await self._delete_pod(dict(pod))
        finally:
            if not present:  # gone, or the deletion failed: not the burst's to wait for
                self._expired_in_burst.pop(key, None)
                self.release_after_burst()
        # gone: a lookup said so, and the store now knows; Stopped in the next pass
        return EXPIRY_RECHECK_SECONDS if present else 0.0

    def _gone_in_burst(self, key: Key) -> float | None:
        """This studio's pod, deleted by a burst of expiries, is gone: its `Stopped` waits until
        the burst is over (see `_burst_over`), at most AFTER_BURST_SECONDS, so that the API
        server's writes go to the deletions first. The pass that ends the burst releases the
        others; so does the queue once no studio waits (`release_after_burst`). Returns how
        long it still waits, or None: Stopped now."""
        tracked = self._expired_in_burst.pop(key, None) is not None
        now = time.monotonic()
        since = self._after_burst.get(key, now)
        if not tracked and key not in self._after_burst:
            return None
        if self._burst_over() or now - since >= AFTER_BURST_SECONDS:
            self._after_burst.pop(key, None)
            self.release_after_burst()
            return None
        self._after_burst[key] = since
        return AFTER_BURST_SECONDS - (now - since)

    def _burst_over(self) -> bool:
        """No pod the burst deleted is left terminating, and no studio waits for a worker (more
        of the burst's expiries may be among them)."""
        return not self._expired_in_burst and not self.backlog()

    def release_after_burst(self) -> None:
        """The burst is over: the held `Stopped` writes are due now. Also called by the queue
        whenever no studio waits for a worker."""
        if not self._after_burst or not self._burst_over():
            return
        now = time.time()
        for held in self._after_burst:
            self.scheduler.at(held, now)
        self._after_burst.clear()

    def _expiring_in_burst(self, key: Key, pod: Mapping[str, Any]) -> bool:
        """The pod of this expiry was deleted under a burst and is still terminating."""
        meta = pod["metadata"]
        return bool(meta.get("deletionTimestamp")) and self._expired_in_burst.get(key) == meta["uid"]

    def _put_off_start(self, key: Key, observed: d.Observed, plan: d.Plan) -> bool:
        """Under a burst (other studios wait for a worker), pods first: a pass that just created a
        session pod, or finds one whose start is not recorded yet, leaves the rest of the start
        (Service, connect grant, status, Events) until no studio waits, so that the API server's
        writes go to the pods users wait for. The put-off pass (once per key; sooner when the
        studio itself changes) usually finds the pod running: one status write, Running. Not
        when the start has Events to tell (they belong to the pass that started it)."""
        if observed.started:
            finishing = plan.outcome.phase == d.Phase.STARTING and not plan.events
        else:
            finishing = d.finishes_start(observed, plan)
        if not finishing or not self.backlog():
            return False
        self._put_off.add(key)
        return True

    def _recheck_start(self, body: dict[str, Any], observed: d.Observed, plan: d.Plan) -> d.Plan:
        """A session whose pod already runs when its first status goes out (the pod's watch event
        came while this pass was writing) reports Running at once: one status write less. The
        new decision's writes are the ones this pass just made."""
        if not observed.started or observed.pod is None or plan.outcome.phase != d.Phase.STARTING:
            return plan
        pod = self._pod_of(body)
        if pod is None or pod["metadata"].get("resourceVersion") == observed.pod["metadata"].get(
            "resourceVersion"
        ):
            return plan
        fresh = d.decide(replace(observed, pod=pod, now=ls.now()))
        return fresh if fresh.outcome.phase == d.Phase.RUNNING else plan

    def observe(self, body: dict[str, Any], **changes: Any) -> d.Observed:
        """What `decide` needs of one studio, from the store."""
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = body.get("spec") or {}
        pod = self._pod_of(body)
        service = (ns, names.service_name(name))
        env_name = spec.get("computeEnvironment")
        mounts = [m.get("dataLink") for m in spec.get("mounts") or [] if isinstance(m, dict)]
        observed = d.Observed(
            studio=body,
            pod=pod,
            now=ls.now(),
            environment=self.store.get("computeenvironments", (ns, env_name))
            if isinstance(env_name, str)
            else None,
            links={link: self.store.get("datalinks", (ns, link)) for link in mounts if isinstance(link, str)},
            workspace=self.store.get("workspacesettings", (ns, "default")),
            service_exists=self.store.has("services", service),
            rolebindings=self.store.group("rolebindings", ns, GRANTS),
            clusterrolebindings=self.store.group("clusterrolebindings", "", GRANTS),
            binding=self.store.get("rolebindings", (ns, names.connect_role_name(name))),
            warning_ahead=OPTIONS.warning_ahead,
            s3_policy=OPTIONS.s3_policy,
        )
        return replace(observed, **changes) if changes else observed

    def _pod_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = body["metadata"]
        return self.store.get("pods", (meta["namespace"], names.pod_name(meta["name"], meta["uid"])))

    def _schedule(self, key: Key, plan: d.Plan) -> None:
        if isinstance(plan.deadline, d.Keep):
            return
        if plan.deadline is None:
            self.scheduler.cancel(key)
        else:
            self.scheduler.at(key, plan.deadline)

    # ------------------------------------------------------------------ executing a plan

    async def _execute(self, body: dict[str, Any], plan: d.Plan) -> dict[str, Any] | None:
        """Run the plan's steps; the changes to observe and decide again with, or None."""
        again: dict[str, Any] | None = None
        for step in plan.steps:
            results = await self._step(body, plan, step)
            for result in results:
                if result is not None:
                    again = {**(again or {}), **result}
            if again is not None:
                return again
        return None

    async def _step(self, body: dict[str, Any], plan: d.Plan, step: list[d.Action]) -> list[Any]:
        try:
            return await _together(*(self._act(body, plan, action) for action in step))
        except StaleStudio:
            raise
        except Exception:
            if any(isinstance(action, d.RecordExpiry) for action in step):
                metrics.EXPIRY_FAILURES.inc()  # the PrometheusRule alerts when expiries keep failing
            raise

    async def _act(self, body: dict[str, Any], plan: d.Plan, action: d.Action) -> dict[str, Any] | None:
        if isinstance(action, d.DeletePod):
            return None if await self._delete_pod(dict(action.pod)) else {"pod": None}
        if isinstance(action, d.StartSession):
            pod = await self._start_session(body, action)
            return {"pod": pod, "started": True}
        await self._write(body, plan, action)
        return None

    async def _write(self, body: dict[str, Any], plan: d.Plan, action: d.Action) -> None:
        if isinstance(action, d.ClearSessionAnnotation):
            await self._remove_session_annotation(body)
        elif isinstance(action, d.RecordExpiry):
            await self._write_status(body, plan)
            metrics.EXPIRIES.inc()
            await self._remove_session_annotation(body)  # conditional on the status write's version
        elif isinstance(action, d.ConfirmCurrent):
            await self._confirm_current(body)
        elif isinstance(action, d.Apply):
            await self._create_or_apply(action.kind, action.obj)
        elif isinstance(action, d.DeleteOwned):
            meta = action.obj["metadata"]
            await kube.delete(
                action.obj["apiVersion"], action.obj["kind"], meta.get("namespace"), meta["name"]
            )

    async def _confirm_current(self, body: dict[str, Any]) -> None:
        """Before replacing a session pod that vanished, ask the API server whether the studio read
        from the store is still the current one. The garbage collector removes the pods of a
        deleted studio, and that pod's DELETED event can be handled before the studio's own (they
        come from different watches; after a restart the store can lag further): without this
        check a new pod would be created for a studio that no longer exists."""
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
            if ls.now() < deadline + d.POD_DELETION_SLACK:
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
        self.store.remove("pods", (ns, name), meta["uid"])
        return False

    async def _remove_session_annotation(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        if SESSION_LIFESPAN_ANNOTATION in (meta.get("annotations") or {}):
            patched = await self._patch_studio(
                body, {"metadata": {"annotations": {SESSION_LIFESPAN_ANNOTATION: None}}}, "annotation"
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

    # ------------------------------------------------------------------ starting a session

    async def _start_session(self, body: dict[str, Any], start: d.StartSession) -> dict[str, Any]:
        meta = body["metadata"]
        # The finalizer holds the studio until its PVs are gone and a retained claim is released.
        if start.mounts.persistent_volumes or retains_workspace(body.get("spec")):
            await self._add_finalizer(body)
        await self._converge_data_volumes(meta["namespace"], meta["name"], meta["uid"], start.mounts)
        workspace = build_workspace_claim(start.inputs)
        if workspace is not None:
            existing = self.store.get(
                "persistentvolumeclaims", (meta["namespace"], workspace["metadata"]["name"])
            )
            if existing is None:  # kept across sessions; never resized or replaced behind the user's back
                await self._create_or_adopt("persistentvolumeclaims", workspace)
            elif is_retained_for(existing, meta["name"]):
                await self._reclaim_workspace(existing, start.inputs.studio.owner_reference())
            elif not same_owner(existing, workspace):
                raise NameConflict("PersistentVolumeClaim", meta["namespace"], workspace["metadata"]["name"])
        # The Service first: it lives as long as the studio, so this is a create only at the first
        # start (a no-op later, unless what it holds changed). A name held by someone else then
        # stops the start before any pod exists.
        await self._create_or_apply("services", build_service(start.inputs))
        pod = await self._create_or_adopt("pods", build_pod(start.inputs, start.mounts))
        metrics.SESSIONS_STARTED.inc()
        return pod

    async def _add_finalizer(self, body: dict[str, Any]) -> None:
        """PVs are cluster-scoped: the studio keeps a finalizer so that the operator removes them."""
        meta = body["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER in finalizers:
            return
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
                        "path": "/metadata/finalizers/-" if finalizers else "/metadata/finalizers",
                        "value": FINALIZER if finalizers else [FINALIZER],
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

    async def _converge_data_volumes(self, ns: str, name: str, uid: str, plan: MountPlan) -> None:
        """Data PVs and claims between sessions: create what is missing, replace what changed
        (their storage fields are immutable), remove those of links no longer mounted."""
        stale = await self._delete_stale_claims(ns, name, uid, plan)
        stale = await self._delete_stale_volumes(ns, name, plan) or stale
        if stale:
            # Deletion finishes asynchronously; the next pass (woken by the delete events or the
            # retry) creates the new objects under the same names.
            raise RetryLater("replacing the data volumes of changed or removed mounts")
        for pv in plan.persistent_volumes:
            await self._create_or_apply("persistentvolumes", pv)
        for claim in plan.claims:
            await self._create_or_apply("persistentvolumeclaims", claim)

    async def _delete_stale_claims(self, ns: str, name: str, uid: str, plan: MountPlan) -> bool:
        wanted = {c["metadata"]["name"]: c for c in plan.claims}
        stale = False
        for claim in self.store.group("persistentvolumeclaims", ns, name):  # its data claims
            claim_name = claim["metadata"]["name"]
            if not owned_by_studio(claim, name, uid):
                continue  # labelled like ours but not this studio's: not ours to delete
            want = wanted.get(claim_name)
            if want is None or _hash_of(claim) != _hash_of(want):
                await kube.delete("v1", "PersistentVolumeClaim", ns, claim_name)
                stale = True
        return stale

    async def _delete_stale_volumes(self, ns: str, name: str, plan: MountPlan) -> bool:
        wanted = {pv["metadata"]["name"]: pv for pv in plan.persistent_volumes}
        stale = False
        for pv_name, pv in self._volumes_of(ns, name):
            want = wanted.get(pv_name)
            if want is None or _hash_of(pv) != _hash_of(want):
                await kube.delete("v1", "PersistentVolume", None, pv_name)
                stale = True
        return stale

    def _volumes_of(self, ns: str, name: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (pv["metadata"]["name"], pv)
            for pv in self.store.group("persistentvolumes", "", volumes_of(ns, name))
        ]

    # ------------------------------------------------------------------ writes under the ownership rule

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
        wanted = _hash_of(obj)
        if current is not None and wanted and _hash_of(current) == wanted:
            return
        try:
            if current is None:
                applied = await kube.apply(obj)
            else:
                # Our own object, changed: a merge patch that also drops the labels it no longer
                # has (an apply would keep those set by the create, which another manager owns).
                meta = obj["metadata"]
                patch = _update_patch(current, obj)
                applied = await kube.merge_patch(
                    obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], patch
                )
        except kube.ApiError as exc:
            raise _refused(obj, exc) from exc
        self.store.put(kind, applied)

    # ------------------------------------------------------------------ status and Events

    async def _write_status(self, body: dict[str, Any], plan: d.Plan) -> None:
        """Merge patch, conditional: a status computed from an outdated studio (e.g. before an
        administrator changed status.session.startedAt, or while another operator instance
        acted) is never written, and its Events (SessionExpired ...) are never posted twice."""
        new = d.status_patch(plan.status)
        if d.same_status(body.get("status") or {}, new):
            return
        patched = await self._patch_studio(body, {"status": new}, plan.outcome.reason, subresource="status")
        body["status"] = patched.get("status") or new
        for type_, reason, message in plan.events:
            self.events.post(body, type_, reason, message)

    # ------------------------------------------------------------------ clean-up

    async def _delete_volumes(self, ns: str, name: str) -> None:
        """PVs are cluster-scoped: owner references cannot remove them, so the operator does."""
        for pv_name, _ in self._volumes_of(ns, name):
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
        if not ops:
            return
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
        patch = reown_patch(claim, owner_reference)
        reowned = await kube.json_patch("v1", "PersistentVolumeClaim", meta["namespace"], meta["name"], patch)
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


def _blocked_message(exc: NameConflict | Rejected) -> str:
    if isinstance(exc, Rejected):
        return f"{exc}; {rejection_fix(exc.reason)}"
    return str(exc)


def _refused(obj: dict[str, Any], exc: kube.ApiError) -> Exception:
    """A 4xx answer to a write of an object built for a studio is the studio's problem (its spec,
    its environment, a namespace policy), reported on it; anything else is retried as an error."""
    if exc.status in (400, 403, 413, 422):
        return Rejected(obj["kind"], obj["metadata"]["name"], exc.status, exc.message or exc.reason)
    return exc


def _update_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning `current` into `desired`: every field the operator builds, and a null
    for each label `current` has that `desired` no longer has."""
    patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    labels = dict(desired["metadata"].get("labels") or {})
    for key in (current["metadata"].get("labels") or {}).keys() - labels.keys():
        labels[key] = None
    patch["metadata"] = {**desired["metadata"], "labels": labels}
    return patch


def _hash_of(obj: Mapping[str, Any]) -> str | None:
    value = (obj["metadata"].get("annotations") or {}).get(APPLIED_HASH)
    return str(value) if value is not None else None


__all__ = ["StudioController"]
