"""High availability: whether this replica may act, following kopf's own peering rule.

kopf pauses its watchers on a replica that is not the live peer with the highest priority, but our
reconcile workers and deadline scheduler run beside kopf, so they need the same answer. The gate
reads the same ClusterKopfPeering object kopf writes heartbeats to and applies kopf's rule: act only
when no other live peer has a higher or equal priority (kopf pauses everyone on a tie).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import kube

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0


def may_act(status: dict[str, Any], identity: str, priority: int, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    for peer_id, info in (status or {}).items():
        if peer_id == identity or not isinstance(info, dict):
            continue
        try:
            lastseen = datetime.fromisoformat(str(info.get("lastseen")).replace("Z", "+00:00"))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            peer_priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=UTC)
        if lastseen + lifetime > now and peer_priority >= priority:
            return False
    return True


class Gate:
    """An asyncio.Event that is set while this replica may act."""

    def __init__(self) -> None:
        self.active = asyncio.Event()

    def open(self) -> None:
        self.active.set()

    async def watch(
        self, name: str, identity: str, priority: int, on_activate: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            try:
                body = await kube.request("GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}", retries=0)
                allowed = may_act(body.get("status") or {}, identity, priority)
            except kube.ApiError as exc:
                # No peering object yet (kopf creates its entry on start-up): wait for it.
                log.debug("peering %s not readable: %s", name, exc)
                allowed = False
            if allowed and not self.active.is_set():
                log.info("peering %s: this replica (%s, priority %d) is now active", name, identity, priority)
                await on_activate()
                self.active.set()
            elif not allowed and self.active.is_set():
                log.info("peering %s: another replica is active; pausing", name)
                self.active.clear()
            await asyncio.sleep(POLL_SECONDS)
