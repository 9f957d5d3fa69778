"""Deterministic object names within Kubernetes length limits (hash suffix when too long)."""

from __future__ import annotations

import hashlib
import re


def digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def bounded(base: str, limit: int, *, salt: str = "") -> str:
    """`base` if it fits, else a truncated prefix plus a hash of the full name (stable)."""
    if len(base) <= limit:
        return base
    suffix = digest(base, salt, length=8)
    return f"{base[: limit - 9].rstrip('-.')}-{suffix}"


def dns_label(base: str, limit: int = 63) -> str:
    """A DNS-1035 label (Service names): lowercase, no dots, starts with a letter."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-") or "s"
    if not cleaned[0].isalpha():
        cleaned = "s-" + cleaned
    if cleaned != base:
        cleaned = f"{cleaned[: limit - 9].rstrip('-')}-{digest(base, length=8)}"
    return bounded(cleaned, limit).rstrip("-")


def pod_name(studio: str, uid: str) -> str:
    """One pod per studio at a time; the suffix ties it to this studio object (not a namesake)."""
    return bounded(f"{studio}-{digest(uid, length=5)}", 63)


def service_name(studio: str) -> str:
    return dns_label(studio)


def workspace_claim_name(studio: str) -> str:
    return bounded(f"{studio}-workspace", 253)


def data_claim_name(studio: str, link: str) -> str:
    return bounded(f"{studio}-data-{link}", 253)


def data_volume_name(namespace: str, studio: str, link: str) -> str:
    """PVs are cluster-scoped: the name must differ for every (namespace, studio, link). Joining
    them with dashes collides (ns `ws` + studio `a-nb` = ns `ws-a` + studio `nb`), so the name is
    a digest of the three parts (separated by NUL, which no name contains), readable prefix aside."""
    readable = bounded(f"studio-{studio}-{link}", 200)
    return f"{readable}-{digest(namespace, studio, link, length=16)}"


def connect_role_name(studio: str) -> str:
    return bounded(f"studio-connect-{studio}", 253)
