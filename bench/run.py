#!/usr/bin/env python3
"""Benchmarks of the studio operator on the local control plane.

One run measures, side by side with a baseline in the same run:

1. start throughput: N studios applied at once until every session pod exists, against the same
   pods and services created directly with the same client and concurrency (``start_ratio``);
2. start latency: sequential single-studio applies until the pod exists, against sequential
   direct pod creations (``start_overhead_p50_ms``/``p99``);
3. API cost: kube-apiserver's own counters (``apiserver_request_total`` by verb, cluster-wide) and,
   attributed to the operator alone, ``apiserver_flowcontrol_dispatched_requests_total`` of
   per-verb FlowSchemas that match the operator's own ServiceAccount (``writes_per_start``, ...);
4. expiry lateness: running studios backdated (``status.session.startedAt``) so that many expire
   at the same instant (``expiry_p99_s``), and a single one (``expiry_single_s``);
5. footprint: the operator's RSS (/proc/<pid>/status VmRSS) and CPU at rest (``rss_mb``);
6. restart: the operator restarted with the studios present until a change made after its start
   is acted on (``restart_s``).

Everything the run creates carries the label ``studio-bench/run`` and is deleted at the end
(``--cleanup`` deletes leftovers of interrupted runs). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from api import Api
from harness import ROOT, BenchError, log
from report import markdown, write_results
from scenarios import Bench, Config, cleanup_runs

from studio_operator import kube

# ---------------------------------------------------------------------------------------------
# command line


def parse(argv: Sequence[str]) -> tuple[Config, bool, Path | None]:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes",
        default=env("BENCH_SIZES", "100"),
        help="comma-separated N for the throughput/expiry/footprint/restart scenarios [BENCH_SIZES]",
    )
    p.add_argument(
        "--latency-samples",
        type=int,
        default=int(env("BENCH_LATENCY_SAMPLES", "50")),
        help="sequential single starts for the latency figures; 0 skips [BENCH_LATENCY_SAMPLES]",
    )
    p.add_argument(
        "--expiry-burst",
        type=int,
        default=int(env("BENCH_EXPIRY_BURST", "0")) or None,
        help="studios backdated to expire at once (default: --expiry-fraction of N) [BENCH_EXPIRY_BURST]",
    )
    p.add_argument(
        "--expiry-fraction",
        type=float,
        default=float(env("BENCH_EXPIRY_FRACTION", "0.2")),
        help="default burst as a fraction of N (the goal: 1,000 of 5,000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("BENCH_WORKERS", "64")),
        help="operator --workers [BENCH_WORKERS]",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(env("BENCH_CONCURRENCY", "0")) or None,
        help="harness request concurrency for both the studios and the baseline (default: --workers)",
    )
    p.add_argument(
        "--api-workers",
        type=int,
        default=int(env("STUDIO_API_WORKERS", "64")),
        help="studio_operator.kube thread pool, for the operator and the harness [STUDIO_API_WORKERS]",
    )
    p.add_argument(
        "--operator-arg", action="append", default=[], help="extra argument for the operator (repeat)"
    )
    p.add_argument("--operator-env", action="append", default=[], help="KEY=VALUE for the operator (repeat)")
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=float(env("BENCH_IDLE_SECONDS", "10")),
        help="window for RSS/CPU at rest",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=float(env("BENCH_SETTLE_SECONDS", "3")),
        help="quiet time that counts as settled between phases",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(env("BENCH_KUBECONFIG", str(ROOT / ".cluster" / "kubeconfig"))),
    )
    p.add_argument("--out", type=Path, default=Path(env("BENCH_OUT", str(ROOT / "bench" / "results"))))
    p.add_argument("--label", default=env("BENCH_LABEL", ""), help="name of this run in results/history")
    p.add_argument(
        "--profile",
        action="store_true",
        default=env("BENCH_PROFILE", "") not in ("", "0"),
        help="record the operator with py-spy (pip install py-spy) [BENCH_PROFILE=1]",
    )
    p.add_argument(
        "--exclusive-wait",
        type=float,
        default=float(env("BENCH_EXCLUSIVE_WAIT", "0")),
        help="before each phase wait up to this many seconds until no other studio operator runs "
        "(they reconcile every namespace, ours included) [BENCH_EXCLUSIVE_WAIT]",
    )
    p.add_argument(
        "--no-bracket",
        dest="bracket",
        action="store_false",
        help="run the direct baseline only before the operator (default: before and after, mean of both)",
    )
    p.add_argument(
        "--bracket-max",
        type=int,
        default=int(env("BENCH_BRACKET_MAX", "5000")),
        help="no baseline after the operator above this N: with 10,000 pods already in the cluster "
        "it is the longest phase of a run (7 min at 5,000 on 2 CPUs) [BENCH_BRACKET_MAX]",
    )
    p.add_argument(
        "--no-connect-grant",
        dest="connect_grant",
        action="store_false",
        default=env("BENCH_CONNECT_GRANT", "1") not in ("", "0"),
        help="grant studios-connect to nobody in the operator's namespaces (default: to one group, "
        "as in a team's namespace, so that every studio has a connect RoleBinding) [BENCH_CONNECT_GRANT=0]",
    )
    p.add_argument("--no-plot", dest="plot", action="store_false")
    p.add_argument("--no-history", dest="history", action="store_false")
    p.add_argument("--keep", action="store_true", help="leave the run's objects in place")
    p.add_argument(
        "--cleanup", action="store_true", help="only delete what earlier runs left behind, then exit"
    )
    p.add_argument(
        "--render", type=Path, help="only rewrite latest.{json,md,png} in --out from this results JSON"
    )
    a = p.parse_args(argv)
    sizes = [int(x) for x in str(a.sizes).replace(" ", "").split(",") if x]
    if not sizes or min(sizes) < 3:
        p.error("--sizes: each N must be >= 3")
    operator_env = dict(kv.split("=", 1) for kv in a.operator_env)
    cfg = Config(
        sizes=sizes,
        latency_samples=a.latency_samples,
        expiry_burst=a.expiry_burst,
        expiry_fraction=a.expiry_fraction,
        concurrency=a.concurrency or a.workers,
        workers=a.workers,
        api_workers=a.api_workers,
        out=a.out,
        kubeconfig=a.kubeconfig.resolve(),
        idle_seconds=a.idle_seconds,
        settle_seconds=a.settle_seconds,
        operator_args=a.operator_arg,
        operator_env=operator_env,
        profile=a.profile,
        exclusive_wait=a.exclusive_wait,
        bracket=a.bracket,
        bracket_max=a.bracket_max,
        plot=a.plot,
        label=a.label,
        history=a.history,
        keep=a.keep,
        connect_grant=a.connect_grant,
    )
    return cfg, a.cleanup, a.render


async def amain(cfg: Config, cleanup_only: bool) -> int:
    if not cfg.kubeconfig.exists():
        raise BenchError(f"{cfg.kubeconfig} not found: start the local control plane (make cluster-up)")
    if cleanup_only:
        await cleanup_runs(Api(cfg.kubeconfig, cfg.api_workers), None)
        await kube.close()
        return 0
    bench = Bench(cfg)
    log(
        f"run {bench.run_id}: sizes {cfg.sizes}, latency samples {cfg.latency_samples}; work dir {bench.workdir}"
    )
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        results = await bench.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log("cleaning up")
        await asyncio.shield(bench.cleanup())
        await kube.close()
    path = write_results(results, cfg)
    sys.stdout.write(markdown(results))
    log(f"wrote {path} (+ latest.md{', latest.png' if cfg.plot else ''})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    cfg, cleanup_only, render = parse(sys.argv[1:] if argv is None else argv)
    if render is not None:
        cfg.history = False
        path = write_results(json.loads(render.read_text()), cfg)
        log(f"wrote {path} (+ latest.md{', latest.png' if cfg.plot else ''}) from {render}")
        return 0
    try:
        return asyncio.run(amain(cfg, cleanup_only))
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
