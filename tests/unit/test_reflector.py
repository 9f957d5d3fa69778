"""The watches (controller/watch.py): LIST, WATCH from the listing's version, resume after the
server ends a watch, list again (dropping what vanished) after 410 Gone or a broken stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from studio_operator import kube
from studio_operator.controller import Runtime
from studio_operator.controller import watch as watch_module
from studio_operator.studio.watched import PRIMARY, WATCHED


def pod(name: str, rv: str, studio: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {"studios.dev/studio": studio, "app.kubernetes.io/managed-by": "studio-operator"},
        }
    }


class FakeServer:
    """LIST answers and a script of watch streams (each a list of events, or an exception)."""

    def __init__(self, listings: list[list[dict[str, Any]]], streams: list[Any]) -> None:
        self.listings = listings
        self.streams = streams
        self.watch_queries: list[dict[str, str]] = []
        self.lists = 0
        self.done = asyncio.Event()

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        assert method == "GET" and path == "/api/v1/namespaces/ns/pods", path
        items = self.listings[min(self.lists, len(self.listings) - 1)]
        self.lists += 1
        return {"metadata": {"resourceVersion": str(100 * self.lists)}, "items": items}

    async def watch(self, path: str, query: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        self.watch_queries.append(dict(query))
        if not self.streams:
            self.done.set()
            await asyncio.Event().wait()  # nothing more: hang like a quiet watch
        step = self.streams.pop(0)
        if isinstance(step, Exception):
            raise step
        for event in step:
            yield event


def test_list_watch_resume_relist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "RETRY_MIN", 0.01)
    server = FakeServer(
        listings=[
            [pod("a-pod", "10", "a"), pod("b-pod", "11", "b")],
            [pod("b-pod", "11", "b")],  # a-pod was deleted while the watch was down
            [pod("b-pod", "11", "b"), pod("c-pod", "150", "c")],
        ],
        streams=[
            [
                {"type": "MODIFIED", "object": pod("b-pod", "120", "b")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "130"}}},
            ],  # the server ends the watch: resumed from the bookmark's version
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}],
            aiohttp.ClientPayloadError("stream broken"),
        ],
    )
    monkeypatch.setattr(kube, "request", server.request)
    monkeypatch.setattr(kube, "watch", server.watch)

    async def main() -> None:
        runtime = Runtime([w for w in WATCHED if w.plural == "pods"], PRIMARY, namespaces=["ns"])
        runtime.watch()
        await asyncio.wait_for(runtime.synced(), 5)
        await asyncio.wait_for(server.done.wait(), 5)
        store, queue = runtime.store, runtime.queue
        assert store.get("pods", ("ns", "a-pod")) is None  # dropped by the relisting after 410
        assert store.get("pods", ("ns", "c-pod")) is not None  # listed after the broken stream
        queued = set()
        while len(queue):
            key = await queue.get()
            queued.add(key)
            queue.done(key)
        # b: its MODIFIED event; a: vanished (seen by the relisting); c: new in a relisting
        assert queued == {("ns", "b"), ("ns", "a"), ("ns", "c")}
        assert runtime.relists() == 2
        versions = [q["resourceVersion"] for q in server.watch_queries]
        assert versions == ["100", "130", "200", "300"], versions
        assert all(
            q["labelSelector"] == "app.kubernetes.io/managed-by=studio-operator" for q in server.watch_queries
        )
        await runtime.stop()

    asyncio.run(main())
