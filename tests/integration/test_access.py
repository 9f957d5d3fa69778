"""Collaboration and access on a real RBAC authorizer.

alice (studios-maintain), bob (launch), carol (connect), dave (view) and erin (admin) are bound in
the test namespace to the generated cluster roles and act through impersonation. The operator runs
as a real process with its webhooks served locally (`--webhook-mode=local`).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube_helpers import Cluster, OperatorProcess, kubectl_binary, wait_for
from studio_operator import rbac
from studio_operator.resources import names

GROUP, VERSION = "studios.dev", "v1alpha1"
CREATED_BY = "studios.dev/created-by"
ROLES = {
    "alice": rbac.MAINTAIN,
    "bob": rbac.LAUNCH,
    "carol": rbac.CONNECT,
    "dave": rbac.VIEW,
    "erin": rbac.ADMIN,
}
GRANT_TIMEOUT = 60
ENVIRONMENT = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ComputeEnvironment",
    "metadata": {"name": "default-env"},
    "spec": {"region": "eu-west-1"},
}

AsUser = Callable[..., client.ApiClient]


# ---------------------------------------------------------------- helpers


def apply_cluster_role(cluster: Cluster, body: dict[str, Any]) -> None:
    api = client.RbacAuthorizationV1Api(cluster.api_client)
    try:
        api.create_cluster_role(body)
    except ApiException as e:
        if e.status != 409:
            raise
        api.replace_cluster_role(body["metadata"]["name"], body)


def bind(cluster: Cluster, namespace: str, user: str, role: str) -> str:
    name = f"{user}-{role}"
    client.RbacAuthorizationV1Api(cluster.api_client).create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    return name


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def studio_body(name: str, *, private: bool = False, created_by: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if created_by is not None:
        meta["annotations"] = {CREATED_BY: created_by}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Studio",
        "metadata": meta,
        "spec": {
            "computeEnvironment": "default-env",
            "template": {"image": "ghcr.io/acme/jupyter:4", "port": 8888},
            "private": private,
            "state": "Running",
        },
    }


def get_studio(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = cluster.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "studios", name
    )
    return obj


def patch_studio(api: client.ApiClient, namespace: str, name: str, patch: Any) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "studios", name, patch
    )
    return obj


def json_patch_studio(api: client.ApiClient, namespace: str, name: str, ops: list[dict[str, Any]]) -> Any:
    return custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "studios", name, ops, _content_type="application/json-patch+json"
    )


def denied(call: Callable[[], Any]) -> ApiException:
    with pytest.raises(ApiException) as exc:
        call()
    return exc.value


def can_connect(cluster: Cluster, user: str, namespace: str, pod: str, groups: tuple[str, ...] = ()) -> bool:
    review = client.AuthorizationV1Api(cluster.api_client).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": [*groups, "system:authenticated"],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "create",
                    "resource": "pods",
                    "subresource": "portforward",
                    "name": pod,
                },
            },
        }
    )
    return bool(review.status.allowed)


def session_pod(cluster: Cluster, namespace: str, name: str) -> str:
    """The session's pod name, once the operator has granted connect on it."""

    def ready() -> str | None:
        body = get_studio(cluster, namespace, name)
        pod = ((body.get("status") or {}).get("session") or {}).get("podName")
        role = client.RbacAuthorizationV1Api(cluster.api_client).read_namespaced_role(
            names.connect_role_name(name), namespace
        )
        granted = {
            n for r in role.rules for n in (r.resource_names or []) if "pods/portforward" in r.resources
        }
        return pod if pod and pod in granted else None

    return wait_for(
        ready, GRANT_TIMEOUT, 0.3, f"the connect grant of {namespace}/{name}", ignore=(ApiException,)
    )


