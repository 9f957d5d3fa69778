"""Scenario 6: two operator processes with leader election (``--leader-election LEASE``).

Only the holder of the Lease acts; SIGKILL it and the standby takes over once the Lease was not
renewed for its duration (8 s; the goal is a takeover within 15 s); the sessions that ran stay
untouched (no second pod). The killed replica comes back as the standby (a Lease has no
priorities); stopping the active one cleanly then hands the Lease over at once (it is released).

Webhooks: each process in local mode registers its own URL in the one webhook configuration; the
last one started wins. The standby is started last so the webhooks outlive the active replica's
death (in a cluster both sit behind one Service; see docs/install.md).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from loopback import http_get
from rel_helpers import Load, Model, PodTracker, retrying, wait_converged

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

TAKEOVER_GOAL = 15.0
ACTIVE = "is now active"


def sessions_started(op: OperatorProcess) -> float:
    status, text = http_get(op.metrics_url)
    assert status == 200, text
    match = re.search(r"^studio_operator_sessions_started_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_replicas_one_acts_and_the_other_takes_over(
    cluster: Cluster,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    figures: Any,
) -> None:
    ns = namespace
    lease = ["--leader-election", f"rel-{secrets.token_hex(4)}", "--leader-election-namespace", ns]
    active = operator_factory(*lease)
    wait_for(lambda: ACTIVE in active.log_text(), timeout=60, message="first replica active")
    standby = operator_factory(*lease)
    retrying(lambda: sh.create_environment(cluster, ns))
    model = Model(ns)
    load = Load(cluster, model)
    tracker = PodTracker(cluster, ns).start()
    try:
        for i in range(8):
            load.create(f"h{i}", "Running" if i % 4 else "Stopped", False)
        wait_converged(cluster, model, timeout=60)
        time.sleep(3)  # anything the standby would do, it would have done by now
        assert ACTIVE not in standby.log_text(), "the standby replica became active"
        assert sessions_started(standby) == 0
        assert sessions_started(active) == len(model.live("Running"))

        # kill -9: the Lease is not released; changes made now wait for the takeover
        active.kill()
        killed = time.monotonic()
        load.set_state("h0", "Running")  # was Stopped
        load.set_state("h1", "Stopped")
        load.create("h8", "Running", False)
        wait_for(lambda: ACTIVE in standby.log_text(), timeout=60, message="takeover")
        takeover = time.monotonic() - killed
        wait_converged(cluster, model, timeout=60)
        converged = time.monotonic() - killed
        assert takeover <= TAKEOVER_GOAL, f"takeover after kill -9 took {takeover:.1f}s"

        # the killed replica comes back as the standby; a clean stop of the active one hands over
        active.start()
        time.sleep(3)
        assert ACTIVE not in active.log_since_start(), "the returning replica took the Lease"
        stopped = time.monotonic()  # from SIGTERM: stop() returns once the process has exited
        standby.stop()
        wait_for(lambda: ACTIVE in active.log_since_start(), timeout=30, message="handover")
        handover = time.monotonic() - stopped
        load.set_state("h2", "Stopped")
        load.set_state("h0", "Stopped")
        wait_converged(cluster, model, timeout=60)
        # released, not expired: sooner than the lease duration (kopf's shutdown and the new
        # holder's priming LISTs included)
        assert handover < 8.0, f"handover after a clean stop took {handover:.1f}s"
    finally:
        tracker.stop()

    seen = tracker.sessions()
    doubled = {
        n: (seen.get(n, 0), e.sessions) for n, e in model.studios.items() if seen.get(n, 0) != e.sessions
    }
    assert not doubled, f"pods seen per studio != sessions (seen, expected): {doubled}"
    assert all(v <= 1 for v in tracker.max_live.values())
    figures.record("ha", "takeover_after_kill9_s", takeover)
    figures.record("ha", "converged_after_kill9_s", converged)
    figures.record("ha", "handover_after_sigterm_s", handover)
    figures.record("ha", "lease_duration_s", 8)
