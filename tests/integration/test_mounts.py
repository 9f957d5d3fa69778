"""S3 mounts end to end: DataLinks checked against a real S3 endpoint (moto), a studio whose pod,
PersistentVolumes and claims carry the right access modes, and clean-up that never touches data.

kwok plays the kubelet, so nothing is really mounted: these tests check what the operator asks
Kubernetes for. The mount builders themselves are unit-tested in tests/unit/test_mounts.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for
from s3_server import S3Server

pytest_plugins = ["conftest_s3"]  # the s3_server and bucket fixtures


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    return namespace


def make_secret(cluster: Cluster, ns: str, name: str, data: dict[str, str]) -> None:
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )


def make_link(cluster: Cluster, ns: str, name: str, uri: str, s3: S3Server, secret: str = "s3-creds") -> None:
    spec = {"uri": uri, "endpointURL": s3.endpoint, "credentialsSecret": secret}
    sh.create(cluster, ns, sh.obj("DataLink", name, spec))


def link_ready(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = sh.get(cluster, ns, name, kind="DataLink")
        ok = (
            sh.cond_true(body, "Ready")
            and sh.status(body).get("observedGeneration") == body["metadata"]["generation"]
        )
        return body if ok else None

    result: dict[str, Any] = wait_for(check, timeout=60, message=f"DataLink {ns}/{name} Ready")
    return result


def pvs_of(cluster: Cluster, ns: str, studio: str) -> list[dict[str, Any]]:
    items = cluster.core.list_persistent_volume(
        label_selector=f"studios.dev/namespace={ns},{sh.STUDIO_LABEL}={studio}"
    )
    result: list[dict[str, Any]] = cluster.api_client.sanitize_for_serialization(items)["items"]
    return result


def claims_of(cluster: Cluster, ns: str, studio: str) -> dict[str, dict[str, Any]]:
    items = cluster.core.list_namespaced_persistent_volume_claim(
        ns, label_selector=f"{sh.STUDIO_LABEL}={studio}"
    )
    data = cluster.api_client.sanitize_for_serialization(items)["items"]
    return {c["metadata"]["name"]: c for c in data}


def test_modes_on_pod_pvs_and_claims_then_cleanup(
    cluster: Cluster, ns: str, s3_server: S3Server, bucket: Callable[..., str], operator: OperatorProcess
) -> None:
    writable = bucket("scratch", region="eu-west-1", objects={"notes.txt": b"keep me"})
    readonly = bucket("genomes", region="us-west-2", objects={"hg38/chr1.fa": b">chr1\n"})
    make_secret(cluster, ns, "s3-creds", s3_server.admin.secret_data())
    make_link(cluster, ns, "scratch", f"s3://{writable}", s3_server)
    make_link(cluster, ns, "genomes", f"s3://{readonly}/hg38", s3_server)
    link_ready(cluster, ns, "scratch")
    link_ready(cluster, ns, "genomes")
    sh.create_environment(
        cluster,
        ns,
        "aws-eu",
        # `data` is a prefix of no link's bucket name here, but exact matching is what is tested:
        # the environment allows the writable bucket only, under s3:// and with a trailing slash.
        {"region": "eu-west-1", "allowedBuckets": [f"s3://{writable}/", readonly[:-1]]},
    )
    sh.create_studio(
        cluster, ns, "rnaseq", environment="aws-eu", mounts=[{"dataLink": "scratch"}, {"dataLink": "genomes"}]
    )
    studio = sh.wait_phase(cluster, ns, "rnaseq", "Running", timeout=60)

    assert sh.status(studio)["mounts"] == [
        {
            "dataLink": "scratch",
            "path": "/workspace/data/scratch",
            "bucket": writable,
            "prefix": "",
            "access": "ReadWrite",
        },
        {
            "dataLink": "genomes",
            "path": "/workspace/data/genomes",
            "bucket": readonly,
            "prefix": "hg38",
            "access": "ReadOnly",
        },
    ]

    # The pod: claims and container mounts, read-only where the bucket is not allowed.
    (pod_obj,) = sh.live_pods(cluster, ns, "rnaseq")
    pod = sh.pod_json(cluster, ns, pod_obj.metadata.name)
    (container,) = pod["spec"]["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    rw, ro = mounts["/workspace/data/scratch"], mounts["/workspace/data/genomes"]
    assert not rw.get("readOnly")
    assert ro["readOnly"] is True
    assert not volumes[rw["name"]]["persistentVolumeClaim"].get("readOnly")
    assert volumes[ro["name"]]["persistentVolumeClaim"]["readOnly"] is True

    # PVs (cluster-scoped, Retain) and claims (owned by the studio).
    pvs = {pv["metadata"]["labels"]["studios.dev/data-link"]: pv for pv in pvs_of(cluster, ns, "rnaseq")}
    assert set(pvs) == {"scratch", "genomes"}
    assert pvs["scratch"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvs["genomes"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pvs["genomes"]["spec"]["csi"]["readOnly"] is True
    assert "read-only" in pvs["genomes"]["spec"]["mountOptions"]
    assert {"allow-delete", "allow-overwrite"} <= set(pvs["scratch"]["spec"]["mountOptions"])
    assert f"endpoint-url {s3_server.endpoint}" in pvs["genomes"]["spec"]["mountOptions"]
    assert "region us-west-2" in pvs["genomes"]["spec"]["mountOptions"]
    assert "prefix hg38/" in pvs["genomes"]["spec"]["mountOptions"]
    for pv in pvs.values():
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert pv["spec"]["csi"]["volumeAttributes"]["bucketName"] in (writable, readonly)
    claims = claims_of(cluster, ns, "rnaseq")
    for link_name, pv in pvs.items():
        claim = claims[pv["spec"]["claimRef"]["name"]]
        assert claim["spec"]["volumeName"] == pv["metadata"]["name"]
        assert claim["spec"]["accessModes"] == pv["spec"]["accessModes"], link_name
        assert claim["metadata"]["ownerReferences"][0]["uid"] == studio["metadata"]["uid"]
    wait_for(
        lambda: all(c["status"].get("phase") == "Bound" for c in claims_of(cluster, ns, "rnaseq").values()),
        timeout=30,
        message="claims Bound to their PVs",
    )

    # The genomes bucket is in another region than the environment.
    cross = sh.wait_event(cluster, ns, "rnaseq", "CrossRegionMount")
    assert "genomes" in (cross.message or "") and "us-west-2" in (cross.message or "")

    # Credentials appear nowhere: pod, studio status, events, operator log.
    keys = s3_server.admin
    texts = [
        json.dumps(pod),
        json.dumps(sh.get(cluster, ns, "rnaseq")),
        json.dumps([json.dumps(pv) for pv in pvs.values()]),
        *(e.message or "" for e in sh.events(cluster, ns, "rnaseq")),
        operator.log_text(),
    ]
    for text in texts:
        assert keys.secret_access_key not in text and keys.access_key_id not in text
    assert "secretKeyRef" not in json.dumps(container) and "s3-creds" not in json.dumps(container)

    # Deleting the studio removes its PVs (operator) and claims (garbage collection), not the data.
    sh.delete(cluster, ns, "rnaseq")
    wait_for(lambda: not pvs_of(cluster, ns, "rnaseq"), timeout=60, message="the studio's PVs deleted")
    wait_for(lambda: not claims_of(cluster, ns, "rnaseq"), timeout=60, message="the studio's claims deleted")
    s3 = s3_server.client()
    assert s3.get_object(Bucket=writable, Key="notes.txt")["Body"].read() == b"keep me"
    assert s3.get_object(Bucket=readonly, Key="hg38/chr1.fa")["Body"].read() == b">chr1\n"


def test_unready_link_stalls_then_starts_by_itself(
    cluster: Cluster, ns: str, s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    name = "late-" + bucket("probe")  # not created yet
    make_secret(cluster, ns, "s3-creds", s3_server.admin.secret_data())
    make_link(cluster, ns, "late", f"s3://{name}", s3_server)
    sh.create_environment(cluster, ns, "env", {})
    sh.create_studio(cluster, ns, "waiting", mounts=[{"dataLink": "ghost"}, {"dataLink": "late"}])

    sh.wait_studio(
        cluster, ns, "waiting", sh.stalled_on("DataLinkNotFound", "ghost"), "Stalled: ghost missing"
    )
    assert not sh.live_pods(cluster, ns, "waiting")
    sh.patch(cluster, ns, "waiting", {"spec": {"mounts": [{"dataLink": "late"}]}})
    sh.wait_studio(
        cluster, ns, "waiting", sh.stalled_on("DataLinkNotReady", "late"), "Stalled: late not Ready"
    )
    assert not sh.live_pods(cluster, ns, "waiting")
    # Create the bucket and ask for a re-check: the link turns Ready and the studio starts.
    s3_server.create_bucket(name)
    sh.patch(
        cluster, ns, "late", {"metadata": {"annotations": {"studios.dev/recheck": "1"}}}, kind="DataLink"
    )
    sh.wait_phase(cluster, ns, "waiting", "Running", timeout=60)


def test_fuse_sidecar_on_the_real_pod(
    cluster: Cluster, ns: str, s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    name = bucket("fuse")
    make_secret(cluster, ns, "s3-creds", s3_server.admin.secret_data())
    make_link(cluster, ns, "data", f"s3://{name}", s3_server)
    link_ready(cluster, ns, "data")
    sh.create_environment(
        cluster,
        ns,
        "fuse-env",
        {
            "securityProfile": "Baseline",
            "storage": {"driver": "fuse", "fuseImage": "registry.invalid/mount-s3:1"},
        },
    )
    sh.create_studio(cluster, ns, "fusey", environment="fuse-env", mounts=[{"dataLink": "data"}])
    sh.wait_studio(
        cluster, ns, "fusey", lambda b: bool(sh.live_pods(cluster, ns, "fusey")), "a session pod", timeout=60
    )
    (pod_obj,) = sh.live_pods(cluster, ns, "fusey")
    pod = sh.pod_json(cluster, ns, pod_obj.metadata.name)
    (sidecar,) = pod["spec"]["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["securityContext"]["privileged"] is True
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in sidecar["env"]} == {"s3-creds"}
    (container,) = pod["spec"]["containers"]
    assert "secretKeyRef" not in json.dumps(container)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/workspace/data/data"]
    assert mount["mountPropagation"] == "HostToContainer" and mount["readOnly"] is True
    assert not pvs_of(cluster, ns, "fusey")
