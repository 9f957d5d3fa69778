"""Session lifespans against the real API server, without waiting hours: an administrator backdates
`status.session.startedAt` through the status subresource and the operator acts on the new expiry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import watch

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    sh.create_environment(cluster, namespace)
    return namespace


def running(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return sh.wait_phase(cluster, ns, name, "Running")


def session(body: dict[str, Any]) -> dict[str, Any]:
    return sh.status(body).get("session") or {}


def expiry_is(cluster: Cluster, ns: str, name: str, hours: int | None) -> dict[str, Any]:
    """Wait until status.session.expiresAt == startedAt + hours (None: no expiry)."""

    def ok(body: dict[str, Any]) -> bool:
        s = session(body)
        if not s.get("startedAt") or s.get("lifespanHours") != hours:
            return False
        if hours is None:
            return s.get("expiresAt") is None
        expected = sh.parse(s["startedAt"]) + timedelta(hours=hours)
        return bool(s.get("expiresAt")) and sh.parse(s["expiresAt"]) == expected

    return sh.wait_studio(cluster, ns, name, ok, f"expiresAt = startedAt + {hours}h")


def settle(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    """Make a spec change and wait until the operator has reconciled it: everything written before
    (e.g. a backdated startedAt) has been seen by then."""
    gen = sh.patch(cluster, ns, name, {"spec": {"description": f"touched {sh.ago(seconds=0)}"}})
    target = gen["metadata"]["generation"]
    return sh.wait_studio(
        cluster,
        ns,
        name,
        lambda b: sh.status(b).get("observedGeneration") == target,
        f"observedGeneration {target}",
    )


def annotations(body: dict[str, Any]) -> dict[str, str]:
    return body["metadata"].get("annotations") or {}


def test_expiry_stops_the_session_until_a_new_start_request(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "ttl", annotations={sh.SESSION_HOURS: "9"})
    studio = expiry_is(cluster, ns, "ttl", 9)
    assert session(studio)["lifespanSource"] == "annotation"
    pod_uid = sh.live_pods(cluster, ns, "ttl")[0].metadata.uid

    sh.patch_status(cluster, ns, "ttl", {"session": {"startedAt": sh.ago(hours=9, minutes=1)}})
    studio = sh.wait_phase(cluster, ns, "ttl", "Stopped", stopReason="LifespanExpired")
    sh.wait_no_pods(cluster, ns, "ttl")
    event = sh.wait_event(cluster, ns, "ttl", "SessionExpired")
    assert event.type == "Normal"
    studio = sh.get(cluster, ns, "ttl")
    assert sh.SESSION_HOURS not in annotations(studio)  # the override was for that session only
    assert "lifespan" in sh.status(studio)["message"]
    assert not session(studio)
    ready = sh.condition(studio, "Ready")
    assert ready is not None and ready["reason"] == "LifespanExpired"

    # no restart on unrelated changes (nor on the operator's own writes)
    studio = settle(cluster, ns, "ttl")
    assert sh.status(studio)["phase"] == "Stopped"
    assert sh.status(studio)["stopReason"] == "LifespanExpired"
    assert sh.pods(cluster, ns, "ttl") == []
    assert len(sh.events(cluster, ns, "ttl", "SessionExpired")) == 1

    # a new value in the restart annotation starts a new session with a fresh lifespan
    sh.annotate(cluster, ns, "ttl", **{sh.RESTART: "1"})
    studio = expiry_is(cluster, ns, "ttl", 8)
    studio = running(cluster, ns, "ttl")
    assert sh.status(studio).get("stopReason") is None
    assert session(studio)["lifespanSource"] == "default"
    new_pods = sh.live_pods(cluster, ns, "ttl")
    assert len(new_pods) == 1 and new_pods[0].metadata.uid != pod_uid
    assert sh.parse(session(studio)["startedAt"]) > sh.parse(sh.ago(minutes=1))


def test_state_toggle_is_also_a_new_start_request(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "ttl2", lifespan={"hours": 1})
    expiry_is(cluster, ns, "ttl2", 1)
    sh.patch_status(cluster, ns, "ttl2", {"session": {"startedAt": sh.ago(hours=2)}})
    sh.wait_phase(cluster, ns, "ttl2", "Stopped", stopReason="LifespanExpired")
    sh.set_state(cluster, ns, "ttl2", "Stopped")
    sh.wait_phase(cluster, ns, "ttl2", "Stopped", stopReason="UserRequested")
    sh.set_state(cluster, ns, "ttl2", "Running")
    running(cluster, ns, "ttl2")


def test_an_expiry_missed_while_the_operator_was_away_starts_no_new_session(
    cluster: Cluster, ns: str, operator: OperatorProcess
) -> None:
    """The session ended while the operator was not running, and its pod went away too (a node
    drain, someone's `kubectl delete pod`): when the operator is back it records the expiry; it
    does not start a new session for a studio whose lifespan is over."""
    sh.create_studio(cluster, ns, "away", lifespan={"hours": 1})
    expiry_is(cluster, ns, "away", 1)
    (pod,) = sh.live_pods(cluster, ns, "away")
    operator.stop()
    sh.patch_status(cluster, ns, "away", {"session": {"startedAt": sh.ago(hours=2)}})
    cluster.core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=0)
    sh.wait_no_pods(cluster, ns, "away")
    operator.start()
    stopped = sh.wait_phase(cluster, ns, "away", "Stopped", stopReason="LifespanExpired")
    assert not session(stopped)
    sh.wait_event(cluster, ns, "away", "SessionExpired")
    assert not sh.pods(cluster, ns, "away")


def test_session_annotation_moves_expiry_and_reverts_next_session(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "ext", lifespan={"policy": "StopAfter", "hours": 4})
    studio = expiry_is(cluster, ns, "ext", 4)
    started = session(studio)["startedAt"]
    assert session(studio)["lifespanSource"] == "studio"

    sh.annotate(cluster, ns, "ext", **{sh.SESSION_HOURS: "10"})
    studio = expiry_is(cluster, ns, "ext", 10)
    assert session(studio)["startedAt"] == started  # the same session, a later end
    assert session(studio)["lifespanSource"] == "annotation"
    assert sh.status(studio)["phase"] == "Running"

    sh.annotate(cluster, ns, "ext", **{sh.SESSION_HOURS: "2"})  # shortening works too
    expiry_is(cluster, ns, "ext", 2)

    sh.set_state(cluster, ns, "ext", "Stopped")
    sh.wait_phase(cluster, ns, "ext", "Stopped", stopReason="UserRequested")
    wait_for(
        lambda: sh.SESSION_HOURS not in annotations(sh.get(cluster, ns, "ext")),
        timeout=20,
        message="the session annotation to be removed when the session ended",
    )
    sh.set_state(cluster, ns, "ext", "Running")
    studio = expiry_is(cluster, ns, "ext", 4)
    assert session(studio)["lifespanSource"] == "studio"


@pytest.mark.parametrize(
    ("lock", "hours"),
    [({"policy": "StopAfter", "hours": 2}, 2), ({"policy": "KeepRunning"}, None)],
    ids=["stop-after-2h", "keep-running"],
)
def test_workspace_lock(cluster: Cluster, ns: str, lock: dict[str, Any], hours: int | None) -> None:
    sh.create_studio(
        cluster,
        ns,
        "locked",
        annotations={sh.SESSION_HOURS: "6"},
        lifespan={"policy": "StopAfter", "hours": 4},
    )
    expiry_is(cluster, ns, "locked", 6)
    sh.create(cluster, ns, sh.obj("WorkspaceSettings", "default", {"studioLifespan": lock}))
    studio = expiry_is(cluster, ns, "locked", hours)
    cond = sh.condition(studio, "LifespanLocked")
    assert cond is not None and cond["status"] == "True", sh.status(studio)
    assert ("2 hours" if hours else "keep running") in cond["message"]
    assert session(studio)["lifespanSource"] == "workspace"
    # the ignored annotation is not an error: no Stalled, still running, the annotation stays
    assert not sh.cond_true(studio, "Stalled") and sh.status(studio)["phase"] == "Running"
    assert annotations(studio)[sh.SESSION_HOURS] == "6"

    # with a 3-hour-old session: the lock's 2 hours expire it, KeepRunning keeps it
    sh.patch_status(cluster, ns, "locked", {"session": {"startedAt": sh.ago(hours=3)}})
    if hours is None:
        studio = settle(cluster, ns, "locked")
        assert sh.status(studio)["phase"] == "Running" and session(studio).get("expiresAt") is None
    else:
        sh.wait_phase(cluster, ns, "locked", "Stopped", stopReason="LifespanExpired")
        return

    # removing the lock gives the studio its own lifespan back (annotation over spec)
    sh.delete(cluster, ns, "default", kind="WorkspaceSettings")
    studio = sh.wait_studio(
        cluster, ns, "locked", lambda b: sh.condition(b, "LifespanLocked") is None, "LifespanLocked gone"
    )
    # 3 hours old with a 6-hour annotation: still running
    studio = expiry_is(cluster, ns, "locked", 6)
    assert sh.status(studio)["phase"] == "Running"


def test_keep_running_never_expires(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "forever", lifespan={"policy": "KeepRunning"})
    studio = expiry_is(cluster, ns, "forever", None)
    pod_uid = sh.live_pods(cluster, ns, "forever")[0].metadata.uid
    assert session(studio).get("expiresAt") is None

    sh.patch_status(cluster, ns, "forever", {"session": {"startedAt": sh.ago(hours=1000)}})
    studio = settle(cluster, ns, "forever")
    assert sh.status(studio)["phase"] == "Running"
    assert session(studio).get("expiresAt") is None and session(studio).get("lifespanHours") is None
    assert [p.metadata.uid for p in sh.live_pods(cluster, ns, "forever")] == [pod_uid]
    assert sh.events(cluster, ns, "forever", "SessionExpired") == []
    assert sh.events(cluster, ns, "forever", "SessionExpiringSoon") == []


def test_warning_before_expiry_and_extension_clears_it(cluster: Cluster, ns: str) -> None:
    sh.create_studio(cluster, ns, "soon")
    expiry_is(cluster, ns, "soon", 8)
    # 10 minutes left: inside the default 15-minute warning window
    sh.patch_status(cluster, ns, "soon", {"session": {"startedAt": sh.ago(hours=7, minutes=50)}})
    studio = sh.wait_studio(
        cluster, ns, "soon", lambda b: sh.cond_true(b, "ExpiringSoon"), "ExpiringSoon condition"
    )
    event = sh.wait_event(cluster, ns, "soon", "SessionExpiringSoon")
    assert session(studio)["expiresAt"] in event.message
    assert "kubectl studio extend soon" in (sh.condition(studio, "ExpiringSoon") or {})["message"]
    assert sh.status(studio)["phase"] == "Running"

    sh.annotate(cluster, ns, "soon", **{sh.SESSION_HOURS: "12"})
    studio = expiry_is(cluster, ns, "soon", 12)
    assert sh.condition(studio, "ExpiringSoon") is None
    assert len(sh.events(cluster, ns, "soon", "SessionExpiringSoon")) == 1


def test_warning_lead_time_is_configurable(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator_factory("--warning-minutes=600")
    sh.create_environment(cluster, namespace)
    sh.create_studio(cluster, namespace, "early")  # 8 hours: inside a 10-hour warning window at once
    studio = sh.wait_studio(
        cluster, namespace, "early", lambda b: sh.cond_true(b, "ExpiringSoon"), "ExpiringSoon condition"
    )
    assert sh.status(studio)["phase"] in ("Starting", "Running")
    sh.wait_event(cluster, namespace, "early", "SessionExpiringSoon")
    running(cluster, namespace, "early")
    assert sh.events(cluster, namespace, "early", "SessionExpired") == []


def test_expiry_due_while_the_operator_is_down_is_enforced_once_after_start(
    cluster: Cluster, ns: str, operator: OperatorProcess
) -> None:
    sh.create_studio(cluster, ns, "offline", lifespan={"hours": 2})
    expiry_is(cluster, ns, "offline", 2)
    pod_name = sh.live_pods(cluster, ns, "offline")[0].metadata.name

    operator.stop()
    try:
        sh.patch_status(cluster, ns, "offline", {"session": {"startedAt": sh.ago(hours=3)}})
        studio = sh.get(cluster, ns, "offline")
        assert sh.status(studio)["phase"] == "Running"  # nobody acts while the operator is down
        assert [p.metadata.name for p in sh.live_pods(cluster, ns, "offline")] == [pod_name]
    finally:
        operator.start()

    sh.wait_phase(cluster, ns, "offline", "Stopped", stopReason="LifespanExpired")
    sh.wait_no_pods(cluster, ns, "offline")
    sh.wait_event(cluster, ns, "offline", "SessionExpired")
    # a crash and restart neither repeats the expiry nor restarts the session
    operator.kill()
    operator.start()
    studio = settle(cluster, ns, "offline")
    assert sh.status(studio)["phase"] == "Stopped"
    assert sh.pods(cluster, ns, "offline") == []
    assert len(sh.events(cluster, ns, "offline", "SessionExpired")) == 1


def test_malformed_annotation_is_ignored_with_a_condition_and_an_event(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """Admission rejects such values when the webhooks run; without them the operator copes."""
    operator_factory("--webhook-mode=none")
    sh.create_environment(cluster, namespace)
    sh.create_studio(cluster, namespace, "typo", annotations={sh.SESSION_HOURS: "12h"}, lifespan={"hours": 3})
    studio = sh.wait_studio(
        cluster,
        namespace,
        "typo",
        lambda b: sh.cond_true(b, "LifespanAnnotationIgnored"),
        "LifespanAnnotationIgnored condition",
    )
    cond = sh.condition(studio, "LifespanAnnotationIgnored")
    assert cond is not None and "12h" in cond["message"] and "1..120" in cond["message"]
    event = sh.wait_event(cluster, namespace, "typo", "InvalidLifespanAnnotation")
    assert event.type == "Warning"
    studio = expiry_is(cluster, namespace, "typo", 3)  # the studio's own lifespan applies
    assert session(studio)["lifespanSource"] == "studio"
    studio = running(cluster, namespace, "typo")
    assert not sh.cond_true(studio, "Stalled")

    sh.annotate(cluster, namespace, "typo", **{sh.SESSION_HOURS: "200"})  # out of range
    studio = sh.wait_studio(
        cluster,
        namespace,
        "typo",
        lambda b: "200" in (sh.condition(b, "LifespanAnnotationIgnored") or {}).get("message", ""),
        "the condition to name the new value",
    )
    assert session(studio)["lifespanHours"] == 3

    sh.annotate(cluster, namespace, "typo", **{sh.SESSION_HOURS: "5"})  # fixed
    studio = expiry_is(cluster, namespace, "typo", 5)
    assert sh.condition(studio, "LifespanAnnotationIgnored") is None


def test_expiry_is_applied_once_even_by_two_operator_processes(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """Two processes overlapping (a rollout, a stuck old pod): status writes are conditional on the
    studio's resourceVersion, so only one of them records the expiry and posts its Event."""
    operator_factory()
    operator_factory()
    sh.create_environment(cluster, namespace)
    for name in ("twin-a", "twin-b", "twin-c"):
        sh.create_studio(cluster, namespace, name, lifespan={"hours": 1})
    for name in ("twin-a", "twin-b", "twin-c"):
        expiry_is(cluster, namespace, name, 1)
        sh.patch_status(cluster, namespace, name, {"session": {"startedAt": sh.ago(hours=2)}})
    for name in ("twin-a", "twin-b", "twin-c"):
        sh.wait_phase(cluster, namespace, name, "Stopped", stopReason="LifespanExpired")
        sh.wait_no_pods(cluster, namespace, name)
        sh.wait_event(cluster, namespace, name, "SessionExpired")
    settle(cluster, namespace, "twin-a")
    for name in ("twin-a", "twin-b", "twin-c"):
        assert len(sh.events(cluster, namespace, name, "SessionExpired")) == 1, name


class History(threading.Thread):
    """Every studio phase and every pod deletion in a namespace, with its resourceVersion (one etcd
    revision for all kinds: comparable across watches)."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, ns
        self.phases: list[tuple[str, str, int]] = []  # studio, phase, rv
        self.deleted: list[tuple[str, int]] = []  # studio, rv
        self.rv = cluster.core.list_namespaced_pod(ns).metadata.resource_version
        self.done = threading.Event()

    def run(self) -> None:
        studios = threading.Thread(target=self._studios, daemon=True)
        studios.start()
        w = watch.Watch()
        for event in w.stream(
            self.cluster.core.list_namespaced_pod, self.ns, resource_version=self.rv, timeout_seconds=120
        ):
            pod = event["object"]
            if event["type"] == "DELETED":
                studio = (pod.metadata.labels or {}).get(sh.STUDIO_LABEL, "")
                self.deleted.append((studio, int(pod.metadata.resource_version)))
            if self.done.is_set():
                w.stop()
        studios.join()

    def _studios(self) -> None:
        w = watch.Watch()
        list_ = self.cluster.custom.list_namespaced_custom_object
        for event in w.stream(
            list_, sh.GROUP, sh.VERSION, self.ns, "studios", resource_version=self.rv, timeout_seconds=120
        ):
            body = event["object"]
            phase = (body.get("status") or {}).get("phase") or ""
            self.phases.append((body["metadata"]["name"], phase, int(body["metadata"]["resourceVersion"])))
            if self.done.is_set():
                w.stop()


def test_a_burst_of_expiries_ends_every_session_once(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """Many sessions expiring at one instant, more than the operator's workers: the pods are
    deleted first and every studio still ends `Stopped` (LifespanExpired) with its pod gone and
    exactly one SessionExpired Event. Those expired under the burst (all but the last ones the
    workers took) go from Running straight to Stopped, recorded after the burst's last pod was gone."""
    workers = 2
    operator_factory(f"--workers={workers}")
    sh.create_environment(cluster, namespace)
    names = [f"burst-{i}" for i in range(12)]
    for name in names:
        sh.create_studio(cluster, namespace, name, lifespan={"hours": 1})
    for name in names:
        expiry_is(cluster, namespace, name, 1)
        running(cluster, namespace, name)
    history = History(cluster, namespace)
    history.start()
    # one instant for all: a whole second a few seconds ahead (startedAt has seconds only)
    deadline = sh.parse(sh.ago(seconds=-6)).replace(microsecond=0)
    started = sh.rfc3339(deadline - timedelta(hours=1))
    for name in names:
        sh.patch_status(cluster, namespace, name, {"session": {"startedAt": started}})
    for name in names:
        stopped = sh.wait_phase(cluster, namespace, name, "Stopped", stopReason="LifespanExpired")
        assert not session(stopped)
        sh.wait_no_pods(cluster, namespace, name)
    for name in names:
        sh.wait_event(cluster, namespace, name, "SessionExpired", timeout=60)
    settle(cluster, namespace, names[0])  # the operator has seen everything it wrote
    history.done.set()
    for name in names:
        assert len(sh.events(cluster, namespace, name, "SessionExpired")) == 1, name
        assert sh.status(sh.get(cluster, namespace, name))["phase"] == "Stopped"

    stopping = {name for name, phase, _ in history.phases if phase == "Stopping"}
    straight = [name for name in names if name not in stopping]
    assert len(straight) >= len(names) - workers, history.phases
    last_gone = max(rv for studio, rv in history.deleted if studio in straight)
    for name in straight:
        first_stopped = min(rv for n, phase, rv in history.phases if n == name and phase == "Stopped")
        assert first_stopped > last_gone, (name, first_stopped, last_gone)
