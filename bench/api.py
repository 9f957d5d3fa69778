"""The harness's API client: studio_operator.kube, with the harness's own requests counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from harness import BenchError

from studio_operator import kube

# ---------------------------------------------------------------------------------------------
# the API: the project's async layer (studio_operator.kube) for every timed request


class Api:
    """Thin wrapper over studio_operator.kube that counts the harness's own requests by verb."""

    def __init__(self, kubeconfig: Path, api_workers: int) -> None:
        kube.WORKERS = api_workers  # the operator reads STUDIO_API_WORKERS the same way
        kube.init(str(kubeconfig))
        self.kubeconfig = kubeconfig
        self.sent: Counter[str] = Counter()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        retries: int = 3,
    ) -> Any:
        self.sent[method] += 1
        return await kube.request(method, path, body, query=query, content_type=content_type, retries=retries)

    async def create(self, path: str, body: dict[str, Any], *, exist_ok: bool = False) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.call("POST", path, body)
            return result
        except kube.ApiError as exc:
            if exist_ok and exc.status == 409:
                return {}
            raise

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.call("GET", path)
            return result
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH", path, patch, content_type="application/merge-patch+json"
        )
        return result

    async def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH",
            path,
            body,
            query={"fieldManager": "studio-bench", "force": "true"},
            content_type="application/apply-patch+yaml",
        )
        return result

    async def delete(self, path: str, *, query: dict[str, str] | None = None) -> bool:
        try:
            await self.call("DELETE", path, {"propagationPolicy": "Background"}, query=query, retries=1)
            return True
        except kube.ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise

    async def raw_get(self, path: str, timeout: float = 30.0) -> str:
        self.sent["GET"] += 1
        try:
            text: str = await asyncio.wait_for(kube.request("GET", path, text=True, retries=1), timeout)
        except kube.ApiError as exc:
            raise BenchError(f"GET {path}: {exc.status}") from exc
        return text
