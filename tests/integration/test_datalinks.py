"""DataLinks against the real API server, a real operator process and a real S3 HTTP endpoint (moto).

The moto server authenticates requests, so wrong keys really fail (InvalidAccessKeyId /
SignatureDoesNotMatch) and a key without a policy is really denied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube_helpers import Cluster, OperatorProcess, wait_for
from s3_server import Keys, S3Server, closed_port

pytest_plugins = ["conftest_s3"]  # the s3_server and bucket fixtures

GROUP, VERSION, PLURAL = "studios.dev", "v1alpha1", "datalinks"
TIMEOUT = 60


def make_secret(cluster: Cluster, ns: str, name: str, data: dict[str, str]) -> None:
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )


def make_link(cluster: Cluster, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DataLink", "metadata": {"name": name}, "spec": spec}
    created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    return created


def get_link(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return found


def ready(link: dict[str, Any]) -> dict[str, Any]:
    for cond in (link.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return {}


def wait_ready(
    cluster: Cluster, ns: str, name: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    """Wait until Ready has `status` (and `reason`) for the link's current generation."""

    def check() -> dict[str, Any] | None:
        link = get_link(cluster, ns, name)
        cond = ready(link)
        current = (link.get("status") or {}).get("observedGeneration") == link["metadata"]["generation"]
        if current and cond.get("status") == status and (reason is None or cond.get("reason") == reason):
            return link
        return None

    def last() -> str:
        return f"{ns}/{name} Ready={status} {reason or ''}: {json.dumps(get_link(cluster, ns, name).get('status'))}"

    result: dict[str, Any] = wait_for(check, timeout=TIMEOUT, interval=0.5, message=last)
    return result


def link_events(cluster: Cluster, ns: str, name: str) -> list[client.CoreV1Event]:
    items: list[client.CoreV1Event] = cluster.core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name},involvedObject.kind=DataLink"
    ).items
    return items


def admin_secret(s3: S3Server) -> dict[str, str]:
    return s3.admin.secret_data()


def assert_no_secrets(texts: list[str], *keys: Keys) -> None:
    for key in keys:
        for text in texts:
            assert key.secret_access_key not in text
            assert key.access_key_id not in text


