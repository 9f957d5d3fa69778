"""DataLink status bookkeeping and the handler's check flow, with the API server and S3 faked."""

from __future__ import annotations

import asyncio
import base64
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from studio_operator import kube, s3
from studio_operator.config import OPTIONS
from studio_operator.handlers import datalinks as dl
from studio_operator.resources.endpoints import S3Policy, parse_endpoints, parse_shared_buckets
from studio_operator.resources.links import link_status, ready_flip, status_needs_patch

NOW = "2026-11-25T10:00:00Z"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# --------------------------------------------------------------------------------------- pure


def test_credentials_from_secret() -> None:
    c = dl.credentials_from_secret(
        "ns", "s", {"AWS_ACCESS_KEY_ID": b64("AKIA1"), "AWS_SECRET_ACCESS_KEY": b64("sek\n")}
    )
    assert (c.access_key_id, c.secret_access_key, c.session_token) == ("AKIA1", "sek", None)
    token = dl.credentials_from_secret(
        "ns",
        "s",
        {"AWS_ACCESS_KEY_ID": b64("A"), "AWS_SECRET_ACCESS_KEY": b64("B"), "AWS_SESSION_TOKEN": b64("T")},
    )
    assert token.session_token == "T"
    # The key names of ru.yandex.s3.csi Secrets work too.
    alt = dl.credentials_from_secret("ns", "s", {"accessKeyID": b64("A"), "secretAccessKey": b64("B")})
    assert alt.access_key_id == "A"


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        (None, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": b64("A")}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": b64("A"), "AWS_SECRET_ACCESS_KEY": "%%%notbase64"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": b64(""), "AWS_SECRET_ACCESS_KEY": b64("B")}, "AWS_ACCESS_KEY_ID"),
    ],
)
def test_secret_invalid(data: dict[str, str] | None, missing: str) -> None:
    with pytest.raises(dl.SecretProblem) as err:
        dl.credentials_from_secret("team-a", "creds", data)
    assert err.value.reason == "SecretInvalid"
    assert "team-a/creds" in err.value.message and missing in err.value.message


def test_delays_have_jitter_and_depend_on_readiness() -> None:
    rng = random.Random(1)
    ready = [dl.next_delay(True, rng) for _ in range(50)]
    not_ready = [dl.next_delay(False, rng) for _ in range(50)]
    assert all(240 <= d <= 360 for d in ready) and len(set(ready)) > 40
    assert all(24 <= d <= 36 for d in not_ready)


def test_first_delay() -> None:
    new = {"metadata": {"generation": 1}}
    assert dl.first_delay(new) == 0.0
    checked = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert 0.0 <= dl.first_delay(checked, random.Random(2)) <= 30.0
    changed = {**checked, "metadata": {"generation": 2}}
    assert dl.first_delay(changed) == 0.0


def test_trigger() -> None:
    body: dict[str, Any] = {"metadata": {"generation": 3, "annotations": {dl.RECHECK_ANNOTATION: "x"}}}
    assert dl.trigger(body) == (3, "x")


def status(
    ready: bool, reason: str, previous: dict[str, Any] | None = None, now: str = NOW
) -> dict[str, Any]:
    return link_status(
        generation=2,
        bucket="b",
        prefix="",
        region="eu-west-1",
        ready=ready,
        reason=reason,
        message=f"msg {reason}",
        previous=previous,
        now=now,
    )


def test_transition_time_moves_only_on_flip() -> None:
    first = status(False, "NoSuchBucket")
    assert first["conditions"][0]["lastTransitionTime"] == NOW
    later = "2026-11-25T10:05:00Z"
    same = status(False, "AccessDenied", first, later)
    assert same["conditions"][0]["lastTransitionTime"] == NOW
    flipped = status(True, "BucketReachable", same, later)
    assert flipped["conditions"][0]["lastTransitionTime"] == later
    assert flipped["conditions"][0]["observedGeneration"] == 2 and flipped["observedGeneration"] == 2


def test_status_needs_patch() -> None:
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    old = status(True, "BucketReachable")
    again = status(True, "BucketReachable", old, "2026-11-25T10:05:00Z")
    hb = timedelta(minutes=30)
    assert not status_needs_patch(old, again, now=now + timedelta(minutes=5), heartbeat=hb)
    assert status_needs_patch(old, again, now=now + timedelta(minutes=31), heartbeat=hb)
    assert status_needs_patch(old, status(False, "AccessDenied", old), now=now, heartbeat=hb)
    assert status_needs_patch(None, old, now=now, heartbeat=hb)


def test_ready_flip() -> None:
    bad = status(False, "NoSuchBucket")
    good = status(True, "BucketReachable", bad)
    assert ready_flip(None, bad) == ("Warning", "NoSuchBucket", "msg NoSuchBucket")
    assert ready_flip(bad, good) == ("Normal", "Ready", "msg BucketReachable")
    assert ready_flip(good, status(True, "BucketReachable", good)) is None
    assert ready_flip(bad, status(False, "NoSuchBucket", bad)) is None
    assert ready_flip(bad, status(False, "AccessDenied", bad)) == (
        "Warning",
        "AccessDenied",
        "msg AccessDenied",
    )


# ------------------------------------------------------------------------ check flow (faked I/O)


