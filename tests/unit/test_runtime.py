"""The controller runtime (controller/): store, coalescing work queue, one deadline scheduler, and
the studio controller's table of watched kinds that drives it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from studio_operator import kube
from studio_operator.controller import LATER, Key, Later, Runtime, Scheduler, Store, WorkQueue, run_workers
from studio_operator.controller.kinds import store_policy
from studio_operator.studio.watched import GRANTS, PRIMARY, WATCHED, volumes_of


def studio_store() -> Store:
    """A store with the studio controller's policy (what it keeps of each watched kind)."""
    return Store(store_policy(WATCHED))


def wired() -> tuple[Store, WorkQueue, Runtime]:
    """A runtime as the start-up handler wires it."""
    runtime = Runtime(WATCHED, PRIMARY)
    return runtime.store, runtime.queue, runtime


def run(coro_fn: Callable[[], Awaitable[None]], timeout: float = 10) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro_fn(), timeout)

    asyncio.run(main())


def body(name: str, rv: str, uid: str = "u1", ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "uid": uid}}


# ---------------------------------------------------------------- Store


def test_store_keeps_the_newest_version() -> None:
    store = Store()
    assert store.put("pods", body("p", "5"))
    assert not store.put("pods", body("p", "4"))  # a late, older event
    assert store.get("pods", ("ns", "p"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    assert store.put("pods", body("p", "6"))
    assert store.put("pods", body("p", "2", uid="u2"))  # a new namesake replaces the old object


def test_store_remove_respects_uid() -> None:
    store = Store()
    store.put("pods", body("p", "5", uid="new"))
    store.remove("pods", ("ns", "p"), uid="old")  # deletion of the previous namesake
    assert store.get("pods", ("ns", "p")) is not None
    store.remove("pods", ("ns", "p"), uid="new")
    assert store.get("pods", ("ns", "p")) is None
    store.remove("pods", ("ns", "p"))  # absent: no error


def test_a_deleted_object_never_comes_back() -> None:
    """The answer to a write (a pod's DELETE) can arrive after the object's DELETED event: storing
    it must not bring the object back, or its studio waits for a deletion that already happened."""
    store = Store()
    store.put("pods", body("p", "5", uid="u"))
    store.remove("pods", ("ns", "p"), uid="u")  # the DELETED event
    assert not store.put("pods", body("p", "6", uid="u"))  # the DELETE's late answer
    assert store.get("pods", ("ns", "p")) is None
    assert store.put("pods", body("p", "7", uid="v"))  # a new namesake is a new object


def test_store_per_namespace_index() -> None:
    store = Store()
    store.put("studios", body("b", "1", ns="x"))
    store.put("studios", body("a", "1", ns="x"))
    store.put("studios", body("c", "1", ns="y"))
    assert store.names("studios", "x") == ["a", "b"]
    assert [k for k, _ in store.items("studios", "y")] == [("y", "c")]
    assert len(list(store.items("studios"))) == 3
    assert store.count("studios") == 3
    store.remove("studios", ("x", "a"))
    assert store.names("studios", "x") == ["b"]
    assert store.names("studios", "none") == []


# ---------------------------------------------------------------- WorkQueue


def test_queue_coalesces_pending_keys() -> None:
    async def main() -> None:
        q = WorkQueue()
        for _ in range(5):
            q.add(("ns", "a"))
        q.add(("ns", "b"))
        q.add(("ns", "a"))
        assert len(q) == 2
        assert await q.get() == ("ns", "a")
        assert await q.get() == ("ns", "b")
        q.done(("ns", "a"))
        q.done(("ns", "b"))
        assert len(q) == 0

    run(main)


def test_queue_key_added_while_active_runs_again_after_done_not_concurrently() -> None:
    async def main() -> None:
        q = WorkQueue()
        key = ("ns", "a")
        q.add(key)
        assert await q.get() == key
        q.add(key)  # changed while being processed
        q.add(key)
        with contextlib.suppress(TimeoutError):
            # not handed out while active
            await asyncio.wait_for(q.get(), 0.05)
            raise AssertionError("an active key was handed out twice")
        q.done(key)
        assert await asyncio.wait_for(q.get(), 1) == key  # exactly once more
        q.done(key)
        assert len(q) == 0

    run(main)


def test_queue_serves_put_off_keys_only_when_nothing_else_waits() -> None:
    async def main() -> None:
        q = WorkQueue()
        a, b, c = ("ns", "a"), ("ns", "b"), ("ns", "c")
        q.add(a)
        assert await q.get() == a
        q.done(a, later=True)  # its reconcile put it off
        assert q.put_off() == 1 and q.waiting() == 0
        q.add(b)
        q.add(c)
        assert await q_get(q) == b  # the first lane first, in order
        q.add(a, promote=False)  # its pod's event: stays put off
        assert await q_get(q) == c
        assert await q_get(q) == a  # served once the first lane is empty
        assert len(q) == 0

    run(main)


def test_queue_holds_put_off_keys_while_first_lane_keys_are_in_progress() -> None:
    async def main() -> None:
        q = WorkQueue()
        a, b = ("ns", "a"), ("ns", "b")
        q.add(a)
        q.add(b)
        assert await q.get() == a and await q.get() == b
        q.done(a, later=True)  # b still creating its pod: a waits
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(q.get(), 0.05)
            raise AssertionError("a put-off key was served while the first lane was busy")
        q.done(b)
        assert await q_get(q) == a
        assert len(q) == 0

    run(main)


def test_queue_promotes_a_put_off_key_when_the_studio_itself_changes() -> None:
    async def main() -> None:
        q = WorkQueue()
        a, b = ("ns", "a"), ("ns", "b")
        q.add(a)
        q.done(await q.get(), later=True)
        q.add(b)
        q.add(a)  # the studio changed (or its deadline fell due): first lane, behind b
        assert q.put_off() == 0 and q.waiting() == 2
        assert [await q_get(q), await q_get(q)] == [b, a]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(q.get(), 0.05)
            raise AssertionError("a key was handed out twice")

    run(main)


def test_queue_put_off_while_changed() -> None:
    """A key put off while its pod changed goes to the second lane; while the studio itself
    changed, to the first (the change may be a stop)."""

    async def main() -> None:
        q = WorkQueue()
        a, b = ("ns", "a"), ("ns", "b")
        q.add(a)
        assert await q.get() == a
        q.add(a, promote=False)
        q.done(a, later=True)
        assert q.put_off() == 1
        q.add(b)
        assert await q.get() == b
        q.add(b)
        q.done(b, later=True)
        assert q.waiting() == 1 and await q_get(q) == b
        assert await q_get(q) == a
        assert len(q) == 0

    run(main)


def test_workers_put_off_what_the_reconcile_returns_later_for() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        order: list[str] = []

        async def reconcile(key: Key) -> float | Later | None:
            first = key[1] not in order
            order.append(key[1])
            await asyncio.sleep(0.001)
            return LATER if first and key[1].startswith("late") else None

        for name in ("late-1", "x1", "late-2", "x2", "x3"):
            q.add(("ns", name))
        task = asyncio.create_task(run_workers(q, reconcile, sched, workers=1))
        while len(order) < 7:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert order == ["late-1", "x1", "late-2", "x2", "x3", "late-1", "late-2"]
        assert len(sched) == 0 and len(q) == 0

    run(main)


def test_the_queue_says_when_nothing_waits_after_the_retry_is_planned() -> None:
    """`on_drained` runs when a key is done and no other waits (what releases a burst's held
    `Stopped` writes), and after the reconcile's own retry is planned, so that what it sets off
    can bring that retry forward."""

    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        drained: list[str] = []
        seen: list[str] = []

        def on_drained() -> None:
            drained.append(seen[-1])
            sched.at(("ns", "held"), time.time())  # what the release does: due now

        async def reconcile(key: Key) -> float | None:
            seen.append(key[1])
            await asyncio.sleep(0)
            return 30.0 if key[1] == "held" else None

        q.on_drained = on_drained
        q.add(("ns", "held"))
        q.add(("ns", "other"))
        task = asyncio.create_task(run_workers(q, reconcile, sched, workers=1))
        while len(drained) < 1:
            await asyncio.sleep(0.01)
        assert drained == ["other"]  # not after "held": "other" still waited
        q.add(("ns", "held"))
        while len(drained) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert drained == ["other", "held"]
        due = sched.deadline(("ns", "held"))
        assert due is not None and due <= time.time()  # the 30 s retry came first, then the release

    run(main)


def test_workers_never_reconcile_the_same_key_concurrently() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        active: set[Key] = set()
        overlaps: list[Key] = []
        calls: dict[Key, int] = {}

        async def reconcile(key: Key) -> float | None:
            if key in active:
                overlaps.append(key)
            active.add(key)
            calls[key] = calls.get(key, 0) + 1
            await asyncio.sleep(0.01)
            active.discard(key)
            return None

        task = asyncio.create_task(run_workers(q, reconcile, sched, workers=8))
        for _ in range(20):
            for i in range(4):
                q.add(("ns", f"s{i}"))
            await asyncio.sleep(0.002)
        while len(q):
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert overlaps == []
        assert set(calls) == {("ns", f"s{i}") for i in range(4)}
        assert all(n < 20 for n in calls.values()), calls  # coalesced

    run(main)


def test_workers_retry_failures_through_the_scheduler() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        attempts: list[float] = []
        done = asyncio.Event()

        async def reconcile(key: Key) -> float | None:
            attempts.append(time.monotonic())
            if len(attempts) < 2:
                raise RuntimeError("boom")
            done.set()
            return None

        tasks = [
            asyncio.create_task(sched.run()),
            asyncio.create_task(run_workers(q, reconcile, sched, workers=2)),
        ]
        q.add(("ns", "flaky"))
        await asyncio.wait_for(done.wait(), 5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert len(attempts) == 2
        assert attempts[1] - attempts[0] >= 0.9  # backoff 0.5 * 2 ** 1
        assert len(sched) == 0

    run(main)


# ---------------------------------------------------------------- Scheduler


async def _collect(q: WorkQueue, n: int) -> list[Key]:
    out = []
    for _ in range(n):
        key = await q.get()
        q.done(key)
        out.append(key)
    return out


def test_scheduler_fires_in_deadline_order() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        task = asyncio.create_task(sched.run())
        now = time.time()
        sched.at(("ns", "late"), now + 0.30)
        sched.at(("ns", "early"), now + 0.05)
        sched.at(("ns", "middle"), now + 0.15)
        sched.at(("ns", "past"), now - 10)  # overdue: fires at once
        started = time.monotonic()
        order = await _collect(q, 4)
        elapsed = time.monotonic() - started
        task.cancel()
        assert order == [("ns", "past"), ("ns", "early"), ("ns", "middle"), ("ns", "late")]
        assert 0.25 <= elapsed < 2
        assert len(sched) == 0

    run(main)


def test_scheduler_earlier_deadline_wakes_a_long_sleep() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        task = asyncio.create_task(sched.run())
        sched.at(("ns", "far"), time.time() + 3000)
        await asyncio.sleep(0.05)  # the scheduler sleeps towards "far"
        sched.at(("ns", "soon"), time.time() + 0.05)
        assert await asyncio.wait_for(_collect(q, 1), 2) == [("ns", "soon")]
        assert sched.deadline(("ns", "far")) is not None
        task.cancel()

    run(main)


def test_scheduler_replacement_keeps_one_deadline_per_key() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        task = asyncio.create_task(sched.run())
        key = ("ns", "s")
        now = time.time()
        sched.at(key, now + 0.05)
        sched.at(key, now + 0.4)  # moved later (e.g. the session was extended)
        assert len(sched) == 1
        assert sched.deadline(key) == now + 0.4
        await asyncio.sleep(0.2)
        assert len(q) == 0  # the replaced, earlier deadline did not fire
        assert await asyncio.wait_for(_collect(q, 1), 2) == [key]
        await asyncio.sleep(0.1)
        assert len(q) == 0  # fired once
        # moved earlier
        sched.at(key, time.time() + 5)
        sched.at(key, time.time() + 0.05)
        assert await asyncio.wait_for(_collect(q, 1), 2) == [key]
        task.cancel()

    run(main)


def test_scheduler_cancel() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        task = asyncio.create_task(sched.run())
        sched.at(("ns", "gone"), time.time() + 0.05)
        sched.at(("ns", "kept"), time.time() + 0.15)
        sched.cancel(("ns", "gone"))
        sched.cancel(("ns", "never-scheduled"))
        assert sched.deadline(("ns", "gone")) is None
        assert await asyncio.wait_for(_collect(q, 1), 2) == [("ns", "kept")]
        await asyncio.sleep(0.1)
        assert len(q) == 0
        task.cancel()

    run(main)


def test_scheduler_many_deadlines_one_task() -> None:
    async def main() -> None:
        q = WorkQueue()
        sched = Scheduler(q)
        task = asyncio.create_task(sched.run())
        now = time.time()
        for i in range(5000):
            sched.at(("ns", f"s{i}"), now + 3600 + i)
        for i in range(0, 5000, 5):
            sched.at(("ns", f"s{i}"), now + 0.1)  # 1,000 fall due together
        for i in range(1, 5000, 5):
            sched.cancel(("ns", f"s{i}"))
        fired = await asyncio.wait_for(_collect(q, 1000), 5)
        assert sorted(fired) == sorted(("ns", f"s{i}") for i in range(0, 5000, 5))
        assert len(sched) == 3000
        task.cancel()

    run(main)


def test_watch_events_feed_store_and_queue() -> None:
    async def main() -> None:
        store, queue, runtime = wired()
        studio = {
            "metadata": {"name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
            "spec": {"computeEnvironment": "env"},
        }
        runtime.handle("studios", {"type": "ADDED", "object": studio})
        assert store.get("studios", ("ns", "s")) is not None
        assert await q_get(queue) == ("ns", "s")
        pod = {
            "metadata": {
                "name": "s-abcde",
                "namespace": "ns",
                "uid": "p",
                "resourceVersion": "2",
                "labels": {"studios.dev/studio": "s"},
            }
        }
        runtime.handle("pods", {"type": "ADDED", "object": pod})
        assert await q_get(queue) == ("ns", "s")
        runtime.handle("pods", {"type": "DELETED", "object": pod})
        assert store.get("pods", ("ns", "s-abcde")) is None
        assert await q_get(queue) == ("ns", "s")
        env = {"metadata": {"name": "env", "namespace": "ns", "uid": "e", "resourceVersion": "3"}}
        runtime.handle("computeenvironments", {"type": "ADDED", "object": env})
        assert await q_get(queue) == ("ns", "s")
        other = {"metadata": {"name": "other", "namespace": "ns", "uid": "o", "resourceVersion": "4"}}
        runtime.handle("computeenvironments", {"type": "ADDED", "object": other})
        assert len(queue) == 0  # no studio uses it

    run(main)


def test_a_put_off_studio_waits_for_its_pods_events_but_not_its_own_changes() -> None:
    async def main() -> None:
        _, queue, runtime = wired()
        meta = {"name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "1"}
        runtime.handle("studios", {"type": "ADDED", "object": {"metadata": meta}})
        key = await queue.get()
        queue.done(key, later=True)
        pod_meta = {"name": "s-0", "namespace": "ns", "uid": "p", "labels": {"studios.dev/studio": "s"}}
        for version in ("2", "3"):  # bound, then running
            event = {"type": "MODIFIED", "object": {"metadata": {**pod_meta, "resourceVersion": version}}}
            runtime.handle("pods", event)
        assert queue.put_off() == 1 and queue.waiting() == 0
        changed = {"metadata": {**meta, "resourceVersion": "4"}, "spec": {"state": "Stopped"}}
        runtime.handle("studios", {"type": "MODIFIED", "object": changed})
        assert queue.put_off() == 0 and queue.waiting() == 1

    run(main)


def test_store_keeps_slim_bodies() -> None:
    """managedFields, kubectl's last-applied copy and a pod's spec are not kept (memory at scale);
    what the reconciler reads is."""
    store = studio_store()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **body("p", "1")["metadata"],
            "labels": {"studios.dev/studio": "s"},
            "annotations": {
                "studios.dev/session-hash": "h",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "studio", "image": "i"}], "nodeName": "n1"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    store.put("pods", pod)
    kept = store.get("pods", ("ns", "p"))
    assert kept is not None
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"studios.dev/session-hash": "h"}
    assert kept["metadata"]["labels"] == {"studios.dev/studio": "s"}
    assert kept["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    assert kept["spec"] == {"nodeName": "n1"}
    assert kept["status"] == pod["status"]
    assert "managedFields" in pod["metadata"]  # the caller's body is not changed
    studio = {**body("s", "1"), "spec": {"image": "x"}}
    studio["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    store.put("studios", studio)
    assert store.get("studios", ("ns", "s")) == {**body("s", "1"), "spec": {"image": "x"}}


def test_store_session_objects_keep_metadata_only() -> None:
    """The operator's own Services, Roles and RoleBindings are kept as metadata (existence and the
    applied hash are all it reads); a user's RoleBinding keeps its subjects (who may connect)."""
    store = studio_store()
    managed = {"app.kubernetes.io/managed-by": "studio-operator"}
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**body("svc", "1")["metadata"], "labels": managed, "annotations": {"h": "1"}},
        "spec": {"ports": [{"port": 8888}], "selector": {"a": "b"}},
    }
    store.put("services", svc)
    assert store.get("services", ("ns", "svc")) == {k: v for k, v in svc.items() if k != "spec"}
    binding = {
        "metadata": {**body("rb", "1")["metadata"], "labels": managed},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "ann"}],
    }
    store.put("rolebindings", binding)
    assert "subjects" not in (store.get("rolebindings", ("ns", "rb")) or {})
    user_binding = {**binding, "metadata": body("ub", "1")["metadata"]}
    store.put("rolebindings", user_binding)
    assert store.get("rolebindings", ("ns", "ub")) == user_binding


def test_a_pass_scans_the_bindings_that_grant_connect_not_each_studios_own() -> None:
    """Who may connect is read on every pass from the bindings of the namespace. Each studio has a
    connect RoleBinding of its own (thousands in a team's namespace); the store keeps the few
    that grant studios-connect or above apart, so a pass reads those alone, and follows a binding
    that starts or stops granting (roleRef is immutable, but a namesake may replace it)."""
    store = studio_store()
    managed = {"app.kubernetes.io/managed-by": "studio-operator"}
    connect = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "studios-connect"}
    for i in range(50):  # the studios' own bindings
        store.put(
            "rolebindings",
            {
                "metadata": {**body(f"s{i}-connect", "1")["metadata"], "labels": managed},
                "roleRef": {"kind": "Role", "name": f"s{i}-connect"},
                "subjects": [{"kind": "User", "name": "ann"}],
            },
        )
    team = {
        "metadata": body("team", "1")["metadata"],
        "roleRef": connect,
        "subjects": [{"kind": "User", "name": "bo"}],
    }
    store.put("rolebindings", team)
    store.put("rolebindings", {**team, "metadata": body("elsewhere", "1", ns="other")["metadata"]})
    store.put(
        "rolebindings",
        {"metadata": body("view", "1")["metadata"], "roleRef": {"kind": "ClusterRole", "name": "view"}},
    )
    assert [b["metadata"]["name"] for b in store.group("rolebindings", "ns", GRANTS)] == ["team"]
    assert len(list(store.items("rolebindings", "ns"))) == 52  # all are still stored
    admin = {**connect, "name": "studios-admin"}
    store.put(
        "rolebindings", {**team, "metadata": body("admins", "1", uid="u3")["metadata"], "roleRef": admin}
    )
    assert [b["metadata"]["name"] for b in store.group("rolebindings", "ns", GRANTS)] == ["admins", "team"]
    store.put(
        "rolebindings",
        {
            **team,
            "metadata": body("team", "2", uid="u2")["metadata"],
            "roleRef": {"kind": "ClusterRole", "name": "view"},
        },
    )
    store.remove("rolebindings", ("ns", "admins"))
    assert store.group("rolebindings", "ns", GRANTS) == []
    store.put("clusterrolebindings", {**team, "metadata": body("all", "1", uid="u4", ns="")["metadata"]})
    assert [b["metadata"]["name"] for b in store.group("clusterrolebindings", "", GRANTS)] == ["all"]


