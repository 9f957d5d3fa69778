"""Install paths against the local API server: the Helm chart (lint, template + server-side dry
run, install/upgrade/uninstall), the kustomize bases and samples, and the wheel + console scripts
from a fresh virtualenv (what the Dockerfile does; Docker itself is not on the build machines)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from install_helpers import CHART, docs, helm, helm_binary, kustomize, run, server_dry_run, template
from kube_helpers import ROOT, Cluster, OperatorProcess, wait_for

HELM_OWNER = "meta.helm.sh/release-name"


def retarget(objects: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    """Move a rendered base from namespace `old` to `new` (the test's fresh namespace)."""
    out = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        text = yaml.safe_dump(obj).replace(f"namespace: {old}\n", f"namespace: {new}\n")
        text = text.replace(f".{old}.svc", f".{new}.svc")
        out.append(yaml.safe_load(text))
    return out


def owned_by_someone_else(cluster: Cluster, name: str) -> bool:
    try:
        role = client.RbacAuthorizationV1Api(cluster.api_client).read_cluster_role(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return HELM_OWNER not in (role.metadata.annotations or {})


# ---------------------------------------------------------------- Helm


def test_helm_lint_strict(cluster: Cluster) -> None:
    for values in (
        [],
        ["--set", "replicas=3"],
        ["--set", "webhook.certManager.enabled=true"],
        ["--set", "webhook.enabled=false,metrics.serviceMonitor.enabled=true"],
        [
            "--set",
            "replicas=2,networkPolicy.enabled=true,metrics.prometheusRule.enabled=true,"
            "metrics.grafanaDashboard.enabled=true,operator.watchNamespaces={a,b},operator.logFormat=json,"
            "commonLabels.team=platform",
        ],
    ):
        out = run([helm_binary(), "lint", "--strict", str(CHART), *values])
        assert "0 chart(s) failed" in out


def test_helm_template_passes_server_dry_run(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    rendered = template(cluster, namespace)
    hooks = [o for o in rendered if "helm.sh/hook" in (o["metadata"].get("annotations") or {})]
    objects = [o for o in rendered if o not in hooks]
    # `helm test`: a pod running the selftest, with a ServiceAccount that may only create studios
    assert sorted(o["kind"] for o in hooks) == ["Pod", "Role", "RoleBinding", "ServiceAccount"]
    test_pod = next(o for o in hooks if o["kind"] == "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = test_pod["spec"]["containers"][0]
    assert container["command"] == ["studio-operator"] and container["args"][:2] == [
        "selftest",
        f"--namespace={namespace}",
    ]
    assert (
        f"--metrics-url=http://it-studio-operator-metrics.{namespace}.svc:8090/metrics" in container["args"]
    )
    role = next(o for o in hooks if o["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": ["studios.dev"], "resources": ["studios"], "verbs": ["create"]}]
    server_dry_run(cluster, hooks, tmp_path)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "MutatingWebhookConfiguration",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "Recreate"} and spec["replicas"] == 1
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8089, "protocol": "TCP"} in container["ports"]
    assert "--webhook-mode=cluster" in container["args"] and not any(
        a.startswith("--leader-election") for a in container["args"]
    )
    operator_role = next(
        o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "it-studio-operator"
    )
    for rule in operator_role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field]
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"} >= {
        "studios-view",
        "studios-connect",
        "studios-launch",
        "studios-maintain",
        "studios-admin",
    }
    secret = next(o for o in objects if o["kind"] == "Secret")
    for hook_config in (o for o in objects if o["kind"].endswith("WebhookConfiguration")):
        for hook in hook_config["webhooks"]:
            assert hook["failurePolicy"] == "Fail"
            assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
            assert hook["clientConfig"]["service"]["namespace"] == namespace
    out = server_dry_run(cluster, objects, tmp_path)
    assert "(server dry run)" in out

    # cert-manager, webhooks off and metrics variants also render to valid objects (the
    # cert-manager and ServiceMonitor kinds themselves need CRDs this cluster does not have)
    variant = template(cluster, namespace, "webhook.certManager.enabled=true", "webhook.failurePolicy=Ignore")
    assert {"Certificate", "Issuer"} <= {o["kind"] for o in variant}
    assert all(
        o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == f"{namespace}/it-studio-operator-webhook"
        for o in variant
        if o["kind"].endswith("WebhookConfiguration")
    )
    server_dry_run(cluster, [o for o in variant if o["apiVersion"] != "cert-manager.io/v1"], tmp_path)
    bare = template(cluster, namespace, "webhook.enabled=false", "metrics.enabled=false")
    assert not {"Secret", "Service", "ValidatingWebhookConfiguration"} & {o["kind"] for o in bare}
    assert (
        "--webhook-mode=none"
        in next(o for o in bare if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
    )
    server_dry_run(cluster, bare, tmp_path)


def test_helm_template_s3_trust_and_probe_address(cluster: Cluster, namespace: str) -> None:
    """The chart's S3 trust values become the operator's flags, and the probes listen on the pod IP."""

    def args(*sets: str) -> list[str]:
        objects = template(cluster, namespace, *sets)
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        result: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return result

    default = args()
    assert "--probe-address=0.0.0.0" in default
    assert not [a for a in default if a.startswith("--s3-")]  # AWS only, no shared bucket
    configured = args(
        "s3.allowedEndpoints={https://minio.corp:9000,https://*.s3.example.com}",
        "s3.sharedBuckets.team-a={team-a-*,reference}",
        "s3.allowedNetworks={10.20.0.0/16}",
        "s3.deniedNetworks={52.0.0.0/8}",
    )
    assert [a for a in configured if a.startswith("--s3-")] == [
        "--s3-allowed-endpoint=https://minio.corp:9000",
        "--s3-allowed-endpoint=https://*.s3.example.com",
        "--s3-shared-buckets=team-a=team-a-*,reference",
        "--s3-allowed-network=10.20.0.0/16",
        "--s3-denied-network=52.0.0.0/8",
    ]
    with pytest.raises(AssertionError, match="allowedEndpoints"):
        args("s3.allowedEndpoints={ftp://x}")  # values.schema.json


def test_kustomize_base_listens_for_the_kubelet() -> None:
    deployment = next(o for o in kustomize(ROOT / "manifests" / "default") if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--probe-address=0.0.0.0" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STUDIO_S3_SHARED_BUCKETS"] == "" and env["STUDIO_S3_ALLOWED_ENDPOINTS"] == ""


def test_helm_template_high_availability(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    objects = template(cluster, namespace, "replicas=2")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-election=it-studio-operator" in container["args"]
    assert "--lease-duration=8" in container["args"]
    assert not {"CustomResourceDefinition", "ClusterKopfPeering"} & {o["kind"] for o in objects}
    role = next(
        o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "it-studio-operator"
    )
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    } in (role["rules"])
    server_dry_run(cluster, objects, tmp_path)
    named = template(
        cluster,
        namespace,
        "replicas=2",
        "leaderElection.leaseName=ops",
        "leaderElection.leaseDurationSeconds=12",
    )
    container = next(o for o in named if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert "--leader-election=ops" in container["args"] and "--lease-duration=12" in container["args"]


def test_helm_values_of_a_well_kept_chart(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """Issue 15 item 8: the values render to valid objects (server-side dry run)."""
    other = f"{namespace}-b"
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "replicas": 2,
                "commonLabels": {"team": "platform"},
                "operator": {
                    "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
                    "watchNamespaces": [namespace, other],
                    "logFormat": "json",
                    "env": [{"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/s3/ca.crt"}],
                },
                "extraVolumes": [{"name": "s3-ca", "configMap": {"name": "s3-ca"}}],
                "extraVolumeMounts": [{"name": "s3-ca", "mountPath": "/etc/ssl/s3", "readOnly": True}],
                "networkPolicy": {"enabled": True},
                "startupProbe": {"failureThreshold": 30, "periodSeconds": 5, "timeoutSeconds": 5},
                "metrics": {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}},
            }
        )
    )
    objects = docs(
        helm(cluster, "template", "it", str(CHART), "-n", namespace, "-f", str(values), "--skip-tests")
    )
    assert all(
        o["metadata"]["labels"].get("team") == "platform"
        for o in objects
        if o["kind"] != "CustomResourceDefinition"
    )
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert {"name": "s3-ca", "mountPath": "/etc/ssl/s3", "readOnly": True} in container["volumeMounts"]
    assert {"name": "s3-ca", "configMap": {"name": "s3-ca"}} in pod["volumes"]
    assert {f"--namespace={namespace}", f"--namespace={other}", "--log-format=json"} <= set(container["args"])
    assert (
        container["startupProbe"]["failureThreshold"] == 30
        and container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    )
    # namespaced RBAC: the operator's role bound in the watched namespaces (and the Lease's), the
    # cluster-scoped rules alone cluster-wide
    bindings = {(o["kind"], o["metadata"].get("namespace")) for o in objects if o["kind"].endswith("Binding")}
    assert ("RoleBinding", namespace) in bindings and ("RoleBinding", other) in bindings
    crb = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in crb] == ["it-studio-operator-cluster-scope"]
    scope = next(
        o
        for o in objects
        if o["metadata"]["name"] == "it-studio-operator-cluster-scope" and o["kind"] == "ClusterRole"
    )
    assert "pods" not in {r for rule in scope["rules"] for r in rule["resources"]}
    assert {"persistentvolumes", "subjectaccessreviews"} <= {
        r for rule in scope["rules"] for r in rule["resources"]
    }
    pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {
        "webhook",
        "metrics",
        "health",
    }
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"StudioOperatorDown", "StudioOperatorReconcileErrors", "StudioOperatorExpiriesFailing"} <= alerts
    dashboard = next(o for o in objects if o["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["studio-operator.json"])["panels"]
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        server_dry_run(
            cluster, [o for o in objects if o["apiVersion"] != "monitoring.coreos.com/v1"], tmp_path
        )
    finally:
        cluster.core.delete_namespace(other)
    # NOTES: concrete commands, no placeholders
    notes = helm(
        cluster,
        "install",
        "it",
        str(CHART),
        "-n",
        namespace,
        "--dry-run=client",
        "--set",
        "replicas=2,rbac.create=false,rbac.userRoles=false",
    )
    notes = notes.split("NOTES:", 1)[1]
    assert "helm test it" in notes and "<" not in notes and ">" not in notes


def test_helm_install_upgrade_uninstall(cluster: Cluster, namespace: str) -> None:
    release = f"it-{secrets.token_hex(3)}"
    fullname = f"{release}-studio-operator"
    # The studios-* roles are cluster-wide; when other tests created them outside Helm, Helm
    # would refuse to adopt them, so this release then leaves them out.
    user_roles = not owned_by_someone_else(cluster, "studios-view")
    sets = [
        # only objects in this test's namespace go through the (not really running) webhook
        f"webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name={namespace}",
        f"rbac.userRoles={str(user_roles).lower()}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    # a studio's workspace claim (as the operator makes it: owned by the studio) must outlive
    # the install and the uninstall (Helm never deletes its crds/, so studios stay)
    studio = cluster.custom.create_namespaced_custom_object(
        "studios.dev",
        "v1alpha1",
        namespace,
        "studios",
        {
            "apiVersion": "studios.dev/v1alpha1",
            "kind": "Studio",
            "metadata": {"name": "keeper"},
            "spec": {"computeEnvironment": "none", "template": {"image": "img"}, "state": "Stopped"},
        },
    )
    cluster.core.create_namespaced_persistent_volume_claim(
        namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(
                name="keeper-workspace",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="studios.dev/v1alpha1",
                        kind="Studio",
                        name="keeper",
                        uid=studio["metadata"]["uid"],
                    )
                ],
            ),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    helm(cluster, "install", release, str(CHART), "-n", namespace, *args)
    try:
        apps = client.AppsV1Api(cluster.api_client)
        core, rbac_api = cluster.core, client.RbacAuthorizationV1Api(cluster.api_client)
        admission = client.AdmissionregistrationV1Api(cluster.api_client)
        deployment = apps.read_namespaced_deployment(fullname, namespace)
        assert deployment.spec.template.spec.service_account_name == fullname
        core.read_namespaced_service_account(fullname, namespace)
        core.read_namespaced_service(f"{fullname}-webhook", namespace)
        core.read_namespaced_service(f"{fullname}-metrics", namespace)
        secret = core.read_namespaced_secret(f"{fullname}-webhook-tls", namespace)
        assert set(secret.data) == {"tls.crt", "tls.key", "ca.crt"}
        rbac_api.read_cluster_role(fullname)
        binding = rbac_api.read_cluster_role_binding(fullname)
        assert binding.subjects[0].name == fullname and binding.subjects[0].namespace == namespace
        if user_roles:
            rbac_api.read_cluster_role("studios-admin")
        validating = admission.read_validating_webhook_configuration(fullname)
        mutating = admission.read_mutating_webhook_configuration(fullname)
        paths = sorted(h.client_config.service.path for h in [*validating.webhooks, *mutating.webhooks])
        assert paths == [
            "/mutate-studio",
            "/validate-computeenvironment",
            "/validate-datalink",
            "/validate-studio",
            "/validate-workspacesettings",
        ]
        first_ca = base64.b64decode(secret.data["ca.crt"])
        assert base64.b64decode(validating.webhooks[0].client_config.ca_bundle) == first_ca
        # the controller-manager makes a ReplicaSet and a pod (kwok "runs" it: no real container)
        wait_for(
            lambda: apps.read_namespaced_deployment(fullname, namespace).status.replicas,
            timeout=60,
            message="the Deployment's ReplicaSet to create a pod",
        )

        # a no-op upgrade re-uses the certificate (lookup): nothing changes, no pod rolls
        helm(cluster, "upgrade", release, str(CHART), "-n", namespace, *args)
        same = core.read_namespaced_secret(f"{fullname}-webhook-tls", namespace)
        assert same.data == secret.data
        assert (
            apps.read_namespaced_deployment(fullname, namespace).spec.template.metadata.annotations
            == deployment.spec.template.metadata.annotations
        )
        # within renewBeforeDays of the end: a new certificate; the previous CA stays in the bundle
        helm(
            cluster,
            "upgrade",
            release,
            str(CHART),
            "-n",
            namespace,
            *args,
            "--set",
            "webhook.renewBeforeDays=1000",
        )
        rotated = core.read_namespaced_secret(f"{fullname}-webhook-tls", namespace)
        new_ca = base64.b64decode(rotated.data["ca.crt"])
        assert new_ca != first_ca
        bundle = base64.b64decode(
            admission.read_mutating_webhook_configuration(fullname).webhooks[0].client_config.ca_bundle
        )
        assert new_ca.strip() in bundle and first_ca.strip() in bundle
        checksum = apps.read_namespaced_deployment(fullname, namespace).spec.template.metadata.annotations
        assert (
            checksum["checksum/webhook-tls"]
            != deployment.spec.template.metadata.annotations["checksum/webhook-tls"]
        )

        # high availability: leader election with a Lease in the release namespace
        helm(cluster, "upgrade", release, str(CHART), "-n", namespace, *args, "--set", "replicas=2")
        ha = apps.read_namespaced_deployment(fullname, namespace)
        assert ha.spec.replicas == 2 and ha.spec.strategy.type == "RollingUpdate"
        assert f"--leader-election={fullname}" in ha.spec.template.spec.containers[0].args
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout=120s")

    def gone(read: Any, *a: Any) -> bool:
        try:
            read(*a)
        except ApiException as e:
            return e.status == 404
        return False

    assert gone(
        client.AdmissionregistrationV1Api(cluster.api_client).read_validating_webhook_configuration, fullname
    )
    assert gone(client.RbacAuthorizationV1Api(cluster.api_client).read_cluster_role, fullname)
    assert gone(client.AppsV1Api(cluster.api_client).read_namespaced_deployment, fullname, namespace)
    client.ApiextensionsV1Api(cluster.api_client).read_custom_resource_definition("studios.studios.dev")
    cluster.custom.get_namespaced_custom_object("studios.dev", "v1alpha1", namespace, "studios", "keeper")
    cluster.core.read_namespaced_persistent_volume_claim("keeper-workspace", namespace)


# ---------------------------------------------------------------- kustomize


def test_kustomize_default_passes_server_dry_run(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    objects = kustomize(ROOT / "manifests" / "default")
    kinds = {o["kind"] for o in objects}
    assert kinds == {  # no CRDs: a separate step (manifests/crds) that uninstalling never deletes
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "Deployment",
        "Service",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
    assert "studio-operator-webhooks" not in {o["metadata"]["name"] for o in objects}
    namespaced = [o for o in objects if o["kind"] in ("Deployment", "Service", "ServiceAccount")]
    assert all(o["metadata"]["namespace"] == "studio-system" for o in namespaced)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["webhook-tls"]  # the operator writes its own certificate there
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "studio-operator:0.1.0"
    out = server_dry_run(cluster, retarget(objects, "studio-system", namespace), tmp_path)
    assert "deployment.apps/studio-operator serverside-applied (server dry run)" in out
    cert_manager = kustomize(ROOT / "manifests" / "cert-manager")
    assert {"Certificate", "Issuer"} <= {o["kind"] for o in cert_manager}
    managed = next(o for o in cert_manager if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert not [a for a in managed["containers"][0]["args"] if a.startswith("--webhook-cert-secret")]
    cm_volumes = {v["name"]: v for v in managed["volumes"]}
    assert cm_volumes["webhook-tls"]["secret"]["secretName"] == "studio-operator-webhook-tls"
    assert not [o for o in cert_manager if o["metadata"]["name"] == "studio-operator-webhook-cert"]


def test_samples_pass_server_dry_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    objects = kustomize(ROOT / "manifests" / "samples")
    kinds = [o["kind"] for o in objects]
    assert "ComputeEnvironment" in kinds and kinds.count("Studio") >= 3
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    out = server_dry_run(cluster, objects, tmp_path)
    assert out.count("(server dry run)") == len(objects)


# ---------------------------------------------------------------- wheel and image steps


@pytest.mark.timeout(900)
def test_wheel_installs_into_a_fresh_virtualenv(cluster: Cluster) -> None:
    """Slow-ish (builds the wheel, installs the pinned dependencies): the Dockerfile's steps."""
    with tempfile.TemporaryDirectory(prefix="studio-wheel-") as tmp:
        work = Path(tmp)
        src = work / "src"
        shutil.copytree(
            ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(src)], timeout=600)
        wheels = list((work / "dist").glob("studio_operator-*.whl"))
        assert len(wheels) == 1, wheels
        import zipfile

        names = zipfile.ZipFile(wheels[0]).namelist()
        assert "studio_operator/data/argocd-health.lua" in names and "studio_operator/cli/main.py" in names

        venv.EnvBuilder(with_pip=True).create(work / "venv")
        bin_dir = work / "venv" / "bin"
        pip = [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ]
        run([*pip, "-r", str(ROOT / "requirements.lock")], timeout=600)
        run([*pip, str(wheels[0])], timeout=300)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["KUBECONFIG"] = str(cluster.kubeconfig)
        assert "run" in run([str(bin_dir / "studio-operator"), "--help"], env=env, cwd=work)
        assert "--webhook-mode" in run([str(bin_dir / "studio-operator"), "run", "--help"], env=env, cwd=work)
        assert "describe" in run([str(bin_dir / "kubectl-studio"), "--help"], env=env, cwd=work)
        # every runtime import resolves from the pinned set (what `pip install --no-deps` in the image gets)
        run(
            [
                str(bin_dir / "python"),
                "-c",
                "import studio_operator.__main__ as m; import studio_operator.handlers.lifecycle, "
                "studio_operator.handlers.admission, studio_operator.cli.main",
            ],
            env=env,
            cwd=work,
        )
        run([str(bin_dir / "kubectl-studio"), "ls", "-A"], env=env, cwd=work)
        run([str(bin_dir / "python"), "-m", "pip", "check"], env=env, cwd=work)
