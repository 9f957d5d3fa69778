"""An in-memory object store fed by watches and LISTs, for any kinds.

What to drop from a body, which kinds to keep as compact JSON and what to tally are the caller's
policy (`StorePolicy`): the store itself knows no kinds.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

Key = tuple[str, str]  # (namespace, name); cluster-scoped objects use namespace ""
Body = dict[str, Any]


def _int(rv: str | None) -> int:
    try:
        return int(rv or 0)
    except ValueError:
        return 0


def resource_version(body: Body) -> int:
    return _int((body.get("metadata") or {}).get("resourceVersion"))


# Fields nobody reads from a store: the API server's field ownership (half of a typical object's
# memory) and kubectl's copy of the whole applied object.
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def without_unread(body: Body) -> Body:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations")
    slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if annotations and any(a in annotations for a in _UNREAD_ANNOTATIONS):
        slim_meta["annotations"] = {k: v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
    return {**body, "metadata": slim_meta}


def _same(_kind: str, body: Body) -> Body:
    return body


@dataclass(frozen=True)
class StorePolicy:
    """`slim(kind, body)`: what is kept of a body (after managedFields are dropped; never written
    back). `compact`: kinds kept as compact JSON (many objects read by key or group: a parsed body costs
    5-8 KB of Python objects, its JSON 1-1.5 KB). `tally(kind, body)`: a value counted per kind
    without parsing bodies (e.g. a phase). `groups[kind](body)`: the group of an object within its
    namespace, or None; a reconcile reads a group (`Store.group`) instead of scanning the kind."""

    slim: Callable[[str, Body], Body] = _same
    compact: frozenset[str] = field(default_factory=frozenset)
    tally: Callable[[str, Body], str | None] | None = None
    groups: Mapping[str, Callable[[Body], str | None]] = field(default_factory=dict)


GONE_MAX = 50_000  # uids of deleted objects remembered (a uid is ≈40 bytes)


class _Entry:
    """A stored object: what the store compares (uid, resourceVersion, tally) plus its body,
    parsed or as compact JSON."""

    __slots__ = ("body", "raw", "rv", "tally", "uid")

    def __init__(self, kind: str, body: Body, policy: StorePolicy) -> None:
        meta = body.get("metadata") or {}
        self.uid: str | None = meta.get("uid")
        self.rv: str | None = meta.get("resourceVersion")
        tally = policy.tally(kind, body) if policy.tally is not None else None
        self.tally: str | None = sys.intern(tally) if tally else tally  # a few values, shared
        kept = policy.slim(kind, without_unread(body))
        self.body: Body | None = None
        self.raw: bytes | None = None
        if kind in policy.compact:
            # a copy of exact size: orjson's own bytes keep its 4 KB output buffer (+30 MB at 2,000 studios)
            self.raw = bytes(memoryview(orjson.dumps(kept)))
        else:
            self.body = kept

    def load(self) -> Body:
        if self.raw is not None:
            loaded: Body = orjson.loads(self.raw)
            return loaded
        assert self.body is not None
        return self.body


class Store:
    """Latest body per (kind, namespace, name), plus a per-namespace index. Bodies of compact kinds
    are handed out as fresh copies, so changing one never changes the store (the other kinds'
    bodies are shared: do not change them)."""

    def __init__(self, policy: StorePolicy | None = None) -> None:
        self.policy = policy or StorePolicy()
        self._objects: dict[str, dict[Key, _Entry]] = defaultdict(dict)
        self._by_ns: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        # per kind with groups: the names in each (namespace, group), and each object's group
        self._groups: dict[str, dict[Key, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._group_of: dict[str, dict[Key, str]] = defaultdict(dict)
        # uids of objects seen deleted: a write's answer that arrives after its object's DELETED
        # event (a pod kwok or a kubelet removes at once) must not bring the object back.
        self._gone: dict[str, None] = {}

    def put(self, kind: str, body: Body) -> bool:
        """Store a body unless an equal-or-newer version is already there, or the object was seen
        deleted. True when stored."""
        meta = body.get("metadata") or {}
        if meta.get("uid") in self._gone:
            return False
        # one string per namespace, not one per object (thousands of keys share a few namespaces)
        key = (sys.intern(meta.get("namespace") or ""), meta["name"])
        current = self._objects[kind].get(key)
        if (
            current is not None
            and _int(current.rv) > resource_version(body) > 0
            and current.uid == meta.get("uid")
        ):
            return False
        self._objects[kind][key] = _Entry(kind, body, self.policy)
        self._by_ns[kind][key[0]].add(key[1])
        rule = self.policy.groups.get(kind)
        if rule is not None:
            self._regroup(kind, key, rule(body))
        return True

    def _regroup(self, kind: str, key: Key, group: str | None) -> None:
        before = self._group_of[kind].get(key)
        if before == group:
            return
        if before is not None:
            self._groups[kind][(key[0], before)].discard(key[1])
            if not self._groups[kind][(key[0], before)]:
                del self._groups[kind][(key[0], before)]
        if group is None:
            del self._group_of[kind][key]
        else:
            self._group_of[kind][key] = group
            self._groups[kind][(key[0], group)].add(key[1])

    def holds(self, kind: str, body: Body) -> bool:
        """True when this very version (same uid and resourceVersion) is stored already: the watch
        echo of the operator's own write, or a listing of what a LIST already loaded."""
        meta = body.get("metadata") or {}
        current = self._objects[kind].get((meta.get("namespace") or "", meta.get("name", "")))
        if current is None or not meta.get("resourceVersion"):
            return False
        return current.uid == meta.get("uid") and current.rv == meta["resourceVersion"]

    def remove(self, kind: str, key: Key, uid: str | None = None) -> None:
        """Forget a deleted object (`uid`: that object, not a newer namesake)."""
        current = self._objects[kind].get(key)
        self._bury(uid or (current.uid if current is not None else None))
        if current is None:
            return
        if uid and current.uid not in (None, uid):
            return  # a newer namesake already replaced it
        del self._objects[kind][key]
        self._by_ns[kind][key[0]].discard(key[1])
        if kind in self.policy.groups:
            self._regroup(kind, key, None)

    def _bury(self, uid: str | None) -> None:
        if uid:
            self._gone[uid] = None
            if len(self._gone) > GONE_MAX:
                del self._gone[next(iter(self._gone))]  # the oldest

    def get(self, kind: str, key: Key) -> Body | None:
        entry = self._objects[kind].get(key)
        return entry.load() if entry is not None else None

    def has(self, kind: str, key: Key) -> bool:
        return key in self._objects[kind]

    def names(self, kind: str, namespace: str) -> list[str]:
        return sorted(self._by_ns[kind].get(namespace, ()))

    def items(self, kind: str, namespace: str | None = None) -> Iterable[tuple[Key, Body]]:
        """Bodies of a kind (in one namespace): for scans after rare changes; a compact kind's
        bodies are parsed here, one by one."""
        if namespace is None:
            return [(k, e.load()) for k, e in list(self._objects[kind].items())]
        return [
            ((namespace, n), self._objects[kind][(namespace, n)].load()) for n in self.names(kind, namespace)
        ]

    def group(self, kind: str, namespace: str, group: str) -> list[Body]:
        """The bodies of one group in a namespace ("" for cluster-scoped kinds), kept as they are
        stored: a pass reads the few objects it needs (the bindings that grant a role, one studio's
        volumes), not every object of the kind (one or more per studio)."""
        if kind not in self.policy.groups:
            raise KeyError(f"{kind} has no groups")
        names = sorted(self._groups[kind].get((namespace, group), ()))
        return [self._objects[kind][(namespace, n)].load() for n in names]

    def versions(self, kind: str) -> list[tuple[Key, str | None, int]]:
        """(key, uid, resourceVersion) of every stored object of a kind, without parsing bodies."""
        return [(k, e.uid, _int(e.rv)) for k, e in list(self._objects[kind].items())]

    def tally(self, kind: str) -> dict[str, int]:
        """How many objects of a kind have each tallied value ("" for none), without parsing."""
        counts: dict[str, int] = defaultdict(int)
        for entry in self._objects[kind].values():
            counts[entry.tally or ""] += 1
        return dict(counts)

    def count(self, kind: str) -> int:
        return len(self._objects[kind])
