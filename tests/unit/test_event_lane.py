"""Events are best effort: at most controller.events.IN_FLIGHT are posted at a time, so that a burst of
them (1,000 expiries) does not take the API server's throughput from the writes sessions wait for;
every one is still posted, with the object's identity as it was when posted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from studio_operator import kube
from studio_operator.controller import events


def _studio(rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {
            "name": "s",
            "namespace": "n",
            "uid": "u-1",
            "resourceVersion": rv,
            "labels": {"team": "a"},
            "managedFields": [{"manager": "kubectl"}],
        },
    }


async def _settle(lane: events.EventLane) -> None:
    for _ in range(1000):
        if not lane.waiting and not lane._tasks:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the lane never drained")


def test_events_are_posted_a_few_at_a_time_and_all_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = 0
    most = 0
    posted: list[dict[str, Any]] = []

    async def request(method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        posted.append(body)
        return body  # type: ignore[no-any-return]

    monkeypatch.setattr(kube, "request", request)

    async def main() -> None:
        lane = events.EventLane()
        studio = _studio("7")
        for i in range(40):
            lane.post(studio, "Normal", f"R{i}", "m")
        # the object changes after posting: the Event names it as it was
        studio["metadata"]["resourceVersion"] = "8"
        await _settle(lane)
        # a later Event, once every poster is done, still goes out
        lane.post(studio, "Warning", "Late", "m")
        await _settle(lane)

    asyncio.run(main())
    assert sorted(e["reason"] for e in posted) == sorted([f"R{i}" for i in range(40)] + ["Late"])
    assert most == events.IN_FLIGHT
    first = posted[0]["involvedObject"]
    assert first == {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "name": "s",
        "namespace": "n",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert posted[-1]["involvedObject"]["resourceVersion"] == "8"
    assert posted[-1]["type"] == "Warning"


def test_an_unexpected_failure_does_not_stop_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[str] = []

    async def post_event(involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        await asyncio.sleep(0)
        if reason == "Boom":
            raise RuntimeError("connection reset")
        posted.append(reason)

    monkeypatch.setattr(kube, "post_event", post_event)

    async def main() -> None:
        lane = events.EventLane(in_flight=1)
        for reason in ("A", "Boom", "B", "C"):
            lane.post(_studio("1"), "Normal", reason, "m")
        await _settle(lane)

    asyncio.run(main())
    assert posted == ["A", "B", "C"]


def test_shutdown_gives_waiting_events_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A graceful shutdown (rolling update) posts what is waiting, within a bound: a burst's
    SessionExpired Events are not dropped, and an API server that never answers does not hold
    the shutdown."""
    posted: list[str] = []
    hang = asyncio.Event()

    async def post_event(involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if reason == "Hang":
            await hang.wait()
        await asyncio.sleep(0.01)
        posted.append(reason)

    monkeypatch.setattr(kube, "post_event", post_event)

    async def main() -> tuple[int, int]:
        lane = events.EventLane(in_flight=2)
        for i in range(10):
            lane.post(_studio("1"), "Normal", f"E{i}", "m")
        drained = await lane.flush(timeout=5)
        stuck = events.EventLane(in_flight=1)
        for reason in ("Hang", "Late1", "Late2"):
            stuck.post(_studio("1"), "Normal", reason, "m")
        left = await stuck.flush(timeout=0.2)
        assert stuck.waiting == 0  # abandoned: nothing is posted after the shutdown's bound
        hang.set()
        await _settle(stuck)
        return drained, left

    drained, left = asyncio.run(main())
    assert drained == 0
    assert left == 3  # "Hang" in flight, two waiting behind it
    assert sorted(posted) == sorted([f"E{i}" for i in range(10)] + ["Hang"])
