"""Admission webhooks: who created a studio, who may configure it, and rules CEL cannot express.

- mutating, Studio CREATE: stamp `studios.dev/created-by` from the API server's authenticated user
  (replacing anything the client sent); on UPDATE put it back if a client dropped it (a manifest
  re-applied with server-side apply or `kubectl replace` does not carry it).
- validating, Studio UPDATE: created-by never changes; only the creator changes `private`; a change
  to anything but `spec.state` and the restart / session-lifespan annotations (finalizers included)
  needs the verb `configure` (SubjectAccessReview).
- validating, Studio: node placement beyond what the ComputeEnvironment has or allows needs
  permission to create pods in the namespace.
- validating, ComputeEnvironment: fields that give studio pods power (service account, pull
  secrets, a profile other than Restricted, the fuse driver and its image) need permission to
  create pods in the namespace: Kubernetes' own rule for who may run a pod with them.
- validating, all four kinds: reserved label keys, secrets and config maps (each key) the author
  cannot read, the WorkspaceSettings name; plus warnings for references that do not exist (yet).

The operator's own writes (finalizers, its annotations) always pass: its identity is discovered at
startup. Rules only look at what a request changes, so an object that predates a rule can still
be started, stopped and cleaned up. The handlers' only calls are reads and SubjectAccessReviews
(no side effects, so dry-run requests are safe). kopf's managed configurations use
`failurePolicy: Fail` (the handlers set no `ignore_failures`) and `sideEffects: None`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import kopf
from cryptography import x509

from .. import kube, rbac, webhook_certs
from ..api.common import CREATED_BY_ANNOTATION as CREATED_BY
from ..api.common import GROUP, RESERVED_KEYS_MSG, RESTART_ANNOTATION, SESSION_LIFESPAN_ANNOTATION, VERSION
from ..api.pod_checks import spec_errors
from ..resources import placement
from ..resources.lifespan import parse_hours_annotation
from ..resources.merge import is_reserved_label

logger = logging.getLogger(__name__)


# What studios-launch may change on a studio besides spec.state.
LAUNCH_ANNOTATIONS = frozenset({RESTART_ANNOTATION, SESSION_LIFESPAN_ANNOTATION})
# Mirrors of the spec that change with it (the spec change itself is what gets checked).
IGNORED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
# Written by the API server or by controllers.
SERVER_METADATA = frozenset(
    {
        "resourceVersion",
        "generation",
        "managedFields",
        "creationTimestamp",
        "uid",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "name",
        "namespace",
        "generateName",
    }
)
# The garbage collector removes these when it has dealt with an object's dependents.
GC_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})
# The API server sends admission reviews with the old and the new object: a request body is at most
# 3 MiB and a stored object at most 1.5 MiB, so 16 MiB is more than it can send (aiohttp: 1 MiB).
WEBHOOK_MAX_BODY = 16 * 1024 * 1024
WORKSPACE_SETTINGS_NAME = "default"

# Handler ids are the URL paths (`/<id>`): a webhook configuration shipped by the chart uses them.
MUTATE_STUDIO = "mutate-studio"
VALIDATE_STUDIO = "validate-studio"
VALIDATE_COMPUTE_ENVIRONMENT = "validate-computeenvironment"
VALIDATE_DATA_LINK = "validate-datalink"
VALIDATE_WORKSPACE_SETTINGS = "validate-workspacesettings"
# (handler id, plural, mutating?): what register_handlers() registers.
WEBHOOKS: tuple[tuple[str, str, bool], ...] = (
    (MUTATE_STUDIO, "studios", True),
    (VALIDATE_STUDIO, "studios", False),
    (VALIDATE_COMPUTE_ENVIRONMENT, "computeenvironments", False),
    (VALIDATE_DATA_LINK, "datalinks", False),
    (VALIDATE_WORKSPACE_SETTINGS, "workspacesettings", False),
)

LAUNCH_MAY_CHANGE = (
    f"{rbac.LAUNCH} may only change spec.state and the {RESTART_ANNOTATION} and "
    f"{SESSION_LIFESPAN_ANNOTATION} annotations"
)

Body = Mapping[str, Any]


# ---------------------------------------------------------------- pure rules


def _meta(body: Body | None) -> Mapping[str, Any]:
    return (body or {}).get("metadata") or {}


def _annotations(body: Body | None) -> Mapping[str, str]:
    return _meta(body).get("annotations") or {}


def _spec(body: Body | None) -> Mapping[str, Any]:
    return (body or {}).get("spec") or {}


def creator_to_stamp(operation: str | None, old: Body | None, new: Body | None, username: str) -> str | None:
    """The created-by value the mutating webhook writes, or None to leave the object as it is."""
    if operation == "CREATE":
        return username if _annotations(new).get(CREATED_BY) != username else None
    if operation == "UPDATE":
        before = _annotations(old).get(CREATED_BY)
        if before is not None and CREATED_BY not in _annotations(new):
            return before  # dropped by a re-apply: restore rather than fail the whole update
    return None


def created_by_violation(old: Body | None, new: Body | None) -> str | None:
    before, after = _annotations(old).get(CREATED_BY), _annotations(new).get(CREATED_BY)
    if before == after:
        return None
    shown = repr(before) if before is not None else "unset"
    return (
        f'metadata.annotations["{CREATED_BY}"]: is recorded by the API server when the studio is '
        f"created and cannot be set, changed or removed (it is {shown})"
    )


def creator_mismatch(new: Body, username: str) -> str | None:
    if _annotations(new).get(CREATED_BY) == username:
        return None
    return f'metadata.annotations["{CREATED_BY}"]: must be the creating user "{username}"'


def configuration_changes(old: Body, new: Body) -> list[str]:
    """Paths that changed and need `configure`; empty when the change is launch-level.

    Labels count as configuration (selectors and policies key on them); status is a subresource;
    finalizers and server-written metadata are not configuration; owner references may be
    dropped (as the garbage collector does) but adding one could get the studio deleted.
    """
    old_meta, new_meta = _meta(old), _meta(new)
    skip = LAUNCH_ANNOTATIONS | IGNORED_ANNOTATIONS | {CREATED_BY}  # created-by has its own rule
    paths = [
        *_changed(_spec(old), _spec(new), "spec.{}".format, {"state"}),
        *_changed(old, new, str, {"apiVersion", "kind", "metadata", "spec", "status"}),
        *_changed(old_meta.get("labels") or {}, new_meta.get("labels") or {}, 'metadata.labels["{}"]'.format),
        *_changed(_annotations(old), _annotations(new), 'metadata.annotations["{}"]'.format, skip),
    ]
    if finalizers_changed(old_meta.get("finalizers"), new_meta.get("finalizers")):
        paths.append("metadata.finalizers")
    old_refs = [r for r in old_meta.get("ownerReferences") or [] if isinstance(r, Mapping)]
    if any(ref not in old_refs for ref in new_meta.get("ownerReferences") or []):
        paths.append("metadata.ownerReferences")
    handled = SERVER_METADATA | {"labels", "annotations", "ownerReferences", "finalizers"}
    paths += _changed(old_meta, new_meta, "metadata.{}".format, handled)
    return paths


def _changed(
    old: Mapping[str, Any], new: Mapping[str, Any], path: Callable[[str], str], skip: Iterable[str] = ()
) -> list[str]:
    """The paths of the keys whose values differ, in key order."""
    return [path(k) for k in sorted((set(old) | set(new)) - set(skip)) if old.get(k) != new.get(k)]


def finalizers_changed(old: Iterable[str] | None, new: Iterable[str] | None) -> bool:
    """A finalizer added or removed, apart from the garbage collector removing its own: a
    launcher who strips the operator's finalizer skips its cleanup, one who adds another leaves the
    studio Terminating for good."""
    before, after = set(old or ()), set(new or ())
    return bool((after - before) or (before - after - GC_FINALIZERS))


def private_violation(old: Body, new: Body, username: str) -> str | None:
    """Only the creator turns `private` on or off: a public studio is connectable by every
    launcher and admin, so anyone else flipping it would hand out the creator's session."""
    before, after = bool(_spec(old).get("private", False)), bool(_spec(new).get("private", False))
    creator = _annotations(old).get(CREATED_BY)
    if before == after or (creator is not None and creator == username):
        return None
    who = f'its creator "{creator}"' if creator else "its creator, and this studio has no recorded creator"
    return f'spec.private: only {who} may change it (user "{username}" may not)'