def test_a_pass_reads_its_studios_volumes_not_every_volume() -> None:
    """Data PersistentVolumes (cluster-scoped) and data claims are one or more per studio: a pass
    reads its studio's, as the labels name them, and follows relabelling and deletion."""
    store = studio_store()

    def pv(name: str, ns: str, studio: str, uid: str) -> dict[str, Any]:
        labels = {
            "studios.dev/namespace": ns,
            "studios.dev/studio": studio,
            "app.kubernetes.io/managed-by": "studio-operator",
        }
        return {"metadata": {**body(name, "1", uid=uid, ns="")["metadata"], "labels": labels}}

    for i in range(30):
        store.put("persistentvolumes", pv(f"pv-{i}", "ns", f"s{i % 10}", f"v{i}"))
    store.put("persistentvolumes", pv("pv-other", "other", "s1", "vo"))
    names = [b["metadata"]["name"] for b in store.group("persistentvolumes", "", volumes_of("ns", "s1"))]
    assert names == ["pv-1", "pv-11", "pv-21"]
    store.remove("persistentvolumes", ("", "pv-11"))
    store.put(
        "persistentvolumes",
        {
            **pv("pv-21", "ns", "s2", "v21"),
            "metadata": {**pv("pv-21", "ns", "s2", "v21")["metadata"], "resourceVersion": "2"},
        },
    )
    assert [b["metadata"]["name"] for b in store.group("persistentvolumes", "", volumes_of("ns", "s1"))] == [
        "pv-1"
    ]
    data = {"studios.dev/studio": "s1", "studios.dev/data-link": "raw"}
    store.put(
        "persistentvolumeclaims", {"metadata": {**body("s1-raw", "1", uid="c1")["metadata"], "labels": data}}
    )
    workspace = {"studios.dev/studio": "s1"}
    store.put(
        "persistentvolumeclaims",
        {"metadata": {**body("s1-workspace", "1", uid="c2")["metadata"], "labels": workspace}},
    )
    assert [c["metadata"]["name"] for c in store.group("persistentvolumeclaims", "ns", "s1")] == ["s1-raw"]


