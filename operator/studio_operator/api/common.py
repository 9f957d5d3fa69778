"""Shared pieces of the four kinds: naming, core/v1 types we embed, and Kubernetes schema hints.

The CRD generator (`api.crd`) reads the `json_schema_extra` hints below; they are how a pydantic
model says "this list is keyed", "this map has a CEL rule" or "this is a core/v1 object".
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "studios.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Label keys a studio may neither set nor remove.
RESERVED_LABEL_PREFIX = "studios.dev/"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "studio-operator"
STUDIO_LABEL = "studios.dev/studio"
# On cluster-scoped PersistentVolumes (no owner reference possible): whose they are.
NAMESPACE_LABEL = "studios.dev/namespace"
DATA_LINK_LABEL = "studios.dev/data-link"

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# `bucket` or `s3://bucket`, as allowedBuckets accepts.
BUCKET_REF = r"^(s3://)?[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/?$"
# Prefix characters: S3's "safe" set without quotes and '*', and never ',' or whitespace: the
# prefix and the endpoint end up in mount options, which drivers split at commas and spaces.
S3_PREFIX_CHARS = r"A-Za-z0-9!_.()=+@~/-"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[" + S3_PREFIX_CHARS + r"]*)?$"
# http(s)://host[:port][/path]: a DNS name or an IP literal, no userinfo, query or commas.
ENDPOINT_URL = (
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
    r"(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"
)

RESERVED_KEYS_CEL = "self.all(k, !k.startsWith('studios.dev/') && k != 'app.kubernetes.io/managed-by')"
RESERVED_KEYS_MSG = (
    "label keys under studios.dev/ and app.kubernetes.io/managed-by are reserved for the operator"
)
LABEL_KEYS_CEL = "self.all(k, k.matches('" + LABEL_KEY.replace("\\", "\\\\") + "'))"

# Size bounds. Every string, list and map of a spec is bounded so that a request is refused by the
# schema with a message naming the field, long before the API server's own limits (3 MiB request,
# 1.5 MiB stored object) or the webhook's; tests/unit/test_crd_sizes.py computes the worst case.
MAX_KEY_LENGTH = 317  # a qualified name: 253-character prefix, "/", 63-character name
MAP_KEYS_CEL = f"self.all(k, size(k) <= {MAX_KEY_LENGTH})"
MAP_KEYS_MSG = f"keys have at most {MAX_KEY_LENGTH} characters"
MAX_QUANTITY_LENGTH = 64
MAX_ENV_VALUE = 32768  # one value (a certificate, a JSON document)
MAX_ENV_VALUES_TOTAL = 131072  # all values of one env list together
MAX_ARG_LENGTH = 32768  # one command or args item (a `bash -c` script)
MAX_COMMAND_TOTAL = 65536  # command and args together

# Rules whose limit applies to the sum of some string fields (expression -> (fields, limit)):
# the CEL is generated here, and the size test reads the same table.
TOTAL_LENGTH_RULES: dict[str, tuple[tuple[str, ...], int]] = {}


def total_length_rule(expr: str, fields: tuple[str, ...], limit: int, message: str) -> dict[str, str]:
    """A CEL rule bounding the total length of `fields` (recorded for the size test)."""
    TOTAL_LENGTH_RULES[expr] = (fields, limit)
    return rule(expr, message)


class KubeModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept (the API server prunes)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    kind: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    short_names: ClassVar[list[str]] = []

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def k8s(**hints: Any) -> dict[str, Any]:
    """Schema hints for the CRD generator, e.g. k8s(listType='map', listMapKeys=['name'])."""
    out: dict[str, Any] = {}
    for key, value in hints.items():
        if key == "rules":
            out["x-kubernetes-validations"] = value
        elif key == "preserve":
            out["x-kubernetes-preserve-unknown-fields"] = value
        elif key == "int_or_string":
            out["x-kubernetes-int-or-string"] = value
        elif key == "embedded":
            out["x-kubernetes-embedded-resource"] = value
        else:
            out[f"x-kubernetes-{_kebab(key)}"] = value
    return out


def _kebab(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-").replace("_", "-")


def rule(expr: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    r = {"rule": expr, "message": message}
    if field_path:
        r["fieldPath"] = field_path
    if reason:
        r["reason"] = reason
    return r


Quantity = str | int
QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
    "x-kubernetes-int-or-string": True,
    "maxLength": MAX_QUANTITY_LENGTH,
}


def string_map(max_properties: int, max_value_length: int, description: str | None = None) -> Any:
    """A map of strings (nodeSelector): bounded in entries, keys and values."""
    extra: dict[str, Any] = {
        "maxProperties": max_properties,
        "additionalProperties": {"type": "string", "maxLength": max_value_length},
        **k8s(rules=[rule(MAP_KEYS_CEL, MAP_KEYS_MSG)]),
    }
    return Field(default=None, description=description, json_schema_extra=extra)


def _key_ref_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 253},
            "key": {"type": "string", "maxLength": 253},
            "optional": {"type": "boolean"},
        },
    }


# core/v1 EnvVarSource, with bounds (the operator passes it through to the pod as it is): one
# source per variable, as the pod requires.
ENV_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 1,
    "properties": {
        "secretKeyRef": _key_ref_schema(),
        "configMapKeyRef": _key_ref_schema(),
        "fieldRef": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "maxLength": 64},
                "fieldPath": {"type": "string", "maxLength": 256},
            },
        },
        "resourceFieldRef": {
            "type": "object",
            "properties": {
                "containerName": {"type": "string", "maxLength": 63},
                "resource": {"type": "string", "maxLength": MAX_KEY_LENGTH},
                "divisor": QUANTITY_SCHEMA,
            },
        },
    },
}


class EnvVar(KubeModel):
    """core/v1 EnvVar: `value` or `valueFrom` (kept as given; the API server validates on the pod)."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME)
    value: str | None = Field(default=None, max_length=MAX_ENV_VALUE)
    value_from: dict[str, Any] | None = Field(default=None, json_schema_extra=ENV_SOURCE_SCHEMA)

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.value_from is not None:
            out["valueFrom"] = self.value_from
        else:
            out["value"] = self.value if self.value is not None else ""
        return out


