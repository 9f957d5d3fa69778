"""kopf watch handlers, one per kind of the table in studio/watched.py: each hands its events to
the runtime (kept in kopf's memo by the start-up handler), which updates the store and queues the
studios the change concerns.

Only `@kopf.on.event` is used here, so kopf never writes to these objects (no diff-base or
progress annotations, no kopf finalizers): every write the operator makes is the controller's.

The handlers are `async` on purpose: kopf runs synchronous handlers in a thread pool, and the
store and the work queue (an asyncio.Queue) belong to the event loop's thread. From threads, a
queued key could be lost (a race between `add` and `done`) or wake no worker, and a store write
could break an iteration in the loop ("dictionary changed size during iteration").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from ..controller import WatchedKind
from ..studio.watched import WATCHED

Handler = Callable[..., Awaitable[None]]


def _handler(watched: WatchedKind) -> Handler:
    async def handler(event: dict[str, Any], memo: Any, **_: Any) -> None:
        memo.runtime.handle(watched.plural, event)

    handler.__name__ = handler.__qualname__ = f"{watched.name}_event"
    return handler


def _register(watched: WatchedKind) -> Handler:
    handler = _handler(watched)
    kopf.on.event(watched.api_version, watched.plural, labels=watched.selector)(handler)
    return handler


HANDLERS = {watched.name: _register(watched) for watched in WATCHED}
globals().update({h.__name__: h for h in HANDLERS.values()})  # studio_event, pod_event, ...
