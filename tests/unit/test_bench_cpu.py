"""The benchmark's CPU attribution (bench/cpu.py): who used the machine during a phase.

Real processes, real /proc: a busy process that looks like the control plane's etcd (its binary in
the cluster's bin directory), another one that stands for the operator, and one named etcd from
elsewhere, which must not count. No timing thresholds: only that CPU lands where it belongs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # after everything else: never shadows

from cpu import CpuSampler, component_of, describe

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"


def busy(argv0: Path) -> subprocess.Popen[bytes]:
    """A CPU-bound process whose argv[0] is `argv0` (bash's exec -a), up to 30 s; returned once
    the exec is done (before it, the pid is a bash that is nobody's)."""
    proc = subprocess.Popen(["bash", "-c", f'exec -a "{argv0}" "{sys.executable}" -c "$0"', BUSY])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 30
    while cmdline.read_bytes().split(b"\0", 1)[0] != str(argv0).encode():
        assert time.monotonic() < deadline, f"{argv0} never started"
        time.sleep(0.01)
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def wait_for_samples(sampler: CpuSampler, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(sampler.times) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sampler.times) >= count


def test_component_is_a_binary_of_this_cluster(tmp_path: Path) -> None:
    assert component_of(str(tmp_path / "etcd"), tmp_path) == "etcd"
    assert component_of(str(tmp_path / "kube-apiserver"), tmp_path) == "kube-apiserver"
    assert component_of("/usr/bin/etcd", tmp_path) is None  # another control plane's
    assert component_of(str(tmp_path / "python3"), tmp_path) is None
    assert component_of("", tmp_path) is None


def test_cpu_lands_on_its_component_and_on_the_operator(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    etcd = busy(bin_dir / "etcd")
    elsewhere = busy(tmp_path / "etcd")  # same name, not this cluster's
    operator = busy(tmp_path / "studio-operator")
    procs += [etcd, elsewhere, operator]
    sampler = CpuSampler(bin_dir, lambda: {operator.pid}, period=0.1)
    sampler.start()
    try:
        wait_for_samples(sampler, 2)
        t0 = sampler.times[-1]
        time.sleep(1.0)
        operator.kill()  # an operator that ends keeps what it used
        operator.wait()
        time.sleep(0.5)
        wait_for_samples(sampler, len(sampler.times) + 2)
        t1 = sampler.times[-1]
    finally:
        sampler.stop()
    cores = sampler.window(t0, t1)
    assert cores is not None
    assert cores["etcd"] > 0.05 and cores["operator"] > 0.02
    assert "kube-apiserver" not in cores  # nothing of that name ran
    # the other "etcd" is nobody's: it shows in `other`, which never goes below zero
    assert cores["other"] >= 0 and cores["machine"] >= cores["etcd"]
    before_end = sampler.window(t0, t1 - 0.2)
    assert before_end is not None and cores["operator"] * cores["seconds"] >= 0.9 * (
        before_end["operator"] * before_end["seconds"]
    )
    line = describe(cores, 2)
    assert line.startswith(("etcd", "operator", "harness", "other")) and "of 2 busy" in line


def test_a_process_that_becomes_a_component_is_seen(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A pid first seen as something else (a shell before its exec) is asked again later."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    late = subprocess.Popen(
        ["bash", "-c", f'sleep 3; exec -a "{bin_dir / "kwok"}" "{sys.executable}" -c "$0"', BUSY]
    )
    procs.append(late)
    sampler = CpuSampler(bin_dir, set, period=0.05)
    sampler.start()
    try:
        wait_for_samples(sampler, 2)
        assert "kwok" not in sampler.samples[-1]  # still the shell
        deadline = time.monotonic() + 30
        while "kwok" not in sampler.samples[-1] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sampler.stop()
    assert "kwok" in sampler.samples[-1]


def test_a_window_without_two_samples_is_none(tmp_path: Path) -> None:
    sampler = CpuSampler(tmp_path, set, period=0.1)
    sampler.start()
    try:
        wait_for_samples(sampler, 2)
    finally:
        sampler.stop()
    assert sampler.window(sampler.times[0] - 10, sampler.times[0] - 5) is None
    assert sampler.window(sampler.times[0], sampler.times[0]) is None
    assert describe(None, 2) == "-"
