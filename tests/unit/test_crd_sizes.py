"""Every spec field is bounded in the CRDs, and the largest spec the schemas accept is small.

The largest spec is computed from the generated schemas (maxLength, maxItems, maxProperties, the
map-key rule, and the total-length CEL rules of api.common.TOTAL_LENGTH_RULES), in characters.
Status is left out: only the operator writes it. With the spec bounded, a stored object stays far
below etcd's 1.5 MiB, and an admission review (old + new object) far below the webhook's limit.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from studio_operator.api.common import MAP_KEYS_CEL, MAX_KEY_LENGTH, TOTAL_LENGTH_RULES
from studio_operator.api.crd import render_all
from studio_operator.handlers.admission import WEBHOOK_MAX_BODY

KiB = 1024
# The largest spec each kind's schema accepts, in characters: with 256 KiB of annotations (the API
# server's limit) and a status, an object stays well below etcd's 1.5 MiB.
BUDGET = {"Studio": 768 * KiB, "ComputeEnvironment": 768 * KiB, "DataLink": 8 * KiB, "WorkspaceSettings": KiB}
SCALARS = {"integer": 20, "number": 32, "boolean": 5}


class Unbounded(AssertionError):
    pass


def _rules(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations") or []]


def worst(
    node: dict[str, Any], path: str, free_strings: bool = False, capped: frozenset[str] = frozenset()
) -> int:
    """The longest JSON text (characters) the schema node accepts; raises Unbounded with the path."""
    extra = 0
    for expr in _rules(node):
        if expr in TOTAL_LENGTH_RULES:
            fields, limit = TOTAL_LENGTH_RULES[expr]
            capped, extra = capped | set(fields), extra + limit
    if node.get("x-kubernetes-preserve-unknown-fields"):
        raise Unbounded(f"{path}: free-form (x-kubernetes-preserve-unknown-fields)")
    if node.get("x-kubernetes-int-or-string") or node.get("type") == "string":
        if "enum" in node:
            return max(len(str(v)) for v in node["enum"]) + 2
        if free_strings:
            return 2 + (20 if node.get("x-kubernetes-int-or-string") else 0)
        if "maxLength" not in node:
            raise Unbounded(f"{path}: string without maxLength")
        return int(node["maxLength"]) + 2 + extra
    if node.get("type") in SCALARS:
        return SCALARS[node["type"]]
    if node.get("type") == "array":
        if "maxItems" not in node:
            raise Unbounded(f"{path}: list without maxItems")
        item = worst(node["items"], f"{path}[]", free_strings, capped)
        return int(node["maxItems"]) * (item + 1) + 2 + extra
    if node.get("type") == "object":
        fields = sorted(
            (
                len(name) + 4 + worst(sub, f"{path}.{name}", free_strings or name in capped)
                for name, sub in (node.get("properties") or {}).items()
            ),
            reverse=True,
        )
        total = 2 + extra + sum(fields[: node.get("maxProperties", len(fields))])
        if isinstance(node.get("additionalProperties"), dict):
            if "maxProperties" not in node:
                raise Unbounded(f"{path}: map without maxProperties")
            if MAP_KEYS_CEL not in _rules(node):
                raise Unbounded(f"{path}: map keys without a length rule")
            value = worst(node["additionalProperties"], f"{path}{{}}", free_strings)
            total += int(node["maxProperties"]) * (MAX_KEY_LENGTH + 4 + value)
        return total
    raise AssertionError(f"{path}: unexpected schema node {node}")


def spec_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for text in render_all().values():
        crd = yaml.safe_load(text)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out[crd["spec"]["names"]["kind"]] = schema["properties"]["spec"]
    return out


@pytest.mark.parametrize("kind", sorted(BUDGET))
def test_every_spec_field_is_bounded_and_the_largest_spec_is_small(kind: str) -> None:
    size = worst(spec_schemas()[kind], "spec")
    assert size <= BUDGET[kind], f"the largest {kind} spec has {size} characters"


def test_the_walker_finds_unbounded_fields() -> None:
    with pytest.raises(Unbounded, match=r"spec\.a: string without maxLength"):
        worst({"type": "object", "properties": {"a": {"type": "string"}}}, "spec")
    with pytest.raises(Unbounded, match=r"spec\.m: map keys"):
        worst(
            {
                "type": "object",
                "properties": {
                    "m": {"type": "object", "maxProperties": 2, "additionalProperties": {"type": "boolean"}}
                },
            },
            "spec",
        )
    with pytest.raises(Unbounded, match="free-form"):
        worst({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, "spec")


def test_total_length_rules_cap_the_lists() -> None:
    studio = spec_schemas()["Studio"]["properties"]
    # 64 + 256 items of 32 Ki characters each, but 64 Ki characters in total
    assert worst(studio["template"], "spec.template") < 100 * KiB
    assert worst(studio["env"], "spec.env") < 400 * KiB


def test_the_webhook_accepts_what_the_api_server_can_send() -> None:
    # an admission review carries the old object (at most 1.5 MiB in etcd) and the new one (a
    # request body is at most 3 MiB), plus the review's own fields
    assert 2 * 3 * 1024 * KiB <= WEBHOOK_MAX_BODY
    # and the largest studio, old and new, with 256 KiB of annotations each, fits many times over
    assert 2 * (BUDGET["Studio"] + 256 * KiB) * 4 < WEBHOOK_MAX_BODY


def test_rule_reasons_are_ones_the_api_server_accepts() -> None:
    supported = {"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"}

    def reasons(node: Any) -> Any:
        if isinstance(node, dict):
            for r in node.get("x-kubernetes-validations") or []:
                yield r.get("reason", "FieldValueInvalid")
            for value in node.values():
                yield from reasons(value)
        elif isinstance(node, list):
            for value in node:
                yield from reasons(value)

    found = {r for text in render_all().values() for r in reasons(yaml.safe_load(text))}
    assert found and found <= supported, found - supported
