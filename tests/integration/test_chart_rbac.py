"""The chart's RBAC is enough: the operator runs with a token of the chart's ServiceAccount (bound
to the chart's ClusterRole, nothing else) and the core scenario works.

If this fails with a 403 in the operator log, the log line names the missing permission: fix it in
operator/studio_operator/rbac.py and run `make rbac`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from install_helpers import CHART, helm, kubectl
from kube_helpers import Cluster, OperatorProcess, token_kubeconfig, wait_for

# An RBAC denial, as the API server words it (not e.g. "namespace is being terminated").
FORBIDDEN = re.compile(r'forbidden: User "[^"]+" cannot [a-z]+ resource')


def test_operator_runs_with_the_chart_rbac(
    cluster: Cluster,
    namespace: str,
    chart_identity: tuple[str, Path],
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    sa, kubeconfig = chart_identity
    ns = namespace
    # the token really is the service account's, and it cannot do what the role does not grant
    with cluster.token_client(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
        assert review.status.user_info.username == f"system:serviceaccount:{ns}:{sa}"
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(api).list_namespaced_config_map(ns)
        assert denied.value.status == 403

    operator = operator_factory("--webhook-mode=none", kubeconfig=kubeconfig)

    # who may connect: bob, bound to studios-connect in this workspace
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    rbac_api.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="bob-connect"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="studios-connect"
            ),
            subjects=[client.RbacV1Subject(kind="User", name="bob", api_group="rbac.authorization.k8s.io")],
        ),
    )
    sh.create_environment(
        cluster, ns, "env", {"env": [{"name": "A", "value": "1"}], "resourceLabels": {"team": "t"}}
    )
    sh.create_studio(cluster, ns, "core", template={"image": sh.IMAGE, "port": 8888})
    body = sh.wait_phase(cluster, ns, "core", "Running", timeout=60)
    pod = body["status"]["session"]["podName"]
    core = cluster.core
    assert core.read_namespaced_pod(pod, ns).metadata.labels["team"] == "t"
    service = core.read_namespaced_service(body["status"]["connect"]["service"], ns)
    assert service.spec.ports[0].port == 8888
    role_name = "studio-connect-core"
    role = rbac_api.read_namespaced_role(role_name, ns)
    assert any(r.resource_names == [pod] and "pods/portforward" in r.resources for r in role.rules)
    binding = wait_for(
        lambda: rbac_api.read_namespaced_role_binding(role_name, ns), timeout=30, ignore=(ApiException,)
    )
    assert [(s.kind, s.name) for s in binding.subjects] == [("User", "bob")]

    # a workspace volume (a claim that stays Pending here: no storage provisioner)
    sh.create_studio(cluster, ns, "withvolume", workspaceVolume={"size": "1Gi"})
    wait_for(
        lambda: core.read_namespaced_persistent_volume_claim("withvolume-workspace", ns),
        timeout=30,
        ignore=(ApiException,),
        message="the workspace claim",
    )

    # stop deletes the pod; the studio's Service and grant stay with it; status and an Event say so
    sh.set_state(cluster, ns, "core", "Stopped")
    sh.wait_phase(cluster, ns, "core", "Stopped", stopReason="UserRequested", timeout=60)
    sh.wait_no_pods(cluster, ns, "core")
    sh.wait_event(cluster, ns, "core", "SessionStopped")
    assert core.read_namespaced_service("core", ns)
    assert rbac_api.read_namespaced_role(role_name, ns)
    # deleting the studio removes them (owner references, garbage collector)
    sh.delete(cluster, ns, "core")
    for gone in (
        lambda: core.read_namespaced_service("core", ns),
        lambda: rbac_api.read_namespaced_role(role_name, ns),
    ):
        wait_for(lambda gone=gone: sh.gone(gone), timeout=60, message="studio objects removed with it")

    log = operator.log_text()
    problems = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not problems, "the operator hit permission errors with the chart's RBAC:\n" + "\n".join(
        problems[:20]
    )
    assert operator.running


def test_operator_runs_with_namespaced_chart_rbac(
    cluster: Cluster,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    """`operator.watchNamespaces`: the operator's role bound only in the watched namespace (plus
    the cluster-scoped rules); `--namespace` makes it list and watch just there."""
    fullname = f"nsrbac-{secrets.token_hex(3)}"
    rendered = [
        d
        for d in yaml.safe_load_all(
            helm(
                cluster,
                "template",
                "nsrbac",
                str(CHART),
                "-n",
                namespace,
                "--set",
                f"fullnameOverride={fullname},rbac.userRoles=false,operator.watchNamespaces={{{namespace}}}",
                "--skip-tests",
            )
        )
        if d and d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding")
    ]
    assert {d["kind"] for d in rendered} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "RoleBinding",
    }
    kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=studio-tests",
        "-f",
        "-",
        input=yaml.safe_dump_all(rendered),
    )
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    try:
        token = kubectl(cluster, "create", "token", fullname, "-n", namespace, "--duration=2h").strip()
        kubeconfig = token_kubeconfig(cluster, token, tmp_path / "operator-kubeconfig")
        with cluster.token_client(token) as api:  # no cluster-wide access to studios
            with pytest.raises(ApiException) as denied:
                client.CustomObjectsApi(api).list_cluster_custom_object("studios.dev", "v1alpha1", "studios")
            assert denied.value.status == 403
        operator = operator_factory("--webhook-mode=none", "--namespace", namespace, kubeconfig=kubeconfig)
        sh.create_environment(cluster, namespace)
        sh.create_studio(cluster, namespace, "scoped")
        sh.wait_phase(cluster, namespace, "scoped", "Running", timeout=60)
        # a workspace claim (Pending here: no provisioner, so that studio stays Starting)
        sh.create_studio(cluster, namespace, "vol", workspaceVolume={"size": "1Gi"})
        wait_for(
            lambda: cluster.core.read_namespaced_persistent_volume_claim("vol-workspace", namespace),
            timeout=30,
            ignore=(ApiException,),
        )
        sh.set_state(cluster, namespace, "scoped", "Stopped")
        sh.wait_phase(cluster, namespace, "scoped", "Stopped", timeout=60)
        problems = [
            line
            for line in operator.log_text().splitlines()
            if FORBIDDEN.search(line) or "could not list" in line
        ]
        assert not problems, "namespaced RBAC was not enough:\n" + "\n".join(problems[:20])
    finally:
        for obj in rendered:
            if obj["kind"] == "ClusterRole":
                rbac_api.delete_cluster_role(obj["metadata"]["name"])
            elif obj["kind"] == "ClusterRoleBinding":
                rbac_api.delete_cluster_role_binding(obj["metadata"]["name"])
