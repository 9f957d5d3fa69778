"""The three mount builders (Mountpoint CSI, Yandex CSI, FUSE sidecar), link views and problems."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from typing import Any

import pytest

from studio_operator.api.common import APPLIED_HASH, DATA_LINK_LABEL, NAMESPACE_LABEL
from studio_operator.api.kinds import ComputeEnvironmentSpec, DataLinkSpec, FuseMounter, Storage, StudioSpec
from studio_operator.resources import names, session
from studio_operator.resources.context import DEFAULT_GID as MOUNT_GID
from studio_operator.resources.context import DEFAULT_UID as MOUNT_UID
from studio_operator.resources.context import LinkView, SessionInputs, StudioRef
from studio_operator.resources.endpoints import S3Policy, parse_endpoints, parse_shared_buckets
from studio_operator.resources.links import link_view, mount_problem
from studio_operator.resources.merge import merge_labels
from studio_operator.resources.mounts import FUSE_CONTAINER, MountConfigError, plan_mounts

NS = "team-a"
STUDIO = "rnaseq"
SECRET_VALUE = "wJalrXUtnFEMI-not-a-real-secret"
# Builder tests below are about manifests: an administrator who trusts every endpoint and bucket.
TRUST_ALL = S3Policy(
    allowed_endpoints=parse_endpoints(["http://*:*", "https://*:*"]), shared_buckets=(("*", ("*",)),)
)


def link(
    name: str,
    uri: str,
    *,
    region: str | None = "eu-west-1",
    endpoint: str | None = None,
    secret: str | None = None,
    ready: bool = True,
) -> LinkView:
    spec = DataLinkSpec.model_validate(
        {"uri": uri, "region": region, "endpointURL": endpoint, "credentialsSecret": secret}
    )
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return LinkView(
        name=name,
        spec=spec,
        bucket=bucket,
        prefix=prefix.strip("/"),
        region=region,
        ready=ready,
        reason="BucketReachable" if ready else "NoSuchBucket",
        message="" if ready else "bucket does not exist",
    )


def make_inputs(
    links: list[LinkView],
    *,
    env: dict[str, Any] | None = None,
    mounts: list[str] | None = None,
    studio: str = STUDIO,
    policy: S3Policy | None = None,
) -> SessionInputs:
    environment = ComputeEnvironmentSpec.model_validate(
        {"region": "eu-west-1", "resourceLabels": {"team": "genomics"}, **(env or {})}
    )
    spec = StudioSpec.model_validate(
        {
            "computeEnvironment": "aws-eu",
            "template": {"image": "jupyter:4", "port": 8888},
            "mounts": [{"dataLink": m} for m in (mounts if mounts is not None else [x.name for x in links])],
        }
    )
    return SessionInputs(
        studio=StudioRef(name=studio, namespace=NS, uid="uid-1"),
        spec=spec,
        environment_name="aws-eu",
        environment=environment,
        labels=merge_labels(environment.resource_labels, None, None, studio),
        links={x.name: x for x in links},
        s3_policy=policy or TRUST_ALL,
    )


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["metadata"]["name"] == name)


def test_no_mounts_no_plan() -> None:
    plan = plan_mounts(make_inputs([], mounts=[]))
    assert plan.volumes == [] and plan.persistent_volumes == [] and plan.statuses == []


def test_uid_gid_match_session_user() -> None:
    assert (MOUNT_UID, MOUNT_GID) == (session.DEFAULT_UID, session.DEFAULT_GID)


# ------------------------------------------------------------------ Mountpoint for Amazon S3 CSI


def test_mountpoint_csi_read_write_and_read_only() -> None:
    inputs = make_inputs(
        [link("scratch", "s3://scratch"), link("reference-genomes", "s3://reference-genomes/hg38/")],
        env={"allowedBuckets": ["s3://scratch/", "reference-genomes-private"]},
    )
    plan = plan_mounts(inputs)
    assert [(s.data_link, s.path, s.bucket, s.prefix, s.access) for s in plan.statuses] == [
        ("scratch", "/workspace/data/scratch", "scratch", "", "ReadWrite"),
        ("reference-genomes", "/workspace/data/reference-genomes", "reference-genomes", "hg38", "ReadOnly"),
    ]
    assert plan.init_containers == [] and not plan.needs_privileged

    rw_pv = by_name(plan.persistent_volumes, names.data_volume_name(NS, STUDIO, "scratch"))
    ro_pv = by_name(plan.persistent_volumes, names.data_volume_name(NS, STUDIO, "reference-genomes"))
    for pv, claim_name in ((rw_pv, "rnaseq-data-scratch"), (ro_pv, "rnaseq-data-reference-genomes")):
        spec = pv["spec"]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert spec["storageClassName"] == ""
        assert spec["claimRef"] == {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": NS,
            "name": claim_name,
        }
        assert spec["csi"]["driver"] == "s3.csi.aws.com"
        assert spec["csi"]["volumeHandle"] == pv["metadata"]["name"]
        assert "allow-other" in spec["mountOptions"]
        assert "uid=1000" in spec["mountOptions"] and "gid=100" in spec["mountOptions"]
        assert "region eu-west-1" in spec["mountOptions"]
        labels = pv["metadata"]["labels"]
        assert labels[NAMESPACE_LABEL] == NS
        assert labels["studios.dev/studio"] == STUDIO
        assert labels["team"] == "genomics"
        assert labels["app.kubernetes.io/managed-by"] == "studio-operator"
        assert APPLIED_HASH in pv["metadata"]["annotations"]
        assert "namespace" not in pv["metadata"] and "ownerReferences" not in pv["metadata"]

    assert rw_pv["metadata"]["labels"][DATA_LINK_LABEL] == "scratch"
    assert rw_pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "readOnly" not in rw_pv["spec"]["csi"]
    assert {"allow-delete", "allow-overwrite"} <= set(rw_pv["spec"]["mountOptions"])
    assert "read-only" not in rw_pv["spec"]["mountOptions"]
    assert rw_pv["spec"]["csi"]["volumeAttributes"] == {"bucketName": "scratch"}

    assert ro_pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert ro_pv["spec"]["csi"]["readOnly"] is True
    assert "read-only" in ro_pv["spec"]["mountOptions"]
    assert not {"allow-delete", "allow-overwrite"} & set(ro_pv["spec"]["mountOptions"])
    assert "prefix hg38/" in ro_pv["spec"]["mountOptions"]

    rw_claim = by_name(plan.claims, "rnaseq-data-scratch")
    ro_claim = by_name(plan.claims, "rnaseq-data-reference-genomes")
    for claim, pv in ((rw_claim, rw_pv), (ro_claim, ro_pv)):
        assert claim["metadata"]["namespace"] == NS
        assert claim["metadata"]["ownerReferences"] == [inputs.studio.owner_reference()]
        assert claim["metadata"]["labels"] == inputs.labels.labels
        assert claim["spec"]["volumeName"] == pv["metadata"]["name"]
        assert claim["spec"]["storageClassName"] == ""
        assert claim["spec"]["accessModes"] == pv["spec"]["accessModes"]
        assert claim["spec"]["resources"] == {"requests": {"storage": "1200Gi"}}
    assert ro_claim["spec"]["accessModes"] == ["ReadOnlyMany"]

    volumes = {v["name"]: v for v in plan.volumes}
    mounts = {m["mountPath"]: m for m in plan.volume_mounts}
    rw_mount, ro_mount = mounts["/workspace/data/scratch"], mounts["/workspace/data/reference-genomes"]
    assert "readOnly" not in rw_mount
    assert "readOnly" not in volumes[rw_mount["name"]]["persistentVolumeClaim"]
    assert ro_mount["readOnly"] is True
    assert volumes[ro_mount["name"]]["persistentVolumeClaim"] == {
        "claimName": "rnaseq-data-reference-genomes",
        "readOnly": True,
    }


def test_mountpoint_endpoint_ttl_and_no_region() -> None:
    inputs = make_inputs(
        [link("minio", "s3://lab", region=None, endpoint="http://127.0.0.1:9000")],
        env={"storage": {"metadata_ttl_seconds": 5}},
    )
    options = plan_mounts(inputs).persistent_volumes[0]["spec"]["mountOptions"]
    assert "endpoint-url http://127.0.0.1:9000" in options
    assert "force-path-style" in options
    assert "metadata-ttl 5" in options
    assert not any(o.startswith("region") for o in options)


def test_mountpoint_pod_level_credentials_with_service_account() -> None:
    inputs = make_inputs(
        [link("data", "s3://data", secret="link-creds")],
        env={"serviceAccountName": "studio-irsa", "credentialsSecret": "env-creds"},
    )
    plan = plan_mounts(inputs)
    csi = plan.persistent_volumes[0]["spec"]["csi"]
    assert csi["volumeAttributes"] == {
        "bucketName": "data",
        "authenticationSource": "pod",
        "stsRegion": "eu-west-1",
    }
    # The Mountpoint driver reads no per-volume Secret.
    assert "nodePublishSecretRef" not in csi and "nodeStageSecretRef" not in csi
    assert not [e for e in plan.events if e[1] == "MountCredentialsIgnored"]


def test_mountpoint_warns_that_secret_cannot_be_used() -> None:
    plan = plan_mounts(make_inputs([link("data", "s3://data")], env={"credentialsSecret": "env-creds"}))
    csi = plan.persistent_volumes[0]["spec"]["csi"]
    assert "nodePublishSecretRef" not in csi
    assert "authenticationSource" not in csi["volumeAttributes"]  # the driver's own identity
    (event,) = [e for e in plan.events if e[1] == "MountCredentialsIgnored"]
    assert event[0] == "Warning" and "env-creds" in event[2] and "serviceAccountName" in event[2]


# --------------------------------------------------------------------------------- Yandex CSI


def test_yandex_csi() -> None:
    inputs = make_inputs(
        [
            link("rw", "s3://lab-rw/runs/42", endpoint="https://storage.example.net", secret="link-creds"),
            link("ro", "s3://lab-ro", region=None),
        ],
        env={
            "allowedBuckets": ["lab-rw"],
            "credentialsSecret": "env-creds",
            "storage": {"csiDriver": "ru.yandex.s3.csi", "metadata_ttl_seconds": 30},
        },
    )
    plan = plan_mounts(inputs)
    rw_pv, ro_pv = plan.persistent_volumes
    rw_csi, ro_csi = rw_pv["spec"]["csi"], ro_pv["spec"]["csi"]
    assert rw_csi["driver"] == ro_csi["driver"] == "ru.yandex.s3.csi"
    # The driver takes bucket and prefix from the handle.
    assert rw_csi["volumeHandle"] == "lab-rw/runs/42"
    assert ro_csi["volumeHandle"] == "lab-ro"
    assert rw_csi["volumeAttributes"]["mounter"] == "geesefs"
    flags = shlex.split(rw_csi["volumeAttributes"]["options"])
    assert flags[flags.index("--endpoint") + 1] == "https://storage.example.net"
    assert flags[flags.index("--region") + 1] == "eu-west-1"
    assert flags[flags.index("--uid") + 1] == "1000" and flags[flags.index("--gid") + 1] == "100"
    assert flags[flags.index("--stat-cache-ttl") + 1] == "30s"
    assert "--region" not in shlex.split(ro_csi["volumeAttributes"]["options"])
    # Credentials: the link's Secret, else the environment's, in the studio's namespace.
    assert (
        rw_csi["nodeStageSecretRef"]
        == rw_csi["nodePublishSecretRef"]
        == {"name": "link-creds", "namespace": NS}
    )
    assert ro_csi["nodePublishSecretRef"] == {"name": "env-creds", "namespace": NS}
    assert "mountOptions" not in rw_pv["spec"]
    # Read-only on the PV, the claim and the container mount.
    assert ro_csi["readOnly"] is True and "readOnly" not in rw_csi
    assert ro_pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert rw_pv["spec"]["accessModes"] == ["ReadWriteMany"]
    ro_claim = by_name(plan.claims, "rnaseq-data-ro")
    assert ro_claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    ro_mount = next(m for m in plan.volume_mounts if m["mountPath"] == "/workspace/data/ro")
    assert ro_mount["readOnly"] is True
    assert not [e for e in plan.events if e[0] == "Warning"]


def test_yandex_without_secret_warns() -> None:
    plan = plan_mounts(
        make_inputs([link("d", "s3://data")], env={"storage": {"csiDriver": "ru.yandex.s3.csi"}})
    )
    assert [e[1] for e in plan.events] == ["MountCredentialsMissing"]
    assert "nodePublishSecretRef" not in plan.persistent_volumes[0]["spec"]["csi"]


# --------------------------------------------------------------------------------------- FUSE


def fuse_inputs() -> SessionInputs:
    return make_inputs(
        [
            link("scratch", "s3://scratch/users/ana", secret="link-creds"),
            link("reference-genomes", "s3://reference-genomes", region="us-east-1"),
            link("minio", "s3://lab", region=None, endpoint="http://10.0.0.5:9000", secret="link-creds"),
        ],
        env={
            "allowedBuckets": ["scratch"],
            "credentialsSecret": "env-creds",
            "storage": {
                "driver": "fuse",
                "fuseImage": "ghcr.io/acme/mount-s3:1.9",
                "metadata_ttl_seconds": 10,
            },
        },
    )


def test_fuse_sidecar() -> None:
    plan = plan_mounts(fuse_inputs())
    assert plan.needs_privileged
    assert plan.persistent_volumes == [] and plan.claims == []
    (sidecar,) = plan.init_containers
    assert sidecar["name"] == FUSE_CONTAINER
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "ghcr.io/acme/mount-s3:1.9"
    assert sidecar["securityContext"]["privileged"] is True
    assert sidecar["startupProbe"]["exec"]["command"][:2] == ["/bin/sh", "-c"]
    assert {m["mountPropagation"] for m in sidecar["volumeMounts"]} == {"Bidirectional"}
    assert {v["name"] for v in plan.volumes} == {m["name"] for m in sidecar["volumeMounts"]}
    assert all("emptyDir" in v for v in plan.volumes)

    studio_mounts = {m["mountPath"]: m for m in plan.volume_mounts}
    assert set(studio_mounts) == {
        "/workspace/data/scratch",
        "/workspace/data/reference-genomes",
        "/workspace/data/minio",
    }
    assert {m["mountPropagation"] for m in studio_mounts.values()} == {"HostToContainer"}
    assert studio_mounts["/workspace/data/reference-genomes"]["readOnly"] is True
    assert "readOnly" not in studio_mounts["/workspace/data/scratch"]

    # Credentials reach the sidecar only as secretKeyRefs: one set per Secret.
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in sidecar["env"]}
    assert refs == {"link-creds", "env-creds"}
    assert all("value" not in e for e in sidecar["env"])


def test_fuse_script() -> None:
    plan = plan_mounts(fuse_inputs())
    script = plan.init_containers[0]["command"][2]
    lines = [line for line in script.splitlines() if "mount-s3" in line]
    scratch = next(line for line in lines if "/mnt/s3/scratch" in line)
    genomes = next(line for line in lines if "/mnt/s3/reference-genomes" in line)
    minio = next(line for line in lines if "/mnt/s3/minio" in line)
    assert "--allow-delete --allow-overwrite" in scratch and "--read-only" not in scratch
    assert "--prefix users/ana/" in scratch
    assert "--read-only" in genomes and "--allow-delete" not in genomes
    assert "--region us-east-1" in genomes
    assert "--endpoint-url http://10.0.0.5:9000 --force-path-style" in minio
    assert "--metadata-ttl 10" in genomes
    assert all("--allow-other --uid 1000 --gid 100" in line for line in lines)
    assert "S3_CRED_" in scratch and "AWS_ACCESS_KEY_ID=" in scratch
    sh = shutil.which("sh")
    if sh:
        subprocess.run([sh, "-n", "-c", script], check=True)


def test_fuse_credentials_never_in_studio_container() -> None:
    inputs = fuse_inputs()
    plan = plan_mounts(inputs)
    pod = session.build_pod(inputs, plan)
    (studio,) = pod["spec"]["containers"]
    assert "AWS_" not in str(studio.get("env"))
    assert "secretKeyRef" not in str(studio)
    assert "envFrom" not in studio
    assert pod["spec"]["initContainers"] == plan.init_containers


def test_csi_credentials_never_in_pod() -> None:
    for driver in ("s3.csi.aws.com", "ru.yandex.s3.csi"):
        inputs = make_inputs(
            [link("d", "s3://data", secret="link-creds")], env={"storage": {"csiDriver": driver}}
        )
        pod = session.build_pod(inputs, plan_mounts(inputs))
        assert "secretKeyRef" not in str(pod) and "AWS_" not in str(pod)
        assert "link-creds" not in str(pod)


def test_fuse_without_image_is_a_problem() -> None:
    inputs = make_inputs([link("d", "s3://data")], env={"storage": {"driver": "fuse"}})
    assert mount_problem(inputs) is not None
    with pytest.raises(MountConfigError) as err:
        plan_mounts(inputs)
    assert err.value.reason == "FuseImageMissing" and "fuseImage" in err.value.message


# ---------------------------------------------------------------------------- common behaviour


def test_missing_and_unready_links() -> None:
    missing = make_inputs([], mounts=["ghost"])
    assert mount_problem(missing) is not None
    with pytest.raises(MountConfigError) as err:
        plan_mounts(missing)
    assert err.value.reason == "DataLinkNotFound" and "ghost" in str(err.value)

    unready = make_inputs([link("d", "s3://data", ready=False)])
    with pytest.raises(MountConfigError) as err:
        plan_mounts(unready)
    assert err.value.reason == "DataLinkNotReady" and "NoSuchBucket" in str(err.value)


def test_cross_region_event() -> None:
    inputs = make_inputs(
        [
            link("far", "s3://far", region="us-west-2"),
            link("near", "s3://near"),
            link("xyz", "s3://xyz", region=None),
        ]
    )
    events = plan_mounts(inputs).events
    assert [(t, r) for t, r, _ in events] == [("Normal", "CrossRegionMount")]
    assert "far" in events[0][2] and "us-west-2" in events[0][2] and "eu-west-1" in events[0][2]
    no_home = make_inputs([link("far", "s3://far", region="us-west-2")], env={"region": None})
    assert plan_mounts(no_home).events == []


def test_names_within_limits() -> None:
    studio = "s" * 240
    link_name = "l" * 63
    plan = plan_mounts(make_inputs([link(link_name, "s3://data")], studio=studio))
    pv, claim = plan.persistent_volumes[0], plan.claims[0]
    assert len(pv["metadata"]["name"]) <= 253 and len(claim["metadata"]["name"]) <= 253
    assert len(plan.volumes[0]["name"]) <= 63
    assert pv["spec"]["claimRef"]["name"] == claim["metadata"]["name"]
    assert claim["spec"]["volumeName"] == pv["metadata"]["name"]


def test_hash_changes_with_access() -> None:
    ro = plan_mounts(make_inputs([link("d", "s3://data")])).persistent_volumes[0]
    ro_again = plan_mounts(make_inputs([link("d", "s3://data")])).persistent_volumes[0]
    rw = plan_mounts(
        make_inputs([link("d", "s3://data")], env={"allowedBuckets": ["data"]})
    ).persistent_volumes[0]
    digest = ro["metadata"]["annotations"][APPLIED_HASH]
    assert digest == ro_again["metadata"]["annotations"][APPLIED_HASH]
    assert digest != rw["metadata"]["annotations"][APPLIED_HASH]


# -------------------------------------------------------------------------------- link_view


def body(generation: int = 2, observed: int | None = 2, status: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": "ref", "namespace": NS, "generation": generation},
        "spec": {"uri": "s3://reference-genomes/hg38", "credentialsSecret": "creds"},
        "status": {
            "observedGeneration": observed,
            "bucket": "reference-genomes",
            "prefix": "hg38",
            "region": "eu-central-1",
            "conditions": [
                {
                    "type": "Ready",
                    "status": status,
                    "reason": "BucketReachable" if status == "True" else "AccessDenied",
                    "message": "m",
                    "observedGeneration": observed,
                }
            ],
        },
    }


def test_link_view() -> None:
    assert link_view("ref", None) is None
    view = link_view("ref", body())
    assert view is not None and view.ready
    assert (view.bucket, view.prefix, view.region) == ("reference-genomes", "hg38", "eu-central-1")
    assert view.spec.credentials_secret == "creds"

    stale = link_view("ref", body(generation=3, observed=2))
    assert stale is not None and not stale.ready and stale.reason == "Pending"

    denied = link_view("ref", body(status="False"))
    assert denied is not None and not denied.ready and denied.reason == "AccessDenied"

    unchecked = link_view("ref", {"metadata": {"generation": 1}, "spec": {"uri": "s3://data"}})
    assert unchecked is not None and not unchecked.ready and unchecked.bucket == "data"

    broken = link_view("ref", {"metadata": {"generation": 1}, "spec": {"uri": "http://nope"}})
    assert broken is not None and not broken.ready and broken.reason == "InvalidSpec"


# ------------------------------------------------------------------- shared identities (policy)

TEAM_A_ONLY = S3Policy(shared_buckets=parse_shared_buckets([f"{NS}=team-a-*"]))


@pytest.mark.parametrize(
    ("env", "secret", "expected"),
    [
        # Mountpoint's CSI driver reads no Secret: its own identity, even with credentials.
        ({}, None, "BucketNotAllowed"),
        ({}, "link-creds", "BucketNotAllowed"),
        ({"credentialsSecret": "env-creds"}, None, "BucketNotAllowed"),
        ({"serviceAccountName": "team-a-s3"}, None, None),  # pod identity: the namespace's own
        ({"storage": {"driver": "fuse", "fuseImage": "m:1"}}, None, "BucketNotAllowed"),  # the node's
        ({"storage": {"driver": "fuse", "fuseImage": "m:1"}}, "link-creds", None),
        ({"storage": {"driver": "fuse", "fuseImage": "m:1"}, "credentialsSecret": "env-creds"}, None, None),
        ({"storage": {"csiDriver": "ru.yandex.s3.csi"}}, "link-creds", None),
        ({"storage": {"csiDriver": "ru.yandex.s3.csi"}}, None, "BucketNotAllowed"),
    ],
)
def test_shared_identity_mounts_only_buckets_bound_to_the_namespace(
    env: dict[str, Any], secret: str | None, expected: str | None
) -> None:
    other = make_inputs([link("d", "s3://team-b-data", secret=secret)], env=env, policy=TEAM_A_ONLY)
    own = make_inputs([link("d", "s3://team-a-data", secret=secret)], env=env, policy=TEAM_A_ONLY)
    problem = mount_problem(other)
    assert (problem[0] if problem else None) == expected
    assert mount_problem(own) is None
    if expected:
        assert problem is not None and "team-b-data" in problem[1] and NS in problem[1]
        with pytest.raises(MountConfigError) as err:
            plan_mounts(other)
        assert err.value.reason == expected


def test_shared_identity_never_sent_to_a_tenant_endpoint() -> None:
    tenant = link("d", "s3://team-a-data", endpoint="https://s3.tenant.example", secret="link-creds")
    problem = mount_problem(make_inputs([tenant], policy=TEAM_A_ONLY))
    assert problem is not None and problem[0] == "CredentialsRequired"
    assert "https://s3.tenant.example" in problem[1]
    trusted = S3Policy(
        allowed_endpoints=parse_endpoints(["https://s3.tenant.example"]),
        shared_buckets=TEAM_A_ONLY.shared_buckets,
    )
    assert mount_problem(make_inputs([tenant], policy=trusted)) is None
    # With the tenant's own keys (fuse), the tenant endpoint is the tenant's business.
    fuse = {"storage": {"driver": "fuse", "fuseImage": "m:1"}}
    assert mount_problem(make_inputs([tenant], env=fuse, policy=TEAM_A_ONLY)) is None


def test_default_policy_binds_nothing() -> None:
    problem = mount_problem(make_inputs([link("d", "s3://data")], policy=S3Policy()))
    assert problem is not None and problem[0] == "BucketNotAllowed"


@pytest.mark.parametrize(
    ("prefix", "endpoint"),
    [("p,allow-root", None), ("p allow-root", None), ("ok", "http://h:1,allow-root"), ("ok", "http://h:1 x")],
)
def test_unsafe_prefix_or_endpoint_never_reaches_mount_options(prefix: str, endpoint: str | None) -> None:
    """A view built around validation (e.g. a link stored before the schema tightened)."""
    spec = DataLinkSpec.model_construct(
        uri=f"s3://data/{prefix}", endpoint_url=endpoint, credentials_secret=None
    )
    view = LinkView(name="d", spec=spec, bucket="data", prefix=prefix, region=None, ready=True)
    for env in (
        {},
        {"storage": {"driver": "fuse", "fuseImage": "m:1"}},
        {"storage": {"csiDriver": "ru.yandex.s3.csi"}},
    ):
        inputs = make_inputs([view], env=env)
        problem = mount_problem(inputs)
        assert problem is not None and problem[0] == "DataLinkInvalid"
        with pytest.raises(MountConfigError):
            plan_mounts(inputs)


def test_comma_prefix_rejected_by_the_model_and_the_view() -> None:
    with pytest.raises(ValueError):
        DataLinkSpec.model_validate({"uri": "s3://data/p,allow-root"})
    view = link_view("d", {"metadata": {"generation": 1}, "spec": {"uri": "s3://data/p,allow-root"}})
    assert view is not None and not view.ready and view.reason == "InvalidSpec"


def test_fuse_rclone_script() -> None:
    inputs = fuse_inputs()
    assert inputs.environment.storage is not None
    inputs.environment.storage.fuse_mounter = FuseMounter.RCLONE
    plan = plan_mounts(inputs)
    script = plan.init_containers[0]["command"][2]
    assert "mount-s3" not in script
    lines = [line for line in script.splitlines() if "rclone mount" in line]
    scratch = next(line for line in lines if "/mnt/s3/scratch" in line)
    genomes = next(line for line in lines if "/mnt/s3/reference-genomes" in line)
    minio = next(line for line in lines if "/mnt/s3/minio" in line)
    assert "--read-only" in genomes and "--vfs-cache-mode" not in genomes
    assert "--vfs-cache-mode writes" in scratch and "--read-only" not in scratch
    assert ":s3,env_auth=true,no_check_bucket=true,provider=AWS,region=eu-west-1:scratch/users/ana" in scratch
    assert "region=us-east-1:reference-genomes" in genomes
    assert 'provider=Other,endpoint="http://10.0.0.5:9000",force_path_style=true:lab' in minio
    assert all(
        "--daemon --allow-non-empty" in line and "--allow-other --uid 1000 --gid 100" in line
        for line in lines
    )
    assert all("--dir-cache-time 10s" in line for line in lines)
    # Keys reach rclone (env_auth) only inside the subshell of the link's own Secret.
    assert "S3_CRED_" in scratch and "AWS_ACCESS_KEY_ID=" in scratch
    sh = shutil.which("sh")
    if sh:
        subprocess.run([sh, "-n", "-c", script], check=True)


def test_fuse_mounter_default_and_wire_name() -> None:
    storage = Storage.model_validate({"driver": "fuse", "fuseImage": "x"})
    assert storage.fuse_mounter == FuseMounter.MOUNTPOINT_S3
    assert Storage.model_validate({"fuseMounter": "rclone"}).dump()["fuseMounter"] == "rclone"
