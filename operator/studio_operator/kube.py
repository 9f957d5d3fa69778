"""The one place that talks to the Kubernetes API server.

A thin async layer over the official client's REST transport: raw JSON in and out (no model
(de)serialisation, which dominates CPU at scale), calls run in a bounded thread pool so the event
loop never blocks, and every request has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from .api.common import API_VERSION

log = logging.getLogger(__name__)

FIELD_MANAGER = "studio-operator"
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read
# Threads for API calls: at least the operator's reconcile workers, whose calls now go out in
# parallel (a start sends the Service and the Pod together).
WORKERS = int(os.environ.get("STUDIO_API_WORKERS", "64"))

PLURALS: dict[str, str] = {
    "Pod": "pods",
    "Service": "services",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "Secret": "secrets",
    "Event": "events",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Studio": "studios",
    "ComputeEnvironment": "computeenvironments",
    "DataLink": "datalinks",
    "WorkspaceSettings": "workspacesettings",
    "SubjectAccessReview": "subjectaccessreviews",
    "SelfSubjectReview": "selfsubjectreviews",
}
CLUSTER_SCOPED = {
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "SubjectAccessReview",
    "SelfSubjectReview",
}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.body = body or {}
        super().__init__(f"{status} {reason}: {self.message}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


@dataclass
class _State:
    client: ApiClient | None = None
    pool: ThreadPoolExecutor | None = None
    requests: int = 0
    retries: int = 0


_state = _State()


def load_config(kubeconfig: str | None = None) -> Configuration:
    config = Configuration()
    try:
        if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    config.connection_pool_maxsize = WORKERS
    return config


def init(kubeconfig: str | None = None) -> None:
    config = load_config(kubeconfig)
    _state.client = ApiClient(config)
    _state.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="kube")


def client() -> ApiClient:
    if _state.client is None:
        init()
    assert _state.client is not None
    return _state.client


def stats() -> dict[str, int]:
    return {"requests": _state.requests, "retries": _state.retries}


def path_for(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace and kind not in CLUSTER_SCOPED:
        parts.append(f"namespaces/{namespace}")
    parts.append(PLURALS[kind])
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def _call(method: str, path: str, body: Any, query: list[tuple[str, str]], content_type: str) -> Any:
    api = client()
    headers = {"Accept": "application/json", "Content-Type": content_type}
    method_, url, headers_, body_, _ = api.param_serialize(
        method,
        path,
        query_params=query,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        resp = api.call_api(
            method_, url, header_params=headers_, body=body_, _request_timeout=REQUEST_TIMEOUT
        )
        data = resp.read()  # type: ignore[no-untyped-call]
        status = resp.status
    except ApiException as exc:
        data, status = exc.body, exc.status or 0
    if status >= 400:
        try:
            payload = json.loads(data) if data else {}
        except (ValueError, TypeError):
            payload = {"message": str(data)}
        raise ApiError(status, str(payload.get("reason", "")), payload)
    return json.loads(data) if data else {}


async def request(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    content_type: str = "application/json",
    retries: int = 3,
) -> Any:
    """One API call off the event loop; retries transient failures (429, 5xx, connection)."""
    if _state.pool is None:
        init()
    loop = asyncio.get_running_loop()
    q = list((query or {}).items())
    delay = 0.2
    for attempt in range(retries + 1):
        try:
            _state.requests += 1
            return await loop.run_in_executor(_state.pool, _call, method, path, body, q, content_type)
        except ApiError as exc:
            if exc.status not in (429, 500, 502, 503, 504) or attempt == retries:
                raise
        except (OSError, kubernetes.client.exceptions.OpenApiException, Exception) as exc:
            if isinstance(exc, ApiError) or attempt == retries:
                raise ApiError(0, f"connection: {type(exc).__name__}", {"message": str(exc)}) from exc
        _state.retries += 1
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def _ref(obj: dict[str, Any]) -> tuple[str, str, str | None, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]


async def get(api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = await request("GET", path_for(api_version, kind, namespace, name))
        return result
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def create(obj: dict[str, Any]) -> dict[str, Any]:
    api_version, kind, namespace, _ = _ref(obj)
    result: dict[str, Any] = await request(
        "POST", path_for(api_version, kind, namespace), obj, query={"fieldManager": FIELD_MANAGER}
    )
    return result


async def apply(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply with the operator's one field manager (fields it stops sending go away)."""
    api_version, kind, namespace, name = _ref(obj)
    result: dict[str, Any] = await request(
        "PATCH",
        path_for(api_version, kind, namespace, name),
        obj,
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        content_type="application/apply-patch+yaml",
    )
    return result


async def delete(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str,
    *,
    uid: str | None = None,
    grace_seconds: int | None = None,
) -> dict[str, Any] | None:
    """The API server's answer when a delete was issued (the object, with its deletionTimestamp
    while it terminates, or a Status), None when the object was already gone."""
    body: dict[str, Any] = {"propagationPolicy": "Background"}
    if uid:
        body["preconditions"] = {"uid": uid}
    if grace_seconds is not None:
        body["gracePeriodSeconds"] = grace_seconds
    try:
        result: dict[str, Any] = await request("DELETE", path_for(api_version, kind, namespace, name), body)
        return result or {"kind": "Status", "status": "Success"}
    except ApiError as exc:
        if exc.status in (404, 409):
            return None
        raise


async def merge_patch(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str,
    patch: dict[str, Any],
    *,
    subresource: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = await request(
        "PATCH",
        path_for(api_version, kind, namespace, name, subresource),
        patch,
        content_type="application/merge-patch+json",
    )
    return result


async def json_patch(
    api_version: str, kind: str, namespace: str | None, name: str, ops: list[dict[str, Any]]
) -> dict[str, Any]:
    result: dict[str, Any] = await request(
        "PATCH", path_for(api_version, kind, namespace, name), ops, content_type="application/json-patch+json"
    )
    return result


async def patch_status(kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return await merge_patch(API_VERSION, kind, namespace, name, {"status": status}, subresource="status")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def post_event(involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on an object; failures are logged, never raised (events are best effort)."""
    meta = involved["metadata"]
    now = _now()
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace") or "default"},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", API_VERSION),
            "kind": involved.get("kind", "Studio"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": now[:19] + "Z",
        "lastTimestamp": now[:19] + "Z",
        "count": 1,
        "source": {"component": "studio-operator"},
        "reportingComponent": "studios.dev/studio-operator",
        "reportingInstance": os.environ.get("HOSTNAME", "studio-operator"),
    }
    try:
        await request("POST", path_for("v1", "Event", event["metadata"]["namespace"]), event, retries=1)
    except ApiError as exc:
        log.warning("could not post event %s on %s/%s: %s", reason, meta.get("namespace"), meta["name"], exc)