def expect_connect(
    cluster: Cluster,
    namespace: str,
    pod: str,
    expected: dict[str, bool],
    groups: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Wait until SubjectAccessReviews give exactly `expected` (grants follow changes asynchronously)."""
    groups = groups or {}

    def actual() -> dict[str, bool]:
        return {user: can_connect(cluster, user, namespace, pod, groups.get(user, ())) for user in expected}

    last: dict[str, bool] = {}

    def matches() -> bool:
        nonlocal last
        last = actual()
        return last == expected

    wait_for(matches, GRANT_TIMEOUT, 0.3, lambda: f"connect on {namespace}/{pod} to be {expected}, is {last}")


def webhooks_ready(cluster: Cluster, as_user: AsUser, namespace: str) -> None:
    """The managed webhook configuration reaches the API server shortly after the operator is live:
    a server-side dry-run create shows when the creator is stamped."""
    alice = as_user("alice")

    def stamped() -> bool:
        obj = custom(alice).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "studios", studio_body("probe", created_by="nobody"), dry_run="All"
        )
        return bool(obj["metadata"].get("annotations", {}).get(CREATED_BY) == "alice")

    wait_for(stamped, 60, 0.3, "the studio webhooks to be registered", ignore=(ApiException,))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster_roles(cluster: Cluster) -> None:
    for body in rbac.user_cluster_roles():
        apply_cluster_role(cluster, body)


@pytest.fixture
def workspace(
    cluster: Cluster, cluster_roles: None, namespace: str, operator: OperatorProcess, as_user: AsUser
) -> Iterator[str]:
    """A namespace with the five users bound, an environment (made by erin) and live webhooks."""
    for user, role in ROLES.items():
        bind(cluster, namespace, user, role)
    webhooks_ready(cluster, as_user, namespace)
    custom(as_user("erin")).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "computeenvironments", ENVIRONMENT
    )
    yield namespace


@pytest.fixture
def studios(workspace: str, as_user: AsUser) -> tuple[str, str]:
    """alice's public studio `pub` and private `priv` (the latter sent with a forged creator)."""
    alice = custom(as_user("alice"))
    alice.create_namespaced_custom_object(GROUP, VERSION, workspace, "studios", studio_body("pub"))
    alice.create_namespaced_custom_object(
        GROUP, VERSION, workspace, "studios", studio_body("priv", private=True, created_by="mallory")
    )
    return "pub", "priv"


# ---------------------------------------------------------------- tests


def test_roles_grant_no_namespace_wide_connect(cluster: Cluster, cluster_roles: None, namespace: str) -> None:
    for user, role in ROLES.items():
        bind(cluster, namespace, user, role)
    for user in ROLES:
        assert not can_connect(cluster, user, namespace, "any-pod")
        for sub in ("exec", "attach"):
            review = client.AuthorizationV1Api(cluster.api_client).create_subject_access_review(
                {
                    "spec": {
                        "user": user,
                        "resourceAttributes": {
                            "namespace": namespace,
                            "verb": "create",
                            "resource": "pods",
                            "subresource": sub,
                        },
                    }
                }
            )
            assert not review.status.allowed, (user, sub)


def test_creator_is_stamped_even_when_forged(
    cluster: Cluster, workspace: str, studios: tuple[str, str]
) -> None:
    for name in studios:
        assert get_studio(cluster, workspace, name)["metadata"]["annotations"][CREATED_BY] == "alice"


def test_connect_grants_public_and_private(
    cluster: Cluster, workspace: str, studios: tuple[str, str]
) -> None:
    pub, priv = studios
    pub_pod = session_pod(cluster, workspace, pub)
    expect_connect(
        cluster, workspace, pub_pod, {"alice": True, "bob": True, "carol": True, "erin": True, "dave": False}
    )
    priv_pod = session_pod(cluster, workspace, priv)
    expect_connect(
        cluster,
        workspace,
        priv_pod,
        {"alice": True, "bob": False, "carol": False, "erin": False, "dave": False},
    )
    # the grant is one pod: nobody reaches another pod through it
    assert not can_connect(cluster, "carol", workspace, "some-other-pod")
    if kubectl_binary() is not None:  # the check a user would run
        args = ("auth", "can-i", "create", f"pods/{pub_pod}", "--subresource=portforward", "-n", workspace)
        assert cluster.kubectl(*args, as_user="carol", check=False).stdout.strip() == "yes"
        assert cluster.kubectl(*args, as_user="dave", check=False).stdout.strip() == "no"


def test_launch_may_start_and_stop_but_not_configure(
    cluster: Cluster, workspace: str, studios: tuple[str, str], as_user: AsUser
) -> None:
    pub, _ = studios
    bob, dave = as_user("bob"), as_user("dave")
    assert patch_studio(bob, workspace, pub, {"spec": {"state": "Stopped"}})["spec"]["state"] == "Stopped"
    patch_studio(bob, workspace, pub, {"spec": {"state": "Running"}})
    patch_studio(
        bob, workspace, pub, {"metadata": {"annotations": {"studios.dev/restart": "2026-11-25T10:00:00Z"}}}
    )
    patch_studio(
        bob, workspace, pub, {"metadata": {"annotations": {"studios.dev/session-lifespan-hours": "12"}}}
    )

    err = denied(lambda: patch_studio(bob, workspace, pub, {"spec": {"template": {"image": "evil:1"}}}))
    assert err.status == 403, err
    assert "studios-maintain" in err.body and "spec.template" in err.body, err.body
    # a stop that smuggles a configuration change is refused as a whole
    err = denied(lambda: patch_studio(bob, workspace, pub, {"spec": {"state": "Stopped", "private": True}}))
    assert "spec.private" in err.body
    assert get_studio(cluster, workspace, pub)["spec"]["template"]["image"] == "ghcr.io/acme/jupyter:4"

    for patch in ({"spec": {"state": "Stopped"}}, {"spec": {"template": {"image": "evil:1"}}}):
        err = denied(lambda p=patch: patch_studio(dave, workspace, pub, p))
        assert err.status == 403

    # a bad session lifespan is refused with the field named
    err = denied(
        lambda: patch_studio(
            bob, workspace, pub, {"metadata": {"annotations": {"studios.dev/session-lifespan-hours": "500"}}}
        )
    )
    assert "studios.dev/session-lifespan-hours" in err.body and "1..120" in err.body, err.body

    # alice (maintain) may configure
    patch_studio(
        as_user("alice"), workspace, pub, {"spec": {"template": {"image": "ghcr.io/acme/jupyter:5"}}}
    )


def test_admin_stops_and_deletes_a_private_studio(
    cluster: Cluster, workspace: str, studios: tuple[str, str], as_user: AsUser
) -> None:
    _, priv = studios
    erin = as_user("erin")
    patch_studio(erin, workspace, priv, {"spec": {"state": "Stopped"}})
    custom(erin).delete_namespaced_custom_object(GROUP, VERSION, workspace, "studios", priv)

    def gone() -> bool:
        try:
            get_studio(cluster, workspace, priv)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 60, 0.3, "the private studio to be deleted")


