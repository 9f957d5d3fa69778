"""S3 trust (docs/storage.md, "Endpoint and bucket trust") against the real API server, operator
processes with their own S3 settings and real HTTP endpoints on loopback: a recording listener
that keeps every Authorization header it receives, and the authenticating moto server.

The operators here run with an ambient identity of their own (the moto server's admin keys in
AWS_* variables, as an operator with IRSA or static keys would) and with the real defaults, not the
permissive kube_helpers.TEST_S3_TRUST of the other tests.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for
from s3_server import Keys, S3Server, closed_port

pytest_plugins = ["conftest_s3"]  # the s3_server and bucket fixtures

TIMEOUT = 90
TENANT = Keys("AKIATENANTKEY0000001", "tenant-secret-value")
OPERATOR_SESSION_TOKEN = "operator-session-token-never-sent-to-tenants"


# ---------------------------------------------------------------------------------- listeners


@dataclass
class Recorder:
    """An HTTP server on loopback that answers 200 to everything (an S3 endpoint that has every
    bucket) and records each request's Authorization and security-token headers."""

    server: http.server.ThreadingHTTPServer
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> str:
        return json.dumps(self.requests)


@contextlib.contextmanager
def recorder() -> Iterator[Recorder]:
    requests: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization", ""),
                    "token": self.headers.get("X-Amz-Security-Token", ""),
                }
            )
            self.send_response(200)
            self.send_header("x-amz-bucket-region", "eu-west-1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET = do_PUT = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(server, requests)
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------- helpers


def operator_identity(s3: S3Server, session_token: bool = False) -> dict[str, str]:
    """The operator's own (ambient) identity: keys that really work on the moto server (which
    refuses any session token, so the token only goes with recording endpoints)."""
    env = {
        **s3.admin.env(),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    if session_token:
        env["AWS_SESSION_TOKEN"] = OPERATOR_SESSION_TOKEN
    return env


def secret(cluster: Cluster, ns: str, name: str, keys: Keys) -> None:
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=keys.secret_data())
    )


def link(cluster: Cluster, ns: str, name: str, uri: str, endpoint: str | None, creds: str | None) -> None:
    spec: dict[str, Any] = {"uri": uri}
    if endpoint:
        spec["endpointURL"] = endpoint
    if creds:
        spec["credentialsSecret"] = creds
    sh.create(cluster, ns, sh.obj("DataLink", name, spec))


def ready(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return sh.condition(sh.get(cluster, ns, name, kind="DataLink"), "Ready") or {}


def wait_link(cluster: Cluster, ns: str, name: str, status: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = sh.get(cluster, ns, name, kind="DataLink")
        cond = sh.condition(body, "Ready") or {}
        current = sh.status(body).get("observedGeneration") == body["metadata"]["generation"]
        return cond if current and (cond.get("status"), cond.get("reason")) == (status, reason) else None

    result: dict[str, Any] = wait_for(
        check,
        timeout=TIMEOUT,
        interval=0.5,
        message=lambda: f"DataLink {ns}/{name} Ready={status} {reason}; now {ready(cluster, ns, name)}",
    )
    return result


def link_events(cluster: Cluster, ns: str, name: str) -> list[client.CoreV1Event]:
    items: list[client.CoreV1Event] = cluster.core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name},involvedObject.kind=DataLink"
    ).items
    return items


@pytest.fixture
def other_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-b"
    cluster.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"studio-test": "true"}))
    )
    yield name
    with contextlib.suppress(ApiException):
        cluster.core.delete_namespace(name, propagation_policy="Background")


# ------------------------------------------------------------------------------------ tests


