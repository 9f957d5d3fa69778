"""The real GitOps clients (hack/clients: kstatus from sigs.k8s.io/cli-utils, Argo CD's Lua
interpreter gopher-lua, Flux's cel-go), and the expectations docs/gitops.md states for them."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from argocd_health import SCRIPTS, script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "gitops.md"


@functools.cache
def binary() -> Path:
    """Built once per version of hack/clients' sources (cached in ~/.cache/studio-operator)."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-clients.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def evaluate(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """kstatus, the shipped Argo CD health check and the docs' Flux CEL check of each object."""
    request = {
        "items": list(items),
        "lua": {kind: script(kind) for kind in SCRIPTS},
        "cel": {"Studio": docs_cel()},
    }
    out = subprocess.run(
        [str(binary())], input=json.dumps(request), check=True, capture_output=True, text=True, timeout=60
    )
    results: list[dict[str, Any]] = json.loads(out.stdout)
    return results


def docs_cel() -> dict[str, str]:
    """The healthCheckExprs entry for Studio in docs/gitops.md, as a user would copy it."""
    for block in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "healthCheckExprs" in doc:
            (entry,) = [e for e in doc["healthCheckExprs"] if e["kind"] == "Studio"]
            return {k: entry[k] for k in ("inProgress", "failed", "current") if k in entry}
    raise AssertionError("docs/gitops.md has no healthCheckExprs example")


def docs_table(first_header: str) -> dict[str, dict[str, str]]:
    """A markdown table of docs/gitops.md by its first column: {row name: {header: cell}}."""
    lines = DOCS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    headers = _cells(lines[start])
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        rows[cells[0]] = dict(zip(headers, cells, strict=True))
    return rows


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]
