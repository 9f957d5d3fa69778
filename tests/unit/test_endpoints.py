"""The S3 trust policy (resources/endpoints.py): endpoints, addresses, shared buckets."""

from __future__ import annotations

import pytest

from studio_operator.__main__ import parse, s3_policy
from studio_operator.resources.endpoints import (
    BUCKET_NOT_ALLOWED,
    CREDENTIALS_REQUIRED,
    PolicyError,
    S3Policy,
    host_port,
    origin,
    parse_endpoints,
    parse_networks,
    parse_shared_buckets,
    shared_identity_problem,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://S3.Example.com", "https://s3.example.com:443"),
        ("http://minio.corp", "http://minio.corp:80"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://minio.corp:9443/some/path", "https://minio.corp:9443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_origin(url: str, expected: str) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize("url", ["ftp://x", "s3://bucket", "http://", "minio.corp:9000", "http://a:b@c"])
def test_origin_rejects(url: str) -> None:
    with pytest.raises(PolicyError):
        origin(url)


def test_host_port() -> None:
    assert host_port("https://s3.example.com") == ("s3.example.com", 443)
    assert host_port("http://[fd00::1]:9000/x") == ("fd00::1", 9000)


def test_default_policy_trusts_aws_only() -> None:
    policy = S3Policy()
    assert policy.endpoint_trusted(None)
    assert policy.endpoint_trusted("")
    assert not policy.endpoint_trusted("https://s3.example.com")
    assert not policy.bucket_allowed("team-a", "anything")


@pytest.mark.parametrize(
    ("pattern", "url", "trusted"),
    [
        ("https://minio.corp", "https://minio.corp", True),
        ("https://minio.corp", "https://MINIO.corp:443/", True),
        ("https://minio.corp", "http://minio.corp", False),  # another scheme
        ("https://minio.corp", "https://minio.corp:9000", False),  # another port
        ("https://minio.corp", "https://minio.corp.evil.net", False),
        ("http://127.0.0.1:*", "http://127.0.0.1:9000", True),
        ("http://127.0.0.1:*", "http://127.0.0.10:9000", False),
        ("https://*.s3.example.com", "https://eu.s3.example.com", True),
        ("https://*.s3.example.com", "https://eu.s3.example.com.evil.net", False),
        ("https://*.s3.example.com", "https://s3.example.com", False),
    ],
)
def test_allowed_endpoints(pattern: str, url: str, trusted: bool) -> None:
    assert S3Policy(allowed_endpoints=parse_endpoints([pattern])).endpoint_trusted(url) is trusted


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("169.254.169.254", "link-local"),  # the metadata endpoint
        ("fe80::1%eth0", "link-local"),
        ("fd00:ec2::254", "private"),  # the IPv6 metadata endpoint (ULA)
        ("10.96.0.1", "private"),  # a typical service CIDR
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # shared address space (CGNAT)
        ("0.0.0.0", "private"),
        ("224.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("52.95.110.1", None),  # an AWS S3 address
        ("2600:1f18::1", None),
    ],
)
def test_address_refusal_default(address: str, refused: str | None) -> None:
    why = S3Policy().address_refusal(address)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_allowed_and_denied_networks() -> None:
    policy = S3Policy(
        allowed_networks=parse_networks(["10.20.0.0/16", "127.0.0.1/32"]),
        denied_networks=parse_networks(["52.95.0.0/16"]),
    )
    assert policy.address_refusal("10.20.3.4") is None
    assert policy.address_refusal("127.0.0.1") is None
    assert policy.address_refusal("::ffff:10.20.3.4") is None
    assert policy.address_refusal("10.21.0.1") is not None
    assert "denied" in (policy.address_refusal("52.95.110.1") or "")
    assert policy.address_refusal("169.254.169.254") is not None


def test_shared_buckets_patterns() -> None:
    policy = S3Policy(
        shared_buckets=parse_shared_buckets(["team-a=team-a-*,s3://reference/", "*=public-data;ops-*=logs"])
    )
    assert policy.bucket_allowed("team-a", "team-a-scratch")
    assert policy.bucket_allowed("team-a", "reference")
    assert policy.bucket_allowed("team-b", "public-data")
    assert policy.bucket_allowed("ops-eu", "logs")
    assert not policy.bucket_allowed("team-b", "team-a-scratch")
    assert not policy.bucket_allowed("team-a", "reference-private")
    assert not policy.bucket_allowed("team-ab", "team-a-scratch")  # the namespace pattern is exact
    assert not policy.bucket_allowed("ops", "logs")


@pytest.mark.parametrize("entry", ["team-a", "=bucket", "team-a=", "team-a=,"])
def test_shared_buckets_rejects(entry: str) -> None:
    with pytest.raises(PolicyError):
        parse_shared_buckets([entry])


def test_networks_reject() -> None:
    with pytest.raises(PolicyError):
        parse_networks(["10.0.0.0/33"])


def test_shared_identity_problem() -> None:
    policy = S3Policy(
        allowed_endpoints=parse_endpoints(["https://minio.corp"]),
        shared_buckets=parse_shared_buckets(["team-a=data-a"]),
    )
    who = "the operator's own credentials"
    assert shared_identity_problem(policy, "team-a", "data-a", None, who) is None
    assert shared_identity_problem(policy, "team-a", "data-a", "https://minio.corp", who) is None
    reason, message = shared_identity_problem(policy, "team-b", "data-a", None, who) or ("", "")
    assert reason == BUCKET_NOT_ALLOWED and "team-b" in message and "credentialsSecret" in message
    reason, message = shared_identity_problem(policy, "team-a", "data-a", "https://evil.example", who) or (
        "",
        "",
    )
    assert reason == CREDENTIALS_REQUIRED and "spec.credentialsSecret" in message


def test_policy_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_S3_ALLOWED_ENDPOINTS", "https://minio.corp, http://127.0.0.1:9000")
    monkeypatch.setenv("STUDIO_S3_SHARED_BUCKETS", "demo=reference-genomes,scratch;ci=ci-*")
    monkeypatch.setenv("STUDIO_S3_DENIED_NETWORKS", "52.0.0.0/8")
    from_env = s3_policy(parse(["run"]))
    assert from_env.allowed_endpoints == ("https://minio.corp:443", "http://127.0.0.1:9000")
    assert from_env.bucket_allowed("demo", "scratch") and from_env.bucket_allowed("ci", "ci-1")
    assert from_env.allowed_networks == ()
    assert from_env.address_refusal("52.1.2.3") is not None
    # A flag replaces its environment variable; repeated flags add up.
    from_flags = s3_policy(
        parse(
            [
                "run",
                "--s3-shared-buckets",
                "x=b1",
                "--s3-shared-buckets",
                "y=b2",
                "--s3-allowed-network",
                "127.0.0.0/8",
            ]
        )
    )
    assert from_flags.shared_buckets == (("x", ("b1",)), ("y", ("b2",)))
    assert from_flags.address_refusal("127.0.0.1") is None
    assert from_flags.allowed_endpoints == ("https://minio.corp:443", "http://127.0.0.1:9000")


def test_probe_address_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STUDIO_PROBE_ADDRESS", raising=False)
    assert parse(["run"]).probe_address == "127.0.0.1"
    assert parse(["run", "--probe-address", "0.0.0.0"]).probe_address == "0.0.0.0"
