"""S3 data mounts: what a studio's `mounts` add to its pod and which storage objects they need.

(Owned by the data-links work; the session builder only relies on `plan_mounts` and `MountPlan`.)

Every mount appears at /workspace/data/<dataLink>; it is writable only when the link's bucket is
one of the environment's `allowedBuckets` (exact name). Two drivers:

- `csi` (default): one statically provisioned PersistentVolume and one claim per (studio, link),
  for the Mountpoint for Amazon S3 CSI driver (`s3.csi.aws.com`) or `ru.yandex.s3.csi`.
  Read-only is set on the PV (`csi.readOnly`, ReadOnlyMany), the claim, the pod volume and the
  container mount. PVs are `Retain`: deleting them never touches bucket data.
- `fuse`: a native sidecar (init container with restartPolicy Always) runs Mountpoint's
  `mount-s3` (or `rclone mount`, `storage.fuseMounter`) for every link onto per-link emptyDirs
  shared with the studio container through mount propagation. Only the sidecar holds
  credentials; it must be privileged.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..api.common import DATA_LINK_LABEL, NAMESPACE_LABEL, STUDIO_LABEL
from ..api.kinds import (
    DEFAULT_CSI_DRIVER,
    YANDEX_CSI_DRIVER,
    FuseMounter,
    MountStatus,
    Storage,
    StorageDriver,
)
from . import names
from .buckets import is_safe_endpoint, is_safe_prefix, is_writable
from .context import DEFAULT_GID, DEFAULT_UID, LinkView, SessionInputs
from .hashing import with_applied_hash
from .links import mount_problem

DATA_ROOT = "/workspace/data"
READ_ONLY = "ReadOnly"
READ_WRITE = "ReadWrite"
# Kubernetes requires a size on PVs and claims; S3 drivers ignore it.
CAPACITY = "1200Gi"
FUSE_CONTAINER = "s3-mounter"
FUSE_ROOT = "/mnt/s3"
FUSE_READY_FILE = "/tmp/studio-mounts-ready"


@dataclass(frozen=True)
class MountPlan:
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)  # studio container
    init_containers: list[dict[str, Any]] = field(default_factory=list)  # e.g. FUSE native sidecars
    persistent_volumes: list[dict[str, Any]] = field(default_factory=list)  # cluster-scoped
    claims: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[MountStatus] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    needs_privileged: bool = False  # FUSE: the pod cannot pass the restricted Pod Security level


class MountConfigError(ValueError):
    """The mounts cannot be planned (missing/unready link, incomplete storage settings)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Mount:
    link: LinkView
    path: str
    writable: bool
    volume: str  # pod volume name
    secret: str | None  # credentials Secret: the link's, else the environment's

    @property
    def access(self) -> str:
        return READ_WRITE if self.writable else READ_ONLY


def plan_mounts(inputs: SessionInputs) -> MountPlan:
    """Raises MountConfigError when `links.mount_problem(inputs)` reports a problem."""
    if not inputs.spec.mounts:
        return MountPlan()
    problem = mount_problem(inputs)
    if problem is not None:
        raise MountConfigError(*problem)
    env = inputs.environment
    storage = env.storage or Storage()
    mounts = [
        _Mount(
            link=link,
            path=f"{DATA_ROOT}/{link.name}",
            writable=is_writable(link.bucket, env.allowed_buckets),
            volume=names.dns_label(f"data-{link.name}"),
            secret=link.spec.credentials_secret or env.credentials_secret,
        )
        for link in (inputs.links[m.data_link] for m in inputs.spec.mounts)
    ]
    statuses = [
        MountStatus(
            data_link=m.link.name, path=m.path, bucket=m.link.bucket, prefix=m.link.prefix, access=m.access
        )
        for m in mounts
    ]
    plan = MountPlan(statuses=statuses, events=_cross_region_events(inputs, mounts))
    if storage.driver == StorageDriver.FUSE:
        return _fuse_plan(inputs, mounts, storage, plan)
    return _csi_plan(inputs, mounts, storage, plan)


