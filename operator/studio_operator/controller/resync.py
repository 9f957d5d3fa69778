"""Resync: LIST one watched kind in one scope and make the store match (client-go's informers call
this Replace): newer versions are kept, what the listing no longer has is dropped. A relisting
after a watch could not continue (a broken stream, 410 Gone after compaction or an API server
restart) must drop what was deleted in between: without it a pod deleted while the watch was down
would stay in the store and its owner would wait for it forever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .. import kube
from .kinds import WatchedKind
from .queue import WorkQueue
from .store import Body, Key, Store, resource_version

log = logging.getLogger(__name__)

LIST_PAGE = 500


class Resync:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        affected: Callable[[str, Body, bool], list[Key]],
        primary: str,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.store, self.queue = store, queue
        self.affected = affected
        self.primary = primary  # the kind whose keys the workers reconcile
        self.namespaces = list(namespaces)  # listed one by one (namespaced RBAC); none: all at once

    async def relist(self, watched: WatchedKind, namespace: str | None, *, announce: bool) -> str:
        """LIST the kind in the scope into the store; returns the listing's resourceVersion (where
        its watch starts). `announce`: queue the keys of what changed or vanished (a relisting;
        at start-up every key is queued once the first listings are in)."""
        listed, list_rv, version, news = await self._load(watched, namespace, announce)
        gone, concerned = self._drop_unlisted(watched.plural, namespace, listed, list_rv)
        if announce:
            log.info(
                "resync after a relisting of %s: %d objects changed, %d no longer exist",
                watched.plural,
                len(news),
                gone,
            )
            for key in [*news, *concerned]:
                self.queue.add(key)
        return version

    def queue_all(self) -> None:
        """Every key of the primary kind (start-up and HA takeover: everything is looked at once)."""
        for key, _uid, _version in self.store.versions(self.primary):
            self.queue.add(key)

    async def _load(
        self, watched: WatchedKind, namespace: str | None, announce: bool
    ) -> tuple[set[Key], int, str, list[Key]]:
        """Store what a LIST returns: (what was listed, the LIST's version as a number and as the
        server wrote it, the keys of changes)."""
        listed: set[Key] = set()
        list_rv, version = 0, ""
        touched: list[Key] = []
        # In pages: a whole LIST of thousands of objects (managedFields included) parsed at once
        # would set the process's memory high-water mark for good.
        async for page in _pages(watched.api_version, watched.kind, watched.label_selector, namespace):
            if not version:
                list_rv, version = resource_version(page), str(page["metadata"]["resourceVersion"])
            for item in page.get("items") or []:
                item.setdefault("apiVersion", watched.api_version)
                item.setdefault("kind", watched.kind)
                meta = item["metadata"]
                listed.add((meta.get("namespace") or "", meta["name"]))
                if self.store.holds(watched.plural, item):
                    continue
                if self.store.put(watched.plural, item) and announce:
                    touched.extend(self.affected(watched.plural, item, False))
        return listed, list_rv, version, touched

    def _drop_unlisted(
        self, plural: str, namespace: str | None, listed: set[Key], list_rv: int
    ) -> tuple[int, list[Key]]:
        """Forget what the LIST of this scope no longer has: (how many, the keys concerned)."""
        dropped = 0
        touched: list[Key] = []
        for key, uid, rv in self.store.versions(plural):
            if namespace is not None and key[0] != namespace:
                continue
            if key not in listed and (rv < list_rv or not list_rv):
                body = self.store.get(plural, key)
                self.store.remove(plural, key, uid)
                dropped += 1
                if body is not None:
                    touched.extend(self.affected(plural, body, True))
        return dropped, touched

    def scopes(self, watched: WatchedKind) -> list[str | None]:
        """All namespaces at once, or each watched namespace (with namespaced RBAC)."""
        if watched.kind in kube.CLUSTER_SCOPED or not self.namespaces:
            return [None]
        return list(self.namespaces)


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
