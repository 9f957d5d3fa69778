"""Scenario 2: the API server the operator talks to is stopped and started again during load.

The operator runs against a second kube-apiserver of the local control plane (the ``apiserver``
fixture: same etcd, same flags, its own port), so stopping it blinds exactly the operator: every
watch and request of the operator breaks, while the test keeps working through the shared API
server: creating, stopping and deleting studios, and deleting session pods behind the operator's
back. Every watch breaks, so the operator's watches list again once the API server answers (a
resumed watch could meet versions the fresh watch cache no longer knows: 410 Gone); a listing
never reports what was deleted meanwhile, which the operator must notice by itself (its resync).

The operator is never restarted: it has to recover on its own.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from rel_helpers import (
    ApiServer,
    DelayProxy,
    Load,
    Model,
    PodTracker,
    crashes,
    full_only,
    ignore_404,
    retrying,
    wait_converged,
)

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess

CONVERGE_TIMEOUT = 300


@pytest.mark.timeout(1800)
def test_apiserver_restart_during_load(
    cluster: Cluster,
    apiserver: ApiServer,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    n_studios: int,
    figures: Any,
) -> None:
    rng = random.Random(n_studios)
    ns = namespace
    op = operator_factory(kubeconfig=apiserver.kubeconfig)
    retrying(lambda: sh.create_environment(cluster, ns))
    model = Model(ns)
    load = Load(cluster, model)
    tracker = PodTracker(cluster, ns).start()
    n = max(20, n_studios // 2)
    names = [f"a{i:03d}" for i in range(n)]

    # a first half running before the outage
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda nm: load.create(nm, "Running", False), names[: n // 2]))
    wait_converged(cluster, model, timeout=CONVERGE_TIMEOUT)

    # the outage: the second half is created, some studios stopped or deleted, some pods deleted
    errors: list[BaseException] = []

    def during_outage() -> None:
        try:
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda nm: load.create(nm, rng.choice(["Running", "Stopped"]), False), names[n // 2 :]
                    )
                )
            first = names[: n // 2]
            for nm in first[:3]:
                load.set_state(nm, "Stopped")
            for nm in first[3:6]:
                load.delete(nm)
            for nm in first[6:10]:  # pods gone behind the operator's back (e.g. evicted)
                for pod in sh.pods(cluster, ns, nm):
                    ignore_404(lambda p=pod: cluster.core.delete_namespaced_pod(p.metadata.name, ns))
                model.studios[nm].sessions += 1  # the operator starts a new pod
        except BaseException as exc:
            errors.append(exc)

    stop_took = apiserver.stop()
    stopped_at = time.monotonic()
    worker = threading.Thread(target=during_outage)
    worker.start()
    worker.join()
    time.sleep(max(0.0, 8 - (time.monotonic() - stopped_at)))
    down = time.monotonic() - stopped_at
    assert not errors, errors
    assert op.running, "the operator died while its API server was down"
    log_before = len(op.log_text())

    startup = apiserver.start()
    ready_at = time.monotonic()
    wait_converged(cluster, model, timeout=CONVERGE_TIMEOUT)
    converged = time.monotonic() - ready_at
    tracker.stop()

    assert op.running and op.starts == 1, "the operator must recover without a restart"
    seen = tracker.sessions()
    doubled = {
        k: (seen.get(k, 0), e.sessions) for k, e in model.studios.items() if seen.get(k, 0) != e.sessions
    }
    assert not doubled, f"pods per studio (seen, expected): {doubled}"

    # the watches work again: a new studio starts promptly
    t0 = time.monotonic()
    load.create("after", "Running", False)
    sh.wait_phase(cluster, ns, "after", "Running", timeout=30)
    after = time.monotonic() - t0

    log = op.log_text()[log_before:]
    figures.record("apiserver-restart", "studios", n)
    figures.record("apiserver-restart", "apiserver_stop_s", stop_took)
    figures.record("apiserver-restart", "apiserver_down_s", down)
    figures.record("apiserver-restart", "apiserver_startup_s", startup)
    figures.record("apiserver-restart", "converged_after_apiserver_ready_s", converged)
    figures.record("apiserver-restart", "new_studio_running_after_s", after)
    figures.record("apiserver-restart", "resyncs_after_relisting", log.count("resync after a relisting"))
    assert "resync after a relisting" in log, (
        "the watches broke but the operator did not list again and resync"
    )
    found = crashes(op.log_text())
    assert not found, found[:5]


def test_apiserver_killed_long_outage(
    cluster: Cluster,
    apiserver: ApiServer,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    figures: Any,
    full_scale: bool,
) -> None:
    """SIGKILL (connections drop without a goodbye) and an outage (30 s) longer than the request
    and retry timeouts: the operator stays alive and live, then converges, including a pod that was
    deleted behind its back (only a resync after the relisting can notice that)."""
    full_only(full_scale)
    ns = namespace
    op = operator_factory(kubeconfig=apiserver.kubeconfig)
    retrying(lambda: sh.create_environment(cluster, ns))
    model = Model(ns)
    load = Load(cluster, model)
    for i in range(5):
        load.create(f"k{i}", "Running", False)
    wait_converged(cluster, model, timeout=60)

    apiserver.stop(sig=signal.SIGKILL)
    load.set_state("k0", "Stopped")
    load.create("k5", "Running", False)
    load.delete("k1")
    for pod in sh.pods(cluster, ns, "k2"):
        cluster.core.delete_namespaced_pod(pod.metadata.name, ns)
    model.studios["k2"].sessions += 1
    time.sleep(30)
    assert op.running and op.healthy(), "liveness must not fail while the API server is away"
    apiserver.start()
    ready_at = time.monotonic()
    wait_converged(cluster, model, timeout=CONVERGE_TIMEOUT)
    figures.record("apiserver-kill", "outage_s", 30)
    figures.record("apiserver-kill", "converged_after_apiserver_ready_s", time.monotonic() - ready_at)
    assert op.starts == 1
    assert len(sh.live_pods(cluster, ns, "k2")) == 1


def test_slow_responses(
    cluster: Cluster,
    slow_proxy: DelayProxy,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    figures: Any,
    full_scale: bool,
) -> None:
    """Every response chunk from the API server delayed: first by 0.5 s (slow, still working), then
    by 40 s (beyond the operator's 30 s read timeout: requests time out after the server may already
    have acted, watches stall), then back to normal. Nothing is doubled and everything converges,
    without a restart."""
    ns = namespace
    retrying(lambda: sh.create_environment(cluster, ns))
    op = operator_factory(kubeconfig=slow_proxy.kubeconfig)
    model = Model(ns)
    load = Load(cluster, model)
    tracker = PodTracker(cluster, ns).start()
    try:
        slow_proxy.delay = 0.5
        t0 = time.monotonic()
        for i in range(6):
            load.create(f"slow{i}", "Running", False)
        wait_converged(cluster, model, timeout=120)
        figures.record("slow-responses", "six_studios_running_at_0.5s_delay_s", time.monotonic() - t0)
        if full_scale:  # the 40 s phase runs in `make test-reliability` only
            slow_proxy.delay = 40.0
            time.sleep(1)
            load.set_state("slow0", "Stopped")
            load.create("slow6", "Running", False)
            load.delete("slow1")
            time.sleep(45)
            assert op.running, "the operator died of slow responses"
            slow_proxy.delay = 0.0
            back = time.monotonic()
            wait_converged(cluster, model, timeout=CONVERGE_TIMEOUT)
            figures.record("slow-responses", "converged_after_40s_delays_ended_s", time.monotonic() - back)
    finally:
        tracker.stop()
    assert op.starts == 1
    seen = tracker.sessions()
    doubled = {
        k: (seen.get(k, 0), e.sessions) for k, e in model.studios.items() if seen.get(k, 0) != e.sessions
    }
    assert not doubled, f"pods per studio (seen, expected): {doubled}\n" + tracker.explain(sorted(doubled))
