"""Scenario 3: sessions that expire while the operator, or its API server, is down are stopped
right after recovery, exactly once (one SessionExpired Event, stopReason LifespanExpired, no new
session afterwards).

Lifespans are at least an hour, so the test backdates `status.session.startedAt` (through the
status subresource, as an administrator could) to put the expiry a few seconds ahead.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rel_helpers import ApiServer, retrying

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

STUDIOS = ("e0", "e1", "e2")
LEAD = 8.0  # seconds from backdating to expiry


def start_studios(cluster: Cluster, ns: str) -> None:
    retrying(lambda: sh.create_environment(cluster, ns))
    for name in STUDIOS:
        retrying(
            lambda n=name: sh.create_studio(cluster, ns, n, lifespan={"policy": "StopAfter", "hours": 1})
        )
    for name in STUDIOS:
        sh.wait_phase(cluster, ns, name, "Running", timeout=60)


def expire_soon(cluster: Cluster, ns: str, lead: float = LEAD) -> datetime:
    """Backdate every session so that it ends `lead` seconds from now; wait until the operator
    shows (and has scheduled) that expiry."""
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
    started = sh.rfc3339(expiry - timedelta(hours=1))
    for name in STUDIOS:
        sh.patch_status(cluster, ns, name, {"session": {"startedAt": started}})
    for name in STUDIOS:
        sh.wait_studio(
            cluster,
            ns,
            name,
            lambda b: (sh.status(b).get("session") or {}).get("expiresAt") == sh.rfc3339(expiry),
            "expiresAt moved",
            timeout=10,
        )
    return expiry


def wait_expired(cluster: Cluster, ns: str, timeout: float = 60) -> dict[str, float]:
    """Wall-clock time at which each studio was seen Stopped/LifespanExpired without a pod."""
    seen: dict[str, float] = {}

    def check() -> bool:
        for name in STUDIOS:
            if name in seen:
                continue
            st = sh.status(sh.get(cluster, ns, name))
            expired = st.get("phase") == "Stopped" and st.get("stopReason") == "LifespanExpired"
            if expired and not sh.pods(cluster, ns, name):
                seen[name] = time.time()
        return len(seen) == len(STUDIOS)

    wait_for(check, timeout=timeout, interval=0.2, message=lambda: f"expired: {sorted(seen)}")
    return seen


def assert_expired_once(cluster: Cluster, ns: str) -> None:
    for name in STUDIOS:
        events = sh.events(cluster, ns, name, "SessionExpired")
        assert len(events) == 1, f"{name}: {len(events)} SessionExpired events"
        body = sh.get(cluster, ns, name)
        st = sh.status(body)
        assert (st["phase"], st["stopReason"]) == ("Stopped", "LifespanExpired"), st
        assert not st.get("session")
        assert not sh.pods(cluster, ns, name)


def test_expiry_while_operator_down(
    cluster: Cluster,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    figures: Any,
) -> None:
    ns = namespace
    op = operator_factory()
    start_studios(cluster, ns)
    expiry = expire_soon(cluster, ns)
    op.kill()
    # the sessions expire while nobody watches; wait a little past the expiry
    time.sleep(max(0.0, expiry.timestamp() - time.time()) + 5)
    assert all(sh.live_pods(cluster, ns, n) for n in STUDIOS), "nobody should have stopped them yet"
    op.start()
    back = time.time()
    seen = wait_expired(cluster, ns)
    assert_expired_once(cluster, ns)

    # a second crash and restart neither repeats the expiry nor starts a session again
    op.kill()
    op.start()
    time.sleep(3)
    assert_expired_once(cluster, ns)

    figures.record("expiry-operator-down", "stopped_after_operator_healthy_max_s", max(seen.values()) - back)
    figures.record("expiry-operator-down", "late_vs_expiresAt_max_s", max(seen.values()) - expiry.timestamp())


def test_expiry_while_apiserver_down(
    cluster: Cluster,
    apiserver: ApiServer,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    figures: Any,
) -> None:
    ns = namespace
    op = operator_factory(kubeconfig=apiserver.kubeconfig)
    start_studios(cluster, ns)
    expiry = expire_soon(cluster, ns)
    apiserver.stop(sig=signal.SIGKILL)  # the operator's scheduler fires while it cannot reach it
    time.sleep(max(0.0, expiry.timestamp() - time.time()) + 5)
    assert all(sh.live_pods(cluster, ns, n) for n in STUDIOS)
    apiserver.start()
    back = time.time()
    seen = wait_expired(cluster, ns)
    time.sleep(3)
    assert_expired_once(cluster, ns)
    assert op.starts == 1 and op.running

    figures.record("expiry-apiserver-down", "stopped_after_apiserver_ready_max_s", max(seen.values()) - back)
    figures.record(
        "expiry-apiserver-down", "late_vs_expiresAt_max_s", max(seen.values()) - expiry.timestamp()
    )
