"""Inheritance rules: how a studio's values combine with its ComputeEnvironment's (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.common import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    RESERVED_LABEL_PREFIX,
    STUDIO_LABEL,
    EnvVar,
    Toleration,
)
from ..api.kinds import ComputeEnvironmentSpec, StudioSpec


def merge_env(inherited: Iterable[EnvVar], own: Iterable[EnvVar]) -> list[EnvVar]:
    """The environment's list, each overridden in place by a studio entry of the same name,
    then the studio's new names in their order."""
    own_list = list(own)
    own_by_name = {e.name: e for e in own_list}
    merged: list[EnvVar] = []
    seen: set[str] = set()
    for var in inherited:
        if var.name in seen:
            continue
        seen.add(var.name)
        merged.append(own_by_name.get(var.name, var))
    for var in own_list:
        if var.name not in seen:
            seen.add(var.name)
            merged.append(var)
    return merged


def is_reserved_label(key: str) -> bool:
    return key.startswith(RESERVED_LABEL_PREFIX) or key == MANAGED_BY_KEY


class LabelConflict(ValueError):
    """A studio tried to set or remove a reserved label key (normally stopped at admission)."""


@dataclass(frozen=True)
class MergedLabels:
    labels: dict[str, str]
    inherited: list[str]  # keys whose value came from the environment
    sources: dict[str, str]  # key -> "environment" | "studio" | "operator"


def merge_labels(
    inherited: Mapping[str, str] | None,
    own: Mapping[str, str] | None,
    remove: Iterable[str] | None,
    studio_name: str,
) -> MergedLabels:
    own = dict(own or {})
    removed = set(remove or ())
    bad = sorted(k for k in [*own, *removed] if is_reserved_label(k))
    if bad:
        raise LabelConflict(f"reserved label keys cannot be set or removed by a studio: {', '.join(bad)}")
    labels: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key, value in (inherited or {}).items():
        if is_reserved_label(key):
            continue  # an environment cannot claim operator keys either
        labels[key], sources[key] = value, "environment"
    for key, value in own.items():
        labels[key], sources[key] = value, "studio"
    for key in removed:
        labels.pop(key, None)
        sources.pop(key, None)
    labels[MANAGED_BY_KEY], sources[MANAGED_BY_KEY] = MANAGED_BY_VALUE, "operator"
    labels[STUDIO_LABEL], sources[STUDIO_LABEL] = studio_name, "operator"
    inherited_keys = sorted(k for k, src in sources.items() if src == "environment")
    return MergedLabels(labels=labels, inherited=inherited_keys, sources=sources)


def merge_resources(env: ComputeEnvironmentSpec, studio: StudioSpec) -> dict[str, Any]:
    """Per key (cpu, memory, nvidia.com/gpu ...) within limits and requests; studio wins."""
    out: dict[str, Any] = {}
    for part in ("limits", "requests"):
        merged: dict[str, Any] = {}
        for source in (env.resources, studio.resources):
            if source is not None:
                merged.update(getattr(source, part) or {})
        if merged:
            out[part] = {k: str(v) for k, v in merged.items()}
    return out


def merge_node_selector(env: ComputeEnvironmentSpec, studio: StudioSpec) -> dict[str, str]:
    return {**(env.node_selector or {}), **(studio.node_selector or {})}


def merge_tolerations(env: ComputeEnvironmentSpec, studio: StudioSpec) -> list[dict[str, Any]]:
    """Same (key, effect) from the studio replaces the environment's; others add up."""

    def ident(t: Toleration) -> tuple[str | None, str | None]:
        return (t.key, t.effect)

    own = list(studio.tolerations or [])
    own_ids = {ident(t) for t in own}
    kept = [t for t in (env.tolerations or []) if ident(t) not in own_ids]
    return [t.dump() for t in [*kept, *own]]
