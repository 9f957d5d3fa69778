"""Content digests of what the operator builds (pure)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..api.common import APPLIED_HASH


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def with_applied_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """Stamp the desired content's digest: an unchanged object is never re-applied (saves writes),
    and for objects whose specs are immutable (PersistentVolumes, claims) a changed digest tells
    the controller to replace them between sessions rather than patch them."""
    digest = content_hash({k: v for k, v in obj.items() if k != "status"})
    obj["metadata"].setdefault("annotations", {})[APPLIED_HASH] = digest
    return obj
