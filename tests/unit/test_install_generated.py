"""Install artifacts are generated from the code and committed: fail when they drift."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_install.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lock_covers_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["operator"]]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert key in locked, f"{name} is not pinned in requirements.lock (run make lock)"
        if "==" in requirement:
            assert locked[key] == requirement.split("==")[1].strip(), f"{name}: lock differs from pyproject"


def test_cli_install_is_light() -> None:
    """`pip install studio-operator[cli]` pulls neither kopf, boto3 nor cryptography."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    names |= {
        re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in project["optional-dependencies"]["cli"]
    }
    assert not names & {"kopf", "boto3", "cryptography", "prometheus-client"}, names


def test_chart_versions_match_the_package() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    from studio_operator import __version__

    assert __version__ == version
    chart = yaml.safe_load((ROOT / "charts" / "studio-operator" / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    kustomization = yaml.safe_load((ROOT / "manifests" / "default" / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["newTag"] == version


def test_dockerfile_runs_non_root_with_the_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["studio-operator", "run"]' in text
    assert "requirements.lock" in text


def test_no_wildcards_in_shipped_rbac() -> None:
    for path in [
        *(ROOT / "manifests" / "rbac").glob("*.yaml"),
        *(ROOT / "charts/studio-operator/files/rbac").glob("*.yaml"),
    ]:
        for doc in yaml.safe_load_all(path.read_text()):
            for rule in (doc or {}).get("rules") or []:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(field, []), f"{path.name}: wildcard in {field}"
