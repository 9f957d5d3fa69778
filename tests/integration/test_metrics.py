"""The operator's Prometheus endpoint (--metrics-port), scraped as Prometheus would."""

from __future__ import annotations

import re

from loopback import http_get

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")


def scrape(operator: OperatorProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = http_get(operator.metrics_url, timeout=5)
    assert status == 200, text
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_endpoint(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    sh.create_environment(cluster, namespace, "env")
    sh.create_studio(cluster, namespace, "m1")
    sh.create_studio(cluster, namespace, "m2", state="Stopped")
    sh.wait_phase(cluster, namespace, "m1", "Running", timeout=60)
    sh.wait_phase(cluster, namespace, "m2", "Stopped")

    # the studios-by-phase gauge is refreshed every few seconds from the operator's store
    def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = scrape(operator)
        running = value(samples, "studio_operator_studios", phase="Running") or 0
        stopped = value(samples, "studio_operator_studios", phase="Stopped") or 0
        return samples if running >= 1 and stopped >= 1 else None

    samples = wait_for(counted, timeout=30, message="studio_operator_studios to count m1 and m2")
    for phase in ("Stopped", "Starting", "Running", "Stopping", "Errored"):
        assert value(samples, "studio_operator_studios", phase=phase) is not None, phase
    assert (value(samples, "studio_operator_sessions_started_total") or 0) >= 1
    assert (value(samples, "studio_operator_reconcile_duration_seconds_count") or 0) >= 2
    assert value(samples, "studio_operator_session_expiries_total") is not None
    names = {name for name, _ in samples}
    for expected in (
        "studio_operator_api_requests",
        "studio_operator_api_retries",
        "studio_operator_queue_depth",
    ):
        assert expected in names, expected
    assert any(name == "studio_operator_reconcile_errors_total" for name, _ in samples) or (
        "studio_operator_reconcile_errors" in http_get(operator.metrics_url)[1]
    )


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_probe_endpoints_listen_on_loopback_only(operator: OperatorProcess) -> None:
    """Outside a pod the liveness and metrics endpoints are not reachable from the network
    (the chart and the kustomize base pass --probe-address=0.0.0.0 for the kubelet)."""
    assert http_get(operator.liveness_url)[0] == 200 and http_get(operator.metrics_url)[0] == 200
    for port in (operator.liveness_port, operator.metrics_port):
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
