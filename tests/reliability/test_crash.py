"""Scenario 1: the operator is killed (SIGKILL) at random moments while studios start, stop and get
deleted, and started again each time. Afterwards the cluster must look exactly as the studios say:
one pod per running studio, nothing left of deleted studios (Service, PVC, PV, Role, RoleBinding),
every status right, and no session started twice.

Scale: STUDIO_RELIABILITY_N studios (``make test-reliability``: 200; ``make test``: fewer).
STUDIO_RELIABILITY_SEED replays a run (the seed is printed).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from rel_helpers import (
    Load,
    Model,
    PodTracker,
    crashes,
    failed_reconciles,
    ignore_404,
    problems,
    retrying,
    tracebacks,
    wait_converged,
)

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

CONVERGE_TIMEOUT = 420


def setup_workspace(cluster: Cluster, ns: str, s3: Any, bucket: str) -> None:
    """Environment, credentials, a Ready-able data link and a studios-connect binding."""
    s3.create_bucket(bucket)
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s3-creds"), string_data=s3.admin.secret_data())
    )
    retrying(
        lambda: sh.create_environment(
            cluster, ns, spec={"credentialsSecret": "s3-creds", "region": "us-east-1"}
        )
    )
    link = {"uri": f"s3://{bucket}", "endpointURL": s3.endpoint, "credentialsSecret": "s3-creds"}
    retrying(lambda: sh.create(cluster, ns, sh.obj("DataLink", "data", link)))
    client.RbacAuthorizationV1Api(cluster.api_client).create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "viewer-connect"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "studios-connect",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
        },
    )


def run_round(
    ops: list[Callable[[], None]],
    op: OperatorProcess,
    rng: random.Random,
    kills: int,
    log: list[str],
) -> float:
    """Run ops on 4 threads; SIGKILL the operator once a random 10-90 % of them are done (so the
    kill lands mid-load), start it again, and kill it `kills - 1` more times shortly after it came
    back (while it works through the backlog). Returns the time at which the operator was up again
    and every operation had been issued: convergence is measured from there."""
    errors: list[BaseException] = []
    done = 0
    lock = threading.Lock()

    def counted(o: Callable[[], None]) -> None:
        nonlocal done
        o()
        with lock:
            done += 1

    def runner() -> None:
        with ThreadPoolExecutor(4) as pool:
            for fut in [pool.submit(counted, o) for o in ops]:
                try:
                    fut.result()
                except BaseException as exc:
                    errors.append(exc)

    thread = threading.Thread(target=runner)
    started = time.monotonic()
    thread.start()
    threshold = int(len(ops) * rng.uniform(0.1, 0.9))
    wait_for(lambda: done >= threshold or not thread.is_alive(), timeout=300, interval=0.01)
    for k in range(kills):
        if k:
            time.sleep(rng.uniform(0.0, 1.5))
        at = time.monotonic() - started
        op.kill()
        down = rng.uniform(0.0, 1.0)
        time.sleep(down)
        t0 = time.monotonic()
        op.start(timeout=120)
        restarted = time.monotonic()
        log.append(
            f"kill {len(log) + 1}: {at:.1f}s into the round, {done}/{len(ops)} operations done, "
            f"down {down:.1f}s, healthy {restarted - t0:.1f}s after the start"
        )
    thread.join()
    assert not errors, f"load operations failed: {errors[:3]}"
    return time.monotonic()  # the operator is up again and every operation has been issued


@pytest.mark.timeout(3600)  # 200 studios on a busy 2-CPU machine can take a while
def test_operator_killed_during_load(
    cluster: Cluster,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    n_studios: int,
    figures: Any,
    s3: Any,
) -> None:
    seed = int(os.environ.get("STUDIO_RELIABILITY_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    print(f"seed {seed}, {n_studios} studios")
    ns = namespace
    op = operator_factory()
    setup_workspace(cluster, ns, s3, f"crash-{seed}")
    wait_for(
        lambda: sh.cond_true(sh.get(cluster, ns, "data", kind="DataLink"), "Ready"),
        timeout=60,
        message="DataLink Ready",
    )
    model = Model(ns, connect_binding=True)
    load = Load(cluster, model)
    tracker = PodTracker(cluster, ns).start()
    names = [f"s{i:03d}" for i in range(n_studios)]
    converge: list[float] = []
    kill_log: list[str] = []
    total_kills = 0

    def finish_round(label: str, settled: float) -> None:
        wait_converged(cluster, model, timeout=CONVERGE_TIMEOUT)
        took = time.monotonic() - settled
        converge.append(took)
        figures.record("crash", f"{label}_converged_s", took)
        print(f"round {label}: converged {took:.1f}s after the restart and the last operation")

    try:
        # round 1: create everything (1/3 "Add only", 1/5 with an S3 mount); one kill
        ops: list[Callable[[], None]] = []
        for i, name in enumerate(names):
            state = "Stopped" if i % 3 == 2 else "Running"
            ops.append(lambda n=name, s=state, m=(i % 5 == 0): load.create(n, s, m))
        settled = run_round(ops, op, rng, 1, kill_log)
        total_kills += 1
        finish_round("create", settled)

        # round 2: stop half of the running, start half of the stopped; two kills
        running, stopped = model.live("Running"), model.live("Stopped")
        ops = [lambda n=n: load.set_state(n, "Stopped") for n in rng.sample(running, len(running) // 2)]
        ops += [lambda n=n: load.set_state(n, "Running") for n in rng.sample(stopped, len(stopped) // 2)]
        rng.shuffle(ops)
        settled = run_round(ops, op, rng, 2, kill_log)
        total_kills += 2
        finish_round("toggle", settled)

        # round 3: delete a third (running, stopped, mounted alike), toggle some others; one kill
        live = model.live()
        doomed = rng.sample(live, len(live) // 3)
        rest = [n for n in live if n not in doomed]
        ops = [lambda n=n: load.delete(n) for n in doomed]
        for n in rng.sample(rest, len(rest) // 4):
            new_state = "Stopped" if model.studios[n].state == "Running" else "Running"
            ops.append(lambda n=n, s=new_state: load.set_state(n, s))
        rng.shuffle(ops)
        settled = run_round(ops, op, rng, 1, kill_log)
        total_kills += 1
        finish_round("delete", settled)

        # round 4: start every stopped studio and delete some more; one kill
        live = model.live()
        doomed = rng.sample(live, len(live) // 5)
        ops = [lambda n=n: load.delete(n) for n in doomed]
        ops += [lambda n=n: load.set_state(n, "Running") for n in model.live("Stopped") if n not in doomed]
        rng.shuffle(ops)
        settled = run_round(ops, op, rng, 1, kill_log)
        total_kills += 1
        finish_round("start-all", settled)
    finally:
        tracker.stop()
        print("\n".join(kill_log))

    # No session started twice: every pod ever seen belongs to a Running period of its studio.
    seen = tracker.sessions()
    doubled = {
        n: (seen.get(n, 0), e.sessions) for n, e in model.studios.items() if seen.get(n, 0) != e.sessions
    }
    assert not doubled, (
        f"pods seen per studio != sessions started (seen, expected): {doubled}\n"
        + tracker.explain(sorted(doubled))
    )
    assert all(v <= 1 for v in tracker.max_live.values()), f"two live pods at once: {tracker.max_live}"
    assert not problems(cluster, model)

    log = op.log_text()
    figures.record("crash", "studios", n_studios)
    figures.record("crash", "kills", total_kills)
    figures.record("crash", "converge_max_s", max(converge))
    figures.record("crash", "kill_log", kill_log)
    figures.record("crash", "seed", seed)
    figures.record("crash", "reconcile_retries_logged", failed_reconciles(log, ns))
    found = crashes(log)
    print(f"tracebacks in the operator log: {len(tracebacks(log))}")
    assert not found, f"unexpected tracebacks: {found[:5]}"
    # leave nothing behind for the namespace deletion (finalizers need the operator)
    ignore_404(lambda: None)
