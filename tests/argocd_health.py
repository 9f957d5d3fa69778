"""Run the shipped Argo CD health checks (operator/studio_operator/data/argocd-health*.lua) with
lupa, for fast unit tests: the object as the global `obj`, the script's return value as
{status, message}. The interpreter Argo CD embeds (gopher-lua) runs them on live objects in
tests/integration/test_gitops_clients.py."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import lupa

SCRIPTS = {"Studio": "argocd-health.lua", "DataLink": "argocd-health-datalink.lua"}


def script_path(kind: str = "Studio") -> Path:
    return Path(str(resources.files("studio_operator") / "data" / SCRIPTS[kind]))


def script(kind: str = "Studio") -> str:
    return script_path(kind).read_text()


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: Mapping[str, Any], kind: str = "Studio") -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(script(kind))
    return {"status": str(result["status"]), "message": str(result["message"] or "")}