def _cross_region_events(inputs: SessionInputs, mounts: list[_Mount]) -> list[tuple[str, str, str]]:
    home = inputs.environment.region
    out = []
    for m in mounts:
        if home and m.link.region and m.link.region != home:
            out.append(
                (
                    "Normal",
                    "CrossRegionMount",
                    f"data link {m.link.name!r} (bucket {m.link.bucket!r}) is in {m.link.region}, "
                    f"environment {inputs.environment_name!r} is in {home}: reads cross regions "
                    "(slower, and AWS charges for data transfer between regions)",
                )
            )
    return out


# ------------------------------------------------------------------------------------------- csi


def _csi_plan(inputs: SessionInputs, mounts: list[_Mount], storage: Storage, plan: MountPlan) -> MountPlan:
    """One static PV (cluster-scoped) and one claim bound to it per mount."""
    ns, studio = inputs.studio.namespace, inputs.studio.name
    for m in mounts:
        pv_name = names.data_volume_name(ns, studio, m.link.name)
        claim_name = names.data_claim_name(studio, m.link.name)
        csi, mount_options = _csi_source(inputs, m, storage, plan.events)
        modes = ["ReadWriteMany"] if m.writable else ["ReadOnlyMany"]
        plan.persistent_volumes.append(
            _data_volume(inputs, m, pv_name, claim_name, modes, csi, mount_options)
        )
        plan.claims.append(_data_claim(inputs, claim_name, pv_name, modes))
        source: dict[str, Any] = {"claimName": claim_name}
        mount: dict[str, Any] = {"name": m.volume, "mountPath": m.path}
        if not m.writable:
            source["readOnly"] = True
            mount["readOnly"] = True
        plan.volumes.append({"name": m.volume, "persistentVolumeClaim": source})
        plan.volume_mounts.append(mount)
    return plan


def _csi_source(
    inputs: SessionInputs, m: _Mount, storage: Storage, events: list[tuple[str, str, str]]
) -> tuple[dict[str, Any], list[str]]:
    """The PV's csi source and mount options; a Warning in `events` when credentials cannot apply."""
    if storage.csi_driver == YANDEX_CSI_DRIVER:
        csi, mount_options = _yandex_source(m, storage)
        if m.secret:
            ref = {"name": m.secret, "namespace": inputs.studio.namespace}
            csi["nodeStageSecretRef"] = dict(ref)
            csi["nodePublishSecretRef"] = dict(ref)
        else:
            events.append(
                (
                    "Warning",
                    "MountCredentialsMissing",
                    f"data link {m.link.name!r}: {YANDEX_CSI_DRIVER} mounts only with a Secret; set "
                    "credentialsSecret on the link or the environment",
                )
            )
    else:
        csi, mount_options = _mountpoint_source(inputs, m, storage)
        if m.secret and not inputs.environment.service_account_name:
            events.append(
                (
                    "Warning",
                    "MountCredentialsIgnored",
                    f"data link {m.link.name!r}: {DEFAULT_CSI_DRIVER} cannot take credentials from "
                    f"Secret {m.secret!r}; it mounts with the driver's own identity. Set the "
                    "environment's serviceAccountName for pod-level credentials, or use the fuse driver",
                )
            )
    if not m.writable:
        csi["readOnly"] = True
    return csi, mount_options


def _data_volume(
    inputs: SessionInputs,
    m: _Mount,
    pv_name: str,
    claim_name: str,
    modes: list[str],
    csi: dict[str, Any],
    mount_options: list[str],
) -> dict[str, Any]:
    pv_spec: dict[str, Any] = {
        "capacity": {"storage": CAPACITY},
        "accessModes": modes,
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "volumeMode": "Filesystem",
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": inputs.studio.namespace,
            "name": claim_name,
        },
        "csi": csi,
    }
    if mount_options:
        pv_spec["mountOptions"] = mount_options
    return with_applied_hash(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": _pv_labels(inputs, m)},
            "spec": pv_spec,
        }
    )


