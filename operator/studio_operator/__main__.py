"""`studio-operator run [...]`: the operator process (kopf) with the project's handlers."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType

from .config import OPTIONS
from .resources.endpoints import (
    PolicyError,
    S3Policy,
    parse_endpoints,
    parse_networks,
    parse_shared_buckets,
)

HANDLER_MODULES = [
    "studio_operator.handlers.lifecycle",
    "studio_operator.handlers.datalinks",
]


def _s3_arguments(run: argparse.ArgumentParser) -> None:
    s3 = run.add_argument_group(
        "S3 trust (docs/storage.md)",
        "Each option may be repeated; without it, its STUDIO_* environment variable is read "
        "(comma-separated; ';' between shared-bucket entries).",
    )
    s3.add_argument(
        "--s3-allowed-endpoint",
        action="append",
        metavar="URL",
        help="an S3 endpoint the operator's and the storage driver's own identity may sign requests "
        "for, besides AWS S3; '*' matches any host part or port (env STUDIO_S3_ALLOWED_ENDPOINTS)",
    )
    s3.add_argument(
        "--s3-shared-buckets",
        action="append",
        metavar="NAMESPACE=BUCKET[,BUCKET]",
        help="buckets a namespace's data links may reach through the shared identity (no "
        "credentialsSecret); shell patterns on both sides (env STUDIO_S3_SHARED_BUCKETS)",
    )
    s3.add_argument(
        "--s3-allowed-network",
        action="append",
        metavar="CIDR",
        help="a non-public network tenant endpoints may resolve to (env STUDIO_S3_ALLOWED_NETWORKS)",
    )
    s3.add_argument(
        "--s3-denied-network",
        action="append",
        metavar="CIDR",
        help="a network tenant endpoints may not resolve to, besides loopback, link-local and "
        "private ones, e.g. a public service CIDR (env STUDIO_S3_DENIED_NETWORKS)",
    )


def _webhook_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--webhook-mode", choices=["local", "cluster", "none"], default="none")
    run.add_argument("--webhook-port", type=int, default=9443)
    run.add_argument("--webhook-host", help="cluster mode: the webhook Service's DNS name")
    run.add_argument("--cert-dir", help="webhook certificates (local: generated here; cluster: mounted)")
    run.add_argument(
        "--webhook-cert-secret",
        help="cluster mode: keep the serving certificate in this Secret (created and rotated by the "
        "operator, written to --cert-dir) and inject its CA into the webhook configurations",
    )
    run.add_argument(
        "--webhook-config",
        default="studio-operator",
        help="with --webhook-cert-secret: the Validating/MutatingWebhookConfigurations to inject the CA into",
    )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="studio-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then in-cluster)")
    run.add_argument("--namespace", "-n", action="append", default=[], help="watch only these namespaces")
    run.add_argument("--liveness-port", type=int, default=8089)
    run.add_argument("--metrics-port", type=int, default=8090, help="0 disables the metrics endpoint")
    run.add_argument(
        "--probe-address",
        default=os.environ.get("STUDIO_PROBE_ADDRESS", "127.0.0.1"),
        help="address of the liveness and metrics endpoints (in a pod: 0.0.0.0; env STUDIO_PROBE_ADDRESS)",
    )
    _s3_arguments(run)
    _webhook_arguments(run)
    run.add_argument("--peering", help="kopf peering name: enables high availability (replicas > 1)")
    run.add_argument("--priority", type=int, default=0, help="peering priority (highest acts)")
    run.add_argument(
        "--leader-election",
        metavar="LEASE",
        help="high availability with this coordination.k8s.io Lease (replicas > 1): one replica acts",
    )
    run.add_argument(
        "--leader-election-namespace",
        help="the Lease's namespace (default: the operator's own, $POD_NAMESPACE, else default)",
    )
    run.add_argument("--lease-duration", type=int, default=8, help="seconds before a standby takes over")
    run.add_argument("--workers", type=int, default=64, help="concurrent reconciles")
    run.add_argument("--warning-minutes", type=float, default=15.0, help="SessionExpiringSoon lead time")
    run.add_argument("--verbose", "-v", action="store_true")
    run.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="json: one object per line"
    )
    test = sub.add_parser("selftest", help="check an installed operator (what `helm test` runs)")
    test.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then in-cluster)")
    test.add_argument("--namespace", "-n", default="default", help="where to dry-run a Studio")
    test.add_argument("--metrics-url", help="the operator's metrics endpoint, e.g. http://svc:8090/metrics")
    test.add_argument("--no-webhooks", action="store_true", help="skip the admission check")
    return parser.parse_args(argv)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (Loki, Elasticsearch, Cloud Logging)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core): kopf's
    thread pool for synchronous handlers and the S3 checks' threads. Two arenas (the usual
    MALLOC_ARENA_MAX=2 advice for threaded Python services) bound what freed memory those arenas
    can keep. A guard, not a saving (bench/README.md). STUDIO_MALLOC_ARENAS=0 leaves glibc's
    default."""
    arenas = int(os.environ.get("STUDIO_MALLOC_ARENAS", "2"))
    if arenas <= 0 or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


