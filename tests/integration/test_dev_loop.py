"""The development loop's background processes (issue 15 item 13): `hack/operator.sh` and
`hack/s3.py` pick free ports and record them under .cluster/ (two checkouts on one machine do not
collide), and a failed `operator.sh up` leaves no process and no pid file.

Each test runs a copy of the script in a scratch checkout root (its own .cluster/), so nothing of
this checkout's own `make operator-up` / `make run` is touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kube_helpers import ROOT, Cluster, OperatorProcess, http_get


def scratch_root(tmp: Path, cluster: Cluster, script: str) -> Path:
    (tmp / "hack").mkdir()
    shutil.copy2(ROOT / "hack" / script, tmp / "hack" / script)
    shutil.copy2(ROOT / "hack" / "loopback.py", tmp / "hack" / "loopback.py")  # what the scripts import
    (tmp / ".venv").symlink_to(Path(sys.prefix))
    (tmp / ".cluster").mkdir()
    shutil.copy2(cluster.kubeconfig, tmp / ".cluster" / "kubeconfig")
    return tmp


def processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def test_operator_up_picks_ports_and_a_failed_start_leaves_nothing(
    cluster: Cluster, tmp_path: Path, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator_factory(start=False)  # stops the shared test operator: one operator at a time
    root = scratch_root(tmp_path, cluster, "operator.sh")
    script = str(root / "hack" / "operator.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    marker = f"{root}/.venv/bin/studio-operator run"

    failed = subprocess.run(
        ["bash", script, "up"],
        env={**env, "STUDIO_OPERATOR_START_TIMEOUT": "0"},
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1, failed.stderr
    assert not (root / ".cluster" / "operator.pid").exists()
    assert not processes_running(marker), "a failed start left the operator running"

    try:
        started = subprocess.run(["bash", script, "up"], env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        ports = dict(
            line.split("=", 1) for line in (root / ".cluster" / "operator.ports").read_text().split()
        )
        values = {int(ports[k]) for k in ("LIVENESS_PORT", "METRICS_PORT", "WEBHOOK_PORT")}
        assert len(values) == 3 and not values & {8089, 8090, 9443}
        assert http_get(f"http://127.0.0.1:{ports['LIVENESS_PORT']}/healthz")[0] == 200
        status, text = http_get(f"http://127.0.0.1:{ports['METRICS_PORT']}/metrics")
        assert status == 200 and "studio_operator_" in text
    finally:
        subprocess.run(["bash", script, "down"], env=env, capture_output=True, text=True, timeout=60)
    assert not processes_running(marker)
    assert not (root / ".cluster" / "operator.pid").exists()


def test_s3_server_picks_and_records_its_port(cluster: Cluster, tmp_path: Path) -> None:
    root = scratch_root(tmp_path, cluster, "s3.py")
    script = str(root / "hack" / "s3.py")
    env = {k: v for k, v in os.environ.items() if k != "S3_PORT"}
    try:
        up = subprocess.run(
            [sys.executable, script, "up"], env=env, capture_output=True, text=True, timeout=120
        )
        assert up.returncode == 0, up.stdout + up.stderr
        endpoint = (root / ".cluster" / "s3.endpoint").read_text().strip()
        assert endpoint.startswith("http://127.0.0.1:") and not endpoint.endswith(":9000")
        shown = subprocess.run([sys.executable, script, "endpoint"], env=env, capture_output=True, text=True)
        assert shown.stdout.strip() == endpoint
        assert http_get(f"{endpoint}/moto-api/data.json")[0] == 200
    finally:
        down = subprocess.run(
            [sys.executable, script, "down"], env=env, capture_output=True, text=True, timeout=60
        )
    assert down.returncode == 0 and not (root / ".cluster" / "s3.pid").exists()
    assert http_get(f"{endpoint}/moto-api/data.json")[0] != 200