def configure_denied_message(paths: list[str]) -> str:
    shown = ", ".join(paths[:5]) + (f" (and {len(paths) - 5} more)" if len(paths) > 5 else "")
    return (
        f"changing {shown} requires the {rbac.MAINTAIN} role (verb {rbac.CONFIGURE_VERB} on studios); "
        f"{LAUNCH_MAY_CHANGE}"
    )


def reserved_label_errors(
    path: str, labels: Mapping[str, str] | None, before: Mapping[str, str] | None
) -> list[str]:
    """Reserved keys in a labels map (only keys this request adds are reported)."""
    known = set(before or {})
    return [
        f'{path}["{key}"]: {RESERVED_KEYS_MSG}'
        for key in (labels or {})
        if is_reserved_label(key) and key not in known
    ]


def reserved_removal_errors(path: str, keys: list[str] | None, before: list[str] | None) -> list[str]:
    known = set(before or [])
    return [
        f'{path}[{i}] ("{key}"): {RESERVED_KEYS_MSG}'
        for i, key in enumerate(keys or [])
        if is_reserved_label(key) and key not in known
    ]


def lifespan_annotation_error(old: Body | None, new: Body) -> str | None:
    value = _annotations(new).get(SESSION_LIFESPAN_ANNOTATION)
    if value is None or value == _annotations(old).get(SESSION_LIFESPAN_ANNOTATION):
        return None
    _, problem = parse_hours_annotation(value)
    return f'metadata.annotations["{SESSION_LIFESPAN_ANNOTATION}"]: {problem}' if problem else None


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A secret or config map an object makes the operator use on its author's behalf."""

    resource: str  # "secrets" | "configmaps"
    name: str
    path: str  # the field that names it, for the message
    key: str | None = None  # the key read (env references); None: the whole object
    variable: str | None = None  # the variable it lands in (env references)

    @property
    def identity(self) -> tuple[str, str, str | None, str | None]:
        """What makes a reference new: a different object, key or variable, wherever it sits."""
        return (self.resource, self.name, self.key, self.variable)


