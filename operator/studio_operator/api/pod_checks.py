"""What the API server would refuse in the Pod and claims built from a spec, checked up front.

The CRD schema keeps Kubernetes' own shapes loose (quantities as strings, `valueFrom` as given) so
that users write the same YAML as in a pod. These checks find, in the spec alone, what pod and
claim validation would refuse later: the webhook denies it at admission, and the reconciler reports
it as a Stalled condition for objects stored before the webhook ran. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .common import DNS_SUBDOMAIN, LABEL_KEY, LABEL_VALUE

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL.update({"k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12")})
_DECIMAL.update({"P": Decimal("1e15"), "E": Decimal("1e18")})
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
_LABEL_KEY = re.compile(LABEL_KEY)
_LABEL_VALUE = re.compile(LABEL_VALUE)
_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_VALUE_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef", "fileKeyRef")
_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number, None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    try:
        number = Decimal(match["num"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def _qualified_name(key: str) -> bool:
    """A label key / extended resource name: optional DNS-subdomain prefix, a name of <= 63."""
    return len(key.rpartition("/")[0]) <= 253 and bool(_LABEL_KEY.match(key))


def _resource_name_error(where: str, name: str) -> str | None:
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return None
    if "/" not in name:
        return f"{where}: unknown resource {name!r} (use cpu, memory, ephemeral-storage or a domain-qualified name such as nvidia.com/gpu)"
    if not _qualified_name(name) or name.startswith("kubernetes.io/"):
        return f"{where}: {name!r} is not a valid extended resource name"
    return None


def resources_errors(path: str, resources: Mapping[str, Any] | None) -> list[str]:
    """Quantities that parse, are not negative, whole for extended resources (GPUs), requests not
    above limits, and resource names Kubernetes knows."""
    errors: list[str] = []
    if not resources:
        return errors
    parsed: dict[str, dict[str, Decimal]] = {}
    for part in ("requests", "limits"):
        for name, raw in (resources.get(part) or {}).items():
            where = f"{path}.{part}[{name}]"
            problem = _resource_name_error(where, str(name))
            if problem:
                errors.append(problem)
                continue
            value = parse_quantity(raw)
            if value is None:
                errors.append(f"{where}: {raw!r} is not a quantity (e.g. 500m, 2, 4Gi)")
            elif value < 0:
                errors.append(f"{where}: must not be negative")
            elif "/" in str(name) and value != value.to_integral_value():
                errors.append(f"{where}: {name} must be a whole number")
            else:
                parsed.setdefault(part, {})[str(name)] = value
    for name, request in (parsed.get("requests") or {}).items():
        limit = (parsed.get("limits") or {}).get(name)
        if limit is not None and request > limit:
            errors.append(f"{path}.requests[{name}]: must be less than or equal to the {name} limit")
        if "/" in name and limit is not None and request != limit:
            errors.append(f"{path}.requests[{name}]: extended resources need requests equal to limits")
    return errors


def env_errors(path: str, env: Iterable[Any] | None) -> list[str]:
    """Each variable has `value` or one `valueFrom` source, with a name (and key) where needed."""
    errors: list[str] = []
    for i, var in enumerate(env or []):
        if not isinstance(var, Mapping) or "valueFrom" not in var or var.get("valueFrom") is None:
            continue
        where = f"{path}[{i}].valueFrom"
        source = var["valueFrom"]
        if "value" in var and var.get("value") not in (None, ""):
            errors.append(f"{path}[{i}]: set either value or valueFrom, not both")
        if not isinstance(source, Mapping):
            errors.append(f"{where}: must be an object")
            continue
        kinds = [k for k in source if k in _VALUE_SOURCES]
        unknown = [k for k in source if k not in _VALUE_SOURCES]
        if unknown:
            errors.append(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        if len(kinds) != 1:
            errors.append(f"{where}: set exactly one of {', '.join(_VALUE_SOURCES[:4])}")
            continue
        ref = source[kinds[0]]
        if not isinstance(ref, Mapping):
            errors.append(f"{where}.{kinds[0]}: must be an object")
            continue
        errors.extend(_ref_errors(f"{where}.{kinds[0]}", kinds[0], ref))
    return errors


def _ref_errors(where: str, kind: str, ref: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    if kind in ("secretKeyRef", "configMapKeyRef"):
        name, key = ref.get("name"), ref.get("key")
        if not isinstance(name, str) or not name or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            errors.append(f"{where}.name: must be the name of a {kind[:-6]} (a DNS subdomain)")
        if not isinstance(key, str) or not key or not re.match(r"^[-._a-zA-Z0-9]+$", key) or len(key) > 253:
            errors.append(f"{where}.key: must be a key (letters, digits, '-', '_' or '.')")
        if "optional" in ref and not isinstance(ref["optional"], bool):
            errors.append(f"{where}.optional: must be true or false")
    elif kind == "fieldRef":
        if not isinstance(ref.get("fieldPath"), str) or not ref.get("fieldPath"):
            errors.append(f"{where}.fieldPath: required")
    elif kind == "resourceFieldRef":
        resource = ref.get("resource")
        if not isinstance(resource, str) or not resource:
            errors.append(f"{where}.resource: required")
    return errors


def node_selector_errors(path: str, selector: Mapping[str, Any] | None) -> list[str]:
    errors: list[str] = []
    for key, value in (selector or {}).items():
        if not _qualified_name(str(key)):
            errors.append(f"{path}[{key}]: not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"{path}[{key}]: {value!r} is not a valid label value")
    return errors


def toleration_errors(path: str, tolerations: Iterable[Any] | None) -> list[str]:
    errors: list[str] = []
    for i, tol in enumerate(tolerations or []):
        if not isinstance(tol, Mapping):
            continue
        where = f"{path}[{i}]"
        key, operator, value = tol.get("key") or "", tol.get("operator") or "Equal", tol.get("value") or ""
        if key and not _qualified_name(str(key)):
            errors.append(f"{where}.key: not a valid label key")
        if not key and operator != "Exists":
            errors.append(f"{where}.operator: must be Exists when key is empty")
        if operator == "Exists" and value:
            errors.append(f"{where}.value: must be empty when operator is Exists")
        if value and (len(str(value)) > 63 or not _LABEL_VALUE.match(str(value))):
            errors.append(f"{where}.value: not a valid label value")
        effect = tol.get("effect")
        if effect and effect not in _EFFECTS:
            errors.append(f"{where}.effect: must be one of {', '.join(sorted(_EFFECTS))}")
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errors.append(f"{where}.tolerationSeconds: only with effect NoExecute")
    return errors


def workspace_volume_errors(path: str, volume: Mapping[str, Any] | None) -> list[str]:
    if not volume:
        return []
    errors: list[str] = []
    size = parse_quantity(volume.get("size", "10Gi"))
    if size is None or size <= 0:
        errors.append(f"{path}.size: must be a positive quantity such as 10Gi")
    klass = volume.get("storageClassName")
    if klass is not None and (
        not isinstance(klass, str) or not _DNS_SUBDOMAIN.match(klass) or len(klass) > 253
    ):
        errors.append(f"{path}.storageClassName: {klass!r} is not a StorageClass name (a DNS subdomain)")
    return errors


def studio_spec_errors(spec: Mapping[str, Any]) -> list[str]:
    """Everything in a Studio spec that pod or claim validation would refuse."""
    return [
        *env_errors("spec.env", spec.get("env")),
        *resources_errors("spec.resources", spec.get("resources")),
        *node_selector_errors("spec.nodeSelector", spec.get("nodeSelector")),
        *toleration_errors("spec.tolerations", spec.get("tolerations")),
        *workspace_volume_errors("spec.workspaceVolume", spec.get("workspaceVolume")),
    ]


def environment_spec_errors(spec: Mapping[str, Any]) -> list[str]:
    """Everything in a ComputeEnvironment spec that pod validation would refuse."""
    return [
        *env_errors("spec.env", spec.get("env")),
        *resources_errors("spec.resources", spec.get("resources")),
        *node_selector_errors("spec.nodeSelector", spec.get("nodeSelector")),
        *toleration_errors("spec.tolerations", spec.get("tolerations")),
    ]


def spec_errors(kind: str, body: Mapping[str, Any]) -> list[str]:
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        return []
    if kind == "studios":
        return studio_spec_errors(spec)
    if kind == "computeenvironments":
        return environment_spec_errors(spec)
    return []
