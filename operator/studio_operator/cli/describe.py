"""`kubectl studio describe` (pure): a studio's effective env, labels and mounts, with sources.

Computed with the operator's own functions (resources/merge.py, resources/session.py
`session_env`, resources/links.py), so what this prints is what the next session gets. Values of
`valueFrom` variables are shown as their reference (secret/config map name and key); secret values
are never read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.common import EnvVar
from ..api.kinds import ComputeEnvironmentSpec, StudioSpec
from ..resources.buckets import is_writable
from ..resources.inputs import Problem, gather_inputs
from ..resources.links import link_view
from ..resources.merge import merge_resources
from ..resources.mounts import DATA_ROOT
from ..resources.session import operator_env, session_env
from . import format as fmt

OPERATOR = "operator"
ENVIRONMENT = "environment"
STUDIO = "studio"


@dataclass
class EnvEntry:
    name: str
    value: str  # the literal value, or a description of the reference for valueFrom
    source: str  # operator | environment | studio
    overrides: list[str] = field(default_factory=list)  # lower sources that set the same name
    reference: bool = False  # True: valueFrom


@dataclass
class LabelEntry:
    key: str
    value: str
    source: str


@dataclass
class MountEntry:
    data_link: str
    path: str
    uri: str
    access: str  # ReadOnly | ReadWrite
    source: str
    ready: bool
    note: str = ""


@dataclass
class Explanation:
    env: list[EnvEntry] = field(default_factory=list)
    labels: list[LabelEntry] = field(default_factory=list)
    removed_labels: list[str] = field(default_factory=list)
    mounts: list[MountEntry] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_text(value_from: Mapping[str, Any]) -> str:
    """How a valueFrom is shown: where the value comes from, never the value."""
    if "secretKeyRef" in value_from:
        ref = value_from["secretKeyRef"] or {}
        return f"<secret {ref.get('name', '?')} key {ref.get('key', '?')}>"
    if "configMapKeyRef" in value_from:
        ref = value_from["configMapKeyRef"] or {}
        return f"<configmap {ref.get('name', '?')} key {ref.get('key', '?')}>"
    if "fieldRef" in value_from:
        return f"<field {(value_from['fieldRef'] or {}).get('fieldPath', '?')}>"
    if "resourceFieldRef" in value_from:
        ref = value_from["resourceFieldRef"] or {}
        return f"<resource {ref.get('resource', '?')}>"
    return "<" + ", ".join(sorted(value_from)) + ">"


def _env_entry(var: EnvVar, source: str, overrides: list[str]) -> EnvEntry:
    if var.value_from is not None:
        return EnvEntry(var.name, reference_text(var.value_from), source, overrides, reference=True)
    return EnvEntry(var.name, var.value or "", source, overrides)


def explain(
    studio: Mapping[str, Any],
    environment: Mapping[str, Any] | None,
    links: Mapping[str, Mapping[str, Any] | None],
) -> Explanation:
    """`studio`, its ComputeEnvironment (None when missing) and its data links by name (None: missing)."""
    out = Explanation()
    try:
        spec = StudioSpec.model_validate(studio.get("spec") or {})
    except ValidationError as exc:
        out.problems.append(f"the studio's spec is invalid: {exc.errors()[0]['msg']}")
        return out
    gathered = gather_inputs(studio, spec, environment, links)
    for problem in gathered.problems:
        if problem.reason == "EnvironmentNotFound":  # what describe shows is then mostly empty: say why
            problem = Problem(
                problem.reason,
                f"ComputeEnvironment {spec.compute_environment!r} not found in namespace "
                f"{gathered.inputs.studio.namespace!r}: nothing is inherited until it exists",
            )
        out.problems.append(problem.message)
    inputs, labels = gathered.inputs, gathered.inputs.labels
    env_spec = inputs.environment

    # Environment variables: exactly the operator's list, annotated with where each came from.
    layers = [
        (OPERATOR, {v.name for v in operator_env(inputs)}),
        (ENVIRONMENT, {v.name for v in env_spec.env or []}),
        (STUDIO, {v.name for v in spec.env or []}),
    ]
    for var in session_env(inputs):
        setters = [source for source, names in layers if var.name in names]
        out.env.append(_env_entry(var, setters[-1], setters[:-1]))

    for key, value in labels.labels.items():
        out.labels.append(LabelEntry(key, value, labels.sources[key]))
    inherited = env_spec.resource_labels or {}
    out.removed_labels = [k for k in spec.remove_resource_labels or [] if k in inherited]

    out.mounts = [
        _mount_entry(mount.data_link, links.get(mount.data_link), env_spec) for mount in spec.mounts or []
    ]
    out.resources = merge_resources(env_spec, spec)
    return out


def _mount_entry(name: str, body: Mapping[str, Any] | None, env: ComputeEnvironmentSpec) -> MountEntry:
    path = f"{DATA_ROOT}/{name}"
    view = link_view(name, body)
    if view is None:
        return MountEntry(name, path, "", "ReadOnly", STUDIO, False, "data link not found")
    access = "ReadWrite" if view.bucket and is_writable(view.bucket, env.allowed_buckets) else "ReadOnly"
    notes = []
    if not view.ready:
        notes.append(f"not Ready: {view.reason}" + (f" ({view.message})" if view.message else ""))
    if access == "ReadWrite":
        notes.append("bucket in the environment's allowedBuckets")
    if view.region and env.region and view.region != env.region:
        notes.append(f"cross-region: {view.region} vs environment {env.region}")
    return MountEntry(name, path, view.spec.uri, access, STUDIO, view.ready, "; ".join(notes))


def _section(title: str, body: str) -> str:
    indented = "\n".join("  " + line for line in body.splitlines()) if body else f"  {fmt.NONE}"
    return f"{title}:\n{indented}"


def _header(studio: Mapping[str, Any], explanation: Explanation, now: datetime) -> list[str]:
    meta = studio.get("metadata") or {}
    spec = studio.get("spec") or {}
    status = studio.get("status") or {}
    session = status.get("session") or {}
    template = spec.get("template") or {}
    lines = [
        f"Name:           {meta.get('name', '')}",
        f"Namespace:      {meta.get('namespace', '')}",
    ]
    if spec.get("displayName"):
        lines.append(f"Display name:   {spec['displayName']}")
    lines += [
        f"Environment:    {spec.get('computeEnvironment', '')}",
        f"Image:          {template.get('image', '')} (port {template.get('port', 8080)})",
        f"State:          {spec.get('state', 'Running')}",
        f"Phase:          {fmt.phase(studio)}",
        f"Message:        {status.get('message') or ''}",
        f"Private:        {fmt.private(studio)}",
        f"Creator:        {fmt.creator(studio)}",
    ]
    if session.get("startedAt"):
        hours = session.get("lifespanHours")
        lifespan = "keep running" if hours is None else f"{hours}h"
        source = session.get("lifespanSource")
        lines.append(f"Session:        pod {session.get('podName')}, started {session.get('startedAt')}")
        lines.append(
            f"Lifespan:       {lifespan}"
            + (f" (from {source})" if source else "")
            + f", expires {fmt.expiry(studio, now)}"
            + (f" at {session['expiresAt']}" if session.get("expiresAt") else "")
        )
    connect = status.get("connect") or {}
    if connect.get("command"):
        lines.append(f"Connect:        {connect['command']}")
    lines.extend(f"Warning:        {problem}" for problem in explanation.problems)
    return lines


def _table_section(title: str, headers: list[str], rows: list[list[str]]) -> str:
    return _section(title, fmt.table(headers, rows) if rows else "")


def render(
    studio: Mapping[str, Any],
    explanation: Explanation,
    now: datetime,
) -> str:
    env_rows = []
    for e in explanation.env:
        src = e.source + (f" (overrides {', '.join(e.overrides)})" if e.overrides else "")
        env_rows.append([e.name, e.value, src])
    label_rows = [[lb.key, lb.value, lb.source] for lb in explanation.labels]
    label_rows += [
        [key, "(removed)", "studio removes the environment's label"] for key in explanation.removed_labels
    ]
    mount_rows = [
        [m.data_link, m.path, m.uri or "-", m.access, m.note or ("Ready" if m.ready else "")]
        for m in explanation.mounts
    ]
    res_lines = [
        f"{part}: " + ", ".join(f"{k}={v}" for k, v in values.items())
        for part, values in explanation.resources.items()
    ]
    cond_rows = [
        [c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", "")]
        for c in (studio.get("status") or {}).get("conditions") or []
    ]
    sections = [
        "\n".join(_header(studio, explanation, now)),
        _table_section("Environment variables", ["NAME", "VALUE", "SOURCE"], env_rows),
        _table_section("Labels", ["KEY", "VALUE", "SOURCE"], label_rows),
        _table_section("Mounts", ["DATA LINK", "PATH", "URI", "ACCESS", "NOTE"], mount_rows),
        _section("Resources", "\n".join(res_lines)),
        _table_section("Conditions", ["TYPE", "STATUS", "REASON", "MESSAGE"], cond_rows),
    ]
    return "\n".join(sections)


def render_json(studio: Mapping[str, Any], explanation: Explanation) -> str:
    meta = studio.get("metadata") or {}
    doc = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "phase": (studio.get("status") or {}).get("phase"),
        **explanation.to_dict(),
    }
    return json.dumps(doc, indent=2)