def env_refs(path: str, env: Iterable[Any] | None) -> list[ObjectRef]:
    refs: list[ObjectRef] = []
    for i, var in enumerate(env or []):
        if not isinstance(var, Mapping):
            continue
        source = var.get("valueFrom") or {}
        for field, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            ref = source.get(field) if isinstance(source, Mapping) else None
            name = ref.get("name") if isinstance(ref, Mapping) else None
            if isinstance(name, str) and name:
                key = ref.get("key") if isinstance(ref, Mapping) else None
                refs.append(
                    ObjectRef(
                        resource,
                        name,
                        f"{path}[{i}].valueFrom.{field}.name",
                        key=str(key) if key is not None else None,
                        variable=str(var.get("name")),
                    )
                )
    return refs


def object_refs(kind: str, body: Body | None) -> list[ObjectRef]:
    """Secrets and config maps the operator would read or mount because this object says so."""
    spec = _spec(body)
    refs = env_refs("spec.env", spec.get("env"))
    if kind in ("computeenvironments", "datalinks"):
        secret = spec.get("credentialsSecret")
        if isinstance(secret, str) and secret:
            refs.append(ObjectRef("secrets", secret, "spec.credentialsSecret"))
    return refs


def new_refs(kind: str, old: Body | None, new: Body) -> list[ObjectRef]:
    """References this request adds or changes: a new object, a new key of a referenced object,
    or a referenced key put into another variable. Unchanged ones were checked when added."""
    before = {r.identity for r in object_refs(kind, old)}
    return [ref for ref in object_refs(kind, new) if ref.identity not in before]


