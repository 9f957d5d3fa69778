"""Run-time options of the operator process (set once from the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass
class Options:
    kubeconfig: str | None = None
    namespaces: list[str] = field(default_factory=list)
    liveness_port: int = 8089
    metrics_port: int = 8090
    webhook_mode: str = "none"  # local | cluster | none
    webhook_port: int = 9443
    webhook_host: str | None = None
    cert_dir: str | None = None
    peering: str | None = None
    priority: int = 0
    identity: str = ""
    workers: int = 64
    warning_ahead: timedelta = timedelta(minutes=15)
    verbose: bool = False


OPTIONS = Options()
