"""Work distribution: a coalescing work queue with per-key serialisation, one deadline scheduler
(a heap) for lifespans and retries, and the workers that drain the queue.

Reconciliation is level-based: a key in the queue means "look at this object again", however many
events caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from .store import Key

log = logging.getLogger(__name__)


class Later(enum.Enum):
    """What a reconcile returns to be looked at again once nothing else waits (see WorkQueue)."""

    LATER = "later"


LATER = Later.LATER


class WorkQueue:
    """Coalescing queue: a key queued many times is processed once; never twice at the same time.

    Two lanes. Keys are handed out first come first served from the first; the second holds
    keys a reconcile put off while others waited (under a burst of starts, a studio's grant and
    status wait until every queued studio has its pod) and releases them once the first lane is
    idle: nothing queued in it, none of its keys in progress. An `add` with `promote` (the studio
    itself changed, a deadline fell due) moves a put-off key to the first lane; other adds (its
    pod's events) leave it where it is.
    """

    def __init__(self) -> None:
        self._now: deque[Key] = deque()
        self._pending: set[Key] = set()  # the keys in _now
        self._held: dict[Key, None] = {}  # put off, not released yet (insertion-ordered)
        self._ready: deque[Key] = deque()  # put off and released; promoted ones are skipped
        self._ready_keys: set[Key] = set()
        self._available = asyncio.Semaphore(0)  # one per key in _now and _ready_keys
        self._active: set[Key] = set()
        self._first: set[Key] = set()  # active keys taken from the first lane
        self._dirty: dict[Key, bool] = {}  # added while active -> whether to promote
        self.on_drained: Callable[[], None] | None = None  # called when a key is done and none waits

    def add(self, key: Key, promote: bool = True) -> None:
        if key in self._active:
            self._dirty[key] = self._dirty.get(key, False) or promote
        elif key in self._pending or (not promote and (key in self._held or key in self._ready_keys)):
            return
        elif key in self._ready_keys:  # released and counted: moves without a new release
            self._ready_keys.discard(key)
            self._pending.add(key)
            self._now.append(key)
        else:
            self._held.pop(key, None)
            self._pending.add(key)
            self._now.append(key)
            self._available.release()

    async def get(self) -> Key:
        await self._available.acquire()
        if self._now:
            key = self._now.popleft()
            self._pending.discard(key)
            self._first.add(key)
        else:
            key = self._ready.popleft()
            while key not in self._ready_keys:
                key = self._ready.popleft()
            self._ready_keys.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key, later: bool = False) -> None:
        """`later`: the reconcile put the key off; it goes to the second lane, unless it changed
        meanwhile in a way that promotes it."""
        self._active.discard(key)
        self._first.discard(key)
        promote = self._dirty.pop(key, None)
        if promote or (promote is not None and not later):
            self.add(key)
        elif later:
            self._held[key] = None
        if not self._now and not self._first:
            self._release_held()
        if not self._pending and self.on_drained is not None:
            self.on_drained()

    def _release_held(self) -> None:
        """The first lane is idle: the put-off keys may be served."""
        for held in self._held:
            self._ready.append(held)
            self._ready_keys.add(held)
            self._available.release()
        self._held.clear()

    def __len__(self) -> int:
        return len(self._pending) + self.put_off() + len(self._active)

    def waiting(self) -> int:
        """Keys queued in the first lane and not yet taken by a worker."""
        return len(self._pending)

    def put_off(self) -> int:
        """Keys in the second lane."""
        return len(self._held) + len(self._ready_keys)


class Scheduler:
    """One task, one heap: wakes at the earliest deadline and queues that key.

    Each key has at most one live deadline (the latest `at` call replaces it), so thousands of
    running studios cost one sleeping task and a heap entry each.
    """

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue
        self._heap: list[tuple[float, int, Key]] = []
        self._live: dict[Key, tuple[float, int]] = {}
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def at(self, key: Key, when: float) -> None:
        """Queue `key` at wall-clock time `when` (epoch seconds), replacing an earlier plan."""
        current = self._live.get(key)
        if current is not None and abs(current[0] - when) < 0.001:
            return
        entry = (when, next(self._counter))
        self._live[key] = entry
        heapq.heappush(self._heap, (when, entry[1], key))
        if self._heap[0][1] == entry[1]:
            self._wake.set()

    def cancel(self, key: Key) -> None:
        self._live.pop(key, None)

    def deadline(self, key: Key) -> float | None:
        entry = self._live.get(key)
        return entry[0] if entry else None

    def __len__(self) -> int:
        return len(self._live)

    async def run(self) -> None:
        while True:
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                when, seq, key = heapq.heappop(self._heap)
                if self._live.get(key) == (when, seq):
                    del self._live[key]
                    self._queue.add(key)
            # Drop cancelled entries lazily so the heap does not grow without bound.
            if len(self._heap) > 2 * len(self._live) + 1024:
                self._heap = [(w, s, k) for (w, s, k) in self._heap if self._live.get(k) == (w, s)]
                heapq.heapify(self._heap)
            timeout = (self._heap[0][0] - time.time()) if self._heap else 3600.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(timeout, 3600.0)))


async def run_workers(
    queue: WorkQueue,
    reconcile: Callable[[Key], Awaitable[float | Later | None]],
    scheduler: Scheduler,
    workers: int,
    active: asyncio.Event | None = None,
) -> None:
    """`reconcile` returns None when done, seconds after which to look again (retry/backoff), or
    LATER to be looked at again once no other key waits."""
    failures: dict[Key, int] = defaultdict(int)

    async def worker() -> None:
        while True:
            if active is not None:
                await active.wait()  # a passive HA replica holds its keys until it may act
            key = await queue.get()
            again: float | Later | None = None
            try:
                again = await reconcile(key)
                failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures[key] += 1
                again = min(0.5 * 2 ** failures[key], 60.0)
                log.exception(
                    "reconcile of %s/%s failed (attempt %d); retrying in %.1fs",
                    key[0],
                    key[1],
                    failures[key],
                    again,
                )
            finally:
                # The retry first: what `done` sets off (`on_drained`) may bring it forward.
                if isinstance(again, float | int):
                    scheduler.at(key, time.time() + again)
                queue.done(key, later=again is LATER)

    await asyncio.gather(*(worker() for _ in range(workers)))
