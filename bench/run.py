#!/usr/bin/env python3
"""Benchmarks of the studio operator on the local control plane.

One run measures, side by side with a baseline in the same run:

1. start throughput: N studios applied at once until every session pod exists, against the same
   pods and services created directly with the same client and concurrency (``start_ratio``);
2. start latency: sequential single-studio applies until the pod exists, against sequential
   direct pod creations (``start_overhead_p50_ms``/``p99``);
3. API cost: kube-apiserver's own counters (``apiserver_request_total`` by verb, cluster-wide) and,
   attributed to the operator alone, ``apiserver_flowcontrol_dispatched_requests_total`` of
   per-verb FlowSchemas that match the operator's own ServiceAccount (``writes_per_start``, ...);
4. expiry lateness: running studios backdated (``status.session.startedAt``) so that many expire
   at the same instant (``expiry_p99_s``), and a single one (``expiry_single_s``);
5. footprint: the operator's RSS (/proc/<pid>/status VmRSS) and CPU at rest (``rss_mb``);
6. restart: the operator restarted with the studios present until a change made after its start
   is acted on (``restart_s``).

Everything the run creates carries the label ``studio-bench/run`` and is deleted at the end
(``--cleanup`` deletes leftovers of interrupted runs). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parent.parent
for _directory in (ROOT / "operator", ROOT / "hack"):
    if str(_directory) not in sys.path:
        sys.path.insert(0, str(_directory))

from loopback import free_ports, http_get  # noqa: E402  (after the sys.path fix-up above)

from studio_operator import kube  # noqa: E402

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


class _Relist(Exception):
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


# ---------------------------------------------------------------------------------------------
# the API: the project's async layer (studio_operator.kube) for every timed request


class Api:
    """Thin wrapper over studio_operator.kube that counts the harness's own requests by verb."""

    def __init__(self, kubeconfig: Path, api_workers: int) -> None:
        kube.WORKERS = api_workers  # the operator reads STUDIO_API_WORKERS the same way
        kube.init(str(kubeconfig))
        self.kubeconfig = kubeconfig
        self.sent: Counter[str] = Counter()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        retries: int = 3,
    ) -> Any:
        self.sent[method] += 1
        return await kube.request(method, path, body, query=query, content_type=content_type, retries=retries)

    async def create(self, path: str, body: dict[str, Any], *, exist_ok: bool = False) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.call("POST", path, body)
            return result
        except kube.ApiError as exc:
            if exist_ok and exc.status == 409:
                return {}
            raise

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.call("GET", path)
            return result
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH", path, patch, content_type="application/merge-patch+json"
        )
        return result

    async def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH",
            path,
            body,
            query={"fieldManager": "studio-bench", "force": "true"},
            content_type="application/apply-patch+yaml",
        )
        return result

    async def delete(self, path: str, *, query: dict[str, str] | None = None) -> bool:
        try:
            await self.call("DELETE", path, {"propagationPolicy": "Background"}, query=query, retries=1)
            return True
        except kube.ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise

    def _raw_get(self, path: str, timeout: float) -> str:
        api = kube.client()
        _, url, headers, _, _ = api.param_serialize(
            "GET",
            path,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        resp = api.rest_client.pool_manager.request("GET", url, headers=headers, timeout=timeout)
        if resp.status != 200:
            raise BenchError(f"GET {path}: {resp.status}")
        return bytes(resp.data).decode(errors="replace")

    async def raw_get(self, path: str, timeout: float = 30.0) -> str:
        self.sent["GET"] += 1
        return await asyncio.get_running_loop().run_in_executor(None, self._raw_get, path, timeout)


# ---------------------------------------------------------------------------------------------
# watches: one thread per collection, timestamps taken when an event arrives


class Watcher:
    """LIST then WATCH one collection (its own connection pool); on_event(type, obj, time)."""

    def __init__(
        self,
        kubeconfig: Path,
        path: str,
        selector: str | None,
        on_event: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        self.api = ApiClient(kube.load_config(str(kubeconfig)))
        self.path = path
        self.selector = selector
        self.on_event = on_event
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.error: str | None = None
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def _request(self, query: dict[str, str], read_timeout: float) -> Any:
        if self.selector:
            query = {**query, "labelSelector": self.selector}
        _, url, headers, _, _ = self.api.param_serialize(
            "GET",
            self.path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        return self.api.rest_client.pool_manager.request(
            "GET",
            url,
            headers=headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5.0, read=read_timeout),
        )

    def _run(self) -> None:
        rv: str | None = None
        while not self.stopped.is_set():
            try:
                if rv is None:
                    resp = self._request({}, 120.0)
                    data = json.loads(resp.data)
                    if resp.status != 200:
                        raise BenchError(f"LIST {self.path}: {resp.status} {data.get('message')}")
                    now = time.time()
                    for item in data.get("items") or []:
                        self.on_event("ADDED", item, now)
                    rv = str(data["metadata"]["resourceVersion"])
                    self.ready.set()
                resp = self._request(
                    {
                        "watch": "1",
                        "resourceVersion": rv,
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": "60",
                    },
                    90.0,
                )
                self._resp = resp
                buf = b""
                for chunk in resp.stream(65536):
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        now = time.time()
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            rv = None  # 410 Gone (or another error): list again
                            raise _Relist
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if event.get("type") != "BOOKMARK":
                            self.on_event(str(event.get("type")), obj, now)
                    if self.stopped.is_set():
                        break
            except _Relist:
                continue
            except Exception as exc:
                if self.stopped.is_set():
                    return
                self.error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)

    def stop(self) -> None:
        self.stopped.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                shutdown = getattr(resp, "shutdown", None)
                if shutdown is not None:
                    shutdown()
                resp.release_conn()
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.api.close()  # type: ignore[no-untyped-call]


class PodTracker:
    """First-seen / Ready / deleted times of pods, per uid, grouped by their studio label."""

    def __init__(self) -> None:
        self.signal = Signal()
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.studio: dict[str, str] = {}

    def on_event(self, typ: str, obj: dict[str, Any], t: float) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid"))
        with self.lock:
            self.seen.setdefault(uid, t)
            self.studio[uid] = (meta.get("labels") or {}).get(STUDIO_LABEL, "")
            if typ == "DELETED":
                self.deleted.setdefault(uid, t)
            else:
                for cond in (obj.get("status") or {}).get("conditions") or []:
                    if cond.get("type") == "Ready" and cond.get("status") == "True":
                        self.ready.setdefault(uid, t)
        self.signal.fire()

    def has(self, table: str, studio: str) -> Callable[[], bool]:
        return lambda: bool(self.first(table, {studio}))

    def first(self, table: str, studios: set[str] | None = None, after: float = 0.0) -> dict[str, float]:
        """studio -> earliest time in `table` (seen/ready/deleted) at or after `after`."""
        with self.lock:
            source = dict(getattr(self, table))
            owner = dict(self.studio)
        out: dict[str, float] = {}
        for uid, t in source.items():
            s = owner.get(uid, "")
            if t >= after and (studios is None or s in studios) and (s not in out or t < out[s]):
                out[s] = t
        return out

    def live(self, studios: set[str] | None = None) -> int:
        with self.lock:
            return sum(
                1
                for u, s in self.studio.items()
                if u not in self.deleted and (studios is None or s in studios)
            )


class StudioTracker:
    """Phase transitions (with arrival times) and the latest body of every studio."""

    def __init__(self) -> None:
        self.signal = Signal()
        self.lock = threading.Lock()
        self.transitions: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.latest: dict[str, dict[str, Any]] = {}

    def on_event(self, typ: str, obj: dict[str, Any], t: float) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        phase = str((obj.get("status") or {}).get("phase") or "")
        with self.lock:
            if typ == "DELETED":
                self.latest.pop(name, None)
            else:
                self.latest[name] = obj
                history = self.transitions[name]
                if not history or history[-1][1] != phase:
                    history.append((t, phase))
        self.signal.fire()

    def in_phase(self, name: str, phase: str) -> Callable[[], bool]:
        return lambda: self.phase_of(name) == phase

    def phase_times(self, names: Iterable[str], phase: str, after: float = 0.0) -> dict[str, float]:
        with self.lock:
            out: dict[str, float] = {}
            for n in names:
                for t, p in self.transitions.get(n, ()):
                    if p == phase and t >= after:
                        out[n] = t
                        break
            return out

    def phase_of(self, name: str) -> str:
        with self.lock:
            return str((self.latest.get(name, {}).get("status") or {}).get("phase") or "")

    def count(self, names: Iterable[str], pred: Callable[[dict[str, Any]], bool]) -> int:
        with self.lock:
            return sum(1 for n in names if n in self.latest and pred(self.latest[n]))


# ---------------------------------------------------------------------------------------------
# the operator process


class Operator:
    """`python -m studio_operator run` as a child process with its own ports, identity and log."""

    def __init__(self, bench: Bench, name: str, namespaces: Sequence[str]) -> None:
        self.bench = bench
        self.name = name
        self.namespaces = list(namespaces)
        self.liveness_port, self.metrics_port = free_ports(2)
        self.log_path = bench.workdir / f"operator-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.profiler: subprocess.Popen[bytes] | None = None
        self.profile_path: Path | None = None
        self.starts = 0

    @property
    def argv(self) -> list[str]:
        cfg = self.bench.cfg
        ns_args = [a for n in self.namespaces for a in ("--namespace", n)]
        return [
            sys.executable,
            "-m",
            "studio_operator",
            "run",
            "--liveness-port",
            str(self.liveness_port),
            "--metrics-port",
            str(self.metrics_port),
            "--webhook-mode",
            "none",
            "--workers",
            str(cfg.workers),
            *ns_args,
            *cfg.operator_args,
        ]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> float:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.bench.operator_kubeconfig),
            "STUDIO_API_WORKERS": str(self.bench.cfg.api_workers),
            "PYTHONUNBUFFERED": "1",
            **self.bench.cfg.operator_env,
        }
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"=== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            out.flush()
            t0 = time.time()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.bench.children.add(self.process.pid)
        return t0

    async def wait_ready(self, timeout: float = 120.0) -> float:
        """Until liveness answers 200 (kopf's start-up handlers, i.e. the store priming, are done)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"operator exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            status, _ = await asyncio.to_thread(
                http_get, f"http://127.0.0.1:{self.liveness_port}/healthz", 1.0
            )
            if status == 200:
                return time.time()
            if time.monotonic() > deadline:
                raise BenchError(f"operator not live after {timeout:.0f}s; see {self.log_path}")
            await asyncio.sleep(0.05)

    async def start(self) -> float:
        self.spawn()
        t = await self.wait_ready()
        if self.bench.cfg.profile:
            self.start_profiler()
        return t

    def start_profiler(self) -> None:
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.access(pyspy, os.X_OK):
            log("py-spy not found (pip install py-spy): no profile")
            return
        self.profile_path = self.bench.workdir / f"profile-{self.name}-{self.starts}.txt"
        self.profiler = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                "25",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.profile_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.bench.children.add(self.profiler.pid)

    def stop_profiler(self) -> None:
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
        if self.profile_path is not None and self.profile_path.exists():
            self.bench.profiles.append(self.profile_path)
        self.profiler = None
        self.profile_path = None

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM (kopf's graceful exit), SIGKILL after `timeout`; returns the seconds it took."""
        self.stop_profiler()
        t0 = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.bench.children.discard(self.process.pid)
        return time.monotonic() - t0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError("VmRSS not found")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def threads(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def metrics(self) -> dict[str, float]:
        status, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", 3.0)
        if status != 200:
            return {}
        out: dict[str, float] = {}
        names = ("studio_operator_", "process_")
        for name, labels, value in parse_prometheus(text, names):
            key = name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else ""
            )
            out[key] = value
        return out

    async def footprint(self, seconds: float) -> dict[str, Any]:
        """RSS and CPU over `seconds` at rest (nothing changes in the cluster meanwhile)."""
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        samples = [self.rss_mb()]
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(min(1.0, seconds / 5))
            samples.append(self.rss_mb())
        cpu = (self.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
        return {
            "rss_mb": rnd(max(samples), 1),
            "idle_cpu_pct": rnd(cpu, 2),
            "threads": self.threads(),
            "window_s": round(seconds, 1),
        }


# ---------------------------------------------------------------------------------------------
# configuration and the run


@dataclass
class Config:
    sizes: list[int]
    latency_samples: int
    expiry_burst: int | None
    expiry_fraction: float
    concurrency: int
    workers: int
    api_workers: int
    out: Path
    kubeconfig: Path
    idle_seconds: float
    settle_seconds: float
    operator_args: list[str]
    operator_env: dict[str, str]
    profile: bool
    exclusive_wait: float
    bracket: bool
    bracket_max: int
    plot: bool
    label: str
    history: bool
    keep: bool


def bracketed(cfg: Config, n: int) -> bool:
    """Whether size n gets the second direct baseline (after the operator)."""
    return cfg.bracket and n <= cfg.bracket_max


@dataclass
class Snapshot:
    """Counters at one instant: the operator's per-verb APF counts and cluster-wide request totals."""

    t: float
    process: dict[str, float] = field(default_factory=dict)  # the operator's pid, CPU, reconciles
    operator: dict[str, float] = field(default_factory=dict)
    cluster: dict[str, float] = field(default_factory=dict)
    harness: dict[str, float] = field(default_factory=dict)


def delta(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    op = {k: b.operator.get(k, 0) - a.operator.get(k, 0) for k in set(a.operator) | set(b.operator)}
    cl = {k: b.cluster.get(k, 0) - a.cluster.get(k, 0) for k in set(a.cluster) | set(b.cluster)}
    hs = {k: b.harness.get(k, 0) - a.harness.get(k, 0) for k in set(a.harness) | set(b.harness)}
    by_verb = {v: int(op.get(v, 0)) for v in (*WRITE_VERBS, *READ_VERBS, "nonresource") if op.get(v)}
    cluster_by_verb = {v: int(cl.get(v, 0)) for v in (*GLOBAL_WRITES, *GLOBAL_READS) if cl.get(v)}
    cluster_writes_by_resource = {
        k.split(":", 1)[1]: int(v)
        for k, v in sorted(cl.items())
        if ":" in k and v and k.split(":")[0] in GLOBAL_WRITES
    }
    proc: dict[str, Any] = {}
    if b.process:
        same = a.process.get("pid") == b.process.get("pid")
        cpu = b.process["cpu_s"] - (a.process.get("cpu_s", 0) if same else 0)
        rec = b.process.get("reconciles", 0) - (a.process.get("reconciles", 0) if same else 0)
        rec_s = b.process.get("reconcile_s", 0) - (a.process.get("reconcile_s", 0) if same else 0)
        proc = {
            "operator_cpu_s": round(cpu, 2),
            "reconciles": int(rec),
            "reconcile_avg_ms": rnd(rec_s / rec * 1000, 2) if rec else None,
        }
    harness_writes = sum(hs.get(m, 0) for m in ("POST", "PUT", "PATCH", "DELETE"))
    harness_reads = hs.get("GET", 0)
    return {
        "seconds": round(b.t - a.t, 2),
        "operator_writes": int(sum(op.get(v, 0) for v in WRITE_VERBS)),
        "operator_reads": int(sum(op.get(v, 0) for v in (*READ_VERBS, "nonresource"))),
        "operator_by_verb": by_verb,
        "cluster_writes": int(sum(cl.get(v, 0) for v in GLOBAL_WRITES) - harness_writes),
        "cluster_reads": int(sum(cl.get(v, 0) for v in GLOBAL_READS) - harness_reads),
        "cluster_by_verb": cluster_by_verb,
        "cluster_writes_by_resource": cluster_writes_by_resource,
        "harness_requests": {k: int(v) for k, v in hs.items() if v},
        "operator_reviews": int(op.get("review", 0)),
        **proc,
    }


def per_unit(d: dict[str, Any], n: int, what: str) -> dict[str, Any]:
    """Operator CPU and reconciles per start/stop/expiry (from its /proc and its own metrics)."""
    if "operator_cpu_s" not in d or not n:
        return {}
    return {
        f"cpu_ms_per_{what}": rnd(d["operator_cpu_s"] / n * 1000, 1),
        f"reconciles_per_{what}": rnd(d["reconciles"] / n, 2),
    }


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.run_id = datetime.now(UTC).strftime("%m%d%H%M") + secrets.token_hex(2)
        self.prefix = f"sbench-{self.run_id}"
        self.api = Api(cfg.kubeconfig, cfg.api_workers)
        base = (
            ROOT / ".cluster" / "bench"
            if (ROOT / ".cluster").is_dir()
            else Path(tempfile.gettempdir()) / "bench"
        )
        self.workdir = base / self.run_id
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.operator_kubeconfig = self.workdir / "operator.kubeconfig"
        self.system_ns = f"{self.prefix}-system"
        self.node_names: list[str] = []
        self.namespaces: list[str] = []
        self.children: set[int] = set()
        self.profiles: list[Path] = []
        self.watchers: list[Watcher] = []
        self.notes: list[str] = []
        self.server = str(kube.client().configuration.host)
        self.labels = {RUN_LABEL: self.run_id}
        self.operators: list[Operator] = []
        self.sightings: list[tuple[float, tuple[str, ...]]] = []
        self.active: Operator | None = None  # whose CPU and reconciles snapshots record

    # ----------------------------------------------------------------- other operators (shared machine)

    async def monitor(self) -> None:
        """Samples the processes of other studio operators: they would reconcile our studios too."""
        while True:
            others = await asyncio.to_thread(other_operators, set(self.children), self.server or None)
            if others:
                self.sightings.append((time.time(), tuple(others)))
            await asyncio.sleep(0.5)

    def interference(self, what: str, t0: float, result: dict[str, Any]) -> None:
        """Marks `result` when another operator ran between t0 and now."""
        t1 = time.time()
        seen = sorted({o for t, os in self.sightings if t0 - 1 <= t <= t1 + 1 for o in os})
        if seen:
            result["interference"] = seen
            self.notes.append(
                f"{what}: another studio operator was running ({', '.join(seen)}); figures suspect"
            )

    async def exclusive(self, what: str) -> None:
        """Waits (up to --exclusive-wait seconds) until no other studio operator runs."""
        if self.cfg.exclusive_wait <= 0:
            return
        deadline = time.monotonic() + self.cfg.exclusive_wait
        others = other_operators(self.children, self.server or None)
        if others:
            log(f"{what}: waiting up to {self.cfg.exclusive_wait:.0f}s for other operators to end: {others}")
        while others and time.monotonic() < deadline:
            await asyncio.sleep(1)
            others = other_operators(self.children, self.server or None)

    # ----------------------------------------------------------------- namespaces of the run

    def ns(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def all_operator_namespaces(self) -> list[str]:
        return [self.ns("lat")] + [self.ns(f"op{n}") for n in self.cfg.sizes]

    # ----------------------------------------------------------------- counters

    async def snapshot(self) -> Snapshot:
        text = await self.api.raw_get("/metrics")
        snap = Snapshot(t=time.time(), harness={k: float(v) for k, v in self.api.sent.items()})
        op = self.active
        if op is not None and op.process is not None and op.process.poll() is None:
            m = await asyncio.to_thread(op.metrics)
            snap.process = {
                "pid": float(op.pid),
                "cpu_s": op.cpu_seconds(),
                "reconciles": m.get("studio_operator_reconcile_duration_seconds_count", 0.0),
                "reconcile_s": m.get("studio_operator_reconcile_duration_seconds_sum", 0.0),
            }
        for name, labels, value in parse_prometheus(
            text, ("apiserver_flowcontrol_dispatched_requests_total{", "apiserver_request_total{")
        ):
            if name == "apiserver_request_total":
                verb = labels.get("verb", "")
                snap.cluster[verb] = snap.cluster.get(verb, 0) + value
                res = labels.get("resource", "") + (
                    "/" + labels["subresource"] if labels.get("subresource") else ""
                )
                key = f"{verb}:{res}"
                snap.cluster[key] = snap.cluster.get(key, 0) + value
            elif labels.get("flow_schema", "").startswith(self.prefix + "-op-"):
                verb = labels["flow_schema"][len(self.prefix) + 4 :]
                snap.operator[verb] = snap.operator.get(verb, 0) + value
        return snap

    async def settle(self, timeout: float = 120.0) -> Snapshot:
        """Until the operator's own request counters stop moving for settle_seconds."""
        quiet_for = self.cfg.settle_seconds
        last = await self.snapshot()
        quiet_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() - quiet_since < quiet_for and time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, quiet_for / 3))
            snap = await self.snapshot()
            if sum(snap.operator.values()) - sum(last.operator.get(k, 0) for k in snap.operator) > 0:
                quiet_since = time.monotonic()
            last = snap
        return last

    # ----------------------------------------------------------------- set-up

    async def setup(self) -> dict[str, Any]:
        version = await self.api.get("/version") or {}
        self.server = kube.client().configuration.host
        await self.apply_crds()
        await self.create_nodes()
        await self.create_service_cidr()
        await self.create_identity()
        return version

    async def apply_crds(self) -> None:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    name = doc["metadata"]["name"]
                    await self.api.apply(
                        api_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name), doc
                    )
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                for _ in range(100):
                    crd = await self.api.get(
                        api_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name)
                    )
                    conds = ((crd or {}).get("status") or {}).get("conditions") or []
                    if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                        break
                    await asyncio.sleep(0.1)

    async def create_nodes(self) -> None:
        """A fake node (kwok) of our own, tainted for this run: the shared kwok-node-0 (1k pods) stays free."""
        name = f"{self.prefix}-node-0"
        capacity = {"cpu": "10k", "memory": "64Ti", "pods": "30000"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    **self.labels,
                    POOL_LABEL: self.run_id,
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": "10.220.0.0/16",
                "podCIDRs": ["10.220.0.0/16"],
                "taints": [{"key": POOL_LABEL, "value": self.run_id, "effect": "NoSchedule"}],
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        await self.api.create(api_path("v1", "nodes"), node)
        self.node_names.append(name)
        path = api_path("v1", "nodes", None, name)

        async def ready() -> bool:
            body = await self.api.get(path) or {}
            conds = (body.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

        deadline = time.monotonic() + 90
        while not await ready():
            if time.monotonic() > deadline:
                raise BenchError(
                    f"node {name} not Ready after 90s: is kwok running? (hack/cluster.py status)"
                )
            await asyncio.sleep(0.25)

    async def create_service_cidr(self) -> None:
        """A /16 of the run's own, so that N studios never exhaust a shared or small service range
        (the local cluster had a /24 before; clusters made by an older hack/cluster.py still do)."""
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": self.prefix, "labels": self.labels},
            "spec": {"cidrs": ["10.112.0.0/16"]},
        }
        try:
            await self.api.create(api_path("networking.k8s.io/v1", "servicecidrs"), body)
        except kube.ApiError as exc:  # an overlapping range of another run, or no ServiceCIDR API
            self.notes.append(
                f"no extra ServiceCIDR ({exc.status} {exc.message}); large N may exhaust ClusterIPs"
            )

    async def create_identity(self) -> None:
        """The operator runs as a ServiceAccount of its own (read everywhere, write only in the run's
        namespaces), and per-verb FlowSchemas matching it attribute every request it makes."""
        sa = {"kind": "ServiceAccount", "namespace": self.system_ns, "name": "operator"}
        await self.api.create(
            api_path("v1", "namespaces"),
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.system_ns, "labels": self.labels},
            },
        )
        self.namespaces.append(self.system_ns)
        await self.api.create(
            api_path("v1", "serviceaccounts", self.system_ns),
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        )
        rbac = "rbac.authorization.k8s.io/v1"
        await self.api.create(
            api_path(rbac, "clusterroles"),
            {
                "apiVersion": rbac,
                "kind": "ClusterRole",
                "metadata": {"name": f"{self.prefix}-read", "labels": self.labels},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
            },
        )
        await self.api.create(
            api_path(rbac, "clusterrolebindings"),
            {
                "apiVersion": rbac,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{self.prefix}-read", "labels": self.labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{self.prefix}-read",
                },
                "subjects": [sa],
            },
        )
        token = await self.api.create(
            api_path("v1", "serviceaccounts", self.system_ns, "operator", "token"),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        admin = yaml.safe_load(self.cfg.kubeconfig.read_text())
        contexts = {c["name"]: c["context"] for c in admin.get("contexts") or []}
        ctx = contexts.get(admin.get("current-context"), next(iter(contexts.values()), {}))
        clusters = {c["name"]: c["cluster"] for c in admin.get("clusters") or []}
        cluster = clusters.get(ctx.get("cluster"), next(iter(clusters.values())))
        self.operator_kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "bench",
                    "clusters": [{"name": "bench", "cluster": cluster}],
                    "users": [{"name": "operator", "user": {"token": token["status"]["token"]}}],
                    "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "operator"}}],
                }
            )
        )
        self.operator_kubeconfig.chmod(0o600)
        fc = "flowcontrol.apiserver.k8s.io/v1"
        subject = {
            "kind": "ServiceAccount",
            "serviceAccount": {"name": "operator", "namespace": self.system_ns},
        }
        namespaces = self.all_operator_namespaces()
        await self.api.create(
            api_path(fc, "flowschemas"),
            {
                "apiVersion": fc,
                "kind": "FlowSchema",
                "metadata": {"name": f"{self.prefix}-op-review", "labels": self.labels},
                "spec": {  # token/access reviews are POSTs that store nothing: not writes
                    "matchingPrecedence": 400,
                    "priorityLevelConfiguration": {"name": "exempt"},
                    "rules": [
                        {
                            "subjects": [subject],
                            "resourceRules": [
                                {
                                    "verbs": ["create"],
                                    "apiGroups": ["authentication.k8s.io", "authorization.k8s.io"],
                                    "resources": ["*"],
                                    "namespaces": ["*"],
                                    "clusterScope": True,
                                }
                            ],
                        }
                    ],
                },
            },
        )
        for verb in (*WRITE_VERBS, *READ_VERBS):
            await self.api.create(
                api_path(fc, "flowschemas"),
                {
                    "apiVersion": fc,
                    "kind": "FlowSchema",
                    "metadata": {"name": f"{self.prefix}-op-{verb}", "labels": self.labels},
                    "spec": {
                        "matchingPrecedence": 500,
                        "priorityLevelConfiguration": {"name": "exempt"},  # as the admin identity it replaces
                        "rules": [
                            {
                                "subjects": [subject],
                                "resourceRules": [
                                    {
                                        "verbs": [verb],
                                        "apiGroups": ["*"],
                                        "resources": ["*"],
                                        "namespaces": namespaces,
                                        "clusterScope": True,
                                    }
                                ],
                            }
                        ],
                    },
                },
            )
        await self.api.create(
            api_path(fc, "flowschemas"),
            {
                "apiVersion": fc,
                "kind": "FlowSchema",
                "metadata": {"name": f"{self.prefix}-op-nonresource", "labels": self.labels},
                "spec": {
                    "matchingPrecedence": 500,
                    "priorityLevelConfiguration": {"name": "exempt"},
                    "rules": [
                        {
                            "subjects": [subject],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        }
                    ],
                },
            },
        )

    async def make_namespace(self, name: str, *, operator: bool) -> None:
        await self.api.create(
            api_path("v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": self.labels}},
        )
        self.namespaces.append(name)
        if not operator:
            return
        rbac = "rbac.authorization.k8s.io/v1"
        await self.api.create(
            api_path(rbac, "rolebindings", name),
            {
                "apiVersion": rbac,
                "kind": "RoleBinding",
                "metadata": {"name": "studio-bench-operator"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "namespace": self.system_ns, "name": "operator"}],
            },
        )
        await self.api.create(
            api_path(GROUP_VERSION, "computeenvironments", name),
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ComputeEnvironment",
                "metadata": {"name": "bench"},
                "spec": {
                    "region": "eu-west-1",
                    "env": [{"name": "BENCH", "value": "1"}],
                    "resourceLabels": {"team": "bench"},
                    "nodeSelector": {POOL_LABEL: self.run_id},
                    "tolerations": [
                        {
                            "key": POOL_LABEL,
                            "operator": "Equal",
                            "value": self.run_id,
                            "effect": "NoSchedule",
                        },
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                },
            },
        )

    def studio(self, name: str, state: str = "Running") -> dict[str, Any]:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "Studio",
            "metadata": {"name": name, "labels": self.labels},
            "spec": {
                "computeEnvironment": "bench",
                "template": {"image": IMAGE, "port": PORT},
                "lifespan": {"policy": "StopAfter", "hours": LIFESPAN_HOURS},
                "state": state,
            },
        }

    def watch(
        self, path: str, selector: str | None, on_event: Callable[[str, dict[str, Any], float], None]
    ) -> Watcher:
        w = Watcher(self.cfg.kubeconfig, path, selector, on_event).start()
        self.watchers.append(w)
        if not w.ready.wait(60):
            raise BenchError(f"watch {path} not ready: {w.error}")
        return w

    # ----------------------------------------------------------------- templates for the direct baseline

    async def templates(
        self, ns: str, pods: PodTracker, studio: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pod and service the operator made for `studio`, as plain objects the baseline can create."""
        await wait_until(pods.has("seen", studio), 60, f"the operator's pod for {studio}", 1, pods.signal)
        items = (
            await self.api.call(
                "GET", api_path("v1", "pods", ns), query={"labelSelector": f"{STUDIO_LABEL}={studio}"}
            )
        )["items"]
        pod, svc = items[0], None
        deadline = time.monotonic() + 60
        while svc is None and time.monotonic() < deadline:  # the Service may come after the pod
            svc = await self.api.get(api_path("v1", "services", ns, studio))
            if svc is None:
                await asyncio.sleep(0.1)
        if svc is None:
            raise BenchError(f"the operator made no service for {studio}")

        def plain(obj: dict[str, Any], kind: str) -> dict[str, Any]:
            meta = obj["metadata"]
            labels = {k: v for k, v in (meta.get("labels") or {}).items()}
            labels[MANAGED_BY] = "studio-bench"  # keep other operators' watches away from the baseline
            return {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"labels": labels, "annotations": dict(meta.get("annotations") or {})},
                "spec": dict(obj["spec"]),
            }

        pod_t, svc_t = plain(pod, "Pod"), plain(svc, "Service")
        for k in ("nodeName", "priority", "serviceAccount"):
            pod_t["spec"].pop(k, None)
        for k in ("clusterIP", "clusterIPs"):
            svc_t["spec"].pop(k, None)
        svc_t["spec"]["selector"] = {**svc_t["spec"].get("selector", {}), MANAGED_BY: "studio-bench"}
        return pod_t, svc_t

    @staticmethod
    def direct_objects(
        name: str, pod_t: dict[str, Any], svc_t: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        pod = json.loads(json.dumps(pod_t))
        svc = json.loads(json.dumps(svc_t))
        for obj in (pod, svc):
            obj["metadata"]["name"] = name
            obj["metadata"]["labels"][STUDIO_LABEL] = name
        svc["spec"]["selector"][STUDIO_LABEL] = name
        return pod, svc

    # ----------------------------------------------------------------- 2. start latency

    async def latency(self) -> dict[str, Any]:
        n = self.cfg.latency_samples
        await self.exclusive("latency")
        t_phase = time.time()
        ns_op, ns_dir = self.ns("lat"), self.ns("latdir")
        await self.make_namespace(ns_op, operator=True)
        await self.make_namespace(ns_dir, operator=False)
        op = Operator(self, "latency", [ns_op])
        self.operators.append(op)
        self.active = op
        await op.start()
        op_pods, dir_pods, studios = PodTracker(), PodTracker(), StudioTracker()
        watches = [
            self.watch(api_path("v1", "pods", ns_op), STUDIO_LABEL, op_pods.on_event),
            self.watch(api_path("v1", "pods", ns_dir), STUDIO_LABEL, dir_pods.on_event),
            self.watch(api_path(GROUP_VERSION, "studios", ns_op), None, studios.on_event),
        ]
        await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio("warmup"))
        pod_t, svc_t = await self.templates(ns_op, op_pods, "warmup")
        await wait_until(studios.in_phase("warmup", "Running"), 60, "warmup Running", 1, studios.signal)
        op_ms: list[float] = []
        dir_ms: list[float] = []
        op_run_ms: list[float] = []
        dir_run_ms: list[float] = []
        for i in range(n):  # interleaved, so that drift hits both sides alike
            name = f"l-{i:04d}"
            t0 = time.time()
            await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio(name))
            await wait_until(op_pods.has("seen", name), 60, f"pod of {name}", 1, op_pods.signal)
            op_ms.append((op_pods.first("seen", {name})[name] - t0) * 1000)
            await wait_until(studios.in_phase(name, "Running"), 60, f"{name} Running", 1, studios.signal)
            op_run_ms.append((studios.phase_times([name], "Running")[name] - t0) * 1000)

            pod, _ = self.direct_objects(name, pod_t, svc_t)
            t0 = time.time()
            await self.api.create(api_path("v1", "pods", ns_dir), pod)
            await wait_until(dir_pods.has("seen", name), 60, f"direct pod {name}", 1, dir_pods.signal)
            dir_ms.append((dir_pods.first("seen", {name})[name] - t0) * 1000)
            await wait_until(dir_pods.has("ready", name), 60, f"direct {name} Ready", 1, dir_pods.signal)
            dir_run_ms.append((dir_pods.first("ready", {name})[name] - t0) * 1000)
        footprint = await op.footprint(min(self.cfg.idle_seconds, 5))
        op.stop()
        for w in watches:
            w.stop()
            self.watchers.remove(w)
        result: dict[str, Any] = {
            "samples": n,
            "operator_p50_ms": rnd(pct(op_ms, 0.5), 1),
            "operator_p99_ms": rnd(pct(op_ms, 0.99), 1),
            "direct_p50_ms": rnd(pct(dir_ms, 0.5), 1),
            "direct_p99_ms": rnd(pct(dir_ms, 0.99), 1),
            "overhead_p50_ms": rnd((pct(op_ms, 0.5) or 0) - (pct(dir_ms, 0.5) or 0), 1),
            "overhead_p99_ms": rnd((pct(op_ms, 0.99) or 0) - (pct(dir_ms, 0.99) or 0), 1),
            "to_running_operator_p50_ms": rnd(pct(op_run_ms, 0.5), 1),
            "to_running_direct_p50_ms": rnd(pct(dir_run_ms, 0.5), 1),
            "footprint_idle": footprint,
            "operator_ms": [round(x, 1) for x in op_ms],
            "direct_ms": [round(x, 1) for x in dir_ms],
        }
        self.interference("latency", t_phase, result)
        return result

    # ----------------------------------------------------------------- 1, 3, 4, 5, 6 at one size

    async def scenario(self, n: int, out: dict[str, Any]) -> None:
        """Fills `out` phase by phase (a failure leaves what was measured so far)."""
        cfg = self.cfg
        ns_op, ns_dir, ns_dir_b = self.ns(f"op{n}"), self.ns(f"dir{n}"), self.ns(f"dirb{n}")
        await self.make_namespace(ns_op, operator=True)
        await self.make_namespace(ns_dir, operator=False)
        op = Operator(self, f"n{n}", [ns_op])
        self.operators.append(op)
        self.active = op
        await op.start()
        op_pods, dir_pods, studios = PodTracker(), PodTracker(), StudioTracker()
        watches = [
            self.watch(api_path("v1", "pods", ns_op), STUDIO_LABEL, op_pods.on_event),
            self.watch(api_path("v1", "pods", ns_dir), STUDIO_LABEL, dir_pods.on_event),
            self.watch(api_path(GROUP_VERSION, "studios", ns_op), None, studios.on_event),
        ]
        wait_s = 300 + n * 1.0
        small = n <= 200  # re-check on every watch event; else poll (the checks are O(N))
        poll = 1.0 if small else 0.2
        await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio("warmup"))
        pod_t, svc_t = await self.templates(ns_op, op_pods, "warmup")
        await wait_until(studios.in_phase("warmup", "Running"), 60, "warmup Running", 1, studios.signal)
        names = [f"s-{i:05d}" for i in range(n)]
        name_set = set(names)
        out["studios"] = n

        # 1. start throughput: the direct baseline before and after the operator (drift in the
        # machine's load between the phases then shows as a spread, and the mean cancels most of it)
        log(f"N={n}: direct baseline ({n} services + pods, concurrency {cfg.concurrency})")
        await self.exclusive(f"N={n} start")
        t_phase = time.time()
        base_a = await self.direct_phase(ns_dir, dir_pods, names, pod_t, svc_t, wait_s, poll, small)
        d_direct = base_a["api"]

        # ... then the operator: N studios at once until every session pod exists
        log(f"N={n}: operator start ({n} studios at once)")
        await self.settle()
        before = await self.snapshot()

        async def create(name: str) -> None:
            await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio(name))

        t0 = time.time()
        await bounded(cfg.concurrency, names, create)
        t_sent = time.time()
        await wait_until(
            lambda: len(op_pods.first("seen", name_set)) >= n,
            wait_s,
            "session pods",
            poll,
            op_pods.signal if small else None,
        )
        seen = op_pods.first("seen", name_set)
        op_s = max(max(seen.values()), t_sent) - t0
        op_curve = sorted(t - t0 for t in seen.values())
        await wait_until(
            lambda: len(studios.phase_times(names, "Running")) >= n,
            wait_s,
            "studios Running",
            poll,
            studios.signal if small else None,
        )
        op_running_s = max(studios.phase_times(names, "Running").values()) - t0
        after = await self.settle()
        d_start = delta(before, after)
        base_b: dict[str, Any] | None = None
        if bracketed(cfg, n):
            log(f"N={n}: direct baseline again, after the operator")
            await self.make_namespace(ns_dir_b, operator=False)
            dir_b_pods = PodTracker()
            watches.append(self.watch(api_path("v1", "pods", ns_dir_b), STUDIO_LABEL, dir_b_pods.on_event))
            base_b = await self.direct_phase(ns_dir_b, dir_b_pods, names, pod_t, svc_t, wait_s, poll, small)
        bases = [b for b in (base_a, base_b) if b is not None]
        direct_s = sum(b["seconds"] for b in bases) / len(bases)
        direct_ready_s = sum(b["ready_s"] for b in bases) / len(bases)
        direct_sent_s = sum(b["sent_s"] for b in bases) / len(bases)
        direct_curve = base_a["curve"]
        out["start"] = {
            "operator_s": rnd(op_s),
            "direct_s": rnd(direct_s),
            "start_ratio": rnd(ratio(op_s, direct_s)),
            "operator_per_s": rnd(n / op_s, 1),
            "direct_per_s": rnd(n / direct_s, 1),
            "create_requests_s": rnd(t_sent - t0),
            "direct_requests_s": rnd(direct_sent_s),
            "direct_before_s": rnd(base_a["seconds"]),
            "direct_after_s": rnd(base_b["seconds"]) if base_b else None,
            "operator_running_s": rnd(op_running_s),
            "direct_ready_s": rnd(direct_ready_s),
            "running_ratio": rnd(ratio(op_running_s, direct_ready_s)),
            "curve_operator_s": _downsample(op_curve),
            "curve_direct_s": _downsample(direct_curve),
        }
        out["api_start"] = {
            **d_start,
            "writes_per_start": rnd(d_start["operator_writes"] / n, 2),
            "reads_per_start": rnd(d_start["operator_reads"] / n, 2),
            "cluster_writes_per_start": rnd(d_start["cluster_writes"] / n, 2),
            **per_unit(d_start, n, "start"),
        }
        out["api_direct"] = {**d_direct, "cluster_writes_per_start": rnd(d_direct["cluster_writes"] / n, 2)}
        log(
            f"N={n}: operator {op_s:.2f}s vs direct {direct_s:.2f}s (ratio {op_s / direct_s:.2f}); "
            f"writes/start {d_start['operator_writes'] / n:.2f}"
        )

        # 5a. footprint at rest with every studio running
        self.interference(f"N={n} start", t_phase, out["start"])
        t_phase = time.time()
        out["footprint_all_running"] = await op.footprint(cfg.idle_seconds)
        self.interference(f"N={n} footprint (all running)", t_phase, out["footprint_all_running"])

        # 4. expiry: one studio, then a burst
        running = list(names)
        single = running.pop()
        out["expiry_single"] = await self.expire(ns_op, studios, [single], lead=5.0, poll=1.0)
        burst_n = cfg.expiry_burst if cfg.expiry_burst is not None else max(1, int(n * cfg.expiry_fraction))
        burst_n = max(1, min(burst_n, len(running) - 1))
        burst, running = running[:burst_n], running[burst_n:]
        log(f"N={n}: expiry burst of {burst_n}")
        out["expiry_burst"] = await self.expire(ns_op, studios, burst, lead=10.0 + burst_n * 0.05, poll=poll)
        # ... and its floor on this control plane: the same number of the direct baseline's pods
        # deleted at one instant by the harness (what any controller's expiry must at least do)
        out["expiry_direct"] = await self.delete_at_once(ns_dir, dir_pods, burst)
        eb, ed = out["expiry_burst"], out["expiry_direct"]
        eb["direct_p99_s"] = ed["p99_s"]
        eb["ratio_p99"] = rnd(ratio(eb["p99_s"], ed["p99_s"]))
        log(f"N={n}: expiry burst p99 {eb['p99_s']}s; direct deletion of as many pods p99 {ed['p99_s']}s")

        # stop (user request) until half of the studios run
        stop_n = max(0, len(running) - n // 2)
        to_stop, running = running[:stop_n], running[stop_n:]
        if to_stop:
            log(f"N={n}: stopping {stop_n} studios")
            await self.exclusive(f"N={n} stop")
            t_phase = time.time()
            await self.settle()
            before = await self.snapshot()
            t0 = time.time()

            async def stop(name: str) -> None:
                await self.api.merge_patch(
                    api_path(GROUP_VERSION, "studios", ns_op, name), {"spec": {"state": "Stopped"}}
                )

            await bounded(cfg.concurrency, to_stop, stop)
            await wait_until(
                lambda: len(studios.phase_times(to_stop, "Stopped", t0)) >= stop_n,
                wait_s,
                "stopped",
                poll,
                studios.signal if small else None,
            )
            stop_s = max(studios.phase_times(to_stop, "Stopped", t0).values()) - t0
            after = await self.settle()
            d_stop = delta(before, after)
            out["stop"] = {
                **d_stop,
                "studios": stop_n,
                "seconds_to_stopped": rnd(stop_s),
                "writes_per_stop": rnd(d_stop["operator_writes"] / stop_n, 2),
                "reads_per_stop": rnd(d_stop["operator_reads"] / stop_n, 2),
                **per_unit(d_stop, stop_n, "stop"),
            }
            self.interference(f"N={n} stop", t_phase, out["stop"])

        # 5b. footprint at rest with half of the studios running
        t_phase = time.time()
        await self.settle()
        everyone = [*names, "warmup"]
        out["footprint"] = {
            **await op.footprint(cfg.idle_seconds),
            "running": studios.count(everyone, lambda b: (b.get("status") or {}).get("phase") == "Running"),
            "studios": len(everyone),
        }
        self.interference(f"N={n} footprint", t_phase, out["footprint"])
        op.stop_profiler()

        # 6. restart with the studios present
        await self.exclusive(f"N={n} restart")
        t_phase = time.time()
        out["restart"] = await self.restart(op, studios, op_pods, ns_op, to_stop, wait_s)
        self.interference(f"N={n} restart", t_phase, out["restart"])
        out["restart"]["writes_beyond_probe"] = rnd(
            out["restart"]["operator_writes"] - (out["api_start"]["writes_per_start"] or 0), 2
        )

        op.stop()
        for w in watches:
            w.stop()
            self.watchers.remove(w)
        if not cfg.keep:
            gone = [ns_op, ns_dir, *([ns_dir_b] if bracketed(cfg, n) else [])]
            out["cleanup_s"] = await self.delete_namespaces(gone, timeout=120 + n * 0.3)

    async def direct_phase(
        self,
        ns: str,
        pods: PodTracker,
        names: list[str],
        pod_t: dict[str, Any],
        svc_t: dict[str, Any],
        wait_s: float,
        poll: float,
        small: bool,
    ) -> dict[str, Any]:
        """The baseline: the operator's Service and Pod for each name, created directly with the
        harness's client and concurrency, until every pod exists (and then until all are Ready)."""
        n, name_set = len(names), set(names)
        await self.settle()
        before = await self.snapshot()

        async def direct(name: str) -> None:
            pod, svc = self.direct_objects(name, pod_t, svc_t)
            # exist_ok: a retried POST whose first answer was lost (a read time-out under load)
            # finds its own object; the operator's create-or-adopt does the same.
            await self.api.create(api_path("v1", "services", ns), svc, exist_ok=True)
            await self.api.create(api_path("v1", "pods", ns), pod, exist_ok=True)

        t0 = time.time()
        await bounded(self.cfg.concurrency, names, direct)
        t_sent = time.time()
        signal = pods.signal if small else None
        await wait_until(lambda: len(pods.first("seen", name_set)) >= n, wait_s, "direct pods", poll, signal)
        seen = pods.first("seen", name_set)
        await wait_until(
            lambda: len(pods.first("ready", name_set)) >= n, wait_s, "direct pods Ready", poll, signal
        )
        ready_s = max(pods.first("ready", name_set).values()) - t0
        return {
            "seconds": max(max(seen.values()), t_sent) - t0,
            "sent_s": t_sent - t0,
            "ready_s": ready_s,
            "curve": sorted(t - t0 for t in seen.values()),
            "api": delta(before, await self.snapshot()),
        }

    async def delete_at_once(self, ns: str, pods: PodTracker, names: list[str]) -> dict[str, Any]:
        """The expiry baseline: DELETE the direct pods of `names` at one instant (the harness's client
        and concurrency) and time until each is gone (its DELETED event), as the operator's expiry
        is timed until phase Stopped, which it sets once the pod is gone."""
        await self.exclusive(f"direct deletion of {len(names)}")
        t_phase = time.time()
        await self.settle()
        before = await self.snapshot()
        name_set = set(names)

        async def delete(name: str) -> None:
            await self.api.delete(api_path("v1", "pods", ns, name))

        t0 = time.time()
        await bounded(self.cfg.concurrency, names, delete)
        sent_s = time.time() - t0
        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: len(pods.first("deleted", name_set, t0)) >= len(names),
                120 + len(names) * 0.5,
                "direct pods deleted",
                0.2,
                pods.signal if len(names) <= 200 else None,
            )
        gone = [t - t0 for t in pods.first("deleted", name_set, t0).values()]
        result = {
            "pods": len(names),
            "deleted": len(gone),
            "requests_s": rnd(sent_s),
            "p50_s": rnd(pct(gone, 0.5)),
            "p99_s": rnd(pct(gone, 0.99)),
            "max_s": rnd(max(gone) if gone else None),
            "gone_s": [round(x, 3) for x in sorted(gone)] if len(gone) <= 2000 else _downsample(sorted(gone)),
            "api": delta(before, await self.settle()),
        }
        self.interference(f"{ns}: direct deletion of {len(names)}", t_phase, result)
        return result

    async def expire(
        self, ns: str, studios: StudioTracker, names: list[str], lead: float, poll: float
    ) -> dict[str, Any]:
        """Backdate status.session.startedAt so that every studio in `names` expires at one instant D."""
        await self.exclusive(f"expiry of {len(names)}")
        t_phase = time.time()
        await self.settle()
        before = await self.snapshot()
        deadline = math.ceil(time.time() + lead)
        started = datetime.fromtimestamp(deadline - LIFESPAN_HOURS * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        expires = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        async def backdate(name: str) -> None:
            await self.api.merge_patch(
                api_path(GROUP_VERSION, "studios", ns, name, "status"),
                {"status": {"session": {"startedAt": started}}},
            )

        t_patch = time.time()
        await bounded(self.cfg.concurrency, names, backdate)
        patched_s = time.time() - t_patch

        def scheduled(body: dict[str, Any]) -> bool:
            return ((body.get("status") or {}).get("session") or {}).get("expiresAt") == expires

        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: studios.count(names, scheduled) >= len(names),
                max(0.0, deadline - time.time()),
                "expiry scheduled",
                poll,
                studios.signal if len(names) <= 200 else None,
            )
        prepared = studios.count(names, scheduled)
        mid = await self.snapshot()
        timeout = 120 + len(names) * 0.5
        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: len(studios.phase_times(names, "Stopped", deadline - 1)) >= len(names),
                max(1.0, deadline + timeout - time.time()),
                "expired studios Stopped",
                poll,
                studios.signal if len(names) <= 200 else None,
            )
        stopped = studios.phase_times(names, "Stopped", t_patch)
        stopping = studios.phase_times(names, "Stopping", t_patch)
        late = [stopped[n] - deadline for n in names if n in stopped]
        acted = [
            min(stopping.get(n, math.inf), stopped.get(n, math.inf)) - deadline
            for n in names
            if n in stopping or n in stopped
        ]
        early = sum(1 for x in acted if x < -0.5)
        after = await self.settle()
        d_prep, d_exp = delta(before, mid), delta(mid, after)
        result = {
            "studios": len(names),
            "lead_s": round(deadline - t_patch, 1),
            "backdate_requests_s": rnd(patched_s),
            "prepared_before_deadline": prepared,
            "stopped": len(late),
            "missed": len(names) - len(late),
            "early": early,
            "p50_s": rnd(pct(late, 0.5)),
            "p99_s": rnd(pct(late, 0.99)),
            "max_s": rnd(max(late) if late else None),
            "acted_p50_s": rnd(pct(acted, 0.5)),
            "acted_p99_s": rnd(pct(acted, 0.99)),
            "lateness_s": [round(x, 3) for x in sorted(late)]
            if len(late) <= 2000
            else _downsample(sorted(late)),
            "writes_per_backdate": rnd(d_prep["operator_writes"] / len(names), 2),
            "writes_per_expiry": rnd(d_exp["operator_writes"] / len(names), 2),
            **per_unit(d_exp, len(names), "expiry"),
            "api_expiry": d_exp,
        }
        self.interference(f"{ns}: expiry of {len(names)}", t_phase, result)
        return result

    async def restart(
        self,
        op: Operator,
        studios: StudioTracker,
        pods: PodTracker,
        ns: str,
        stopped: list[str],
        wait_s: float,
    ) -> dict[str, Any]:
        """Stop the operator, start it again with every studio present, and time until a change made
        after its start-up is acted on (the change's key is queued behind all the studios)."""
        exit_s = op.stop()
        await self.settle()
        before = await self.snapshot()
        t0 = op.spawn()
        t_live = await op.wait_ready(wait_s)
        probe = stopped[0] if stopped else "restart-probe"
        t_change = time.time()
        if stopped:
            await self.api.merge_patch(
                api_path(GROUP_VERSION, "studios", ns, probe), {"spec": {"state": "Running"}}
            )
        else:
            await self.api.create(api_path(GROUP_VERSION, "studios", ns), self.studio(probe))
        reconciles_needed = len(studios.latest)
        drained_at: float | None = None
        while True:
            m = op.metrics()
            if (
                drained_at is None
                and m.get("studio_operator_reconcile_duration_seconds_count", 0) >= reconciles_needed
            ):
                drained_at = time.time()
            if pods.first("seen", {probe}, t_change):
                break
            if time.time() - t0 > wait_s:
                raise BenchError(f"the restarted operator did not act on {probe} within {wait_s:.0f}s")
            await asyncio.sleep(0.05)
        t_probe = pods.first("seen", {probe}, t_change)[probe]
        await wait_until(studios.in_phase(probe, "Running"), wait_s, f"{probe} Running", 1, studios.signal)
        after = await self.settle()
        d = delta(before, after)
        m = op.metrics()
        return {
            "exit_s": rnd(exit_s),
            "startup_s": rnd(t_live - t0),
            "restart_s": rnd(t_probe - t0),
            "probe_after_live_s": rnd(t_probe - t_change),
            "queue_drained_s": rnd(drained_at - t0) if drained_at else None,
            "reconciles": m.get("studio_operator_reconcile_duration_seconds_count"),
            "studios_known": reconciles_needed,
            **d,
        }

    async def delete_namespaces(self, names: list[str], timeout: float) -> float | None:
        t0 = time.monotonic()
        for name in names:
            await self.api.delete(api_path("v1", "namespaces", None, name))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [n for n in names if await self.api.get(api_path("v1", "namespaces", None, n)) is not None]
            if not left:
                for n in names:
                    with contextlib.suppress(ValueError):
                        self.namespaces.remove(n)
                return round(time.monotonic() - t0, 1)
            await asyncio.sleep(1)
        self.notes.append(f"namespaces {names} still terminating after {timeout:.0f}s")
        return None

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.time()
        others = other_operators(self.children, self.server or None)
        if others:
            msg = (
                "other studio operators are running on this machine; if they watch every namespace they "
                f"also reconcile the benchmark's studios and skew its figures: {others}"
            )
            log("WARNING: " + msg)
            self.notes.append(msg)
        monitor = asyncio.create_task(self.monitor(), name="monitor")
        version = await self.setup()
        results: dict[str, Any] = {
            "run_id": self.run_id,
            "machine": machine_info(version),
            "settings": {
                "sizes": cfg.sizes,
                "concurrency": cfg.concurrency,
                "operator_workers": cfg.workers,
                "api_workers": cfg.api_workers,
                "latency_samples": cfg.latency_samples,
                "expiry_burst": cfg.expiry_burst,
                "expiry_fraction": cfg.expiry_fraction,
                "idle_seconds": cfg.idle_seconds,
                "operator_args": cfg.operator_args,
                "operator_env": cfg.operator_env,
                "profile": cfg.profile,
                "exclusive_wait": cfg.exclusive_wait,
                "bracket": cfg.bracket,
                "bracket_max": cfg.bracket_max,
                "label": cfg.label,
            },
        }
        if cfg.latency_samples > 0:
            log(f"latency: {cfg.latency_samples} sequential starts, operator vs direct")
            results["latency"] = await self.latency()
            lat = results["latency"]
            log(f"latency: operator p50 {lat['operator_p50_ms']} ms, direct p50 {lat['direct_p50_ms']} ms")
            if not cfg.keep:
                await self.delete_namespaces([self.ns("lat"), self.ns("latdir")], timeout=120)
        results["sizes"] = []
        for n in cfg.sizes:
            log(f"N={n}: start")
            out: dict[str, Any] = {"studios": n}
            results["sizes"].append(out)
            try:
                await self.scenario(n, out)
            except (BenchError, kube.ApiError) as exc:
                out["error"] = str(exc)
                self.notes.append(f"N={n} incomplete: {exc}")
                log(f"N={n}: FAILED ({exc}); writing what was measured")
                break
            self.check_server()
        results["duration_s"] = round(time.time() - started, 1)
        results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        monitor.cancel()
        late_others = other_operators(self.children, self.server or None)
        if late_others and not others:
            self.notes.append(f"other studio operators started during the run: {late_others}")
        results["notes"] = self.notes
        results["profiles"] = [summarize_profile(p) for p in self.profiles]
        return results

    def check_server(self) -> None:
        try:
            admin = yaml.safe_load(self.cfg.kubeconfig.read_text())
            servers = [c["cluster"]["server"] for c in admin.get("clusters") or []]
        except (OSError, yaml.YAMLError, KeyError):
            return
        if self.server and servers and self.server not in servers:
            raise BenchError(
                f"the control plane was restarted during the run ({self.server} -> {servers[0]})"
            )

    # ----------------------------------------------------------------- clean-up

    async def cleanup(self) -> None:
        for op in self.operators:
            op.stop(10)
        for w in list(self.watchers):
            w.stop()
        if self.cfg.keep:
            log(f"--keep: leaving run {self.run_id} in place (make bench-clean removes it)")
            return
        await cleanup_runs(self.api, self.run_id)