def ref_denied_message(ref: ObjectRef, username: str, namespace: str) -> str:
    what = f'{ref.resource[:-1]} "{ref.name}"'
    if ref.key is not None:
        what += f' (key "{ref.key}")'
    return (
        f'{ref.path}: user "{username}" cannot get {what} in namespace "{namespace}", '
        "so may not make the operator use it"
    )


# ComputeEnvironment fields that give studio pods power their authors may not otherwise have.
POWER_FIELDS_RULE = "needs the permissions of someone who may run any pod there"


def power_field_changes(old: Body | None, new: Body) -> list[str]:
    """Paths of power fields this request sets or changes (unchanged ones were checked before)."""
    before, after = _spec(old), _spec(new)
    paths: list[str] = []
    account = after.get("serviceAccountName")
    if account and account != before.get("serviceAccountName"):
        paths.append("spec.serviceAccountName")
    known = {s.get("name") for s in before.get("imagePullSecrets") or [] if isinstance(s, Mapping)}
    for i, secret in enumerate(after.get("imagePullSecrets") or []):
        if isinstance(secret, Mapping) and secret.get("name") not in known:
            paths.append(f"spec.imagePullSecrets[{i}]")
    profile = after.get("securityProfile") or "Restricted"
    if profile != "Restricted" and profile != (before.get("securityProfile") or "Restricted"):
        paths.append("spec.securityProfile")
    old_storage, new_storage = before.get("storage") or {}, after.get("storage") or {}
    if new_storage.get("driver") == "fuse" and old_storage.get("driver") != "fuse":
        paths.append("spec.storage.driver")
    image = new_storage.get("fuseImage")
    if image and image != old_storage.get("fuseImage"):
        paths.append("spec.storage.fuseImage")
    return paths


def pods_denied_message(paths: list[str], username: str, namespace: str) -> str:
    return "; ".join(
        f'{path}: requires permission to create pods in namespace "{namespace}" (user "{username}" may not)'
        for path in paths
    )


def workspace_settings_name_error(name: str | None) -> str | None:
    if name == WORKSPACE_SETTINGS_NAME:
        return None
    return f'metadata.name: WorkspaceSettings must be named "{WORKSPACE_SETTINGS_NAME}" (one per namespace), not "{name or ""}"'


def label_errors(kind: str, old: Body | None, new: Body) -> list[str]:
    spec, before = _spec(new), _spec(old)
    errors = reserved_label_errors(
        "spec.resourceLabels", spec.get("resourceLabels"), before.get("resourceLabels")
    )
    if kind == "studios":
        errors += reserved_removal_errors(
            "spec.removeResourceLabels", spec.get("removeResourceLabels"), before.get("removeResourceLabels")
        )
    return errors


