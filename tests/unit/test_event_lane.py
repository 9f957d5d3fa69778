"""Events are best effort: at most controller.events.IN_FLIGHT are posted at a time, so that a burst of
them (1,000 expiries) does not take the API server's throughput from the writes sessions wait for;
every one is still posted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from studio_operator import kube
from studio_operator.controller import events


def test_events_are_posted_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = 0
    most = 0
    posted: list[str] = []

    async def request(method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        posted.append(body["reason"])
        return body  # type: ignore[no-any-return]

    monkeypatch.setattr(kube, "request", request)
    studio = {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {"name": "s", "namespace": "n"},
    }

    async def main() -> None:
        lane = events.EventLane()
        await asyncio.gather(*(lane.send(studio, "Normal", f"R{i}", "m") for i in range(40)))

    asyncio.run(main())
    assert sorted(posted) == sorted(f"R{i}" for i in range(40))
    assert most == events.IN_FLIGHT
