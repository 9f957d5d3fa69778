"""One controller's runtime, wired once: the store and its watched kinds, the coalescing queue,
the deadline scheduler, resync, the leader gate, the Event lane and the workers.

Its watches (one per kind and scope) hand every event to `handle`: the store is updated and the
keys the change concerns are queued; workers take keys off the queue and reconcile them while the
gate is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from .events import EventLane
from .gate import Gate
from .kinds import WatchedKind, store_policy
from .queue import Later, Scheduler, WorkQueue, run_workers
from .resync import Resync
from .store import Body, Key, Store
from .watch import Reflector

# at shutdown, how long waiting Events may take to go out (well within the pod's grace period)
EVENT_FLUSH_SECONDS = 5.0

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, kinds: Sequence[WatchedKind], primary: str, namespaces: Sequence[str] = ()) -> None:
        """`primary`: the kind whose keys are reconciled; `namespaces`: the watched ones (none:
        the whole cluster)."""
        self.kinds = {k.plural: k for k in kinds}
        self.primary = primary
        self.store = Store(store_policy(kinds))
        self.queue = WorkQueue()
        self.scheduler = Scheduler(self.queue)
        self.resync = Resync(self.store, self.queue, self.affected, primary, namespaces)
        self.gate = Gate()
        self.events = EventLane()
        self.reflectors = [
            Reflector(kind, scope, self.resync, self.handle)
            for kind in kinds
            for scope in self.resync.scopes(kind)
        ]
        self._tasks: list[asyncio.Task[Any]] = []

    def watch(self) -> None:
        """Start the watches (standby replicas too: their stores stay current for a takeover)."""
        for reflector in self.reflectors:
            self.spawn(reflector.run(), f"watch {reflector.name}")

    async def synced(self) -> None:
        """Wait until every watch has its first listing in the store."""
        await asyncio.gather(*(r.synced.wait() for r in self.reflectors))

    def relists(self) -> int:
        return sum(r.relists for r in self.reflectors)

    def affected(self, plural: str, body: Body, deleted: bool) -> list[Key]:
        watched = self.kinds.get(plural)
        return watched.affected(self.store, body, deleted) if watched is not None else []

    def handle(self, plural: str, event: dict[str, Any]) -> None:
        body = self.ingest(plural, event)
        if body is not None:
            # A change of the studio itself brings a put-off key forward; its pod's do not.
            promote = plural == self.primary
            for key in self.affected(plural, body, event.get("type") == "DELETED"):
                self.queue.add(key, promote)

    def ingest(self, plural: str, event: dict[str, Any]) -> Body | None:
        """Update the store; returns the body (also for deletions), or None when there is nothing
        new to look at: not ready yet, a version the store already holds (the echo of the
        operator's own write, whose response it stored; what a LIST loaded), or the
        deletion of an object the reconciler already dropped after deleting it."""
        body: Body | None = event.get("object")
        if not body:
            return None
        meta = body.get("metadata") or {}
        if event.get("type") == "DELETED":
            key = (meta.get("namespace") or "", meta["name"])
            known = self.store.has(plural, key)
            self.store.remove(plural, key, meta.get("uid"))  # also when unknown: never stored later
            if not known:
                return None
        elif self.store.holds(plural, body) or not self.store.put(plural, body):
            return None
        return body

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def start(self, reconcile: Callable[[Key], Awaitable[float | Later | None]], workers: int) -> None:
        self.spawn(self.scheduler.run(), "scheduler")
        self.spawn(run_workers(self.queue, reconcile, self.scheduler, workers, self.gate.active), "workers")

    async def cancel(self, name: str) -> None:
        """Stop one task (by the name it was spawned with) and wait for it."""
        tasks = [t for t in self._tasks if t.get_name() == name]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.events.flush(EVENT_FLUSH_SECONDS)  # the workers are gone: no new ones
