"""`kubectl studio` (console script kubectl-studio) against the local API server and operator.

Also runs the shipped Argo CD health check on the live objects (Running, Stopped, Stalled).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

import studio_helpers as sh
from argocd_health import health
from kube_helpers import Cluster, OperatorProcess, service_account_kubeconfig, wait_for
from studio_operator import rbac

SCRIPT = Path(sys.executable).parent / "kubectl-studio"


def cli(
    cluster: Cluster, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), **(env or {})}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def kstatus(body: dict[str, Any]) -> str:
    """The kstatus verdict (kubernetes-sigs/cli-utils pkg/kstatus) from generation and conditions."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return "InProgress"
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    for c in conditions.values():  # every condition also says which generation it describes
        assert c.get("observedGeneration") == body["metadata"]["generation"], c
    if conditions.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if conditions.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    ready = conditions.get("Ready")
    return "Current" if ready is None or ready["status"] == "True" else "InProgress"


def running(cluster: Cluster, ns: str, name: str, timeout: float = 60) -> dict[str, Any]:
    return sh.wait_phase(cluster, ns, name, "Running", timeout=timeout)


def test_create_ls_describe_extend_stop_start(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    ns = namespace
    sh.create_environment(
        cluster,
        ns,
        "env",
        {
            "env": [
                {"name": "A", "value": "from-env"},
                {"name": "B", "value": "b"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            ],
            "resourceLabels": {"team": "genomics", "cost-center": "cc"},
        },
    )
    out = ok(
        cli(
            cluster,
            "create",
            "s1",
            "-n",
            ns,
            "--image",
            sh.IMAGE,
            "--env-name",
            "env",
            "--port",
            "8888",
            "--label",
            "project=rna",
            "--var",
            "A=mine",
            "--hours",
            "4",
        )
    )
    assert 's1" starting' in out
    ok(
        cli(
            cluster,
            "-n",
            ns,
            "create",
            "s2",
            "--image",
            sh.IMAGE,
            "--env-name",
            "env",
            "--no-start",
            "--private",
        )
    )
    body = running(cluster, ns, "s1")
    # stamped by the admission webhook (`<none>` in ls when a studio has no recorded creator)
    creator = (body["metadata"].get("annotations") or {}).get("studios.dev/created-by", "<none>")
    sh.wait_phase(cluster, ns, "s2", "Stopped", stopReason="NeverStarted")

    # ls: name, phase, ready, reason, expiry, private, creator
    lines = ok(cli(cluster, "ls", "-n", ns)).splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "READY", "REASON", "EXPIRES", "PRIVATE", "CREATOR", "AGE"]
    row1 = lines[1].split()
    assert row1[:4] == ["s1", "Running", "True", "SessionRunning"]
    assert row1[4] == "in" and row1[5].startswith("3h") and row1[6] == "false"
    assert row1[7] == creator
    assert lines[2].split()[:6] == ["s2", "Stopped", "True", "NeverStarted", "-", "true"]
    wide = ok(cli(cluster, "ls", "-n", ns, "-o", "wide")).splitlines()
    assert wide[0].split()[-1] == "MESSAGE" and wide[2].endswith(
        "set spec.state to Running to start a session"
    )
    everywhere = ok(cli(cluster, "ls", "-A"))
    assert any(line.split()[:2] == [ns, "s1"] for line in everywhere.splitlines())
    names = ok(cli(cluster, "ls", "-n", ns, "-o", "name")).split()
    assert names == ["studio/s1", "studio/s2"]

    # describe: effective values with their sources, references instead of secret values
    doc = json.loads(ok(cli(cluster, "describe", "s1", "-n", ns, "-o", "json")))
    env = {e["name"]: e for e in doc["env"]}
    assert (env["A"]["value"], env["A"]["source"], env["A"]["overrides"]) == (
        "mine",
        "studio",
        ["environment"],
    )
    assert (env["B"]["source"], env["STUDIO_NAME"]["source"]) == ("environment", "operator")
    assert env["TOKEN"]["value"] == "<secret api key token>"
    labels = {lb["key"]: lb["source"] for lb in doc["labels"]}
    assert labels["team"] == "environment" and labels["project"] == "studio"
    assert labels["studios.dev/studio"] == "operator"
    pod = sh.pods(cluster, ns, "s1")[0]
    assert pod.metadata.labels["project"] == "rna" and pod.metadata.labels["team"] == "genomics"
    pod_env = {e.name: e for e in pod.spec.containers[0].env}
    assert [e["name"] for e in doc["env"]] == [e.name for e in pod.spec.containers[0].env]
    assert pod_env["A"].value == "mine"
    text = ok(cli(cluster, "describe", "s1", "-n", ns))
    assert "studio (overrides environment)" in text and "<secret api key token>" in text

    # extend: the session's total lifespan; waits for the operator's new expiry
    out = ok(cli(cluster, "extend", "s1", "6", "-n", ns))
    assert "session lifespan 6 hours, expires at" in out
    body = sh.get(cluster, ns, "s1")
    assert body["metadata"]["annotations"]["studios.dev/session-lifespan-hours"] == "6"
    assert body["status"]["session"]["lifespanHours"] == 6
    assert body["status"]["session"]["expiresAt"] in out
    assert "lifespan set to 7 hours" in ok(cli(cluster, "extend", "s1", "7", "-n", ns, "--no-wait"))
    refused = cli(cluster, "extend", "s2", "3", "-n", ns)
    assert refused.returncode == 1 and "no running session" in refused.stderr

    # stop, then start again
    assert 's1" stopping' in ok(cli(cluster, "stop", "s1", "-n", ns))
    sh.wait_phase(cluster, ns, "s1", "Stopped", stopReason="UserRequested")
    assert "studios.dev/session-lifespan-hours" not in (
        sh.get(cluster, ns, "s1")["metadata"].get("annotations") or {}
    )
    ok(cli(cluster, "start", "s1", "-n", ns))
    running(cluster, ns, "s1")

    # a session that ended on its own (here: lifespan expired) waits for `start`, which restarts it
    session = sh.get(cluster, ns, "s1")["status"]["session"]
    sh.patch_status(cluster, ns, "s1", {"session": {**session, "startedAt": sh.ago(hours=5)}})
    sh.wait_phase(cluster, ns, "s1", "Stopped", stopReason="LifespanExpired", timeout=60)
    ok(cli(cluster, "start", "s1", "-n", ns))
    body = running(cluster, ns, "s1")
    assert body["metadata"]["annotations"].get("studios.dev/restart")

    # kstatus and Argo CD health on live objects
    assert kstatus(sh.get(cluster, ns, "s1")) == "Current"
    assert kstatus(sh.get(cluster, ns, "s2")) == "Current"
    assert health(sh.get(cluster, ns, "s1"))["status"] == "Healthy"
    assert health(sh.get(cluster, ns, "s2"))["status"] == "Healthy"  # stopped as declared
    ok(cli(cluster, "create", "s3", "-n", ns, "--image", sh.IMAGE, "--env-name", "nowhere"))

    def stalled_s3() -> dict[str, Any] | None:
        body = sh.get(cluster, ns, "s3")
        return body if sh.cond_true(body, "Stalled") else None

    stalled = wait_for(stalled_s3, timeout=30, message="s3 Stalled (missing environment)")
    assert kstatus(stalled) == "Failed"
    verdict = health(stalled)
    assert verdict["status"] == "Degraded" and "nowhere" in verdict["message"]


def test_connect_runs_port_forward(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    ns = namespace
    sh.create_environment(cluster, ns, "env")
    ok(cli(cluster, "create", "s1", "-n", ns, "--image", sh.IMAGE, "--env-name", "env", "--port", "8888"))
    body = running(cluster, ns, "s1")
    pod = body["status"]["session"]["podName"]

    not_running = cli(
        cluster, "-n", ns, "create", "idle", "--image", sh.IMAGE, "--env-name", "env", "--no-start"
    )
    ok(not_running)
    sh.wait_phase(cluster, ns, "idle", "Stopped")
    refused = cli(cluster, "connect", "idle", "-n", ns)
    assert refused.returncode == 1 and "not running" in refused.stderr

    # kwok pods have no kubelet to forward to: a stand-in kubectl records its arguments and
    # answers as `kubectl port-forward` does.
    record = tmp_path / "argv.json"
    fake = tmp_path / "kubectl"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "local, remote = sys.argv[-1].split(':')\n"
        "print(f'Forwarding from 127.0.0.1:{local} -> {remote}', flush=True)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = ok(cli(cluster, "connect", "s1", "-n", ns, "--local-port", "18888", env={"KUBECTL": str(fake)}))
    assert "http://127.0.0.1:18888/" in out
    argv = json.loads(record.read_text())
    assert argv[-3:] == ["--address=127.0.0.1", f"pod/{pod}", "18888:8888"]
    assert ["-n", ns] == argv[argv.index("port-forward") + 1 : argv.index("port-forward") + 3]


def test_errors_and_exit_codes(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    missing = cli(cluster, "describe", "nope", "-n", namespace)
    assert missing.returncode == 1 and 'studio "nope" in namespace' in missing.stderr
    assert cli(cluster, "start", "nope", "-n", namespace).returncode == 1
    assert cli(cluster, "extend", "nope", "500", "-n", namespace).returncode == 1
    bad = tmp_path / "kubeconfig"
    bad.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u, namespace: n}}]\n"
        "current-context: c\n"
    )
    unreachable = cli(cluster, "ls", env={"KUBECONFIG": str(bad)})
    assert unreachable.returncode == 1 and "cannot reach the API server" in unreachable.stderr
    no_context = cli(cluster, "ls", "--context", "nope")
    assert no_context.returncode == 1 and "nope" in no_context.stderr
    duplicate = cli(
        cluster, "create", "dup", "-n", namespace, "--image", "x", "--env-name", "e", "--no-start"
    )
    ok(duplicate)
    again = cli(cluster, "create", "dup", "-n", namespace, "--image", "x", "--env-name", "e", "--no-start")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_create_with_a_typo_warns_and_wait_reports_the_stall(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """Issue 15 item 11: the webhook's warning reaches the user, `--wait` exits 1 with the reason.
    The user is a ServiceAccount bound to studios-maintain (the webhook does not warn the
    operator's own identity, which the admin kubeconfig shares here)."""
    sh.create_environment(cluster, namespace, "aws-eu")
    rbac_api = client.RbacAuthorizationV1Api(cluster.api_client)
    for role in rbac.user_cluster_roles():
        try:
            rbac_api.create_cluster_role(role)
        except ApiException as e:
            if e.status != 409:
                raise
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": "typist"}})
    rbac_api.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "typist"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "studios-maintain",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "typist", "namespace": namespace}],
        },
    )
    user = {"KUBECONFIG": str(service_account_kubeconfig(cluster, namespace, "typist", tmp_path / "typist"))}
    typo = cli(
        cluster,
        "create",
        "typo",
        "-n",
        namespace,
        "--image",
        "img",
        "--env-name",
        "aws-ue",
        "--wait",
        "--timeout",
        "60",
        env=user,
    )
    assert typo.returncode == 1, typo
    assert "Warning:" in typo.stderr and "aws-ue" in typo.stderr
    assert 'studio "typo" cannot start: EnvironmentNotFound' in typo.stderr
    fine = cli(
        cluster,
        "create",
        "fine",
        "-n",
        namespace,
        "--image",
        "img",
        "--env-name",
        "aws-eu",
        "--no-start",
        "--wait",
        "-o",
        "name",
        env=user,
    )
    assert ok(fine) == "studio/fine\n" and "Warning" not in fine.stderr
    wide = ok(cli(cluster, "ls", "-n", namespace, "-o", "wide"))
    assert wide.splitlines()[0].split()[-3:] == ["IMAGE", "ENVIRONMENT", "MESSAGE"]
    assert "aws-ue" in wide


def test_kubectl_completes_the_plugin(cluster: Cluster, namespace: str) -> None:
    """kubectl (>= 1.26) runs kubectl_complete-studio for `kubectl studio <TAB>` (issue 15 item 12)."""
    from kube_helpers import kubectl_binary

    kubectl = kubectl_binary()
    assert kubectl, "kubectl not found"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{SCRIPT.parent}:{os.environ['PATH']}",
    }
    sh.create_studio(cluster, namespace, "lab", state="Stopped")
    words = subprocess.run(
        [kubectl, "__complete", "studio", "st"], capture_output=True, text=True, env=env, timeout=60
    ).stdout.split()
    assert words[:2] == ["start", "stop"] and words[2] == ":4"
    names = subprocess.run(
        [kubectl, "__complete", "studio", "start", "-n", namespace, "l"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout.split()
    assert names == ["lab", ":4"]
