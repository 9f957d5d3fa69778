"""The operator writes only to objects it owns.

A hostile or careless tenant holds the names a studio would use (its Service, workspace claim,
connect Role and RoleBinding, session pod): the operator leaves those objects untouched, the
studio is Stalled with reason NameConflict naming the object (and an Event), and it starts by
itself once the conflict is gone. Objects the API server refuses (LimitRange, ResourceQuota, Pod
Security admission) become Stalled with the policy's reason and the server's message, never a
traceback in the operator's log; what pod and claim validation would refuse is denied at admission.
Studios are created by a studios-maintain user through impersonation, on the real API server, and
the operator runs with the chart's RBAC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from hostile_corpus import REFUSED
from kube_helpers import Cluster, OperatorProcess, wait_for
from studio_operator import rbac
from studio_operator.resources import names

MAINTAINER = "mallory-maintain"
CONFLICT_TIMEOUT = 45
RECOVERY_TIMEOUT = 90  # the conflicting object is not watched: the studio looks again every 30 s


@pytest.fixture
def operator(
    chart_identity: tuple[str, Path], operator_factory: Callable[..., OperatorProcess]
) -> OperatorProcess:
    """The operator with the chart's own RBAC (a token of its ServiceAccount, nothing else)."""
    _, kubeconfig = chart_identity
    return operator_factory("--webhook-mode=none", kubeconfig=kubeconfig)


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> Iterator[str]:
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    for body in rbac.user_cluster_roles():
        try:
            rbac_api.create_cluster_role(body)
        except ApiException as e:
            if e.status != 409:
                raise
            rbac_api.replace_cluster_role(body["metadata"]["name"], body)
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "maintainer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": rbac.MAINTAIN,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": MAINTAINER}],
        },
    )
    sh.create_environment(cluster, namespace, "env")
    yield namespace


@pytest.fixture
def as_maintainer(cluster: Cluster, as_user: Callable[..., client.ApiClient]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(as_user(MAINTAINER))


def create_as(api: client.CustomObjectsApi, ns: str, name: str, **spec: Any) -> None:
    api.create_namespaced_custom_object(sh.GROUP, sh.VERSION, ns, "studios", sh.studio_body(name, **spec))


def stalled_with(
    cluster: Cluster, ns: str, name: str, reason: str, timeout: float = CONFLICT_TIMEOUT
) -> dict[str, Any]:
    def ok(body: dict[str, Any]) -> bool:
        stalled = sh.condition(body, "Stalled") or {}
        return stalled.get("status") == "True" and stalled.get("reason") == reason

    return sh.wait_studio(cluster, ns, name, ok, f"Stalled {reason}", timeout)


def plain(cluster: Cluster, obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = cluster.api_client.sanitize_for_serialization(obj)
    return result


def victim_service(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "payments"}),
        spec=client.V1ServiceSpec(selector={"app": "payments"}, ports=[client.V1ServicePort(port=443)]),
    )
    return plain(cluster, cluster.core.create_namespaced_service(ns, body))


