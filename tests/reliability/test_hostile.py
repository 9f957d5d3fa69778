"""Scenario 5: hostile and invalid input.

Part 1, a table of invalid manifests across the four kinds: each is rejected at admission (CRD
schema, CEL rules or the operator's webhook) with a message that names the offending field. They
are sent as server-side dry runs with strict field validation (unknown fields are errors, as with
``kubectl apply --validate=strict``), by a user who is not the operator ("mallory", impersonated
with cluster-admin rights so RBAC never answers first).

Part 2, setups that are valid objects but cannot work (or were corrupted by someone else): each
gives a condition with a reason and no pod, the operator neither crashes nor loops, and the studio
recovers by itself once the setup is fixed.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from rel_helpers import crashes, failed_reconciles, retrying

import studio_helpers as sh
from kube_helpers import Cluster, OperatorProcess, wait_for

STUDIO = sh.studio_body("bad", lifespan={"policy": "StopAfter", "hours": 8}, state="Running")
_DROP = object()


def studio(**changes: Any) -> dict[str, Any]:
    """The valid studio with `a__b=value` changes inside spec (value _DROP removes the key)."""
    body = copy.deepcopy(STUDIO)
    for dotted, value in changes.items():
        node = body["spec"]
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DROP:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body


def ce(**spec: Any) -> dict[str, Any]:
    return sh.obj("ComputeEnvironment", "ce", spec)


def dl(**spec: Any) -> dict[str, Any]:
    return sh.obj("DataLink", "dl", spec)


def ws(name: str = "default", **spec: Any) -> dict[str, Any]:
    return sh.obj("WorkspaceSettings", name, spec)


def annotated(**annotations: str) -> dict[str, Any]:
    body = copy.deepcopy(STUDIO)
    body["metadata"]["annotations"] = annotations
    return body


LONG = "x" * 5000
CASES: list[tuple[str, dict[str, Any], str]] = [
    # ---- Studio: required fields, types, ranges, enums, formats, sizes, duplicates, reserved keys
    ("studio-no-spec", {k: v for k, v in STUDIO.items() if k != "spec"}, "spec"),
    ("studio-no-environment", studio(computeEnvironment=_DROP), "spec.computeEnvironment"),
    ("studio-no-template", studio(template=_DROP), "spec.template"),
    ("studio-no-image", studio(template__image=_DROP), "spec.template.image"),
    ("studio-empty-image", studio(template__image=""), "spec.template.image"),
    ("studio-image-with-space", studio(template__image="a b"), "spec.template.image"),
    ("studio-image-oversized", studio(template__image="i" * 1025), "spec.template.image"),
    ("studio-port-string", studio(template__port="8888"), "spec.template.port"),
    ("studio-port-zero", studio(template__port=0), "spec.template.port"),
    ("studio-port-too-big", studio(template__port=65536), "spec.template.port"),
    ("studio-command-not-a-list", studio(template__command="bash -c x"), "spec.template.command"),
    ("studio-too-many-args", studio(template__args=["a"] * 257), "spec.template.args"),
    ("studio-state-unknown", studio(state="Paused"), "spec.state"),
    ("studio-state-bool", studio(state=True), "spec.state"),
    ("studio-private-string", studio(private="yes"), "spec.private"),
    ("studio-hours-zero", studio(lifespan__hours=0), "spec.lifespan.hours"),
    ("studio-hours-too-many", studio(lifespan__hours=121), "spec.lifespan.hours"),
    ("studio-hours-string", studio(lifespan__hours="8"), "spec.lifespan.hours"),
    ("studio-policy-unknown", studio(lifespan__policy="Forever"), "spec.lifespan.policy"),
    ("studio-display-name-oversized", studio(displayName="d" * 254), "spec.displayName"),
    ("studio-description-oversized", studio(description=LONG), "spec.description"),
    ("studio-environment-not-a-name", studio(computeEnvironment="Not_A_Name"), "spec.computeEnvironment"),
    ("studio-duplicate-mounts", studio(mounts=[{"dataLink": "a"}, {"dataLink": "a"}]), "spec.mounts[1]"),
    ("studio-mount-bad-name", studio(mounts=[{"dataLink": "Bad.Name"}]), "spec.mounts[0].dataLink"),
    ("studio-too-many-mounts", studio(mounts=[{"dataLink": f"l{i}"} for i in range(33)]), "spec.mounts"),
    (
        "studio-duplicate-env",
        studio(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.env[1]",
    ),
    ("studio-env-bad-name", studio(env=[{"name": "1BAD", "value": "x"}]), "spec.env[0].name"),
    (
        "studio-env-value-and-valuefrom",
        studio(env=[{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]),
        "spec.env",
    ),
    ("studio-reserved-label", studio(resourceLabels={"studios.dev/studio": "x"}), "spec.resourceLabels"),
    (
        "studio-remove-reserved-label",
        studio(removeResourceLabels=["app.kubernetes.io/managed-by"]),
        "spec.removeResourceLabels",
    ),
    ("studio-label-value-oversized", studio(resourceLabels={"k": "v" * 64}), "spec.resourceLabels"),
    ("studio-bad-quantity", studio(resources={"limits": {"cpu": "lots"}}), "spec.resources.limits"),
    ("studio-bad-volume-size", studio(workspaceVolume={"size": "ten gigs"}), "spec.workspaceVolume.size"),
    (
        "studio-toleration-operator",
        studio(tolerations=[{"key": "k", "operator": "Maybe"}]),
        "spec.tolerations[0].operator",
    ),
    ("studio-node-selector-int", studio(nodeSelector={"zone": 5}), "spec.nodeSelector"),
    ("studio-unknown-field", studio(templat={"image": "x"}), "spec.templat"),
    ("studio-unknown-nested-field", studio(template__imag="x"), "spec.template.imag"),
    ("studio-name-too-long", sh.studio_body("n" * 64), "metadata.name"),
    ("studio-lifespan-annotation-zero", annotated(**{sh.SESSION_HOURS: "0"}), sh.SESSION_HOURS),
    ("studio-lifespan-annotation-text", annotated(**{sh.SESSION_HOURS: "soon"}), sh.SESSION_HOURS),
    ("studio-lifespan-annotation-huge", annotated(**{sh.SESSION_HOURS: "1000"}), sh.SESSION_HOURS),
    # ---- ComputeEnvironment
    ("ce-bucket-uppercase", ce(allowedBuckets=["s3://UPPER"]), "spec.allowedBuckets[0]"),
    ("ce-bucket-duplicate", ce(allowedBuckets=["dup-1", "dup-1"]), "spec.allowedBuckets[1]"),
    ("ce-buckets-not-a-list", ce(allowedBuckets="bucket"), "spec.allowedBuckets"),
    ("ce-driver-unknown", ce(storage={"driver": "nfs"}), "spec.storage.driver"),
    ("ce-csi-driver-unknown", ce(storage={"csiDriver": "efs.csi.aws.com"}), "spec.storage.csiDriver"),
    ("ce-ttl-negative", ce(storage={"metadataTTLSeconds": -1}), "spec.storage.metadataTTLSeconds"),
    ("ce-region-bad", ce(region="Europe"), "spec.region"),
    ("ce-reserved-label", ce(resourceLabels={"app.kubernetes.io/managed-by": "me"}), "spec.resourceLabels"),
    ("ce-reserved-label-prefix", ce(resourceLabels={"studios.dev/team": "x"}), "spec.resourceLabels"),
    ("ce-security-profile", ce(securityProfile="Privileged"), "spec.securityProfile"),
    ("ce-secret-not-a-name", ce(credentialsSecret="Bad_Name"), "spec.credentialsSecret"),
    ("ce-service-account-upper", ce(serviceAccountName="UPPER"), "spec.serviceAccountName"),
    ("ce-env-without-name", ce(env=[{"value": "x"}]), "spec.env[0].name"),
    ("ce-unknown-field", ce(nodeselector={"a": "b"}), "spec.nodeselector"),
    (
        "ce-duplicate-pull-secrets",
        ce(imagePullSecrets=[{"name": "a"}, {"name": "a"}]),
        "spec.imagePullSecrets[1]",
    ),
    # ---- DataLink
    ("dl-no-uri", dl(), "spec.uri"),
    ("dl-http-uri", dl(uri="http://bucket/x"), "spec.uri"),
    ("dl-bucket-too-short", dl(uri="s3://ab"), "spec.uri"),
    ("dl-bucket-uppercase", dl(uri="s3://Bad_Bucket/x"), "spec.uri"),
    ("dl-uri-oversized", dl(uri="s3://bucket/" + "p" * 1100), "spec.uri"),
    ("dl-uri-int", dl(uri=42), "spec.uri"),
    ("dl-endpoint-ftp", dl(uri="s3://bucket", endpointURL="ftp://x"), "spec.endpointURL"),
    ("dl-prefix-mount-option", dl(uri="s3://bucket/p,allow-root"), "spec.uri"),
    ("dl-prefix-space", dl(uri="s3://bucket/p allow-other"), "spec.uri"),
    (
        "dl-endpoint-mount-option",
        dl(uri="s3://bucket", endpointURL="http://h:1,allow-root"),
        "spec.endpointURL",
    ),
    ("dl-endpoint-userinfo", dl(uri="s3://bucket", endpointURL="http://u:p@h:1"), "spec.endpointURL"),
    ("dl-region-bad", dl(uri="s3://bucket", region="us_east_1"), "spec.region"),
    ("dl-secret-upper", dl(uri="s3://bucket", credentialsSecret="UPPER"), "spec.credentialsSecret"),
    ("dl-unknown-field", dl(uri="s3://bucket", endpoint="http://x"), "spec.endpoint"),
    # ---- WorkspaceSettings
    ("ws-wrong-name", ws("other"), "metadata.name"),
    ("ws-hours-zero", ws(studioLifespan={"hours": 0}), "spec.studioLifespan.hours"),
    ("ws-hours-too-many", ws(studioLifespan={"hours": 200}), "spec.studioLifespan.hours"),
    ("ws-policy-unknown", ws(studioLifespan={"policy": "Never"}), "spec.studioLifespan.policy"),
    ("ws-lifespan-string", ws(studioLifespan="8h"), "spec.studioLifespan"),
    ("ws-unknown-field", ws(lifespan={"hours": 1}), "spec.lifespan"),
]


@pytest.fixture(scope="module")
def mallory(cluster: Cluster) -> Iterator[client.CustomObjectsApi]:
    api = cluster.impersonate("mallory", ["system:masters"])
    yield client.CustomObjectsApi(api)
    api.close()


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    return namespace


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in CASES], ids=[i for i, _, _ in CASES])
def test_invalid_manifest_rejected_naming_the_field(
    ns: str, mallory: client.CustomObjectsApi, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as caught:
        mallory.create_namespaced_custom_object(
            sh.GROUP,
            sh.VERSION,
            ns,
            sh.PLURALS[body["kind"]],
            copy.deepcopy(body),
            dry_run="All",
            field_validation="Strict",
        )
    exc = caught.value
    assert exc.status in (400, 422), f"{exc.status}: {exc.body}"
    message = json.loads(exc.body)["message"]
    assert field in message, message


def test_table_is_large_enough() -> None:
    kinds = {b["kind"] for _, b, _ in CASES}
    assert len(CASES) >= 40 and kinds == set(sh.PLURALS), (len(CASES), kinds)


# ---------------------------------------------------------------- part 2: broken setups


def stalled(cluster: Cluster, ns: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    body = sh.wait_studio(
        cluster,
        ns,
        name,
        lambda b: sh.cond_true(b, "Stalled") and (sh.condition(b, "Stalled") or {}).get("reason") == reason,
        f"Stalled/{reason}",
        timeout=timeout,
    )
    assert not sh.pods(cluster, ns, name), "a stalled studio must have no pod"
    assert sh.status(body)["phase"] != "Running"
    message = (sh.condition(body, "Stalled") or {}).get("message") or ""
    assert len(message) > 20, f"the message should say what to fix: {message!r}"
    return body


def valid_time(value: str | None) -> bool:
    try:
        sh.parse(value or "")
    except ValueError:
        return False
    return True


def secret(cluster: Cluster, ns: str, name: str, data: dict[str, str]) -> None:
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )


def link_ready(
    cluster: Cluster, ns: str, name: str, ready: bool = True, timeout: float = 60
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = sh.get(cluster, ns, name, kind="DataLink")
        cond = sh.condition(body, "Ready") or {}
        current = sh.status(body).get("observedGeneration") == body["metadata"]["generation"]
        return body if current and cond.get("status") == ("True" if ready else "False") else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, message=f"DataLink {name} Ready={ready}")
    return result


def recheck(cluster: Cluster, ns: str, link: str, value: str) -> None:
    sh.patch(
        cluster, ns, link, {"metadata": {"annotations": {"studios.dev/recheck": value}}}, kind="DataLink"
    )


@pytest.fixture
def broken(
    cluster: Cluster, namespace: str, operator_factory: Callable[..., OperatorProcess], s3: Any
) -> Any:
    """A dedicated operator (its log is checked for crash loops), a bucket and good credentials."""

    class Setup:
        ns = namespace
        op = operator_factory()
        bucket = f"hostile-{namespace[-6:]}"
        good = s3.admin.secret_data()
        endpoint = s3.endpoint

    s3.create_bucket(Setup.bucket)
    secret(cluster, namespace, "good", Setup.good)
    return Setup


def test_broken_setups_stall_with_a_reason_and_recover(cluster: Cluster, broken: Any, figures: Any) -> None:
    ns, op = broken.ns, broken.op
    good_link = {"uri": f"s3://{broken.bucket}", "endpointURL": broken.endpoint, "credentialsSecret": "good"}
    results: dict[str, str] = {}

    # 1. the environment does not exist -> EnvironmentNotFound; created -> Running
    retrying(lambda: sh.create_studio(cluster, ns, "no-env", environment="missing"))
    stalled(cluster, ns, "no-env", "EnvironmentNotFound")
    sh.create_environment(cluster, ns, "missing")
    sh.wait_phase(cluster, ns, "no-env", "Running", timeout=30)
    results["missing environment"] = "EnvironmentNotFound"
    sh.create_environment(cluster, ns, "env")

    # 2. the data link does not exist -> DataLinkNotFound; created (Ready) -> Running
    sh.create_studio(cluster, ns, "no-link", mounts=[{"dataLink": "later"}])
    stalled(cluster, ns, "no-link", "DataLinkNotFound")
    sh.create(cluster, ns, sh.obj("DataLink", "later", good_link))
    sh.wait_phase(cluster, ns, "no-link", "Running", timeout=60)
    results["missing data link"] = "DataLinkNotFound"

    # 3. the endpoint is unreachable -> link not Ready -> DataLinkNotReady; endpoint fixed -> Running
    sh.create(
        cluster, ns, sh.obj("DataLink", "unreachable", {**good_link, "endpointURL": "http://127.0.0.1:1"})
    )
    link = link_ready(cluster, ns, "unreachable", ready=False)
    sh.create_studio(cluster, ns, "dead-end", mounts=[{"dataLink": "unreachable"}])
    stalled(cluster, ns, "dead-end", "DataLinkNotReady")
    results["unreachable endpoint"] = f"DataLinkNotReady ({sh.condition(link, 'Ready')['reason']})"
    sh.patch(cluster, ns, "unreachable", {"spec": {"endpointURL": broken.endpoint}}, kind="DataLink")
    sh.wait_phase(cluster, ns, "dead-end", "Running", timeout=60)

    # 4. the credentials Secret does not exist -> link not Ready; the Secret appears -> Running
    sh.create(cluster, ns, sh.obj("DataLink", "no-secret", {**good_link, "credentialsSecret": "absent"}))
    link = link_ready(cluster, ns, "no-secret", ready=False)
    sh.create_studio(cluster, ns, "no-creds", mounts=[{"dataLink": "no-secret"}])
    stalled(cluster, ns, "no-creds", "DataLinkNotReady")
    results["credentials Secret missing"] = f"DataLinkNotReady ({sh.condition(link, 'Ready')['reason']})"
    secret(cluster, ns, "absent", broken.good)
    recheck(cluster, ns, "no-secret", "1")
    sh.wait_phase(cluster, ns, "no-creds", "Running", timeout=60)

    # 5. the Secret is unreadable (wrong keys, garbage) -> link not Ready; fixed -> Running
    secret(cluster, ns, "garbage", {"aws_key": "nope", "AWS_SECRET_ACCESS_KEY": ""})
    sh.create(cluster, ns, sh.obj("DataLink", "bad-secret", {**good_link, "credentialsSecret": "garbage"}))
    link = link_ready(cluster, ns, "bad-secret", ready=False)
    sh.create_studio(cluster, ns, "bad-creds", mounts=[{"dataLink": "bad-secret"}])
    stalled(cluster, ns, "bad-creds", "DataLinkNotReady")
    results["unreadable credentials Secret"] = f"DataLinkNotReady ({sh.condition(link, 'Ready')['reason']})"
    cluster.core.patch_namespaced_secret(
        "garbage", ns, {"data": {k: base64.b64encode(v.encode()).decode() for k, v in broken.good.items()}}
    )
    recheck(cluster, ns, "bad-secret", "1")
    sh.wait_phase(cluster, ns, "bad-creds", "Running", timeout=60)

    # 6. FUSE storage without a mounter image -> FuseImageMissing; image set -> Running
    sh.create_environment(cluster, ns, "fuse-env", spec={"storage": {"driver": "fuse"}})
    sh.create_studio(cluster, ns, "fuse", environment="fuse-env", mounts=[{"dataLink": "later"}])
    stalled(cluster, ns, "fuse", "FuseImageMissing")
    sh.patch(
        cluster,
        ns,
        "fuse-env",
        {"spec": {"storage": {"driver": "fuse", "fuseImage": "registry.invalid/mountpoint:1"}}},
        kind="ComputeEnvironment",
    )
    sh.wait_phase(cluster, ns, "fuse", "Running", timeout=60)
    results["fuse without image"] = "FuseImageMissing"

    # 7. status.session corrupted by someone (garbage startedAt, wrong pod): the session is
    #    re-derived from the pod; same pod, valid times, no restart
    sh.create_studio(cluster, ns, "corrupt")
    sh.wait_phase(cluster, ns, "corrupt", "Running", timeout=30)
    uid = sh.live_pods(cluster, ns, "corrupt")[0].metadata.uid
    sh.patch_status(
        cluster, ns, "corrupt", {"session": {"startedAt": "yesterday at noon", "podName": "someone-else"}}
    )
    body = sh.wait_studio(
        cluster,
        ns,
        "corrupt",
        lambda b: valid_time((sh.status(b).get("session") or {}).get("startedAt")),
        "a valid status.session again",
    )
    assert (sh.status(body).get("session") or {}).get("podName") == sh.live_pods(cluster, ns, "corrupt")[
        0
    ].metadata.name
    assert [p.metadata.uid for p in sh.live_pods(cluster, ns, "corrupt")] == [uid]
    results["corrupted status.session"] = "re-derived from the pod (same pod)"

    # 8. status.phase/conditions overwritten with lies (the schema rejects unknown phases) ->
    #    rewritten by the next reconcile, the session is not touched
    sh.patch_status(
        cluster,
        ns,
        "corrupt",
        {"phase": "Stopped", "stopReason": "LifespanExpired", "conditions": [], "observedGeneration": 99},
    )
    sh.wait_phase(cluster, ns, "corrupt", "Running", timeout=30)
    results["corrupted status.phase"] = "rewritten"

    # 9. a bad session-lifespan annotation written past the webhook (by a client the webhook
    #    trusts, or before it existed) -> LifespanAnnotationIgnored, runs on; fixed -> gone
    sh.annotate(cluster, ns, "corrupt", **{sh.SESSION_HOURS: "forever"})
    sh.wait_studio(
        cluster,
        ns,
        "corrupt",
        lambda b: (sh.condition(b, "LifespanAnnotationIgnored") or {}).get("reason") == "InvalidAnnotation",
        "LifespanAnnotationIgnored",
    )
    assert sh.status(sh.get(cluster, ns, "corrupt"))["phase"] == "Running"
    sh.annotate(cluster, ns, "corrupt", **{sh.SESSION_HOURS: "12"})
    sh.wait_studio(
        cluster,
        ns,
        "corrupt",
        lambda b: (
            sh.condition(b, "LifespanAnnotationIgnored") is None
            and (sh.status(b).get("session") or {}).get("lifespanHours") == 12
        ),
        "annotation accepted",
    )
    assert [p.metadata.uid for p in sh.live_pods(cluster, ns, "corrupt")] == [uid]
    results["bad lifespan annotation"] = "LifespanAnnotationIgnored (InvalidAnnotation)"

    # 10. reserved labels through the environment: rejected at admission (CEL) ...
    with pytest.raises(ApiException) as caught:
        sh.create_environment(cluster, ns, "labels", spec={"resourceLabels": {"studios.dev/studio": "x"}})
    assert "spec.resourceLabels" in json.loads(caught.value.body)["message"]
    # ... and an environment label the studio removes / overrides stays the studio's business
    sh.create_environment(cluster, ns, "labelled", spec={"resourceLabels": {"team": "a", "tier": "x"}})
    sh.create_studio(
        cluster,
        ns,
        "labels",
        environment="labelled",
        resourceLabels={"team": "b"},
        removeResourceLabels=["tier"],
    )
    sh.wait_phase(cluster, ns, "labels", "Running", timeout=30)
    labels = sh.live_pods(cluster, ns, "labels")[0].metadata.labels
    assert labels["team"] == "b" and "tier" not in labels and labels[sh.STUDIO_LABEL] == "labels"
    results["reserved label via environment"] = "rejected at admission (spec.resourceLabels)"

    # 11. WorkspaceSettings with odd values (KeepRunning with hours; a name other than "default"
    #     is refused by the schema itself): the lock applies, no expiry, the studio runs on
    sh.create_studio(cluster, ns, "locked")
    sh.wait_phase(cluster, ns, "locked", "Running", timeout=30)
    uid_locked = sh.live_pods(cluster, ns, "locked")[0].metadata.uid
    sh.create(
        cluster,
        ns,
        sh.obj("WorkspaceSettings", "default", {"studioLifespan": {"policy": "KeepRunning", "hours": 3}}),
    )
    body = sh.wait_studio(
        cluster, ns, "locked", lambda b: sh.cond_true(b, "LifespanLocked"), "LifespanLocked"
    )
    assert (sh.status(body).get("session") or {}).get("expiresAt") is None
    assert [p.metadata.uid for p in sh.live_pods(cluster, ns, "locked")] == [uid_locked]
    results["odd WorkspaceSettings"] = "LifespanLocked (KeepRunning, hours ignored)"

    # 12. an environment deleted under a stopped studio that is then started -> EnvironmentNotFound
    sh.create_environment(cluster, ns, "short-lived")
    sh.create_studio(cluster, ns, "orphaned", environment="short-lived", state="Stopped")
    sh.wait_phase(cluster, ns, "orphaned", "Stopped", timeout=30)
    sh.delete(cluster, ns, "short-lived", kind="ComputeEnvironment")
    sh.set_state(cluster, ns, "orphaned", "Running")
    stalled(cluster, ns, "orphaned", "EnvironmentNotFound")
    sh.create_environment(cluster, ns, "short-lived")
    sh.wait_phase(cluster, ns, "orphaned", "Running", timeout=30)
    results["environment deleted before start"] = "EnvironmentNotFound"

    # no crash loop: one process start, no tracebacks but reconcile retries, no endless retries
    log = op.log_text()
    assert op.running and op.starts == 1
    found = crashes(log)
    assert not found, found
    retries = failed_reconciles(log, ns)
    assert retries <= 5, f"{retries} failed reconciles: broken input must be a condition, not an error"
    for case, outcome in results.items():
        figures.record("hostile-setups", case, outcome)
    assert len(results) >= 10
