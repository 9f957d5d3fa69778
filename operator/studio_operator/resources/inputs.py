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
from .endpoints import S3Policy
from .links import link_view
from .merge import LabelConflict, MergedLabels, is_reserved_label, merge_labels


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


@dataclass(frozen=True)
class Gathered:
    """The inputs of the next session, and what keeps it from starting (first first). The inputs
    are built even then, for `describe`: a missing or invalid environment counts as empty,
    reserved label keys are left out, only Ready links are in."""

    inputs: SessionInputs
    problems: list[Problem]


def environment_of(
    name: str, namespace: str, body: Mapping[str, Any] | None
) -> tuple[ComputeEnvironmentSpec, Problem | None]:
    if body is None:
        return ComputeEnvironmentSpec(), Problem(
            "EnvironmentNotFound",
            f"ComputeEnvironment {name!r} does not exist in namespace {namespace!r}: "
            "create it or set spec.computeEnvironment to an existing one",
        )
    try:
        env = ComputeEnvironmentSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return ComputeEnvironmentSpec(), Problem("EnvironmentInvalid", f"ComputeEnvironment {name!r}: {exc}")
    problems = environment_spec_errors(body.get("spec") or {})
    if problems:
        return env, Problem(
            "EnvironmentInvalid",
            f"ComputeEnvironment {name!r}: {'; '.join(problems[:5])}; fix the environment",
        )
    return env, None


def labels_of(
    env: ComputeEnvironmentSpec, spec: StudioSpec, name: str
) -> tuple[MergedLabels, Problem | None]:
    try:
        return merge_labels(
            env.resource_labels, spec.resource_labels, spec.remove_resource_labels, name
        ), None
    except LabelConflict as exc:
        allowed = merge_labels(
            env.resource_labels,
            {k: v for k, v in (spec.resource_labels or {}).items() if not is_reserved_label(k)},
            [k for k in spec.remove_resource_labels or [] if not is_reserved_label(k)],
            name,
        )
        return allowed, Problem(
            "LabelConflict", f"{exc}; remove them from spec.resourceLabels/removeResourceLabels"
        )


def links_of(
    spec: StudioSpec, namespace: str, bodies: Mapping[str, Mapping[str, Any] | None]
) -> tuple[dict[str, LinkView], Problem | None]:
    links: dict[str, LinkView] = {}
    problem: Problem | None = None
    for mount in spec.mounts or []:
        view = link_view(mount.data_link, bodies.get(mount.data_link))
        if view is not None and view.ready:
            links[mount.data_link] = view
        elif problem is None and view is None:
            problem = Problem(
                "DataLinkNotFound",
                f"DataLink {mount.data_link!r} does not exist in namespace {namespace!r}: create it or "
                "remove it from spec.mounts",
            )
        elif problem is None and view is not None:
            why = f" ({view.reason}: {view.message})" if view.reason else ""
            problem = Problem(
                "DataLinkNotReady",
                f"DataLink {mount.data_link!r} is not Ready{why}: fix the link (bucket, region, "
                "credentials) and the studio starts by itself",
            )
    return links, problem


def gather_inputs(
    studio: Mapping[str, Any],
    spec: StudioSpec,
    environment: Mapping[str, Any] | None,
    links: Mapping[str, Mapping[str, Any] | None],
    s3_policy: S3Policy | None = None,
) -> Gathered:
    """The studio, its ComputeEnvironment (None: missing), the DataLinks its mounts name, and the
    administrator's S3 trust (None: the default, AWS S3 only)."""
    ref = studio_ref(studio)
    env, env_problem = environment_of(spec.compute_environment, ref.namespace, environment)
    labels, label_problem = labels_of(env, spec, ref.name)
    views, link_problem = links_of(spec, ref.namespace, links)
    inputs = SessionInputs(
        studio=ref,
        spec=spec,
        environment_name=spec.compute_environment,
        environment=env,
        labels=labels,
        links=views,
        creator=ref.annotations.get(CREATED_BY_ANNOTATION),
        s3_policy=s3_policy or S3Policy(),
    )
    return Gathered(inputs, [p for p in (env_problem, label_problem, link_problem) if p is not None])
