"""Pydantic models of the four kinds: the single source of truth for parsing and for the CRDs."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import Field

from .common import (
    BUCKET_REF,
    CONDITIONS_HINTS,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENDPOINT_URL,
    ENV_LIST_HINTS,
    LABEL_KEY,
    MAP_KEYS_CEL,
    MAP_KEYS_MSG,
    MAX_ARG_LENGTH,
    MAX_COMMAND_TOTAL,
    QUANTITY_SCHEMA,
    RESERVED_KEYS_MSG,
    S3_URI,
    Condition,
    EnvVar,
    KubeModel,
    LocalObjectReference,
    Quantity,
    ResourceRequirements,
    Toleration,
    k8s,
    labels_field,
    rule,
    string_map,
    total_length_rule,
)

MIN_LIFESPAN_HOURS = 1
MAX_LIFESPAN_HOURS = 120
DEFAULT_LIFESPAN_HOURS = 8
DEFAULT_PORT = 8080


# Whether a session stops after its lifespan or keeps running.
class LifespanPolicy(StrEnum):
    STOP_AFTER = "StopAfter"
    KEEP_RUNNING = "KeepRunning"


class Lifespan(KubeModel):
    policy: LifespanPolicy = LifespanPolicy.STOP_AFTER
    hours: int = Field(default=DEFAULT_LIFESPAN_HOURS, ge=MIN_LIFESPAN_HOURS, le=MAX_LIFESPAN_HOURS)


# ---------------------------------------------------------------- ComputeEnvironment


# How data links are mounted: a CSI driver (static PersistentVolumes) or a FUSE sidecar.
class StorageDriver(StrEnum):
    CSI = "csi"
    FUSE = "fuse"


class FuseMounter(StrEnum):
    """The FUSE program the `fuse` driver's sidecar runs."""

    MOUNTPOINT_S3 = "mountpoint-s3"
    RCLONE = "rclone"


DEFAULT_CSI_DRIVER: Final = "s3.csi.aws.com"  # Mountpoint for Amazon S3's CSI driver
YANDEX_CSI_DRIVER: Final = "ru.yandex.s3.csi"  # GeeseFS


class Storage(KubeModel):
    driver: StorageDriver = StorageDriver.CSI
    csi_driver: str = Field(
        default=DEFAULT_CSI_DRIVER,
        alias="csiDriver",
        json_schema_extra={"enum": [DEFAULT_CSI_DRIVER, YANDEX_CSI_DRIVER]},
    )
    fuse_image: str | None = Field(default=None, max_length=1024)
    fuse_mounter: FuseMounter = Field(
        default=FuseMounter.MOUNTPOINT_S3,
        description="FUSE driver only: mount-s3 (Mountpoint for Amazon S3) or rclone mount.",
    )
    metadata_ttl_seconds: int | None = Field(
        default=None,
        alias="metadataTTLSeconds",
        ge=0,
        le=86400,
        description="How long directory listings and metadata are cached; 0 re-reads the bucket each time.",
    )


_PROFILES = (
    "Restricted (default): non-root, no privilege escalation, all capabilities dropped, "
    "RuntimeDefault seccomp. Baseline: allows images that must start as root."
)


# The pod security a session runs with.
class SecurityProfile(StrEnum):
    RESTRICTED = "Restricted"
    BASELINE = "Baseline"


