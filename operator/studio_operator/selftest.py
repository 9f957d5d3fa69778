"""`studio-operator selftest`: what the chart's `helm test` pod runs against an installed operator.

Checks that the operator answers (its metrics endpoint) and that the admission webhooks admit a
Studio: a server-side dry-run create goes through both webhooks (nothing is stored), and the
mutating one must have stamped the creator. Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import urllib.error
import urllib.request
from typing import Any

from .api.common import API_VERSION, CREATED_BY_ANNOTATION


def check_metrics(url: str, timeout: float = 10.0) -> str | None:
    """None when the endpoint serves the operator's metrics, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if "studio_operator_" in text else f"{url}: no studio_operator_ metrics"


def dry_run_studio(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Studio",
        "metadata": {"name": f"selftest-{secrets.token_hex(3)}", "namespace": namespace},
        "spec": {
            "computeEnvironment": "selftest",
            "template": {"image": "registry.invalid/selftest:1", "port": 8888},
            "state": "Stopped",
        },
    }


def check_webhooks(namespace: str, kubeconfig: str | None) -> str | None:
    from . import kube

    async def dry_run() -> dict[str, Any]:
        kube.init(kubeconfig)
        try:
            path = kube.path_for(API_VERSION, "Studio", namespace)
            created: dict[str, Any] = await kube.request(
                "POST", path, dry_run_studio(namespace), query={"dryRun": "All"}, retries=1
            )
            return created
        finally:
            await kube.close()

    try:
        created = asyncio.run(dry_run())
    except kube.ApiError as exc:
        return f"a dry-run Studio in {namespace} was refused ({exc.status}): {exc.message or exc.reason}"
    creator = ((created.get("metadata") or {}).get("annotations") or {}).get(CREATED_BY_ANNOTATION)
    if not creator:
        return f"the mutating webhook did not stamp {CREATED_BY_ANNOTATION} (is it registered?)"
    return None


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, str | None]] = []
    if args.metrics_url:
        checks.append((f"operator answers on {args.metrics_url}", check_metrics(args.metrics_url)))
    if not args.no_webhooks:
        checks.append(
            (
                f"webhooks admit a dry-run Studio in {args.namespace}",
                check_webhooks(args.namespace, args.kubeconfig),
            )
        )
    for what, problem in checks:
        print(f"{'FAIL' if problem else 'ok  '} {what}" + (f": {problem}" if problem else ""))
    sys.stdout.flush()
    return 1 if any(problem for _, problem in checks) else 0
