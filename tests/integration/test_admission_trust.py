"""The operator is no confused deputy at admission (issue 14, findings 3, 4, 5, 8 and 9a).

Users act through impersonation, bound in the test namespace to the generated roles: alice
(studios-maintain), bob (launch), erin (admin); paula (admin) and maya (maintain) may also create
pods (a RoleBinding to a namespaced Role granting it), which is what the power fields need.
Every hostile request is refused with a message naming the field; every legitimate one passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_access import (
    CREATED_BY,
    GROUP,
    VERSION,
    apply_cluster_role,
    bind,
    custom,
    denied,
    get_studio,
    json_patch_studio,
    patch_studio,
    studio_body,
    webhooks_ready,
)

from kube_helpers import Cluster, OperatorProcess, wait_for
from studio_operator import rbac

AsUser = Callable[..., client.ApiClient]
USERS = {
    "alice": rbac.MAINTAIN,
    "bob": rbac.LAUNCH,
    "erin": rbac.ADMIN,
    "paula": rbac.ADMIN,
    "maya": rbac.MAINTAIN,
}
POD_CREATORS = ("paula", "maya")
KiB = 1024


def environment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComputeEnvironment",
        "metadata": {"name": name},
        "spec": {"region": "eu-west-1", **spec},
    }


def create(api: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return obj


def patch_env(api: client.ApiClient, namespace: str, name: str, patch: Any) -> Any:
    return custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "computeenvironments", name, patch
    )


def message(err: ApiException) -> str:
    """The reason a webhook (or the schema) gave, without the API server's prefix."""
    text: str = json.loads(err.body)["message"]
    return text.split("denied the request: ", 1)[-1]


def may_create_pods(cluster: Cluster, namespace: str, users: tuple[str, ...]) -> None:
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    rbac_api.create_namespaced_role(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-creator"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
        },
    )
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "pod-creators"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-creator"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users],
        },
    )


@pytest.fixture
def ws(cluster: Cluster, namespace: str, operator: OperatorProcess, as_user: AsUser) -> Iterator[str]:
    for body in rbac.user_cluster_roles():
        apply_cluster_role(cluster, body)
    for user, role in USERS.items():
        bind(cluster, namespace, user, role)
    may_create_pods(cluster, namespace, POD_CREATORS)
    webhooks_ready(cluster, as_user, namespace)
    create(as_user("erin"), namespace, "computeenvironments", environment("default-env"))
    yield namespace


# ---------------------------------------------------------------- finding 3: power fields


POWER_SPECS = {
    "spec.serviceAccountName": {"serviceAccountName": "default"},
    "spec.securityProfile": {"securityProfile": "Baseline"},
    "spec.storage.driver": {"storage": {"driver": "fuse"}},
    "spec.storage.fuseImage": {"storage": {"fuseImage": "ghcr.io/mallory/mounter:1"}},
    "spec.imagePullSecrets[0]": {"imagePullSecrets": [{"name": "registry"}]},
}


def test_power_fields_of_an_environment_need_create_pods(cluster: Cluster, ws: str, as_user: AsUser) -> None:
    erin, paula = as_user("erin"), as_user("paula")
    for i, (path, spec) in enumerate(POWER_SPECS.items()):
        err = denied(lambda s=spec, n=i: create(erin, ws, "computeenvironments", environment(f"e{n}", **s)))
        assert err.status == 403, err.body
        assert message(err).endswith(
            f'{path}: requires permission to create pods in namespace "{ws}" (user "erin" may not)'
        ), err.body
    # whoever may create pods may already run one with all of it
    everything = {k: v for spec in POWER_SPECS.values() for k, v in spec.items()}
    everything["storage"] = {"driver": "fuse", "fuseImage": "ghcr.io/acme/mounter:1"}
    create(paula, ws, "computeenvironments", environment("powerful", **everything))
    # an admin without that permission edits the rest of it, but not the power fields
    patch_env(erin, ws, "powerful", {"spec": {"region": "eu-central-1", "resourceLabels": {"team": "a"}}})
    err = denied(
        lambda: patch_env(erin, ws, "powerful", {"spec": {"storage": {"fuseImage": "ghcr.io/mallory/x:1"}}})
    )
    assert err.status == 403 and "spec.storage.fuseImage: requires permission to create pods" in message(err)
    err = denied(lambda: patch_env(erin, ws, "powerful", {"spec": {"serviceAccountName": "admin-sa"}}))
    assert "spec.serviceAccountName: requires permission to create pods" in message(err)
    env = custom(cluster.api_client).get_namespaced_custom_object(
        GROUP, VERSION, ws, "computeenvironments", "powerful"
    )
    assert env["spec"]["storage"]["fuseImage"] == "ghcr.io/acme/mounter:1"
    assert env["spec"]["serviceAccountName"] == "default"
    # and dropping power needs nothing
    patch_env(erin, ws, "powerful", {"spec": {"securityProfile": "Restricted", "serviceAccountName": None}})


# ---------------------------------------------------------------- finding 3: placement


