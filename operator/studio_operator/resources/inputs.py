"""Everything one studio's next session is built from, gathered from the objects it names (pure).

The controller and `kubectl studio describe` both call `gather_inputs`, so what describe shows is
what the next session gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api.common import CREATED_BY_ANNOTATION
from ..api.kinds import ComputeEnvironmentSpec, StudioSpec
from ..api.pod_checks import environment_spec_errors
from .context import LinkView, SessionInputs, StudioRef
from .links import link_view
from .merge import LabelConflict, merge_labels


@dataclass(frozen=True)
class Problem:
    """Why no session can be built: a kstatus reason and a message that names the fix."""

    reason: str
    message: str


def studio_ref(studio: Mapping[str, Any]) -> StudioRef:
    meta = studio.get("metadata") or {}
    return StudioRef(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=meta.get("generation", 1),
        annotations=dict(meta.get("annotations") or {}),
    )


def environment_of(
    name: str, namespace: str, body: Mapping[str, Any] | None
) -> ComputeEnvironmentSpec | Problem:
    if body is None:
        return Problem(
            "EnvironmentNotFound",
            f"ComputeEnvironment {name!r} does not exist in namespace {namespace!r}: "
            "create it or set spec.computeEnvironment to an existing one",
        )
    try:
        env = ComputeEnvironmentSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return Problem("EnvironmentInvalid", f"ComputeEnvironment {name!r}: {exc}")
    problems = environment_spec_errors(body.get("spec") or {})
    if problems:
        return Problem(
            "EnvironmentInvalid",
            f"ComputeEnvironment {name!r}: {'; '.join(problems[:5])}; fix the environment",
        )
    return env


def links_of(
    spec: StudioSpec, namespace: str, bodies: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, LinkView] | Problem:
    links: dict[str, LinkView] = {}
    for mount in spec.mounts or []:
        body = bodies.get(mount.data_link)
        if body is None:
            return Problem(
                "DataLinkNotFound",
                f"DataLink {mount.data_link!r} does not exist in namespace {namespace!r}: create it or "
                "remove it from spec.mounts",
            )
        view = link_view(mount.data_link, body)
        if view is None or not view.ready:
            why = f" ({view.reason}: {view.message})" if view is not None and view.reason else ""
            return Problem(
                "DataLinkNotReady",
                f"DataLink {mount.data_link!r} is not Ready{why}: fix the link (bucket, region, "
                "credentials) and the studio starts by itself",
            )
        links[mount.data_link] = view
    return links


def gather_inputs(
    studio: Mapping[str, Any],
    spec: StudioSpec,
    environment: Mapping[str, Any] | None,
    links: Mapping[str, Mapping[str, Any] | None],
) -> SessionInputs | Problem:
    """The studio, its ComputeEnvironment (None: missing) and the DataLinks its mounts name."""
    ref = studio_ref(studio)
    env = environment_of(spec.compute_environment, ref.namespace, environment)
    if isinstance(env, Problem):
        return env
    try:
        labels = merge_labels(
            env.resource_labels, spec.resource_labels, spec.remove_resource_labels, ref.name
        )
    except LabelConflict as exc:
        return Problem("LabelConflict", f"{exc}; remove them from spec.resourceLabels/removeResourceLabels")
    views = links_of(spec, ref.namespace, links)
    if isinstance(views, Problem):
        return views
    return SessionInputs(
        studio=ref,
        spec=spec,
        environment_name=spec.compute_environment,
        environment=env,
        labels=labels,
        links=views,
        creator=ref.annotations.get(CREATED_BY_ANNOTATION),
    )
