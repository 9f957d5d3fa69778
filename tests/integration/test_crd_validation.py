"""The API server itself rejects invalid objects, with messages that name the field (CRD schemas).

Every request is a server-side dry run: it goes through the same validation (schema, CEL rules,
admission) as a real create, and leaves nothing behind.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from kube_helpers import ROOT, Cluster, OperatorProcess, kubectl_binary

STUDIO = sh.studio_body("valid", lifespan={"policy": "StopAfter", "hours": 8}, state="Running")


def with_spec(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for dotted, value in changes.items():
        node = out["spec"]
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DROP:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return out


_DROP = object()


def try_create(cluster: Cluster, namespace: str, body: dict[str, Any]) -> ApiException | None:
    try:
        cluster.custom.create_namespaced_custom_object(
            sh.GROUP, sh.VERSION, namespace, sh.PLURALS[body["kind"]], body, dry_run="All"
        )
    except ApiException as exc:
        return exc
    return None


def rejected(cluster: Cluster, namespace: str, body: dict[str, Any]) -> str:
    exc = try_create(cluster, namespace, body)
    assert exc is not None, f"accepted: {json.dumps(body)}"
    assert exc.status == 422, f"{exc.status}: {exc.body}"
    message: str = json.loads(exc.body)["message"]
    return message


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> str:
    """A namespace with the operator (and its admission webhooks) running, as users have it."""
    return namespace


def test_valid_objects_are_accepted(cluster: Cluster, ns: str) -> None:
    samples = ROOT / "manifests" / "samples"
    bodies = [
        STUDIO,
        sh.obj("ComputeEnvironment", "ce", {"allowedBuckets": ["scratch", "s3://shared.data-1"]}),
        sh.obj("DataLink", "dl", {"uri": "s3://my-bucket/some/prefix/"}),
        sh.obj("DataLink", "dl2", {"uri": "s3://my.bucket"}),
        sh.obj("WorkspaceSettings", "default", {"studioLifespan": {"policy": "KeepRunning"}}),
        sh.studio_body("x" * 63),
    ]
    for path in sorted(samples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == sh.API_VERSION:
                bodies.append(doc)
    for body in bodies:
        assert try_create(cluster, ns, body) is None, body


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"lifespan__hours": 0}, "spec.lifespan.hours", "greater than or equal to 1"),
        ({"lifespan__hours": 121}, "spec.lifespan.hours", "less than or equal to 120"),
        ({"lifespan__policy": "Forever"}, "spec.lifespan.policy", "Unsupported value"),
        ({"template__port": 0}, "spec.template.port", "greater than or equal to 1"),
        ({"template__port": 70000}, "spec.template.port", "less than or equal to 65535"),
        ({"state": "Paused"}, "spec.state", 'Unsupported value: "Paused"'),
        ({"computeEnvironment": _DROP}, "spec.computeEnvironment", "Required value"),
        ({"template__image": _DROP}, "spec.template.image", "Required value"),
        ({"template": _DROP}, "spec.template", "Required value"),
        ({"template__image": "has space"}, "spec.template.image", "should match"),
        ({"computeEnvironment": "Not_A_Name"}, "spec.computeEnvironment", "should match"),
        ({"mounts": [{"dataLink": "a"}, {"dataLink": "a"}]}, "spec.mounts[1]", "Duplicate value"),
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
            "spec.env[1]",
            "Duplicate value",
        ),
        ({"resourceLabels": {"studios.dev/studio": "other"}}, "spec.resourceLabels", "reserved"),
        ({"resourceLabels": {"app.kubernetes.io/managed-by": "me"}}, "spec.resourceLabels", "reserved"),
        ({"removeResourceLabels": ["studios.dev/studio"]}, "spec.removeResourceLabels", "reserved"),
        ({"removeResourceLabels": ["app.kubernetes.io/managed-by"]}, "spec.removeResourceLabels", "reserved"),
        ({"resourceLabels": {"bad key!": "x"}}, "spec.resourceLabels", "label keys"),
        ({"resourceLabels": {"ok": "bad value!"}}, "spec.resourceLabels.ok", "should match"),
    ],
)
def test_invalid_studio(cluster: Cluster, ns: str, change: dict[str, Any], field: str, words: str) -> None:
    message = rejected(cluster, ns, with_spec(STUDIO, **change))
    assert field in message and words in message, message


def test_studio_without_spec(cluster: Cluster, ns: str) -> None:
    body = {"apiVersion": sh.API_VERSION, "kind": "Studio", "metadata": {"name": "nospec"}}
    message = rejected(cluster, ns, body)
    assert "spec: Required value" in message, message


def test_studio_name_must_fit_in_a_label_value(cluster: Cluster, ns: str) -> None:
    message = rejected(cluster, ns, sh.studio_body("x" * 64))
    assert "metadata.name" in message and "63" in message, message


def test_several_problems_are_reported_together(cluster: Cluster, ns: str) -> None:
    message = rejected(cluster, ns, with_spec(STUDIO, lifespan__hours=0, template__port=70000, state="No"))
    for field in ("spec.lifespan.hours", "spec.template.port", "spec.state"):
        assert field in message, message


@pytest.mark.parametrize(
    ("name", "spec", "field", "words"),
    [
        ("other", {}, "metadata.name", "default"),
        (
            "default",
            {"studioLifespan": {"hours": 0}},
            "spec.studioLifespan.hours",
            "greater than or equal to 1",
        ),
        ("default", {"studioLifespan": {"hours": 121}}, "spec.studioLifespan.hours", "less than or equal"),
        ("default", {"studioLifespan": {"policy": "Never"}}, "spec.studioLifespan.policy", "Unsupported"),
    ],
)
def test_invalid_workspace_settings(
    cluster: Cluster, ns: str, name: str, spec: dict[str, Any], field: str, words: str
) -> None:
    message = rejected(cluster, ns, sh.obj("WorkspaceSettings", name, spec))
    assert field in message and words in message, message


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({}, "spec.uri", "Required value"),
        ({"uri": "http://bucket/x"}, "spec.uri", "should match"),
        ({"uri": "bucket/x"}, "spec.uri", "should match"),
        ({"uri": "s3://Bad_Bucket/x"}, "spec.uri", "should match"),
        ({"uri": "s3://ab"}, "spec.uri", "should match"),  # bucket names have 3..63 characters
        ({"uri": "s3://" + "b" * 64}, "spec.uri", "should match"),
        ({"uri": "s3://-bucket"}, "spec.uri", "should match"),
        ({"uri": "s3://bucket", "endpointURL": "ftp://x"}, "spec.endpointURL", "should match"),
        ({"uri": "s3://bucket", "region": "Europe"}, "spec.region", "should match"),
    ],
)
def test_invalid_data_link(cluster: Cluster, ns: str, spec: dict[str, Any], field: str, words: str) -> None:
    message = rejected(cluster, ns, sh.obj("DataLink", "dl", spec))
    assert field in message and words in message, message


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"allowedBuckets": ["s3://UPPER"]}, "spec.allowedBuckets[0]", "should match"),
        ({"allowedBuckets": ["ok-bucket", "ab"]}, "spec.allowedBuckets[1]", "should match"),
        ({"allowedBuckets": ["dup", "dup"]}, "spec.allowedBuckets[1]", "Duplicate value"),
        ({"storage": {"driver": "nfs"}}, "spec.storage.driver", "Unsupported value"),
        ({"resourceLabels": {"studios.dev/x": "y"}}, "spec.resourceLabels", "reserved"),
        ({"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {}}}]}, "spec.env", "not both"),
        ({"securityProfile": "Privileged"}, "spec.securityProfile", "Unsupported value"),
    ],
)
def test_invalid_compute_environment(
    cluster: Cluster, ns: str, spec: dict[str, Any], field: str, words: str
) -> None:
    message = rejected(cluster, ns, sh.obj("ComputeEnvironment", "ce", spec))
    assert field in message and words in message, message


@pytest.mark.skipif(kubectl_binary() is None, reason="kubectl not available")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_spec(STUDIO, templat={"image": "x"}), "spec.templat"),
        (with_spec(STUDIO, template__imag="x"), "spec.template.imag"),
        (sh.obj("ComputeEnvironment", "ce", {"nodeselector": {"a": "b"}}), "spec.nodeselector"),
        (sh.obj("DataLink", "dl", {"uri": "s3://bucket", "endpoint": "http://x"}), "spec.endpoint"),
    ],
)
def test_unknown_fields_rejected_by_kubectl_strict_validation(
    cluster: Cluster, ns: str, body: dict[str, Any], field: str
) -> None:
    manifest = yaml.safe_dump(body)
    proc = cluster.kubectl(
        "apply", "-n", ns, "--dry-run=server", "--validate=strict", "-f", "-", input=manifest, check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert f'unknown field "{field}"' in proc.stderr, proc.stderr
    # without strict validation the field is pruned (a warning), as with any CRD
    lax = cluster.kubectl(
        "apply", "-n", ns, "--dry-run=server", "--validate=false", "-f", "-", input=manifest
    )
    assert lax.returncode == 0