class ComputeEnvironmentSpec(KubeModel):
    env: list[EnvVar] | None = Field(default=None, max_length=256, json_schema_extra=ENV_LIST_HINTS)
    resource_labels: dict[str, str] | None = labels_field("Labels put on every object created for a studio.")
    allowed_buckets: list[str] | None = Field(
        default=None,
        max_length=256,
        description="Buckets (bucket or s3://bucket) that studios may write to, and only these.",
        json_schema_extra={
            "items": {"type": "string", "pattern": BUCKET_REF, "maxLength": 68},
            **k8s(list_type="set"),
        },
    )
    region: str | None = Field(default=None, max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
    resources: ResourceRequirements | None = None
    node_selector: dict[str, str] | None = string_map(64, 63)
    tolerations: list[Toleration] | None = Field(default=None, max_length=64)
    allowed_node_selectors: dict[str, list[str]] | None = Field(
        default=None,
        description=(
            "Node labels a studio may select beyond the environment's nodeSelector (key -> allowed "
            "values); other values need permission to create pods in the namespace."
        ),
        json_schema_extra={
            "maxProperties": 32,
            "additionalProperties": {
                "type": "array",
                "maxItems": 32,
                "items": {"type": "string", "maxLength": 63},
                **k8s(list_type="set"),
            },
            **k8s(rules=[rule(MAP_KEYS_CEL, MAP_KEYS_MSG)]),
        },
    )
    allowed_tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=64,
        description=(
            "Tolerations a studio may add beyond the environment's (an entry without effect allows "
            "every effect; operator Exists allows every value); others need permission to create pods."
        ),
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=16, json_schema_extra=k8s(list_type="map", list_map_keys=["name"])
    )
    service_account_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    storage: Storage | None = None
    credentials_secret: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)
    security_profile: SecurityProfile = Field(default=SecurityProfile.RESTRICTED, description=_PROFILES)


class ComputeEnvironment(KubeModel):
    kind, plural, short_names = "ComputeEnvironment", "computeenvironments", ["ce"]
    spec: ComputeEnvironmentSpec = Field(default_factory=ComputeEnvironmentSpec)


# ---------------------------------------------------------------- DataLink


class DataLinkSpec(KubeModel):
    uri: str = Field(
        max_length=1024,
        pattern=S3_URI,
        description="s3://bucket or s3://bucket/prefix",
    )
    region: str | None = Field(default=None, max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
    endpoint_url: str | None = Field(default=None, alias="endpointURL", max_length=2048, pattern=ENDPOINT_URL)
    credentials_secret: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN)


class DataLinkStatus(KubeModel):
    observed_generation: int | None = None
    bucket: str | None = None
    prefix: str | None = None
    region: str | None = None
    last_checked_at: str | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=CONDITIONS_HINTS)


class DataLink(KubeModel):
    kind, plural, short_names = "DataLink", "datalinks", ["dl"]
    spec: DataLinkSpec
    status: DataLinkStatus | None = None


# ---------------------------------------------------------------- WorkspaceSettings


class WorkspaceSettingsSpec(KubeModel):
    studio_lifespan: Lifespan | None = Field(
        default=None,
        description="When set, every studio in the namespace uses this lifespan (locked).",
    )


class WorkspaceSettings(KubeModel):
    kind, plural, short_names = "WorkspaceSettings", "workspacesettings", ["ws"]
    spec: WorkspaceSettingsSpec = Field(default_factory=WorkspaceSettingsSpec)


# ---------------------------------------------------------------- Studio


# spec.state: what the user asks for.
class DesiredState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"


class Template(KubeModel):
    image: str = Field(min_length=1, max_length=1024, pattern=r"^\S+$")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    command: list[str] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"items": {"type": "string", "maxLength": MAX_ARG_LENGTH}},
    )
    args: list[str] | None = Field(
        default=None,
        max_length=256,
        json_schema_extra={"items": {"type": "string", "maxLength": MAX_ARG_LENGTH}},
    )


_COMMAND_SIZE = "(has(self.{0}) ? self.{0}.map(s, size(s)).sum() : 0)"
TEMPLATE_HINTS = k8s(
    rules=[
        total_length_rule(
            f"{_COMMAND_SIZE.format('command')} + {_COMMAND_SIZE.format('args')} <= {MAX_COMMAND_TOTAL}",
            ("command", "args"),
            MAX_COMMAND_TOTAL,
            f"command and args together have at most {MAX_COMMAND_TOTAL} characters",
        )
    ]
)


class Mount(KubeModel):
    data_link: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, alias="dataLink")


class ReclaimPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class WorkspaceVolume(KubeModel):
    size: Quantity = Field(default="10Gi", json_schema_extra=QUANTITY_SCHEMA)
    storage_class_name: str | None = Field(default=None, max_length=253)
    reclaim: ReclaimPolicy = Field(
        default=ReclaimPolicy.RETAIN,
        description="Retain (default): deleting the studio (or uninstalling the operator) keeps the "
        "claim, labelled studios.dev/retained, and a new studio of the same name re-uses it. "
        "Delete: the claim goes with the studio.",
    )


class StudioSpec(KubeModel):
    display_name: str | None = Field(default=None, max_length=253)
    description: str | None = Field(default=None, max_length=4096)
    compute_environment: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    template: Template = Field(json_schema_extra=TEMPLATE_HINTS)
    resources: ResourceRequirements | None = None
    env: list[EnvVar] | None = Field(default=None, max_length=256, json_schema_extra=ENV_LIST_HINTS)
    resource_labels: dict[str, str] | None = labels_field(
        "Labels added to (or overriding) the inherited ones."
    )
    remove_resource_labels: list[str] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={
            "items": {"type": "string", "maxLength": 317, "pattern": LABEL_KEY},
            **k8s(
                list_type="set",
                rules=[
                    rule(
                        "self.all(k, !k.startsWith('studios.dev/') && k != 'app.kubernetes.io/managed-by')",
                        RESERVED_KEYS_MSG,
                        reason="FieldValueForbidden",
                    )
                ],
            ),
        },
    )
    node_selector: dict[str, str] | None = string_map(
        64, 63, "Node labels on top of the environment's; see allowedNodeSelectors for who may set which."
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=64)
    private: bool = False
    lifespan: Lifespan | None = None
    mounts: list[Mount] | None = Field(
        default=None, max_length=32, json_schema_extra=k8s(list_type="map", list_map_keys=["dataLink"])
    )
    workspace_volume: WorkspaceVolume | None = None
    state: DesiredState = DesiredState.RUNNING


class Session(KubeModel):
    pod_name: str | None = None
    environment_hash: str | None = Field(
        default=None, description="Digest of what the session inherited when it started."
    )
    started_at: str | None = None
    lifespan_hours: int | None = None
    expires_at: str | None = None
    lifespan_source: str | None = None


class MountStatus(KubeModel):
    data_link: str = Field(alias="dataLink")
    path: str
    bucket: str | None = None
    prefix: str | None = None
    access: str | None = Field(default=None, json_schema_extra={"enum": ["ReadOnly", "ReadWrite"]})


class Connect(KubeModel):
    service: str | None = None
    port: int | None = None
    command: str | None = None


# status.phase: where the studio is between stopped and running.
class Phase(StrEnum):
    STOPPED = "Stopped"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    ERRORED = "Errored"


# status.stopReason: why the last session ended, or that none started.
class StopReason(StrEnum):
    USER_REQUESTED = "UserRequested"
    LIFESPAN_EXPIRED = "LifespanExpired"
    FAILED = "Failed"
    NEVER_STARTED = "NeverStarted"


class StudioStatus(KubeModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    stop_reason: StopReason | None = None
    message: str | None = None
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=CONDITIONS_HINTS)
    session: Session | None = None
    mounts: list[MountStatus] | None = None
    connect: Connect | None = None
    inherited_labels: list[str] | None = Field(
        default=None, description="Label keys the current objects inherited from the environment."
    )
    held_restart: str | None = Field(
        default=None,
        description=(
            "Set when a session ended on its own: the studios.dev/restart value at that time. "
            "No new session starts until state is toggled or the annotation changes."
        ),
    )


class Studio(KubeModel):
    kind, plural, short_names = "Studio", "studios", ["st"]
    spec: StudioSpec
    status: StudioStatus | None = None


ALL_KINDS: list[type[KubeModel]] = [Studio, ComputeEnvironment, DataLink, WorkspaceSettings]
