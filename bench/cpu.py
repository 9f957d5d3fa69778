"""Where the machine's CPU went during a phase.

A thread samples /proc four times a second: the CPU time of the benchmark's control plane, one
figure per component (the binaries in the cluster's bin directory: kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, kwok), of the operator processes the harness started, of
the harness itself, and of the whole machine (busy and, on a virtual machine, stolen). A phase's
window then says, in cores, who used the CPUs while it ran: whether the machine was saturated, and
how much of it the operator was. The operator's own figure per start or expiry stays its /proc
counter read at phase boundaries (`Operator.cpu_seconds`); this is the context around it.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

PERIOD_S = 0.25
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")
TICK = os.sysconf("SC_CLK_TCK")
RECHECK_EVERY = 20  # readings between two looks at the processes that were none of ours


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def component_of(argv0: str, bin_dir: Path) -> str | None:
    """The control-plane component a process is, when its binary is in the cluster's bin dir
    (another control plane on the machine, e.g. the tests', is not this benchmark's)."""
    path = Path(argv0)
    if path.name in COMPONENTS and path.parent == bin_dir:
        return path.name
    return None


class CpuSampler:
    """Cumulative CPU seconds per component, sampled in a daemon thread; `window` turns two
    samples into average cores."""

    def __init__(self, bin_dir: Path, operator_pids: Callable[[], set[int]], period: float = PERIOD_S):
        self.bin_dir = bin_dir.resolve() if bin_dir.exists() else bin_dir
        self.operator_pids = operator_pids
        self.period = period
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self._kinds: dict[int, str | None] = {}  # pid -> component; None: asked again now and then
        self._readings = 0
        self._gone: dict[str, float] = {}  # per component: what its ended processes used
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _component(self, pid: int) -> str | None:
        if pid not in self._kinds:
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
            except OSError:
                argv0 = ""
            self._kinds[pid] = component_of(argv0, self.bin_dir)
        return self._kinds[pid]

    def sample(self) -> dict[str, float]:
        """One reading: cumulative CPU seconds per component (processes that ended keep counting
        what they used, so a restarted operator does not make a window negative)."""
        self._readings += 1
        if self._readings % RECHECK_EVERY == 0:
            # what a process is may change (exec), and a pid may be reused: ask the others again
            self._kinds = {pid: kind for pid, kind in self._kinds.items() if kind is not None}
        named: dict[int, str] = {pid: "operator" for pid in self.operator_pids()}
        named[os.getpid()] = "harness"
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) not in named:
                kind = self._component(int(entry.name))
                if kind is not None:
                    named[int(entry.name)] = kind
        now: dict[int, tuple[str, float]] = {}
        for pid, kind in named.items():
            cpu = process_cpu_s(pid)
            if cpu is not None:
                now[pid] = (kind, cpu)
        for pid, (kind, cpu) in self._last.items():
            if pid not in now:  # ended since the last reading
                self._gone[kind] = self._gone.get(kind, 0.0) + cpu
        self._last = now
        out = dict(self._gone)
        for kind, cpu in now.values():
            out[kind] = out.get(kind, 0.0) + cpu
        out["machine"], out["steal"] = machine_cpu_s()
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            reading = self.sample()
            # the sample first: a reader in another thread never finds a time without its sample
            self.samples.append(reading)
            self.times.append(time.time())
            self._stop.wait(self.period)

    def window(self, t0: float, t1: float) -> dict[str, float] | None:
        """Average cores per component between t0 and t1 (the nearest samples inside), plus
        `other`: the machine's busy cores that none of the named processes used. None when the
        window holds fewer than two samples."""
        i = bisect.bisect_left(self.times, t0)
        j = bisect.bisect_right(self.times, t1) - 1
        if j - i < 1:
            return None
        a, b = self.samples[i], self.samples[j]
        seconds = self.times[j] - self.times[i]
        cores = {k: round((v - a.get(k, 0.0)) / seconds, 2) for k, v in b.items()}
        named = sum(v for k, v in cores.items() if k not in ("machine", "steal"))
        cores["other"] = round(max(0.0, cores.get("machine", 0.0) - named), 2)
        cores["seconds"] = round(seconds, 2)
        return cores


SHORT = {
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "controller-manager",
    "kube-scheduler": "scheduler",
}


def describe(cores: dict[str, float] | None, cpus: int | None) -> str:
    """One line: the busiest first, then the machine's total."""
    if not cores:
        return "-"
    named = sorted(
        ((k, v) for k, v in cores.items() if k not in ("machine", "steal", "seconds")), key=lambda kv: -kv[1]
    )
    parts = ", ".join(f"{SHORT.get(k, k)} {v:.2f}" for k, v in named)
    steal = f", {cores['steal']:.2f} stolen" if cores.get("steal") else ""
    return f"{parts} (machine {cores.get('machine', 0):.2f} of {cpus or '?'} busy{steal}, {cores['seconds']:.1f} s)"
