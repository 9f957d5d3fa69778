"""Run-time options of the operator process (set once from the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .resources.endpoints import S3Policy


@dataclass
class Options:
    kubeconfig: str | None = None
    namespaces: list[str] = field(default_factory=list)
    liveness_port: int = 8089
    metrics_port: int = 8090
    # Where the liveness and metrics endpoints listen: loopback unless told (the chart passes 0.0.0.0
    # so the kubelet and Prometheus reach them).
    probe_address: str = "127.0.0.1"
    webhook_mode: str = "none"  # local | cluster | none
    webhook_port: int = 9443
    webhook_host: str | None = None
    cert_dir: str | None = None
    webhook_cert_secret: str | None = None  # cluster mode: the operator manages its certificate
    webhook_config: str = "studio-operator"
    peering: str | None = None
    priority: int = 0
    leader_election: str | None = None  # Lease name: HA without kopf peering
    leader_election_namespace: str | None = None
    lease_duration: int = 8
    identity: str = ""
    workers: int = 64
    warning_ahead: timedelta = timedelta(minutes=15)
    verbose: bool = False
    s3_policy: S3Policy = field(default_factory=S3Policy)


OPTIONS = Options()
