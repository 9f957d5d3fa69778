"""Scenario 4: races between users and the reconciler. Whatever the interleaving, the operator
converges to what the studio says, with at most one live pod per studio at any moment.

Users here edit with optimistic concurrency (replace with resourceVersion: 409 Conflict when the
operator, or another user, wrote in between) and plain merge patches, as kubectl does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from rel_helpers import (
    Load,
    Model,
    PodTracker,
    crashes,
    failed_reconciles,
    problems,
    retrying,
    wait_converged,
)

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

ANY_STOP = ("UserRequested", "NeverStarted")


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    retrying(lambda: sh.create_environment(cluster, namespace))
    return namespace


def tracked(cluster: Cluster, ns: str) -> PodTracker:
    return PodTracker(cluster, ns).start()


def relaxed(model: Model) -> Model:
    """Stopped studios may have been stopped before or after their pod came: either reason."""
    for exp in model.studios.values():
        exp.stop_reasons = ANY_STOP
    return model


def test_concurrent_edits_while_reconciling(
    cluster: Cluster, ns: str, operator: OperatorProcess, figures: Any
) -> None:
    model = Model(ns)
    load = Load(cluster, model)
    names = [f"c{i}" for i in range(8)]
    for n in names:
        load.create(n, "Running", False)
    tracker = tracked(cluster, ns)
    conflicts = 0
    lock = threading.Lock()
    rng = random.Random(4)
    log_offset = len(operator.log_text())

    def replace_with_rv(name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """GET, change, PUT with the resourceVersion read: 409 when anybody wrote in between."""
        nonlocal conflicts
        while True:
            body = sh.get(cluster, ns, name)
            change(body)
            try:
                cluster.custom.replace_namespaced_custom_object(
                    sh.GROUP, sh.VERSION, ns, "studios", name, body
                )
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
                with lock:
                    conflicts += 1

    def editor(seed: int) -> None:
        r = random.Random(seed)
        for i in range(25):
            name = r.choice(names)
            what = r.randrange(4)
            if what == 0:
                replace_with_rv(name, lambda b, i=i: b["spec"].__setitem__("displayName", f"edit {seed}-{i}"))
            elif what == 1:
                state = r.choice(["Running", "Stopped"])
                replace_with_rv(name, lambda b, s=state: b["spec"].__setitem__("state", s))
            elif what == 2:
                sh.annotate(cluster, ns, name, **{"example.com/touched": f"{seed}-{i}"})
            else:
                sh.patch(cluster, ns, name, {"metadata": {"labels": {"edited": str(i)}}})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(editor, [rng.randrange(10**6) for _ in range(4)]))
    # a final, known state
    for i, n in enumerate(names):
        state = "Running" if i % 2 else "Stopped"
        retrying(lambda n=n, s=state: sh.set_state(cluster, ns, n, s))
        model.studios[n].state = state
    took = wait_converged(cluster, relaxed(model), timeout=90)
    tracker.stop()
    assert all(v <= 1 for v in tracker.max_live.values()), tracker.max_live
    log = operator.log_text()[log_offset:]
    figures.record("races", "client_409_conflicts", conflicts)
    figures.record("races", "operator_reconcile_retries", failed_reconciles(log, ns))
    figures.record("races", "edits_converged_s", took)
    assert conflicts > 0, "the edits should have collided at least once"
    assert not crashes(log), crashes(log)


def test_delete_during_start(cluster: Cluster, ns: str, s3: Any) -> None:
    """Deleted 0-300 ms after creation, some with an S3 mount (PV, PVC, finalizer): nothing stays."""
    s3.create_bucket("races")
    cluster.core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": s3.admin.secret_data()}
    )
    link = {"uri": "s3://races", "endpointURL": s3.endpoint, "credentialsSecret": "creds"}
    retrying(lambda: sh.create(cluster, ns, sh.obj("DataLink", "data", link)))
    wait_for(lambda: sh.cond_true(sh.get(cluster, ns, "data", kind="DataLink"), "Ready"), timeout=60)
    model = Model(ns)
    load = Load(cluster, model)
    rng = random.Random(7)

    def one(i: int) -> None:
        name = f"d{i}"
        load.create(name, "Running", mounts=i % 2 == 0)
        time.sleep(rng.uniform(0, 0.3))
        load.delete(name)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(12)))
    wait_converged(cluster, model, timeout=60)


def test_stop_during_start(cluster: Cluster, ns: str) -> None:
    model = Model(ns)
    load = Load(cluster, model)
    tracker = tracked(cluster, ns)
    rng = random.Random(8)

    def one(i: int) -> None:
        name = f"s{i}"
        load.create(name, "Running", False)
        time.sleep(rng.uniform(0, 0.3))
        load.set_state(name, "Stopped")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(10)))
    wait_converged(cluster, relaxed(model), timeout=60)
    tracker.stop()
    assert all(v <= 1 for v in tracker.sessions().values()), tracker.over(1)


def test_start_during_stopping(cluster: Cluster, ns: str) -> None:
    model = Model(ns)
    load = Load(cluster, model)
    names = [f"r{i}" for i in range(6)]
    for n in names:
        load.create(n, "Running", False)
    wait_converged(cluster, model, timeout=60)
    tracker = tracked(cluster, ns)
    rng = random.Random(9)
    for n in names:
        load.set_state(n, "Stopped")
        time.sleep(rng.uniform(0, 0.2))
        load.set_state(n, "Running")
    wait_converged(cluster, model, timeout=60)
    tracker.stop()
    assert all(v <= 1 for v in tracker.max_live.values()), f"two live pods at once: {tracker.max_live}"
    # each studio either kept its pod (the stop was never seen) or got exactly one new one
    assert all(v <= 2 for v in tracker.sessions().values()), tracker.over(2)


def test_environment_deleted_while_sessions_run(cluster: Cluster, ns: str) -> None:
    model = Model(ns)
    load = Load(cluster, model)
    for n in ("v0", "v1", "v2"):
        load.create(n, "Running", False)
    wait_converged(cluster, model, timeout=60)
    uids = {n: sh.live_pods(cluster, ns, n)[0].metadata.uid for n in ("v0", "v1", "v2")}

    sh.delete(cluster, ns, "env", kind="ComputeEnvironment")
    for n in ("v0", "v1"):
        sh.wait_studio(
            cluster,
            ns,
            n,
            lambda b: (sh.condition(b, "EnvironmentAvailable") or {}).get("reason") == "EnvironmentNotFound",
            "EnvironmentAvailable=False/EnvironmentNotFound",
        )
    # a new session cannot start without its environment: Stalled, no pod
    load.set_state("v2", "Stopped")
    sh.wait_phase(cluster, ns, "v2", "Stopped")
    load.set_state("v2", "Running")
    body = sh.wait_studio(cluster, ns, "v2", lambda b: sh.cond_true(b, "Stalled"), "Stalled", timeout=30)
    assert sh.condition(body, "Stalled")["reason"] == "EnvironmentNotFound"
    assert not sh.pods(cluster, ns, "v2")
    for n in ("v0", "v1"):  # the running sessions are not affected
        assert [p.metadata.uid for p in sh.live_pods(cluster, ns, n)] == [uids[n]]
        assert sh.status(sh.get(cluster, ns, n))["phase"] == "Running"

    # the environment comes back: v2 starts by itself, the others lose the condition
    sh.create_environment(cluster, ns)
    wait_converged(cluster, model, timeout=60)
    for n in ("v0", "v1"):
        sh.wait_studio(
            cluster,
            ns,
            n,
            lambda b: (
                sh.condition(b, "EnvironmentAvailable") is None
                or sh.condition(b, "EnvironmentAvailable")["status"] == "True"
            ),
            "EnvironmentAvailable cleared",
        )
        assert [p.metadata.uid for p in sh.live_pods(cluster, ns, n)] == [uids[n]]


def test_rapid_state_toggles(cluster: Cluster, ns: str, figures: Any) -> None:
    model = Model(ns)
    load = Load(cluster, model)
    names = [f"t{i}" for i in range(6)]
    for n in names:
        load.create(n, "Stopped", False)
    tracker = tracked(cluster, ns)

    def toggle(i: int) -> None:
        name = names[i]
        for k in range(12):
            retrying(lambda s=("Running" if k % 2 == 0 else "Stopped"): sh.set_state(cluster, ns, name, s))
        final = "Running" if i % 2 else "Stopped"
        retrying(lambda: sh.set_state(cluster, ns, name, final))
        model.studios[name].state = final

    t0 = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(toggle, range(len(names))))
    took = wait_converged(cluster, relaxed(model), timeout=60)
    tracker.stop()
    figures.record("races", "toggles_converged_s", time.monotonic() - t0)
    assert all(v <= 1 for v in tracker.max_live.values()), f"two live pods at once: {tracker.max_live}"
    assert not problems(cluster, relaxed(model)), took
