"""The RBAC source of truth: workspace roles, the operator's role, the per-studio connect grant."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from studio_operator import rbac
from studio_operator.resources import names

GROUP = "studios.dev"


def grants(
    rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None
) -> bool:
    for r in rules:
        if group not in r["apiGroups"] or resource not in r["resources"] or verb not in r["verbs"]:
            continue
        if "resourceNames" in r and name not in r["resourceNames"]:
            continue
        return True
    return False


def role(name: str) -> dict[str, Any]:
    return next(r for r in rbac.user_cluster_roles() if r["metadata"]["name"] == name)


def test_five_labelled_cluster_roles_in_order() -> None:
    roles = rbac.user_cluster_roles()
    assert [r["metadata"]["name"] for r in roles] == [
        "studios-view",
        "studios-connect",
        "studios-launch",
        "studios-maintain",
        "studios-admin",
    ]
    for r in roles:
        assert r["kind"] == "ClusterRole"
        assert r["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert r["metadata"]["labels"]["app.kubernetes.io/part-of"] == "studio-operator"
        assert "aggregationRule" not in r


@pytest.mark.parametrize("kind", ["studios", "computeenvironments", "datalinks", "workspacesettings"])
@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_everyone_reads(kind: str, verb: str) -> None:
    for r in rbac.user_cluster_roles():
        assert grants(r["rules"], GROUP, kind, verb), (r["metadata"]["name"], kind, verb)
    assert grants(role("studios-view")["rules"], GROUP, "studios/status", "get")


def test_connect_is_view() -> None:
    assert role("studios-connect")["rules"] == role("studios-view")["rules"]


@pytest.mark.parametrize(
    ("verb", "lowest"),
    [
        ("update", "studios-launch"),
        ("patch", "studios-launch"),
        ("create", "studios-maintain"),
        ("delete", "studios-maintain"),
        ("deletecollection", "studios-maintain"),
        ("configure", "studios-maintain"),
    ],
)
def test_studio_verbs_start_at(verb: str, lowest: str) -> None:
    start = rbac.USER_ROLES.index(lowest)
    for i, name in enumerate(rbac.USER_ROLES):
        assert grants(role(name)["rules"], GROUP, "studios", verb) == (i >= start), (name, verb)


@pytest.mark.parametrize("kind", ["computeenvironments", "datalinks", "workspacesettings"])
@pytest.mark.parametrize("verb", ["create", "update", "patch", "delete"])
def test_only_admin_writes_workspace_kinds(kind: str, verb: str) -> None:
    for name in rbac.USER_ROLES:
        assert grants(role(name)["rules"], GROUP, kind, verb) == (name == "studios-admin")


def test_each_role_includes_the_previous() -> None:
    roles = [role(n)["rules"] for n in rbac.USER_ROLES]
    for lower, higher in itertools.pairwise(roles):
        for r in lower:
            assert r in higher


def test_no_user_role_reaches_pods_or_secrets() -> None:
    for r in rbac.user_cluster_roles():
        for rule in r["rules"]:
            assert rule["apiGroups"] == [GROUP], rule  # nothing in core: no pods, exec, proxy, secrets
            assert not set(rule["resources"]) & rbac.NEVER_GRANTED
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_operator_role_is_least_privilege() -> None:
    op = rbac.operator_cluster_role()
    assert op["metadata"]["name"] == "studio-operator"
    for rule in op["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
    rules = op["rules"]
    # what it grants per studio, it must hold (Kubernetes' escalation check)
    for verb in ("create", "get"):
        assert grants(rules, "", "pods/portforward", verb)
        assert grants(rules, "", "services/proxy", verb)
    assert grants(rules, "", "pods", "get") and grants(rules, "", "services", "get")
    assert grants(rules, "authorization.k8s.io", "subjectaccessreviews", "create")
    assert grants(rules, "rbac.authorization.k8s.io", "rolebindings", "watch")
    assert grants(rules, "rbac.authorization.k8s.io", "clusterrolebindings", "watch")
    assert not grants(rules, "rbac.authorization.k8s.io", "clusterrolebindings", "create")
    assert not grants(rules, "", "secrets", "list")  # one named secret at a time
    assert not grants(rules, "", "pods/exec", "create")
    # the spec is the user's: the operator patches studios (finalizer, annotations) but never creates them
    assert not grants(rules, GROUP, "studios", "create")
    assert not grants(rules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "create")


def test_connect_role_covers_the_grant() -> None:
    """Every rule of a per-studio Role is held by the operator (else the API server refuses it)."""
    role_ = rbac.connect_role("s", "ns", "s-abcde", "s", {}, {}, ports=[8888, "http"])
    op = rbac.operator_cluster_role()["rules"]
    for rule in role_["rules"]:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                assert grants(op, rule["apiGroups"][0], resource, verb)


def test_webhooks_role_is_separate_and_named() -> None:
    hooks = rbac.operator_webhooks_cluster_role()
    assert hooks["metadata"]["name"] == "studio-operator-webhooks"
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        assert grants(hooks["rules"], "admissionregistration.k8s.io", kind, "patch", "studios.dev")
        assert not grants(hooks["rules"], "admissionregistration.k8s.io", kind, "patch", "someone-elses")
        assert not grants(hooks["rules"], "admissionregistration.k8s.io", kind, "delete", "studios.dev")


OWNER = {
    "apiVersion": "studios.dev/v1alpha1",
    "kind": "Studio",
    "name": "rna",
    "uid": "u-1",
    "controller": True,
}
LABELS = {"app.kubernetes.io/managed-by": "studio-operator", "studios.dev/studio": "rna"}


def test_connect_role_is_exactly_one_pod_and_service() -> None:
    r = rbac.connect_role("rna", "team-a", "rna-7f3k2", "rna", LABELS, OWNER, ports=[8888, "http"])
    assert r["kind"] == "Role"
    assert r["metadata"]["name"] == names.connect_role_name("rna")
    assert r["metadata"]["namespace"] == "team-a"
    assert r["metadata"]["labels"] == LABELS
    assert r["metadata"]["ownerReferences"] == [OWNER]
    rules = r["rules"]
    for rule in rules:
        assert rule["apiGroups"] == [""] and rule["resourceNames"], rule
    assert grants(rules, "", "pods/portforward", "create", "rna-7f3k2")
    assert grants(rules, "", "pods/portforward", "get", "rna-7f3k2")
    assert grants(rules, "", "pods", "get", "rna-7f3k2")
    assert not grants(rules, "", "pods/portforward", "create", "other-pod")
    assert not grants(rules, "", "pods", "list", "rna-7f3k2")
    for proxied in ("rna", "rna:8888", "rna:http", "http:rna:", "http:rna:8888"):
        assert grants(rules, "", "services/proxy", "get", proxied), proxied
        assert grants(rules, "", "services/proxy", "create", proxied), proxied
    assert not grants(rules, "", "services/proxy", "get", "other")
    assert not grants(rules, "", "pods/exec", "create", "rna-7f3k2")


def test_connect_binding() -> None:
    subjects = [rbac.user_subject("alice")]
    b = rbac.connect_binding("rna", "team-a", LABELS, OWNER, subjects)
    assert b is not None
    assert b["kind"] == "RoleBinding"
    assert b["metadata"]["name"] == names.connect_role_name("rna")
    assert b["metadata"]["ownerReferences"] == [OWNER]
    assert b["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": names.connect_role_name("rna"),
    }
    assert b["subjects"] == subjects


def test_no_subjects_no_binding() -> None:
    assert rbac.connect_binding("rna", "team-a", LABELS, OWNER, []) is None


# ---------------------------------------------------------------- connect_subjects


def rb(
    role_name: str, *subjects: dict[str, Any], ns: str = "team-a", kind: str = "ClusterRole"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{role_name}-binding", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
        "subjects": list(subjects),
    }


def crb(role_name: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    b = rb(role_name, *subjects)
    del b["metadata"]["namespace"]
    return b


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(name: str, ns: str | None = None) -> dict[str, Any]:
    out = {"kind": "ServiceAccount", "name": name}
    if ns is not None:
        out["namespace"] = ns
    return out


WORKSPACE = [
    rb("studios-maintain", user("alice")),
    rb("studios-launch", user("bob")),
    rb("studios-connect", user("carol")),
    rb("studios-view", user("dave")),
    rb("studios-admin", user("erin")),
]


def subjects(**kw: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "private": False,
        "creator": "alice",
        "rolebindings": WORKSPACE,
        "clusterrolebindings": [],
    }
    args.update(kw)
    return rbac.connect_subjects("team-a", **args)


def test_private_is_the_creator_only() -> None:
    assert subjects(private=True) == [user("alice")]


def test_private_without_creator_is_nobody() -> None:
    assert subjects(private=True, creator=None) == []
    assert subjects(private=True, creator="") == []


def test_public_is_connect_and_above() -> None:
    assert subjects() == [user("alice"), user("bob"), user("carol"), user("erin")]


@pytest.mark.parametrize(
    "role_name", ["studios-connect", "studios-launch", "studios-maintain", "studios-admin"]
)
def test_each_role_from_connect_up_grants(role_name: str) -> None:
    assert subjects(rolebindings=[rb(role_name, user("x"))]) == [user("x")]


@pytest.mark.parametrize("role_name", ["studios-view", "admin", "edit", "view", "cluster-admin"])
def test_other_roles_do_not(role_name: str) -> None:
    assert subjects(rolebindings=[rb(role_name, user("x"))]) == []


def test_a_namespaced_role_of_the_same_name_does_not_count() -> None:
    assert subjects(rolebindings=[rb("studios-connect", user("x"), kind="Role")]) == []


def test_bindings_in_other_namespaces_do_not_count() -> None:
    assert subjects(rolebindings=[rb("studios-admin", user("x"), ns="team-b")]) == []


def test_cluster_bindings_count() -> None:
    got = subjects(rolebindings=[], clusterrolebindings=[crb("studios-connect", group("data-science"))])
    assert got == [group("data-science")]
    assert subjects(rolebindings=[], clusterrolebindings=[crb("studios-view", user("x"))]) == []


def test_service_accounts_carry_a_namespace() -> None:
    got = subjects(
        rolebindings=[rb("studios-launch", sa("ci"), sa("bot", "tools"))],
        clusterrolebindings=[crb("studios-connect", sa("global", "ops"), sa("nowhere"))],
    )
    assert got == [sa("global", "ops"), sa("ci", "team-a"), sa("bot", "tools")]  # by namespace, name


def test_duplicates_and_order() -> None:
    bindings = [
        rb("studios-admin", user("zed"), group("g"), user("amy")),
        rb("studios-connect", user("amy"), {"kind": "User", "name": "zed"}),  # apiGroup omitted
        rb("studios-launch", sa("ci"), group("g")),
    ]
    got = subjects(rolebindings=bindings, clusterrolebindings=[crb("studios-admin", user("amy"))])
    assert got == [user("amy"), user("zed"), group("g"), sa("ci", "team-a")]
    # the same input in another order gives the same list (a stable RoleBinding, no needless writes)
    assert subjects(rolebindings=list(reversed(bindings)), clusterrolebindings=[]) == got


def test_bindings_without_subjects_or_odd_kinds() -> None:
    odd = rb("studios-connect", {"kind": "Robot", "name": "r2"}, {"kind": "User"})
    odd2 = rb("studios-connect")
    odd2["subjects"] = None
    assert subjects(rolebindings=[odd, odd2, {"metadata": {"namespace": "team-a"}}]) == []


# ---------------------------------------------------------------- manifests


def test_write_manifests(tmp_path: Any) -> None:
    import yaml

    written = rbac.write_manifests(tmp_path)
    assert sorted(p.name for p in written) == ["operator-role.yaml", "user-roles.yaml"]
    text = (tmp_path / "user-roles.yaml").read_text()
    assert text.startswith("# Generated by")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs == rbac.user_cluster_roles()
    ops = [d for d in yaml.safe_load_all((tmp_path / "operator-role.yaml").read_text()) if d]
    assert ops == [rbac.operator_cluster_role(), rbac.operator_webhooks_cluster_role()]


def test_main_usage(tmp_path: Any) -> None:
    assert rbac.main([]) == 2
    assert rbac.main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "user-roles.yaml").exists()