def sar_body(
    userinfo: Mapping[str, Any],
    namespace: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    name: str | None = None,
) -> dict[str, Any]:
    """A SubjectAccessReview asking whether the requesting user may `verb` the resource."""
    attributes: dict[str, Any] = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if name:
        attributes["name"] = name
    spec: dict[str, Any] = {"resourceAttributes": attributes, "user": userinfo.get("username", "")}
    if userinfo.get("groups"):
        spec["groups"] = list(userinfo["groups"])
    if userinfo.get("uid"):
        spec["uid"] = userinfo["uid"]
    if userinfo.get("extra"):
        spec["extra"] = {k: list(v) for k, v in userinfo["extra"].items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


# ---------------------------------------------------------------- I/O: identity and reviews


@dataclass
class _State:
    operator_username: str | None = None
    ready: bool = False


_state = _State()


def set_operator_identity(username: str) -> None:
    """Requests from this user (the operator itself) pass every studio rule."""
    _state.operator_username = username


async def discover_identity() -> str:
    """Who the operator is authenticated as (authentication.k8s.io/v1 SelfSubjectReview)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    result = await kube.request("POST", kube.path_for("authentication.k8s.io/v1", "SelfSubjectReview"), body)
    return str(((result.get("status") or {}).get("userInfo") or {}).get("username"))


async def init_admission() -> str:
    """Startup wiring in one call: discover and remember our identity, then serve."""
    username = await discover_identity()
    set_operator_identity(username)
    _state.ready = True
    logger.info("Admission: the operator acts as %r", username)
    return username


def _is_operator(userinfo: Mapping[str, Any]) -> bool:
    return _state.operator_username is not None and userinfo.get("username") == _state.operator_username


def _check_ready() -> None:
    if not _state.ready:
        # fail closed: without the API nothing can be checked
        raise kopf.AdmissionError("the studio operator is still starting; retry in a moment", code=503)


class Target(TypedDict, total=False):
    """Which object of the resource a SubjectAccessReview asks about (see `sar_body`)."""

    group: str
    name: str | None


async def access_allowed(
    userinfo: Mapping[str, Any], namespace: str, verb: str, resource: str, **target: Unpack[Target]
) -> bool:
    _check_ready()
    body = sar_body(userinfo, namespace, verb, resource, **target)
    path = kube.path_for("authorization.k8s.io/v1", "SubjectAccessReview")
    try:
        result = await kube.request("POST", path, body, retries=1)
    except kube.ApiError as e:  # fail closed, but say why
        raise kopf.AdmissionError(
            f"could not check access ({e.status} {e.reason}); retry in a moment", code=503
        ) from e
    return bool((result.get("status") or {}).get("allowed"))


async def _get_own_kind(namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    """One of our objects; None when it does not exist (kube.ApiError when unknown)."""
    try:
        found: dict[str, Any] = await kube.request(
            "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{name}", retries=1
        )
    except kube.ApiError as e:
        if e.status == 404:
            return None
        raise
    return found


async def _exists(namespace: str, plural: str, name: str) -> bool | None:
    """True/False when known; None when the lookup itself failed (warnings are best-effort)."""
    if not _state.ready:
        return None
    try:
        return await _get_own_kind(namespace, plural, name) is not None
    except kube.ApiError:  # a warning is not worth failing an admission over
        return None


async def _workspace_lock(namespace: str) -> bool:
    if not _state.ready:
        return False
    try:
        obj = await _get_own_kind(namespace, "workspacesettings", WORKSPACE_SETTINGS_NAME)
    except kube.ApiError:
        return False
    return bool(((obj or {}).get("spec") or {}).get("studioLifespan"))


async def _environment_spec(namespace: str, name: str) -> Mapping[str, Any] | None:
    """The environment's spec, or None when it does not exist; fails closed when unknown."""
    if not name:
        return None
    _check_ready()
    try:
        obj = await _get_own_kind(namespace, "computeenvironments", name)
    except kube.ApiError as e:
        raise kopf.AdmissionError(
            f"could not read ComputeEnvironment {name!r} ({e.status} {e.reason}); retry in a moment",
            code=503,
        ) from e
    return dict(obj.get("spec") or {}) if obj is not None else None


# ---------------------------------------------------------------- handlers


def _deny(errors: list[str], code: int = 422) -> None:
    if errors:
        raise kopf.AdmissionError("; ".join(errors), code=code)


def _plain(body: Any) -> dict[str, Any] | None:
    return None if body is None else dict(body)


async def _check_refs(
    kind: str, old: Body | None, new: Body, userinfo: Mapping[str, Any], namespace: str
) -> list[str]:
    """A maintainer who cannot read a secret must not read it through a studio's env or mounts."""
    errors: list[str] = []
    allowed: dict[tuple[str, str], bool] = {}  # one review per object, however many keys
    for ref in new_refs(kind, old, new):
        if (ref.resource, ref.name) not in allowed:
            allowed[ref.resource, ref.name] = await access_allowed(
                userinfo, namespace, "get", ref.resource, name=ref.name
            )
        if not allowed[ref.resource, ref.name]:
            errors.append(ref_denied_message(ref, str(userinfo.get("username", "")), namespace))
    return errors


async def _may_create_pods(userinfo: Mapping[str, Any], namespace: str) -> bool:
    return await access_allowed(userinfo, namespace, "create", "pods")


async def _check_power_fields(
    old: Body | None, new: Body, userinfo: Mapping[str, Any], namespace: str
) -> list[str]:
    paths = power_field_changes(old, new)
    if not paths or await _may_create_pods(userinfo, namespace):
        return []
    return [pods_denied_message(paths, str(userinfo.get("username", "")), namespace)]


async def _check_placement(
    old: Body | None, new: Body, userinfo: Mapping[str, Any], namespace: str
) -> list[str]:
    entries = placement.requested(_spec(old) if old else None, _spec(new))
    if not entries:
        return []
    env_name = str(_spec(new).get("computeEnvironment") or "")
    problems = placement.violations(entries, env_name, await _environment_spec(namespace, env_name))
    if not problems or await _may_create_pods(userinfo, namespace):
        return []
    needs = (
        f'; choosing other placement requires permission to create pods in namespace "{namespace}" '
        f'(user "{userinfo.get("username", "")}" may not)'
    )
    return ["; ".join(problems) + needs]


async def mutate_studio(
    *,
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    operation: str | None = None,
    old: Any = None,
    new: Any = None,
    **_: Any,
) -> None:
    value = creator_to_stamp(operation, _plain(old), _plain(new), str(userinfo.get("username", "")))
    if value is not None:
        patch.metadata.annotations[CREATED_BY] = value


def _studio_problem(
    operation: str | None, old_body: Body | None, new_body: Body, userinfo: Mapping[str, Any]
) -> str | None:
    problem = lifespan_annotation_error(old_body, new_body)
    if operation == "CREATE":
        # the mutating webhook stamped it; a later mutating webhook must not have changed it
        return problem or creator_mismatch(new_body, str(userinfo.get("username", "")))
    if old_body is not None:
        return problem or created_by_violation(old_body, new_body)
    return problem


async def _check_studio_update(
    old_body: Body, new_body: Body, userinfo: Mapping[str, Any], namespace: str, name: str | None
) -> None:
    """Changing how a studio runs (not just starting or stopping it) takes the configure verb;
    only the creator turns `private` on or off."""
    paths = configuration_changes(old_body, new_body)
    if paths and not await access_allowed(
        userinfo, namespace, rbac.CONFIGURE_VERB, "studios", group=GROUP, name=name
    ):
        raise kopf.AdmissionError(configure_denied_message(paths), code=403)
    problem = private_violation(old_body, new_body, str(userinfo.get("username", "")))
    _deny([problem] if problem else [], code=403)


async def _check_studio_placement(
    old_body: Body | None,
    new_body: Body,
    userinfo: Mapping[str, Any],
    namespace: str,
    warnings: list[str] | None,
) -> None:
    _deny(await _check_placement(old_body, new_body, userinfo, namespace), code=403)
    if warnings is not None:
        warnings.extend(await studio_warnings(old_body, new_body, namespace))


async def studio_warnings(old: Body | None, new: Body, namespace: str) -> list[str]:
    """Not errors (GitOps applies objects in any order), but worth telling the author now."""
    out: list[str] = []
    spec, before = _spec(new), _spec(old)
    env_name = spec.get("computeEnvironment")
    env_changed = isinstance(env_name, str) and env_name != before.get("computeEnvironment")
    if env_changed and await _exists(namespace, "computeenvironments", str(env_name)) is False:
        out.append(
            f'spec.computeEnvironment: ComputeEnvironment "{env_name}" does not exist in "{namespace}" '
            "yet; the studio waits (Stalled) until it does"
        )
    old_links = {m.get("dataLink") for m in before.get("mounts") or []}
    for i, mount in enumerate(spec.get("mounts") or []):
        link = mount.get("dataLink")
        if link and link not in old_links and await _exists(namespace, "datalinks", link) is False:
            out.append(f'spec.mounts[{i}].dataLink: DataLink "{link}" does not exist in "{namespace}" yet')
    value = _annotations(new).get(SESSION_LIFESPAN_ANNOTATION)
    value_changed = value is not None and value != _annotations(old).get(SESSION_LIFESPAN_ANNOTATION)
    if value_changed and await _workspace_lock(namespace):
        out.append(
            f'metadata.annotations["{SESSION_LIFESPAN_ANNOTATION}"]: ignored, WorkspaceSettings '
            f'"{WORKSPACE_SETTINGS_NAME}" locks the lifespan of every studio in "{namespace}"'
        )
    return out


def _validate_kind(kind: str) -> Any:
    async def validate(
        *,
        userinfo: Mapping[str, Any],
        name: str | None,
        namespace: str | None,
        operation: str | None = None,
        old: Any = None,
        new: Any = None,
        warnings: list[str] | None = None,
        **_: Any,
    ) -> None:
        if _is_operator(userinfo) or new is None:
            return
        old_body, new_body, ns = _plain(old), dict(new), namespace or ""
        errors = [*label_errors(kind, old_body, new_body), *spec_errors(kind, new_body)]
        if kind == "studios":
            errors.append(_studio_problem(operation, old_body, new_body, userinfo) or "")
        elif kind == "workspacesettings" and operation == "CREATE":
            errors.append(workspace_settings_name_error(name or _meta(new_body).get("name")) or "")
        _deny([e for e in errors if e])
        if kind == "studios" and operation == "UPDATE" and old_body is not None:
            await _check_studio_update(old_body, new_body, userinfo, ns, name)
        _deny(await _check_refs(kind, old_body, new_body, userinfo, ns), code=403)
        if kind == "computeenvironments":
            _deny(await _check_power_fields(old_body, new_body, userinfo, ns), code=403)
        elif kind == "studios":
            await _check_studio_placement(old_body, new_body, userinfo, ns, warnings)

    validate.__name__ = validate.__qualname__ = f"validate_{kind}"
    return validate


validate_studio = _validate_kind("studios")

_registered: set[int] = set()


def register_handlers(registry: kopf.OperatorRegistry | None = None) -> None:
    """Register the webhooks (idempotent). Only when a server is configured: kopf refuses to start
    with admission handlers and no server."""
    reg = registry if registry is not None else kopf.get_default_registry()
    if id(reg) in _registered:
        return
    _registered.add(id(reg))
    ops: list[Any] = ["CREATE", "UPDATE"]
    for hid, plural, mutating in WEBHOOKS:
        if mutating:
            kopf.on.mutate(GROUP, VERSION, plural, id=hid, operations=ops, registry=reg)(mutate_studio)
        else:
            fn = validate_studio if plural == "studios" else _validate_kind(plural)
            kopf.on.validate(GROUP, VERSION, plural, id=hid, operations=ops, registry=reg)(fn)


# ---------------------------------------------------------------- serving

MODES = ("local", "cluster", "none")
CLUSTER_CERT_DIR = Path("/etc/studio-operator/tls")


class WebhookServer(kopf.WebhookServer):
    """kopf's server, reading request bodies up to WEBHOOK_MAX_BODY (aiohttp's default is 1 MiB,
    less than an admission review of a large object: every update of it would fail with 413)."""

    @staticmethod
    async def _serve(fn: Any, request: Any) -> Any:
        return await kopf.WebhookServer._serve(fn, request.clone(client_max_size=WEBHOOK_MAX_BODY))


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    ca: Path


def build_certificates(hosts: list[str], days: int = 365) -> tuple[bytes, bytes, bytes]:
    """(serving cert, its key, CA cert) as PEM: a throwaway CA that signs one serving certificate
    (local mode; in a cluster the operator keeps them in a Secret, webhook_certs.py).

    Made with `cryptography` because kopf's own self-signing (certbuilder + oscrypto) fails on
    OpenSSL 3 machines.
    """
    now = dt.datetime.now(dt.UTC)
    ca_crt, ca_key = webhook_certs.new_ca(now, days)
    crt, key = webhook_certs.new_leaf(ca_crt, ca_key, hosts, now, days)
    return crt, key, ca_crt


def _usable(files: CertFiles, hosts: list[str], margin: dt.timedelta = dt.timedelta(days=7)) -> bool:
    """Reuse a previous run's certificate while it is valid for these hosts (stable caBundle)."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        if not (files.key.exists() and files.ca.exists()):
            return False
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    have |= set(sans.get_values_for_type(x509.DNSName))
    wanted = {str(ipaddress.ip_address(h)) if _is_ip(h) else h for h in hosts}
    return wanted <= have and cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > margin


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def ensure_local_certificates(cert_dir: Path, host: str) -> CertFiles:
    """Make (or reuse) the local CA and serving certificate; a lock keeps two operators starting
    at once from mixing one's key with the other's certificate."""
    files = CertFiles(cert_dir / "tls.crt", cert_dir / "tls.key", cert_dir / "ca.crt")
    hosts = [host, "localhost", "127.0.0.1"]
    cert_dir.mkdir(parents=True, exist_ok=True)
    with open(cert_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(files, hosts):
            return files
        cert, key, ca = build_certificates(hosts)
        fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        files.cert.write_bytes(cert)
        files.ca.write_bytes(ca)
    return files


def configure_admission(
    settings: kopf.OperatorSettings,
    mode: str,
    host: str,
    port: int,
    cert_dir: Path,
    *,
    managed: str | None = None,
    registry: kopf.OperatorRegistry | None = None,
) -> kopf.WebhookServer | None:
    """Serve the webhooks (call from an on.startup handler, or before kopf starts).

    - `local`: HTTPS on `host` (loopback) with a CA and certificate made here in `cert_dir`;
      kopf registers the Validating/MutatingWebhookConfigurations named `studios.dev` (needs the
      `studio-operator-webhooks` ClusterRole) and removes them on a clean exit.
    - `cluster`: listen on 0.0.0.0; `host` is the Service DNS name in the certificate; the files
      tls.crt, tls.key and (optional) ca.crt come from a mounted Secret in `cert_dir`. kopf's server
      re-reads them every 10 s and restarts its listener when they change, so a rotated Secret is
      picked up without a restart. The chart ships the webhook configurations (`managed` None).
      With --webhook-cert-secret the operator itself writes those files (webhook_certs.py).
    - `none`: no webhooks (created-by is then never stamped, so private studios grant nobody).

    `port` 0 picks a free port (local mode only makes sense then, since kopf registers the URL).
    """
    if mode not in MODES:
        raise ValueError(f"webhook mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        settings.admission.server = None
        settings.admission.managed = None
        return None
    register_handlers(registry)
    if mode == "local":
        files = ensure_local_certificates(cert_dir, host)
        server = WebhookServer(
            addr=host,
            host=host,
            port=port or None,
            certfile=str(files.cert),
            pkeyfile=str(files.key),
            cafile=str(files.ca),
        )
        settings.admission.managed = managed or rbac.MANAGED_WEBHOOK_CONFIG
    else:
        cafile = cert_dir / "ca.crt"
        server = WebhookServer(
            addr="0.0.0.0",
            host=host,
            port=port or 9443,
            certfile=str(cert_dir / "tls.crt"),
            pkeyfile=str(cert_dir / "tls.key"),
            cafile=str(cafile) if cafile.exists() else None,
            # a renewed certificate (mounted Secret, or --webhook-cert-secret) is served within this
            file_check_interval=10.0,
        )
        settings.admission.managed = managed
    settings.admission.server = server
    return server