def test_nobody_changes_created_by(
    cluster: Cluster, workspace: str, studios: tuple[str, str], as_user: AsUser
) -> None:
    pub, _ = studios
    remove = [{"op": "remove", "path": "/metadata/annotations/studios.dev~1created-by"}]
    for user in ("alice", "bob", "erin"):
        api = as_user(user)
        forged = {"metadata": {"annotations": {CREATED_BY: f"{user}-forged"}}}
        err = denied(lambda a=api, f=forged: patch_studio(a, workspace, pub, f))
        assert err.status in (400, 403, 422) and "created-by" in err.body, (user, err.body)
        # removing it is undone (a re-applied manifest without it must neither fail nor lose the creator)
        json_patch_studio(api, workspace, pub, remove)
        assert get_studio(cluster, workspace, pub)["metadata"]["annotations"][CREATED_BY] == "alice"
    dave = as_user("dave")
    err = denied(
        lambda: patch_studio(dave, workspace, pub, {"metadata": {"annotations": {CREATED_BY: "dave"}}})
    )
    assert err.status == 403


def test_grant_follows_private_and_bindings(
    cluster: Cluster, workspace: str, studios: tuple[str, str], as_user: AsUser
) -> None:
    pub, _ = studios
    alice = as_user("alice")
    pod = session_pod(cluster, workspace, pub)
    everyone = {"alice": True, "bob": True, "carol": True, "erin": True, "dave": False}
    expect_connect(cluster, workspace, pod, everyone)

    patch_studio(alice, workspace, pub, {"spec": {"private": True}})
    expect_connect(cluster, workspace, pod, {**{u: False for u in everyone}, "alice": True})
    patch_studio(alice, workspace, pub, {"spec": {"private": False}})
    expect_connect(cluster, workspace, pod, everyone)

    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    # a new binding in the namespace, and a removed one
    bind(cluster, workspace, "frank", rbac.CONNECT)
    rbac_api.delete_namespaced_role_binding(f"carol-{rbac.CONNECT}", workspace)
    expect_connect(cluster, workspace, pod, {**everyone, "carol": False, "frank": True})

    # a cluster-wide binding of a group
    group = f"studio-testers-{secrets.token_hex(3)}"
    crb = f"{group}-connect"
    rbac_api.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": crb},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac.CONNECT},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }
    )
    try:
        expect_connect(cluster, workspace, pod, {"gina": True, "hank": False}, groups={"gina": (group,)})
    finally:
        rbac_api.delete_cluster_role_binding(crb)
    expect_connect(cluster, workspace, pod, {"gina": False}, groups={"gina": (group,)})


