"""Helpers for the install tests (Helm chart, kustomize, wheel): run tools, render, dry-run."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_helpers import ROOT, Cluster, kubectl_binary

CHART = ROOT / "charts" / "studio-operator"


def helm_binary() -> str:
    local = ROOT / ".cluster" / "bin" / "helm"
    if os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("helm")
    if found is None:
        pytest.fail("helm not found: run `make cluster-binaries` (builds .cluster/bin/helm)")
    return found


def run(
    argv: list[str],
    *,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, input=input
    )
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def helm(cluster: Cluster, *args: str, timeout: float = 300) -> str:
    return run([helm_binary(), f"--kubeconfig={cluster.kubeconfig}", *args], timeout=timeout)


def kubectl(cluster: Cluster, *args: str, input: str | None = None, timeout: float = 120) -> str:
    binary = kubectl_binary()
    assert binary, "kubectl not found"
    return run([binary, f"--kubeconfig={cluster.kubeconfig}", *args], input=input, timeout=timeout)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def template(cluster: Cluster, namespace: str, *sets: str, release: str = "it") -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "-n", namespace]
    for s in sets:
        args += ["--set", s]
    return docs(helm(cluster, *args))


def server_dry_run(cluster: Cluster, objects: Iterable[dict[str, Any]], tmp: Path) -> str:
    path = tmp / f"objects-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump_all(list(objects), sort_keys=False))
    return kubectl(
        cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=studio-install-test",
        "--dry-run=server",
        "-f",
        str(path),
    )


def kustomize(path: Path) -> list[dict[str, Any]]:
    binary = kubectl_binary()
    assert binary, "kubectl not found"
    return docs(run([binary, "kustomize", str(path)]))
