"""The Event lane: Events are best effort and never hold up a reconcile. They are posted in the
background, at most IN_FLIGHT at a time, so that a burst (1,000 expiries, each with an Event)
leaves the API server's throughput to the writes that sessions wait for; every one is posted.

Waiting Events sit in a queue as the few fields an Event names, drained by at most IN_FLIGHT
poster tasks: a task per Event held ≈2 KB each while it waited (a burst keeps 1,000 waiting)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, NamedTuple

from .. import kube

log = logging.getLogger(__name__)

IN_FLIGHT = 4
# the fields of the involved object that an Event records (kube.post_event)
_IDENTITY = ("name", "namespace", "uid", "resourceVersion")


class _Pending(NamedTuple):
    involved: dict[str, Any]
    type_: str
    reason: str
    message: str


class EventLane:
    def __init__(self, in_flight: int = IN_FLIGHT) -> None:
        self._in_flight = in_flight
        self._waiting: deque[_Pending] = deque()
        self._posters = 0  # counted by hand: a finished task leaves a set only a loop turn later
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until each is done

    def post(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post in the background; a snapshot of `involved`'s identity is taken now."""
        meta = involved["metadata"]
        snapshot = {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "metadata": {k: meta[k] for k in _IDENTITY if k in meta},
        }
        self._waiting.append(_Pending(snapshot, type_, reason, message))
        if self._posters < self._in_flight:
            self._posters += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def flush(self, timeout: float) -> int:
        """On shutdown, once nothing posts any more: give the waiting Events up to `timeout`
        seconds to go out (a rolling update must not drop a burst's `SessionExpired` Events).
        Returns how many were left."""
        if self._tasks:  # each poster drains the queue before it ends
            await asyncio.wait(set(self._tasks), timeout=timeout)
        left = len(self._waiting) + self._posters
        if left:
            log.warning("shutting down with %d Events not posted", left)
            self._waiting.clear()  # abandoned: the posters stop after the request they are in
        return left

    async def _drain(self) -> None:
        try:
            while self._waiting:
                event = self._waiting.popleft()
                try:
                    await kube.post_event(event.involved, event.type_, event.reason, event.message)
                except Exception:  # post_event logs refusals; anything else must not stop the lane
                    log.exception("could not post event %s", event.reason)
        finally:
            self._posters -= 1