def test_studio_placement_within_the_environment_or_create_pods(ws: str, as_user: AsUser) -> None:
    create(
        as_user("erin"),
        ws,
        "computeenvironments",
        environment(
            "gpu",
            nodeSelector={"pool": "cpu"},
            allowedNodeSelectors={"pool": ["gpu"]},
            allowedTolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
    )
    alice, maya = as_user("alice"), as_user("maya")

    def placed(name: str, **spec: Any) -> dict[str, Any]:
        body = studio_body(name)
        body["spec"].update(computeEnvironment="gpu", state="Stopped", **spec)
        return body

    allowed = placed(
        "on-gpu",
        nodeSelector={"pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}],
    )
    create(alice, ws, "studios", allowed)
    for i, (spec, path) in enumerate(
        (
            (
                {"nodeSelector": {"kubernetes.io/hostname": "control-plane-1"}},
                'spec.nodeSelector["kubernetes.io/hostname"]',
            ),
            ({"tolerations": [{"operator": "Exists"}]}, "spec.tolerations[0]"),
        )
    ):
        err = denied(lambda s=spec: create(alice, ws, "studios", placed("beyond", **s)))
        assert err.status == 403, err.body
        assert message(err).startswith(f"{path}: "), err.body
        assert f'requires permission to create pods in namespace "{ws}" (user "alice" may not)' in message(
            err
        )
        create(maya, ws, "studios", placed(f"maya-{i}", **spec))
    # an update is checked for what it adds: the allowed studio moved to a tolerate-everything spec
    err = denied(
        lambda: patch_studio(alice, ws, "on-gpu", {"spec": {"tolerations": [{"operator": "Exists"}]}})
    )
    assert "spec.tolerations[0]: not among the tolerations or allowedTolerations" in message(err), err.body
    # and a launcher still starts it (nothing about placement changes)
    patch_studio(as_user("bob"), ws, "on-gpu", {"spec": {"state": "Running"}})


# ---------------------------------------------------------------- finding 4: secrets by proxy


def test_every_new_secret_key_reference_must_be_readable(cluster: Cluster, ws: str, as_user: AsUser) -> None:
    cluster.core.create_namespaced_secret(
        ws, {"metadata": {"name": "db-creds"}, "stringData": {"username": "app", "password": "s3cret"}}
    )
    body = studio_body("db")
    body["spec"]["state"] = "Stopped"
    body["spec"]["env"] = [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}}}
    ]
    root = as_user("root", ("system:masters",))  # a cluster administrator (not the operator's identity)
    create(root, ws, "studios", body)  # by someone who may read it
    alice = as_user("alice")
    user_ref = {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "username"}}}
    for env, path in (
        # the same variable, another key
        (
            [{"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}],
            "spec.env[0].valueFrom.secretKeyRef.name",
        ),
        # a new variable reading another key of the secret already referenced
        (
            [
                user_ref,
                {"name": "DB_PW", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}},
            ],
            "spec.env[1].valueFrom.secretKeyRef.name",
        ),
    ):
        err = denied(lambda e=env: patch_studio(alice, ws, "db", {"spec": {"env": e}}))
        assert err.status == 403, err.body
        assert message(err).startswith(
            f'{path}: user "alice" cannot get secret "db-creds" (key "password") in namespace "{ws}"'
        ), err.body
    assert get_studio(cluster, ws, "db")["spec"]["env"] == [user_ref]
    # what alice may do: configure the rest, keep the reference she was given, drop it
    patch_studio(alice, ws, "db", {"spec": {"template": {"image": "ghcr.io/acme/jupyter:5"}}})
    patch_studio(alice, ws, "db", {"spec": {"env": [user_ref, {"name": "MODE", "value": "dev"}]}})
    # someone who may read the secret may choose another key
    patch_studio(
        root,
        ws,
        "db",
        {
            "spec": {
                "env": [
                    {
                        "name": "DB_USER",
                        "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
                    }
                ]
            }
        },
    )


# ---------------------------------------------------------------- finding 5: private


def test_only_the_creator_changes_private(cluster: Cluster, ws: str, as_user: AsUser) -> None:
    alice = as_user("alice")
    body = studio_body("mine", private=True)
    body["spec"]["state"] = "Stopped"
    create(alice, ws, "studios", body)
    assert get_studio(cluster, ws, "mine")["metadata"]["annotations"][CREATED_BY] == "alice"
    root = as_user("root", ("system:masters",))  # a cluster administrator
    for api, who in ((as_user("maya"), "maya"), (as_user("erin"), "erin"), (root, "root")):
        err = denied(lambda a=api: patch_studio(a, ws, "mine", {"spec": {"private": False}}))
        assert err.status == 403, err.body
        assert message(err).startswith('spec.private: only its creator "alice" may change it'), err.body
        assert f'(user "{who}" may not)' in message(err)
    assert get_studio(cluster, ws, "mine")["spec"]["private"] is True
    # admins keep start/stop; the creator changes it both ways
    patch_studio(as_user("erin"), ws, "mine", {"spec": {"state": "Running"}})
    patch_studio(alice, ws, "mine", {"spec": {"private": False}})
    patch_studio(alice, ws, "mine", {"spec": {"private": True}})


# ---------------------------------------------------------------- finding 9a: finalizers


def test_launchers_cannot_touch_finalizers(cluster: Cluster, ws: str, as_user: AsUser) -> None:
    create(as_user("alice"), ws, "studios", studio_body("fin"))
    keep = [{"op": "add", "path": "/metadata/finalizers", "value": ["example.com/keep"]}]
    json_patch_studio(cluster.api_client, ws, "fin", keep)
    bob = as_user("bob")
    for ops in (
        [{"op": "replace", "path": "/metadata/finalizers", "value": []}],
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/hold"}],
    ):
        err = denied(lambda o=ops: json_patch_studio(bob, ws, "fin", o))
        assert err.status == 403, err.body
        assert message(err).startswith("changing metadata.finalizers requires the studios-maintain role"), (
            err.body
        )
    assert get_studio(cluster, ws, "fin")["metadata"]["finalizers"] == ["example.com/keep"]
    # a launcher still starts and stops it
    patch_studio(bob, ws, "fin", {"spec": {"state": "Stopped"}})
    patch_studio(bob, ws, "fin", {"spec": {"state": "Running"}})
    # a maintainer may (e.g. to release a studio whose operator is gone)
    json_patch_studio(
        as_user("alice"), ws, "fin", [{"op": "replace", "path": "/metadata/finalizers", "value": []}]
    )
    assert not get_studio(cluster, ws, "fin")["metadata"].get("finalizers")
    # foreground deletion: the garbage collector removes its own finalizer once the pod is gone
    wait_for(
        lambda: (get_studio(cluster, ws, "fin").get("status") or {}).get("session"), 60, 0.3, "a session"
    )
    custom(as_user("erin")).delete_namespaced_custom_object(
        GROUP, VERSION, ws, "studios", "fin", propagation_policy="Foreground"
    )

    def gone() -> bool:
        try:
            get_studio(cluster, ws, "fin")
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 90, 0.5, "the studio to be deleted in the foreground")


