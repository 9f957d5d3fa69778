"""kopf watch handlers: keep the store current and queue the studios each change concerns.

Only `@kopf.on.event` is used here, so kopf never writes to these objects (no diff-base or
progress annotations, no kopf finalizers): every write the operator makes is the reconciler's.

The handlers are `async` on purpose: kopf runs synchronous handlers in a thread pool, and the
store and the work queue (an asyncio.Queue) belong to the event loop's thread. From threads, a
queued key could be lost (a race between `add` and `done`) or wake no worker, and a store write
could break an iteration in the loop ("dictionary changed size during iteration").
"""

from __future__ import annotations

from typing import Any

import kopf

from ..api.common import GROUP, MANAGED_BY_KEY, MANAGED_BY_VALUE, STUDIO_LABEL
from ..runtime import Key, Store, WorkQueue
from .studios import NAMESPACE_LABEL

USER_ROLES = {"studios-connect", "studios-launch", "studios-maintain", "studios-admin"}
MANAGED_SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"


class Wiring:
    store: Store | None = None
    queue: WorkQueue | None = None


WIRING = Wiring()


def _ingest(kind: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """Update the store; returns the body (also for deletions) or None when not ready yet."""
    store = WIRING.store
    body = event.get("object")
    if store is None or not body:
        return None
    meta = body.get("metadata") or {}
    if event.get("type") == "DELETED":
        store.remove(kind, (meta.get("namespace") or "", meta["name"]), meta.get("uid"))
    else:
        store.put(kind, body)
    return dict(body)


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


@kopf.on.event(GROUP, "v1alpha1", "studios")
async def studio_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("studios", event)
    if body is not None:
        meta = body["metadata"]
        _enqueue([(meta["namespace"], meta["name"])])


@kopf.on.event("v1", "pods", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def pod_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("pods", event)
    if body is not None:
        _enqueue(_owner_studio(body))


@kopf.on.event("v1", "services", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def service_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("services", event)
    if body is not None and event.get("type") == "DELETED":
        _enqueue(_owner_studio(body))


@kopf.on.event("v1", "persistentvolumeclaims", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def claim_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    _ingest("persistentvolumeclaims", event)


@kopf.on.event("v1", "persistentvolumes", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def volume_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    _ingest("persistentvolumes", event)


@kopf.on.event("rbac.authorization.k8s.io", "v1", "roles", labels={MANAGED_BY_KEY: MANAGED_BY_VALUE})
async def role_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("roles", event)
    if body is not None and event.get("type") == "DELETED":
        _enqueue(_owner_studio(body))


def _running(body: dict[str, Any]) -> bool:
    return ((body.get("spec") or {}).get("state") or "Running") == "Running"


@kopf.on.event("rbac.authorization.k8s.io", "v1", "rolebindings")
async def rolebinding_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("rolebindings", event)
    if body is None:
        return
    labels = (body.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
        if event.get("type") == "DELETED":
            _enqueue(_owner_studio(body))
    elif (body.get("roleRef") or {}).get("name") in USER_ROLES:
        _enqueue(_studios_in(body["metadata"]["namespace"], _running))


@kopf.on.event("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
async def clusterrolebinding_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("clusterrolebindings", event)
    store = WIRING.store
    if body is not None and store is not None and (body.get("roleRef") or {}).get("name") in USER_ROLES:
        _enqueue([k for k, b in store.items("studios") if _running(b)])


@kopf.on.event(GROUP, "v1alpha1", "computeenvironments")
async def environment_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("computeenvironments", event)
    if body is not None:
        name = body["metadata"]["name"]
        _enqueue(
            _studios_in(
                body["metadata"]["namespace"],
                lambda s: (s.get("spec") or {}).get("computeEnvironment") == name,
            )
        )


@kopf.on.event(GROUP, "v1alpha1", "datalinks")
async def datalink_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("datalinks", event)
    if body is not None:
        name = body["metadata"]["name"]
        _enqueue(
            _studios_in(
                body["metadata"]["namespace"],
                lambda s: any(m.get("dataLink") == name for m in (s.get("spec") or {}).get("mounts") or []),
            )
        )


@kopf.on.event(GROUP, "v1alpha1", "workspacesettings")
async def settings_event(**kwargs: Any) -> None:
    event: dict[str, Any] = kwargs["event"]
    body = _ingest("workspacesettings", event)
    if body is not None:
        _enqueue(_studios_in(body["metadata"]["namespace"]))
