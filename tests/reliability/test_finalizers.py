"""Scenario 7: finalizers. Studios with S3 mounts carry `studios.dev/volumes`: their data PVs are
cluster-scoped, so owner references cannot remove them; the operator does, then drops the
finalizer. Deleted while the operator is down, such studios wait (Terminating) and the operator
finishes the clean-up when it returns, PVs included. With the operator gone for good, the
documented manual procedure (docs/install.md, "Uninstalling") frees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from rel_helpers import Load, Model, ignore_404, problems, retrying, wait_converged

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for
from studio_operator.api.common import NAMESPACE_LABEL, VOLUMES_FINALIZER


def mounted_workspace(cluster: Cluster, ns: str, s3: Any) -> None:
    bucket = f"fin-{ns[-6:]}"
    s3.create_bucket(bucket)
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data=s3.admin.secret_data())
    )
    retrying(lambda: sh.create_environment(cluster, ns))
    link = {"uri": f"s3://{bucket}", "endpointURL": s3.endpoint, "credentialsSecret": "creds"}
    retrying(lambda: sh.create(cluster, ns, sh.obj("DataLink", "data", link)))
    wait_for(lambda: sh.cond_true(sh.get(cluster, ns, "data", kind="DataLink"), "Ready"), timeout=60)


def pvs(cluster: Cluster, ns: str) -> list[Any]:
    return list(cluster.core.list_persistent_volume(label_selector=f"{NAMESPACE_LABEL}={ns}").items)


def test_deleted_while_operator_down_cleaned_up_on_return(
    cluster: Cluster,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    s3: Any,
    figures: Any,
) -> None:
    ns = namespace
    op = operator_factory()
    mounted_workspace(cluster, ns, s3)
    model = Model(ns)
    load = Load(cluster, model)
    for i in range(6):
        load.create(f"f{i}", "Running", mounts=True)
    wait_converged(cluster, model, timeout=90)
    load.set_state("f5", "Stopped")  # stopped: no pod, but its PV and claim stay
    wait_converged(cluster, model, timeout=60)
    assert len(pvs(cluster, ns)) == 6
    for name in model.live():
        assert VOLUMES_FINALIZER in sh.get(cluster, ns, name)["metadata"].get("finalizers", [])

    op.kill()
    for name in ("f0", "f1", "f2", "f5"):
        load.delete(name)  # DELETE passes no webhook: works while the operator is down
    time.sleep(3)
    for name in ("f0", "f1", "f2", "f5"):
        body = sh.get(cluster, ns, name)  # still there: the finalizer waits for the operator
        assert body["metadata"].get("deletionTimestamp")
    assert len(pvs(cluster, ns)) == 6

    op.start()
    back = time.monotonic()
    wait_converged(cluster, model, timeout=60)  # gone, with their pods, services, claims and PVs
    figures.record("finalizers", "cleaned_up_after_operator_healthy_s", time.monotonic() - back)
    assert sorted(pv.metadata.labels[sh.STUDIO_LABEL] for pv in pvs(cluster, ns)) == ["f3", "f4"]

    # The operator gone for good (as after `helm uninstall` without deleting the studios first; a
    # clean stop also unregisters its webhooks): the documented commands free the studios.
    op.stop()
    load.delete("f3")
    time.sleep(2)
    assert sh.get(cluster, ns, "f3")["metadata"].get("deletionTimestamp")
    # kubectl patch studio NAME -n NS --type=merge -p '{"metadata":{"finalizers":null}}'
    cluster.kubectl(
        "patch", "studio", "f3", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    wait_for(lambda: sh.gone(lambda: sh.get(cluster, ns, "f3")), timeout=30, message="studio gone")
    # kubectl delete pv -l studios.dev/studio=NAME (narrowed to this namespace here)
    for pv in pvs(cluster, ns):
        if pv.metadata.labels[sh.STUDIO_LABEL] == "f3":
            ignore_404(lambda n=pv.metadata.name: cluster.core.delete_persistent_volume(n))
    wait_for(
        lambda: [pv.metadata.labels[sh.STUDIO_LABEL] for pv in pvs(cluster, ns)] == ["f4"],
        timeout=30,
        message="f3's PV gone",
    )
    # its pod, service, claim and grant go with the garbage collector
    wait_for(lambda: not problems(cluster, model), timeout=60, message="f3's objects gone (GC)")
    op.start()  # for the namespace's clean-up