def test_store_compact_kinds_hand_out_copies() -> None:
    """The kinds with one or more objects per studio (studios, pods, Services, Roles, RoleBindings,
    claims, PVs) are kept as compact JSON: a body read from the store is
    the caller's own, so changing it cannot change what other passes read."""
    store = studio_store()
    studio = {**body("s", "7"), "spec": {"state": "Running"}, "status": {"phase": "Running"}}
    # what users write survives the compact form as it was: text beyond ASCII, numbers, empties
    studio["metadata"]["annotations"] = {"example.com/title": 'Überblick ✓ 数据 \u2028 "q"'}
    studio["spec"] |= {"resources": {"cpu": 1.5, "gpus": 2, "extra": {}, "list": []}}
    store.put("studios", studio)
    first = store.get("studios", ("ns", "s"))
    assert first == studio and first is not studio
    first["status"]["phase"] = "Stopped"  # type: ignore[index]
    assert store.get("studios", ("ns", "s")) == studio
    assert [b for _, b in store.items("studios")] == [studio]
    store.put("studios", {**body("t", "8"), "status": {"phase": "Stopped"}})
    store.put("studios", body("u", "9"))
    assert store.tally("studios") == {"Running": 1, "Stopped": 1, "": 1}
    assert sorted(store.versions("studios")) == [
        (("ns", "s"), "u1", 7),
        (("ns", "t"), "u1", 8),
        (("ns", "u"), "u1", 9),
    ]


