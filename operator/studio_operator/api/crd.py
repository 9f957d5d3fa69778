"""CRD generation from the pydantic models: `python -m studio_operator.api.crd [outdir ...]`.

pydantic emits JSON Schema; Kubernetes wants a structural OpenAPI v3 schema. The conversion here
inlines `$ref`s, drops `title`s and `default: null`, turns `anyOf [X, null]` into `X` +
`nullable`, and keeps the `x-kubernetes-*` hints the models carry.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from .common import GROUP, VERSION, KubeModel, rule
from .kinds import ALL_KINDS, WorkspaceSettings

_DROP = {"title", "$defs", "discriminator"}

_READY = '.status.conditions[?(@.type=="Ready")]'
# Columns shared by the kinds: Ready's reason and message always explain the state (the Stalled
# or Reconciling reason when one applies: resources/conditions.kstatus_conditions).
_READY_STATUS = {"name": "Ready", "type": "string", "jsonPath": _READY + ".status"}
_READY_REASON = {"name": "Reason", "type": "string", "jsonPath": _READY + ".reason"}
_READY_MESSAGE = {"name": "Message", "type": "string", "jsonPath": _READY + ".message", "priority": 1}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _column(name: str, type_: str, path: str, wide: bool = False) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": path, **({"priority": 1} if wide else {})}


_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Studio": [
        _column("Phase", "string", ".status.phase"),
        _READY_STATUS,
        _READY_REASON,
        _column("Image", "string", ".spec.template.image"),
        _column("Private", "boolean", ".spec.private"),
        _column("Expires", "string", ".status.session.expiresAt"),
        _column("Environment", "string", ".spec.computeEnvironment", wide=True),
        _READY_MESSAGE,
    ],
    "ComputeEnvironment": [
        _column("Region", "string", ".spec.region"),
        _column("Driver", "string", ".spec.storage.driver"),
    ],
    "WorkspaceSettings": [
        _column("Lifespan", "string", ".spec.studioLifespan.policy"),
        _column("Hours", "integer", ".spec.studioLifespan.hours"),
    ],
    "DataLink": [
        _column("URI", "string", ".spec.uri"),
        _column("Region", "string", ".status.region"),
        _READY_STATUS,
        _READY_REASON,
        _READY_MESSAGE,
    ],
}
PRINTER_COLUMNS = {kind: [*columns, _AGE] for kind, columns in _COLUMNS.items()}  # Age last, as kubectl's

ROOT_RULES: dict[str, list[dict[str, str]]] = {
    # The name is the value of the `studios.dev/studio` label on every object made for the studio
    # (and the Service's name): label values have at most 63 characters.
    "Studio": [
        rule(
            "size(self.metadata.name) <= 63",
            "metadata.name: a Studio name has at most 63 characters (it is used as a label value)",
            reason="FieldValueInvalid",
        )
    ],
    WorkspaceSettings.kind: [
        rule(
            "self.metadata.name == 'default'",
            "metadata.name: WorkspaceSettings must be named 'default' (one per namespace)",
            reason="FieldValueInvalid",
        )
    ],
}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON schema node into a structural Kubernetes schema node."""
    node = copy.deepcopy(schema)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**structural(target, defs), **{k: v for k, v in node.items() if k not in _DROP}}
        return _clean(merged, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:
            options = [
                {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
            ]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {options} structurally")
        inner = structural(options[0], defs)
        outer = {k: v for k, v in node.items() if k not in _DROP}
        if "properties" in outer:  # the field spells out a free-form type's fields: prune the rest
            inner.pop("x-kubernetes-preserve-unknown-fields", None)
        # Hints attached to the field (outer) win over the type's own (inner).
        merged = {**inner, **outer}
        if nullable:
            merged["nullable"] = True
        return _clean(merged, defs)
    return _clean(node, defs)


def _clean(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if (
            key in _DROP
            or (key == "default" and value is None)
            or (key == "additionalProperties" and value is True)
        ):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            out[key] = value
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    if "anyOf" in out and out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def _strip_status_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_status_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_strip_status_defaults(v) for v in node]
    return node


def _root_schema(model: type[KubeModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    props = {name: structural(sub, defs) for name, sub in raw["properties"].items()}
    if "status" in props:
        props["status"] = _strip_status_defaults(props["status"])
        props["status"].pop("nullable", None)
        # Served with observedGeneration 0 until the operator writes the first status (the API
        # server defaults it on every read): kstatus, Flux and Argo CD then read an object nobody
        # has reconciled yet as InProgress, not Current, and a Flux CEL health check can refer to
        # `status` without failing on an object that has none yet.
        props["status"]["default"] = {"observedGeneration": 0}
    spec = props["spec"]
    spec.pop("nullable", None)
    root: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            **props,
        },
        "required": ["spec"],
    }
    if model.kind in ROOT_RULES:
        root["x-kubernetes-validations"] = ROOT_RULES[model.kind]
    return root


def crd_for(model: type[KubeModel]) -> dict[str, Any]:
    root = _root_schema(model)
    kind: str = model.kind
    plural: str = model.plural
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "additionalPrinterColumns": PRINTER_COLUMNS[kind],
    }
    if "status" in root["properties"]:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "studio-operator",
                "app.kubernetes.io/part-of": "studio-operator",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": model.short_names,
                # Not "studios": kubectl expands a category before a plural, so `kubectl get studios`
                # would list all four kinds (with the wrong columns).
                "categories": ["studios-all"],
            },
            "versions": [version],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text, deterministic."""
    header = "# Generated by `make crds` from operator/studio_operator/api; do not edit.\n"
    return {
        f"{GROUP}_{m.plural}.yaml": header + yaml.safe_dump(crd_for(m), sort_keys=False, width=100)
        for m in ALL_KINDS
    }


def main(argv: list[str] | None = None) -> int:
    outdirs = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or [Path("crds")]
    files = render_all()
    for outdir in outdirs:
        outdir.mkdir(parents=True, exist_ok=True)
        for stale in outdir.glob(f"{GROUP}_*.yaml"):
            if stale.name not in files:
                stale.unlink()
        for name, text in files.items():
            (outdir / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