def _data_claim(inputs: SessionInputs, claim_name: str, pv_name: str, modes: list[str]) -> dict[str, Any]:
    return with_applied_hash(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": claim_name,
                "namespace": inputs.studio.namespace,
                "labels": dict(inputs.labels.labels),
                "ownerReferences": [inputs.studio.owner_reference()],
            },
            "spec": {
                "accessModes": list(modes),
                "storageClassName": "",
                "volumeMode": "Filesystem",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": CAPACITY}},
            },
        }
    )


def _pv_labels(inputs: SessionInputs, m: _Mount) -> dict[str, str]:
    # PVs are cluster-scoped: the namespace label plus the studio label select a studio's PVs.
    labels = dict(inputs.labels.labels)
    labels[NAMESPACE_LABEL] = inputs.studio.namespace
    labels[DATA_LINK_LABEL] = m.link.name
    labels.setdefault(STUDIO_LABEL, inputs.studio.name)
    return labels


def _mountpoint_source(
    inputs: SessionInputs, m: _Mount, storage: Storage
) -> tuple[dict[str, Any], list[str]]:
    """Mountpoint for Amazon S3 CSI driver: bucket in volumeAttributes, the rest as mount-s3 flags.

    It reads no per-volume Secret: credentials are the driver's own, or the pod's service account
    (`authenticationSource: pod`, IRSA / EKS Pod Identity) when the environment names one.
    """
    attributes = {"bucketName": m.link.bucket}
    env = inputs.environment
    if env.service_account_name:
        attributes["authenticationSource"] = "pod"
        if env.region:
            attributes["stsRegion"] = env.region
    options = [
        "allow-other",
        f"uid={DEFAULT_UID}",
        f"gid={DEFAULT_GID}",
        *(["allow-delete", "allow-overwrite"] if m.writable else ["read-only"]),
    ]
    if m.link.region:
        options.append(f"region {m.link.region}")
    if m.link.prefix:
        options.append(f"prefix {_checked(m.link.prefix, is_safe_prefix)}/")
    if m.link.spec.endpoint_url:
        options += [
            f"endpoint-url {_checked(m.link.spec.endpoint_url, is_safe_endpoint)}",
            "force-path-style",
        ]
    if storage.metadata_ttl_seconds is not None:
        options.append(f"metadata-ttl {storage.metadata_ttl_seconds}")
    csi = {
        "driver": storage.csi_driver,
        # Unique per PV: the kubelet handles a volume once per handle.
        "volumeHandle": names.data_volume_name(inputs.studio.namespace, inputs.studio.name, m.link.name),
        "volumeAttributes": attributes,
    }
    return csi, options


def _checked(value: str, safe: Callable[[str], bool]) -> str:
    """A mount option value, never one that could split into further options (a ',' or a space
    would add e.g. `allow-root`); mount_problem reports such links before any plan is built."""
    if not safe(value):
        raise MountConfigError("DataLinkInvalid", f"{value!r} cannot be passed to the storage driver")
    return value


def _yandex_source(m: _Mount, storage: Storage) -> tuple[dict[str, Any], list[str]]:
    """`ru.yandex.s3.csi` (GeeseFS): the driver reads bucket and prefix from the volume handle and
    its credentials, endpoint and region from the Secret (keys accessKeyID, secretAccessKey,
    endpoint, region); the link's endpoint and region are passed as GeeseFS flags, which win.

    Not passed: GeeseFS `-o ro`. The driver mounts once per handle and node, so two studios on a
    node sharing a bucket/prefix share one GeeseFS; read-only is enforced by the kubelet's
    read-only bind mount into the container instead.
    """
    flags = [
        "--uid",
        str(DEFAULT_UID),
        "--gid",
        str(DEFAULT_GID),
        "--dir-mode",
        "0775",
        "--file-mode",
        "0664",
    ]
    if m.link.spec.endpoint_url:
        flags += ["--endpoint", _checked(m.link.spec.endpoint_url, is_safe_endpoint)]
    if m.link.region:
        flags += ["--region", m.link.region]
    if storage.metadata_ttl_seconds is not None:
        ttl = f"{storage.metadata_ttl_seconds}s"
        flags += ["--stat-cache-ttl", ttl, "--type-cache-ttl", ttl]
    handle = f"{m.link.bucket}/{_checked(m.link.prefix, is_safe_prefix)}" if m.link.prefix else m.link.bucket
    csi = {
        "driver": YANDEX_CSI_DRIVER,
        "volumeHandle": handle,
        "volumeAttributes": {
            "capacity": CAPACITY,
            "mounter": "geesefs",
            "options": " ".join(shlex.quote(f) for f in flags),
        },
    }
    return csi, []


