"""The operator under test as a process of its own: start, stop, metrics, footprint."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpu import process_cpu_s
from harness import ROOT, BenchError, log, parse_prometheus, rnd
from loopback import free_ports, http_get

# ---------------------------------------------------------------------------------------------
# the operator process


if TYPE_CHECKING:
    from scenarios import Bench


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
        cpu = process_cpu_s(self.pid)
        if cpu is None:
            raise ProcessLookupError(f"operator process {self.pid} is gone")
        return cpu

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
