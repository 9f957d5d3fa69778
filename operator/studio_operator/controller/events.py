"""The Event lane: Events are best effort and never hold up a reconcile. They are posted in the
background, at most IN_FLIGHT at a time, so that a burst (1,000 expiries, each with an Event)
leaves the API server's throughput to the writes that sessions wait for; every one is posted."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import kube

IN_FLIGHT = 4


class EventLane:
    def __init__(self, in_flight: int = IN_FLIGHT) -> None:
        self._in_flight = in_flight
        self._lane: asyncio.Semaphore | None = None  # made on the loop that first posts
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if self._lane is None:
            self._lane = asyncio.Semaphore(self._in_flight)
        async with self._lane:
            await kube.post_event(involved, type_, reason, message)

    def post(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post in the background; a snapshot of `involved`'s identity is taken now."""
        snapshot = {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "metadata": dict(involved["metadata"]),
        }
        task = asyncio.create_task(self.send(snapshot, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
