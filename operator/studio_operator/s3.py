"""The one place that talks to S3 (boto3).

boto3 is synchronous: every call runs in a worker thread (`asyncio.to_thread`) with short
connect/read timeouts and botocore's standard retry mode, so a slow or dead endpoint never stalls
the operator's event loop. Credentials travel in `Credentials`, whose repr hides them, and no
message built here contains them (server messages are not echoed except for unknown errors, and
then with any credential text removed).

Trust (resources/endpoints.py): without `credentials` a request is signed with the operator's own
identity, so it goes only to a trusted endpoint (AWS S3 or one an administrator allowed); any other
endpoint is a tenant's: checked with the tenant's keys, after its host resolved to addresses the
policy allows. Every failure to get an S3 answer from a tenant endpoint (refused, timeout, TLS,
DNS, not S3) reads the same, and takes at least UNREACHABLE_FLOOR seconds: the status is no
port scanner.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .resources.buckets import is_writable, normalise_bucket, parse_s3_uri
from .resources.endpoints import CREDENTIALS_REQUIRED, ENDPOINT_NOT_ALLOWED, PolicyError, S3Policy, host_port

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions as bce
    from mypy_boto3_s3 import S3Client

__all__ = [
    "BucketCheck",
    "Credentials",
    "Reason",
    "S3Policy",
    "check_bucket",
    "is_writable",
    "normalise_bucket",
    "parse_s3_uri",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 2
# Upper bound for one whole check (two calls, each with retries), in case a socket hangs anyway.
CHECK_TIMEOUT = 45.0
DEFAULT_REGION = "us-east-1"
# A failed check of a tenant endpoint is reported no sooner than this (a refused connection would
# otherwise answer at once and a silent port only after the connect timeouts).
UNREACHABLE_FLOOR = CONNECT_TIMEOUT * MAX_ATTEMPTS + 2.0


class Reason(StrEnum):
    REACHABLE = "BucketReachable"
    NO_SUCH_BUCKET = "NoSuchBucket"
    ACCESS_DENIED = "AccessDenied"
    INVALID_CREDENTIALS = "InvalidCredentials"
    ENDPOINT_UNREACHABLE = "EndpointUnreachable"
    CHECK_FAILED = "CheckFailed"
    CREDENTIALS_REQUIRED = CREDENTIALS_REQUIRED
    ENDPOINT_NOT_ALLOWED = ENDPOINT_NOT_ALLOWED


_INVALID_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}
_ACCESS_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
_NO_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


@dataclass(frozen=True, repr=False)
class Credentials:
    """Static AWS credentials. repr/str never show them (they end up in tracebacks and logs)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        return [s for s in (self.access_key_id, self.secret_access_key, self.session_token) if s]


@dataclass(frozen=True)
class BucketCheck:
    ok: bool
    reason: Reason
    message: str
    region: str | None = None  # where the bucket lives, when the endpoint said


def _where(endpoint_url: str | None) -> str:
    return endpoint_url or "AWS S3"


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _client(region: str | None, endpoint_url: str | None, credentials: Credentials | None) -> S3Client:
    global _session
    import boto3  # imported once a data link is checked: boto3 costs ~25 MB
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        # S3-compatible endpoints (MinIO, Ceph, loopback) rarely have per-bucket DNS names.
        s3={"addressing_style": "path"} if endpoint_url else None,
        user_agent_extra="studio-operator",
    )
    # One shared session: it caches the service models (a fresh one costs ~0.2 s of CPU per
    # client). Sessions are not thread-safe, clients are: create clients under a lock. Explicit
    # keys apply to this client only; without them the session's default chain is used.
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3",
            region_name=region or DEFAULT_REGION,
            endpoint_url=endpoint_url or None,
            config=config,
            aws_access_key_id=credentials.access_key_id if credentials else None,
            aws_secret_access_key=credentials.secret_access_key if credentials else None,
            aws_session_token=credentials.session_token if credentials else None,
        )


