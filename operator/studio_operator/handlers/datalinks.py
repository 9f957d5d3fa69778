"""DataLink handlers: reach the bucket, write `status` (bucket, prefix, region, Ready), re-check.

One watch handler (`@kopf.on.event`) keeps one small asyncio task per link. The task checks at
once when the link is new or its generation changed (or the `studios.dev/recheck` annotation got a
new value), then again after ~300 s while Ready and ~30 s while not, with +-20 % jitter so many
links never check in step. Event handlers need no finalizer and write no kopf annotations: a
DataLink can always be deleted, operator running or not.

Secrets are read with `get` only (no list/watch): a fixed Secret is noticed by the next periodic
check (<= ~36 s while the link is not Ready), or at once after `kubectl annotate dl <name>
studios.dev/recheck=$(date +%s) --overwrite`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from .. import kube, s3
from ..api.common import GROUP, RECHECK_ANNOTATION, VERSION
from ..api.kinds import DataLinkSpec
from ..config import OPTIONS
from ..resources.buckets import InvalidS3Uri, parse_s3_uri
from ..resources.conditions import find
from ..resources.endpoints import shared_identity_problem
from ..resources.links import READY, link_status, ready_flip, status_needs_patch

log = logging.getLogger(__name__)

READY_INTERVAL = 300.0
NOT_READY_INTERVAL = 30.0
JITTER = 0.2
ERROR_RETRY = 30.0
HEARTBEAT = timedelta(minutes=30)

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
# The key names ru.yandex.s3.csi reads: a Secret made for that driver also serves the check.
ALT_KEYS = {ACCESS_KEY: "accessKeyID", SECRET_KEY: "secretAccessKey"}


class SecretProblem(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# ------------------------------------------------------------------------------------ pure parts


def credentials_from_secret(namespace: str, name: str, data: Mapping[str, str] | None) -> s3.Credentials:
    """Credentials from a Secret's base64 `data`; SecretInvalid names the missing keys."""
    values: dict[str, str] = {}
    for key, raw in (data or {}).items():
        try:
            values[key] = base64.b64decode(raw, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue  # reported below as missing if it is one we need
    access = values.get(ACCESS_KEY) or values.get(ALT_KEYS[ACCESS_KEY])
    secret = values.get(SECRET_KEY) or values.get(ALT_KEYS[SECRET_KEY])
    missing = [k for k, v in ((ACCESS_KEY, access), (SECRET_KEY, secret)) if not v]
    if missing or access is None or secret is None:
        raise SecretProblem(
            "SecretInvalid",
            f"Secret {namespace}/{name} has no (valid) {' or '.join(missing)}: add "
            f"{ACCESS_KEY} and {SECRET_KEY} (and {SESSION_TOKEN} for temporary credentials)",
        )
    return s3.Credentials(access, secret, values.get(SESSION_TOKEN) or None)


def next_delay(ready: bool, rng: random.Random | None = None) -> float:
    base = READY_INTERVAL if ready else NOT_READY_INTERVAL
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def first_delay(body: Mapping[str, Any], rng: random.Random | None = None) -> float:
    """Check a new or changed link at once; spread re-checks of known links after a restart."""
    status = body.get("status") or {}
    cond = find(status.get("conditions"), READY)
    generation = (body.get("metadata") or {}).get("generation")
    if cond is None or status.get("observedGeneration") != generation:
        return 0.0
    return (rng or random).uniform(0.0, 30.0 if cond.get("status") == "True" else 5.0)


def trigger(body: Mapping[str, Any]) -> tuple[Any, Any]:
    """What makes a link re-check at once: a new generation or a new recheck annotation."""
    meta = body.get("metadata") or {}
    return meta.get("generation"), (meta.get("annotations") or {}).get(RECHECK_ANNOTATION)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------------- checks


async def load_credentials(namespace: str, name: str) -> s3.Credentials:
    try:
        secret = await kube.get("v1", "Secret", namespace, name)
    except kube.ApiError as exc:
        if exc.status == 403:
            raise SecretProblem(
                "SecretUnreadable",
                f"the operator may not read Secret {namespace}/{name}: grant it get on secrets",
            ) from None
        raise
    if secret is None:
        raise SecretProblem(
            "SecretNotFound",
            f"Secret {namespace}/{name} (spec.credentialsSecret) does not exist: create it with keys "
            f"{ACCESS_KEY} and {SECRET_KEY}, or remove credentialsSecret to use the operator's credentials (where an administrator allows them)",
        )
    return credentials_from_secret(namespace, name, secret.get("data"))


async def evaluate(body: Mapping[str, Any]) -> dict[str, Any]:
    """The status this link should have now (does S3 and Secret reads, no writes)."""
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    previous = body.get("status") or {}
    now = _stamp(_now())
    bucket: str | None = None
    prefix: str | None = None
    region: str | None = None

    def status(ready: bool, reason: str, message: str) -> dict[str, Any]:
        return link_status(
            generation=meta.get("generation"),
            bucket=bucket,
            prefix=prefix,
            region=region,
            ready=ready,
            reason=reason,
            message=message,
            previous=previous,
            now=now,
        )

    try:
        spec = DataLinkSpec.model_validate(body.get("spec") or {})
        bucket, prefix = parse_s3_uri(spec.uri)
    except (ValidationError, InvalidS3Uri) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return status(False, "InvalidSpec", f"spec is invalid: {detail}; fix spec.uri")
    # Keep a region learnt earlier for the same bucket when this check cannot tell.
    region = spec.region or (previous.get("region") if previous.get("bucket") == bucket else None)
    credentials: s3.Credentials | None = None
    source = "the operator's own credentials"
    policy = OPTIONS.s3_policy
    if not spec.credentials_secret:
        # The operator's identity is shared by every namespace: only what an administrator allowed.
        problem = shared_identity_problem(policy, namespace, bucket, spec.endpoint_url, source)
        if problem is not None:
            return status(False, *problem)
    else:
        source = f"Secret {namespace}/{spec.credentials_secret}"
        try:
            credentials = await load_credentials(namespace, spec.credentials_secret)
        except SecretProblem as problem:
            return status(False, problem.reason, problem.message)
    result = await s3.check_bucket(
        bucket,
        region=spec.region,
        endpoint_url=spec.endpoint_url,
        credentials=credentials,
        source=source,
        policy=policy,
    )
    if result.region:
        region = result.region
    return status(result.ok, str(result.reason), result.message)


async def check_link(body: Mapping[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """Check, write the status when it changed, post an Event when Ready flips.

    Returns (ready, the object as written or None when nothing was written).
    """
    meta = body.get("metadata") or {}
    namespace, name = meta["namespace"], meta["name"]
    previous = body.get("status") or {}
    new = await evaluate(body)
    ready = (find(new["conditions"], READY) or {}).get("status") == "True"
    if not status_needs_patch(previous, new, now=_now(), heartbeat=HEARTBEAT):
        return ready, None
    written = await kube.patch_status("DataLink", namespace, name, new)
    flip = ready_flip(previous, new)
    if flip is not None:
        type_, reason, message = flip
        log.info("DataLink %s/%s: Ready=%s (%s) %s", namespace, name, ready, reason, message)
        await kube.post_event({**body, "metadata": written.get("metadata") or meta}, type_, reason, message)
    return ready, written


# ------------------------------------------------------------------------------- per-link tasks


@dataclass
class _Checker:
    body: dict[str, Any]
    seen: tuple[Any, Any]
    # Set while this replica may act (the runtime's gate): with high availability, checks run
    # only on the active replica (kopf pauses the watch on standbys, but these tasks run beside it).
    gate: asyncio.Event | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def offer(self, body: dict[str, Any]) -> None:
        """Take a newer body; wake the task when the link changed in a way that needs a check."""
        if _rv(body) and _rv(body) < _rv(self.body):
            return  # an older event overtaken by the status we wrote
        self.body = body
        current = trigger(body)
        if current != self.seen:
            self.seen = current
            self.wake.set()


_checkers: dict[str, _Checker] = {}


async def _run(uid: str, checker: _Checker) -> None:
    delay = first_delay(checker.body)
    while True:
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(checker.wake.wait(), timeout=delay)
        if checker.gate is not None and not checker.gate.is_set():
            await checker.gate.wait()
        checker.wake.clear()
        body = checker.body
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            delay = NOT_READY_INTERVAL
            continue
        try:
            ready, written = await check_link(body)
            if written is not None:
                checker.offer(written)
            delay = next_delay(ready)
        except asyncio.CancelledError:
            raise
        except kube.ApiError as exc:
            if exc.status == 404:
                _checkers.pop(uid, None)
                return  # deleted while we checked; the DELETED event may already have gone by
            log.warning("DataLink %s: status update failed: %s", _key(body), exc)
            delay = ERROR_RETRY
        except Exception:
            log.exception("DataLink %s: check failed", _key(body))
            delay = ERROR_RETRY


def _key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _stop(uid: str) -> None:
    checker = _checkers.pop(uid, None)
    if checker is not None and checker.task is not None:
        checker.task.cancel()


@kopf.on.event(GROUP, VERSION, "datalinks", id="datalink-checks")
async def datalink_checks(event: Mapping[str, Any], memo: Any = None, **_: Any) -> None:
    body = dict(event.get("object") or {})
    uid = (body.get("metadata") or {}).get("uid")
    if not uid:
        return
    if event.get("type") == "DELETED":
        _stop(uid)
        return
    checker = _checkers.get(uid)
    if checker is not None and checker.task is not None and not checker.task.done():
        checker.offer(body)
        return
    runtime = getattr(memo, "runtime", None)
    checker = _Checker(
        body=body, seen=trigger(body), gate=runtime.gate.active if runtime is not None else None
    )
    _checkers[uid] = checker
    checker.task = asyncio.create_task(_run(uid, checker), name=f"datalink:{_key(body)}")


@kopf.on.cleanup(id="stop-datalink-checks")
async def stop_datalink_checks(**_: Any) -> None:
    tasks = [c.task for c in _checkers.values() if c.task is not None]
    _checkers.clear()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
