"""The measured scenarios (start throughput and latency, API cost, expiry, footprint, restart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from api import Api
from cpu import CpuSampler
from harness import (
    GLOBAL_READS,
    GLOBAL_WRITES,
    GROUP_VERSION,
    IMAGE,
    LIFESPAN_HOURS,
    MANAGED_BY,
    POOL_LABEL,
    PORT,
    READ_VERBS,
    ROOT,
    RUN_LABEL,
    STUDIO_LABEL,
    WRITE_VERBS,
    BenchError,
    api_path,
    bounded,
    log,
    parse_prometheus,
    pct,
    ratio,
    rnd,
    wait_until,
)
from machine import downsample, machine_info, other_operators, summarize_profile
from operator_process import Operator
from watchers import PodTracker, StudioTracker, Watcher

from studio_operator import kube

# Stopped studios started again to count a session start's writes (their Service and connect
# grant already exist): enough for a per-start figure, few enough to keep a size's run short.
SESSION_START_SAMPLE = 200

# ---------------------------------------------------------------------------------------------
# configuration and the run


@dataclass
class Config:
    sizes: list[int]
    latency_samples: int
    expiry_burst: int | None
    expiry_fraction: float
    concurrency: int
    workers: int
    api_workers: int
    out: Path
    kubeconfig: Path
    idle_seconds: float
    settle_seconds: float
    operator_args: list[str]
    operator_env: dict[str, str]
    profile: bool
    exclusive_wait: float
    bracket: bool
    bracket_max: int
    plot: bool
    label: str
    history: bool
    keep: bool
    connect_grant: bool = True


def bracketed(cfg: Config, n: int) -> bool:
    """Whether size n gets the second direct baseline (after the operator)."""
    return cfg.bracket and n <= cfg.bracket_max


@dataclass
class Snapshot:
    """Counters at one instant: the operator's per-verb APF counts and cluster-wide request totals."""

    t: float
    process: dict[str, float] = field(default_factory=dict)  # the operator's pid, CPU, reconciles
    operator: dict[str, float] = field(default_factory=dict)
    cluster: dict[str, float] = field(default_factory=dict)
    harness: dict[str, float] = field(default_factory=dict)


