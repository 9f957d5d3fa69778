"""Controller machinery: an in-memory object store fed by watches, a coalescing work queue with
per-key serialisation, and one deadline scheduler (a heap) for lifespans and retries.

kopf delivers watch events; reconciliation is level-based over the store: a key in the queue means
"look at this studio again", however many events caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .api.common import MANAGED_BY_KEY, MANAGED_BY_VALUE

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name); cluster-scoped objects use namespace ""


def _int(rv: str | None) -> int:
    try:
        return int(rv or 0)
    except ValueError:
        return 0


def resource_version(body: dict[str, Any]) -> int:
    return _int((body.get("metadata") or {}).get("resourceVersion"))


# Annotations nobody reads from the store: kubectl's copy of the whole applied object.
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_SESSION_OBJECT_KINDS = ("services", "roles", "rolebindings")
# What the reconciler reads of a pod: metadata and status (see resources/podstate.py).
_POD_SPEC_KEPT = ("nodeName",)


def slim(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The part of a body the operator reads. managedFields are half of a typical object's memory
    and a pod's spec most of the rest: dropping them halves the store (at 5,000 studios, hundreds
    of MB). Never written back: every write sends a freshly built object."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations")
    slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if annotations and any(a in annotations for a in _UNREAD_ANNOTATIONS):
        slim_meta["annotations"] = {k: v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
    out = {**body, "metadata": slim_meta}
    if kind == "pods" and "spec" in body:
        spec = body.get("spec") or {}
        out["spec"] = {k: spec[k] for k in _POD_SPEC_KEPT if k in spec}
    elif kind in _SESSION_OBJECT_KINDS and (meta.get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY_VALUE:
        # The operator's own Services, Roles and RoleBindings: it reads whether they exist and their
        # applied-hash annotation, never their spec, rules or subjects (it rebuilds them).
        out = {k: body[k] for k in ("apiVersion", "kind", "roleRef") if k in body}
        out["metadata"] = slim_meta
    return out


# Kinds kept as compact JSON (one per studio or session: thousands at scale, read by key): a
# parsed body costs 5-8 KB of Python objects, its JSON 1-1.5 KB. The others (environments, links,
# bindings, volumes: few, or scanned on every reconcile) stay parsed.
COMPACT_KINDS = frozenset({"studios", "pods", "services", "roles"})
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


class _Entry:
    """A stored object: what the store compares (uid, resourceVersion, phase) plus its body,
    parsed or as compact JSON (see COMPACT_KINDS)."""

    __slots__ = ("body", "phase", "raw", "rv", "uid")

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.uid: str | None = meta.get("uid")
        self.rv: str | None = meta.get("resourceVersion")
        self.phase: str | None = (body.get("status") or {}).get("phase") if kind == "studios" else None
        kept = slim(kind, body)
        self.body: dict[str, Any] | None = None
        self.raw: bytes | None = None
        if kind in COMPACT_KINDS:
            self.raw = _encode(kept).encode()
        else:
            self.body = kept

    def load(self) -> dict[str, Any]:
        if self.raw is not None:
            loaded: dict[str, Any] = json.loads(self.raw)
            return loaded
        assert self.body is not None
        return self.body


class Store:
    """Latest body per (kind, namespace, name), plus a per-namespace index. Bodies are kept slim
    (see `slim`), those of COMPACT_KINDS as JSON: `get` and `items` then return a fresh copy, so
    changing it never changes the store (the other kinds' bodies are shared: do not change them)."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, _Entry]] = defaultdict(dict)
        self._by_ns: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))

    def put(self, kind: str, body: dict[str, Any]) -> bool:
        """Store a body unless an equal-or-newer version is already there. True when stored."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta["name"])
        current = self._objects[kind].get(key)
        if (
            current is not None
            and _int(current.rv) > resource_version(body) > 0
            and current.uid == meta.get("uid")
        ):
            return False
        self._objects[kind][key] = _Entry(kind, body)
        self._by_ns[kind][key[0]].add(key[1])
        return True

    def holds(self, kind: str, body: dict[str, Any]) -> bool:
        """True when this very version (same uid and resourceVersion) is stored already: the watch
        echo of the operator's own write, or a listing of what a LIST already loaded."""
        meta = body.get("metadata") or {}
        current = self._objects[kind].get((meta.get("namespace") or "", meta.get("name", "")))
        if current is None or not meta.get("resourceVersion"):
            return False
        return current.uid == meta.get("uid") and current.rv == meta["resourceVersion"]

    def remove(self, kind: str, key: Key, uid: str | None = None) -> None:
        current = self._objects[kind].get(key)
        if current is None:
            return
        if uid and current.uid not in (None, uid):
            return  # a newer namesake already replaced it
        del self._objects[kind][key]
        self._by_ns[kind][key[0]].discard(key[1])

    def get(self, kind: str, key: Key) -> dict[str, Any] | None:
        entry = self._objects[kind].get(key)
        return entry.load() if entry is not None else None

    def has(self, kind: str, key: Key) -> bool:
        return key in self._objects[kind]

    def names(self, kind: str, namespace: str) -> list[str]:
        return sorted(self._by_ns[kind].get(namespace, ()))

    def items(self, kind: str, namespace: str | None = None) -> Iterable[tuple[Key, dict[str, Any]]]:
        """Bodies of a kind (in one namespace): for scans after rare changes; a compact kind's
        bodies are parsed here, one by one."""
        if namespace is None:
            return [(k, e.load()) for k, e in list(self._objects[kind].items())]
        return [
            ((namespace, n), self._objects[kind][(namespace, n)].load()) for n in self.names(kind, namespace)
        ]

    def versions(self, kind: str) -> list[tuple[Key, str | None, int]]:
        """(key, uid, resourceVersion) of every stored object of a kind, without parsing bodies."""
        return [(k, e.uid, _int(e.rv)) for k, e in list(self._objects[kind].items())]

    def phases(self, kind: str = "studios") -> dict[str, int]:
        """How many studios are in each status.phase ("" for none yet), without parsing bodies."""
        counts: dict[str, int] = defaultdict(int)
        for entry in self._objects[kind].values():
            counts[entry.phase or ""] += 1
        return dict(counts)

    def count(self, kind: str) -> int:
        return len(self._objects[kind])


class WorkQueue:
    """Coalescing queue: a key queued many times is processed once; never twice at the same time."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> Key:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._pending) + len(self._active)


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
    reconcile: Callable[[Key], Awaitable[float | None]],
    scheduler: Scheduler,
    workers: int,
    active: asyncio.Event | None = None,
) -> None:
    """`reconcile` returns None when done, or seconds after which to look again (retry/backoff)."""
    failures: dict[Key, int] = defaultdict(int)

    async def worker() -> None:
        while True:
            if active is not None:
                await active.wait()  # a passive HA replica holds its keys until it may act
            key = await queue.get()
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
                queue.done(key)
            if again is not None:
                scheduler.at(key, time.time() + again)

    await asyncio.gather(*(worker() for _ in range(workers)))
