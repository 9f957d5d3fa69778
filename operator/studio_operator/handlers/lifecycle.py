"""Operator start-up and shut-down: kopf settings, store priming, workers and the scheduler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kopf

from .. import kube, metrics
from ..config import OPTIONS
from ..controller import Runtime
from ..controller.leader import LeaderElector
from ..studio.controller import StudioController
from ..studio.watched import PRIMARY, WATCHED

if TYPE_CHECKING:
    from .. import webhook_certs

log = logging.getLogger(__name__)


class DataLinkDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a diff-base (a deep copy of the body) on every event of every watched kind;
    only the DataLink change handlers use one. For the other kinds (studios, pods, ...: thousands
    of events per minute at scale, 14% of the operator's CPU in a profile) build nothing."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        if body.get("kind") != "DataLink":
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)


def configure(settings: kopf.OperatorSettings) -> None:
    # Own names under studios.dev for anything kopf stores (only the DataLink handlers use them).
    settings.persistence.finalizer = "studios.dev/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="studios.dev")
    settings.persistence.diffbase_storage = DataLinkDiffBaseStorage(
        prefix="studios.dev", key="last-handled-configuration"
    )
    # kopf posts Events for its own log lines only when they matter; the reconciler posts the rest.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.peering.name = OPTIONS.peering or "studio-operator"
    settings.peering.priority = OPTIONS.priority
    settings.peering.mandatory = OPTIONS.peering is not None
    settings.peering.standalone = OPTIONS.peering is None


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the operator's own connection settings (kube.py reads them); called
    again when the API server rejects the credentials (a rotated token)."""
    conn = kube.init(OPTIONS.kubeconfig)
    return kopf.ConnectionInfo(
        server=conn.server,
        ca_path=conn.ca_file,
        insecure=conn.insecure,
        token=conn.bearer(),
        certificate_path=conn.cert_file,
        private_key_path=conn.key_file,
        default_namespace=conn.namespace,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    runtime = memo.runtime = Runtime(WATCHED, PRIMARY, namespaces=OPTIONS.namespaces)
    await _start_admission(settings, runtime)
    controller = StudioController(
        runtime.store, runtime.scheduler, runtime.events, backlog=lambda: runtime.queue.waiting() > 0
    )
    runtime.queue.on_drained = controller.release_after_burst

    async def prime() -> None:
        """Once every watch has listed its kind, queue every studio (at start and on becoming
        active: a standby's store is kept current by its watches)."""
        await runtime.synced()
        runtime.resync.queue_all()

    runtime.watch()

    await _open_gate(runtime, memo, prime)
    runtime.start(controller.reconcile, OPTIONS.workers)
    runtime.spawn(_gauges(runtime), "gauges")
    if OPTIONS.metrics_port:
        metrics.serve(OPTIONS.metrics_port, OPTIONS.probe_address)
    log.info("studio-operator started: %d studios known", runtime.store.count(PRIMARY))


async def _start_admission(settings: kopf.OperatorSettings, runtime: Runtime) -> None:
    if OPTIONS.webhook_mode == "none":
        return  # nor their modules (cryptography alone is ~8 MB)
    from . import admission

    cert_dir = Path(
        OPTIONS.cert_dir
        or (".cluster/webhook" if OPTIONS.webhook_mode == "local" else admission.CLUSTER_CERT_DIR)
    )
    if OPTIONS.webhook_mode == "cluster" and OPTIONS.webhook_cert_secret:
        certs = cert_manager(cert_dir)
        await certs.sync()  # the files exist before the webhook server first reads them
        runtime.spawn(certs.run(), "webhook-certs")
    admission.configure_admission(
        settings, OPTIONS.webhook_mode, OPTIONS.webhook_host or "127.0.0.1", OPTIONS.webhook_port, cert_dir
    )
    await admission.init_admission()


async def _open_gate(runtime: Runtime, memo: kopf.Memo, prime: Callable[[], Awaitable[None]]) -> None:
    """Who acts: the holder of the Lease, the live peer kopf's peering rule picks, or this replica
    alone. Standby replicas keep their store current but reconcile nothing and check no links."""
    if OPTIONS.leader_election:
        from .. import webhook_certs  # see _start_admission

        elector = memo.elector = LeaderElector(
            OPTIONS.leader_election,
            OPTIONS.leader_election_namespace or webhook_certs.operator_namespace() or "default",
            OPTIONS.identity,
            duration=OPTIONS.lease_duration,
            renew_deadline=max(1.0, OPTIONS.lease_duration * 0.75),
        )
        runtime.gate.active = elector.active
        runtime.spawn(elector.run(prime), "leader-election")
    elif OPTIONS.peering:
        await _ensure_peering_object(OPTIONS.peering)
        runtime.spawn(
            runtime.gate.watch(OPTIONS.peering, OPTIONS.identity, OPTIONS.priority, prime), "peering-gate"
        )
    else:
        await prime()
        runtime.gate.open()


def cert_manager(cert_dir: Path) -> webhook_certs.CertManager:
    """The Service, its namespace (the Secret's too) from --webhook-host `<service>.<namespace>.svc`."""
    from .. import webhook_certs  # see _start_admission

    host = OPTIONS.webhook_host or ""
    parts = host.split(".")
    if len(parts) < 2 or not OPTIONS.webhook_cert_secret:
        raise kopf.PermanentError(
            f"--webhook-cert-secret needs --webhook-host=<service>.<namespace>.svc, not {host!r}"
        )
    return webhook_certs.CertManager(
        namespace=parts[1],
        secret=OPTIONS.webhook_cert_secret,
        service=parts[0],
        config_name=OPTIONS.webhook_config,
        cert_dir=cert_dir,
    )


async def _ensure_peering_object(name: str) -> None:
    """kopf writes heartbeats into this object; create it if the installer did not."""
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        await kube.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", body, retries=1)
    except kube.ApiError as exc:
        if exc.status != 409:
            log.warning("could not create ClusterKopfPeering %s: %s", name, exc)


async def _gauges(runtime: Runtime) -> None:
    while True:
        counts = runtime.store.tally(PRIMARY)
        counts["Unknown"] = counts.pop("", 0) + counts.get("Unknown", 0)
        for phase in ("Stopped", "Starting", "Running", "Stopping", "Errored", "Unknown"):
            metrics.STUDIOS_BY_PHASE.labels(phase=phase).set(counts.get(phase, 0))
        stats = kube.stats()
        metrics.API_REQUESTS.set(stats["requests"])
        metrics.API_RETRIES.set(stats["retries"])
        metrics.QUEUE_DEPTH.set(len(runtime.queue))
        metrics.SCHEDULED.set(len(runtime.scheduler))
        await asyncio.sleep(5)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is None:
        return
    elector: LeaderElector | None = getattr(memo, "elector", None)
    if elector is not None:
        await runtime.cancel("leader-election")
        await elector.release()  # a standby takes over at its next look, not after the lease
    await runtime.stop()
    await kube.close()


@kopf.on.probe(id="queue")
def queue_probe(memo: kopf.Memo, **_: Any) -> int:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    return len(runtime.queue) if runtime is not None else -1
