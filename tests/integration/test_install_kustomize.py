"""`kubectl apply -k manifests/default` then the samples, with nothing done by hand (issue 15 item
6), and `kubectl delete -k manifests/default` keeps the CRDs, studios and workspace data (item 7).

The base is applied as rendered, moved into this test's namespace; three test-only changes make
it runnable here, where pods do not really run (kwok): the Deployment gets 0 replicas and the
operator runs from the checkout with the Deployment's own arguments and the operator
ServiceAccount's token (what it has in-cluster); the webhook Service loses its selector and gets
an Endpoints object at this machine's address (a Service in front of a process outside the
cluster; the API server routes webhook calls to endpoints, `--enable-aggregator-routing`); the
webhooks only see this test's namespaces. The certificate, its Secret and the caBundle are the
operator's own work.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from install_helpers import kubectl, kustomize
from kube_helpers import ROOT, Cluster, OperatorProcess, service_account_kubeconfig, wait_for

BASE_NS = "studio-system"
PORT_ARGS = ("--liveness-port", "--metrics-port", "--webhook-port", "--cert-dir")


def machine_address() -> str:
    """A non-loopback address of this machine (the API server rejects loopback endpoints)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.fail("no non-loopback IPv4 address on this machine for the webhook Endpoints")
    return address


def rendered(namespace: str, hooked: list[str]) -> list[dict[str, Any]]:
    out = []
    for obj in kustomize(ROOT / "manifests" / "default"):
        if obj["kind"] == "Namespace":
            continue
        text = yaml.safe_dump(obj).replace(f"namespace: {BASE_NS}\n", f"namespace: {namespace}\n")
        text = text.replace(f".{BASE_NS}.svc", f".{namespace}.svc")
        obj = yaml.safe_load(text)
        if obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 0
        if obj["kind"] == "Service" and obj["metadata"]["name"] == "studio-operator-webhook":
            del obj["spec"]["selector"]
        if obj["kind"].endswith("WebhookConfiguration"):
            selector = {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": hooked}
                ]
            }
            for hook in obj["webhooks"]:
                hook["namespaceSelector"] = selector
        out.append(obj)
    return out


def ca_bundles(cluster: Cluster) -> set[bytes]:
    api = client.AdmissionregistrationV1Api(cluster.api_client)
    hooks = [
        *api.read_mutating_webhook_configuration("studio-operator").webhooks,
        *api.read_validating_webhook_configuration("studio-operator").webhooks,
    ]
    return {base64.b64decode(h.client_config.ca_bundle or "") for h in hooks}


