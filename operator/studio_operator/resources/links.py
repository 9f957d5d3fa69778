"""DataLink bodies as studios see them (pure): `link_view`, and what keeps a studio's mounts from starting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ..api.kinds import YANDEX_CSI_DRIVER, ComputeEnvironmentSpec, DataLinkSpec, Storage, StorageDriver
from .buckets import InvalidS3Uri, is_safe_endpoint, is_safe_prefix, parse_s3_uri
from .conditions import carry_transition_times, condition, find
from .context import LinkView, SessionInputs
from .endpoints import shared_identity_problem
from .lifespan import parse_time

READY = "Ready"
PENDING = "Pending"
# Who signs a mount's S3 requests (see resources/endpoints.py).
OWN_KEYS = "own"
POD_IDENTITY = "pod"
SHARED_IDENTITY = "shared"


def link_view(name: str, body: Mapping[str, Any] | None) -> LinkView | None:
    """None when there is no such link. `ready` needs Ready=True for the current generation:
    a link whose URI just changed is not ready until the operator has checked the new one."""
    if body is None:
        return None
    raw_spec = body.get("spec") or {}
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    try:
        spec = DataLinkSpec.model_validate(raw_spec)
        bucket, prefix = parse_s3_uri(spec.uri)
    except (ValidationError, InvalidS3Uri) as exc:
        return LinkView(
            name=name,
            spec=DataLinkSpec.model_construct(uri=str(raw_spec.get("uri", ""))),
            bucket="",
            prefix="",
            region=None,
            ready=False,
            reason="InvalidSpec",
            message=f"data link {name!r} is invalid: {exc}",
        )
    cond = find(status.get("conditions"), READY)
    current = generation is None or status.get("observedGeneration") == generation
    if cond is None or not current:
        ready, reason = False, PENDING
        message = f"data link {name!r} has not been checked yet" + (
            "" if cond is None else " since it changed"
        )
    else:
        ready = cond.get("status") == "True"
        reason = str(cond.get("reason") or "")
        message = str(cond.get("message") or "")
    return LinkView(
        name=name,
        spec=spec,
        bucket=bucket,
        prefix=prefix,
        region=(status.get("region") if current else None) or spec.region,
        ready=ready,
        reason=reason,
        message=message,
    )


def mount_problem(inputs: SessionInputs) -> tuple[str, str] | None:
    """(reason, message naming the fix) when the studio's mounts cannot be planned, else None.

    The reconciler sets Stalled with this and retries when the data link changes.
    """
    storage = inputs.environment.storage
    mounts = inputs.spec.mounts or []
    if mounts and storage is not None and storage.driver == StorageDriver.FUSE and not storage.fuse_image:
        return (
            "FuseImageMissing",
            f"ComputeEnvironment {inputs.environment_name!r} uses storage.driver fuse without "
            "storage.fuseImage: set it to an image with /bin/sh and mount-s3, or use the csi driver",
        )
    for mount in mounts:
        link = inputs.links.get(mount.data_link)
        if link is None:
            return (
                "DataLinkNotFound",
                f"data link {mount.data_link!r} does not exist in namespace {inputs.studio.namespace!r}: "
                "create it or remove the mount",
            )
        if not link.ready:
            detail = f"{link.reason}: {link.message}" if link.message else link.reason
            return (
                "DataLinkNotReady",
                f"data link {mount.data_link!r} is not Ready ({detail}); the studio starts once it is",
            )
        if not is_safe_prefix(link.prefix) or (
            link.spec.endpoint_url and not is_safe_endpoint(link.spec.endpoint_url)
        ):
            return (
                "DataLinkInvalid",
                f"data link {mount.data_link!r} has a prefix or endpointURL that cannot be passed to "
                "the storage driver safely: fix spec.uri / spec.endpointURL",
            )
        if mount_identity(link, inputs.environment) == SHARED_IDENTITY:
            who = _shared_identity_name(inputs.environment.storage or Storage())
            problem = shared_identity_problem(
                inputs.s3_policy, inputs.studio.namespace, link.bucket, link.spec.endpoint_url, who
            )
            if problem is not None:
                reason, message = problem
                return reason, f"data link {mount.data_link!r}: {message}"
    return None


def mount_identity(link: LinkView, env: ComputeEnvironmentSpec) -> str:
    """Who signs the mount's S3 requests. Mountpoint's CSI driver reads no per-volume Secret: it
    uses the pod's service account when the environment names one, else its own identity."""
    storage = env.storage or Storage()
    secret = link.spec.credentials_secret or env.credentials_secret
    if storage.driver == StorageDriver.FUSE or storage.csi_driver == YANDEX_CSI_DRIVER:
        if secret:
            return OWN_KEYS
        return (
            POD_IDENTITY
            if storage.driver == StorageDriver.FUSE and env.service_account_name
            else SHARED_IDENTITY
        )
    return POD_IDENTITY if env.service_account_name else SHARED_IDENTITY


