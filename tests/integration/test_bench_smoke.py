"""Smoke test of the benchmark harness (bench/run.py) at N = 5, so that it cannot rot.

No thresholds: performance is measured by `make bench`, never asserted in timed tests. This only
checks that a tiny run completes against the local control plane and writes the contract's keys
with sane values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kube_helpers import ROOT, Cluster

CONTRACT_KEYS = (
    "studios",
    "start_ratio",
    "running_ratio",
    "start_overhead_p50_ms",
    "writes_per_start",
    "writes_per_first_start",
    "expiry_p99_s",
    "expiry_floor_ratio",
    "cpu_ms_per_start",
    "cpu_ms_per_expiry",
    "rss_idle_mb",
    "rss_mb",
)


def test_bench_smoke(cluster: Cluster, operator_factory: Callable[..., Any], tmp_path: Path) -> None:
    if not cluster.local or not cluster.kwok_node:
        pytest.skip("the harness needs the local control plane with kwok (fake nodes)")
    # A cluster-wide operator would reconcile the benchmark's studios too: the factory stops the
    # shared one (the next test that needs it starts it again).
    operator_factory(start=False)
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--sizes=5",
            "--latency-samples=3",
            "--expiry-burst=2",
            "--idle-seconds=1",
            "--settle-seconds=1",
            "--no-history",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--out={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, f"bench/run.py exited {proc.returncode}\n{proc.stderr[-4000:]}"

    data = json.loads((out / "latest.json").read_text())
    for key in CONTRACT_KEYS:
        assert key in data, f"latest.json lacks {key!r}"
    assert data["studios"] == 5
    assert data["start_ratio"] > 0 and data["running_ratio"] > 0
    assert data["start_overhead_p50_ms"] is not None
    assert data["writes_per_start"] >= 2  # a session start: at least the pod and its status
    assert data["writes_per_first_start"] >= data["writes_per_start"]  # + the Service and Role
    assert data["cpu_ms_per_start"] > 0 and data["cpu_ms_per_expiry"] > 0
    assert 10 < data["rss_idle_mb"] <= data["rss_mb"]
    assert data["expiry_p99_s"] is not None and data["expiry_p99_s"] > -1
    assert 10 < data["rss_mb"] < 4096
    machine = data["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and machine["kubernetes"].startswith("v")

    size = data["sizes"][0]
    assert size["start"]["operator_s"] > 0 and size["start"]["direct_s"] > 0
    assert size["expiry_burst"]["missed"] == 0
    assert size["restart"]["restart_s"] > 0
    # where the CPUs went: recorded for each phase (None when a phase was shorter than two samples)
    for phase, key in (("start", "cpu_cores"), ("start", "cpu_cores_direct"), ("expiry_burst", "cpu_cores")):
        cores = size[phase][key]
        assert cores is None or (cores["machine"] > 0 and cores["seconds"] > 0), (phase, key, cores)
    assert (out / "latest.md").read_text().startswith("Run ")
    assert "where the CPUs went" in (out / "latest.md").read_text()
    assert (out / "latest.png").stat().st_size > 1000
