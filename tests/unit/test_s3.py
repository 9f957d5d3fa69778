"""s3.check_bucket against a real S3 HTTP endpoint (moto's server on loopback), and its error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from s3_server import S3Server, closed_port, start_s3_server
from studio_operator import s3
from studio_operator.resources.endpoints import S3Policy, parse_endpoints, parse_networks
from studio_operator.s3 import BucketCheck, Credentials, Reason


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    srv = start_s3_server(Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    srv.create_bucket("eu-data", region="eu-west-2", objects={"a.txt": b"a"})
    srv.create_bucket("us-data")
    yield srv
    srv.stop()


def creds(server: S3Server) -> Credentials:
    return Credentials(server.admin.access_key_id, server.admin.secret_access_key)


def trusting(server: S3Server) -> S3Policy:
    """The administrator allowed the loopback server (as hack/operator.sh does for `make run`)."""
    return S3Policy(allowed_endpoints=parse_endpoints([server.endpoint]))


def check(
    bucket: str,
    server: S3Server,
    credentials: Credentials | None,
    policy: S3Policy | None = None,
    **kw: str | None,
) -> BucketCheck:
    kw.setdefault("endpoint_url", server.endpoint)
    return asyncio.run(
        s3.check_bucket(
            bucket,
            region=kw.get("region"),
            endpoint_url=kw["endpoint_url"],
            credentials=credentials,
            source="Secret team/s3",
            policy=policy or trusting(server),
        )
    )


def test_credentials_repr_hides_secrets() -> None:
    c = Credentials("AKIAEXAMPLEKEY", "s3cr3t-value", "token-value")
    for text in (repr(c), str(c), f"{c}", repr([c]), repr({"c": c})):
        assert "AKIAEXAMPLEKEY" not in text and "s3cr3t" not in text and "token-value" not in text


def test_reachable_with_region_from_endpoint(server: S3Server) -> None:
    result = check("eu-data", server, creds(server))
    assert result.ok and result.reason == Reason.REACHABLE and result.region == "eu-west-2"
    assert check("s3://us-data/", server, creds(server)).region == "us-east-1"


def test_no_such_bucket(server: S3Server) -> None:
    result = check("missing-bucket", server, creds(server))
    assert (result.ok, result.reason) == (False, Reason.NO_SUCH_BUCKET)
    assert "missing-bucket" in result.message and "spec.uri" in result.message


def test_invalid_credentials(server: S3Server) -> None:
    unknown = check("eu-data", server, Credentials("AKIAUNKNOWNKEY000000", "whatever"))
    assert unknown.reason == Reason.INVALID_CREDENTIALS and "InvalidAccessKeyId" in unknown.message
    wrong_secret = check("eu-data", server, Credentials(server.admin.access_key_id, "wrong-secret"))
    assert (
        wrong_secret.reason == Reason.INVALID_CREDENTIALS and "SignatureDoesNotMatch" in wrong_secret.message
    )
    for result in (unknown, wrong_secret):
        assert "Secret team/s3" in result.message
        assert (
            "AKIAUNKNOWNKEY000000" not in result.message and server.admin.access_key_id not in result.message
        )


def test_access_denied(server: S3Server) -> None:
    assert server.no_access is not None
    result = check(
        "eu-data", server, Credentials(server.no_access.access_key_id, server.no_access.secret_access_key)
    )
    assert result.reason == Reason.ACCESS_DENIED
    assert "s3:ListBucket" in result.message and "arn:aws:s3:::eu-data" in result.message


def test_endpoint_unreachable(server: S3Server) -> None:
    admin = S3Policy(allowed_endpoints=parse_endpoints(["http://127.0.0.1:*"]))
    result = check("eu-data", server, creds(server), admin, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    assert result.reason == Reason.ENDPOINT_UNREACHABLE and "spec.endpointURL" in result.message
    assert "Error" not in result.message  # no exception kind: refused, timeout and TLS read alike


def test_tenant_loopback_endpoint_refused_before_any_request(server: S3Server) -> None:
    """Not allowed by the administrator: refused on its address, even with the tenant's own keys."""
    for endpoint in (server.endpoint, server.endpoint.replace("127.0.0.1", "localhost")):
        result = check("eu-data", server, creds(server), S3Policy(), endpoint_url=endpoint)
        assert result.reason == Reason.ENDPOINT_NOT_ALLOWED and "loopback" in result.message