# ---------------------------------------------------------------- finding 8: sizes


def test_oversized_fields_are_refused_by_the_schema(ws: str, as_user: AsUser) -> None:
    alice = as_user("alice")
    body = studio_body("huge")
    body["spec"]["template"]["command"] = ["bash", "-c", "x" * 600 * KiB]
    err = denied(lambda: create(alice, ws, "studios", body))
    assert err.status == 422 and "spec.template.command[2]" in message(err) and "Too long" in message(err), (
        err.body[:500]
    )
    # many items each within its own limit: the total is refused
    body["spec"]["template"]["command"] = ["x" * 30 * KiB] * 3
    err = denied(lambda: create(alice, ws, "studios", body))
    assert err.status == 422 and "command and args together have at most 65536 characters" in message(err), (
        err.body[:500]
    )
    body = studio_body("many-values")
    body["spec"]["env"] = [{"name": f"V{i}", "value": "x" * 30 * KiB} for i in range(5)]
    err = denied(lambda: create(alice, ws, "studios", body))
    assert "the values of all variables together have at most 131072 characters" in message(err), err.body[
        :500
    ]


def test_the_largest_studio_can_still_be_updated(cluster: Cluster, ws: str, as_user: AsUser) -> None:
    """Old + new object beyond aiohttp's default 1 MiB: every update used to fail with 413."""
    body = studio_body("large")
    spec = body["spec"]
    spec["state"] = "Stopped"
    spec["description"] = "d" * 4096
    spec["template"]["args"] = ["a" * 30 * KiB, "b" * 30 * KiB]
    spec["env"] = [{"name": f"{'N' * 200}{i:03d}", "value": "v" * 500} for i in range(256)]
    spec["removeResourceLabels"] = [f"example.com/{'k' * 50}{i:02d}" for i in range(64)]
    prefix = "a" * 60 + "." + "b" * 60 + ".example.com/"
    spec["resourceLabels"] = {f"{prefix}{'l' * 40}{i:02d}": "v" * 63 for i in range(64)}
    spec["nodeSelector"] = {f"{prefix}{'s' * 40}{i:02d}": "v" * 63 for i in range(64)}
    spec["tolerations"] = [
        {"key": f"{prefix}{'t' * 40}{i:02d}", "operator": "Equal", "value": "v" * 63, "effect": "NoSchedule"}
        for i in range(64)
    ]
    body["metadata"]["annotations"] = {f"example.com/note-{i}": "n" * 60 * KiB for i in range(4)}
    create(as_user("root", ("system:masters",)), ws, "studios", body)
    stored = get_studio(cluster, ws, "large")
    assert len(json.dumps(stored)) > 600 * KiB  # so that old + new exceed 1 MiB
    alice = as_user("alice")
    patch_studio(alice, ws, "large", {"metadata": {"labels": {"team": "rna"}}})
    patch_studio(as_user("bob"), ws, "large", {"spec": {"state": "Running"}})
    assert get_studio(cluster, ws, "large")["metadata"]["labels"] == {"team": "rna"}

    def session() -> Any:
        return (get_studio(cluster, ws, "large").get("status") or {}).get("session")

    wait_for(session, 60, 0.3, "the operator to start a session of the large studio")