def test_store_compact_entries_cost_their_length() -> None:
    """A compact entry is about as large as its JSON: 1,000 small studios stay well under 1 KB
    each (an encoder's spare buffer kept with every entry was 4 KB per object)."""
    store = studio_store()
    studios = [{**body(f"s{i}", "7"), "spec": {"state": "Running"}} for i in range(1000)]
    gc.collect()
    tracemalloc.start()
    try:
        for studio in studios:
            store.put("studios", studio)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / len(studios) < 1024, f"{used / len(studios):.0f} bytes per stored studio"


def test_store_holds_exactly_this_version() -> None:
    store = Store()
    assert not store.holds("pods", body("p", "5"))
    store.put("pods", body("p", "5"))
    assert store.holds("pods", body("p", "5"))
    assert not store.holds("pods", body("p", "6"))
    assert not store.holds("pods", body("p", "5", uid="other"))  # a namesake
    assert not store.holds("pods", {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}})


def test_watch_echoes_of_own_writes_queue_nothing() -> None:
    """An event carrying the version the store holds (the reconciler stored its write's answer, or
    a LIST loaded it) or an older one queues nothing; a deletion the reconciler already recorded
    neither; anything newer does."""

    async def main() -> None:
        store, queue, runtime = wired()
        studio = {**body("s", "7", uid="u"), "spec": {}}
        store.put("studios", studio)  # e.g. the answer of a status patch
        runtime.handle("studios", {"type": "MODIFIED", "object": studio})
        runtime.handle("studios", {"type": "MODIFIED", "object": {**body("s", "6", uid="u")}})
        assert len(queue) == 0
        runtime.handle("studios", {"type": "MODIFIED", "object": {**body("s", "8", uid="u")}})
        assert await q_get(queue) == ("ns", "s")
        svc = body("s-svc", "9")
        svc["metadata"]["labels"] = {"studios.dev/studio": "s"}
        runtime.handle("services", {"type": "ADDED", "object": svc})
        assert len(queue) == 0  # the operator's own Service: nothing to look at
        runtime.handle("services", {"type": "DELETED", "object": svc})
        assert await q_get(queue) == ("ns", "s")  # deleted by someone else: re-create it
        runtime.handle("services", {"type": "ADDED", "object": svc})
        store.remove("services", ("ns", "s-svc"))  # the reconciler deleted it and recorded that
        runtime.handle("services", {"type": "DELETED", "object": svc})
        assert len(queue) == 0

    run(main)


