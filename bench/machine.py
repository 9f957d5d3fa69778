"""What a result is measured on and against: the machine, other operators, CPU profiles."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from harness import ROOT

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


def downsample(values: Sequence[float], points: int = 200) -> list[float]:
    if len(values) <= points:
        return [round(v, 3) for v in values]
    step = (len(values) - 1) / (points - 1)
    return [round(values[round(i * step)], 3) for i in range(points)]