async def cleanup_runs(api: Api, run_id: str | None) -> None:
    """Delete what benchmark runs left (one run, or every run when run_id is None)."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    rbac, fc, net = "rbac.authorization.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1"
    lists = [("v1", "namespaces"), (fc, "flowschemas"), (rbac, "clusterrolebindings"), (rbac, "clusterroles")]
    for api_version, plural in lists:
        try:
            items = (await api.call("GET", api_path(api_version, plural), query={"labelSelector": selector}))[
                "items"
            ]
        except kube.ApiError as exc:
            log(f"cleanup: cannot list {plural}: {exc}")
            continue
        for item in items:
            await api.delete(api_path(api_version, plural, None, item["metadata"]["name"]))
    # nodes and the service range last: pods and services go with their namespaces first
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        left = (await api.call("GET", api_path("v1", "namespaces"), query={"labelSelector": selector}))[
            "items"
        ]
        if not left:
            break
        await asyncio.sleep(2)
    else:
        log("cleanup: namespaces still terminating after 300s; deleting the nodes anyway")
    for api_version, plural in (("v1", "nodes"), (net, "servicecidrs")):
        try:
            items = (await api.call("GET", api_path(api_version, plural), query={"labelSelector": selector}))[
                "items"
            ]
        except kube.ApiError as exc:
            log(f"cleanup: cannot list {plural}: {exc}")
            continue
        for item in items:
            await api.delete(api_path(api_version, plural, None, item["metadata"]["name"]))


# ---------------------------------------------------------------------------------------------
# machine, other operators, profiles


def machine_info(version: dict[str, Any]) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    def ver(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return {
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": model,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kubernetes": version.get("gitVersion", "?"),
        "kopf": ver("kopf"),
        "kubernetes_client": ver("kubernetes"),
        "git_commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _server_of(kubeconfig: Path) -> str | None:
    try:
        doc = yaml.safe_load(kubeconfig.read_text()) or {}
        contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
        ctx = contexts.get(doc.get("current-context"), {})
        for c in doc.get("clusters") or []:
            if not ctx or c["name"] == ctx.get("cluster"):
                return str(c["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    return None


def other_operators(mine: set[int], server: str | None = None) -> list[str]:
    """Studio operator processes on this machine, other than ours, that talk to `server` (or to a
    server we cannot tell: they count). Operators of other checkouts' clusters do not matter."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if not (
            ("studio_operator" in args and "run" in args)
            or any(a.endswith("/studio-operator") for a in args[:2])
        ):
            continue
        target: str | None = None
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(proc / "cwd"))
            env = dict(
                kv.split("=", 1)
                for kv in (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in kv
            )
            path = next((a.split("=", 1)[1] for a in args if a.startswith("--kubeconfig=")), None)
            if path is None and "--kubeconfig" in args[:-1]:
                path = args[args.index("--kubeconfig") + 1]
            path = path or env.get("KUBECONFIG", "").split(":")[0] or str(Path.home() / ".kube" / "config")
            target = _server_of(cwd / path)
        if server is not None and target is not None and target != server:
            continue
        scoped = any(a in ("--namespace", "-n") or a.startswith("--namespace=") for a in args)
        found.append(f"pid {proc.name} ({'some namespaces' if scoped else 'all namespaces'})")
    return found


IDLE_LEAVES = (
    "select (selectors.py)",
    "_worker (concurrent/futures/thread.py)",
    "read (ssl.py)",
    "recv_into (ssl.py)",
    "do_poll",
    "wait (threading.py)",
)
PLUMBING = ("<frozen runpy>", "(__main__.py)", "(asyncio/", "(threading.py)", "running.py)")


def summarize_profile(path: Path, top: int = 30) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> where the operator's CPU goes: samples whose innermost frame is
    a wait (epoll, a pool thread waiting for work, a socket read) count as idle; of the rest, the
    functions with the most samples, self and inclusive (event-loop/thread plumbing left out)."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = busy = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_frame(f) for f in stack.split(";") if f]
            if not frames or any(k in frames[-1] for k in IDLE_LEAVES):
                continue
            busy += n
            self_c[frames[-1]] += n
            for f in set(frames):
                if not any(k in f for k in PLUMBING):
                    incl[f] += n
    return {
        "file": str(path),
        "samples": total,
        "busy_pct": round(busy / total * 100, 1) if total else None,
        "busy_self": [(f, round(c / busy * 100, 1)) for f, c in self_c.most_common(top)] if busy else [],
        "busy_inclusive": [(f, round(c / busy * 100, 1)) for f, c in incl.most_common(top)] if busy else [],
    }


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    m = re.match(r"(.*) \((.*?):?\d*\)$", frame)
    if not m:
        return frame
    where = m.group(2)
    for marker in ("site-packages/", "studio_operator/", "lib/python"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{m.group(1)} ({where})"


def _downsample(values: Sequence[float], points: int = 200) -> list[float]:
    if len(values) <= points:
        return [round(v, 3) for v in values]
    step = (len(values) - 1) / (points - 1)
    return [round(values[round(i * step)], 3) for i in range(points)]


# ---------------------------------------------------------------------------------------------
# results: JSON (contract keys on top), markdown table, plot


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The contract's keys from the largest size, plus the latency run."""
    sizes = results.get("sizes") or []
    done = [s for s in sizes if "start" in s]
    big = max(done, key=lambda s: s["studios"]) if done else {}
    # The start-ratio goal is stated for N = 1,000: take it from there when that size ran.
    at_1000 = next((s for s in done if s["studios"] == 1000), big)
    lat = results.get("latency") or {}
    restart = big.get("restart") or {}
    stop = big.get("stop") or {}
    fp = big.get("footprint") or {}
    return {
        "studios": big.get("studios"),
        "start_ratio": (at_1000.get("start") or {}).get("start_ratio"),
        "start_ratio_studios": at_1000.get("studios"),
        "start_overhead_p50_ms": lat.get("overhead_p50_ms"),
        "start_overhead_p99_ms": lat.get("overhead_p99_ms"),
        "writes_per_start": (big.get("api_start") or {}).get("writes_per_start"),
        "reads_per_start": (big.get("api_start") or {}).get("reads_per_start"),
        "writes_per_stop": stop.get("writes_per_stop"),
        "writes_per_expiry": (big.get("expiry_burst") or {}).get("writes_per_expiry"),
        "expiry_p99_s": (big.get("expiry_burst") or {}).get("p99_s"),
        # its floor: as many pods deleted directly at one instant, same run (not a contract key)
        "expiry_direct_p99_s": (big.get("expiry_direct") or {}).get("p99_s"),
        "expiry_single_s": (big.get("expiry_single") or {}).get("p50_s"),
        "rss_mb": fp.get("rss_mb"),
        "idle_cpu_pct": fp.get("idle_cpu_pct"),
        "restart_s": restart.get("restart_s"),
    }


GOALS: list[tuple[str, str, float, int]] = [
    # key, goal, limit (value <= limit), the N the goal is stated for
    ("start_ratio", "start_ratio <= 1.5 at N = 1,000", 1.5, 1000),
    ("start_overhead_p50_ms", "start overhead p50 <= 50 ms", 50.0, 0),
    ("writes_per_start", "writes per start <= contract minimum (5) + 2", 7.0, 0),
    ("expiry_p99_s", "expiry burst (1,000 of 5,000) p99 <= 5 s", 5.0, 5000),
    ("expiry_single_s", "single expiry <= 1 s late", 1.0, 0),
    ("rss_mb", "RSS <= 250 MB at N = 5,000 (half running)", 250.0, 5000),
    ("idle_cpu_pct", "idle CPU <= 2% of a core", 2.0, 0),
    ("restart_s", "restart until reconciled <= 30 s at N = 5,000", 30.0, 5000),
]


def goals(top: dict[str, Any]) -> list[dict[str, Any]]:
    """`met` is None when not measured, or measured below the N the goal is stated for."""
    out = []
    n = top.get("studios") or 0
    for key, text, limit, at_n in GOALS:
        value = top.get(key)
        met = None if value is None or n < at_n else value <= limit
        out.append(
            {
                "key": key,
                "goal": text,
                "value": value,
                "limit": limit,
                "at_n": at_n,
                "met": met,
                "indicative": value is not None and n < at_n and value <= limit,
            }
        )
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"Run `{results['run_id']}` on {m['date']}: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, "
        f"Python {m['python']}, Kubernetes {m['kubernetes']} (local control plane + kwok), kopf {m['kopf']}, "
        f"commit {m['git_commit'] or '?'}; concurrency {s['concurrency']}, operator --workers {s['operator_workers']}, "
        f"STUDIO_API_WORKERS {s['api_workers']}"
        + (f", operator args {' '.join(s['operator_args'])}" if s["operator_args"] else "")
        + (f", env {s['operator_env']}" if s["operator_env"] else "")
        + f"; {results.get('duration_s', 0):.0f} s in all; load average {m.get('loadavg_start', ['?'])[0]} at the "
        f"start, {m.get('loadavg_end', ['?'])[0]} at the end.",
        "",
        "| N | operator start (s) | direct (s) | ratio | to Running op / direct (s) | writes/start | reads/start "
        "| writes/stop | expiry burst p50 / p99 (s) | direct deletion p99 (s) | single expiry (s) | RSS (MB) "
        "| idle CPU | restart (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("sizes") or []:
        if "restart" not in r:
            lines.append(f"| {r['studios']} | incomplete: {r.get('error', '?')} |" + " |" * 12)
            continue
        st, a, stop = r["start"], r["api_start"], r.get("stop") or {}
        eb, es, fp, rs = r["expiry_burst"], r["expiry_single"], r["footprint"], r["restart"]
        lines.append(
            f"| {r['studios']} | {_fmt(st['operator_s'])} | {_fmt(st['direct_s'])} | **{_fmt(st['start_ratio'])}** "
            f"| {_fmt(st['operator_running_s'])} / {_fmt(st['direct_ready_s'])} | **{_fmt(a['writes_per_start'])}** "
            f"| {_fmt(a['reads_per_start'])} | {_fmt(stop.get('writes_per_stop'))} "
            f"| {_fmt(eb['p50_s'])} / **{_fmt(eb['p99_s'])}** ({eb['studios']}) "
            f"| {_fmt((r.get('expiry_direct') or {}).get('p99_s'))} | {_fmt(es['p50_s'])} "
            f"| **{_fmt(fp['rss_mb'], 1)}** | {_fmt(fp['idle_cpu_pct'])}% | {_fmt(rs['restart_s'])} |"
        )
    lat = results.get("latency")
    if lat:
        lines += [
            "",
            f"Start latency ({lat['samples']} sequential starts): pod exists after p50 {_fmt(lat['operator_p50_ms'], 1)} ms "
            f"(p99 {_fmt(lat['operator_p99_ms'], 1)}) via a Studio vs p50 {_fmt(lat['direct_p50_ms'], 1)} ms "
            f"(p99 {_fmt(lat['direct_p99_ms'], 1)}) for a direct pod create: overhead "
            f"**p50 {_fmt(lat['overhead_p50_ms'], 1)} ms**, p99 {_fmt(lat['overhead_p99_ms'], 1)} ms. To Running/Ready: "
            f"p50 {_fmt(lat['to_running_operator_p50_ms'], 1)} ms vs {_fmt(lat['to_running_direct_p50_ms'], 1)} ms.",
        ]
    for r in [r for r in results.get("sizes") or [] if "restart" in r]:
        a = r["api_start"]
        verbs = ", ".join(f"{k} {v / r['studios']:.2f}" for k, v in sorted(a["operator_by_verb"].items()))
        stop = r.get("stop") or {}
        sverbs = (
            ", ".join(
                f"{k} {v / stop['studios']:.2f}" for k, v in sorted(stop.get("operator_by_verb", {}).items())
            )
            if stop
            else "-"
        )
        eb = r["expiry_burst"]
        lines.append(
            f"\nN={r['studios']}: operator requests per start by verb: {verbs}; per stop: {sverbs}; "
            f"per expiry {_fmt(eb['writes_per_expiry'])} writes (+{_fmt(eb['writes_per_backdate'])} when backdated). "
            f"Direct baseline before / after the operator: {_fmt(r['start'].get('direct_before_s'))} / "
            f"{_fmt(r['start'].get('direct_after_s'))} s (the table shows their mean). "
            f"Cluster-wide writes per start (all components, apiserver_request_total): operator "
            f"{_fmt(a['cluster_writes_per_start'])} vs direct {_fmt(r['api_direct']['cluster_writes_per_start'])}. "
            f"Expiry burst: {eb['prepared_before_deadline']}/{eb['studios']} scheduled before the deadline, "
            f"{eb['missed']} missed; operator acted (Stopping) p99 {_fmt(eb['acted_p99_s'])} s. Restart: live after "
            f"{_fmt(r['restart']['startup_s'])} s, {r['restart']['operator_writes']} writes, "
            f"{r['restart'].get('reconciles', '-')} reconciles for {r['restart']['studios_known']} studios. "
            f"Operator CPU per start {_fmt(a.get('cpu_ms_per_start'), 1)} ms, reconciles per start "
            f"{_fmt(a.get('reconciles_per_start'))} (avg {_fmt(a.get('reconcile_avg_ms'))} ms each); per stop "
            f"{_fmt(stop.get('cpu_ms_per_stop'), 1)} ms, {_fmt(stop.get('reconciles_per_stop'))} reconciles; "
            f"per expiry {_fmt(eb.get('cpu_ms_per_expiry'), 1)} ms, {_fmt(eb.get('reconciles_per_expiry'))} reconciles."
        )
    top = results["headline"]
    lines += ["", "| goal | measured | met |", "|---|---:|:---:|"]
    for g in results["goals"]:
        if g["met"] is None and g["value"] is not None:
            met = f"(N={top['studios']}: {'within' if g['indicative'] else '**over**'})"
        else:
            met = "-" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['goal']} | {_fmt(g['value'])} | {met} |")
    if results.get("notes"):
        lines += ["", *[f"- note: {n}" for n in results["notes"]]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r for r in results.get("sizes") or [] if "restart" in r]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(
        f"studio-operator bench {results['machine']['date']} ({results['machine']['cpu_count']} CPUs, "
        f"k8s {results['machine']['kubernetes']})"
    )
    ax = axes[0][0]
    for r in sizes:
        st = r["start"]
        line = ax.plot(
            st["curve_operator_s"],
            _ys(len(st["curve_operator_s"]), r["studios"]),
            label=f"operator N={r['studios']} ({st['operator_s']:.1f}s)",
        )
        ax.plot(
            st["curve_direct_s"],
            _ys(len(st["curve_direct_s"]), r["studios"]),
            linestyle="--",
            color=line[0].get_color(),
            label=f"direct N={r['studios']} ({st['direct_s']:.1f}s)",
        )
    ax.set_title("1. start throughput: session pods existing")
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("fraction of N")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    lat = results.get("latency")
    if lat:
        for key, label in (("operator_ms", "Studio -> pod"), ("direct_ms", "direct pod create")):
            vals = sorted(lat[key])
            ax.plot(
                vals,
                [(i + 1) / len(vals) for i in range(len(vals))],
                label=f"{label} (p50 {pct(vals, 0.5):.0f} ms)",
            )
        ax.legend(fontsize=8)
    ax.set_title("2. start latency (sequential), CDF")
    ax.set_xlabel("ms until the pod exists")

    ax = axes[1][0]
    for r in sizes:
        late = r["expiry_burst"]["lateness_s"]
        if late:
            line = ax.plot(
                late,
                [(i + 1) / len(late) for i in range(len(late))],
                label=f"N={r['studios']}, burst {r['expiry_burst']['studios']} (p99 {r['expiry_burst']['p99_s']}s)",
            )
            floor = (r.get("expiry_direct") or {}).get("gone_s")
            if floor:
                ax.plot(
                    floor,
                    [(i + 1) / len(floor) for i in range(len(floor))],
                    linestyle="--",
                    color=line[0].get_color(),
                    label=f"N={r['studios']}, as many pods deleted directly (p99 {r['expiry_direct']['p99_s']}s)",
                )
    ax.axvline(5, color="grey", linestyle=":", label="goal p99 5 s")
    ax.set_title("4. expiry lateness (deadline -> phase Stopped), CDF")
    ax.set_xlabel("seconds late")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    if sizes:
        xs = [str(r["studios"]) for r in sizes]
        w = [r["api_start"]["writes_per_start"] or 0 for r in sizes]
        rss = [r["footprint"]["rss_mb"] or 0 for r in sizes]
        pos = list(range(len(xs)))
        bars = ax.bar([i - 0.2 for i in pos], w, width=0.35, label="operator writes per start")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(pos, xs)
        ax.set_xlim(-0.8, len(xs) - 0.2)
        ax.set_ylim(0, max([*w, 1]) * 1.35)
        ax.set_xlabel("N studios")
        ax.set_ylabel("writes per start")
        ax2 = ax.twinx()
        bars2 = ax2.bar(
            [i + 0.2 for i in pos], rss, width=0.35, color="tab:orange", label="RSS MB (half running)"
        )
        ax2.bar_label(bars2, fmt="%.0f", fontsize=8)
        ax2.set_ylim(0, max([*rss, 1]) * 1.35)
        ax2.set_ylabel("operator RSS (MB)")
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_title("3/5. API writes per start and memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ys(count: int, n: int) -> list[float]:
    return [(i + 1) / max(count, 1) for i in range(count)]


def write_results(results: dict[str, Any], cfg: Config) -> Path:
    top = headline(results)
    results["headline"] = top
    results["goals"] = goals(top)
    doc = {**top, **{k: v for k, v in results.items() if k not in top}}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    (cfg.out / "latest.md").write_text(markdown(results))
    if cfg.history:
        hist = cfg.out / "history"
        hist.mkdir(exist_ok=True)
        stamp = results["machine"]["date"].replace(":", "").replace("-", "")
        (hist / f"{stamp}-{cfg.label or 'run'}.json").write_text(json.dumps(doc, indent=1) + "\n")
    if cfg.plot:
        try:
            plot(results, cfg.out / "latest.png")
        except ImportError as exc:
            log(f"no plot ({exc}); pip install matplotlib")
    return cfg.out / "latest.json"


# ---------------------------------------------------------------------------------------------
# command line


def parse(argv: Sequence[str]) -> tuple[Config, bool, Path | None]:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes",
        default=env("BENCH_SIZES", "100"),
        help="comma-separated N for the throughput/expiry/footprint/restart scenarios [BENCH_SIZES]",
    )
    p.add_argument(
        "--latency-samples",
        type=int,
        default=int(env("BENCH_LATENCY_SAMPLES", "50")),
        help="sequential single starts for the latency figures; 0 skips [BENCH_LATENCY_SAMPLES]",
    )
    p.add_argument(
        "--expiry-burst",
        type=int,
        default=int(env("BENCH_EXPIRY_BURST", "0")) or None,
        help="studios backdated to expire at once (default: --expiry-fraction of N) [BENCH_EXPIRY_BURST]",
    )
    p.add_argument(
        "--expiry-fraction",
        type=float,
        default=float(env("BENCH_EXPIRY_FRACTION", "0.2")),
        help="default burst as a fraction of N (the goal: 1,000 of 5,000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("BENCH_WORKERS", "64")),
        help="operator --workers [BENCH_WORKERS]",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(env("BENCH_CONCURRENCY", "0")) or None,
        help="harness request concurrency for both the studios and the baseline (default: --workers)",
    )
    p.add_argument(
        "--api-workers",
        type=int,
        default=int(env("STUDIO_API_WORKERS", "64")),
        help="studio_operator.kube thread pool, for the operator and the harness [STUDIO_API_WORKERS]",
    )
    p.add_argument(
        "--operator-arg", action="append", default=[], help="extra argument for the operator (repeat)"
    )
    p.add_argument("--operator-env", action="append", default=[], help="KEY=VALUE for the operator (repeat)")
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=float(env("BENCH_IDLE_SECONDS", "10")),
        help="window for RSS/CPU at rest",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=float(env("BENCH_SETTLE_SECONDS", "3")),
        help="quiet time that counts as settled between phases",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(env("BENCH_KUBECONFIG", str(ROOT / ".cluster" / "kubeconfig"))),
    )
    p.add_argument("--out", type=Path, default=Path(env("BENCH_OUT", str(ROOT / "bench" / "results"))))
    p.add_argument("--label", default=env("BENCH_LABEL", ""), help="name of this run in results/history")
    p.add_argument(
        "--profile",
        action="store_true",
        default=env("BENCH_PROFILE", "") not in ("", "0"),
        help="record the operator with py-spy (pip install py-spy) [BENCH_PROFILE=1]",
    )
    p.add_argument(
        "--exclusive-wait",
        type=float,
        default=float(env("BENCH_EXCLUSIVE_WAIT", "0")),
        help="before each phase wait up to this many seconds until no other studio operator runs "
        "(they reconcile every namespace, ours included) [BENCH_EXCLUSIVE_WAIT]",
    )
    p.add_argument(
        "--no-bracket",
        dest="bracket",
        action="store_false",
        help="run the direct baseline only before the operator (default: before and after, mean of both)",
    )
    p.add_argument(
        "--bracket-max",
        type=int,
        default=int(env("BENCH_BRACKET_MAX", "1000")),
        help="no baseline after the operator above this N: with 10,000 pods already in the cluster "
        "it is the longest phase of a run (17 min at 5,000 on 2 CPUs) [BENCH_BRACKET_MAX]",
    )
    p.add_argument("--no-plot", dest="plot", action="store_false")
    p.add_argument("--no-history", dest="history", action="store_false")
    p.add_argument("--keep", action="store_true", help="leave the run's objects in place")
    p.add_argument(
        "--cleanup", action="store_true", help="only delete what earlier runs left behind, then exit"
    )
    p.add_argument(
        "--render", type=Path, help="only rewrite latest.{json,md,png} in --out from this results JSON"
    )
    a = p.parse_args(argv)
    sizes = [int(x) for x in str(a.sizes).replace(" ", "").split(",") if x]
    if not sizes or min(sizes) < 3:
        p.error("--sizes: each N must be >= 3")
    operator_env = dict(kv.split("=", 1) for kv in a.operator_env)
    cfg = Config(
        sizes=sizes,
        latency_samples=a.latency_samples,
        expiry_burst=a.expiry_burst,
        expiry_fraction=a.expiry_fraction,
        concurrency=a.concurrency or a.workers,
        workers=a.workers,
        api_workers=a.api_workers,
        out=a.out,
        kubeconfig=a.kubeconfig.resolve(),
        idle_seconds=a.idle_seconds,
        settle_seconds=a.settle_seconds,
        operator_args=a.operator_arg,
        operator_env=operator_env,
        profile=a.profile,
        exclusive_wait=a.exclusive_wait,
        bracket=a.bracket,
        bracket_max=a.bracket_max,
        plot=a.plot,
        label=a.label,
        history=a.history,
        keep=a.keep,
    )
    return cfg, a.cleanup, a.render


async def amain(cfg: Config, cleanup_only: bool) -> int:
    if not cfg.kubeconfig.exists():
        raise BenchError(f"{cfg.kubeconfig} not found: start the local control plane (make cluster-up)")
    if cleanup_only:
        await cleanup_runs(Api(cfg.kubeconfig, cfg.api_workers), None)
        return 0
    bench = Bench(cfg)
    log(
        f"run {bench.run_id}: sizes {cfg.sizes}, latency samples {cfg.latency_samples}; work dir {bench.workdir}"
    )
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        results = await bench.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log("cleaning up")
        await asyncio.shield(bench.cleanup())
    path = write_results(results, cfg)
    sys.stdout.write(markdown(results))
    log(f"wrote {path} (+ latest.md{', latest.png' if cfg.plot else ''})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    cfg, cleanup_only, render = parse(sys.argv[1:] if argv is None else argv)
    if render is not None:
        cfg.history = False
        path = write_results(json.loads(render.read_text()), cfg)
        log(f"wrote {path} (+ latest.md{', latest.png' if cfg.plot else ''}) from {render}")
        return 0
    try:
        return asyncio.run(amain(cfg, cleanup_only))
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
