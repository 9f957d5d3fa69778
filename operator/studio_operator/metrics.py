"""Prometheus metrics served on the operator's metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

STUDIOS_BY_PHASE = Gauge("studio_operator_studios", "Studios by phase", ["phase"])
RECONCILE_SECONDS = Histogram(
    "studio_operator_reconcile_duration_seconds",
    "Time spent reconciling one studio",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("studio_operator_reconcile_errors_total", "Reconciles that raised", ["kind"])
EXPIRIES = Counter(
    "studio_operator_session_expiries_total", "Sessions stopped because their lifespan expired"
)
EXPIRY_FAILURES = Counter(
    "studio_operator_expiry_failures_total",
    "Lifespan expiries that failed (retried; alert when they persist)",
)
SESSIONS_STARTED = Counter("studio_operator_sessions_started_total", "Session pods created")
API_RETRIES = Gauge("studio_operator_api_retries", "API requests retried after a transient failure")
API_REQUESTS = Gauge("studio_operator_api_requests", "API requests made by the reconciler")
QUEUE_DEPTH = Gauge("studio_operator_queue_depth", "Studios waiting to be reconciled")
SCHEDULED = Gauge(
    "studio_operator_scheduled_deadlines", "Studios with a pending deadline (expiry, warning, retry)"
)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    start_http_server(port, addr=addr)
