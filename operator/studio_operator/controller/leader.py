"""High availability with a Kubernetes Lease (coordination.k8s.io/v1), as controller-runtime does.

Every replica watches and fills its store (kopf runs standalone: its handlers only read), and
serves the webhooks; only the holder of the Lease runs the reconcile workers, the deadline
scheduler and the data link checks. The holder renews every RENEW_SECONDS and steps down when it
could not renew for RENEW_DEADLINE_SECONDS; a standby takes the Lease once the record it sees has
not changed for the lease duration, measured on its own clock (no clock-skew assumptions, the
client-go rule). A replica that stops cleanly hands the Lease over at once.

Defaults: lease 8 s, renew every 2 s, step down after 6 s without a renewal, standbys look every
second: a takeover after `kill -9` comes 8-10 s after the last renewal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import kube

log = logging.getLogger(__name__)

LEASE_SECONDS = 8
RENEW_SECONDS = 2.0
RENEW_DEADLINE_SECONDS = 6.0
STANDBY_POLL_SECONDS = 1.0


def micro_time(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    name: str,
    namespace: str,
    identity: str,
    duration: int,
    previous: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Lease this replica writes to acquire (or renew, when it holds `previous` already)."""
    stamp = micro_time(now)
    spec_before = (previous or {}).get("spec") or {}
    renewing = spec_before.get("holderIdentity") == identity
    transitions = int(spec_before.get("leaseTransitions") or 0)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    version = ((previous or {}).get("metadata") or {}).get("resourceVersion")
    if version:
        meta["resourceVersion"] = version  # optimistic concurrency: one winner per record
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration,
            "acquireTime": spec_before.get("acquireTime") if renewing else stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions if renewing or previous is None else transitions + 1,
        },
    }


def released_body(previous: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What a holder stopping cleanly writes: no holder, so a standby acquires at its next look."""
    body = {k: v for k, v in previous.items() if k in ("apiVersion", "kind", "metadata")}
    body["spec"] = {
        **(previous.get("spec") or {}),
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "renewTime": micro_time(now),
    }
    return body


@dataclass
class Observation:
    """The last Lease record seen and when (monotonic, local) it last changed."""

    record: tuple[Any, ...] | None = None
    since: float = 0.0

    def see(self, spec: Mapping[str, Any], now: float) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self.record:
            self.record, self.since = record, now

    def expired(self, spec: Mapping[str, Any], now: float) -> bool:
        if not spec.get("holderIdentity"):
            return True
        return now - self.since > float(spec.get("leaseDurationSeconds") or LEASE_SECONDS)


class LeaderElector:
    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        *,
        duration: int = LEASE_SECONDS,
        renew: float = RENEW_SECONDS,
        renew_deadline: float = RENEW_DEADLINE_SECONDS,
        poll: float = STANDBY_POLL_SECONDS,
    ) -> None:
        self.name, self.namespace, self.identity = name, namespace, identity
        self.duration, self.renew, self.renew_deadline, self.poll = duration, renew, renew_deadline, poll
        self.active = asyncio.Event()
        self._seen = Observation()
        self._renewed = 0.0
        self._lease: dict[str, Any] | None = None

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    async def _get(self) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await kube.request("GET", f"{self._path}/{self.name}", retries=0)
            return lease
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def _write(self, previous: dict[str, Any] | None) -> bool:
        body = lease_body(self.name, self.namespace, self.identity, self.duration, previous)
        try:
            if previous is None:
                self._lease = await kube.request("POST", self._path, body, retries=0)
            else:
                self._lease = await kube.request("PUT", f"{self._path}/{self.name}", body, retries=0)
        except kube.ApiError as exc:
            if exc.status in (409, 422):
                self._lease = None  # another replica wrote first: it holds the Lease now
                return False
            raise
        self._renewed = time.monotonic()
        return True

    async def _step(self) -> None:
        lease = await self._get()
        now = time.monotonic()
        if lease is None:
            await self._write(None)
            return
        spec = lease.get("spec") or {}
        self._seen.see(spec, now)
        if spec.get("holderIdentity") == self.identity:
            await self._write(lease)  # renew
        elif self._seen.expired(spec, now):
            if await self._write(lease):
                log.info(
                    "lease %s/%s acquired from %r", self.namespace, self.name, spec.get("holderIdentity")
                )
        elif self.active.is_set():
            log.info(
                "lease %s/%s: held by %s; pausing", self.namespace, self.name, spec.get("holderIdentity")
            )
            self.active.clear()

    def _holds(self) -> bool:
        return (
            self._lease is not None
            and (self._lease.get("spec") or {}).get("holderIdentity") == self.identity
            and time.monotonic() - self._renewed <= self.renew_deadline
        )

    async def _activate(self, on_activate: Callable[[], Awaitable[None]]) -> None:
        await on_activate()  # may take a while (LISTs): renewals go on meanwhile
        if self._holds():
            log.info("lease %s/%s: this replica (%s) is now active", self.namespace, self.name, self.identity)
            self.active.set()

    async def run(self, on_activate: Callable[[], Awaitable[None]]) -> None:
        activation: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the API server away: keep trying; the deadline decides
                    log.debug("lease %s/%s: %s", self.namespace, self.name, exc)
                if activation is not None and activation.done():
                    if not activation.cancelled() and activation.exception() is not None:
                        log.error(
                            "lease %s/%s: activation failed: %r",
                            self.namespace,
                            self.name,
                            activation.exception(),
                        )
                    activation = None
                if self._holds():
                    if not self.active.is_set() and activation is None:
                        log.info("lease %s/%s held by this replica; priming", self.namespace, self.name)
                        activation = asyncio.create_task(self._activate(on_activate))
                else:
                    if activation is not None:
                        activation.cancel()
                        activation = None
                    if self.active.is_set():
                        log.warning(
                            "lease %s/%s lost or not renewed in time; pausing", self.namespace, self.name
                        )
                        self.active.clear()
                await asyncio.sleep(self.renew if self._holds() else self.poll)
        finally:
            if activation is not None:
                activation.cancel()

    async def release(self) -> None:
        """On a clean stop: give the Lease up so a standby takes over at its next look."""
        if not self.active.is_set() or self._lease is None:
            return
        self.active.clear()
        try:
            await kube.request("PUT", f"{self._path}/{self.name}", released_body(self._lease), retries=0)
            log.info("lease %s/%s released", self.namespace, self.name)
        except kube.ApiError as exc:
            log.info("lease %s/%s not released (%s); it expires by itself", self.namespace, self.name, exc)
