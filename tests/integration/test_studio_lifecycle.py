"""Studio sessions end to end: the operator as a process, the real API server, kwok's fake node."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, kubectl_binary, wait_for

ENV_SPEC: dict[str, Any] = {
    "env": [
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "PIP_INDEX_URL", "value": "https://pypi.org/simple"},
    ],
    "resourceLabels": {"team": "genomics", "cost-center": "cc-42", "tier": "gold"},
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
}


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    return namespace


def running(cluster: Cluster, ns: str, name: str, timeout: float = 30) -> dict[str, Any]:
    return sh.wait_phase(cluster, ns, name, "Running", timeout=timeout)


def the_pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    (pod,) = sh.live_pods(cluster, ns, name)
    return sh.pod_json(cluster, ns, pod.metadata.name)


def container_env(pod: dict[str, Any]) -> list[tuple[str, str]]:
    (c,) = pod["spec"]["containers"]
    return [(e["name"], e.get("value", "")) for e in c.get("env") or []]


def test_merged_env_and_labels_on_the_real_pod(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns, "aws-eu", ENV_SPEC)
    sh.create_studio(
        cluster,
        ns,
        "rnaseq",
        environment="aws-eu",
        template={"image": sh.IMAGE, "port": 8888, "args": ["lab"]},
        env=[
            {"name": "PIP_INDEX_URL", "value": "https://mirror.example/simple"},
            {"name": "JUPYTER_ENABLE_LAB", "value": "yes"},
        ],
        resourceLabels={"project": "rna", "tier": "silver"},
        removeResourceLabels=["cost-center"],
        resources={"limits": {"memory": "8Gi"}},
    )
    studio = running(cluster, ns, "rnaseq")
    pod = the_pod(cluster, ns, "rnaseq")

    assert container_env(pod) == [
        ("STUDIO_NAME", "rnaseq"),
        ("STUDIO_NAMESPACE", ns),
        ("STUDIO_PORT", "8888"),
        ("STUDIO_DATA_DIR", "/workspace/data"),
        ("AWS_REGION", "eu-west-1"),
        ("PIP_INDEX_URL", "https://mirror.example/simple"),
        ("JUPYTER_ENABLE_LAB", "yes"),
    ]
    expected_labels = {
        "team": "genomics",
        "tier": "silver",
        "project": "rna",
        sh.MANAGED_BY: "studio-operator",
        sh.STUDIO_LABEL: "rnaseq",
    }
    assert pod["metadata"]["labels"] == expected_labels
    (c,) = pod["spec"]["containers"]
    assert c["image"] == sh.IMAGE
    assert c["args"] == ["lab"]
    assert c["ports"][0]["containerPort"] == 8888
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "8Gi"}}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Studio", "rnaseq", studio["metadata"]["uid"])
    assert owner["controller"] is True

    svc = cluster.core.read_namespaced_service("rnaseq", ns)
    assert svc.metadata.labels == expected_labels
    assert svc.spec.selector == {sh.MANAGED_BY: "studio-operator", sh.STUDIO_LABEL: "rnaseq"}
    assert [(p.port, p.target_port) for p in svc.spec.ports] == [(8888, 8888)]

    st = sh.status(studio)
    assert st["session"]["podName"] == pod["metadata"]["name"]
    assert st["connect"] == {
        "service": "rnaseq",
        "port": 8888,
        "command": f"kubectl studio connect rnaseq -n {ns}",
    }
    assert sorted(st["inheritedLabels"]) == ["team"]
    assert st.get("stopReason") is None
    assert sh.cond_true(studio, "Ready")


def test_add_only_creates_no_pod(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "later", state="Stopped")
    studio = sh.wait_phase(cluster, ns, "later", "Stopped", stopReason="NeverStarted")
    assert sh.pods(cluster, ns, "later") == []
    assert not sh.status(studio).get("session")
    assert cluster.core.list_namespaced_service(ns, label_selector=f"{sh.STUDIO_LABEL}=later").items == []
    # kstatus: reconciled, nothing in progress or stuck
    assert sh.cond_true(studio, "Ready")
    assert not sh.cond_true(studio, "Reconciling") and not sh.cond_true(studio, "Stalled")

    # "start" later
    sh.set_state(cluster, ns, "later", "Running")
    running(cluster, ns, "later")
    assert len(sh.live_pods(cluster, ns, "later")) == 1


def test_stop_and_start(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "toggle")
    first = running(cluster, ns, "toggle")
    first_pod = sh.live_pods(cluster, ns, "toggle")[0].metadata.uid
    first_started = sh.status(first)["session"]["startedAt"]

    sh.set_state(cluster, ns, "toggle", "Stopped")
    stopped = sh.wait_phase(cluster, ns, "toggle", "Stopped", stopReason="UserRequested")
    sh.wait_no_pods(cluster, ns, "toggle")
    assert not sh.status(stopped).get("session")
    # The session is the pod alone: the studio's Service (and connect grant) stay while stopped,
    # selecting no pod, and are not rewritten by the next start.
    kept = cluster.core.read_namespaced_service("toggle", ns)
    assert kept.metadata.owner_references[0].uid == stopped["metadata"]["uid"]
    assert not cluster.core.list_namespaced_pod(
        ns, label_selector=",".join(f"{k}={v}" for k, v in kept.spec.selector.items())
    ).items
    sh.wait_event(cluster, ns, "toggle", "SessionStopped")
    assert sh.cond_true(stopped, "Ready") and not sh.cond_true(stopped, "Stalled")

    sh.set_state(cluster, ns, "toggle", "Running")
    second = running(cluster, ns, "toggle")
    pods = sh.live_pods(cluster, ns, "toggle")
    assert len(pods) == 1 and pods[0].metadata.uid != first_pod
    assert sh.status(second).get("stopReason") is None
    assert sh.status(second)["session"]["startedAt"] >= first_started
    again = cluster.core.read_namespaced_service("toggle", ns)
    assert again.metadata.uid == kept.metadata.uid
    assert again.metadata.resource_version == kept.metadata.resource_version


def test_a_pod_slow_to_terminate_keeps_the_studio_stopping(cluster: Cluster, ns: str) -> None:
    """A session pod that takes long to go away (here: a finalizer someone else put on it) keeps
    the studio Stopping, also after the operator's check that it should be gone by now; the studio
    is Stopped once the pod is gone, and no new session starts in between."""
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "slow")
    running(cluster, ns, "slow")
    (pod,) = sh.live_pods(cluster, ns, "slow")
    hold = {"metadata": {"finalizers": ["example.com/hold"]}}
    cluster.core.patch_namespaced_pod(pod.metadata.name, ns, hold)

    sh.set_state(cluster, ns, "slow", "Stopped")
    sh.wait_phase(cluster, ns, "slow", "Stopping")
    # past the pod's deletion deadline, its slack and the operator's re-check (5 s + 10 s)
    time.sleep(18)
    studio = sh.get(cluster, ns, "slow")
    assert sh.status(studio)["phase"] == "Stopping", sh.status(studio)
    held = cluster.core.read_namespaced_pod(pod.metadata.name, ns)
    assert held.metadata.uid == pod.metadata.uid and held.metadata.deletion_timestamp
    assert [p.metadata.uid for p in sh.pods(cluster, ns, "slow")] == [pod.metadata.uid]

    cluster.core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"finalizers": None}})
    sh.wait_phase(cluster, ns, "slow", "Stopped", stopReason="UserRequested")
    sh.wait_no_pods(cluster, ns, "slow")


def _fail_pod(cluster: Cluster, ns: str, pod_name: str, message: str) -> None:
    """What a kubelet reports when the container exits with an error (pods/status)."""
    pod = sh.pod_json(cluster, ns, pod_name)
    now = sh.ago(seconds=0)
    status = {
        "phase": "Failed",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
        ],
        "containerStatuses": [
            {
                "name": "studio",
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "message": message,
                        "startedAt": now,
                        "finishedAt": now,
                    }
                },
            }
        ],
    }
    cluster.core.patch_namespaced_pod_status(pod_name, ns, {"status": status})


def test_errored_from_a_failing_pod_and_no_restart_until_asked(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "crashy")
    running(cluster, ns, "crashy")
    pod_name = sh.live_pods(cluster, ns, "crashy")[0].metadata.name

    _fail_pod(cluster, ns, pod_name, "jupyter: cannot bind port")
    studio = sh.wait_phase(cluster, ns, "crashy", "Errored", stopReason="Failed")
    st = sh.status(studio)
    assert "exited with code 1" in st["message"] and "cannot bind port" in st["message"], st
    event = sh.wait_event(cluster, ns, "crashy", "SessionFailed")
    assert event.type == "Warning" and "cannot bind port" in event.message
    assert not sh.cond_true(studio, "Ready")
    stalled = sh.condition(studio, "Stalled")  # kstatus: Failed until a new start request
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "SessionFailed"

    # the failed pod stays for `kubectl logs`; nothing restarts by itself
    pods = sh.pods(cluster, ns, "crashy")
    assert [p.metadata.name for p in pods] == [pod_name] and pods[0].status.phase == "Failed"
    # a change that is not a start request: reconciled (observedGeneration), but nothing restarts
    sh.patch(cluster, ns, "crashy", {"spec": {"description": "still broken"}})
    sh.wait_phase(cluster, ns, "crashy", "Errored", stopReason="Failed")
    assert [p.metadata.uid for p in sh.pods(cluster, ns, "crashy")] == [pods[0].metadata.uid]
    assert len(sh.events(cluster, ns, "crashy", "SessionFailed")) == 1

    # a new start request: the restart annotation
    sh.annotate(cluster, ns, "crashy", **{sh.RESTART: "2026-11-25T10:00:00Z"})
    studio = running(cluster, ns, "crashy")
    new_pods = sh.live_pods(cluster, ns, "crashy")
    assert len(new_pods) == 1 and new_pods[0].metadata.uid != pods[0].metadata.uid
    assert sh.status(studio).get("stopReason") is None


def test_errored_when_unschedulable_surfaces_the_scheduler_message(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns, spec={"nodeSelector": {"pool": "does-not-exist"}})
    sh.create_studio(cluster, ns, "nowhere")
    studio = sh.wait_phase(cluster, ns, "nowhere", "Errored", timeout=40)
    st = sh.status(studio)
    stalled = sh.condition(studio, "Stalled")
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "Unschedulable"
    assert "node" in st["message"], st
    event = sh.wait_event(cluster, ns, "nowhere", "Unschedulable")
    assert event.type == "Warning"

    # fixing the environment does not move a running session, but a restart applies it
    sh.patch(cluster, ns, "env", {"spec": {"nodeSelector": None}}, kind="ComputeEnvironment")
    sh.set_state(cluster, ns, "nowhere", "Stopped")
    sh.wait_phase(cluster, ns, "nowhere", "Stopped")
    sh.set_state(cluster, ns, "nowhere", "Running")
    running(cluster, ns, "nowhere")


def test_missing_environment_stalls_then_recovers(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "orphan", environment="later-env")
    studio = sh.wait_studio(
        cluster, ns, "orphan", lambda b: sh.cond_true(b, "Stalled"), "Stalled", timeout=20
    )
    stalled = sh.condition(studio, "Stalled")
    assert stalled is not None and stalled["reason"] == "EnvironmentNotFound"
    assert "later-env" in stalled["message"] and "create it" in stalled["message"]
    assert sh.status(studio)["phase"] == "Stopped"
    assert sh.status(studio)["observedGeneration"] == studio["metadata"]["generation"]
    assert not sh.cond_true(studio, "Ready")
    assert sh.pods(cluster, ns, "orphan") == []
    event = sh.wait_event(cluster, ns, "orphan", "EnvironmentNotFound")
    assert event.type == "Warning"

    sh.create_environment(cluster, ns, "later-env")
    studio = running(cluster, ns, "orphan")
    assert not sh.cond_true(studio, "Stalled")


def test_environment_deleted_while_running_keeps_the_session(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "keep")
    running(cluster, ns, "keep")
    pod_uid = sh.live_pods(cluster, ns, "keep")[0].metadata.uid
    sh.delete(cluster, ns, "env", kind="ComputeEnvironment")
    studio = sh.wait_studio(
        cluster,
        ns,
        "keep",
        lambda b: (sh.condition(b, "EnvironmentAvailable") or {}).get("status") == "False",
        "EnvironmentAvailable False",
    )
    assert sh.status(studio)["phase"] == "Running"
    assert [p.metadata.uid for p in sh.live_pods(cluster, ns, "keep")] == [pod_uid]
    # the next session cannot start without it
    sh.set_state(cluster, ns, "keep", "Stopped")
    sh.wait_no_pods(cluster, ns, "keep")
    sh.set_state(cluster, ns, "keep", "Running")
    studio = sh.wait_studio(cluster, ns, "keep", lambda b: sh.cond_true(b, "Stalled"), "Stalled")
    assert (sh.condition(studio, "Stalled") or {}).get("reason") == "EnvironmentNotFound"
    assert sh.pods(cluster, ns, "keep") == []


def test_deleting_a_studio_removes_its_objects(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "doomed")
    running(cluster, ns, "doomed")
    selector = f"{sh.STUDIO_LABEL}=doomed"
    rbac = cluster.api(client.RbacAuthorizationV1Api)
    assert cluster.core.list_namespaced_service(ns, label_selector=selector).items

    sh.delete(cluster, ns, "doomed")
    wait_for(
        lambda: sh.gone(lambda: sh.get(cluster, ns, "doomed")), timeout=20, message="the studio to be deleted"
    )

    def leftovers() -> list[str]:
        found = [f"pod/{p.metadata.name}" for p in sh.pods(cluster, ns, "doomed")]
        found += [
            f"service/{s.metadata.name}"
            for s in cluster.core.list_namespaced_service(ns, label_selector=selector).items
        ]
        found += [
            f"role/{r.metadata.name}" for r in rbac.list_namespaced_role(ns, label_selector=selector).items
        ]
        found += [
            f"rolebinding/{r.metadata.name}"
            for r in rbac.list_namespaced_role_binding(ns, label_selector=selector).items
        ]
        found += [
            f"pvc/{c.metadata.name}"
            for c in cluster.core.list_namespaced_persistent_volume_claim(ns, label_selector=selector).items
        ]
        return found

    wait_for(lambda: not leftovers(), timeout=40, message=lambda: f"garbage collection of {leftovers()}")


def test_environment_change_applies_at_the_next_session(cluster: Cluster, ns: str) -> None:
    sh.create_environment(
        cluster,
        ns,
        spec={"env": [{"name": "MODE", "value": "old"}], "resourceLabels": {"team": "a", "legacy": "yes"}},
    )
    sh.create_studio(cluster, ns, "evolving")
    running(cluster, ns, "evolving")
    old_pod = the_pod(cluster, ns, "evolving")
    assert ("MODE", "old") in container_env(old_pod)

    sh.patch(
        cluster,
        ns,
        "env",
        {
            "spec": {
                "env": [{"name": "MODE", "value": "new"}],
                "resourceLabels": {"team": "b", "legacy": None},
            }
        },
        kind="ComputeEnvironment",
    )
    studio = sh.wait_studio(
        cluster, ns, "evolving", lambda b: sh.cond_true(b, "RestartRequired"), "RestartRequired"
    )
    assert sh.status(studio)["phase"] == "Running"
    assert "stop and start" in (sh.condition(studio, "RestartRequired") or {})["message"]
    assert sh.status(studio)["inheritedLabels"] == ["legacy", "team"]  # what the running pod has
    # the running session keeps the pod it started with
    same = the_pod(cluster, ns, "evolving")
    assert same["metadata"]["uid"] == old_pod["metadata"]["uid"]
    assert ("MODE", "old") in container_env(same)

    sh.set_state(cluster, ns, "evolving", "Stopped")
    sh.wait_no_pods(cluster, ns, "evolving")
    sh.set_state(cluster, ns, "evolving", "Running")
    studio = running(cluster, ns, "evolving")
    assert not sh.cond_true(studio, "RestartRequired")
    new_pod = the_pod(cluster, ns, "evolving")
    assert ("MODE", "new") in container_env(new_pod)
    assert new_pod["metadata"]["labels"]["team"] == "b"
    assert "legacy" not in new_pod["metadata"]["labels"]
    svc = cluster.core.read_namespaced_service("evolving", ns)
    assert svc.metadata.labels["team"] == "b" and "legacy" not in svc.metadata.labels
    assert sh.status(studio)["inheritedLabels"] == ["team"]


def test_kstatus_generation_and_conditions(cluster: Cluster, ns: str) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "kst", state="Stopped")
    studio = sh.wait_phase(cluster, ns, "kst", "Stopped")
    generation = studio["metadata"]["generation"]
    for type_ in ("Ready", "Reconciling", "Stalled"):
        cond = sh.condition(studio, type_)
        assert cond is not None, type_
        assert cond["observedGeneration"] == generation
        assert cond["lastTransitionTime"] and cond["reason"]

    updated = sh.patch(cluster, ns, "kst", {"spec": {"description": "new words", "state": "Running"}})
    assert updated["metadata"]["generation"] > generation
    studio = running(cluster, ns, "kst")  # waits for observedGeneration == generation
    assert sh.status(studio)["observedGeneration"] == updated["metadata"]["generation"]
    ready = sh.condition(studio, "Ready")
    assert ready is not None and ready["status"] == "True" and ready["reason"] == "SessionRunning"
    assert ready["observedGeneration"] == updated["metadata"]["generation"]
    assert not sh.cond_true(studio, "Reconciling") and not sh.cond_true(studio, "Stalled")


@pytest.mark.skipif(kubectl_binary() is None, reason="kubectl not available")
def test_kubectl_get_studios_columns(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    sh.create_environment(cluster, ns)
    sh.create_studio(cluster, ns, "shown", private=True)
    sh.create_studio(cluster, ns, "idle", state="Stopped")
    studio = running(cluster, ns, "shown")
    sh.wait_phase(cluster, ns, "idle", "Stopped")
    cache = f"--cache-dir={tmp_path}"  # fresh discovery, as on a new machine
    out = cluster.kubectl(cache, "get", "studios", "-n", ns).stdout
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "REASON", "IMAGE", "PRIVATE", "EXPIRES", "AGE"]
    table = {r.split()[0]: r.split() for r in rows}
    expires = sh.status(studio)["session"]["expiresAt"]
    assert table["shown"][1:7] == ["Running", "True", "SessionRunning", sh.IMAGE, "true", expires]
    assert table["idle"][1:6] == ["Stopped", "True", "NeverStarted", sh.IMAGE, "false"]
    assert len(table["idle"]) == 7 or table["idle"][6] == "<none>"  # no expiry without a session
    wide = cluster.kubectl(cache, "get", "st", "-n", ns, "-o", "wide").stdout
    wide_header, *wide_rows = wide.strip().splitlines()
    assert wide_header.split()[-3:] == ["ENVIRONMENT", "MESSAGE", "AGE"]
    idle = next(r for r in wide_rows if r.startswith("idle "))
    assert "set spec.state to Running to start a session" in idle


def test_workspace_volume_is_kept_across_sessions(cluster: Cluster, ns: str) -> None:
    # No dynamic provisioner in the local control plane: a static volume for the claim to bind.
    pv_name = f"{ns}-workspace"
    cluster.core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name, labels={"studio-test": "true"}),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name="manual",
                host_path=client.V1HostPathVolumeSource(path="/tmp/studio-test"),
                persistent_volume_reclaim_policy="Delete",
            ),
        )
    )
    try:
        sh.create_environment(cluster, ns, spec={"resourceLabels": {"team": "a"}})
        sh.create_studio(
            cluster, ns, "persist", workspaceVolume={"size": "1Gi", "storageClassName": "manual"}
        )
        running(cluster, ns, "persist")
        claim = cluster.core.read_namespaced_persistent_volume_claim("persist-workspace", ns)
        assert claim.metadata.labels[sh.STUDIO_LABEL] == "persist" and claim.metadata.labels["team"] == "a"
        assert claim.spec.resources.requests == {"storage": "1Gi"}
        assert claim.spec.storage_class_name == "manual"
        pod = the_pod(cluster, ns, "persist")
        assert {"name": "workspace", "mountPath": "/workspace"} in pod["spec"]["containers"][0][
            "volumeMounts"
        ]
        assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "persist-workspace"}} in pod[
            "spec"
        ]["volumes"]

        sh.set_state(cluster, ns, "persist", "Stopped")
        sh.wait_phase(cluster, ns, "persist", "Stopped")
        sh.wait_no_pods(cluster, ns, "persist")
        kept = cluster.core.read_namespaced_persistent_volume_claim("persist-workspace", ns)
        assert kept.metadata.uid == claim.metadata.uid and kept.metadata.deletion_timestamp is None

        sh.set_state(cluster, ns, "persist", "Running")
        running(cluster, ns, "persist")
        again = cluster.core.read_namespaced_persistent_volume_claim("persist-workspace", ns)
        assert again.metadata.uid == claim.metadata.uid
    finally:
        cluster.core.delete_persistent_volume(pv_name)


def test_crash_and_restart_converge_without_duplicates(
    cluster: Cluster, ns: str, operator: OperatorProcess
) -> None:
    sh.create_environment(cluster, ns)
    names_ = [f"c{i}" for i in range(6)]
    for name in names_:
        sh.create_studio(cluster, ns, name)
    # crash while the sessions are being created (some pods made, some statuses not yet written)
    wait_for(lambda: sh.pods(cluster, ns, names_[0]), timeout=20, message="a first pod")
    operator.kill()
    operator.start()
    for name in names_:
        studio = running(cluster, ns, name)
        assert len(sh.pods(cluster, ns, name)) == 1, name
        assert sh.status(studio)["session"]["podName"] == sh.pods(cluster, ns, name)[0].metadata.name
    services = cluster.core.list_namespaced_service(ns).items
    assert sorted(s.metadata.name for s in services) == sorted(names_)