ENV_LIST_HINTS = k8s(
    list_type="map",
    list_map_keys=["name"],
    rules=[
        rule(
            "self.all(e, !(has(e.value) && has(e.valueFrom)))", "an env var sets value or valueFrom, not both"
        ),
        total_length_rule(
            f"self.map(e, has(e.value) ? size(e.value) : 0).sum() <= {MAX_ENV_VALUES_TOTAL}",
            ("value",),
            MAX_ENV_VALUES_TOTAL,
            f"the values of all variables together have at most {MAX_ENV_VALUES_TOTAL} characters",
        ),
    ],
)


RESOURCE_MAP: dict[str, Any] = {
    "additionalProperties": QUANTITY_SCHEMA,
    "maxProperties": 32,
    **k8s(rules=[rule(MAP_KEYS_CEL, MAP_KEYS_MSG)]),
}


class ResourceRequirements(KubeModel):
    """core/v1 ResourceRequirements (limits/requests maps of quantities: cpu, memory, nvidia.com/gpu)."""

    limits: dict[str, Quantity] | None = Field(default=None, json_schema_extra=RESOURCE_MAP)
    requests: dict[str, Quantity] | None = Field(default=None, json_schema_extra=RESOURCE_MAP)


class Toleration(KubeModel):
    key: str | None = Field(default=None, max_length=317)
    operator: str | None = Field(default=None, json_schema_extra={"enum": ["Exists", "Equal"]})
    value: str | None = Field(default=None, max_length=63)
    effect: str | None = Field(
        default=None, json_schema_extra={"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}
    )
    toleration_seconds: int | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LocalObjectReference(KubeModel):
    name: str = Field(min_length=1, max_length=253)


class Condition(KubeModel):
    """metav1.Condition."""

    type: str = Field(max_length=316)
    status: str = Field(json_schema_extra={"enum": ["True", "False", "Unknown"]})
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = None


CONDITIONS_HINTS = k8s(list_type="map", list_map_keys=["type"])


def labels_field(description: str) -> Any:
    return Field(
        default=None,
        description=description,
        json_schema_extra={
            "maxProperties": 64,
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
            **k8s(
                rules=[
                    rule(RESERVED_KEYS_CEL, RESERVED_KEYS_MSG, reason="FieldValueForbidden"),
                    rule(LABEL_KEYS_CEL, "label keys must be valid Kubernetes label keys"),
                    rule(MAP_KEYS_CEL, MAP_KEYS_MSG),
                ]
            ),
        },
    )


# Annotations and the finalizer of the contract, named once for the operator, the webhooks and
# the CLI.
CREATED_BY_ANNOTATION = "studios.dev/created-by"
RESTART_ANNOTATION = "studios.dev/restart"
SESSION_LIFESPAN_ANNOTATION = "studios.dev/session-lifespan-hours"
RECHECK_ANNOTATION = "studios.dev/recheck"  # on a DataLink: check it now
VOLUMES_FINALIZER = "studios.dev/volumes"  # the operator removes a studio's PersistentVolumes
# What the operator stamps on the objects it writes.
APPLIED_HASH = "studios.dev/applied-hash"  # the desired content's digest: unchanged, not re-applied
SESSION_HASH = "studios.dev/session-hash"  # on a session pod: what it inherited when it started
INHERITED_LABELS = "studios.dev/inherited-labels"  # on a session pod: the label keys it inherited