@pytest.mark.timeout(300)
def test_apply_k_default_then_samples_then_delete_k_keeps_data(
    cluster: Cluster,
    namespace: str,
    operator_factory: Any,
    tmp_path: Path,
) -> None:
    samples_ns = f"{namespace}-samples"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=samples_ns)))
    objects = rendered(namespace, [namespace, samples_ns])
    assert "CustomResourceDefinition" not in {o["kind"] for o in objects}, "CRDs are a separate step"
    manifest = tmp_path / "default.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    try:
        kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(manifest))
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--webhook-cert-secret=studio-operator-webhook-tls" in args
        kubeconfig = service_account_kubeconfig(
            cluster, namespace, "studio-operator", tmp_path / "sa-kubeconfig"
        )
        op: OperatorProcess = operator_factory(
            *[a for a in args if not a.startswith(PORT_ARGS)],
            f"--cert-dir={tmp_path / 'tls'}",
            env={"POD_NAMESPACE": namespace},
            kubeconfig=kubeconfig,
        )
        # the operator made the certificate, stored it and put its CA into both configurations
        secret = wait_for(
            lambda: _secret(cluster, namespace), timeout=30, message="the operator's webhook Secret"
        )
        assert secret.type == "kubernetes.io/tls" and set(secret.data) == {
            "tls.crt",
            "tls.key",
            "ca.crt",
            "ca.key",
        }
        ca = base64.b64decode(secret.data["ca.crt"])
        wait_for(lambda: ca_bundles(cluster) == {ca}, timeout=30, message="caBundle injected")
        cluster.core.create_namespaced_endpoints(
            namespace,
            client.V1Endpoints(
                metadata=client.V1ObjectMeta(name="studio-operator-webhook"),
                subsets=[
                    client.V1EndpointSubset(
                        addresses=[client.V1EndpointAddress(ip=machine_address())],
                        ports=[client.CoreV1EndpointPort(name="https", port=op.webhook_port)],
                    )
                ],
            ),
        )

        # the samples, as the README says (kubectl apply -k), go through the webhooks
        out = wait_for(
            lambda: _try_apply_samples(cluster, samples_ns), timeout=60, message="samples admitted"
        )
        assert "studio.studios.dev/jupyterlab" in out or "studios.dev" in out, out
        studios = cluster.custom.list_namespaced_custom_object(
            "studios.dev", "v1alpha1", samples_ns, "studios"
        )
        assert studios["items"]
        for studio in studios["items"]:  # stamped by the mutating webhook of our operator
            assert studio["metadata"]["annotations"]["studios.dev/created-by"]
        # what the chart's `helm test` pod runs, against this installation
        selftest = subprocess.run(
            [
                sys.executable,
                "-m",
                "studio_operator",
                "selftest",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--namespace={samples_ns}",
                f"--metrics-url={op.metrics_url}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert selftest.returncode == 0, selftest.stdout + selftest.stderr
        assert [line[:4] for line in selftest.stdout.splitlines()] == ["ok  ", "ok  "], selftest.stdout
        broken = subprocess.run(
            [
                sys.executable,
                "-m",
                "studio_operator",
                "selftest",
                "--no-webhooks",
                "--metrics-url=http://127.0.0.1:1/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert broken.returncode == 1 and "FAIL operator answers" in broken.stdout
        # a studio with a workspace volume gets its claim (the operator reconciles in-cluster-like)
        sh.create_environment(cluster, samples_ns, "kwok")
        sh.create_studio(cluster, samples_ns, "keeper", environment="kwok", workspaceVolume={"size": "1Gi"})
        wait_for(
            lambda: _claim(cluster, samples_ns, "keeper"), timeout=60, message="workspace claim of keeper"
        )
    finally:
        # uninstall as `kubectl delete -k manifests/default` would (the namespace aside: the
        # test's; and the studios-* user roles, which other tests of this session use)
        uninstall = tmp_path / "uninstall.yaml"
        uninstall.write_text(
            yaml.safe_dump_all([o for o in objects if not o["metadata"]["name"].startswith("studios-")])
        )
        kubectl(cluster, "delete", "--ignore-not-found", "--wait=false", "-f", str(uninstall))
    # CRDs, studios and the workspace claim are all still there
    client.ApiextensionsV1Api(cluster.api_client).read_custom_resource_definition("studios.studios.dev")
    cluster.custom.get_namespaced_custom_object("studios.dev", "v1alpha1", samples_ns, "studios", "keeper")
    assert _claim(cluster, samples_ns, "keeper") is not None
    cluster.core.delete_namespace(samples_ns, propagation_policy="Background")


def _secret(cluster: Cluster, namespace: str) -> client.V1Secret | None:
    try:
        return cluster.core.read_namespaced_secret("studio-operator-webhook-tls", namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _claim(cluster: Cluster, namespace: str, studio: str) -> client.V1PersistentVolumeClaim | None:
    claims = cluster.core.list_namespaced_persistent_volume_claim(
        namespace, label_selector=f"studios.dev/studio={studio}"
    )
    return claims.items[0] if claims.items else None


def _try_apply_samples(cluster: Cluster, namespace: str) -> str | None:
    try:
        return kubectl(cluster, "apply", "-n", namespace, "-k", str(ROOT / "manifests" / "samples"))
    except AssertionError:
        return None
