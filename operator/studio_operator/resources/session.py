"""Pure builders of a session's Pod, Service and workspace claim from (studio, environment)."""

from __future__ import annotations

from typing import Any

from ..api.common import (
    INHERITED_LABELS,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    SESSION_HASH,
    STUDIO_LABEL,
    EnvVar,
)
from ..api.kinds import SecurityProfile
from . import names
from .context import DEFAULT_GID, DEFAULT_UID, SessionInputs
from .hashing import content_hash, with_applied_hash
from .merge import merge_env, merge_node_selector, merge_resources, merge_tolerations
from .mounts import MountPlan

CONTAINER_NAME = "studio"
WORKSPACE_PATH = "/workspace"


# Variables the operator adds (documented in the README); a studio or environment entry of the
# same name wins.
def operator_env(inputs: SessionInputs) -> list[EnvVar]:
    return [
        EnvVar(name="STUDIO_NAME", value=inputs.studio.name),
        EnvVar(name="STUDIO_NAMESPACE", value=inputs.studio.namespace),
        EnvVar(name="STUDIO_PORT", value=str(inputs.spec.template.port)),
        EnvVar(name="STUDIO_DATA_DIR", value="/workspace/data"),
    ]


def session_env(inputs: SessionInputs) -> list[EnvVar]:
    inherited = merge_env(operator_env(inputs), inputs.environment.env or [])
    return merge_env(inherited, inputs.spec.env or [])


def selector_labels(studio: str) -> dict[str, str]:
    return {MANAGED_BY_KEY: MANAGED_BY_VALUE, STUDIO_LABEL: studio}


def _metadata(inputs: SessionInputs, name: str, *, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(inputs.labels.labels)}
    if owned:
        meta["namespace"] = inputs.studio.namespace
        meta["ownerReferences"] = [inputs.studio.owner_reference()]
    return meta


def security_contexts(profile: SecurityProfile) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts. Restricted passes the `restricted` Pod Security level."""
    if profile == SecurityProfile.BASELINE:
        return (
            {"fsGroup": DEFAULT_GID, "seccompProfile": {"type": "RuntimeDefault"}},
            {"seccompProfile": {"type": "RuntimeDefault"}},
        )
    return (
        {
            "runAsNonRoot": True,
            "runAsUser": DEFAULT_UID,
            "runAsGroup": DEFAULT_GID,
            "fsGroup": DEFAULT_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    )


def environment_hash(inputs: SessionInputs) -> str:
    """What a session inherits; a different value while running means a restart would apply it."""
    env = inputs.environment
    return content_hash(
        env.model_dump(
            by_alias=True,
            mode="json",
            include={
                "env",
                "resource_labels",
                "resources",
                "node_selector",
                "tolerations",
                "image_pull_secrets",
                "service_account_name",
                "security_profile",
                "storage",
                "allowed_buckets",
                "credentials_secret",
            },
        )
    )


def _studio_container(inputs: SessionInputs, mounts: MountPlan, security: dict[str, Any]) -> dict[str, Any]:
    spec, template = inputs.spec, inputs.spec.template
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": template.image,
        "ports": [{"name": "http", "containerPort": template.port, "protocol": "TCP"}],
        "env": [e.dump() for e in session_env(inputs)],
        "securityContext": security,
        "readinessProbe": {"tcpSocket": {"port": template.port}, "periodSeconds": 5, "failureThreshold": 3},
    }
    if template.command:
        container["command"] = list(template.command)
    if template.args:
        container["args"] = list(template.args)
    resources = merge_resources(inputs.environment, spec)
    if resources:
        container["resources"] = resources
    volume_mounts = (
        [{"name": "workspace", "mountPath": WORKSPACE_PATH}] if spec.workspace_volume is not None else []
    )
    volume_mounts.extend(mounts.volume_mounts)
    if volume_mounts:
        container["volumeMounts"] = volume_mounts
    return container


def _scheduling(inputs: SessionInputs) -> dict[str, Any]:
    """Where the pod may run and as whom: node selector, tolerations, pull secrets, identity."""
    env, spec = inputs.environment, inputs.spec
    out: dict[str, Any] = {}
    node_selector = merge_node_selector(env, spec)
    if node_selector:
        out["nodeSelector"] = node_selector
    tolerations = merge_tolerations(env, spec)
    if tolerations:
        out["tolerations"] = tolerations
    if env.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": s.name} for s in env.image_pull_secrets]
    if env.service_account_name:
        out["serviceAccountName"] = env.service_account_name
    else:
        # No workload identity asked for: the studio gets no API token either.
        out["automountServiceAccountToken"] = False
    return out


def build_pod(inputs: SessionInputs, mounts: MountPlan) -> dict[str, Any]:
    pod_sc, container_sc = security_contexts(inputs.environment.security_profile)
    volumes: list[dict[str, Any]] = []
    if inputs.spec.workspace_volume is not None:
        claim = names.workspace_claim_name(inputs.studio.name)
        volumes.append({"name": "workspace", "persistentVolumeClaim": {"claimName": claim}})
    volumes.extend(mounts.volumes)
    pod_spec: dict[str, Any] = {
        "containers": [_studio_container(inputs, mounts, container_sc)],
        "restartPolicy": "Never",
        # Service links would add variables the contract does not list.
        "enableServiceLinks": False,
        "securityContext": pod_sc,
        "terminationGracePeriodSeconds": 30,
    }
    if mounts.init_containers:
        pod_spec["initContainers"] = list(mounts.init_containers)
    if volumes:
        pod_spec["volumes"] = volumes
    pod_spec.update(_scheduling(inputs))
    metadata = _metadata(inputs, names.pod_name(inputs.studio.name, inputs.studio.uid))
    metadata["annotations"] = {
        SESSION_HASH: environment_hash(inputs),
        # The session's own record of what it inherited (status reads it back from the pod).
        INHERITED_LABELS: ",".join(inputs.labels.inherited),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def build_service(inputs: SessionInputs) -> dict[str, Any]:
    port = inputs.spec.template.port
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(inputs, names.service_name(inputs.studio.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(inputs.studio.name),
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
    return with_applied_hash(svc)


def build_workspace_claim(inputs: SessionInputs) -> dict[str, Any] | None:
    volume = inputs.spec.workspace_volume
    if volume is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(volume.size)}},
    }
    if volume.storage_class_name:
        spec["storageClassName"] = volume.storage_class_name
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(inputs, names.workspace_claim_name(inputs.studio.name)),
        "spec": spec,
    }
    return with_applied_hash(claim)