def assert_untouched(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")


def test_an_unrelated_service_is_never_adopted(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi, operator: OperatorProcess
) -> None:
    before = victim_service(cluster, ns, "payments")
    create_as(as_maintainer, ns, "payments")

    studio = stalled_with(cluster, ns, "payments", "NameConflict")
    message = sh.condition(studio, "Stalled")["message"]
    assert "Service 'payments'" in message and "does not belong to this studio" in message
    assert sh.status(studio)["phase"] == "Stopped"
    assert not sh.live_pods(cluster, ns, "payments")  # no half-created session
    sh.wait_event(cluster, ns, "payments", "NameConflict")
    after = plain(cluster, cluster.core.read_namespaced_service("payments", ns))
    assert_untouched(before, after)
    assert after["spec"]["selector"] == {"app": "payments"}
    # No connect grant on someone else's Service either.
    roles = client.RbacAuthorizationV1Api(cluster.api_client).list_namespaced_role(ns).items
    assert not [r for r in roles if r.metadata.name == names.connect_role_name("payments")]

    # Deleting the studio leaves the victim's Service alone.
    sh.delete(cluster, ns, "payments")
    wait_for(lambda: sh.gone(lambda: sh.get(cluster, ns, "payments")), timeout=30, message="studio gone")
    still = plain(cluster, cluster.core.read_namespaced_service("payments", ns))
    assert still["metadata"]["uid"] == before["metadata"]["uid"]
    assert "Traceback" not in operator.log_since_start()


def test_recovers_once_the_conflicting_object_is_gone(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi
) -> None:
    victim_service(cluster, ns, "nb")
    create_as(as_maintainer, ns, "nb")
    stalled_with(cluster, ns, "nb", "NameConflict")
    cluster.core.delete_namespaced_service("nb", ns)
    studio = sh.wait_phase(cluster, ns, "nb", "Running", timeout=RECOVERY_TIMEOUT)
    assert sh.condition(studio, "Stalled")["status"] == "False"
    svc = plain(cluster, cluster.core.read_namespaced_service("nb", ns))
    assert svc["metadata"]["ownerReferences"][0]["uid"] == studio["metadata"]["uid"]


def test_labels_alone_do_not_make_an_object_ours(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi
) -> None:
    """A Service that copies the operator's labels but has no owner reference to the studio."""
    body = client.V1Service(
        metadata=client.V1ObjectMeta(
            name="spoof", labels={sh.MANAGED_BY: "studio-operator", sh.STUDIO_LABEL: "spoof"}
        ),
        spec=client.V1ServiceSpec(selector={"app": "other"}, ports=[client.V1ServicePort(port=80)]),
    )
    before = plain(cluster, cluster.core.create_namespaced_service(ns, body))
    create_as(as_maintainer, ns, "spoof")
    stalled_with(cluster, ns, "spoof", "NameConflict")
    sh.set_state(cluster, ns, "spoof", "Stopped")  # a stop must not delete it either
    sh.wait_phase(cluster, ns, "spoof", "Stopped", stopReason="NeverStarted")
    assert_untouched(before, plain(cluster, cluster.core.read_namespaced_service("spoof", ns)))


def test_someone_elses_workspace_claim_is_never_mounted(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi
) -> None:
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=names.workspace_claim_name("lab")),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )
    before = plain(cluster, cluster.core.create_namespaced_persistent_volume_claim(ns, claim))
    create_as(as_maintainer, ns, "lab", workspaceVolume={"size": "1Gi"})
    studio = stalled_with(cluster, ns, "lab", "NameConflict")
    assert "PersistentVolumeClaim 'lab-workspace'" in sh.condition(studio, "Stalled")["message"]
    assert not sh.live_pods(cluster, ns, "lab")
    after = plain(
        cluster, cluster.core.read_namespaced_persistent_volume_claim(before["metadata"]["name"], ns)
    )
    assert_untouched(before, after)


@pytest.mark.parametrize("kind", ["Role", "RoleBinding"])
def test_an_unrelated_role_or_binding_is_never_rewritten(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi, kind: str
) -> None:
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    name = names.connect_role_name("nb")
    if kind == "Role":
        created = rbac_api.create_namespaced_role(
            ns,
            {
                "metadata": {"name": name},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            },
        )
        read: Callable[[], Any] = lambda: rbac_api.read_namespaced_role(name, ns)  # noqa: E731
    else:
        created = rbac_api.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "someone"}],
            },
        )
        read = lambda: rbac_api.read_namespaced_role_binding(name, ns)  # noqa: E731
    before = plain(cluster, created)
    create_as(as_maintainer, ns, "nb")
    studio = stalled_with(cluster, ns, "nb", "NameConflict")
    assert f"{kind} {name!r}" in sh.condition(studio, "Stalled")["message"]
    assert_untouched(before, plain(cluster, read()))
    sh.delete(cluster, ns, "nb")
    wait_for(lambda: sh.gone(lambda: sh.get(cluster, ns, "nb")), timeout=30, message="studio gone")
    assert plain(cluster, read())["metadata"]["uid"] == before["metadata"]["uid"]


# ---------------------------------------------------------------- refusals by the API server


def test_a_limit_range_refusal_is_a_condition_not_a_traceback(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi, operator: OperatorProcess
) -> None:
    cluster.core.create_namespaced_limit_range(
        ns,
        client.V1LimitRange(
            metadata=client.V1ObjectMeta(name="small"),
            spec=client.V1LimitRangeSpec(
                limits=[client.V1LimitRangeItem(type="Container", max={"cpu": "1"})]
            ),
        ),
    )
    create_as(as_maintainer, ns, "big", resources={"requests": {"cpu": "2"}, "limits": {"cpu": "2"}})
    studio = stalled_with(cluster, ns, "big", "PodRejected")
    message = sh.condition(studio, "Stalled")["message"]
    assert "maximum cpu usage per Container is 1" in message
    assert sh.status(studio)["phase"] == "Stopped"
    sh.wait_event(cluster, ns, "big", "PodRejected")
    assert not sh.pods(cluster, ns, "big")
    assert "Traceback" not in operator.log_since_start()
    # Fixed by the user: it starts.
    sh.patch(cluster, ns, "big", {"spec": {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}})
    sh.wait_phase(cluster, ns, "big", "Running", timeout=CONFLICT_TIMEOUT)


