"""Helpers of the reliability suite: an expected-state model, the invariant checker, a pod tracker
and API calls that ride out a restarting operator (its webhooks answer nothing while it is down).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from loopback import free_ports, http_get

import studio_helpers as sh
from kube_helpers import CLUSTER_DIR, Cluster, load_configuration
from studio_operator.api.common import NAMESPACE_LABEL

T = TypeVar("T")
MANAGED = f"{sh.MANAGED_BY}=studio-operator"

# Transient answers while the operator (which serves the admission webhooks) or an API server
# restarts: retry them, everything else is a real answer.
_TRANSIENT = re.compile(r"failed calling webhook|connection refused|context deadline|timeout|EOF", re.I)


def transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        if exc.status in (429, 502, 503, 504) or exc.status == 0 or exc.status is None:
            return True
        return exc.status == 500 and bool(_TRANSIENT.search(str(exc.body or "")))
    return isinstance(exc, OSError) or type(exc).__name__ in ("MaxRetryError", "ProtocolError")


def retrying(call: Callable[[], T], timeout: float = 120, what: str = "") -> T:
    """``call()`` until it does not fail transiently (webhook down, API server restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception as exc:
            if not transient(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


def full_only(full_scale: bool) -> None:
    """Skip in the trimmed run (`make test`); the full run is `make test-reliability`."""
    if not full_scale:
        import pytest

        pytest.skip("long outage: runs in `make test-reliability` (STUDIO_RELIABILITY_FULL=1)")


def ignore_404(call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != 404:
            raise


# ---------------------------------------------------------------- what should be


@dataclass
class Expected:
    name: str
    state: str = "Running"  # spec.state the test set last
    mounts: bool = False
    deleted: bool = False
    sessions: int = 0  # Running periods the operator had to start (each one pod)
    stop_reasons: tuple[str, ...] = ("NeverStarted",)


@dataclass
class Model:
    namespace: str
    studios: dict[str, Expected] = field(default_factory=dict)
    connect_binding: bool = False  # a studios-connect binding exists: running studios get a RoleBinding

    def add(self, name: str, state: str, mounts: bool = False) -> Expected:
        exp = Expected(name, state, mounts, sessions=1 if state == "Running" else 0)
        if state == "Running":
            exp.stop_reasons = ("UserRequested",)
        self.studios[name] = exp
        return exp

    def set_state(self, name: str, state: str) -> None:
        exp = self.studios[name]
        if state == exp.state:
            return
        exp.state = state
        if state == "Running":
            exp.sessions += 1
            exp.stop_reasons = ("UserRequested",)

    def live(self, state: str | None = None) -> list[str]:
        return sorted(
            n for n, e in self.studios.items() if not e.deleted and (state is None or e.state == state)
        )


class Load:
    """Studio operations as a user issues them, riding out the operator's downtime."""

    def __init__(self, cluster: Cluster, model: Model) -> None:
        self.cluster = cluster
        self.model = model
        self.ns = model.namespace

    def create(self, name: str, state: str, mounts: bool) -> None:
        self.model.add(name, state, mounts)
        spec: dict[str, Any] = {"state": state}
        if mounts:
            spec["mounts"] = [{"dataLink": "data"}]

        def call() -> None:
            try:
                sh.create_studio(self.cluster, self.ns, name, **spec)
            except ApiException as exc:
                if exc.status != 409:  # an earlier attempt got through
                    raise

        retrying(call)

    def set_state(self, name: str, state: str) -> None:
        self.model.set_state(name, state)
        retrying(lambda: sh.set_state(self.cluster, self.ns, name, state))

    def delete(self, name: str) -> None:
        self.model.studios[name].deleted = True
        retrying(lambda: ignore_404(lambda: sh.delete(self.cluster, self.ns, name)))


# ---------------------------------------------------------------- what is


def _items(resp: Any) -> list[Any]:
    return list(resp.items)


def snapshot(cluster: Cluster, ns: str) -> dict[str, Any]:
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    studios = cluster.custom.list_namespaced_custom_object(sh.GROUP, sh.VERSION, ns, "studios")["items"]
    return {
        "studios": {s["metadata"]["name"]: s for s in studios},
        "pods": _items(cluster.core.list_namespaced_pod(ns, label_selector=MANAGED)),
        "services": _items(cluster.core.list_namespaced_service(ns, label_selector=MANAGED)),
        "pvcs": _items(cluster.core.list_namespaced_persistent_volume_claim(ns, label_selector=MANAGED)),
        "pvs": _items(cluster.core.list_persistent_volume(label_selector=f"{NAMESPACE_LABEL}={ns}")),
        "roles": _items(rbac.list_namespaced_role(ns, label_selector=MANAGED)),
        "rolebindings": _items(rbac.list_namespaced_role_binding(ns, label_selector=MANAGED)),
    }


def _owner(obj: Any) -> str:
    return str((obj.metadata.labels or {}).get(sh.STUDIO_LABEL, ""))


def problems(cluster: Cluster, model: Model, snap: dict[str, Any] | None = None) -> list[str]:
    """Everything that differs from the model; empty once the operator has converged."""
    ns = model.namespace
    snap = snap or snapshot(cluster, ns)
    out: list[str] = []
    studios: dict[str, Any] = snap["studios"]
    by_owner: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for kind in ("pods", "services", "pvcs", "pvs", "roles", "rolebindings"):
        for obj in snap[kind]:
            by_owner[_owner(obj)][kind].append(obj)

    for name, exp in model.studios.items():
        body = studios.get(name)
        if exp.deleted:
            if body is not None:
                fins = body["metadata"].get("finalizers")
                out.append(f"{name}: deleted but still there (finalizers {fins})")
            continue
        if body is None:
            out.append(f"{name}: missing")
            continue
        st = body.get("status") or {}
        gen = body["metadata"].get("generation")
        if st.get("observedGeneration") != gen:
            out.append(f"{name}: observedGeneration {st.get('observedGeneration')} != {gen}")
        owned = by_owner.get(name, {})
        pods = [p for p in owned.get("pods", []) if p.metadata.deletion_timestamp is None]
        if exp.state == "Running":
            if st.get("phase") != "Running" or not sh.cond_true(body, "Ready"):
                out.append(f"{name}: phase {st.get('phase')} ({st.get('message')}), want Running+Ready")
            if len(owned.get("pods", [])) != 1 or len(pods) != 1:
                out.append(f"{name}: {len(owned.get('pods', []))} pods ({len(pods)} live), want 1")
            elif (st.get("session") or {}).get("podName") != pods[0].metadata.name:
                out.append(f"{name}: session.podName {(st.get('session') or {}).get('podName')} != pod")
            if len(owned.get("services", [])) != 1:
                out.append(f"{name}: {len(owned.get('services', []))} services, want 1")
            if len(owned.get("roles", [])) != 1:
                out.append(f"{name}: {len(owned.get('roles', []))} connect roles, want 1")
            want_rb = 1 if model.connect_binding else 0
            if len(owned.get("rolebindings", [])) != want_rb:
                out.append(f"{name}: {len(owned.get('rolebindings', []))} rolebindings, want {want_rb}")
        else:
            if st.get("phase") != "Stopped" or st.get("stopReason") not in exp.stop_reasons:
                out.append(
                    f"{name}: phase {st.get('phase')}/{st.get('stopReason')}, want Stopped/{exp.stop_reasons}"
                )
            if st.get("session"):
                out.append(f"{name}: stopped but status.session is {st.get('session')}")
            if owned.get("pods"):
                out.append(f"{name}: stopped but has {len(owned['pods'])} pods")
            # The Service and connect grant live as long as the studio: one each at most.
            for kind in ("services", "roles", "rolebindings"):
                if len(owned.get(kind, [])) > 1:
                    out.append(f"{name}: stopped with {len(owned[kind])} {kind}")
        if exp.mounts and exp.sessions:
            # one PV + PVC per (studio, data link), kept while the studio exists
            for kind in ("pvcs", "pvs"):
                if len(owned.get(kind, [])) != 1:
                    out.append(f"{name}: {len(owned.get(kind, []))} {kind}, want 1")

    known = {n for n, e in model.studios.items() if not e.deleted}
    for owner, kinds in by_owner.items():
        if owner in known:
            continue
        for kind, objs in kinds.items():
            out.append(f"orphan {kind} of {owner or '<no studio label>'}: {[o.metadata.name for o in objs]}")
    unknown = set(studios) - set(model.studios)
    if unknown:
        out.append(f"unexpected studios {sorted(unknown)}")
    return out


def wait_converged(cluster: Cluster, model: Model, timeout: float = 300, interval: float = 0.5) -> float:
    """Seconds until ``problems`` is empty (AssertionError with the last problems on timeout)."""
    started = time.monotonic()
    last: list[str] = []
    while True:
        try:
            last = problems(cluster, model)
        except ApiException as exc:
            last = [f"API error {exc.status}"]
        if not last:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            shown = "\n  ".join(last[:40])
            raise AssertionError(f"not converged after {timeout:.0f}s ({len(last)} problems):\n  {shown}")
        time.sleep(interval)


# ---------------------------------------------------------------- pods as they come and go


class PodTracker:
    """Records every managed pod (uid) per studio seen by a watch, to count sessions started."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.cluster = cluster
        self.ns = ns
        self.uids: dict[str, set[str]] = defaultdict(set)
        self.max_live: Counter[str] = Counter()
        self.history: dict[str, list[str]] = defaultdict(list)
        self._live: dict[str, set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"pods-{ns}")

    def start(self) -> PodTracker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _record(self, kind: str, pod: Any) -> None:
        studio = _owner(pod)
        uid = pod.metadata.uid
        with self._lock:
            if kind != "MODIFIED" or uid not in self.uids[studio]:
                self.history[studio].append(f"{time.strftime('%H:%M:%S')} {kind} {uid[:8]}")
            if kind == "DELETED":
                self._live[studio].discard(uid)
                return
            self.uids[studio].add(uid)
            if pod.metadata.deletion_timestamp is None:
                self._live[studio].add(uid)
            else:
                self._live[studio].discard(uid)
            self.max_live[studio] = max(self.max_live[studio], len(self._live[studio]))

    def _run(self) -> None:
        api = client.CoreV1Api(self.cluster.new_admin_client())
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    listed = api.list_namespaced_pod(self.ns, label_selector=MANAGED)
                    for pod in listed.items:
                        self._record("ADDED", pod)
                    rv = listed.metadata.resource_version
                w = watch.Watch()
                for event in w.stream(
                    api.list_namespaced_pod,
                    self.ns,
                    label_selector=MANAGED,
                    resource_version=rv,
                    timeout_seconds=5,
                ):
                    self._record(event["type"], event["object"])
                    rv = event["object"].metadata.resource_version
                    if self._stop.is_set():
                        w.stop()
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                else:
                    time.sleep(0.5)
            except Exception:
                time.sleep(0.5)

    def explain(self, studios: Iterable[str]) -> str:
        with self._lock:
            return "\n".join(f"{s}: {', '.join(self.history.get(s, []))}" for s in studios)

    def sessions(self) -> dict[str, int]:
        with self._lock:
            return {k: len(v) for k, v in self.uids.items()}

    def over(self, most: int) -> str:
        """The studios with more than `most` pods, each with what the watch saw of them."""
        with self._lock:
            return "; ".join(
                f"{k}: {len(v)} pods [{', '.join(self.history[k][:8])}]"
                for k, v in sorted(self.uids.items())
                if len(v) > most
            )


# ---------------------------------------------------------------- a second API server


class ApiServer:
    """One more kube-apiserver process on the local control plane's etcd, with the same flags.

    Same PKI, same admission configuration, same storage: objects written through it are the
    cluster's objects. Only its port differs; ``kubeconfig`` points at it.
    """

    def __init__(self, argv: list[str], port: int, kubeconfig: Path, log_path: Path) -> None:
        self.argv = argv
        self.port = port
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.config = load_configuration(kubeconfig)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        import ssl

        ctx = ssl.create_default_context(cafile=self.config.ssl_ca_cert)
        ctx.load_cert_chain(self.config.cert_file, self.config.key_file)
        return http_get(f"{self.url}/readyz", ctx=ctx)[0] == 200

    def start(self, timeout: float = 90) -> float:
        """Start the process and wait for /readyz; returns the seconds it took."""
        if self.running:
            return 0.0
        started = time.monotonic()
        with open(self.log_path, "ab") as out:
            out.write(f"=== start {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=CLUSTER_DIR,
                start_new_session=True,
            )
        while not self.ready():
            if not self.running:
                raise AssertionError(f"kube-apiserver exited: {self.log_path}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"kube-apiserver not ready after {timeout}s: {self.log_path}")
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5) -> float:
        """SIGTERM (graceful shutdown), then SIGKILL after `grace` seconds: with open watches
        kube-apiserver's graceful shutdown takes 30 s and more. SIGKILL at once with
        ``sig=signal.SIGKILL`` (connections just drop). Returns the seconds it took."""
        started = time.monotonic()
        if self.process is None or self.process.poll() is not None:
            return 0.0
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - started

    def restart(self, down_seconds: float = 0.0) -> float:
        self.stop()
        time.sleep(down_seconds)
        return self.start()


# ---------------------------------------------------------------- misc


def studio_json(cluster: Cluster, ns: str, name: str) -> str:
    try:
        return json.dumps(sh.status(sh.get(cluster, ns, name)), indent=1, default=str)
    except ApiException as exc:
        return f"<{exc.status}>"


CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def tracebacks(log: str) -> list[str]:
    """One line per traceback in a log: the log line that announced it, then the exception (the
    last of a chain: `raise ... from exc` prints the cause first, then the exception raised)."""
    lines = log.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            chained = i >= 2 and lines[i - 2].startswith(CHAINED) and bool(out)
            announced = lines[i - 1][:160] if i else ""
            # the exception line is the first unindented line after the traceback
            for nxt in lines[i + 1 :]:
                if nxt and not nxt.startswith((" ", "\t")):
                    if chained:  # the same logged error: keep its announcement
                        out[-1] = f"{out[-1].split(' -> ', 1)[0]} -> {nxt[:160]}"
                    else:
                        out.append(f"{announced} -> {nxt[:160]}")
                    break
    return out


def failed_reconciles(log: str, namespace: str) -> int:
    """Reconciles of this namespace's studios that raised (logged, retried with backoff). The
    operators here watch every namespace; other tests' studios are not this test's business."""
    return sum(
        1 for line in log.splitlines() if f"reconcile of {namespace}/" in line and "failed (attempt" in line
    )


def crashes(log: str) -> list[str]:
    """Tracebacks that are not a reconcile failing (and being retried with backoff)."""
    return [t for t in tracebacks(log) if "reconcile of" not in t]


def chunks(items: Iterable[T], size: int) -> list[list[T]]:
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------- slow responses


class DelayProxy:
    """A TCP proxy (TLS passes through untouched) that holds every chunk the API server sends
    back for ``delay`` seconds: slow responses and slow watch streams for whoever connects to it.
    ``kubeconfig`` is a copy of the original pointing at the proxy."""

    def __init__(self, kubeconfig: Path, work_dir: Path) -> None:
        import asyncio
        import urllib.parse

        import yaml

        doc = yaml.safe_load(kubeconfig.read_text())
        server = urllib.parse.urlparse(doc["clusters"][0]["cluster"]["server"])
        self.target = (server.hostname or "127.0.0.1", server.port or 443)
        (self.port,) = free_ports(1)
        for entry in doc["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = work_dir / f"kubeconfig-slow-{self.port}"
        self.kubeconfig.write_text(yaml.safe_dump(doc))
        self.kubeconfig.chmod(0o600)
        self.delay = 0.0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="delay-proxy")
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        import asyncio

        loop = self._loop
        asyncio.set_event_loop(loop)

        async def pump(src: Any, dst: Any, delayed: bool) -> None:
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def sender() -> None:
                while True:
                    release, data = await queue.get()
                    wait = release - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
                with contextlib.suppress(Exception):
                    dst.close()

            task = asyncio.create_task(sender())
            try:
                while True:
                    data = await src.read(65536)
                    queue.put_nowait((loop.time() + (self.delay if delayed else 0.0), data))
                    if not data:
                        break
            except Exception:
                queue.put_nowait((loop.time(), b""))
            with contextlib.suppress(Exception):
                await task

        async def handle(reader: Any, writer: Any) -> None:
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(
                pump(reader, up_writer, False), pump(up_reader, writer, True), return_exceptions=True
            )

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()
            async with server:
                await self._stop.wait()
            for task in asyncio.all_tasks(loop) - {asyncio.current_task()}:
                task.cancel()
            await asyncio.gather(
                *(asyncio.all_tasks(loop) - {asyncio.current_task()}), return_exceptions=True
            )

        self._stop = asyncio.Event()
        loop.run_until_complete(main())
        loop.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.kubeconfig.unlink()