def test_operator_identity_never_used_for_a_tenant_endpoint(server: S3Server) -> None:
    tenant = S3Policy(allowed_networks=parse_networks(["127.0.0.0/8"]))
    result = check("eu-data", server, None, tenant)
    assert result.reason == Reason.CREDENTIALS_REQUIRED and "spec.credentialsSecret" in result.message
    # With the tenant's keys and its network allowed, the same endpoint answers.
    assert check("eu-data", server, creds(server), tenant).ok


def test_tenant_unreachable_reads_alike_and_takes_the_floor(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "UNREACHABLE_FLOOR", 1.5)
    tenant = S3Policy(allowed_networks=parse_networks(["127.0.0.0/8"]))
    refused_url, unresolvable_url = f"http://127.0.0.1:{closed_port()}", "http://no-such-host.invalid"
    started = time.monotonic()
    refused = check("eu-data", server, creds(server), tenant, endpoint_url=refused_url)
    assert time.monotonic() - started >= 1.5
    unresolvable = check("eu-data", server, creds(server), tenant, endpoint_url=unresolvable_url)
    assert refused.reason == unresolvable.reason == Reason.ENDPOINT_UNREACHABLE
    assert refused.message.replace(refused_url, "URL") == unresolvable.message.replace(
        unresolvable_url, "URL"
    )
    assert "Error" not in refused.message and "Error" not in unresolvable.message


def test_no_credentials_at_all(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = check("eu-data", server, None)
    assert result.reason == Reason.INVALID_CREDENTIALS and "credentialsSecret" in result.message


def test_nothing_logged_contains_secrets(server: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "very-secret-value-123"
    check("eu-data", server, Credentials("AKIAUNKNOWNKEY000001", secret))
    check("eu-data", server, Credentials(server.admin.access_key_id, secret))
    assert secret not in caplog.text


# ---------------------------------------------------------------------------- pure error mapping


def client_error(
    code: str, status: int, message: str = "", headers: dict[str, str] | None = None
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        "HeadBucket",
    )


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("NoSuchBucket", 404, Reason.NO_SUCH_BUCKET),
        ("404", 404, Reason.NO_SUCH_BUCKET),
        ("AccessDenied", 403, Reason.ACCESS_DENIED),
        ("InvalidAccessKeyId", 403, Reason.INVALID_CREDENTIALS),
        ("SignatureDoesNotMatch", 403, Reason.INVALID_CREDENTIALS),
        ("ExpiredToken", 400, Reason.INVALID_CREDENTIALS),
        ("PermanentRedirect", 301, Reason.CHECK_FAILED),
        ("InternalError", 500, Reason.CHECK_FAILED),
    ],
)
def test_classify(code: str, status: int, reason: Reason) -> None:
    assert s3._classify(client_error(code, status), "b", None, "src", None).reason == reason


def test_classify_redirect_names_region() -> None:
    result = s3._classify(
        client_error("PermanentRedirect", 301, headers={"x-amz-bucket-region": "ap-south-1"}),
        "b",
        None,
        "s",
        None,
    )
    assert "spec.region to ap-south-1" in result.message and result.region == "ap-south-1"


def test_unknown_error_message_is_redacted() -> None:
    c = Credentials("AKIALEAKED", "leaked-secret")
    result = s3._classify(client_error("Weird", 418, "key AKIALEAKED sig leaked-secret"), "b", None, "s", c)
    assert result.reason == Reason.CHECK_FAILED
    assert "AKIALEAKED" not in result.message and "leaked-secret" not in result.message