def import_kopf() -> ModuleType:
    """kopf imports the typed Kubernetes client, when installed, only to recognise its model
    objects, which the operator never hands it: about 35 MB of modules. Hidden during that import."""
    hidden = "kubernetes" not in sys.modules
    if hidden:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]  # import → ImportError
    try:
        import kopf
    finally:
        if hidden:
            sys.modules.pop("kubernetes", None)
    return kopf


def _setting(given: list[str] | None, env: str) -> list[str]:
    return given if given is not None else [os.environ.get(env, "")]


def s3_policy(args: argparse.Namespace) -> S3Policy:
    """The administrator's S3 trust policy from the flags, else the environment."""
    return S3Policy(
        allowed_endpoints=parse_endpoints(_setting(args.s3_allowed_endpoint, "STUDIO_S3_ALLOWED_ENDPOINTS")),
        allowed_networks=parse_networks(_setting(args.s3_allowed_network, "STUDIO_S3_ALLOWED_NETWORKS")),
        denied_networks=parse_networks(_setting(args.s3_denied_network, "STUDIO_S3_DENIED_NETWORKS")),
        shared_buckets=parse_shared_buckets(_setting(args.s3_shared_buckets, "STUDIO_S3_SHARED_BUCKETS")),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "selftest":
        from . import selftest

        return selftest.run(args)
    try:
        kopf = import_kopf()
    except ImportError as exc:  # a plugin-only install (pip install studio-operator[cli])
        print(f"{exc}: the operator needs `pip install studio-operator[operator]`", file=sys.stderr)
        return 1
    try:
        policy = s3_policy(args)
    except PolicyError as exc:
        print(f"studio-operator: invalid S3 trust setting: {exc}", file=sys.stderr)
        return 2
    limit_malloc_arenas()  # before any thread exists
    _configure(args, policy)
    _setup_logging(args, policy)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    # No fallback logins (kopf's would import the typed client): handlers/lifecycle.py logs in.
    kopf.set_default_registry(kopf.OperatorRegistry())
    _import_handlers()
    if args.webhook_mode != "none":
        # Registered before kopf starts so its managed webhook configuration lists them.
        from .handlers import admission

        admission.register_handlers()
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        identity=OPTIONS.identity,
        liveness_endpoint=_liveness_url(args.probe_address, args.liveness_port),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
    )
    return 0


def _configure(args: argparse.Namespace, policy: S3Policy) -> None:
    OPTIONS.kubeconfig = args.kubeconfig
    OPTIONS.namespaces = args.namespace
    OPTIONS.liveness_port = args.liveness_port
    OPTIONS.metrics_port = args.metrics_port
    OPTIONS.probe_address = args.probe_address
    OPTIONS.s3_policy = policy
    OPTIONS.webhook_mode = args.webhook_mode
    OPTIONS.webhook_port = args.webhook_port
    OPTIONS.webhook_host = args.webhook_host
    OPTIONS.cert_dir = args.cert_dir
    OPTIONS.webhook_cert_secret = args.webhook_cert_secret
    OPTIONS.webhook_config = args.webhook_config
    OPTIONS.peering = args.peering
    OPTIONS.priority = args.priority
    OPTIONS.leader_election = args.leader_election
    OPTIONS.leader_election_namespace = args.leader_election_namespace
    OPTIONS.lease_duration = args.lease_duration
    OPTIONS.identity = f"{socket.gethostname()}@{os.getpid()}"
    OPTIONS.workers = args.workers
    OPTIONS.warning_ahead = timedelta(minutes=args.warning_minutes)
    OPTIONS.verbose = args.verbose


def _setup_logging(args: argparse.Namespace, policy: S3Policy) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if args.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if not args.verbose:
        # kopf logs every successful handler call at INFO: one line per watch event at scale.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("studio_operator").info(
        "S3 trust: shared identities sign for AWS S3%s; shared buckets: %s; tenant endpoints: "
        "public addresses%s%s",
        "".join(f", {e}" for e in policy.allowed_endpoints),
        "; ".join(f"{ns}={','.join(b)}" for ns, b in policy.shared_buckets) or "none",
        "".join(f", {n}" for n in policy.allowed_networks),
        "".join(f", never {n}" for n in policy.denied_networks),
    )


def _import_handlers() -> None:
    for module in HANDLER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if exc.name != module:
                raise
            logging.getLogger("studio_operator").info("%s not present in this build", module)


def _liveness_url(address: str, port: int) -> str | None:
    if not port:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/healthz"


if __name__ == "__main__":
    raise SystemExit(main())
