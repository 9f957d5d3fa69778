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


def test_events_wait_while_the_controller_is_busy_but_not_for_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a burst the writes sessions wait for go first: an Event is posted once the controller
    is no longer busy, or after HOLD_SECONDS at the latest."""
    posted: list[tuple[str, float]] = []

    async def request(method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        posted.append((body["reason"], loop_time()))
        return body  # type: ignore[no-any-return]

    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    monkeypatch.setattr(kube, "request", request)
    monkeypatch.setattr(events, "PAUSE_SECONDS", 0.01)
    studio = {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {"name": "s", "namespace": "n"},
    }

    async def main() -> None:
        lane = events.EventLane()
        busy = [True]
        lane.busy = lambda: busy[0]
        lane.post(studio, "Normal", "Held", "m")
        await asyncio.sleep(0.1)
        assert posted == []  # still busy
        busy[0] = False
        await asyncio.gather(*lane._tasks)
        assert [reason for reason, _ in posted] == ["Held"]

        monkeypatch.setattr(events, "HOLD_SECONDS", 0.05)
        busy[0] = True
        t0 = loop_time()
        lane.post(studio, "Normal", "Overdue", "m")
        await asyncio.gather(*lane._tasks)
        reason, at = posted[-1]
        assert reason == "Overdue" and 0.05 <= at - t0 < 1.0

    asyncio.run(main())
