"""The krew plugin manifest (plugins/krew/studio.yaml) and the archive it points at."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))

import krew_archive  # noqa: E402


def manifest() -> dict:  # type: ignore[type-arg]
    data: dict = yaml.safe_load((ROOT / "plugins" / "krew" / "studio.yaml").read_text())  # type: ignore[type-arg]
    return data


def test_manifest_is_a_valid_krew_plugin() -> None:
    plugin = manifest()
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert plugin["kind"] == "Plugin" and plugin["metadata"]["name"] == "studio"
    spec = plugin["spec"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert spec["version"] == f"v{version}" and re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.]+)?", spec["version"])
    assert spec["homepage"].startswith("https://")
    assert 0 < len(spec["shortDescription"]) <= 50 and spec["description"].strip()
    assert spec["platforms"]
    for platform in spec["platforms"]:
        expressions = platform["selector"]["matchExpressions"]
        assert {"linux", "darwin"} <= set(expressions[0]["values"])
        assert platform["uri"].startswith("https://") and f"/v{version}/" in platform["uri"]
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["bin"] == "kubectl-studio"
        assert {f["from"] for f in platform["files"]} == {"kubectl-studio", "README.txt"}


def test_archive_is_reproducible_and_runs(tmp_path: Path) -> None:
    first, second = krew_archive.archive(), krew_archive.archive()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert set(tar.getnames()) == {"kubectl-studio", "README.txt"}
        tar.extractall(tmp_path, filter="data")
    app = tmp_path / "kubectl-studio"
    assert app.stat().st_mode & 0o111
    out = subprocess.run([sys.executable, str(app), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("kubectl-studio ")
    names = subprocess.run([sys.executable, str(app), "--help"], capture_output=True, text=True, check=True)
    assert "completion" in names.stdout
