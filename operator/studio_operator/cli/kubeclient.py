"""The API connection of the plugin: kubeconfig (`--kubeconfig`, $KUBECONFIG, ~/.kube/config),
context (`--context`, else current) and namespace (`-n`, else the context's, else `default`)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from ..api.common import GROUP, VERSION
from .errors import ApiFailure, NotFound

MERGE_PATCH = "application/merge-patch+json"
# RFC 7234 warn-value as the API server sends it: 299 - "text" (several joined by ", ")
WARNING = re.compile(r'299 [^ ]+ "((?:[^"\\]|\\.)*)"')


def warnings_of(headers: Mapping[str, str] | None) -> list[str]:
    """The API server's warnings (admission webhooks, deprecations) from a response's headers."""
    raw = next((v for k, v in (headers or {}).items() if k.lower() == "warning"), "")
    return [m.replace('\\"', '"').replace("\\\\", "\\") for m in WARNING.findall(raw)]


def print_warnings(headers: Mapping[str, str] | None) -> None:
    for text in warnings_of(headers):
        print(f"Warning: {text}", file=sys.stderr)


NO_CRD = f"the studios.{GROUP} API (are the CRDs installed?)"


@dataclass
class Target:
    api: client.ApiClient
    namespace: str
    kubeconfig: str | None
    context: str | None


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = current
    if context:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            raise ConfigException(f"context {context!r} not found in the kubeconfig")
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        ns = namespace or context_namespace(kubeconfig, context)
    except (ConfigException, OSError) as exc:
        raise ApiFailure(f"cannot load the kubeconfig: {exc}") from exc
    api.configuration.retries = 1
    return Target(api=api, namespace=ns, kubeconfig=kubeconfig, context=context)


def api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "")


def call(fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any) -> Any:
    """Run one API call; map its failures to the plugin's errors (404 -> exit 1, others -> 2)."""
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404 and what:
            raise NotFound(f"{what} not found") from exc
        raise ApiFailure(f"API error {exc.status}: {api_message(exc)}") from exc
    except (HTTPError, OSError) as exc:
        raise ApiFailure(f"cannot reach the API server: {exc}") from exc


class Studios:
    """Studios and the objects `describe` reads, as plain dicts."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.custom = client.CustomObjectsApi(target.api)

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = call(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "studios",
            name,
            what=f'studio "{name}" in namespace "{namespace}"',
        )
        return result

    def get_optional(self, plural: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, what=plural
            )
            return found
        except NotFound:
            return None

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            result = call(self.custom.list_cluster_custom_object, GROUP, VERSION, "studios", what=NO_CRD)
        else:
            result = call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "studios", what=NO_CRD
            )
        return list(result.get("items") or [])

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"]["namespace"]
        try:
            response = self.custom.create_namespaced_custom_object_with_http_info(
                GROUP, VERSION, namespace, "studios", body
            )
            data, _status, headers = response  # the legacy (data, status, headers) form
            print_warnings(headers)
            created = cast(dict[str, Any], data)
        except ApiException as exc:
            if exc.status == 409:
                raise ApiFailure(
                    f'studio "{body["metadata"]["name"]}" already exists in namespace "{namespace}"'
                ) from exc
            raise ApiFailure(f"API error {exc.status}: {api_message(exc)}") from exc
        except (HTTPError, OSError) as exc:
            raise ApiFailure(f"cannot reach the API server: {exc}") from exc
        return created

    def patch(self, name: str, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
        response = call(
            self.custom.patch_namespaced_custom_object_with_http_info,
            GROUP,
            VERSION,
            namespace,
            "studios",
            name,
            patch,
            _content_type=MERGE_PATCH,
            what=f'studio "{name}" in namespace "{namespace}"',
        )
        data, _status, headers = response
        print_warnings(headers)
        return cast(dict[str, Any], data)


@contextmanager
def session(kubeconfig: str | None, context: str | None, namespace: str | None) -> Iterator[Target]:
    target = connect(kubeconfig, context, namespace)
    try:
        yield target
    finally:
        target.api.close()  # type: ignore[no-untyped-call]