def _location(client: S3Client, bucket: str) -> str | None:
    """GetBucketLocation: None/"" means us-east-1, "EU" is the legacy name of eu-west-1."""
    constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    if not constraint:
        return DEFAULT_REGION
    return "eu-west-1" if constraint == "EU" else str(constraint)


def _error(exc: bce.ClientError) -> tuple[str, int, dict[str, str]]:
    response: Any = exc.response
    code = str((response.get("Error") or {}).get("Code") or "")
    meta = response.get("ResponseMetadata") or {}
    return code, int(meta.get("HTTPStatusCode") or 0), dict(meta.get("HTTPHeaders") or {})


def _redact(text: str, credentials: Credentials | None) -> str:
    for secret in credentials.secrets() if credentials else ():
        text = text.replace(secret, "<redacted>")
    return text


def _classify(
    exc: bce.ClientError, bucket: str, endpoint_url: str | None, source: str, credentials: Credentials | None
) -> BucketCheck:
    code, status, headers = _error(exc)
    where = _where(endpoint_url)
    if code in _INVALID_CREDENTIAL_CODES:
        return BucketCheck(
            False,
            Reason.INVALID_CREDENTIALS,
            f"{where} rejected the credentials from {source} ({code}): put a valid AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys) there",
        )
    if code in _NO_BUCKET_CODES:
        return BucketCheck(
            False,
            Reason.NO_SUCH_BUCKET,
            f"bucket {bucket!r} does not exist at {where}: check spec.uri"
            + ("" if endpoint_url else " (and that the bucket is in this AWS partition)"),
        )
    if code in _ACCESS_DENIED_CODES:
        return BucketCheck(
            False,
            Reason.ACCESS_DENIED,
            f"{where} denied access to bucket {bucket!r} with the credentials from {source}: allow "
            f"s3:ListBucket on arn:aws:s3:::{bucket} (and s3:GetObject, plus s3:PutObject/"
            "s3:DeleteObject for writable mounts, on its objects) to that identity",
        )
    if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        actual = headers.get("x-amz-bucket-region")
        hint = f"set spec.region to {actual}" if actual else "set spec.region to the bucket's region"
        return BucketCheck(
            False, Reason.CHECK_FAILED, f"bucket {bucket!r} is in another region: {hint}", region=actual
        )
    detail = _redact(str(exc), credentials)[:300]
    return BucketCheck(
        False,
        Reason.CHECK_FAILED,
        f"checking bucket {bucket!r} at {where} failed ({code or status}): {detail}; "
        "check spec.endpointURL and the endpoint's logs",
    )


def _unreachable(endpoint_url: str | None) -> BucketCheck:
    """The one answer for every way of not getting an S3 answer (no detail: see the module doc)."""
    return BucketCheck(
        False,
        Reason.ENDPOINT_UNREACHABLE,
        f"no S3 answer from {_where(endpoint_url)}: check spec.endpointURL, that the endpoint is up, "
        "and that the operator may connect to it (network policy, proxy, TLS)",
    )


def _address_problem(endpoint_url: str, policy: S3Policy) -> BucketCheck | None:
    """Resolve the tenant endpoint's host; refuse it when any address is one the policy forbids."""
    try:
        host, port = host_port(endpoint_url)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (PolicyError, OSError, UnicodeError):
        return _unreachable(endpoint_url)
    for info in infos:
        why = policy.address_refusal(str(info[4][0]))
        if why is not None:
            return BucketCheck(
                False,
                Reason.ENDPOINT_NOT_ALLOWED,
                f"endpoint {endpoint_url} resolves to {why}, which data links may not use: use an "
                "endpoint on a public address, or ask a cluster administrator to allow it",
            )
    return None


