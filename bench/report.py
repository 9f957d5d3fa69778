"""Results: the headline keys, goals, Markdown, the plot, history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpu import describe
from harness import log, pct
from scenarios import Config

# ---------------------------------------------------------------------------------------------
# results: JSON (contract keys on top), markdown table, plot


def _size(done: list[dict[str, Any]], n: int, fallback: dict[str, Any]) -> dict[str, Any]:
    return next((s for s in done if s["studios"] == n), fallback)


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The contract's keys from the largest size, plus the latency run; the goals stated for
    N = 1,000 from that size when it ran."""
    sizes = results.get("sizes") or []
    done = [s for s in sizes if "start" in s]
    big = max(done, key=lambda s: s["studios"]) if done else {}
    at_1000 = _size(done, 1000, big)
    at_5000 = _size(done, 5000, {})
    lat = results.get("latency") or {}
    restart = big.get("restart") or {}
    stop = big.get("stop") or {}
    fp = big.get("footprint") or {}
    burst = big.get("expiry_burst") or {}
    session = big.get("session_start") or {}
    idle = [s["footprint_idle"]["rss_mb"] for s in done if (s.get("footprint_idle") or {}).get("rss_mb")]
    return {
        "studios": big.get("studios"),
        "start_ratio": (at_1000.get("start") or {}).get("start_ratio"),
        "start_ratio_studios": at_1000.get("studios"),
        "start_ratio_5000": (at_5000.get("start") or {}).get("start_ratio"),
        # until every studio is Running (Service, grant, status written) vs the direct pods Ready:
        # the start ratio counts pods, which a burst creates first
        "running_ratio": (at_1000.get("start") or {}).get("running_ratio"),
        "running_ratio_5000": (at_5000.get("start") or {}).get("running_ratio"),
        "start_overhead_p50_ms": lat.get("overhead_p50_ms"),
        "start_overhead_p99_ms": lat.get("overhead_p99_ms"),
        # a start is a session: a stopped studio started again (its Service and grant exist)
        "writes_per_start": session.get("writes_per_start"),
        # the studio's first start also creates its Service and connect Role
        "writes_per_first_start": (big.get("api_start") or {}).get("writes_per_start"),
        "reads_per_start": (big.get("api_start") or {}).get("reads_per_start"),
        "writes_per_stop": stop.get("writes_per_stop"),
        "writes_per_expiry": burst.get("writes_per_expiry"),
        "expiry_p99_s": burst.get("p99_s"),
        # its floor: as many pods deleted directly at one instant, same run
        "expiry_direct_p99_s": (big.get("expiry_direct") or {}).get("p99_s"),
        "expiry_floor_ratio": burst.get("ratio_p99"),
        "expiry_single_s": (big.get("expiry_single") or {}).get("p50_s"),
        "cpu_ms_per_start": (at_1000.get("api_start") or {}).get("cpu_ms_per_start"),
        "cpu_ms_per_session_start": session.get("cpu_ms_per_start"),
        "cpu_ms_per_expiry": burst.get("cpu_ms_per_expiry"),
        "rss_idle_mb": max(idle) if idle else None,
        "rss_mb_1000": ((at_1000.get("footprint") or {}).get("rss_mb"))
        if at_1000.get("studios") == 1000
        else None,
        "rss_mb": fp.get("rss_mb"),
        "idle_cpu_pct": fp.get("idle_cpu_pct"),
        "restart_s": restart.get("restart_s"),
    }


GOALS: list[tuple[str, str, float, int]] = [
    # key, goal, limit (value <= limit), the N the goal is stated for
    ("start_ratio", "start_ratio <= 1.15 at N = 1,000", 1.15, 1000),
    ("start_ratio_5000", "start_ratio <= 1.15 at N = 5,000", 1.15, 5000),
    ("start_overhead_p50_ms", "start overhead p50 <= 50 ms", 50.0, 0),
    ("writes_per_start", "writes per (session) start <= 4, Event included", 4.0, 0),
    ("writes_per_stop", "writes per stop <= 4", 4.0, 0),
    ("writes_per_expiry", "writes per expiry <= 4", 4.0, 0),
    ("expiry_floor_ratio", "expiry burst (1,000 of 5,000) p99 <= 1.5x the direct-deletion floor", 1.5, 5000),
    ("expiry_single_s", "single expiry <= 0.2 s late", 0.2, 0),
    ("cpu_ms_per_start", "operator CPU <= 12 ms per start at N = 1,000", 12.0, 1000),
    ("rss_idle_mb", "RSS <= 80 MB with no studios", 80.0, 0),
    ("rss_mb_1000", "RSS <= 110 MB at N = 1,000 (half running)", 110.0, 1000),
    ("rss_mb", "RSS <= 150 MB at N = 5,000 (half running)", 150.0, 5000),
    ("idle_cpu_pct", "idle CPU <= 2% of a core", 2.0, 0),
    ("restart_s", "restart until reconciled <= 10 s at N = 5,000", 10.0, 5000),
]


