"""Every studio and data link state, as the clients GitOps users run read the live objects:
kstatus (sigs.k8s.io/cli-utils), the shipped Argo CD health checks (run by gopher-lua, as Argo CD
runs them), the Flux CEL health check from docs/gitops.md (cel-go, evaluated as
kustomize-controller does) and `kubectl wait`. Expectations: the tables in docs/gitops.md.

The operator drives each studio into its state on the real API server. Written directly are
only what kwok's fake kubelet cannot produce (an image pull error, a crash loop, an exit: the
pod's status, as a kubelet would report it) and a session's start time (an expired lifespan
without waiting hours). A test finalizer on a pod holds its deletion, so Stopping, and the
Starting that waits for it, last long enough to be read."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import gitops_clients as gc
import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, kubectl_binary, wait_for
from s3_server import Keys, S3Server, closed_port

pytest_plugins = ["conftest_s3"]

HOLD = "tests.studios.dev/hold"  # a pod finalizer: the pod stays Terminating until removed
CONDITIONS = ("Ready", "Reconciling", "Stalled")


def studio_rows() -> dict[str, dict[str, str]]:
    return gc.docs_table("Studio state")


def link_rows() -> dict[str, dict[str, str]]:
    return gc.docs_table("DataLink state")


# ---------------------------------------------------------------- driving states


def pod_of(cluster: Cluster, ns: str, name: str) -> str:
    def one() -> str | None:
        pods = sh.live_pods(cluster, ns, name)
        return pods[0].metadata.name if len(pods) == 1 else None

    found: str = wait_for(one, timeout=30, message=f"the session pod of {name}")
    return found


def report(cluster: Cluster, ns: str, pod_name: str, state: dict[str, Any], phase: str) -> None:
    """What a kubelet reports for the studio container (pods/status)."""
    now = sh.ago(seconds=0)
    pod = sh.pod_json(cluster, ns, pod_name)
    status = {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now},
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "ContainersNotReady",
                "lastTransitionTime": now,
            },
        ],
        "containerStatuses": [
            {
                "name": "studio",
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    cluster.core.patch_namespaced_pod_status(pod_name, ns, {"status": status})


def waiting(reason: str, message: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


def exited(message: str) -> dict[str, Any]:
    now = sh.ago(seconds=0)
    return {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "message": message,
            "startedAt": now,
            "finishedAt": now,
        }
    }


def settled(
    cluster: Cluster,
    ns: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 40,
) -> dict[str, Any]:
    """The studio once its status for the current generation satisfies check."""

    def ok(body: dict[str, Any]) -> bool:
        st = sh.status(body)
        return st.get("observedGeneration") == body["metadata"]["generation"] and check(body)

    return sh.wait_studio(cluster, ns, name, ok, what, timeout)


def phase_is(phase: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda b: (
        sh.status(b).get("phase") == phase and all(sh.status(b).get(k) == v for k, v in fields.items())
    )


def kubectl_wait_ready(cluster: Cluster, ns: str, name: str, kind: str = "studio") -> str:
    """`kubectl wait --for=condition=Ready` with a short timeout: "met" or "waits"."""
    kubectl = kubectl_binary()
    assert kubectl, "kubectl on PATH (or in .cluster/bin)"
    done = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            ns,
            "wait",
            f"{kind}/{name}",
            "--for=condition=Ready",
            "--timeout=3s",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode == 0:
        assert "condition met" in done.stdout, done.stdout
        return "met"
    assert "timed out" in done.stderr, done.stderr
    return "waits"


def conditions_of(body: dict[str, Any]) -> dict[str, str]:
    return {t: (sh.condition(body, t) or {}).get("status", "-") for t in CONDITIONS}


# ---------------------------------------------------------------- the test


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    gc.binary()  # built (or found in the cache) before any state is driven: a build failure fails fast
    return namespace


def test_every_studio_state_as_gitops_clients_read_it(
    cluster: Cluster, ns: str, s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    rows = studio_rows()
    live: dict[str, dict[str, Any]] = {}  # table row -> the object as the API server served it
    waits: dict[str, str] = {}  # table row -> kubectl wait's outcome, read while the state holds

    sh.create_environment(cluster, ns, "env")
    sh.create_environment(cluster, ns, "moved")
    sh.create_environment(cluster, ns, "nowhere", {"nodeSelector": {"pool": "does-not-exist"}})
    sh.create_environment(cluster, ns, "fuse", {"storage": {"driver": "fuse"}})
    cluster.core.create_namespaced_secret(
        ns, {"metadata": {"name": "s3"}, "stringData": s3_server.admin.secret_data()}
    )
    reachable = bucket("reachable")
    for link, uri in (("reachable", f"s3://{reachable}"), ("nobucket", f"s3://missing-{reachable}")):
        sh.create(
            cluster,
            ns,
            sh.obj(
                "DataLink", link, {"uri": uri, "endpointURL": s3_server.endpoint, "credentialsSecret": "s3"}
            ),
        )

    # No status yet: the create's answer, served before the operator can have written anything.
    live["no status yet"] = sh.create_studio(cluster, ns, "never", state="Stopped")
    for name in ("running", "restart", "stopped", "expired", "failed", "pull", "crash", "held"):
        extra: dict[str, Any] = {"lifespan": {"policy": "StopAfter", "hours": 1}} if name == "expired" else {}
        sh.create_studio(cluster, ns, name, environment="moved" if name == "restart" else "env", **extra)
    sh.create_studio(cluster, ns, "unschedulable", environment="nowhere")
    sh.create_studio(cluster, ns, "noenv", environment="missing")
    sh.create_studio(cluster, ns, "nolink", mounts=[{"dataLink": "ghost"}])
    sh.create_studio(cluster, ns, "badlink", mounts=[{"dataLink": "nobucket"}])
    sh.create_studio(cluster, ns, "fuse", environment="fuse", mounts=[{"dataLink": "reachable"}])

    live["NeverStarted"] = settled(
        cluster, ns, "never", phase_is("Stopped", stopReason="NeverStarted"), "NeverStarted"
    )
    # Generation not yet observed: the answer to a spec change, before the operator saw it.
    live["generation not yet observed"] = sh.patch(cluster, ns, "never", {"spec": {"description": "changed"}})
    for name in ("running", "restart", "stopped", "expired", "failed", "pull", "crash", "held"):
        settled(cluster, ns, name, phase_is("Running"), "Running")
    live["Running"] = sh.get(cluster, ns, "running")

    sh.patch(
        cluster, ns, "moved", {"spec": {"env": [{"name": "NEW", "value": "1"}]}}, kind="ComputeEnvironment"
    )
    live["RestartRequired"] = settled(
        cluster, ns, "restart", lambda b: sh.cond_true(b, "RestartRequired"), "RestartRequired"
    )
    sh.set_state(cluster, ns, "stopped", "Stopped")
    session = sh.status(sh.get(cluster, ns, "expired"))["session"]
    sh.patch_status(cluster, ns, "expired", {"session": {**session, "startedAt": sh.ago(hours=2)}})
    report(cluster, ns, pod_of(cluster, ns, "failed"), exited("jupyter: cannot bind port"), "Failed")
    report(
        cluster,
        ns,
        pod_of(cluster, ns, "pull"),
        waiting("ImagePullBackOff", "Back-off pulling image"),
        "Pending",
    )
    report(cluster, ns, pod_of(cluster, ns, "crash"), waiting("CrashLoopBackOff", "back-off 5m0s"), "Running")

    live["UserRequested"] = settled(
        cluster, ns, "stopped", phase_is("Stopped", stopReason="UserRequested"), "stopped"
    )
    live["LifespanExpired"] = settled(
        cluster, ns, "expired", phase_is("Stopped", stopReason="LifespanExpired"), "expired", timeout=60
    )
    live["Failed"] = settled(cluster, ns, "failed", phase_is("Errored", stopReason="Failed"), "failed")
    live["Errored: ImagePullBackOff"] = settled(
        cluster, ns, "pull", sh.stalled_on("ImagePullBackOff"), "pull error"
    )
    live["Errored: CrashLoopBackOff"] = settled(
        cluster, ns, "crash", sh.stalled_on("CrashLoopBackOff"), "crash loop"
    )
    live["Errored: Unschedulable"] = settled(
        cluster, ns, "unschedulable", sh.stalled_on("Unschedulable"), "unschedulable"
    )
    for row, name in (
        ("Stalled: EnvironmentNotFound", "noenv"),
        ("Stalled: DataLinkNotFound", "nolink"),
        ("Stalled: DataLinkNotReady", "badlink"),
        ("Stalled: FuseImageMissing", "fuse"),
    ):
        live[row] = settled(cluster, ns, name, sh.stalled_on(row.split(": ")[1]), row)

    # Stopping, then Starting while the previous session's pod is still terminating.
    held_pod = pod_of(cluster, ns, "held")
    cluster.core.patch_namespaced_pod(held_pod, ns, {"metadata": {"finalizers": [HOLD]}})
    try:
        sh.set_state(cluster, ns, "held", "Stopped")
        live["Stopping"] = settled(cluster, ns, "held", phase_is("Stopping"), "Stopping")
        waits["Stopping"] = kubectl_wait_ready(cluster, ns, "held")
        sh.set_state(cluster, ns, "held", "Running")
        live["Starting"] = settled(cluster, ns, "held", phase_is("Starting"), "Starting")
        waits["Starting"] = kubectl_wait_ready(cluster, ns, "held")
    finally:
        cluster.core.patch_namespaced_pod(held_pod, ns, {"metadata": {"finalizers": None}})
    settled(cluster, ns, "held", phase_is("Running"), "Running again once the old pod is gone")

    # kubectl wait on every settled state (they hold: nothing changes them any more)
    names = {row: body["metadata"]["name"] for row, body in live.items() if row not in waits}
    transient = {"no status yet", "generation not yet observed"}  # answers to writes, not states that hold
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = pool.map(
            lambda n: kubectl_wait_ready(cluster, ns, n), [names[r] for r in names if r not in transient]
        )
        waits.update(zip([r for r in names if r not in transient], outcomes, strict=True))

    assert set(live) == set(rows), "every row of the docs' table is driven here"
    assert sh.status(live["no status yet"]) == {"observedGeneration": 0}  # the CRD's default
    assert (
        live["generation not yet observed"]["metadata"]["generation"]
        > sh.status(live["generation not yet observed"])["observedGeneration"]
    )
    results = {row: result for row, result in zip(live, gc.evaluate(live.values()), strict=True)}

    seen: dict[str, dict[str, str]] = {}
    for row, body in live.items():
        st = sh.status(body)
        result = results[row]
        assert not result["kstatus"].get("error") and not result["argo"].get("error"), result
        assert not result["cel"].get("error"), (row, result["cel"])
        seen[row] = {
            "phase": st.get("phase"),
            "stopReason": st.get("stopReason"),
            **conditions_of(body),
            "kstatus": result["kstatus"]["status"],
            "Argo CD": result["argo"]["status"],
            "Flux CEL below": result["cel"]["status"],
        }
        if row not in transient:
            # The transient rows are answers to writes that the operator overtakes within
            # milliseconds: there is nothing left for kubectl wait to read.
            seen[row]["kubectl wait --for=condition=Ready"] = waits[row]
    expected: dict[str, dict[str, str]] = {}
    for row, cells in rows.items():
        expected[row] = {
            **{t: cells[t] for t in CONDITIONS},
            "kstatus": cells["kstatus"],
            "Argo CD": cells["Argo CD"],
            "Flux CEL below": cells["Flux CEL below"],
        }
        if row not in transient:
            expected[row]["kubectl wait --for=condition=Ready"] = cells[
                "`kubectl wait --for=condition=Ready`"
            ]
    # A spec change keeps the previous state's conditions (here NeverStarted's) until it is observed.
    previous = expected["generation not yet observed"]
    assert all(previous[t] == "as before" for t in CONDITIONS)
    previous.update({t: expected["NeverStarted"][t] for t in CONDITIONS})
    assert {
        r: {k: v for k, v in s.items() if k not in ("phase", "stopReason")} for r, s in seen.items()
    } == expected
    # the phase / stopReason column too (the Errored and Stalled rows name no stopReason)
    for row, cells in rows.items():
        phase, _, reason = cells["phase, stopReason"].partition(", ")
        if row not in transient:
            assert (seen[row]["phase"], seen[row]["stopReason"] or "") == (phase, reason), row

    # What `kubectl get` shows: READY and REASON (Ready's reason explains a Stalled studio), MESSAGE in -o wide
    kubectl = kubectl_binary()
    assert kubectl
    table = subprocess.run(
        [kubectl, "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "get", "studios", "-o", "wide"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    header = table[0].split()
    assert header[:4] == ["NAME", "PHASE", "READY", "REASON"] and "MESSAGE" in header
    line = next(row for row in table if row.startswith("noenv "))
    assert (
        line.split()[1:4] == ["Stopped", "False", "EnvironmentNotFound"]
        and "'missing' does not exist" in line
    )
    line = next(row for row in table if row.startswith("expired "))
    assert line.split()[1:4] == ["Stopped", "True", "LifespanExpired"]


def test_every_datalink_state_as_gitops_clients_read_it(
    cluster: Cluster, ns: str, s3_server: S3Server, bucket: Callable[..., str]
) -> None:
    rows = link_rows()
    name = bucket("links")
    assert s3_server.no_access is not None
    secrets = {
        "s3": s3_server.admin.secret_data(),
        "denied": s3_server.no_access.secret_data(),
        "bogus": Keys("AKIAUNKNOWN000000000", "bogus-secret-value-never-logged").secret_data(),
    }
    for secret, data in secrets.items():
        cluster.core.create_namespaced_secret(ns, {"metadata": {"name": secret}, "stringData": data})
    cases = {
        "BucketReachable": (f"s3://{name}", s3_server.endpoint, "s3"),
        "NoSuchBucket": (f"s3://missing-{name}", s3_server.endpoint, "s3"),
        "AccessDenied": (f"s3://{name}", s3_server.endpoint, "denied"),
        "InvalidCredentials": (f"s3://{name}", s3_server.endpoint, "bogus"),
        "SecretNotFound": (f"s3://{name}", s3_server.endpoint, "nope"),
        "EndpointUnreachable": (f"s3://{name}", f"http://127.0.0.1:{closed_port()}", "s3"),
    }
    live: dict[str, dict[str, Any]] = {}
    for reason, (uri, endpoint, secret) in cases.items():
        spec = {"uri": uri, "endpointURL": endpoint, "credentialsSecret": secret}
        created = sh.create(cluster, ns, sh.obj("DataLink", reason.lower(), spec))
        if reason == "BucketReachable":
            live["not checked yet"] = created  # the create's answer: served with observedGeneration 0
    for reason in cases:

        def checked(reason: str = reason) -> dict[str, Any] | None:
            body = sh.get(cluster, ns, reason.lower(), kind="DataLink")
            st = sh.status(body)
            current = st.get("observedGeneration") == body["metadata"]["generation"]
            return body if current and (sh.condition(body, "Ready") or {}).get("reason") == reason else None

        live[reason] = wait_for(checked, timeout=60, message=f"DataLink {reason}")
    assert set(live) == set(rows)
    assert sh.status(live["not checked yet"]) == {"observedGeneration": 0}

    waits = {
        row: kubectl_wait_ready(cluster, ns, body["metadata"]["name"], "datalink")
        for row, body in live.items()
        if row == "BucketReachable"
    }
    assert waits == {"BucketReachable": "met"}
    seen = {}
    for (row, body), result in zip(live.items(), gc.evaluate(live.values()), strict=True):
        assert not result["kstatus"].get("error") and not result["argo"].get("error"), result
        seen[row] = {
            **conditions_of(body),
            "kstatus": result["kstatus"]["status"],
            "Argo CD": result["argo"]["status"],
        }
    assert seen == {
        row: {k: v for k, v in cells.items() if k != "DataLink state"} for row, cells in rows.items()
    }
