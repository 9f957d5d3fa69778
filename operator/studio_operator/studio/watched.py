"""Every kind the studio controller watches, declared once (see controller/kinds.py): what is
watched and listed, with which label selector, what the store keeps, and which studios a change
of each kind queues."""

from __future__ import annotations

from collections.abc import Callable

from ..api.common import (
    API_VERSION,
    DATA_LINK_LABEL,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    NAMESPACE_LABEL,
    STUDIO_LABEL,
)
from ..controller import Body, Key, Store, WatchedKind
from ..rbac import RBAC_API_VERSION, grants_connect

MANAGED = {MANAGED_BY_KEY: MANAGED_BY_VALUE}


def _managed(body: Body) -> bool:
    return ((body.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def _studios_in(store: Store, namespace: str, when: Callable[[Body], bool] | None = None) -> list[Key]:
    return [k for k, body in store.items("studios", namespace) if when is None or when(body)]


def _owner(body: Body) -> list[Key]:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    studio = labels.get(STUDIO_LABEL)
    ns = meta.get("namespace") or labels.get(NAMESPACE_LABEL)
    return [(ns, studio)] if studio and ns else []


def _running(body: Body) -> bool:
    return ((body.get("spec") or {}).get("state") or "Running") == "Running"


def _where(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


# ---------------------------------------------------------------- which studios a change concerns


def _studio(_store: Store, body: Body, _deleted: bool) -> list[Key]:
    return [_where(body)]


def _pod(_store: Store, body: Body, _deleted: bool) -> list[Key]:
    return _owner(body)


def _session_object(_store: Store, body: Body, deleted: bool) -> list[Key]:
    """Services and Roles change when the operator writes them; only a deletion by someone else
    needs a new look."""
    return _owner(body) if deleted else []


def _rolebinding(store: Store, body: Body, deleted: bool) -> list[Key]:
    if _managed(body):
        return _owner(body) if deleted else []
    if grants_connect(body):  # who may connect changed
        return _studios_in(store, _where(body)[0], _running)
    return []


def _clusterrolebinding(store: Store, body: Body, _deleted: bool) -> list[Key]:
    if grants_connect(body):
        return [k for k, b in store.items("studios") if _running(b)]
    return []


def _environment(store: Store, body: Body, _deleted: bool) -> list[Key]:
    ns, name = _where(body)
    return _studios_in(store, ns, lambda s: (s.get("spec") or {}).get("computeEnvironment") == name)


def _datalink(store: Store, body: Body, _deleted: bool) -> list[Key]:
    ns, name = _where(body)
    return _studios_in(
        store, ns, lambda s: any(m.get("dataLink") == name for m in (s.get("spec") or {}).get("mounts") or [])
    )


def _settings(store: Store, body: Body, _deleted: bool) -> list[Key]:
    return _studios_in(store, _where(body)[0])


# ---------------------------------------------------------------- what the store keeps

_POD_SPEC_KEPT = ("nodeName",)  # the controller reads a pod's metadata and status (resources/podstate.py)


def _slim_pod(body: Body) -> Body:
    if "spec" not in body:
        return body
    spec = body.get("spec") or {}
    return {**body, "spec": {k: spec[k] for k in _POD_SPEC_KEPT if k in spec}}


def _slim_session_object(body: Body) -> Body:
    """The operator's own Services, Roles and RoleBindings: it reads whether they exist and their
    applied-hash annotation, never their spec, rules or subjects (it rebuilds them)."""
    if not _managed(body):
        return body
    out: Body = {k: body[k] for k in ("apiVersion", "kind", "roleRef") if k in body}
    out["metadata"] = body["metadata"]
    return out


def _phase(body: Body) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return str(phase) if phase else None


# ---------------------------------------------------------------- what a pass reads together
# (one or more objects of these kinds per studio: a pass reads its group, not every object)

GRANTS = "grants-connect"  # the bindings that let their subjects connect (few per namespace)


def _grants(body: Body) -> str | None:
    return GRANTS if grants_connect(body) else None


def volumes_of(namespace: str, studio: str) -> str:
    """The group of a studio's data PersistentVolumes (cluster-scoped: labelled with both)."""
    return f"{namespace}/{studio}"


def _volume_group(body: Body) -> str | None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    ns, studio = labels.get(NAMESPACE_LABEL), labels.get(STUDIO_LABEL)
    return volumes_of(ns, studio) if ns and studio else None


def _data_claim_group(body: Body) -> str | None:
    """A studio's data claims (its workspace claim is read by name)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    studio = labels.get(STUDIO_LABEL)
    return studio if studio and DATA_LINK_LABEL in labels else None


# The kinds with one or more objects per studio or session (thousands at scale, read by key or by
# group) are kept as compact JSON; the others (few: environments, links, settings, cluster
# bindings) stay parsed.
WATCHED = [
    WatchedKind("studio", "studios", API_VERSION, "Studio", affected=_studio, compact=True, tally=_phase),
    WatchedKind(
        "environment", "computeenvironments", API_VERSION, "ComputeEnvironment", affected=_environment
    ),
    WatchedKind("datalink", "datalinks", API_VERSION, "DataLink", affected=_datalink),
    WatchedKind("settings", "workspacesettings", API_VERSION, "WorkspaceSettings", affected=_settings),
    WatchedKind("pod", "pods", "v1", "Pod", MANAGED, _pod, compact=True, slim=_slim_pod),
    WatchedKind("service", "services", "v1", "Service", MANAGED, _session_object, True, _slim_session_object),
    WatchedKind(
        "claim",
        "persistentvolumeclaims",
        "v1",
        "PersistentVolumeClaim",
        MANAGED,
        compact=True,
        group_of=_data_claim_group,
    ),
    WatchedKind(
        "volume", "persistentvolumes", "v1", "PersistentVolume", MANAGED, compact=True, group_of=_volume_group
    ),
    WatchedKind(
        "role", "roles", RBAC_API_VERSION, "Role", MANAGED, _session_object, True, _slim_session_object
    ),
    WatchedKind(
        "rolebinding",
        "rolebindings",
        RBAC_API_VERSION,
        "RoleBinding",
        None,
        _rolebinding,
        compact=True,
        slim=_slim_session_object,
        group_of=_grants,  # a pass reads who may connect, not each studio's own binding
    ),
    WatchedKind(
        "clusterrolebinding",
        "clusterrolebindings",
        RBAC_API_VERSION,
        "ClusterRoleBinding",
        None,
        _clusterrolebinding,
        group_of=_grants,
    ),
]
PRIMARY = "studios"  # the kind the workers reconcile