def test_operator_key_never_reaches_a_tenant_endpoint(
    cluster: Cluster,
    namespace: str,
    s3_server: S3Server,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Finding: a link's endpointURL got the operator's access key id and session token."""
    ns = namespace
    with recorder() as tenant_endpoint, recorder() as admin_endpoint:
        op = operator_factory(
            env=operator_identity(s3_server, session_token=True),
            s3_args=[
                f"--s3-allowed-endpoint={admin_endpoint.endpoint}",  # the administrator's endpoint
                "--s3-allowed-network=127.0.0.0/8",  # tenant endpoints may be on loopback here
                "--s3-shared-buckets=*=*",  # every bucket: the endpoint alone must stop the key
            ],
        )
        secret(cluster, ns, "tenant-keys", TENANT)
        localhost = tenant_endpoint.endpoint.replace("127.0.0.1", "localhost")
        link(cluster, ns, "no-creds", "s3://anything", tenant_endpoint.endpoint, None)
        link(cluster, ns, "no-creds-by-name", "s3://anything", localhost, None)
        link(cluster, ns, "own-keys", "s3://anything", tenant_endpoint.endpoint, "tenant-keys")
        link(cluster, ns, "admin-endpoint", "s3://anything", admin_endpoint.endpoint, None)

        for name in ("no-creds", "no-creds-by-name"):
            cond = wait_link(cluster, ns, name, "False", "CredentialsRequired")
            assert "spec.credentialsSecret" in cond["message"]
        # The tenant's own keys go to the tenant's endpoint (which says yes to everything) ...
        wait_link(cluster, ns, "own-keys", "True", "BucketReachable")
        # ... and the operator's identity only to the endpoint the administrator allowed, where
        # the same recording shows it (so its absence below means something).
        wait_link(cluster, ns, "admin-endpoint", "True", "BucketReachable")
        assert admin_endpoint.requests
        assert all(s3_server.admin.access_key_id in r["authorization"] for r in admin_endpoint.requests)
        assert all(r["token"] == OPERATOR_SESSION_TOKEN for r in admin_endpoint.requests)

        assert tenant_endpoint.requests
        assert all(TENANT.access_key_id in r["authorization"] for r in tenant_endpoint.requests)
        assert all(r["token"] == "" for r in tenant_endpoint.requests)
        seen = tenant_endpoint.seen()
        assert s3_server.admin.access_key_id not in seen and OPERATOR_SESSION_TOKEN not in seen
        assert s3_server.admin.access_key_id not in op.log_text()


def test_loopback_link_local_and_private_endpoints_refused(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """The defaults: tenant endpoints only on global addresses, whatever the credentials."""
    ns = namespace
    with recorder() as listener:
        operator_factory(s3_args=[])
        secret(cluster, ns, "tenant-keys", TENANT)
        cases = {
            "loopback": (listener.endpoint, "loopback"),
            "loopback-by-name": (listener.endpoint.replace("127.0.0.1", "localhost"), "loopback"),
            "loopback-v6": (f"http://[::1]:{listener.port}", "loopback"),
            "metadata": ("http://169.254.169.254", "link-local"),
            "service-cidr": ("https://10.96.0.1", "private"),
            "mapped": (f"http://[::ffff:127.0.0.1]:{listener.port}", "loopback"),
        }
        for name, (endpoint, _) in cases.items():
            link(cluster, ns, name, "s3://anything", endpoint, "tenant-keys")
        for name, (_, why) in cases.items():
            cond = wait_link(cluster, ns, name, "False", "EndpointNotAllowed")
            assert why in cond["message"], cond
        # No shared bucket by default: a link without credentials is refused before any request.
        link(cluster, ns, "aws-no-creds", "s3://someone-elses-bucket", None, None)
        cond = wait_link(cluster, ns, "aws-no-creds", "False", "BucketNotAllowed")
        assert ns in cond["message"] and "credentialsSecret" in cond["message"]
        assert listener.requests == []


def test_unreachable_endpoints_read_alike(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """Refused, silent, not TLS, unresolvable: one reason, one message (no port scanner)."""
    ns = namespace
    with recorder() as plain_http, silent_port() as silent:
        operator_factory(s3_args=["--s3-allowed-network=127.0.0.0/8"])
        secret(cluster, ns, "tenant-keys", TENANT)
        cases = {
            "refused": f"http://127.0.0.1:{closed_port()}",
            "silent": f"http://127.0.0.1:{silent}",
            "not-tls": f"https://127.0.0.1:{plain_http.port}",
            "unresolvable": "http://no-such-host.invalid:9000",
        }
        for name, endpoint in cases.items():
            link(cluster, ns, name, "s3://anything", endpoint, "tenant-keys")
        messages = {}
        for name, endpoint in cases.items():
            cond = wait_link(cluster, ns, name, "False", "EndpointUnreachable")
            messages[name] = cond["message"].replace(endpoint, "<endpoint>")
        assert len(set(messages.values())) == 1, messages
        for name in cases:
            events = wait_for(lambda n=name: link_events(cluster, ns, n), timeout=30)
            assert {e.reason for e in events} == {"EndpointUnreachable"}, [e.message for e in events]


def test_shared_buckets_are_bound_to_namespaces(
    cluster: Cluster,
    namespace: str,
    other_namespace: str,
    s3_server: S3Server,
    bucket: Callable[..., str],
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Finding: a link without credentials in namespace B mounted namespace A's bucket through the
    shared identity. Now only buckets an administrator bound to B are reachable from B."""
    team_a, team_b = namespace, other_namespace
    data_a = bucket("team-a-data")
    operator_factory(
        env=operator_identity(s3_server),
        s3_args=[
            f"--s3-allowed-endpoint={s3_server.endpoint}",
            f"--s3-shared-buckets={team_a}=team-a-data-*",
        ],
    )
    for ns in (team_a, team_b):
        link(cluster, ns, "data", f"s3://{data_a}", s3_server.endpoint, None)
        sh.create_environment(cluster, ns, "env", {"allowedBuckets": [data_a]})
        sh.create_studio(cluster, ns, "st", mounts=[{"dataLink": "data"}])

    wait_link(cluster, team_a, "data", "True", "BucketReachable")
    cond = wait_link(cluster, team_b, "data", "False", "BucketNotAllowed")
    assert data_a in cond["message"] and team_b in cond["message"]

    running = sh.wait_phase(cluster, team_a, "st", "Running", timeout=TIMEOUT)
    assert sh.status(running)["mounts"][0]["access"] == "ReadWrite"
    sh.wait_studio(
        cluster, team_b, "st", sh.stalled_on("DataLinkNotReady", "BucketNotAllowed"), "Stalled", TIMEOUT
    )
    assert not sh.live_pods(cluster, team_b, "st")

    # B's own keys make the link Ready, but the default CSI driver would still mount with its
    # own (shared) identity: the studio stays Stalled and no PersistentVolume is made for B.
    secret(cluster, team_b, "own-keys", s3_server.admin)
    sh.patch(cluster, team_b, "data", {"spec": {"credentialsSecret": "own-keys"}}, kind="DataLink")
    wait_link(cluster, team_b, "data", "True", "BucketReachable")
    sh.wait_studio(
        cluster, team_b, "st", sh.stalled_on("BucketNotAllowed", data_a), "Stalled on the mount", TIMEOUT
    )
    assert not sh.live_pods(cluster, team_b, "st")
    pvs = cluster.core.list_persistent_volume(label_selector=f"studios.dev/namespace={team_b}").items
    assert pvs == []


def test_comma_prefix_and_endpoint_rejected_at_admission(cluster: Cluster, namespace: str) -> None:
    """A prefix `p,allow-root` would add a mount option (finding 9c): the API server refuses it."""
    for spec, field_name in (
        ({"uri": "s3://bucket/p,allow-root"}, "spec.uri"),
        ({"uri": "s3://bucket/p allow-root"}, "spec.uri"),
        ({"uri": "s3://bucket/p", "endpointURL": "http://h:9000,allow-root"}, "spec.endpointURL"),
        ({"uri": "s3://bucket/p", "endpointURL": "http://user@h:9000"}, "spec.endpointURL"),
    ):
        with pytest.raises(ApiException) as err:
            sh.create(cluster, namespace, sh.obj("DataLink", "bad", spec))
        assert err.value.status == 422 and field_name in str(err.value.body)
    # The characters S3 keys commonly use are still accepted.
    sh.create(
        cluster, namespace, sh.obj("DataLink", "fine", {"uri": "s3://bucket/runs/2024-01_v(2)/a=b+c@d"})
    )
