"""Shared pieces of the benchmark harness: constants, errors, statistics, Prometheus text, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
for _directory in (ROOT / "operator", ROOT / "hack"):
    if str(_directory) not in sys.path:
        sys.path.insert(0, str(_directory))


T = TypeVar("T")

GROUP_VERSION = "studios.dev/v1alpha1"
RUN_LABEL = "studio-bench/run"
POOL_LABEL = "studio-bench/pool"
STUDIO_LABEL = "studios.dev/studio"
MANAGED_BY = "app.kubernetes.io/managed-by"
LIFESPAN_HOURS = 8
IMAGE = "registry.invalid/studio-bench/notebook:1"
PORT = 8888
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")
GLOBAL_WRITES = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
GLOBAL_READS = ("GET", "LIST", "WATCH")
REQUIRED_KEYS = (
    "studios",
    "start_ratio",
    "start_overhead_p50_ms",
    "writes_per_start",
    "expiry_p99_s",
    "rss_mb",
)


class BenchError(Exception):
    pass


class Relist(Exception):
    """The watch ended with an ERROR event (e.g. 410 Gone): list again."""


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# small helpers


def pct(values: Sequence[float], q: float) -> float | None:
    """Percentile with linear interpolation (q in 0..1); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str, prefixes: Iterable[str]) -> list[tuple[str, dict[str, str], float]]:
    """(metric, labels, value) of the samples whose names start with a prefix (Prometheus text format)."""
    wanted = tuple(prefixes)
    out: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), value))
    return out


async def bounded(concurrency: int, items: Sequence[T], fn: Callable[[T], Awaitable[Any]]) -> list[Any]:
    """fn(item) for every item, at most `concurrency` at a time (the harness's one concurrency knob)."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> Any:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


class Signal:
    """Set from a watch thread whenever its collection changed; awaited on the event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def fire(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


async def wait_until(
    pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.2, signal: Signal | None = None
) -> None:
    """Until pred() holds: re-checked on every change `signal` reports (else every `interval`)."""
    deadline = time.monotonic() + timeout
    while not pred():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        if signal is None:
            await asyncio.sleep(min(interval, remaining))
            continue
        signal.event.clear()
        if pred():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.event.wait(), min(interval, remaining))


def api_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
) -> str:
    parts = ["/api/v1" if api_version == "v1" else f"/apis/{api_version}"]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)