def delta(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    op = {k: b.operator.get(k, 0) - a.operator.get(k, 0) for k in set(a.operator) | set(b.operator)}
    cl = {k: b.cluster.get(k, 0) - a.cluster.get(k, 0) for k in set(a.cluster) | set(b.cluster)}
    hs = {k: b.harness.get(k, 0) - a.harness.get(k, 0) for k in set(a.harness) | set(b.harness)}
    by_verb = {v: int(op.get(v, 0)) for v in (*WRITE_VERBS, *READ_VERBS, "nonresource") if op.get(v)}
    cluster_by_verb = {v: int(cl.get(v, 0)) for v in (*GLOBAL_WRITES, *GLOBAL_READS) if cl.get(v)}
    cluster_writes_by_resource = {
        k.split(":", 1)[1]: int(v)
        for k, v in sorted(cl.items())
        if ":" in k and v and k.split(":")[0] in GLOBAL_WRITES
    }
    proc: dict[str, Any] = {}
    if b.process:
        same = a.process.get("pid") == b.process.get("pid")
        cpu = b.process["cpu_s"] - (a.process.get("cpu_s", 0) if same else 0)
        rec = b.process.get("reconciles", 0) - (a.process.get("reconciles", 0) if same else 0)
        rec_s = b.process.get("reconcile_s", 0) - (a.process.get("reconcile_s", 0) if same else 0)
        proc = {
            "operator_cpu_s": round(cpu, 2),
            "reconciles": int(rec),
            "reconcile_avg_ms": rnd(rec_s / rec * 1000, 2) if rec else None,
        }
    harness_writes = sum(hs.get(m, 0) for m in ("POST", "PUT", "PATCH", "DELETE"))
    harness_reads = hs.get("GET", 0)
    return {
        "seconds": round(b.t - a.t, 2),
        "operator_writes": int(sum(op.get(v, 0) for v in WRITE_VERBS)),
        "operator_reads": int(sum(op.get(v, 0) for v in (*READ_VERBS, "nonresource"))),
        "operator_by_verb": by_verb,
        "cluster_writes": int(sum(cl.get(v, 0) for v in GLOBAL_WRITES) - harness_writes),
        "cluster_reads": int(sum(cl.get(v, 0) for v in GLOBAL_READS) - harness_reads),
        "cluster_by_verb": cluster_by_verb,
        "cluster_writes_by_resource": cluster_writes_by_resource,
        "harness_requests": {k: int(v) for k, v in hs.items() if v},
        "operator_reviews": int(op.get("review", 0)),
        **proc,
    }


def per_unit(d: dict[str, Any], n: int, what: str) -> dict[str, Any]:
    """Operator CPU and reconciles per start/stop/expiry (from its /proc and its own metrics)."""
    if "operator_cpu_s" not in d or not n:
        return {}
    return {
        f"cpu_ms_per_{what}": rnd(d["operator_cpu_s"] / n * 1000, 1),
        f"reconciles_per_{what}": rnd(d["reconciles"] / n, 2),
    }


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.run_id = datetime.now(UTC).strftime("%m%d%H%M") + secrets.token_hex(2)
        self.prefix = f"sbench-{self.run_id}"
        self.api = Api(cfg.kubeconfig, cfg.api_workers)
        base = (
            ROOT / ".cluster" / "bench"
            if (ROOT / ".cluster").is_dir()
            else Path(tempfile.gettempdir()) / "bench"
        )
        self.workdir = base / self.run_id
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.operator_kubeconfig = self.workdir / "operator.kubeconfig"
        self.system_ns = f"{self.prefix}-system"
        self.node_names: list[str] = []
        self.namespaces: list[str] = []
        self.children: set[int] = set()
        self.profiles: list[Path] = []
        self.watchers: list[Watcher] = []
        self.notes: list[str] = []
        self.server = kube.server()
        self.labels = {RUN_LABEL: self.run_id}
        self.operators: list[Operator] = []
        self.sightings: list[tuple[float, tuple[str, ...]]] = []
        self.active: Operator | None = None  # whose CPU and reconciles snapshots record
        # who used the machine's CPUs in each phase (the control plane's binaries sit beside its
        # kubeconfig, as hack/cluster.py lays them out)
        self.cpu = CpuSampler(
            cfg.kubeconfig.parent / "bin",
            lambda: {op.process.pid for op in self.operators if op.process is not None},
        )

    # ----------------------------------------------------------------- other operators (shared machine)

    async def monitor(self) -> None:
        """Samples the processes of other studio operators: they would reconcile our studios too."""
        while True:
            others = await asyncio.to_thread(other_operators, set(self.children), self.server or None)
            if others:
                self.sightings.append((time.time(), tuple(others)))
            await asyncio.sleep(0.5)

    def interference(self, what: str, t0: float, result: dict[str, Any]) -> None:
        """Marks `result` when another operator ran between t0 and now."""
        t1 = time.time()
        seen = sorted({o for t, os in self.sightings if t0 - 1 <= t <= t1 + 1 for o in os})
        if seen:
            result["interference"] = seen
            self.notes.append(
                f"{what}: another studio operator was running ({', '.join(seen)}); figures suspect"
            )

    async def exclusive(self, what: str) -> None:
        """Waits (up to --exclusive-wait seconds) until no other studio operator runs."""
        if self.cfg.exclusive_wait <= 0:
            return
        deadline = time.monotonic() + self.cfg.exclusive_wait
        others = other_operators(self.children, self.server or None)
        if others:
            log(f"{what}: waiting up to {self.cfg.exclusive_wait:.0f}s for other operators to end: {others}")
        while others and time.monotonic() < deadline:
            await asyncio.sleep(1)
            others = other_operators(self.children, self.server or None)

    # ----------------------------------------------------------------- namespaces of the run

    def ns(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def all_operator_namespaces(self) -> list[str]:
        return [self.ns("lat")] + [self.ns(f"op{n}") for n in self.cfg.sizes]

    # ----------------------------------------------------------------- counters

    async def snapshot(self) -> Snapshot:
        text = await self.api.raw_get("/metrics")
        snap = Snapshot(t=time.time(), harness={k: float(v) for k, v in self.api.sent.items()})
        op = self.active
        if op is not None and op.process is not None and op.process.poll() is None:
            m = await asyncio.to_thread(op.metrics)
            snap.process = {
                "pid": float(op.pid),
                "cpu_s": op.cpu_seconds(),
                "reconciles": m.get("studio_operator_reconcile_duration_seconds_count", 0.0),
                "reconcile_s": m.get("studio_operator_reconcile_duration_seconds_sum", 0.0),
            }
        for name, labels, value in parse_prometheus(
            text, ("apiserver_flowcontrol_dispatched_requests_total{", "apiserver_request_total{")
        ):
            if name == "apiserver_request_total":
                verb = labels.get("verb", "")
                snap.cluster[verb] = snap.cluster.get(verb, 0) + value
                res = labels.get("resource", "") + (
                    "/" + labels["subresource"] if labels.get("subresource") else ""
                )
                key = f"{verb}:{res}"
                snap.cluster[key] = snap.cluster.get(key, 0) + value
            elif labels.get("flow_schema", "").startswith(self.prefix + "-op-"):
                verb = labels["flow_schema"][len(self.prefix) + 4 :]
                snap.operator[verb] = snap.operator.get(verb, 0) + value
        return snap

    async def settle(self, timeout: float = 120.0) -> Snapshot:
        """Until the operator's own request counters stop moving for settle_seconds."""
        quiet_for = self.cfg.settle_seconds
        last = await self.snapshot()
        quiet_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() - quiet_since < quiet_for and time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, quiet_for / 3))
            snap = await self.snapshot()
            if sum(snap.operator.values()) - sum(last.operator.get(k, 0) for k in snap.operator) > 0:
                quiet_since = time.monotonic()
            last = snap
        return last

    # ----------------------------------------------------------------- set-up

    async def setup(self) -> dict[str, Any]:
        version = await self.api.get("/version") or {}
        self.server = kube.server()
        await self.apply_crds()
        await self.create_nodes()
        await self.create_service_cidr()
        await self.create_identity()
        return version

    async def apply_crds(self) -> None:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    name = doc["metadata"]["name"]
                    await self.api.apply(
                        api_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name), doc
                    )
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                for _ in range(100):
                    crd = await self.api.get(
                        api_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, name)
                    )
                    conds = ((crd or {}).get("status") or {}).get("conditions") or []
                    if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                        break
                    await asyncio.sleep(0.1)

    def pool(self, phase: str = "") -> str:
        """The node pool of a phase: the operator's studios (""), the direct baseline before
        ("direct") and after ("direct-after") them. Each has a node of its own, so that no phase
        is charged for another phase's pods: scheduling (and kwok) work per pod grows with the
        pods already on the node."""
        return f"{self.run_id}-{phase}" if phase else self.run_id

    async def create_nodes(self) -> None:
        """Fake nodes (kwok) of our own, one per pool, tainted for this run: the shared kwok-node-0
        (1k pods) stays free."""
        for index, phase in enumerate(("", "direct", "direct-after")):
            await self.create_node(self.pool(phase), f"10.{220 + index}.0.0/16")

    async def create_node(self, pool: str, cidr: str) -> None:
        name = f"sbench-{pool}-node"
        capacity = {"cpu": "10k", "memory": "64Ti", "pods": "30000"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    **self.labels,
                    POOL_LABEL: pool,
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": cidr,
                "podCIDRs": [cidr],
                "taints": [{"key": POOL_LABEL, "value": pool, "effect": "NoSchedule"}],
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        await self.api.create(api_path("v1", "nodes"), node)
        self.node_names.append(name)
        path = api_path("v1", "nodes", None, name)

        async def ready() -> bool:
            body = await self.api.get(path) or {}
            conds = (body.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

        deadline = time.monotonic() + 90
        while not await ready():
            if time.monotonic() > deadline:
                raise BenchError(
                    f"node {name} not Ready after 90s: is kwok running? (hack/cluster.py status)"
                )
            await asyncio.sleep(0.25)

    async def create_service_cidr(self) -> None:
        """A /16 of the run's own, so that N studios never exhaust a shared or small service range
        (the local cluster had a /24 before; clusters made by an older hack/cluster.py still do)."""
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": self.prefix, "labels": self.labels},
            "spec": {"cidrs": ["10.112.0.0/16"]},
        }
        try:
            await self.api.create(api_path("networking.k8s.io/v1", "servicecidrs"), body)
        except kube.ApiError as exc:  # an overlapping range of another run, or no ServiceCIDR API
            self.notes.append(
                f"no extra ServiceCIDR ({exc.status} {exc.message}); large N may exhaust ClusterIPs"
            )

    async def create_identity(self) -> None:
        """The operator runs as a ServiceAccount of its own (read everywhere, write only in the run's
        namespaces), and per-verb FlowSchemas matching it attribute every request it makes."""
        sa = {"kind": "ServiceAccount", "namespace": self.system_ns, "name": "operator"}
        await self.api.create(
            api_path("v1", "namespaces"),
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.system_ns, "labels": self.labels},
            },
        )
        self.namespaces.append(self.system_ns)
        await self.api.create(
            api_path("v1", "serviceaccounts", self.system_ns),
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        )
        rbac = "rbac.authorization.k8s.io/v1"
        await self.api.create(
            api_path(rbac, "clusterroles"),
            {
                "apiVersion": rbac,
                "kind": "ClusterRole",
                "metadata": {"name": f"{self.prefix}-read", "labels": self.labels},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
            },
        )
        await self.api.create(
            api_path(rbac, "clusterrolebindings"),
            {
                "apiVersion": rbac,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{self.prefix}-read", "labels": self.labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{self.prefix}-read",
                },
                "subjects": [sa],
            },
        )
        token = await self.api.create(
            api_path("v1", "serviceaccounts", self.system_ns, "operator", "token"),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        admin = yaml.safe_load(self.cfg.kubeconfig.read_text())
        contexts = {c["name"]: c["context"] for c in admin.get("contexts") or []}
        ctx = contexts.get(admin.get("current-context"), next(iter(contexts.values()), {}))
        clusters = {c["name"]: c["cluster"] for c in admin.get("clusters") or []}
        cluster = clusters.get(ctx.get("cluster"), next(iter(clusters.values())))
        self.operator_kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "bench",
                    "clusters": [{"name": "bench", "cluster": cluster}],
                    "users": [{"name": "operator", "user": {"token": token["status"]["token"]}}],
                    "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "operator"}}],
                }
            )
        )
        self.operator_kubeconfig.chmod(0o600)
        fc = "flowcontrol.apiserver.k8s.io/v1"
        subject = {
            "kind": "ServiceAccount",
            "serviceAccount": {"name": "operator", "namespace": self.system_ns},
        }
        namespaces = self.all_operator_namespaces()
        await self.api.create(
            api_path(fc, "flowschemas"),
            {
                "apiVersion": fc,
                "kind": "FlowSchema",
                "metadata": {"name": f"{self.prefix}-op-review", "labels": self.labels},
                "spec": {  # token/access reviews are POSTs that store nothing: not writes
                    "matchingPrecedence": 400,
                    "priorityLevelConfiguration": {"name": "exempt"},
                    "rules": [
                        {
                            "subjects": [subject],
                            "resourceRules": [
                                {
                                    "verbs": ["create"],
                                    "apiGroups": ["authentication.k8s.io", "authorization.k8s.io"],
                                    "resources": ["*"],
                                    "namespaces": ["*"],
                                    "clusterScope": True,
                                }
                            ],
                        }
                    ],
                },
            },
        )
        for verb in (*WRITE_VERBS, *READ_VERBS):
            await self.api.create(
                api_path(fc, "flowschemas"),
                {
                    "apiVersion": fc,
                    "kind": "FlowSchema",
                    "metadata": {"name": f"{self.prefix}-op-{verb}", "labels": self.labels},
                    "spec": {
                        "matchingPrecedence": 500,
                        "priorityLevelConfiguration": {"name": "exempt"},  # as the admin identity it replaces
                        "rules": [
                            {
                                "subjects": [subject],
                                "resourceRules": [
                                    {
                                        "verbs": [verb],
                                        "apiGroups": ["*"],
                                        "resources": ["*"],
                                        "namespaces": namespaces,
                                        "clusterScope": True,
                                    }
                                ],
                            }
                        ],
                    },
                },
            )
        await self.api.create(
            api_path(fc, "flowschemas"),
            {
                "apiVersion": fc,
                "kind": "FlowSchema",
                "metadata": {"name": f"{self.prefix}-op-nonresource", "labels": self.labels},
                "spec": {
                    "matchingPrecedence": 500,
                    "priorityLevelConfiguration": {"name": "exempt"},
                    "rules": [
                        {
                            "subjects": [subject],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        }
                    ],
                },
            },
        )

    async def make_namespace(self, name: str, *, operator: bool) -> None:
        await self.api.create(
            api_path("v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": self.labels}},
        )
        self.namespaces.append(name)
        if not operator:
            return
        rbac = "rbac.authorization.k8s.io/v1"

        async def bind(binding: str, cluster_role: str, subject: dict[str, str]) -> None:
            await self.api.create(
                api_path(rbac, "rolebindings", name),
                {
                    "apiVersion": rbac,
                    "kind": "RoleBinding",
                    "metadata": {"name": binding},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_role,
                    },
                    "subjects": [subject],
                },
            )

        sa = {"kind": "ServiceAccount", "namespace": self.system_ns, "name": "operator"}
        await bind("studio-bench-operator", "cluster-admin", sa)
        if self.cfg.connect_grant:
            # as in a team's namespace: someone may connect, so each studio has a RoleBinding too
            team = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "studio-bench-team"}
            await bind("studio-bench-team-connect", "studios-connect", team)
        await self.api.create(
            api_path(GROUP_VERSION, "computeenvironments", name),
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ComputeEnvironment",
                "metadata": {"name": "bench"},
                "spec": {
                    "region": "eu-west-1",
                    "env": [{"name": "BENCH", "value": "1"}],
                    "resourceLabels": {"team": "bench"},
                    "nodeSelector": {POOL_LABEL: self.run_id},
                    "tolerations": [
                        {
                            "key": POOL_LABEL,
                            "operator": "Equal",
                            "value": self.run_id,
                            "effect": "NoSchedule",
                        },
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                },
            },
        )

    def studio(self, name: str, state: str = "Running") -> dict[str, Any]:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "Studio",
            "metadata": {"name": name, "labels": self.labels},
            "spec": {
                "computeEnvironment": "bench",
                "template": {"image": IMAGE, "port": PORT},
                "lifespan": {"policy": "StopAfter", "hours": LIFESPAN_HOURS},
                "state": state,
            },
        }

    def watch(
        self, path: str, selector: str | None, on_event: Callable[[str, dict[str, Any], float], None]
    ) -> Watcher:
        w = Watcher(self.cfg.kubeconfig, path, selector, on_event).start()
        self.watchers.append(w)
        if not w.ready.wait(60):
            raise BenchError(f"watch {path} not ready: {w.error}")
        return w

    # ----------------------------------------------------------------- templates for the direct baseline

    async def templates(
        self, ns: str, pods: PodTracker, studio: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pod and service the operator made for `studio`, as plain objects the baseline can create."""
        await wait_until(pods.has("seen", studio), 60, f"the operator's pod for {studio}", 1, pods.signal)
        items = (
            await self.api.call(
                "GET", api_path("v1", "pods", ns), query={"labelSelector": f"{STUDIO_LABEL}={studio}"}
            )
        )["items"]
        pod, svc = items[0], None
        deadline = time.monotonic() + 60
        while svc is None and time.monotonic() < deadline:  # the Service may come after the pod
            svc = await self.api.get(api_path("v1", "services", ns, studio))
            if svc is None:
                await asyncio.sleep(0.1)
        if svc is None:
            raise BenchError(f"the operator made no service for {studio}")

        def plain(obj: dict[str, Any], kind: str) -> dict[str, Any]:
            meta = obj["metadata"]
            labels = {k: v for k, v in (meta.get("labels") or {}).items()}
            labels[MANAGED_BY] = "studio-bench"  # keep other operators' watches away from the baseline
            return {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"labels": labels, "annotations": dict(meta.get("annotations") or {})},
                "spec": dict(obj["spec"]),
            }

        pod_t, svc_t = plain(pod, "Pod"), plain(svc, "Service")
        for k in ("nodeName", "priority", "serviceAccount"):
            pod_t["spec"].pop(k, None)
        for k in ("clusterIP", "clusterIPs"):
            svc_t["spec"].pop(k, None)
        svc_t["spec"]["selector"] = {**svc_t["spec"].get("selector", {}), MANAGED_BY: "studio-bench"}
        return pod_t, svc_t

    def on_pool(self, pod_t: dict[str, Any], phase: str) -> dict[str, Any]:
        """The pod template moved from the operator's node to the pool of a baseline phase."""
        pod = json.loads(json.dumps(pod_t))
        spec = pod["spec"]
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), POOL_LABEL: self.pool(phase)}
        for toleration in spec.get("tolerations") or []:
            if toleration.get("key") == POOL_LABEL:
                toleration["value"] = self.pool(phase)
        return pod

    @staticmethod
    def direct_objects(
        name: str, pod_t: dict[str, Any], svc_t: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        pod = json.loads(json.dumps(pod_t))
        svc = json.loads(json.dumps(svc_t))
        for obj in (pod, svc):
            obj["metadata"]["name"] = name
            obj["metadata"]["labels"][STUDIO_LABEL] = name
        svc["spec"]["selector"][STUDIO_LABEL] = name
        return pod, svc

    # ----------------------------------------------------------------- 2. start latency

    async def latency(self) -> dict[str, Any]:
        n = self.cfg.latency_samples
        await self.exclusive("latency")
        t_phase = time.time()
        ns_op, ns_dir = self.ns("lat"), self.ns("latdir")
        await self.make_namespace(ns_op, operator=True)
        await self.make_namespace(ns_dir, operator=False)
        op = Operator(self, "latency", [ns_op])
        self.operators.append(op)
        self.active = op
        await op.start()
        op_pods, dir_pods, studios = PodTracker(), PodTracker(), StudioTracker()
        watches = [
            self.watch(api_path("v1", "pods", ns_op), STUDIO_LABEL, op_pods.on_event),
            self.watch(api_path("v1", "pods", ns_dir), STUDIO_LABEL, dir_pods.on_event),
            self.watch(api_path(GROUP_VERSION, "studios", ns_op), None, studios.on_event),
        ]
        await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio("warmup"))
        op_pod_t, svc_t = await self.templates(ns_op, op_pods, "warmup")
        pod_t = self.on_pool(op_pod_t, "direct")
        await wait_until(studios.in_phase("warmup", "Running"), 60, "warmup Running", 1, studios.signal)
        op_ms: list[float] = []
        dir_ms: list[float] = []
        op_run_ms: list[float] = []
        dir_run_ms: list[float] = []
        for i in range(n):  # interleaved, so that drift hits both sides alike
            name = f"l-{i:04d}"
            t0 = time.time()
            await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio(name))
            await wait_until(op_pods.has("seen", name), 60, f"pod of {name}", 1, op_pods.signal)
            op_ms.append((op_pods.first("seen", {name})[name] - t0) * 1000)
            await wait_until(studios.in_phase(name, "Running"), 60, f"{name} Running", 1, studios.signal)
            op_run_ms.append((studios.phase_times([name], "Running")[name] - t0) * 1000)

            pod, _ = self.direct_objects(name, pod_t, svc_t)
            t0 = time.time()
            await self.api.create(api_path("v1", "pods", ns_dir), pod)
            await wait_until(dir_pods.has("seen", name), 60, f"direct pod {name}", 1, dir_pods.signal)
            dir_ms.append((dir_pods.first("seen", {name})[name] - t0) * 1000)
            await wait_until(dir_pods.has("ready", name), 60, f"direct {name} Ready", 1, dir_pods.signal)
            dir_run_ms.append((dir_pods.first("ready", {name})[name] - t0) * 1000)
        footprint = await op.footprint(min(self.cfg.idle_seconds, 5))
        op.stop()
        for w in watches:
            w.stop()
            self.watchers.remove(w)
        result: dict[str, Any] = {
            "samples": n,
            "operator_p50_ms": rnd(pct(op_ms, 0.5), 1),
            "operator_p99_ms": rnd(pct(op_ms, 0.99), 1),
            "direct_p50_ms": rnd(pct(dir_ms, 0.5), 1),
            "direct_p99_ms": rnd(pct(dir_ms, 0.99), 1),
            "overhead_p50_ms": rnd((pct(op_ms, 0.5) or 0) - (pct(dir_ms, 0.5) or 0), 1),
            "overhead_p99_ms": rnd((pct(op_ms, 0.99) or 0) - (pct(dir_ms, 0.99) or 0), 1),
            "to_running_operator_p50_ms": rnd(pct(op_run_ms, 0.5), 1),
            "to_running_direct_p50_ms": rnd(pct(dir_run_ms, 0.5), 1),
            "footprint_idle": footprint,
            "operator_ms": [round(x, 1) for x in op_ms],
            "direct_ms": [round(x, 1) for x in dir_ms],
        }
        self.interference("latency", t_phase, result)
        return result

    # ----------------------------------------------------------------- 1, 3, 4, 5, 6 at one size

    async def scenario(self, n: int, out: dict[str, Any]) -> None:
        """Fills `out` phase by phase (a failure leaves what was measured so far)."""
        cfg = self.cfg
        ns_op, ns_dir, ns_dir_b = self.ns(f"op{n}"), self.ns(f"dir{n}"), self.ns(f"dirb{n}")
        await self.make_namespace(ns_op, operator=True)
        await self.make_namespace(ns_dir, operator=False)
        op = Operator(self, f"n{n}", [ns_op])
        self.operators.append(op)
        self.active = op
        await op.start()
        # 0. footprint with no studios at all (imports, kopf, the empty store)
        out["footprint_idle"] = await op.footprint(min(cfg.idle_seconds, 5.0))
        op_pods, dir_pods, studios = PodTracker(), PodTracker(), StudioTracker()
        watches = [
            self.watch(api_path("v1", "pods", ns_op), STUDIO_LABEL, op_pods.on_event),
            self.watch(api_path("v1", "pods", ns_dir), STUDIO_LABEL, dir_pods.on_event),
            self.watch(api_path(GROUP_VERSION, "studios", ns_op), None, studios.on_event),
        ]
        wait_s = 300 + n * 1.0
        small = n <= 200  # re-check on every watch event; else poll (the checks are O(N))
        poll = 1.0 if small else 0.2
        await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio("warmup"))
        op_pod_t, svc_t = await self.templates(ns_op, op_pods, "warmup")
        pod_t = self.on_pool(op_pod_t, "direct")
        await wait_until(studios.in_phase("warmup", "Running"), 60, "warmup Running", 1, studios.signal)
        names = [f"s-{i:05d}" for i in range(n)]
        name_set = set(names)
        out["studios"] = n

        # 1. start throughput: the direct baseline before and after the operator (drift in the
        # machine's load between the phases then shows as a spread, and the mean cancels most of it)
        log(f"N={n}: direct baseline ({n} services + pods, concurrency {cfg.concurrency})")
        await self.exclusive(f"N={n} start")
        t_phase = time.time()
        base_a = await self.direct_phase(ns_dir, dir_pods, names, pod_t, svc_t, wait_s, poll, small)
        d_direct = base_a["api"]

        # ... then the operator: N studios at once until every session pod exists
        log(f"N={n}: operator start ({n} studios at once)")
        await self.settle()
        before = await self.snapshot()

        async def create(name: str) -> None:
            await self.api.create(api_path(GROUP_VERSION, "studios", ns_op), self.studio(name))

        t0 = time.time()
        await bounded(cfg.concurrency, names, create)
        t_sent = time.time()
        await wait_until(
            lambda: len(op_pods.first("seen", name_set)) >= n,
            wait_s,
            "session pods",
            poll,
            op_pods.signal if small else None,
        )
        seen = op_pods.first("seen", name_set)
        op_s = max(max(seen.values()), t_sent) - t0
        op_curve = sorted(t - t0 for t in seen.values())
        await wait_until(
            lambda: len(studios.phase_times(names, "Running")) >= n,
            wait_s,
            "studios Running",
            poll,
            studios.signal if small else None,
        )
        op_running_s = max(studios.phase_times(names, "Running").values()) - t0
        after = await self.settle()
        d_start = delta(before, after)
        base_b: dict[str, Any] | None = None
        if bracketed(cfg, n):
            log(f"N={n}: direct baseline again, after the operator")
            await self.make_namespace(ns_dir_b, operator=False)
            dir_b_pods = PodTracker()
            watches.append(self.watch(api_path("v1", "pods", ns_dir_b), STUDIO_LABEL, dir_b_pods.on_event))
            pod_b = self.on_pool(op_pod_t, "direct-after")
            base_b = await self.direct_phase(ns_dir_b, dir_b_pods, names, pod_b, svc_t, wait_s, poll, small)
        bases = [b for b in (base_a, base_b) if b is not None]
        direct_s = sum(b["seconds"] for b in bases) / len(bases)
        direct_ready_s = sum(b["ready_s"] for b in bases) / len(bases)
        direct_sent_s = sum(b["sent_s"] for b in bases) / len(bases)
        direct_curve = base_a["curve"]
        out["start"] = {
            "operator_s": rnd(op_s),
            "direct_s": rnd(direct_s),
            "start_ratio": rnd(ratio(op_s, direct_s)),
            "operator_per_s": rnd(n / op_s, 1),
            "direct_per_s": rnd(n / direct_s, 1),
            "create_requests_s": rnd(t_sent - t0),
            "direct_requests_s": rnd(direct_sent_s),
            "direct_before_s": rnd(base_a["seconds"]),
            "direct_after_s": rnd(base_b["seconds"]) if base_b else None,
            "operator_running_s": rnd(op_running_s),
            "direct_ready_s": rnd(direct_ready_s),
            "running_ratio": rnd(ratio(op_running_s, direct_ready_s)),
            "curve_operator_s": downsample(op_curve),
            "curve_direct_s": downsample(direct_curve),
            "cpu_cores": self.cpu.window(t0, t0 + op_s),
            "cpu_cores_direct": base_a["cpu_cores"],
        }
        out["api_start"] = {
            **d_start,
            "writes_per_start": rnd(d_start["operator_writes"] / n, 2),
            "reads_per_start": rnd(d_start["operator_reads"] / n, 2),
            "cluster_writes_per_start": rnd(d_start["cluster_writes"] / n, 2),
            **per_unit(d_start, n, "start"),
        }
        out["api_direct"] = {**d_direct, "cluster_writes_per_start": rnd(d_direct["cluster_writes"] / n, 2)}
        log(
            f"N={n}: operator {op_s:.2f}s vs direct {direct_s:.2f}s (ratio {op_s / direct_s:.2f}); "
            f"writes/start {d_start['operator_writes'] / n:.2f}"
        )

        # 5a. footprint at rest with every studio running
        self.interference(f"N={n} start", t_phase, out["start"])
        t_phase = time.time()
        out["footprint_all_running"] = await op.footprint(cfg.idle_seconds)
        self.interference(f"N={n} footprint (all running)", t_phase, out["footprint_all_running"])

        # 4. expiry: one studio, then a burst
        running = list(names)
        single = running.pop()
        out["expiry_single"] = await self.expire(ns_op, studios, op_pods, [single], lead=5.0, poll=1.0)
        burst_n = cfg.expiry_burst if cfg.expiry_burst is not None else max(1, int(n * cfg.expiry_fraction))
        burst_n = max(1, min(burst_n, len(running) - 1))
        burst, running = running[:burst_n], running[burst_n:]
        log(f"N={n}: expiry burst of {burst_n}")
        out["expiry_burst"] = await self.expire(
            ns_op, studios, op_pods, burst, lead=10.0 + burst_n * 0.05, poll=poll
        )
        # ... and its floor on this control plane: the same number of the direct baseline's pods
        # deleted at one instant by the harness (what any controller's expiry must at least do)
        out["expiry_direct"] = await self.delete_at_once(ns_dir, dir_pods, burst)
        eb, ed = out["expiry_burst"], out["expiry_direct"]
        eb["direct_p99_s"] = ed["p99_s"]
        eb["ratio_p99"] = rnd(ratio(eb["p99_s"], ed["p99_s"]))
        log(f"N={n}: expiry burst p99 {eb['p99_s']}s; direct deletion of as many pods p99 {ed['p99_s']}s")

        # stop (user request) until half of the studios run
        # (at least one: the session starts below are measured on stopped studios)
        stop_n = max(1, len(running) - n // 2) if len(running) > 1 else 0
        to_stop, running = running[:stop_n], running[stop_n:]
        if to_stop:
            log(f"N={n}: stopping {stop_n} studios")
            await self.exclusive(f"N={n} stop")
            t_phase = time.time()
            await self.settle()
            before = await self.snapshot()
            t0 = time.time()

            await bounded(cfg.concurrency, to_stop, lambda name: self.set_state(ns_op, name, "Stopped"))
            await wait_until(
                lambda: len(studios.phase_times(to_stop, "Stopped", t0)) >= stop_n,
                wait_s,
                "stopped",
                poll,
                studios.signal if small else None,
            )
            stop_s = max(studios.phase_times(to_stop, "Stopped", t0).values()) - t0
            after = await self.settle()
            d_stop = delta(before, after)
            out["stop"] = {
                **d_stop,
                "studios": stop_n,
                "seconds_to_stopped": rnd(stop_s),
                "writes_per_stop": rnd(d_stop["operator_writes"] / stop_n, 2),
                "reads_per_stop": rnd(d_stop["operator_reads"] / stop_n, 2),
                **per_unit(d_stop, stop_n, "stop"),
            }
            self.interference(f"N={n} stop", t_phase, out["stop"])
            # 3b. session starts: stopped studios started again (their Service and grant exist)
            sample = to_stop[: max(1, min(stop_n, SESSION_START_SAMPLE))]
            out["session_start"] = await self.session_starts(ns_op, studios, op_pods, sample, wait_s, poll)

        # 5b. footprint at rest with half of the studios running
        t_phase = time.time()
        await self.settle()
        everyone = [*names, "warmup"]
        out["footprint"] = {
            **await op.footprint(cfg.idle_seconds),
            "running": studios.count(everyone, lambda b: (b.get("status") or {}).get("phase") == "Running"),
            "studios": len(everyone),
        }
        self.interference(f"N={n} footprint", t_phase, out["footprint"])
        op.stop_profiler()

        # 6. restart with the studios present
        await self.exclusive(f"N={n} restart")
        t_phase = time.time()
        out["restart"] = await self.restart(op, studios, op_pods, ns_op, to_stop, wait_s)
        self.interference(f"N={n} restart", t_phase, out["restart"])
        out["restart"]["writes_beyond_probe"] = rnd(
            out["restart"]["operator_writes"] - (out["api_start"]["writes_per_start"] or 0), 2
        )

        op.stop()
        for w in watches:
            w.stop()
            self.watchers.remove(w)
        if not cfg.keep:
            gone = [ns_op, ns_dir, *([ns_dir_b] if bracketed(cfg, n) else [])]
            out["cleanup_s"] = await self.delete_namespaces(gone, timeout=120 + n * 0.3)

    async def set_state(self, ns: str, name: str, state: str) -> None:
        await self.api.merge_patch(api_path(GROUP_VERSION, "studios", ns, name), {"spec": {"state": state}})

    async def session_starts(
        self,
        ns: str,
        studios: StudioTracker,
        pods: PodTracker,
        names: list[str],
        wait_s: float,
        poll: float,
    ) -> dict[str, Any]:
        """Start stopped studios again until Running, count the operator's writes (the contract's
        start: the session is the pod), then stop them again so the footprint phase finds the
        same studios running as before."""
        await self.exclusive(f"session start of {len(names)}")
        t_phase = time.time()
        await self.settle()
        before = await self.snapshot()
        t0 = time.time()

        await bounded(self.cfg.concurrency, names, lambda name: self.set_state(ns, name, "Running"))
        signal = studios.signal if len(names) <= 200 else None
        await wait_until(
            lambda: len(studios.phase_times(names, "Running", t0)) >= len(names),
            wait_s,
            "restarted studios Running",
            poll,
            signal,
        )
        running_s = max(studios.phase_times(names, "Running", t0).values()) - t0
        d = delta(before, await self.settle())
        result = {
            **d,
            "studios": len(names),
            "seconds_to_running": rnd(running_s),
            "writes_per_start": rnd(d["operator_writes"] / len(names), 2),
            "reads_per_start": rnd(d["operator_reads"] / len(names), 2),
            **per_unit(d, len(names), "start"),
        }
        self.interference(f"{ns}: session start of {len(names)}", t_phase, result)
        t1 = time.time()
        await bounded(self.cfg.concurrency, names, lambda name: self.set_state(ns, name, "Stopped"))
        await wait_until(
            lambda: len(studios.phase_times(names, "Stopped", t1)) >= len(names),
            wait_s,
            "restarted studios Stopped again",
            poll,
            signal,
        )
        return result

    async def direct_phase(
        self,
        ns: str,
        pods: PodTracker,
        names: list[str],
        pod_t: dict[str, Any],
        svc_t: dict[str, Any],
        wait_s: float,
        poll: float,
        small: bool,
    ) -> dict[str, Any]:
        """The baseline: the operator's Service and Pod for each name, created directly with the
        harness's client and concurrency, until every pod exists (and then until all are Ready)."""
        n, name_set = len(names), set(names)
        await self.settle()
        before = await self.snapshot()

        async def direct(name: str) -> None:
            pod, svc = self.direct_objects(name, pod_t, svc_t)
            # exist_ok: a retried POST whose first answer was lost (a read time-out under load)
            # finds its own object; the operator's create-or-adopt does the same.
            await self.api.create(api_path("v1", "services", ns), svc, exist_ok=True)
            await self.api.create(api_path("v1", "pods", ns), pod, exist_ok=True)

        t0 = time.time()
        await bounded(self.cfg.concurrency, names, direct)
        t_sent = time.time()
        signal = pods.signal if small else None
        await wait_until(lambda: len(pods.first("seen", name_set)) >= n, wait_s, "direct pods", poll, signal)
        seen = pods.first("seen", name_set)
        await wait_until(
            lambda: len(pods.first("ready", name_set)) >= n, wait_s, "direct pods Ready", poll, signal
        )
        ready_s = max(pods.first("ready", name_set).values()) - t0
        seconds = max(max(seen.values()), t_sent) - t0
        return {
            "seconds": seconds,
            "sent_s": t_sent - t0,
            "cpu_cores": self.cpu.window(t0, t0 + seconds),
            "ready_s": ready_s,
            "curve": sorted(t - t0 for t in seen.values()),
            "api": delta(before, await self.snapshot()),
        }

    async def delete_at_once(self, ns: str, pods: PodTracker, names: list[str]) -> dict[str, Any]:
        """The expiry baseline: DELETE the direct pods of `names` at one instant (the harness's client
        and concurrency) and time until each is gone (its DELETED event), as the operator's expiry
        is timed until phase Stopped, which it sets once the pod is gone."""
        await self.exclusive(f"direct deletion of {len(names)}")
        t_phase = time.time()
        await self.settle()
        before = await self.snapshot()
        name_set = set(names)

        async def delete(name: str) -> None:
            await self.api.delete(api_path("v1", "pods", ns, name))

        t0 = time.time()
        await bounded(self.cfg.concurrency, names, delete)
        sent_s = time.time() - t0
        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: len(pods.first("deleted", name_set, t0)) >= len(names),
                120 + len(names) * 0.5,
                "direct pods deleted",
                0.2,
                pods.signal if len(names) <= 200 else None,
            )
        gone = [t - t0 for t in pods.first("deleted", name_set, t0).values()]
        deleting = [t - t0 for t in pods.first("terminating", name_set, t0).values()]
        result = {
            "pods": len(names),
            "deleted": len(gone),
            "requests_s": rnd(sent_s),
            "deleting_p99_s": rnd(pct(deleting, 0.99)),
            "p50_s": rnd(pct(gone, 0.5)),
            "p99_s": rnd(pct(gone, 0.99)),
            "max_s": rnd(max(gone) if gone else None),
            "gone_s": [round(x, 3) for x in sorted(gone)] if len(gone) <= 2000 else downsample(sorted(gone)),
            "cpu_cores": self.cpu.window(t0, t0 + max(gone, default=0.0)),
            "api": delta(before, await self.settle()),
        }
        self.interference(f"{ns}: direct deletion of {len(names)}", t_phase, result)
        return result

    async def expire(
        self, ns: str, studios: StudioTracker, pods: PodTracker, names: list[str], lead: float, poll: float
    ) -> dict[str, Any]:
        """Backdate status.session.startedAt so that every studio in `names` expires at one instant D."""
        await self.exclusive(f"expiry of {len(names)}")
        t_phase = time.time()
        await self.settle()
        before = await self.snapshot()
        deadline = math.ceil(time.time() + lead)
        started = datetime.fromtimestamp(deadline - LIFESPAN_HOURS * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        expires = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        async def backdate(name: str) -> None:
            await self.api.merge_patch(
                api_path(GROUP_VERSION, "studios", ns, name, "status"),
                {"status": {"session": {"startedAt": started}}},
            )

        t_patch = time.time()
        await bounded(self.cfg.concurrency, names, backdate)
        patched_s = time.time() - t_patch

        def scheduled(body: dict[str, Any]) -> bool:
            return ((body.get("status") or {}).get("session") or {}).get("expiresAt") == expires

        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: studios.count(names, scheduled) >= len(names),
                max(0.0, deadline - time.time()),
                "expiry scheduled",
                poll,
                studios.signal if len(names) <= 200 else None,
            )
        prepared = studios.count(names, scheduled)
        # The backdating's own writes (status, the warning window's Events, posted a little
        # later) are not the expiry's: count them apart, as far as the deadline lets.
        mid = await self.settle(timeout=max(0.0, deadline - time.time() - 1.0))
        timeout = 120 + len(names) * 0.5
        with contextlib.suppress(BenchError):
            await wait_until(
                lambda: len(studios.phase_times(names, "Stopped", deadline - 1)) >= len(names),
                max(1.0, deadline + timeout - time.time()),
                "expired studios Stopped",
                poll,
                studios.signal if len(names) <= 200 else None,
            )
        stopped = studios.phase_times(names, "Stopped", t_patch)
        stopping = studios.phase_times(names, "Stopping", t_patch)
        late = [stopped[n] - deadline for n in names if n in stopped]
        acted = [
            min(stopping.get(n, math.inf), stopped.get(n, math.inf)) - deadline
            for n in names
            if n in stopping or n in stopped
        ]
        early = sum(1 for x in acted if x < -0.5)
        # when each pod was gone (the deletion's part of the lateness; the rest is the status write)
        gone = [t - deadline for t in pods.first("deleted", set(names), deadline - 1).values()]
        deleting = [t - deadline for t in pods.first("terminating", set(names), deadline - 1).values()]
        after = await self.settle()
        d_prep, d_exp = delta(before, mid), delta(mid, after)
        result = {
            "studios": len(names),
            "deadline": deadline,
            "lead_s": round(deadline - t_patch, 1),
            "backdate_requests_s": rnd(patched_s),
            "prepared_before_deadline": prepared,
            "stopped": len(late),
            "missed": len(names) - len(late),
            "early": early,
            "p50_s": rnd(pct(late, 0.5)),
            "p99_s": rnd(pct(late, 0.99)),
            "max_s": rnd(max(late) if late else None),
            "pods_deleting_p99_s": rnd(pct(deleting, 0.99)),
            "pods_gone_p50_s": rnd(pct(gone, 0.5)),
            "pods_gone_p99_s": rnd(pct(gone, 0.99)),
            "acted_p50_s": rnd(pct(acted, 0.5)),
            "acted_p99_s": rnd(pct(acted, 0.99)),
            "lateness_s": [round(x, 3) for x in sorted(late)]
            if len(late) <= 2000
            else downsample(sorted(late)),
            # the machine from the deadline to the last Stopped, and in the release (the last
            # pod gone -> the last Stopped: the status writes and Events after the deletions)
            "cpu_cores": self.cpu.window(deadline, deadline + max(late, default=0.0)),
            "cpu_cores_release": self.cpu.window(
                deadline + max(gone, default=0.0), deadline + max(late, default=0.0)
            ),
            "writes_per_backdate": rnd(d_prep["operator_writes"] / len(names), 2),
            "writes_per_expiry": rnd(d_exp["operator_writes"] / len(names), 2),
            **per_unit(d_exp, len(names), "expiry"),
            "api_expiry": d_exp,
        }
        self.interference(f"{ns}: expiry of {len(names)}", t_phase, result)
        return result

    async def restart(
        self,
        op: Operator,
        studios: StudioTracker,
        pods: PodTracker,
        ns: str,
        stopped: list[str],
        wait_s: float,
    ) -> dict[str, Any]:
        """Stop the operator, start it again with every studio present, and time until a change made
        after its start-up is acted on (the change's key is queued behind all the studios)."""
        exit_s = op.stop()
        await self.settle()
        before = await self.snapshot()
        t0 = op.spawn()
        t_live = await op.wait_ready(wait_s)
        probe = stopped[0] if stopped else "restart-probe"
        t_change = time.time()
        if stopped:
            await self.set_state(ns, probe, "Running")
        else:
            await self.api.create(api_path(GROUP_VERSION, "studios", ns), self.studio(probe))
        reconciles_needed = len(studios.latest)
        drained_at: float | None = None
        while True:
            m = op.metrics()
            if (
                drained_at is None
                and m.get("studio_operator_reconcile_duration_seconds_count", 0) >= reconciles_needed
            ):
                drained_at = time.time()
            if pods.first("seen", {probe}, t_change):
                break
            if time.time() - t0 > wait_s:
                raise BenchError(f"the restarted operator did not act on {probe} within {wait_s:.0f}s")
            await asyncio.sleep(0.05)
        t_probe = pods.first("seen", {probe}, t_change)[probe]
        await wait_until(studios.in_phase(probe, "Running"), wait_s, f"{probe} Running", 1, studios.signal)
        after = await self.settle()
        d = delta(before, after)
        m = op.metrics()
        return {
            "exit_s": rnd(exit_s),
            "startup_s": rnd(t_live - t0),
            "restart_s": rnd(t_probe - t0),
            "probe_after_live_s": rnd(t_probe - t_change),
            "queue_drained_s": rnd(drained_at - t0) if drained_at else None,
            "reconciles": m.get("studio_operator_reconcile_duration_seconds_count"),
            "studios_known": reconciles_needed,
            **d,
        }

    async def delete_namespaces(self, names: list[str], timeout: float) -> float | None:
        t0 = time.monotonic()
        for name in names:
            await self.api.delete(api_path("v1", "namespaces", None, name))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [n for n in names if await self.api.get(api_path("v1", "namespaces", None, n)) is not None]
            if not left:
                for n in names:
                    with contextlib.suppress(ValueError):
                        self.namespaces.remove(n)
                return round(time.monotonic() - t0, 1)
            await asyncio.sleep(1)
        self.notes.append(f"namespaces {names} still terminating after {timeout:.0f}s")
        return None

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.time()
        others = other_operators(self.children, self.server or None)
        if others:
            msg = (
                "other studio operators are running on this machine; if they watch every namespace they "
                f"also reconcile the benchmark's studios and skew its figures: {others}"
            )
            log("WARNING: " + msg)
            self.notes.append(msg)
        monitor = asyncio.create_task(self.monitor(), name="monitor")
        self.cpu.start()
        version = await self.setup()
        results: dict[str, Any] = {
            "run_id": self.run_id,
            "machine": machine_info(version),
            "settings": {
                "sizes": cfg.sizes,
                "concurrency": cfg.concurrency,
                "operator_workers": cfg.workers,
                "api_workers": cfg.api_workers,
                "latency_samples": cfg.latency_samples,
                "expiry_burst": cfg.expiry_burst,
                "expiry_fraction": cfg.expiry_fraction,
                "idle_seconds": cfg.idle_seconds,
                "operator_args": cfg.operator_args,
                "operator_env": cfg.operator_env,
                "profile": cfg.profile,
                "exclusive_wait": cfg.exclusive_wait,
                "bracket": cfg.bracket,
                "bracket_max": cfg.bracket_max,
                "connect_grant": cfg.connect_grant,
                "label": cfg.label,
            },
        }
        if cfg.latency_samples > 0:
            log(f"latency: {cfg.latency_samples} sequential starts, operator vs direct")
            results["latency"] = await self.latency()
            lat = results["latency"]
            log(f"latency: operator p50 {lat['operator_p50_ms']} ms, direct p50 {lat['direct_p50_ms']} ms")
            if not cfg.keep:
                await self.delete_namespaces([self.ns("lat"), self.ns("latdir")], timeout=120)
        results["sizes"] = []
        for n in cfg.sizes:
            log(f"N={n}: start")
            out: dict[str, Any] = {"studios": n}
            results["sizes"].append(out)
            try:
                await self.scenario(n, out)
            except (BenchError, kube.ApiError) as exc:
                out["error"] = str(exc)
                self.notes.append(f"N={n} incomplete: {exc}")
                log(f"N={n}: FAILED ({exc}); writing what was measured")
                break
            self.check_server()
        results["duration_s"] = round(time.time() - started, 1)
        self.cpu.stop()
        results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        monitor.cancel()
        late_others = other_operators(self.children, self.server or None)
        if late_others and not others:
            self.notes.append(f"other studio operators started during the run: {late_others}")
        results["notes"] = self.notes
        results["profiles"] = [summarize_profile(p) for p in self.profiles]
        return results

    def check_server(self) -> None:
        try:
            admin = yaml.safe_load(self.cfg.kubeconfig.read_text())
            servers = [c["cluster"]["server"] for c in admin.get("clusters") or []]
        except (OSError, yaml.YAMLError, KeyError):
            return
        if self.server and servers and self.server not in servers:
            raise BenchError(
                f"the control plane was restarted during the run ({self.server} -> {servers[0]})"
            )

    # ----------------------------------------------------------------- clean-up

    async def cleanup(self) -> None:
        for op in self.operators:
            op.stop(10)
        for w in list(self.watchers):
            w.stop()
        if self.cfg.keep:
            log(f"--keep: leaving run {self.run_id} in place (make bench-clean removes it)")
            return
        await cleanup_runs(self.api, self.run_id)


