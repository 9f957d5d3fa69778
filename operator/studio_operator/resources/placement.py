"""Which node placement a studio may ask for on its own (pure; the admission webhook enforces it).

A studio's `nodeSelector` entries and `tolerations` are accepted when its ComputeEnvironment
already has them, or lists them in `allowedNodeSelectors` / `allowedTolerations`. Anything else is
placement only someone who may create pods in the namespace could choose, so the webhook asks for
that permission instead. Only what a request adds or changes is checked; a new environment name
re-checks the whole placement against the new environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Body = Mapping[str, Any]


@dataclass(frozen=True)
class PlacementEntry:
    path: str  # e.g. spec.nodeSelector["pool"], spec.tolerations[1]
    node_selector: tuple[str, str] | None = None
    toleration: Mapping[str, Any] | None = None


def _toleration_id(t: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(key, operator, value, effect) with Kubernetes' defaults filled in."""
    return (
        str(t.get("key") or ""),
        str(t.get("operator") or "Equal"),
        str(t.get("value") or ""),
        str(t.get("effect") or ""),
    )


def requested(old_spec: Body | None, new_spec: Body) -> list[PlacementEntry]:
    """Placement this request adds or changes (everything when the environment changes)."""
    old_spec = old_spec or {}
    recheck = old_spec.get("computeEnvironment") != new_spec.get("computeEnvironment")
    old_sel = {} if recheck else (old_spec.get("nodeSelector") or {})
    out = [
        PlacementEntry(f'spec.nodeSelector["{k}"]', node_selector=(k, str(v)))
        for k, v in (new_spec.get("nodeSelector") or {}).items()
        if old_sel.get(k) != v
    ]
    old_tols = set() if recheck else {_toleration_id(t) for t in old_spec.get("tolerations") or []}
    out += [
        PlacementEntry(f"spec.tolerations[{i}]", toleration=t)
        for i, t in enumerate(new_spec.get("tolerations") or [])
        if isinstance(t, Mapping) and _toleration_id(t) not in old_tols
    ]
    return out


def covers(allowed: Mapping[str, Any], t: Mapping[str, Any]) -> bool:
    """Whether toleration `allowed` tolerates at least everything `t` does (Kubernetes semantics:
    an empty effect matches every effect, Exists every value, an empty key with Exists every taint)."""
    a_key, a_op, a_value, a_effect = _toleration_id(allowed)
    key, op, value, effect = _toleration_id(t)
    if a_effect and a_effect != effect:
        return False
    if a_op == "Exists" and not a_key:
        return True
    if a_key != key:
        return False
    if a_op == "Exists":
        return True
    return op == "Equal" and a_value == value


def violations(entries: list[PlacementEntry], env_name: str, env_spec: Body | None) -> list[str]:
    """Messages for the entries the environment neither has nor allows (None: it does not exist)."""
    if env_spec is None:
        reason = f'ComputeEnvironment "{env_name}" does not exist, so it allows no placement of its own'
        return [f"{e.path}: {reason}" for e in entries]
    selector = env_spec.get("nodeSelector") or {}
    allowed_sel = env_spec.get("allowedNodeSelectors") or {}
    allowed_tols = [
        t
        for t in [*(env_spec.get("tolerations") or []), *(env_spec.get("allowedTolerations") or [])]
        if isinstance(t, Mapping)
    ]
    out: list[str] = []
    for e in entries:
        if e.node_selector is not None:
            key, value = e.node_selector
            if selector.get(key) == value or value in (allowed_sel.get(key) or []):
                continue
            out.append(
                f'{e.path}: "{value}" is neither the nodeSelector of ComputeEnvironment "{env_name}" '
                "nor in its allowedNodeSelectors"
            )
        elif e.toleration is not None:
            if any(covers(a, e.toleration) for a in allowed_tols):
                continue
            out.append(
                f'{e.path}: not among the tolerations or allowedTolerations of ComputeEnvironment "{env_name}"'
            )
    return out
