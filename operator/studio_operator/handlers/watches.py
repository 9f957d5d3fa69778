"""kopf watch handlers: keep the store current and queue the studios each change concerns.

Only `@kopf.on.event` is used here, so kopf never writes to these objects (no diff-base or
progress annotations, no kopf finalizers): every write the operator makes is the reconciler's.

The handlers are `async` on purpose: kopf runs synchronous handlers in a thread pool, and the
store and the work queue (an asyncio.Queue) belong to the event loop's thread. From threads, a
queued key could be lost (a race between `add` and `done`) or wake no worker, and a store write
could break an iteration in the loop ("dictionary changed size during iteration").

kopf (re)lists a resource when it starts watching it and whenever a watch cannot continue (410
Gone after compaction or a long outage, an API server restart): the listing re-announces what
exists (events of type None) but never what was deleted in between. So when listing events come,
`resync` LISTs every kind once they settle and drops what is gone (client-go's informers call this
Replace); without it a pod deleted while the operator was starting, or while the API server was
unreachable, would stay in the store and its studio would wait for it forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import kopf

from .. import kube
from ..api.common import GROUP, MANAGED_BY_KEY, MANAGED_BY_VALUE, NAMESPACE_LABEL, STUDIO_LABEL
from ..config import OPTIONS
from ..runtime import Key, Store, WorkQueue
from ..runtime import resource_version as _rv

log = logging.getLogger(__name__)

USER_ROLES = {"studios-connect", "studios-launch", "studios-maintain", "studios-admin"}
MANAGED_SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"


class Wiring:
    store: Store | None = None
    queue: WorkQueue | None = None
    # What the store holds: (store kind, apiVersion, Kind, label selector); set at start-up.
    kinds: list[tuple[str, str, str, str | None]] = []


WIRING = Wiring()

RESYNC_QUIET = 1.0  # seconds without listing events before resyncing
RESYNC_MAX_DELAY = 10.0  # ... but no later than this after the first one


class _Resync:
    timer: asyncio.TimerHandle | None = None
    first: float = 0.0
    task: asyncio.Task[None] | None = None
    again: bool = False


_RESYNC = _Resync()


async def resync(why: str = "", queue_all: bool = False) -> None:
    """LIST every kind the store holds; keep newer versions, drop what no longer exists (and is
    older than the listing), then queue the studios concerned: those whose objects changed or
    vanished, or every studio when `queue_all` (start-up and HA takeover: everything is looked at
    once). A newer version stored here must queue its studios now: its watch event, when it comes,
    carries a version the store holds already and is skipped as an echo."""
    store, queue = WIRING.store, WIRING.queue
    if store is None:
        return
    touched: list[Key] = []
    dropped = changed = 0
    for kind, api_version, k, selector in WIRING.kinds:
        listed: set[Key] = set()
        list_rv = 0
        try:
            # In pages: a whole LIST of thousands of objects (managedFields included) parsed at
            # once would set the process's memory high-water mark for good.
            async for page in _scoped_pages(api_version, k, selector):
                list_rv = min(list_rv, _rv(page)) if list_rv else _rv(page)
                for item in page.get("items") or []:
                    item.setdefault("apiVersion", api_version)
                    item.setdefault("kind", k)
                    meta = item["metadata"]
                    listed.add((meta.get("namespace") or "", meta["name"]))
                    if store.holds(kind, item):
                        continue
                    if store.put(kind, item) and not queue_all:
                        changed += 1
                        touched.extend(affected(kind, item, "MODIFIED"))
        except kube.ApiError as exc:
            log.warning("resync: could not list %s (%s); relying on the watch", kind, exc)
            continue
        for key, uid, rv in store.versions(kind):
            if key not in listed and (rv < list_rv or not list_rv):
                body = store.get(kind, key)
                store.remove(kind, key, uid)
                dropped += 1
                if body is not None:
                    touched.extend(affected(kind, body, "DELETED"))
    if why:
        log.info("resync %s: %d objects changed, %d no longer exist", why, changed, dropped)
    if queue is not None:
        for key in touched:
            queue.add(key)
        if queue_all:
            for key, _uid, _version in store.versions("studios"):
                queue.add(key)


LIST_PAGE = 500


async def _scoped_pages(api_version: str, kind: str, selector: str | None) -> AsyncIterator[dict[str, Any]]:
    """All namespaces at once, or (--namespace: namespaced RBAC) each watched namespace."""
    scopes: list[str | None] = list(OPTIONS.namespaces) if kind not in kube.CLUSTER_SCOPED else []
    for namespace in scopes or [None]:
        async for page in _pages(api_version, kind, selector, namespace):
            yield page


async def _pages(
    api_version: str, kind: str, selector: str | None, namespace: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """One consistent LIST (every page has the first page's resourceVersion), page by page."""
    query = {"limit": str(LIST_PAGE)}
    if selector:
        query["labelSelector"] = selector
    while True:
        path = kube.path_for(api_version, kind, namespace)
        page: dict[str, Any] = await kube.request("GET", path, query=query)
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        query["continue"] = token


def _listing_seen() -> None:
    """A listing event: (re)start the quiet-period timer of the next resync."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    if _RESYNC.timer is None:
        _RESYNC.first = now
    else:
        _RESYNC.timer.cancel()
    delay = max(0.0, min(RESYNC_QUIET, _RESYNC.first + RESYNC_MAX_DELAY - now))
    _RESYNC.timer = loop.call_later(delay, _start_resync)


def _start_resync() -> None:
    _RESYNC.timer = None
    if _RESYNC.task is not None and not _RESYNC.task.done():
        _RESYNC.again = True  # one at a time; run once more when this one ends
        return
    _RESYNC.task = asyncio.create_task(_run_resync(), name="resync")


async def _run_resync() -> None:
    while True:
        _RESYNC.again = False
        try:
            await resync("after a relisting")
        except Exception:
            log.exception("resync failed")
        if not _RESYNC.again:
            return


def _ingest(kind: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """Update the store; returns the body (also for deletions), or None when there is nothing new
    to look at: not ready yet, a version the store already holds (the echo of the operator's own
    write, whose response it stored; a listing of what `prime` loaded), or the deletion of an
    object the reconciler already dropped after deleting it."""
    store = WIRING.store
    body: dict[str, Any] | None = event.get("object")
    if store is None or not body:
        return None
    meta = body.get("metadata") or {}
    if event.get("type") is None and WIRING.kinds:
        _listing_seen()
    if event.get("type") == "DELETED":
        key = (meta.get("namespace") or "", meta["name"])
        if not store.has(kind, key):
            return None
        store.remove(kind, key, meta.get("uid"))
    elif store.holds(kind, body) or not store.put(kind, body):
        return None
    return body


def _enqueue(keys: list[Key]) -> None:
    if WIRING.queue is not None:
        for key in keys:
            WIRING.queue.add(key)


def _studios_in(namespace: str, when: Any = None) -> list[Key]:
    store = WIRING.store
    if store is None:
        return []
    return [k for k, body in store.items("studios", namespace) if when is None or when(body)]


def _owner_studio(body: dict[str, Any]) -> list[Key]:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    studio = labels.get(STUDIO_LABEL)
    ns = meta.get("namespace") or labels.get(NAMESPACE_LABEL)
    return [(ns, studio)] if studio and ns else []


def _running(body: dict[str, Any]) -> bool:
    return ((body.get("spec") or {}).get("state") or "Running") == "Running"


def affected(kind: str, body: dict[str, Any], event_type: str | None) -> list[Key]:
    """The studios to look at again after this change of `body` (one place for the watches and
    `resync`)."""
    meta = body.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    deleted = event_type == "DELETED"
    if kind == "studios":
        return [(ns, name)]
    if kind == "pods":
        return _owner_studio(body)
    if kind in ("services", "roles"):
        # Changes the operator made itself; only a deletion by someone else needs a new look.
        return _owner_studio(body) if deleted else []
    if kind == "rolebindings":
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
            return _owner_studio(body) if deleted else []
        if (body.get("roleRef") or {}).get("name") in USER_ROLES:
            return _studios_in(ns, _running)
        return []
    if kind == "clusterrolebindings":
        store = WIRING.store
        if store is not None and (body.get("roleRef") or {}).get("name") in USER_ROLES:
            return [k for k, b in store.items("studios") if _running(b)]
        return []
    if kind == "computeenvironments":
        return _studios_in(ns, lambda s: (s.get("spec") or {}).get("computeEnvironment") == name)
    if kind == "datalinks":
        return _studios_in(
            ns, lambda s: any(m.get("dataLink") == name for m in (s.get("spec") or {}).get("mounts") or [])
        )
    if kind == "workspacesettings":
        return _studios_in(ns)
    return []  # claims and volumes: read by the reconciler, never a reason to look again


def _handle(kind: str, event: dict[str, Any]) -> None:
    body = _ingest(kind, event)
    if body is not None:
        _enqueue(affected(kind, body, event.get("type")))


@kopf.on.event(GROUP, "v1alpha1", "studios")
async def studio_event(**kwargs: Any) -> None:
    _handle("studios", kwargs["event"])


@kopf.on.event("v1", "pods", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def pod_event(**kwargs: Any) -> None:
    _handle("pods", kwargs["event"])


@kopf.on.event("v1", "services", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def service_event(**kwargs: Any) -> None:
    _handle("services", kwargs["event"])


@kopf.on.event("v1", "persistentvolumeclaims", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def claim_event(**kwargs: Any) -> None:
    _handle("persistentvolumeclaims", kwargs["event"])


@kopf.on.event("v1", "persistentvolumes", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def volume_event(**kwargs: Any) -> None:
    _handle("persistentvolumes", kwargs["event"])


@kopf.on.event("rbac.authorization.k8s.io", "v1", "roles", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def role_event(**kwargs: Any) -> None:
    _handle("roles", kwargs["event"])


@kopf.on.event("rbac.authorization.k8s.io", "v1", "rolebindings")
async def rolebinding_event(**kwargs: Any) -> None:
    _handle("rolebindings", kwargs["event"])


@kopf.on.event("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
async def clusterrolebinding_event(**kwargs: Any) -> None:
    _handle("clusterrolebindings", kwargs["event"])


@kopf.on.event(GROUP, "v1alpha1", "computeenvironments")
async def environment_event(**kwargs: Any) -> None:
    _handle("computeenvironments", kwargs["event"])


@kopf.on.event(GROUP, "v1alpha1", "datalinks")
async def datalink_event(**kwargs: Any) -> None:
    _handle("datalinks", kwargs["event"])


@kopf.on.event(GROUP, "v1alpha1", "workspacesettings")
async def settings_event(**kwargs: Any) -> None:
    _handle("workspacesettings", kwargs["event"])
