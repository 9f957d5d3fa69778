"""Scenario 6: two operator processes with kopf peering (``--peering NAME --priority 10|5``).

Only the higher priority acts; SIGKILL it and the other takes over within kopf's peer lifetime
(60 s: the dead peer's last heartbeat must expire first); the sessions that ran stay untouched
(no second pod); when the first one comes back it takes over again and the standby pauses.
The trimmed run (`make test`) stops the active replica with SIGTERM instead: kopf withdraws its
peer entry on the way out, so the handover takes seconds, not the peer lifetime.

Webhooks: each process in local mode registers its own URL in the one webhook configuration; the
last one started wins. The standby is started last so the webhooks outlive the active replica's
death (in a cluster both sit behind one Service; see docs/install.md).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from loopback import http_get
from rel_helpers import Load, Model, PodTracker, retrying, wait_converged

import studio_helpers as sh
from kube_helpers import ROOT, Cluster, OperatorProcess, wait_for

PEERING_CRDS = ROOT / "manifests" / "peering" / "kopf-peering-crds.yaml"
PEER_LIFETIME = 60
ACTIVE = "is now active"


def apply_peering_crds(cluster: Cluster) -> None:
    ext = client.ApiextensionsV1Api(cluster.api_client)
    for doc in yaml.safe_load_all(Path(PEERING_CRDS).read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            ext.patch_custom_resource_definition(
                doc["metadata"]["name"],
                doc,
                field_manager="studio-tests",
                force=True,
                _content_type="application/apply-patch+yaml",
            )
    for doc in yaml.safe_load_all(Path(PEERING_CRDS).read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            wait_for(
                lambda n=doc["metadata"]["name"]: any(
                    c.type == "Established" and c.status == "True"
                    for c in (ext.read_custom_resource_definition(n).status.conditions or [])
                ),
                timeout=30,
            )


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
    full_scale: bool,
) -> None:
    apply_peering_crds(cluster)
    peering = f"rel-{secrets.token_hex(4)}"
    ns = namespace
    active = operator_factory("--peering", peering, "--priority", "10")
    wait_for(lambda: ACTIVE in active.log_text(), timeout=60, message="replica 10 active")
    standby = operator_factory("--peering", peering, "--priority", "5")
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

        # the active replica dies (or, trimmed, exits); changes made now wait for the takeover
        if full_scale:
            active.kill()
        else:
            active.stop()
        killed = time.monotonic()
        load.set_state("h0", "Running")  # was Stopped
        load.set_state("h1", "Stopped")
        load.create("h8", "Running", False)
        wait_for(lambda: ACTIVE in standby.log_text(), timeout=PEER_LIFETIME + 30, message="takeover")
        takeover = time.monotonic() - killed
        wait_converged(cluster, model, timeout=60)
        converged = time.monotonic() - killed
        assert takeover <= (PEER_LIFETIME + 10 if full_scale else 20), f"takeover took {takeover:.0f}s"

        # the first replica comes back: it acts again, the standby pauses
        active.start()
        wait_for(
            lambda: "pausing" in standby.log_since_start() or "pausing" in standby.log_text(),
            timeout=60,
            message="standby pauses",
        )
        wait_for(lambda: ACTIVE in active.log_since_start(), timeout=60, message="replica 10 active again")
        load.set_state("h2", "Stopped")
        load.set_state("h0", "Stopped")
        wait_converged(cluster, model, timeout=60)
    finally:
        tracker.stop()

    seen = tracker.sessions()
    doubled = {
        n: (seen.get(n, 0), e.sessions) for n, e in model.studios.items() if seen.get(n, 0) != e.sessions
    }
    assert not doubled, f"pods seen per studio != sessions (seen, expected): {doubled}"
    assert all(v <= 1 for v in tracker.max_live.values())
    how = "kill9" if full_scale else "sigterm"
    figures.record("ha", f"takeover_after_{how}_s", takeover)
    figures.record("ha", f"converged_after_{how}_s", converged)
    figures.record("ha", "peer_lifetime_s", PEER_LIFETIME)
    with contextlib.suppress(ApiException):
        client.CustomObjectsApi(cluster.api_client).delete_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", peering
        )