def test_datalink_only_diffbase() -> None:
    """kopf's diff-base (a deep copy per event) is built for DataLinks only."""
    import kopf

    from studio_operator.handlers.lifecycle import DataLinkDiffBaseStorage

    storage = DataLinkDiffBaseStorage(prefix="studios.dev", key="last-handled-configuration")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}
    link = {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "DataLink",
        "metadata": {"name": "l"},
        "spec": {"x": 1},
    }
    assert storage.build(body=kopf.Body(pod)) == {}
    assert storage.build(body=kopf.Body(link))["spec"] == {"x": 1}


async def q_get(queue: WorkQueue) -> Key:
    key = await asyncio.wait_for(queue.get(), 1)
    queue.done(key)
    return key


def test_stopping_the_runtime_posts_the_waiting_events(monkeypatch: Any) -> None:
    """The operator's cleanup (SIGTERM) stops the workers, then lets the Event lane drain."""
    posted: list[str] = []

    async def post_event(involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        await asyncio.sleep(0.02)
        posted.append(reason)

    monkeypatch.setattr(kube, "post_event", post_event)
    _, _, runtime = wired()

    async def main() -> None:
        for i in range(12):
            runtime.events.post(body("s", "1") | {"kind": "Studio"}, "Normal", f"E{i}", "m")
        await runtime.stop()

    run(main)
    assert sorted(posted) == sorted(f"E{i}" for i in range(12))