def test_field_rules_name_the_field(workspace: str, as_user: AsUser) -> None:
    alice, erin = custom(as_user("alice")), custom(as_user("erin"))
    body = studio_body("labels")
    body["spec"]["removeResourceLabels"] = ["studios.dev/studio"]
    err = denied(lambda: alice.create_namespaced_custom_object(GROUP, VERSION, workspace, "studios", body))
    assert "removeResourceLabels" in err.body, err.body

    settings = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkspaceSettings",
        "metadata": {"name": "other"},
        "spec": {},
    }
    err = denied(
        lambda: erin.create_namespaced_custom_object(GROUP, VERSION, workspace, "workspacesettings", settings)
    )
    assert "metadata.name" in err.body and "default" in err.body

    # alice cannot read secrets, so she cannot have a studio read one for her
    body = studio_body("sneaky")
    body["spec"]["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    err = denied(lambda: alice.create_namespaced_custom_object(GROUP, VERSION, workspace, "studios", body))
    assert err.status == 403 and "spec.env[0].valueFrom.secretKeyRef.name" in err.body, err.body


# ---------------------------------------------------------------- the operator's own role


def operator_kubeconfig(cluster: Cluster, user: str, directory: Path) -> Path:
    """A kubeconfig for `user`, with a client certificate signed by the local cluster's CA."""
    import datetime as dt

    import yaml
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki = cluster.kubeconfig.parent / "pki"
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key: Any = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["users"]:
        entry["user"] = {
            "client-certificate-data": base64.b64encode(
                cert.public_bytes(serialization.Encoding.PEM)
            ).decode(),
            "client-key-data": base64.b64encode(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            ).decode(),
        }
    path = directory / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def least_privilege_operator(
    cluster: Cluster,
    cluster_roles: None,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Iterator[tuple[OperatorProcess, str]]:
    """The operator as its own user, holding only the generated operator ClusterRoles, watching
    only the test's namespace (other tests' objects are not its business)."""
    if not (cluster.local and (cluster.kubeconfig.parent / "pki" / "ca.key").exists()):
        pytest.skip("needs the local control plane's CA to issue the operator a client certificate")
    user = f"studio-operator-{secrets.token_hex(3)}"
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    made = []
    for role in (rbac.operator_cluster_role(), rbac.operator_webhooks_cluster_role()):
        apply_cluster_role(cluster, role)
        name = f"{user}-{role['metadata']['name']}"
        rbac_api.create_cluster_role_binding(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role["metadata"]["name"],
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            }
        )
        made.append(name)
    op = None
    try:
        op = operator_factory(
            "--namespace", namespace, kubeconfig=operator_kubeconfig(cluster, user, tmp_path)
        )
        yield op, user
    finally:
        if op is not None:
            op.stop()  # first: its clean exit removes its webhooks, which needs the role
        for name in made:
            rbac_api.delete_cluster_role_binding(name)


def test_operator_needs_only_its_generated_role(
    cluster: Cluster, namespace: str, least_privilege_operator: tuple[OperatorProcess, str], as_user: AsUser
) -> None:
    """With nothing but operator-role.yaml, the operator registers its webhooks, stamps creators,
    checks `configure` and grants connect (which needs what it grants: the escalation check)."""
    for user, role in ROLES.items():
        bind(cluster, namespace, user, role)
    webhooks_ready(cluster, as_user, namespace)
    custom(as_user("erin")).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "computeenvironments", ENVIRONMENT
    )
    custom(as_user("alice")).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "studios", studio_body("lp", private=True, created_by="mallory")
    )
    assert get_studio(cluster, namespace, "lp")["metadata"]["annotations"][CREATED_BY] == "alice"
    pod = session_pod(cluster, namespace, "lp")
    expect_connect(cluster, namespace, pod, {"alice": True, "erin": False})
    err = denied(
        lambda: patch_studio(as_user("bob"), namespace, "lp", {"spec": {"template": {"image": "x:1"}}})
    )
    assert err.status == 403 and "studios-maintain" in err.body
    patch_studio(as_user("bob"), namespace, "lp", {"spec": {"state": "Stopped"}})

    def stopped() -> bool:
        status = get_studio(cluster, namespace, "lp").get("status") or {}
        return status.get("phase") == "Stopped" and not cluster.core.list_namespaced_pod(namespace).items

    wait_for(stopped, 60, 0.3, "the session to end")

    def grant_removed() -> bool:
        try:
            client.RbacAuthorizationV1Api(cluster.api_client).read_namespaced_role(
                names.connect_role_name("lp"), namespace
            )
        except ApiException as e:
            return e.status == 404
        return False

    # The connect grant lives as long as the studio: kept while stopped, gone with the studio.
    assert not grant_removed()
    client.CustomObjectsApi(cluster.api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "studios", "lp"
    )
    wait_for(grant_removed, 60, 0.3, "the connect grant to go with the studio")
    op, user = least_privilege_operator
    rbac_denials = [line for line in op.log_text().splitlines() if f'User "{user}" cannot' in line]
    assert not rbac_denials, "\n".join(rbac_denials[:20])