def _shared_identity_name(storage: Storage) -> str:
    if storage.driver == StorageDriver.FUSE:
        return "the node's identity (the fuse mounter without a credentials Secret)"
    if storage.csi_driver == YANDEX_CSI_DRIVER:
        return f"the storage driver's own identity ({YANDEX_CSI_DRIVER} without a credentials Secret)"
    return (
        f"the storage driver's own identity ({storage.csi_driver} reads no Secret; the environment's "
        "serviceAccountName gives pod-level credentials instead)"
    )


# ------------------------------------------------------------------ DataLink status (for handlers)


# Failures that may pass on their own (the network, an endpoint's hiccup): the operator re-checks
# every ~30 s, so kstatus reads them as InProgress. Every other failure (NoSuchBucket, AccessDenied,
# InvalidCredentials, a missing or invalid Secret, an invalid spec) lasts until someone changes the
# link, its Secret or the bucket's policy: Stalled, which kstatus reads as Failed.
TRANSIENT_REASONS = frozenset({"EndpointUnreachable", "CheckFailed"})


def link_conditions(ready: bool, reason: str, message: str, generation: int) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled of a DataLink: exactly one is True, so that kstatus reaches
    Current (Ready), Failed (Stalled) or, while a transient failure is retried, InProgress."""
    reconciling = not ready and reason in TRANSIENT_REASONS
    stalled = not ready and not reconciling
    return [
        condition(READY, ready, reason, message, generation),
        condition(
            "Reconciling",
            reconciling,
            reason if reconciling else "Checked",
            f"{message}; checked again in about 30 s" if reconciling else "",
            generation,
        ),
        condition(
            "Stalled", stalled, reason if stalled else "NotStalled", message if stalled else "", generation
        ),
    ]


def link_status(
    *,
    generation: int | None,
    bucket: str | None,
    prefix: str | None,
    region: str | None,
    ready: bool,
    reason: str,
    message: str,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole DataLink status; lastTransitionTime carried over while a condition keeps its status."""
    conditions = carry_transition_times(
        link_conditions(ready, reason, message, generation or 0), (previous or {}).get("conditions"), now
    )
    return {
        "observedGeneration": generation,
        "bucket": bucket,
        "prefix": prefix,
        "region": region,
        "lastCheckedAt": now,
        "conditions": conditions,
    }


def status_needs_patch(
    previous: Mapping[str, Any] | None, new: Mapping[str, Any], *, now: datetime, heartbeat: timedelta
) -> bool:
    """Write only on a change; lastCheckedAt alone is refreshed once per `heartbeat` (each status
    write wakes every watcher of DataLinks, the studio reconciler included)."""
    old = dict(previous or {})

    def essence(status: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in status.items() if k != "lastCheckedAt"}

    if essence(old) != essence(new):
        return True
    checked = _parse_time(old.get("lastCheckedAt"))
    return checked is None or now - checked >= heartbeat


def ready_flip(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The Event to post when Ready changes status (or reason while False): (type, reason, message)."""
    before = find((previous or {}).get("conditions"), READY) or {}
    after = find(new.get("conditions"), READY) or {}
    if before.get("status") == after.get("status") and (
        after.get("status") == "True" or before.get("reason") == after.get("reason")
    ):
        return None
    if after.get("status") == "True":
        return ("Normal", READY, str(after.get("message") or ""))
    return ("Warning", str(after.get("reason") or "NotReady"), str(after.get("message") or ""))


def _parse_time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None
