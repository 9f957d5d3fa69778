"""The committed CRDs are the generated ones, and they are structural (api/crd.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from studio_operator.api.crd import render_all

ROOT = Path(__file__).resolve().parents[2]
GENERATED = render_all()
THE_COPY = ROOT / "manifests" / "crds"
LINKS = [ROOT / "crds", ROOT / "charts" / "studio-operator" / "crds"]
COPIES = [d for d in (THE_COPY, *LINKS) if d.is_dir()]
REGENERATE = "make crds"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (a dict under properties/items/additionalProperties) with its path."""
    if isinstance(node, dict):
        yield path, node
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")
        for i, option in enumerate(node.get("anyOf") or []):
            yield from walk(option, f"{path}<anyOf {i}>")


def all_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_keys(value)


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in GENERATED.values()]


def schema_of(kind: str) -> dict[str, Any]:
    for crd in crds():
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]
    raise KeyError(kind)


@pytest.mark.parametrize("directory", COPIES, ids=lambda d: str(d.relative_to(ROOT)))
def test_committed_crds_are_the_generated_ones(directory: Path) -> None:
    committed = {p.name: p.read_text() for p in directory.glob("studios.dev_*.yaml")}
    assert sorted(committed) == sorted(GENERATED), f"files differ; run {REGENERATE}"
    for name, text in GENERATED.items():
        assert committed[name] == text, f"{directory.name}/{name} is stale; run {REGENERATE}"


@pytest.mark.parametrize("directory", LINKS, ids=lambda d: str(d.relative_to(ROOT)))
def test_one_copy_of_the_crds(directory: Path) -> None:
    """crds/ (kubectl apply -f) and the chart's crds/ are links to manifests/crds, the one copy
    kustomize can read: they cannot drift apart."""
    files = sorted(directory.glob("*.yaml"))
    assert [f.name for f in files] == sorted(GENERATED)
    for f in files:
        assert f.is_symlink() and f.resolve() == (THE_COPY / f.name).resolve(), f


def test_four_kinds_namespaced_with_short_names() -> None:
    kinds = {c["spec"]["names"]["kind"]: c for c in crds()}
    assert set(kinds) == {"Studio", "ComputeEnvironment", "DataLink", "WorkspaceSettings"}
    assert kinds["ComputeEnvironment"]["spec"]["names"]["shortNames"] == ["ce"]
    assert kinds["DataLink"]["spec"]["names"]["shortNames"] == ["dl"]
    for crd in kinds.values():
        assert crd["spec"]["group"] == "studios.dev"
        assert crd["spec"]["scope"] == "Namespaced"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_structural_schema(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    keys = set(all_keys(schema))
    for forbidden in ("$ref", "$defs", "definitions", "title", "allOf", "oneOf", "const", "prefixItems"):
        assert forbidden not in keys, f"{forbidden} in the {crd['metadata']['name']} schema"
    for path, node in walk(schema):
        where = f"{crd['spec']['names']['kind']}{path or '.'}"
        assert node.get("type") != "null", where
        for option in node.get("anyOf") or []:
            assert option.get("type") != "null", f"{where}: anyOf with null (use nullable)"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, f"{where}: anyOf only for int-or-string"
            assert "type" not in node, where
        elif not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"{where}: every node has a type"
        if "properties" in node:
            assert "additionalProperties" not in node, f"{where}: properties and additionalProperties"
        assert "uniqueItems" not in node, where
        if "default" in node:
            assert node["default"] is not None, f"{where}: default null"
    assert schema["properties"]["metadata"] == {"type": "object"}


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_status_subresource_and_printer_columns(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[-1] == "Age"
    if "status" in version["schema"]["openAPIV3Schema"]["properties"]:
        assert version["subresources"] == {"status": {}}


def test_studio_printer_columns() -> None:
    (studio,) = [c for c in crds() if c["spec"]["names"]["kind"] == "Studio"]
    columns = {c["name"]: c for c in studio["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Image"]["jsonPath"] == ".spec.template.image"
    assert columns["Private"]["jsonPath"] == ".spec.private"
    assert columns["Expires"]["jsonPath"] == ".status.session.expiresAt"
    assert columns["Age"]["type"] == "date"


def test_studio_bounds_in_the_schema() -> None:
    spec = schema_of("Studio")["properties"]["spec"]
    hours = spec["properties"]["lifespan"]["properties"]["hours"]
    assert (hours["minimum"], hours["maximum"]) == (1, 120)
    port = spec["properties"]["template"]["properties"]["port"]
    assert (port["minimum"], port["maximum"]) == (1, 65535)
    assert spec["properties"]["state"]["enum"] == ["Running", "Stopped"]
    assert spec["properties"]["lifespan"]["properties"]["policy"]["enum"] == ["StopAfter", "KeepRunning"]
    mounts = spec["properties"]["mounts"]
    assert mounts["x-kubernetes-list-type"] == "map" and mounts["x-kubernetes-list-map-keys"] == ["dataLink"]
    assert spec["properties"]["env"]["x-kubernetes-list-map-keys"] == ["name"]
    for field in ("resourceLabels", "removeResourceLabels"):
        rules = [r["rule"] for r in spec["properties"][field]["x-kubernetes-validations"]]
        assert any("studios.dev/" in r and "app.kubernetes.io/managed-by" in r for r in rules), field
    assert set(spec["required"]) >= {"computeEnvironment", "template"}


def test_conditions_are_a_map_keyed_by_type() -> None:
    for kind in ("Studio", "DataLink"):
        conditions = schema_of(kind)["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_workspace_settings_must_be_named_default() -> None:
    rules = schema_of("WorkspaceSettings")["x-kubernetes-validations"]
    assert any("self.metadata.name == 'default'" in r["rule"] for r in rules)


def test_categories_do_not_shadow_a_plural() -> None:
    """kubectl expands a category before a resource name: `kubectl get studios` must list studios."""
    plurals = {c["spec"]["names"]["plural"] for c in crds()}
    singulars = {c["spec"]["names"]["singular"] for c in crds()}
    for crd in crds():
        for category in crd["spec"]["names"].get("categories") or []:
            assert category not in plurals | singulars | {"all"}, category


def test_studio_names_fit_in_a_label_value() -> None:
    rules = schema_of("Studio")["x-kubernetes-validations"]
    assert any(r["rule"] == "size(self.metadata.name) <= 63" for r in rules)
