"""The Event lane: Events are best effort and never hold up a reconcile. They are posted in the
background, at most IN_FLIGHT at a time, and each waits (up to HOLD_SECONDS) while the controller
says it is busy with writes that sessions wait for (a burst of starts or expiries), so that those go
first; every one is posted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .. import kube

IN_FLIGHT = 4
HOLD_SECONDS = 30.0  # the longest an Event waits for the burst to end
PAUSE_SECONDS = 0.2  # how often a held Event looks again (only IN_FLIGHT of them look)


def _never() -> bool:
    return False


class EventLane:
    def __init__(self, in_flight: int = IN_FLIGHT) -> None:
        self._in_flight = in_flight
        self._lane: asyncio.Semaphore | None = None  # made on the loop that first posts
        self._tasks: set[asyncio.Task[None]] = set()
        self.busy: Callable[[], bool] = _never  # set by the controller that posts

    async def send(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if self._lane is None:
            self._lane = asyncio.Semaphore(self._in_flight)
        async with self._lane:
            until = time.monotonic() + HOLD_SECONDS
            while self.busy() and time.monotonic() < until:
                await asyncio.sleep(PAUSE_SECONDS)
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
