"""Watches with arrival timestamps, and trackers of pods and studios built on them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import urllib3
from harness import STUDIO_LABEL, BenchError, Relist, Signal
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration

# ---------------------------------------------------------------------------------------------
# watches: one thread per collection, timestamps taken when an event arrives


def _configuration(kubeconfig: Path) -> Configuration:
    """The official client's configuration for the watch threads (the harness's timed requests go
    through studio_operator.kube like the operator's)."""
    configuration = Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return configuration


class Watcher:
    """LIST then WATCH one collection (its own connection pool); on_event(type, obj, time)."""

    def __init__(
        self,
        kubeconfig: Path,
        path: str,
        selector: str | None,
        on_event: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        self.api = ApiClient(_configuration(kubeconfig))
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
                            raise Relist
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if event.get("type") != "BOOKMARK":
                            self.on_event(str(event.get("type")), obj, now)
                    if self.stopped.is_set():
                        break
            except Relist:
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
    """First-seen / Ready / terminating / deleted times of pods, per uid, grouped by their studio
    label."""

    def __init__(self) -> None:
        self.signal = Signal()
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.terminating: dict[str, float] = {}
        self.studio: dict[str, str] = {}

    def on_event(self, typ: str, obj: dict[str, Any], t: float) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid"))
        with self.lock:
            self.seen.setdefault(uid, t)
            self.studio[uid] = (meta.get("labels") or {}).get(STUDIO_LABEL, "")
            if meta.get("deletionTimestamp"):
                self.terminating.setdefault(uid, t)
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
        """studio -> earliest time in `table` (seen/ready/terminating/deleted) at or after `after`."""
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
