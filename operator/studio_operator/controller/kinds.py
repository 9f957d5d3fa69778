"""What a controller watches, declared once per kind: this table drives its watches and listings
(controller/watch.py, resync.py), their label selectors, what the store keeps, and which keys a
change of that kind queues."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .store import Body, Key, Store, StorePolicy

# The keys to look at again after a change of `body` (`deleted`: the change was its deletion).
Affected = Callable[[Store, Body, bool], list[Key]]


def _nothing(_store: Store, _body: Body, _deleted: bool) -> list[Key]:
    return []


@dataclass(frozen=True)
class WatchedKind:
    name: str  # a short name for logs
    plural: str  # the API resource, and the store's name for the kind
    api_version: str
    kind: str
    selector: dict[str, str] | None = None  # labels a watched object must carry
    affected: Affected = _nothing
    compact: bool = False  # kept as compact JSON (many objects, read by key or group)
    slim: Callable[[Body], Body] | None = None  # what of a body is kept (never written back)
    tally: Callable[[Body], str | None] | None = None  # counted without parsing bodies
    group_of: Callable[[Body], str | None] | None = None  # what a reconcile reads together (Store.group)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def label_selector(self) -> str | None:
        if not self.selector:
            return None
        return ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))


def store_policy(kinds: Sequence[WatchedKind]) -> StorePolicy:
    by_plural = {k.plural: k for k in kinds}

    def slim(plural: str, body: Body) -> Body:
        watched = by_plural.get(plural)
        return watched.slim(body) if watched is not None and watched.slim is not None else body

    def tally(plural: str, body: Body) -> str | None:
        watched = by_plural.get(plural)
        return watched.tally(body) if watched is not None and watched.tally is not None else None

    return StorePolicy(
        slim=slim,
        compact=frozenset(k.plural for k in kinds if k.compact),
        tally=tally if any(k.tally for k in kinds) else None,
        groups={k.plural: k.group_of for k in kinds if k.group_of is not None},
    )