def _check_sync(
    bucket: str,
    region: str | None,
    endpoint_url: str | None,
    credentials: Credentials | None,
    source: str,
    policy: S3Policy,
) -> BucketCheck:
    trusted = policy.endpoint_trusted(endpoint_url)
    if credentials is None and not trusted:
        # Never reached through the handlers (they ask for credentials first): a second lock on
        # the door that keeps the operator's own identity away from tenant endpoints.
        return BucketCheck(
            False,
            Reason.CREDENTIALS_REQUIRED,
            f"endpoint {endpoint_url} is not allowed for the operator's own credentials: set "
            "spec.credentialsSecret",
        )
    if endpoint_url and not trusted:
        refused = _address_problem(endpoint_url, policy)
        if refused is not None:
            return refused
    result = _ask(bucket, region, endpoint_url, credentials, source)
    if (
        not trusted
        and result.reason in (Reason.ENDPOINT_UNREACHABLE, Reason.CHECK_FAILED)
        and not result.region
    ):
        return _unreachable(endpoint_url)
    return result


def _ask(
    bucket: str,
    region: str | None,
    endpoint_url: str | None,
    credentials: Credentials | None,
    source: str,
) -> BucketCheck:
    import botocore.exceptions as bce  # see _client

    where = _where(endpoint_url)
    try:
        client = _client(region, endpoint_url, credentials)
        try:
            response: Any = client.head_bucket(Bucket=bucket)
        except bce.ClientError as exc:
            code, _, _ = _error(exc)
            if code.isdigit() and code not in ("404", "301"):
                # HEAD responses carry no error body: 403 may mean bad keys or a denied policy.
                # GET ?location returns the real error code (or succeeds where HEAD was denied).
                try:
                    _location(client, bucket)
                except bce.ClientError as detailed:
                    return _classify(detailed, bucket, endpoint_url, source, credentials)
            return _classify(exc, bucket, endpoint_url, source, credentials)
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        found = headers.get("x-amz-bucket-region") or response.get("BucketRegion")
        if not found:
            try:
                found = _location(client, bucket)
            except bce.ClientError:
                found = None  # listing works but the location is hidden: keep the declared region
        return BucketCheck(
            True, Reason.REACHABLE, f"bucket {bucket!r} reached at {where}", region=found or region
        )
    except (bce.NoCredentialsError, bce.PartialCredentialsError):
        return BucketCheck(
            False,
            Reason.INVALID_CREDENTIALS,
            f"no AWS credentials found ({source}): set spec.credentialsSecret to a Secret with "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the operator credentials",
        )
    except (
        bce.EndpointConnectionError,
        bce.ConnectTimeoutError,
        bce.ReadTimeoutError,
        bce.ConnectionClosedError,
        bce.SSLError,
        bce.ConnectionError,
        bce.HTTPClientError,
    ) as exc:
        # The kind goes to the operator's debug log (administrators), never into the status.
        log.debug("S3 endpoint %s unreachable: %s", where, type(exc).__name__)
        return _unreachable(endpoint_url)
    except (bce.BotoCoreError, ValueError) as exc:
        detail = _redact(str(exc), credentials)[:300]
        return BucketCheck(
            False,
            Reason.CHECK_FAILED,
            f"checking bucket {bucket!r} at {where} failed ({type(exc).__name__}): {detail}",
        )


async def check_bucket(
    bucket: str,
    *,
    region: str | None,
    endpoint_url: str | None,
    credentials: Credentials | None,
    source: str = "the operator's own credentials",
    policy: S3Policy | None = None,
) -> BucketCheck:
    """HeadBucket (off the event loop); finds the region when the endpoint tells it.

    `source` names where the credentials came from, for messages (e.g. "Secret team-a/s3").
    Without `credentials` the endpoint must be trusted by `policy` (default: AWS S3 only).
    """
    name = normalise_bucket(bucket)
    policy = policy or S3Policy()
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(
            asyncio.to_thread(_check_sync, name, region, endpoint_url, credentials, source, policy),
            timeout=CHECK_TIMEOUT,
        )
    except TimeoutError:
        result = _unreachable(endpoint_url)
    if result.reason == Reason.ENDPOINT_UNREACHABLE and not policy.endpoint_trusted(endpoint_url):
        await asyncio.sleep(max(0.0, UNREACHABLE_FLOOR - (time.monotonic() - started)))
    return result
