"""Resync: LIST every watched kind and make the store match (client-go's informers call this
Replace).

kopf (re)lists a resource when it starts watching it and whenever a watch cannot continue (410
Gone after compaction or a long outage, an API server restart): the listing re-announces what
exists (events of type None) but never what was deleted in between. So when listing events come,
a resync runs once they settle and drops what is gone; without it a pod deleted while the operator
was starting, or while the API server was unreachable, would stay in the store and its owner would
wait for it forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .. import kube
from .kinds import WatchedKind
from .queue import WorkQueue
from .store import Body, Key, Store, resource_version

log = logging.getLogger(__name__)

QUIET = 1.0  # seconds without listing events before resyncing
MAX_DELAY = 10.0  # ... but no later than this after the first one
LIST_PAGE = 500


class Resync:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        kinds: Sequence[WatchedKind],
        affected: Callable[[str, Body, bool], list[Key]],
        primary: str,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.store, self.queue, self.kinds = store, queue, kinds
        self.affected = affected
        self.primary = primary  # the kind whose keys the workers reconcile
        self.namespaces = list(namespaces)  # listed one by one (namespaced RBAC); none: all at once
        self._timer: asyncio.TimerHandle | None = None
        self._first = 0.0
        self._task: asyncio.Task[None] | None = None
        self._again = False

    async def run(self, why: str = "", queue_all: bool = False) -> None:
        """LIST every kind; keep newer versions, drop what no longer exists (and is older than
        the listing), then queue the keys concerned: those whose objects changed or vanished, or
        every key when `queue_all` (start-up and HA takeover: everything is looked at once). A
        newer version stored here must queue its keys now: its watch event, when it comes,
        carries a version the store holds already and is skipped as an echo."""
        touched: list[Key] = []
        changed = dropped = 0
        for watched in self.kinds:
            try:
                listed, list_rv, news = await self._load(watched, queue_all)
            except kube.ApiError as exc:
                log.warning("resync: could not list %s (%s); relying on the watch", watched.plural, exc)
                continue
            changed += len(news)
            touched.extend(news)
            gone, concerned = self._drop_unlisted(watched.plural, listed, list_rv)
            dropped += gone
            touched.extend(concerned)
        if why:
            log.info("resync %s: %d objects changed, %d no longer exist", why, changed, dropped)
        for key in touched:
            self.queue.add(key)
        if queue_all:
            for key, _uid, _version in self.store.versions(self.primary):
                self.queue.add(key)

    async def _load(self, watched: WatchedKind, queue_all: bool) -> tuple[set[Key], int, list[Key]]:
        """Store what a LIST returns: (what was listed, the LIST's version, the keys of changes)."""
        listed: set[Key] = set()
        list_rv = 0
        touched: list[Key] = []
        # In pages: a whole LIST of thousands of objects (managedFields included) parsed at once
        # would set the process's memory high-water mark for good.
        async for page in self._scoped_pages(watched):
            list_rv = min(list_rv, resource_version(page)) if list_rv else resource_version(page)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", watched.api_version)
                item.setdefault("kind", watched.kind)
                meta = item["metadata"]
                listed.add((meta.get("namespace") or "", meta["name"]))
                if self.store.holds(watched.plural, item):
                    continue
                if self.store.put(watched.plural, item) and not queue_all:
                    touched.extend(self.affected(watched.plural, item, False))
        return listed, list_rv, touched

    async def _scoped_pages(self, watched: WatchedKind) -> AsyncIterator[dict[str, Any]]:
        """All namespaces at once, or each watched namespace (with namespaced RBAC)."""
        scopes: list[str | None] = [*self.namespaces] if watched.kind not in kube.CLUSTER_SCOPED else []
        for namespace in scopes or [None]:
            async for page in _pages(watched.api_version, watched.kind, watched.label_selector, namespace):
                yield page

    def _drop_unlisted(self, plural: str, listed: set[Key], list_rv: int) -> tuple[int, list[Key]]:
        """Forget what the LIST no longer has: (how many, the keys concerned)."""
        dropped = 0
        touched: list[Key] = []
        for key, uid, rv in self.store.versions(plural):
            if key not in listed and (rv < list_rv or not list_rv):
                body = self.store.get(plural, key)
                self.store.remove(plural, key, uid)
                dropped += 1
                if body is not None:
                    touched.extend(self.affected(plural, body, True))
        return dropped, touched

    def listing_seen(self) -> None:
        """A listing event: (re)start the quiet-period timer of the next resync."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is None:
            self._first = now
        else:
            self._timer.cancel()
        delay = max(0.0, min(QUIET, self._first + MAX_DELAY - now))
        self._timer = loop.call_later(delay, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._task is not None and not self._task.done():
            self._again = True  # one at a time; run once more when this one ends
            return
        self._task = asyncio.create_task(self._repeat(), name="resync")

    async def _repeat(self) -> None:
        while True:
            self._again = False
            try:
                await self.run("after a relisting")
            except Exception:
                log.exception("resync failed")
            if not self._again:
                return


async def _pages(
    api_version: str, kind: str, selector: str | None, namespace: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """One consistent LIST (every page has the first page's resourceVersion), page by page."""
    query = {"limit": str(LIST_PAGE)}
    if selector:
        query["labelSelector"] = selector
    path = kube.path_for(api_version, kind, namespace)
    while True:
        page: dict[str, Any] = await kube.request("GET", path, query=query)
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        query["continue"] = token
