"""The committed RBAC manifests are what the code generates (`make rbac` rewrites them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio_operator import rbac

COMMITTED = Path(__file__).resolve().parents[2] / "manifests" / "rbac"


@pytest.mark.parametrize("name", sorted(rbac.manifests()))
def test_committed_manifest_is_generated(name: str) -> None:
    path = COMMITTED / name
    assert path.exists(), f"{path} is missing: run `make rbac`"
    assert path.read_text() == rbac.manifests()[name], f"{path} differs from the code: run `make rbac`"