# ------------------------------------------------------------------------------------------ fuse


def _credential_env(cred_index: dict[str, int]) -> list[dict[str, Any]]:
    """The FUSE sidecar's S3 credentials, from each Secret by its index in the mount script."""
    env: list[dict[str, Any]] = []
    for name, i in cred_index.items():
        for var, key, optional in (
            ("ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", False),
            ("SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
            ("SESSION_TOKEN", "AWS_SESSION_TOKEN", True),
        ):
            ref: dict[str, Any] = {"name": name, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": f"S3_CRED_{i}_{var}", "valueFrom": {"secretKeyRef": ref}})
    return env


def _fuse_plan(inputs: SessionInputs, mounts: list[_Mount], storage: Storage, plan: MountPlan) -> MountPlan:
    secrets = sorted({m.secret for m in mounts if m.secret})
    cred_index = {name: i for i, name in enumerate(secrets)}
    volumes = [{"name": m.volume, "emptyDir": {}} for m in mounts]
    sidecar: dict[str, Any] = {
        "name": FUSE_CONTAINER,
        "image": storage.fuse_image,
        # A native sidecar: starts (and passes its startup probe) before the studio container,
        # runs alongside it, and stops after it.
        "restartPolicy": "Always",
        "command": ["/bin/sh", "-c", fuse_script(mounts, storage, cred_index)],
        "env": _credential_env(cred_index),
        # FUSE needs /dev/fuse and mount(2); Bidirectional propagation needs privileged.
        "securityContext": {
            "privileged": True,
            "allowPrivilegeEscalation": True,
            "runAsUser": 0,
            "runAsNonRoot": False,
        },
        "volumeMounts": [
            {"name": m.volume, "mountPath": f"{FUSE_ROOT}/{m.link.name}", "mountPropagation": "Bidirectional"}
            for m in mounts
        ],
        "startupProbe": {
            "exec": {"command": ["/bin/sh", "-c", f"test -f {FUSE_READY_FILE}"]},
            "periodSeconds": 1,
            "failureThreshold": 300,
        },
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
    }
    volume_mounts = []
    for m in mounts:
        mount: dict[str, Any] = {"name": m.volume, "mountPath": m.path, "mountPropagation": "HostToContainer"}
        if not m.writable:
            mount["readOnly"] = True
        volume_mounts.append(mount)
    return replace(
        plan, volumes=volumes, volume_mounts=volume_mounts, init_containers=[sidecar], needs_privileged=True
    )


def fuse_script(mounts: list[_Mount], storage: Storage, cred_index: dict[str, int]) -> str:
    """The sidecar's shell script: mount every link with mount-s3 or rclone (each returns once the
    mount is up), mark readiness for the startup probe, then wait; unmount on SIGTERM so the
    kubelet can remove the emptyDirs. Credentials stay in the sidecar's environment, one set per
    Secret, exported as AWS_* for the one mount that uses them."""
    q = shlex.quote
    lines = [
        "set -eu",
        f'unmount_all() {{ for d in {FUSE_ROOT}/*; do umount "$d" 2>/dev/null || '
        'umount -l "$d" 2>/dev/null || true; done; }',
        "trap 'unmount_all; exit 0' TERM INT",
    ]
    for m in mounts:
        if storage.fuse_mounter == FuseMounter.RCLONE:
            args = rclone_args(m, storage)
        else:
            args = mount_s3_args(m, storage)
        command = " ".join(q(a) for a in args)
        if m.secret:
            i = cred_index[m.secret]
            lines.append(
                f'( export AWS_ACCESS_KEY_ID="$S3_CRED_{i}_ACCESS_KEY_ID" '
                f'AWS_SECRET_ACCESS_KEY="$S3_CRED_{i}_SECRET_ACCESS_KEY"; '
                f'if [ -n "${{S3_CRED_{i}_SESSION_TOKEN:-}}" ]; then '
                f'export AWS_SESSION_TOKEN="$S3_CRED_{i}_SESSION_TOKEN"; fi; exec {command} )'
            )
        else:
            lines.append(command)  # the pod's identity (service account) or the node's
    lines += [
        f"touch {FUSE_READY_FILE}",
        'while true; do sleep 3600 & wait "$!"; done',
    ]
    return "\n".join(lines) + "\n"


def mount_s3_args(m: _Mount, storage: Storage) -> list[str]:
    """Mountpoint for Amazon S3: `mount-s3 [options] BUCKET DIR`; it returns once mounted."""
    args = ["mount-s3", "--allow-other", "--uid", str(DEFAULT_UID), "--gid", str(DEFAULT_GID)]
    args += ["--allow-delete", "--allow-overwrite"] if m.writable else ["--read-only"]
    if m.link.region:
        args += ["--region", m.link.region]
    if m.link.prefix:
        args += ["--prefix", f"{_checked(m.link.prefix, is_safe_prefix)}/"]
    if m.link.spec.endpoint_url:
        args += ["--endpoint-url", _checked(m.link.spec.endpoint_url, is_safe_endpoint), "--force-path-style"]
    if storage.metadata_ttl_seconds is not None:
        args += ["--metadata-ttl", str(storage.metadata_ttl_seconds)]
    return [*args, m.link.bucket, f"{FUSE_ROOT}/{m.link.name}"]


def rclone_remote(m: _Mount) -> str:
    """An on-the-fly rclone S3 remote (no config file): keys from the AWS_* environment
    (env_auth), path-style requests to an endpoint when the link names one, and no bucket
    creation attempts (the mounter's keys need not be allowed to create buckets)."""
    params = ["s3", "env_auth=true", "no_check_bucket=true"]
    if m.link.spec.endpoint_url:
        endpoint = _checked(m.link.spec.endpoint_url, is_safe_endpoint)
        params += ["provider=Other", f'endpoint="{endpoint}"', "force_path_style=true"]
    else:
        params.append("provider=AWS")
    if m.link.region:
        params.append(f"region={m.link.region}")
    path = f"{m.link.bucket}/{_checked(m.link.prefix, is_safe_prefix)}" if m.link.prefix else m.link.bucket
    return f":{','.join(params)}:{path}"


def rclone_args(m: _Mount, storage: Storage) -> list[str]:
    """`rclone mount --daemon` returns once the mount is up (it waits for the daemon, up to
    --daemon-wait). Writable links cache writes on the sidecar's disk so that ordinary editors
    work (S3 objects cannot be modified in place); the listing cache time is the metadata TTL."""
    args = ["rclone", "mount", rclone_remote(m), f"{FUSE_ROOT}/{m.link.name}", "--daemon"]
    # The target is the emptyDir's own bind mount, which rclone would refuse as "already mounted".
    args.append("--allow-non-empty")
    args += ["--allow-other", "--uid", str(DEFAULT_UID), "--gid", str(DEFAULT_GID), "--umask", "002"]
    args += ["--vfs-cache-mode", "writes"] if m.writable else ["--read-only"]
    if storage.metadata_ttl_seconds is not None:
        args += ["--dir-cache-time", f"{storage.metadata_ttl_seconds}s"]
    return args