async def cleanup_runs(api: Api, run_id: str | None) -> None:
    """Delete what benchmark runs left (one run, or every run when run_id is None)."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    rbac, fc, net = "rbac.authorization.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1"
    lists = [("v1", "namespaces"), (fc, "flowschemas"), (rbac, "clusterrolebindings"), (rbac, "clusterroles")]
    await _delete_labelled(api, lists, selector)
    # nodes and the service range last: pods and services go with their namespaces first
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        left = (await api.call("GET", api_path("v1", "namespaces"), query={"labelSelector": selector}))[
            "items"
        ]
        if not left:
            break
        await asyncio.sleep(2)
    else:
        log("cleanup: namespaces still terminating after 300s; deleting the nodes anyway")
    await _delete_labelled(api, [("v1", "nodes"), (net, "servicecidrs")], selector)


async def _delete_labelled(api: Api, kinds: list[tuple[str, str]], selector: str) -> None:
    """Delete every object of these (api version, plural) pairs that the selector matches."""
    for api_version, plural in kinds:
        try:
            listed = await api.call("GET", api_path(api_version, plural), query={"labelSelector": selector})
        except kube.ApiError as exc:
            log(f"cleanup: cannot list {plural}: {exc}")
            continue
        for item in listed["items"]:
            await api.delete(api_path(api_version, plural, None, item["metadata"]["name"]))