def goals(top: dict[str, Any]) -> list[dict[str, Any]]:
    """`met` is None when not measured, or measured below the N the goal is stated for."""
    out = []
    n = top.get("studios") or 0
    for key, text, limit, at_n in GOALS:
        value = top.get(key)
        met = None if value is None or n < at_n else value <= limit
        out.append(
            {
                "key": key,
                "goal": text,
                "value": value,
                "limit": limit,
                "at_n": at_n,
                "met": met,
                "indicative": value is not None and n < at_n and value <= limit,
            }
        )
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"Run `{results['run_id']}` on {m['date']}: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, "
        f"Python {m['python']}, Kubernetes {m['kubernetes']} (local control plane + kwok), kopf {m['kopf']}, "
        f"commit {m['git_commit'] or '?'}; concurrency {s['concurrency']}, operator --workers {s['operator_workers']}, "
        f"STUDIO_API_WORKERS {s['api_workers']}"
        + (f", operator args {' '.join(s['operator_args'])}" if s["operator_args"] else "")
        + (f", env {s['operator_env']}" if s["operator_env"] else "")
        + f"; {results.get('duration_s', 0):.0f} s in all; load average {m.get('loadavg_start', ['?'])[0]} at the "
        f"start, {m.get('loadavg_end', ['?'])[0]} at the end.",
        "",
        "| N | operator start (s) | direct (s) | ratio | to Running op / direct (s) | writes/start (first) "
        "| CPU ms/start | writes/stop | expiry burst p50 / p99 (s) | direct deletion p99 (s) | single expiry (s) "
        "| RSS idle / N (MB) | idle CPU | restart (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("sizes") or []:
        if "restart" not in r:
            lines.append(f"| {r['studios']} | incomplete: {r.get('error', '?')} |" + " |" * 12)
            continue
        st, a, stop = r["start"], r["api_start"], r.get("stop") or {}
        eb, es, fp, rs = r["expiry_burst"], r["expiry_single"], r["footprint"], r["restart"]
        ss, idle = r.get("session_start") or {}, r.get("footprint_idle") or {}
        lines.append(
            f"| {r['studios']} | {_fmt(st['operator_s'])} | {_fmt(st['direct_s'])} | **{_fmt(st['start_ratio'])}** "
            f"| {_fmt(st['operator_running_s'])} / {_fmt(st['direct_ready_s'])} "
            f"| **{_fmt(ss.get('writes_per_start'))}** ({_fmt(a['writes_per_start'])}) "
            f"| {_fmt(a.get('cpu_ms_per_start'), 1)} | {_fmt(stop.get('writes_per_stop'))} "
            f"| {_fmt(eb['p50_s'])} / **{_fmt(eb['p99_s'])}** ({eb['studios']}) "
            f"| {_fmt((r.get('expiry_direct') or {}).get('p99_s'))} | {_fmt(es['p50_s'])} "
            f"| {_fmt(idle.get('rss_mb'), 1)} / **{_fmt(fp['rss_mb'], 1)}** | {_fmt(fp['idle_cpu_pct'])}% "
            f"| {_fmt(rs['restart_s'])} |"
        )
    lat = results.get("latency")
    if lat:
        lines += [
            "",
            f"Start latency ({lat['samples']} sequential starts): pod exists after p50 {_fmt(lat['operator_p50_ms'], 1)} ms "
            f"(p99 {_fmt(lat['operator_p99_ms'], 1)}) via a Studio vs p50 {_fmt(lat['direct_p50_ms'], 1)} ms "
            f"(p99 {_fmt(lat['direct_p99_ms'], 1)}) for a direct pod create: overhead "
            f"**p50 {_fmt(lat['overhead_p50_ms'], 1)} ms**, p99 {_fmt(lat['overhead_p99_ms'], 1)} ms. To Running/Ready: "
            f"p50 {_fmt(lat['to_running_operator_p50_ms'], 1)} ms vs {_fmt(lat['to_running_direct_p50_ms'], 1)} ms.",
        ]
    for r in [r for r in results.get("sizes") or [] if "restart" in r]:
        a = r["api_start"]
        verbs = ", ".join(f"{k} {v / r['studios']:.2f}" for k, v in sorted(a["operator_by_verb"].items()))
        stop = r.get("stop") or {}
        sverbs = (
            ", ".join(
                f"{k} {v / stop['studios']:.2f}" for k, v in sorted(stop.get("operator_by_verb", {}).items())
            )
            if stop
            else "-"
        )
        eb = r["expiry_burst"]
        lines.append(
            f"\nN={r['studios']}: operator requests per start by verb: {verbs}; per stop: {sverbs}; "
            f"per expiry {_fmt(eb['writes_per_expiry'])} writes (+{_fmt(eb['writes_per_backdate'])} when backdated). "
            f"Direct baseline before / after the operator: {_fmt(r['start'].get('direct_before_s'))} / "
            f"{_fmt(r['start'].get('direct_after_s'))} s (the table shows their mean). "
            f"Cluster-wide writes per start (all components, apiserver_request_total): operator "
            f"{_fmt(a['cluster_writes_per_start'])} vs direct {_fmt(r['api_direct']['cluster_writes_per_start'])}. "
            f"Expiry burst: {eb['prepared_before_deadline']}/{eb['studios']} scheduled before the deadline, "
            f"{eb['missed']} missed; operator acted (Stopping) p99 {_fmt(eb['acted_p99_s'])} s. Restart: live after "
            f"{_fmt(r['restart']['startup_s'])} s, {r['restart']['operator_writes']} writes, "
            f"{r['restart'].get('reconciles', '-')} reconciles for {r['restart']['studios_known']} studios. "
            f"Operator CPU per start {_fmt(a.get('cpu_ms_per_start'), 1)} ms, reconciles per start "
            f"{_fmt(a.get('reconciles_per_start'))} (avg {_fmt(a.get('reconcile_avg_ms'))} ms each); per stop "
            f"{_fmt(stop.get('cpu_ms_per_stop'), 1)} ms, {_fmt(stop.get('reconciles_per_stop'))} reconciles; "
            f"per expiry {_fmt(eb.get('cpu_ms_per_expiry'), 1)} ms, {_fmt(eb.get('reconciles_per_expiry'))} reconciles."
        )
    cpus = m.get("cpu_count")
    for r in [r for r in results.get("sizes") or [] if "restart" in r]:
        eb, ed, st = r["expiry_burst"], r.get("expiry_direct") or {}, r["start"]
        lines.append(
            f"\nN={r['studios']}: where the CPUs went, in cores (averages over each phase; "
            f"`other` is what no process of the benchmark used). Start, operator: "
            f"{describe(st.get('cpu_cores'), cpus)}; start, direct: {describe(st.get('cpu_cores_direct'), cpus)}. "
            f"Expiry burst, deadline to the last Stopped: {describe(eb.get('cpu_cores'), cpus)}; of it the "
            f"release, last pod gone to last Stopped: {describe(eb.get('cpu_cores_release'), cpus)}. "
            f"Direct deletion: {describe(ed.get('cpu_cores'), cpus)}."
        )
    top = results["headline"]
    lines += ["", "| goal | measured | met |", "|---|---:|:---:|"]
    for g in results["goals"]:
        if g["met"] is None and g["value"] is not None:
            met = f"(N={top['studios']}: {'within' if g['indicative'] else '**over**'})"
        else:
            met = "-" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['goal']} | {_fmt(g['value'])} | {met} |")
    if results.get("notes"):
        lines += ["", *[f"- note: {n}" for n in results["notes"]]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r for r in results.get("sizes") or [] if "restart" in r]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(
        f"studio-operator bench {results['machine']['date']} ({results['machine']['cpu_count']} CPUs, "
        f"k8s {results['machine']['kubernetes']})"
    )
    ax = axes[0][0]
    for r in sizes:
        st = r["start"]
        line = ax.plot(
            st["curve_operator_s"],
            _ys(len(st["curve_operator_s"]), r["studios"]),
            label=f"operator N={r['studios']} ({st['operator_s']:.1f}s)",
        )
        ax.plot(
            st["curve_direct_s"],
            _ys(len(st["curve_direct_s"]), r["studios"]),
            linestyle="--",
            color=line[0].get_color(),
            label=f"direct N={r['studios']} ({st['direct_s']:.1f}s)",
        )
    ax.set_title("1. start throughput: session pods existing")
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("fraction of N")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    lat = results.get("latency")
    if lat:
        for key, label in (("operator_ms", "Studio -> pod"), ("direct_ms", "direct pod create")):
            vals = sorted(lat[key])
            ax.plot(
                vals,
                [(i + 1) / len(vals) for i in range(len(vals))],
                label=f"{label} (p50 {pct(vals, 0.5):.0f} ms)",
            )
        ax.legend(fontsize=8)
    ax.set_title("2. start latency (sequential), CDF")
    ax.set_xlabel("ms until the pod exists")

    ax = axes[1][0]
    for r in sizes:
        late = r["expiry_burst"]["lateness_s"]
        if late:
            line = ax.plot(
                late,
                [(i + 1) / len(late) for i in range(len(late))],
                label=f"N={r['studios']}, burst {r['expiry_burst']['studios']} (p99 {r['expiry_burst']['p99_s']}s)",
            )
            floor = (r.get("expiry_direct") or {}).get("gone_s")
            if floor:
                ax.plot(
                    floor,
                    [(i + 1) / len(floor) for i in range(len(floor))],
                    linestyle="--",
                    color=line[0].get_color(),
                    label=f"N={r['studios']}, as many pods deleted directly (p99 {r['expiry_direct']['p99_s']}s)",
                )
    ax.axvline(5, color="grey", linestyle=":", label="goal p99 5 s")
    ax.set_title("4. expiry lateness (deadline -> phase Stopped), CDF")
    ax.set_xlabel("seconds late")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    if sizes:
        xs = [str(r["studios"]) for r in sizes]
        w = [r["api_start"]["writes_per_start"] or 0 for r in sizes]
        rss = [r["footprint"]["rss_mb"] or 0 for r in sizes]
        pos = list(range(len(xs)))
        bars = ax.bar([i - 0.2 for i in pos], w, width=0.35, label="operator writes per start")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(pos, xs)
        ax.set_xlim(-0.8, len(xs) - 0.2)
        ax.set_ylim(0, max([*w, 1]) * 1.35)
        ax.set_xlabel("N studios")
        ax.set_ylabel("writes per start")
        ax2 = ax.twinx()
        bars2 = ax2.bar(
            [i + 0.2 for i in pos], rss, width=0.35, color="tab:orange", label="RSS MB (half running)"
        )
        ax2.bar_label(bars2, fmt="%.0f", fontsize=8)
        ax2.set_ylim(0, max([*rss, 1]) * 1.35)
        ax2.set_ylabel("operator RSS (MB)")
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_title("3/5. API writes per start and memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ys(count: int, n: int) -> list[float]:
    return [(i + 1) / max(count, 1) for i in range(count)]


def write_results(results: dict[str, Any], cfg: Config) -> Path:
    top = headline(results)
    results["headline"] = top
    results["goals"] = goals(top)
    doc = {**top, **{k: v for k, v in results.items() if k not in top}}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    (cfg.out / "latest.md").write_text(markdown(results))
    if cfg.history:
        hist = cfg.out / "history"
        hist.mkdir(exist_ok=True)
        stamp = results["machine"]["date"].replace(":", "").replace("-", "")
        (hist / f"{stamp}-{cfg.label or 'run'}.json").write_text(json.dumps(doc, indent=1) + "\n")
    if cfg.plot:
        try:
            plot(results, cfg.out / "latest.png")
        except ImportError as exc:
            log(f"no plot ({exc}); pip install matplotlib")
    return cfg.out / "latest.json"