@pytest.fixture
def ns_env(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> tuple[Cluster, str, OperatorProcess]:
    return cluster, namespace, operator


def test_ready_with_region_bucket_and_prefix(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, op = ns_env
    name = bucket("genomes", region="eu-west-2", objects={"hg38/chr1.fa": b">chr1\n"})
    make_secret(cluster, ns, "s3-creds", admin_secret(s3_server))
    make_link(
        cluster,
        ns,
        "genomes",
        {"uri": f"s3://{name}/hg38/", "endpointURL": s3_server.endpoint, "credentialsSecret": "s3-creds"},
    )
    link = wait_ready(cluster, ns, "genomes", "True", "BucketReachable")
    status = link["status"]
    assert (status["bucket"], status["prefix"], status["region"]) == (name, "hg38", "eu-west-2")
    cond = ready(link)
    assert cond["observedGeneration"] == link["metadata"]["generation"]
    assert cond["lastTransitionTime"] and status["lastCheckedAt"]
    events = wait_for(
        lambda: [e for e in link_events(cluster, ns, "genomes") if e.reason == "Ready"], timeout=30
    )
    assert events[0].type == "Normal"
    # The operator wrote no finalizer and no annotations on the link.
    assert not link["metadata"].get("finalizers")
    assert not [a for a in (link["metadata"].get("annotations") or {}) if "studios.dev" in a or "kopf" in a]
    texts = [
        json.dumps(status),
        *(e.message or "" for e in link_events(cluster, ns, "genomes")),
        op.log_text(),
    ]
    assert_no_secrets(texts, s3_server.admin)


def test_missing_bucket_then_created(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, _ = ns_env
    make_secret(cluster, ns, "s3-creds", admin_secret(s3_server))
    name = "later-" + bucket("probe")  # a name nobody created yet
    make_link(
        cluster,
        ns,
        "later",
        {"uri": f"s3://{name}", "endpointURL": s3_server.endpoint, "credentialsSecret": "s3-creds"},
    )
    link = wait_ready(cluster, ns, "later", "False", "NoSuchBucket")
    assert link["status"]["bucket"] == name and name in ready(link)["message"]
    first_transition = ready(link)["lastTransitionTime"]
    warnings = wait_for(lambda: [e for e in link_events(cluster, ns, "later") if e.reason == "NoSuchBucket"])
    assert warnings[0].type == "Warning"
    # The periodic re-check (~30 s while not Ready) notices the new bucket by itself.
    s3_server.create_bucket(name, region="eu-central-1")
    link = wait_ready(cluster, ns, "later", "True")
    assert link["status"]["region"] == "eu-central-1"
    assert ready(link)["lastTransitionTime"] >= first_transition


def test_wrong_and_denied_credentials(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, op = ns_env
    name = bucket("private")
    assert s3_server.no_access is not None
    bogus = Keys("AKIAUNKNOWN000000000", "bogus-secret-value-never-logged")
    wrong_secret = Keys(s3_server.admin.access_key_id, "wrong-secret-value-never-logged")
    make_secret(cluster, ns, "bogus", bogus.secret_data())
    make_secret(cluster, ns, "wrong", wrong_secret.secret_data())
    make_secret(cluster, ns, "denied", s3_server.no_access.secret_data())
    for link_name, secret in (("bogus", "bogus"), ("wrong", "wrong"), ("denied", "denied")):
        make_link(
            cluster,
            ns,
            link_name,
            {"uri": f"s3://{name}", "endpointURL": s3_server.endpoint, "credentialsSecret": secret},
        )
    bogus_link = wait_ready(cluster, ns, "bogus", "False", "InvalidCredentials")
    assert (
        "InvalidAccessKeyId" in ready(bogus_link)["message"] and f"{ns}/bogus" in ready(bogus_link)["message"]
    )
    wrong_link = wait_ready(cluster, ns, "wrong", "False", "InvalidCredentials")
    assert "SignatureDoesNotMatch" in ready(wrong_link)["message"]
    denied_link = wait_ready(cluster, ns, "denied", "False", "AccessDenied")
    assert "s3:ListBucket" in ready(denied_link)["message"]

    texts = [json.dumps(get_link(cluster, ns, n)) for n in ("bogus", "wrong", "denied")]
    texts += [e.message or "" for n in ("bogus", "wrong", "denied") for e in link_events(cluster, ns, n)]
    texts.append(op.log_text())
    for text in texts:
        assert bogus.secret_access_key not in text and wrong_secret.secret_access_key not in text
        assert s3_server.no_access.secret_access_key not in text
        assert s3_server.admin.secret_access_key not in text


def test_secret_missing_then_created(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, _ = ns_env
    name = bucket("later-secret")
    make_link(
        cluster,
        ns,
        "pending",
        {"uri": f"s3://{name}", "endpointURL": s3_server.endpoint, "credentialsSecret": "nope"},
    )
    link = wait_ready(cluster, ns, "pending", "False", "SecretNotFound")
    assert f"{ns}/nope" in ready(link)["message"]
    make_secret(cluster, ns, "incomplete", {"AWS_ACCESS_KEY_ID": "x"})
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "pending", {"spec": {"credentialsSecret": "incomplete"}}
    )
    link = wait_ready(cluster, ns, "pending", "False", "SecretInvalid")
    assert "AWS_SECRET_ACCESS_KEY" in ready(link)["message"]
    # Secrets are not watched: the recheck annotation asks for a check at once.
    make_secret(cluster, ns, "nope", admin_secret(s3_server))
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "pending", {"spec": {"credentialsSecret": "nope"}}
    )
    wait_ready(cluster, ns, "pending", "True")


def test_recheck_annotation(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, _ = ns_env
    name = bucket("rotating")
    make_secret(cluster, ns, "creds", admin_secret(s3_server))
    make_link(
        cluster,
        ns,
        "rot",
        {"uri": f"s3://{name}", "endpointURL": s3_server.endpoint, "credentialsSecret": "creds"},
    )
    wait_ready(cluster, ns, "rot", "True")
    cluster.core.patch_namespaced_secret(
        "creds", ns, {"stringData": {"AWS_SECRET_ACCESS_KEY": "rotated-away-value"}}
    )
    stamp = datetime.now(UTC).isoformat()
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "rot", {"metadata": {"annotations": {"studios.dev/recheck": stamp}}}
    )
    wait_for(
        lambda: ready(get_link(cluster, ns, "rot")).get("reason") == "InvalidCredentials",
        timeout=20,
        message="the recheck annotation to trigger a check",
    )


def test_endpoint_unreachable(ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server) -> None:
    cluster, ns, _ = ns_env
    make_secret(cluster, ns, "s3-creds", admin_secret(s3_server))
    make_link(
        cluster,
        ns,
        "nowhere",
        {
            "uri": "s3://any-bucket",
            "endpointURL": f"http://127.0.0.1:{closed_port()}",
            "credentialsSecret": "s3-creds",
        },
    )
    link = wait_ready(cluster, ns, "nowhere", "False", "EndpointUnreachable")
    assert "spec.endpointURL" in ready(link)["message"]


def test_uri_change_is_checked_at_once(
    ns_env: tuple[Cluster, str, OperatorProcess], s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    cluster, ns, _ = ns_env
    first, second = bucket("first"), bucket("second", region="ap-south-1")
    make_secret(cluster, ns, "s3-creds", admin_secret(s3_server))
    make_link(
        cluster,
        ns,
        "moving",
        {"uri": f"s3://{first}", "endpointURL": s3_server.endpoint, "credentialsSecret": "s3-creds"},
    )
    wait_ready(cluster, ns, "moving", "True")
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "moving", {"spec": {"uri": f"s3://{second}/runs"}}
    )
    link = wait_ready(cluster, ns, "moving", "True")
    assert (link["status"]["bucket"], link["status"]["prefix"], link["status"]["region"]) == (
        second,
        "runs",
        "ap-south-1",
    )


def test_invalid_uri_rejected_by_api_server(ns_env: tuple[Cluster, str, OperatorProcess]) -> None:
    cluster, ns, _ = ns_env
    for uri in ("https://bucket/x", "s3://Bad_Bucket", "s3://ab"):
        with pytest.raises(ApiException) as err:
            make_link(cluster, ns, "bad", {"uri": uri})
        assert err.value.status == 422
