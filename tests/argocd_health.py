"""Run the shipped Argo CD health check (operator/studio_operator/data/argocd-health.lua) the way
Argo CD does: the object as the global `obj`, the script's return value as {status, message}."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

import lupa


def script() -> str:
    return (resources.files("studio_operator") / "data" / "argocd-health.lua").read_text()


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: Mapping[str, Any]) -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(script())
    return {"status": str(result["status"]), "message": str(result["message"] or "")}
