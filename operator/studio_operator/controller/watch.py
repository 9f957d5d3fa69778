"""Watches: one per watched kind and scope (the whole cluster, or each watched namespace), each
feeding the runtime. LIST, then WATCH from the listing's resourceVersion (with bookmarks); a watch
the server ends is resumed from the last version seen, and a stream that breaks, or a version the
server no longer has (410 Gone after compaction or a restart), lists again and drops what vanished
meanwhile (client-go's reflector).

Not kopf's watches: kopf gives every object a task and a queue of its own and every event a
handler invocation with its causes and loggers, which was about 40% of the operator's CPU at
scale; here an event is parsed, stored and its keys queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .. import kube
from .kinds import WatchedKind
from .resync import Resync

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server ends each watch after this; it is resumed at once
RETRY_MIN, RETRY_MAX = 0.5, 30.0

Handle = Callable[[str, dict[str, Any]], None]


class Gone(Exception):
    """The watch's resourceVersion is no longer available: list again."""


class Reflector:
    def __init__(self, watched: WatchedKind, namespace: str | None, resync: Resync, handle: Handle) -> None:
        self.watched = watched
        self.namespace = namespace
        self.resync = resync
        self.handle = handle
        self.synced = asyncio.Event()  # the first listing is in the store
        self.relists = 0

    @property
    def name(self) -> str:
        return f"{self.watched.name}@{self.namespace or '*'}"

    async def run(self) -> None:
        version: str | None = None
        delay = RETRY_MIN
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                delay = RETRY_MIN
            except Gone:
                version = None
            except (kube.ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                # A broken stream may have lost events: list again once the server answers.
                log.warning("watch %s interrupted (%s); listing again in %.1fs", self.name, exc, delay)
                version = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _list(self) -> str:
        initial = not self.synced.is_set()
        version = await self.resync.relist(self.watched, self.namespace, announce=not initial)
        if not initial:
            self.relists += 1
        self.synced.set()
        return version

    async def _watch(self, version: str) -> str:
        watched = self.watched
        query = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if watched.label_selector:
            query["labelSelector"] = watched.label_selector
        path = kube.path_for(watched.api_version, watched.kind, self.namespace)
        async for event in kube.watch(path, query):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise kube.ApiError(int(obj.get("code") or 0), str(obj.get("reason", "")), obj)
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind == "BOOKMARK":
                continue
            obj.setdefault("apiVersion", watched.api_version)
            obj.setdefault("kind", watched.kind)
            self.handle(watched.plural, event)
        return version