class FakeApi:
    def __init__(self, secrets: dict[str, dict[str, Any]] | None = None) -> None:
        self.secrets = secrets or {}
        self.patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.checks: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        assert (api_version, kind) == ("v1", "Secret")
        return self.secrets.get(name)

    async def patch_status(self, kind: str, namespace: str, name: str, st: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(st)
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "9"}, "status": st}

    async def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(
        {"creds": {"data": {"AWS_ACCESS_KEY_ID": b64("AKIAFAKE"), "AWS_SECRET_ACCESS_KEY": b64("topsecret")}}}
    )
    monkeypatch.setattr(kube, "get", fake.get)
    monkeypatch.setattr(kube, "patch_status", fake.patch_status)
    monkeypatch.setattr(kube, "post_event", fake.post_event)

    async def check_bucket(bucket: str, **kw: Any) -> s3.BucketCheck:
        fake.checks.append({"bucket": bucket, **kw})
        if bucket == "missing":
            return s3.BucketCheck(False, s3.Reason.NO_SUCH_BUCKET, "bucket 'missing' does not exist")
        return s3.BucketCheck(True, s3.Reason.REACHABLE, "reached", region="eu-north-1")

    monkeypatch.setattr(s3, "check_bucket", check_bucket)
    return fake


def link_body(
    uri: str, secret: str | None = "creds", st: dict[str, Any] | None = None, endpoint: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"uri": uri}
    if secret:
        spec["credentialsSecret"] = secret
    if endpoint:
        spec["endpointURL"] = endpoint
    return {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "DataLink",
        "metadata": {
            "name": "ref",
            "namespace": "team-a",
            "uid": "u1",
            "generation": 4,
            "resourceVersion": "5",
        },
        "spec": spec,
        "status": st or {},
    }


def test_check_flow_ready_then_quiet(api: FakeApi) -> None:
    ready, written = asyncio.run(dl.check_link(link_body("s3://reference-genomes/hg38/")))
    assert ready and written is not None
    (patch,) = api.patches
    assert patch["bucket"] == "reference-genomes" and patch["prefix"] == "hg38"
    assert patch["region"] == "eu-north-1" and patch["observedGeneration"] == 4
    assert patch["conditions"][0]["status"] == "True"
    assert api.events == [("Normal", "Ready", "reached")]
    creds = api.checks[0]["credentials"]
    assert (creds.access_key_id, creds.secret_access_key) == ("AKIAFAKE", "topsecret")
    assert api.checks[0]["source"] == "Secret team-a/creds"
    # Nothing changed: no second write, no second event.
    ready, written = asyncio.run(dl.check_link(link_body("s3://reference-genomes/hg38/", st=patch)))
    assert ready and written is None and len(api.patches) == 1 and len(api.events) == 1
    assert "topsecret" not in str(api.patches) + str(api.events)


def test_check_flow_failures(api: FakeApi) -> None:
    ready, _ = asyncio.run(dl.check_link(link_body("s3://missing")))
    assert not ready and api.patches[-1]["conditions"][0]["reason"] == "NoSuchBucket"
    assert api.events[-1][:2] == ("Warning", "NoSuchBucket")

    ready, _ = asyncio.run(dl.check_link(link_body("s3://data", secret="absent")))
    cond = api.patches[-1]["conditions"][0]
    assert not ready and cond["reason"] == "SecretNotFound" and "team-a/absent" in cond["message"]

    api.secrets["half"] = {"data": {"AWS_ACCESS_KEY_ID": b64("A")}}
    asyncio.run(dl.check_link(link_body("s3://data", secret="half")))
    assert api.patches[-1]["conditions"][0]["reason"] == "SecretInvalid"
    assert api.patches[-1]["bucket"] == "data"


def test_operator_credentials_when_no_secret(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = S3Policy(shared_buckets=parse_shared_buckets(["team-a=data"]))
    monkeypatch.setattr(OPTIONS, "s3_policy", policy)
    asyncio.run(dl.check_link(link_body("s3://data", secret=None)))
    assert api.checks[-1]["credentials"] is None
    assert api.checks[-1]["source"] == "the operator's own credentials"
    assert api.checks[-1]["policy"] is policy


@pytest.mark.parametrize(
    ("uri", "endpoint", "reason"),
    [
        ("s3://other-team", None, "BucketNotAllowed"),  # not bound to team-a
        ("s3://data", "http://203.0.113.9:9000", "CredentialsRequired"),  # a tenant endpoint
        ("s3://data", "https://s3.example.com", "BucketNotAllowed"),  # allowed endpoint, bucket not bound
    ],
)
def test_shared_identity_refused_without_a_request(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, uri: str, endpoint: str | None, reason: str
) -> None:
    monkeypatch.setattr(
        OPTIONS,
        "s3_policy",
        S3Policy(
            allowed_endpoints=parse_endpoints(["https://s3.example.com"]),
            shared_buckets=parse_shared_buckets(["team-a=data-*,data;team-b=*"]),
        ),
    )
    if reason == "BucketNotAllowed" and endpoint:
        uri = "s3://data-not-here"
        monkeypatch.setattr(
            OPTIONS,
            "s3_policy",
            S3Policy(
                allowed_endpoints=parse_endpoints(["https://s3.example.com"]),
                shared_buckets=parse_shared_buckets(["team-b=*"]),
            ),
        )
    ready, _ = asyncio.run(dl.check_link(link_body(uri, secret=None, endpoint=endpoint)))
    cond = api.patches[-1]["conditions"][0]
    assert not ready and cond["reason"] == reason and "credentialsSecret" in cond["message"]
    assert api.events[-1][:2] == ("Warning", reason)
    assert api.checks == []  # S3 was never asked, with any identity


def test_region_kept_when_check_cannot_tell(api: FakeApi) -> None:
    previous = status(False, "NoSuchBucket")
    previous["bucket"] = "missing"
    asyncio.run(dl.check_link(link_body("s3://missing", st=previous)))
    assert api.patches[-1]["region"] == "eu-west-1"
