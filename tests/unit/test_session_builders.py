"""The pure builders of a session's Pod, Service and workspace claim (resources/session.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from studio_operator.api.common import (
    API_VERSION,
    APPLIED_HASH,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    SESSION_HASH,
    STUDIO_LABEL,
)
from studio_operator.api.kinds import ComputeEnvironmentSpec, StudioSpec
from studio_operator.resources import names
from studio_operator.resources.context import SessionInputs, StudioRef
from studio_operator.resources.merge import merge_labels
from studio_operator.resources.mounts import MountPlan
from studio_operator.resources.session import (
    build_pod,
    build_service,
    build_workspace_claim,
    environment_hash,
    session_env,
)

UID = "0b8f7c5e-1111-2222-3333-444455556666"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def inputs(
    spec: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    name: str = "rnaseq",
    namespace: str = "team-a",
) -> SessionInputs:
    studio = StudioSpec.model_validate(
        {"computeEnvironment": "aws-eu", "template": {"image": "ghcr.io/acme/jupyter:4"}, **(spec or {})}
    )
    ce = ComputeEnvironmentSpec.model_validate(environment or {})
    labels = merge_labels(ce.resource_labels, studio.resource_labels, studio.remove_resource_labels, name)
    return SessionInputs(
        studio=StudioRef(name=name, namespace=namespace, uid=UID, generation=3),
        spec=studio,
        environment_name="aws-eu",
        environment=ce,
        labels=labels,
    )


def pod_of(spec: dict[str, Any] | None = None, environment: dict[str, Any] | None = None, **kw: Any) -> Any:
    return build_pod(inputs(spec, environment, **kw), MountPlan())


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def env_pairs(pod: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(e["name"], e.get("value", e.get("valueFrom"))) for e in container(pod)["env"]]


OWNER = {
    "apiVersion": API_VERSION,
    "kind": "Studio",
    "name": "rnaseq",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


# ---------------------------------------------------------------- pod


def test_pod_image_port_and_defaults() -> None:
    pod = pod_of()
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    c = container(pod)
    assert c["image"] == "ghcr.io/acme/jupyter:4"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert "command" not in c and "args" not in c and "resources" not in c
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    for absent in ("nodeSelector", "tolerations", "imagePullSecrets", "volumes", "initContainers"):
        assert absent not in spec


def test_pod_port_command_args() -> None:
    pod = pod_of({"template": {"image": "img:1", "port": 8888, "command": ["tini", "--"], "args": ["lab"]}})
    c = container(pod)
    assert c["image"] == "img:1"
    assert c["ports"][0]["containerPort"] == 8888
    assert c["command"] == ["tini", "--"]
    assert c["args"] == ["lab"]


def test_pod_env_merge_with_operator_variables() -> None:
    pod = pod_of(
        {"env": [{"name": "PIP_INDEX_URL", "value": "mirror"}, {"name": "LAB", "value": "yes"}]},
        {"env": [{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "PIP_INDEX_URL", "value": "pypi"}]},
    )
    assert env_pairs(pod) == [
        ("STUDIO_NAME", "rnaseq"),
        ("STUDIO_NAMESPACE", "team-a"),
        ("STUDIO_PORT", "8080"),
        ("STUDIO_DATA_DIR", "/workspace/data"),
        ("AWS_REGION", "eu-west-1"),
        ("PIP_INDEX_URL", "mirror"),
        ("LAB", "yes"),
    ]


def test_pod_env_value_from_is_passed_through() -> None:
    ref = {"secretKeyRef": {"name": "tok", "key": "token"}}
    pod = pod_of({"env": [{"name": "TOKEN", "valueFrom": ref}]})
    assert ("TOKEN", ref) in env_pairs(pod)


def test_pod_env_studio_may_override_a_documented_variable() -> None:
    pod = pod_of({"env": [{"name": "STUDIO_DATA_DIR", "value": "/data"}]})
    assert dict(env_pairs(pod))["STUDIO_DATA_DIR"] == "/data"
    assert [n for n, _ in env_pairs(pod)].count("STUDIO_DATA_DIR") == 1


def test_session_env_names_are_unique() -> None:
    i = inputs({"env": [{"name": "A", "value": "s"}]}, {"env": [{"name": "A", "value": "e"}]})
    names_ = [e.name for e in session_env(i)]
    assert len(names_) == len(set(names_))


def test_pod_labels_and_owner() -> None:
    pod = pod_of(
        {"resourceLabels": {"project": "rna"}, "removeResourceLabels": ["cost-center"]},
        {"resourceLabels": {"team": "genomics", "cost-center": "cc-42"}},
    )
    meta = pod["metadata"]
    assert meta["labels"] == {
        "team": "genomics",
        "project": "rna",
        MANAGED_BY_KEY: MANAGED_BY_VALUE,
        STUDIO_LABEL: "rnaseq",
    }
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [OWNER]
    assert meta["name"] == names.pod_name("rnaseq", UID)
    assert meta["annotations"][SESSION_HASH]


def test_pod_name_is_deterministic_and_tied_to_the_uid() -> None:
    assert pod_of()["metadata"]["name"] == pod_of()["metadata"]["name"]
    assert names.pod_name("rnaseq", UID) != names.pod_name("rnaseq", "another-uid")
    assert names.pod_name("rnaseq", UID).startswith("rnaseq-")


def test_pod_restricted_security_context_by_default() -> None:
    pod = pod_of()
    psc = pod["spec"]["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = container(pod)["securityContext"]
    assert csc["runAsNonRoot"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pod_baseline_profile_allows_root_images() -> None:
    pod = pod_of(environment={"securityProfile": "Baseline"})
    psc = pod["spec"]["securityContext"]
    csc = container(pod)["securityContext"]
    for sc in (psc, csc):
        assert "runAsNonRoot" not in sc and "runAsUser" not in sc
        assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}
    assert "capabilities" not in csc
    assert csc.get("privileged") is not True


def test_pod_resources_node_selector_tolerations_from_environment_with_overrides() -> None:
    pod = pod_of(
        {
            "resources": {"limits": {"nvidia.com/gpu": 1}},
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        {
            "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "4Gi"}},
            "nodeSelector": {"pool": "cpu", "zone": "a"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
        },
    )
    assert container(pod)["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu", "zone": "a"}
    assert pod["spec"]["tolerations"] == [
        {"key": "spot", "operator": "Exists"},
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_pod_image_pull_secrets_and_service_account() -> None:
    pod = pod_of(
        environment={"imagePullSecrets": [{"name": "ghcr"}, {"name": "quay"}], "serviceAccountName": "irsa"}
    )
    assert pod["spec"]["imagePullSecrets"] == [{"name": "ghcr"}, {"name": "quay"}]
    assert pod["spec"]["serviceAccountName"] == "irsa"
    assert "automountServiceAccountToken" not in pod["spec"]


def test_pod_without_service_account_gets_no_token() -> None:
    spec = pod_of()["spec"]
    assert "serviceAccountName" not in spec
    assert spec["automountServiceAccountToken"] is False


def test_pod_workspace_volume() -> None:
    pod = pod_of({"workspaceVolume": {"size": "5Gi"}})
    claim = names.workspace_claim_name("rnaseq")
    assert pod["spec"]["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}]
    assert container(pod)["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
    assert "volumeMounts" not in container(pod_of())


def test_pod_mount_plan_is_added() -> None:
    plan = MountPlan(
        volumes=[{"name": "data-x", "persistentVolumeClaim": {"claimName": "c", "readOnly": True}}],
        volume_mounts=[{"name": "data-x", "mountPath": "/workspace/data/x", "readOnly": True}],
    )
    pod = build_pod(inputs({"workspaceVolume": {}}), plan)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["workspace", "data-x"]
    assert [m["mountPath"] for m in container(pod)["volumeMounts"]] == ["/workspace", "/workspace/data/x"]


def test_environment_hash_changes_with_inherited_values_only() -> None:
    base = environment_hash(inputs(environment={"env": [{"name": "A", "value": "1"}]}))
    assert base == environment_hash(inputs(environment={"env": [{"name": "A", "value": "1"}]}))
    assert base == environment_hash(
        inputs({"env": [{"name": "B", "value": "x"}]}, {"env": [{"name": "A", "value": "1"}]})
    )
    assert base != environment_hash(inputs(environment={"env": [{"name": "A", "value": "2"}]}))
    assert base != environment_hash(
        inputs(environment={"env": [{"name": "A", "value": "1"}], "resourceLabels": {"t": "x"}})
    )


# ---------------------------------------------------------------- service


def test_service() -> None:
    i = inputs({"template": {"image": "img", "port": 8888}}, {"resourceLabels": {"team": "g"}})
    svc = build_service(i)
    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "rnaseq"
    assert svc["metadata"]["namespace"] == "team-a"
    assert svc["metadata"]["labels"] == {
        "team": "g",
        MANAGED_BY_KEY: MANAGED_BY_VALUE,
        STUDIO_LABEL: "rnaseq",
    }
    assert svc["metadata"]["ownerReferences"] == [OWNER]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8888, "targetPort": 8888, "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {MANAGED_BY_KEY: MANAGED_BY_VALUE, STUDIO_LABEL: "rnaseq"}
    # the selector matches the pod's labels
    pod_labels = build_pod(i, MountPlan())["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_service_applied_hash_is_stable_and_content_sensitive() -> None:
    a = build_service(inputs())["metadata"]["annotations"][APPLIED_HASH]
    assert a == build_service(inputs())["metadata"]["annotations"][APPLIED_HASH]
    b = build_service(inputs({"template": {"image": "img", "port": 9000}}))["metadata"]["annotations"]
    assert a != b[APPLIED_HASH]


# ---------------------------------------------------------------- workspace claim


def test_workspace_claim() -> None:
    assert build_workspace_claim(inputs()) is None
    claim = build_workspace_claim(
        inputs(
            {"workspaceVolume": {"size": "10Gi", "storageClassName": "standard"}},
            {"resourceLabels": {"t": "x"}},
        )
    )
    assert claim is not None
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["name"] == "rnaseq-workspace"
    assert claim["metadata"]["labels"]["t"] == "x"
    assert claim["metadata"]["labels"][STUDIO_LABEL] == "rnaseq"
    assert claim["metadata"]["ownerReferences"] == [OWNER]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "10Gi"}},
        "storageClassName": "standard",
    }


def test_workspace_claim_defaults() -> None:
    claim = build_workspace_claim(inputs({"workspaceVolume": {}}))
    assert claim is not None
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "studio",
    ["a", "rnaseq-analysis", "x" * 63, "a.b.c", "team.project-" + "y" * 40, "z" * 253],
)
def test_names_within_limits(studio: str) -> None:
    pod = names.pod_name(studio, UID)
    assert len(pod) <= 63 and DNS_SUBDOMAIN.match(pod), pod
    svc = names.service_name(studio)
    assert len(svc) <= 63 and DNS_LABEL.match(svc), svc
    for other in (
        names.workspace_claim_name(studio),
        names.data_claim_name(studio, "link"),
        names.data_volume_name("ns", studio, "link"),
        names.connect_role_name(studio),
    ):
        assert len(other) <= 253 and DNS_SUBDOMAIN.match(other), other


def test_long_names_stay_distinct() -> None:
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert names.pod_name(a, UID) != names.pod_name(b, UID)
    assert names.service_name(a) != names.service_name(b)
    assert names.service_name("a.b") != names.service_name("a-b")


def test_service_name_is_the_studio_name_when_it_fits() -> None:
    assert names.service_name("rnaseq-analysis") == "rnaseq-analysis"
    assert names.service_name("1st-studio").startswith("s-")


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


@pytest.mark.parametrize("studio", ["a", "team.project-x", "x" * 63])  # the CRD allows up to 63
def test_labels_are_valid_label_values_for_every_allowed_name(studio: str) -> None:
    i = inputs(name=studio)
    for obj in (build_pod(i, MountPlan()), build_service(i)):
        for value in obj["metadata"]["labels"].values():
            assert LABEL_VALUE.match(value), value
        assert obj["metadata"]["labels"][STUDIO_LABEL] == studio
