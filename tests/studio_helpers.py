"""Helpers for integration tests about studios: create, read, patch and wait, as a user would.

Import as ``import studio_helpers as sh`` (tests/ is on sys.path, see tests/conftest.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube_helpers import Cluster, wait_for

GROUP = "studios.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
STUDIO_LABEL = "studios.dev/studio"
MANAGED_BY = "app.kubernetes.io/managed-by"
RESTART = "studios.dev/restart"
SESSION_HOURS = "studios.dev/session-lifespan-hours"
IMAGE = "registry.invalid/acme/jupyter:4"
MERGE = "application/merge-patch+json"

PLURALS = {
    "Studio": "studios",
    "ComputeEnvironment": "computeenvironments",
    "DataLink": "datalinks",
    "WorkspaceSettings": "workspacesettings",
}

# kwok's fake node: tolerate the taints a node can carry while the control plane settles.
KWOK_TOLERATIONS = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]


# ---------------------------------------------------------------- objects


def obj(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


def create(cluster: Cluster, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[body["kind"]], copy.deepcopy(body)
    )
    return created


def create_environment(
    cluster: Cluster, namespace: str, name: str = "env", spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec = copy.deepcopy(spec or {})
    spec.setdefault("tolerations", KWOK_TOLERATIONS)
    return create(cluster, namespace, obj("ComputeEnvironment", name, spec))


def studio_body(
    name: str,
    environment: str = "env",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    full = {"computeEnvironment": environment, "template": {"image": IMAGE}, **spec}
    meta: dict[str, Any] = {"annotations": annotations} if annotations else {}
    return obj("Studio", name, full, **meta)


def create_studio(
    cluster: Cluster,
    namespace: str,
    name: str = "st",
    environment: str = "env",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return create(cluster, namespace, studio_body(name, environment, annotations, **spec))


def get(cluster: Cluster, namespace: str, name: str, kind: str = "Studio") -> dict[str, Any]:
    body: dict[str, Any] = cluster.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name
    )
    return body


def patch(
    cluster: Cluster, namespace: str, name: str, body: dict[str, Any], kind: str = "Studio"
) -> dict[str, Any]:
    result: dict[str, Any] = cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name, body, _content_type=MERGE
    )
    return result


def patch_status(cluster: Cluster, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """Through the status subresource, as an administrator would."""
    result: dict[str, Any] = cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "studios", name, {"status": status}, _content_type=MERGE
    )
    return result


def set_state(cluster: Cluster, namespace: str, name: str, state: str) -> dict[str, Any]:
    return patch(cluster, namespace, name, {"spec": {"state": state}})


def annotate(cluster: Cluster, namespace: str, name: str, **values: str | None) -> dict[str, Any]:
    """``annotate(c, ns, n, **{RESTART: "1"})``; None removes."""
    return patch(cluster, namespace, name, {"metadata": {"annotations": values}})


def delete(cluster: Cluster, namespace: str, name: str, kind: str = "Studio") -> None:
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)


# ---------------------------------------------------------------- reading status


def status(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("status") or {}


def condition(body: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in status(body).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def cond_true(body: dict[str, Any], type_: str) -> bool:
    cond = condition(body, type_)
    return cond is not None and cond.get("status") == "True"


def wait_studio(
    cluster: Cluster,
    namespace: str,
    name: str,
    predicate: Any,
    what: str,
    timeout: float = 30,
) -> dict[str, Any]:
    """Wait until predicate(studio) holds; the message shows the last status."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = get(cluster, namespace, name)
        return last if predicate(last) else None

    result: dict[str, Any] = wait_for(
        check, timeout=timeout, message=lambda: f"studio {namespace}/{name}: {what}; status {status(last)}"
    )
    return result


def wait_phase(
    cluster: Cluster, namespace: str, name: str, phase: str, timeout: float = 30, **fields: Any
) -> dict[str, Any]:
    """Wait for status.phase (and e.g. stopReason=...) on a status that saw the latest generation."""

    def ok(body: dict[str, Any]) -> bool:
        st = status(body)
        return (
            st.get("phase") == phase
            and st.get("observedGeneration") == body["metadata"]["generation"]
            and all(st.get(k) == v for k, v in fields.items())
        )

    extra = "".join(f", {k}={v}" for k, v in fields.items())
    return wait_studio(cluster, namespace, name, ok, f"phase {phase}{extra}", timeout)


# ---------------------------------------------------------------- children and events


def pods(cluster: Cluster, namespace: str, studio: str) -> list[client.V1Pod]:
    items: list[client.V1Pod] = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{STUDIO_LABEL}={studio}"
    ).items
    return items


def live_pods(cluster: Cluster, namespace: str, studio: str) -> list[client.V1Pod]:
    return [p for p in pods(cluster, namespace, studio) if p.metadata.deletion_timestamp is None]


def wait_no_pods(cluster: Cluster, namespace: str, studio: str, timeout: float = 30) -> None:
    wait_for(
        lambda: not pods(cluster, namespace, studio),
        timeout=timeout,
        message=f"no pods of studio {studio}",
    )


def pod_json(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A pod as plain JSON (camelCase, as kubectl shows it)."""
    result: dict[str, Any] = cluster.api_client.sanitize_for_serialization(
        cluster.core.read_namespaced_pod(name, namespace)
    )
    return result


def stalled_on(reason: str, needle: str = "") -> Callable[[dict[str, Any]], bool]:
    """A studio predicate: Stalled=True with this reason, its message containing `needle`."""

    def check(body: dict[str, Any]) -> bool:
        cond = condition(body, "Stalled") or {}
        return (
            cond.get("status") == "True"
            and cond.get("reason") == reason
            and needle in cond.get("message", "")
        )

    return check


def events(
    cluster: Cluster, namespace: str, name: str, reason: str | None = None
) -> list[client.CoreV1Event]:
    items = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Studio"
    ).items
    return [e for e in items if reason is None or e.reason == reason]


def wait_event(
    cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 30
) -> client.CoreV1Event:
    found: list[client.CoreV1Event] = wait_for(
        lambda: events(cluster, namespace, name, reason),
        timeout=timeout,
        message=lambda: (
            f"Event {reason} on studio {name}; have {[e.reason for e in events(cluster, namespace, name)]}"
        ),
    )
    return found[0]


def gone(read: Any) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


# ---------------------------------------------------------------- time


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ago(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(**delta))