def test_a_quota_refusal_says_quota_exceeded(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi, operator: OperatorProcess
) -> None:
    cluster.core.create_namespaced_resource_quota(
        ns,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="q"), spec=client.V1ResourceQuotaSpec(hard={"pods": "0"})
        ),
    )
    wait_for(
        lambda: (
            (
                cluster.core.read_namespaced_resource_quota("q", ns).status or client.V1ResourceQuotaStatus()
            ).hard
        ),
        timeout=30,
        message="quota status",
    )
    create_as(as_maintainer, ns, "q1")
    studio = stalled_with(cluster, ns, "q1", "QuotaExceeded")
    assert "exceeded quota" in sh.condition(studio, "Stalled")["message"]
    assert "raise the quota" in sh.condition(studio, "Stalled")["message"]
    assert "Traceback" not in operator.log_since_start()


def test_a_pod_security_refusal_says_so(
    cluster: Cluster, ns: str, as_maintainer: client.CustomObjectsApi, operator: OperatorProcess
) -> None:
    cluster.core.patch_namespace(
        ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    sh.create_environment(cluster, ns, "root", {"securityProfile": "Baseline"})
    create_as(as_maintainer, ns, "rooty", environment="root")
    studio = stalled_with(cluster, ns, "rooty", "PodSecurityRejected")
    assert "violates PodSecurity" in sh.condition(studio, "Stalled")["message"]
    # The default profile passes the restricted level.
    create_as(as_maintainer, ns, "fine")
    sh.wait_phase(cluster, ns, "fine", "Running", timeout=CONFLICT_TIMEOUT)
    assert "Traceback" not in operator.log_since_start()


def test_what_pod_validation_would_refuse_is_denied_at_admission(
    cluster: Cluster,
    namespace: str,
    operator_session: OperatorProcess,
    as_user: Callable[..., client.ApiClient],
) -> None:
    """The corpus of specs the CRD schema accepts but pod or claim creation refuses (the webhook
    runs in the shared operator, which serves it locally)."""
    operator_session.start()
    ns = namespace
    as_maintainer = client.CustomObjectsApi(as_user("cluster-admin-like", groups=("system:masters",)))
    cases = {
        "env": {"env": [{"name": "A", "valueFrom": {}}]},
        "cpu": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
        "gpu": {"resources": {"limits": {"nvidia.com/gpu": "0.5"}}},
        "class": {"workspaceVolume": {"size": "1Gi", "storageClassName": "Bad Class"}},
        "size": {"workspaceVolume": {"size": "0"}},
    }
    for case, spec in cases.items():
        with pytest.raises(ApiException) as denied:
            create_as(as_maintainer, ns, f"bad-{case}", **spec)
        assert denied.value.status == 422, case
        assert "spec." in (denied.value.body or ""), (case, denied.value.body)


def test_the_hostile_corpus_stored_without_a_webhook_gives_conditions_not_tracebacks(
    cluster: Cluster, ns: str, operator: OperatorProcess
) -> None:
    """Objects stored while no webhook checked them (installed later, or failurePolicy Ignore):
    each studio says what is wrong with it, the operator logs no traceback."""
    stored: dict[str, str] = {}
    for i, (case, body, needle) in enumerate(REFUSED):
        name = f"h{i}"
        try:
            sh.create(cluster, ns, sh.studio_body(name, **body["spec"]))
        except ApiException as e:
            assert e.status == 422, (case, e.body)  # the CRD schema already refuses it
            continue
        stored[name] = needle
    assert len(stored) >= len(REFUSED) // 2  # most of the corpus passes the schema alone
    for name, needle in stored.items():
        studio = stalled_with(cluster, ns, name, "InvalidSpec")
        assert needle in sh.condition(studio, "Stalled")["message"], (name, sh.status(studio))
        assert sh.status(studio)["phase"] == "Stopped"
    assert not [p for p in cluster.core.list_namespaced_pod(ns).items]
    assert "Traceback" not in operator.log_since_start()
