"""Studios on the real worker node (hack/node.py): containers that really start, answer, mount
S3 through FUSE, keep their workspace, stop at the end of their lifespan and fail visibly.

Marker `node`. These tests fail (they do not skip) when the node did not come up, with the reason
cluster.py gave; STUDIO_NODE=0 turns the node off on purpose and skips them. Everything goes
through what a user types (`kubectl studio connect`, `kubectl exec`, `kubectl logs`) and the API.
Images come from the node's loopback registry, pulled with an imagePullSecret (htpasswd auth).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import studio_helpers as sh
from kube_helpers import CLUSTER_DIR, Cluster, OperatorProcess, wait_for
from s3_server import S3Server, start_s3_server

pytestmark = pytest.mark.node

PULL_SECRET = "local-registry"
TAINT_KEY = "studios.dev/real-node"
START_TIMEOUT = 180  # a cold JupyterLab pull and start on a busy 2-CPU machine


@pytest.fixture(scope="module")
def node(cluster: Cluster) -> dict[str, Any]:
    entry = cluster.info.get("node")
    if not entry:
        reason = cluster.info.get("node_skipped") or "no node entry in .cluster/cluster.json"
        if os.environ.get("STUDIO_NODE") == "0":
            pytest.skip(f"real node turned off: {reason}")
        pytest.fail(f"the real node did not come up ({reason}); STUDIO_NODE=0 skips the node tests")
    result: dict[str, Any] = entry
    return result


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess, node: dict[str, Any]) -> str:
    auth = base64.b64encode(f"{node['registry_user']}:{node['registry_password']}".encode()).decode()
    config = {"auths": {node["registry"]: {"auth": auth}}}
    cluster.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=PULL_SECRET),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": json.dumps(config)},
        ),
    )
    return namespace


def node_environment(node: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """An environment whose studios run on the real node and pull from its registry."""
    return {
        "nodeSelector": {"studios.dev/node": "real"},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "imagePullSecrets": [{"name": PULL_SECRET}],
        **spec,
    }


def web_template(node: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"image": node["images"]["web"], "port": 8080, **extra}


def session_pod(cluster: Cluster, ns: str, studio: str) -> str:
    name = sh.status(sh.get(cluster, ns, studio)).get("session", {}).get("podName")
    assert name, f"studio {studio} has no session pod"
    return str(name)


def kexec(
    cluster: Cluster, ns: str, pod: str, script: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("exec", "-n", ns, pod, "-c", "studio", "--", "sh", "-c", script, check=check)


def wait_running(cluster: Cluster, ns: str, name: str) -> list[str]:
    """Wait for Running; returns the phases seen on the way, each checked against the pod: a
    studio must not say Running before its container is ready (the tool answers on its port)."""
    seen: list[str] = []

    def check() -> bool:
        body = sh.get(cluster, ns, name)
        st = sh.status(body)
        phase = st.get("phase")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        if phase == "Errored":
            raise AssertionError(f"studio {name} Errored: {st.get('message')}")
        if phase != "Running" or st.get("observedGeneration") != body["metadata"]["generation"]:
            return False
        pod = cluster.core.read_namespaced_pod(st["session"]["podName"], ns)
        ready = {c.name: c.ready for c in pod.status.container_statuses or []}
        assert ready.get("studio") is True, f"studio {name} Running while its container is not ready: {ready}"
        return True

    wait_for(check, timeout=START_TIMEOUT, interval=0.5, message=f"studio {ns}/{name} Running")
    return seen


class Connect:
    """`kubectl studio connect NAME` in the background; `url` is the one it prints."""

    def __init__(self, cluster: Cluster, ns: str, name: str, as_user: str | None = None) -> None:
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # kubectl-studio
        kubectl = shutil.which("kubectl", path=f"{CLUSTER_DIR / 'bin'}:{env['PATH']}")
        assert kubectl, "kubectl not found"
        argv = [kubectl, "studio", "connect", name, "-n", ns]
        if as_user:
            argv = [kubectl, f"--as={as_user}", *argv[1:]]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = ""
        self.output: list[str] = []

    def wait_url(self, timeout: float = 30) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.match(r"(http://127\.0\.0\.1:\d+/)\s*$", line)
            if match:
                self.url = match.group(1)
                return self.url
        raise AssertionError(f"no URL from kubectl studio connect: {''.join(self.output)}")

    def close(self) -> None:
        """Ctrl-C, as a user stops it: the plugin then stops its kubectl port-forward."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ------------------------------------------------------------------------------ 1. JupyterLab


def test_jupyterlab_runs_connects_and_sees_merged_env(
    cluster: Cluster, ns: str, node: dict[str, Any]
) -> None:
    # The restricted Pod Security level is enforced: the default profile must pass it.
    cluster.core.patch_namespace(
        ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    env_vars = [{"name": "TEAM", "value": "genomics"}, {"name": "SHARED", "value": "from-environment"}]
    sh.create_environment(
        cluster,
        ns,
        spec=node_environment(node, env=env_vars, resourceLabels={"team": "genomics", "tier": "x"}),
    )
    sh.create_studio(
        cluster,
        ns,
        "lab",
        template={"image": node["images"]["jupyterlab"], "port": 8888},
        env=[{"name": "SHARED", "value": "from-studio"}, {"name": "RUN", "value": "42"}],
        resourceLabels={"project": "rna"},
        removeResourceLabels=["tier"],
    )
    seen = wait_running(cluster, ns, "lab")
    assert "Starting" in seen and seen[-1] == "Running", seen
    pod = session_pod(cluster, ns, "lab")
    body = cluster.core.read_namespaced_pod(pod, ns)
    assert body.spec.node_name == node["name"]
    assert body.metadata.labels["team"] == "genomics" and body.metadata.labels["project"] == "rna"
    assert "tier" not in body.metadata.labels

    connect = Connect(cluster, ns, "lab")
    try:
        url = connect.wait_url()
        status, payload = wait_for(
            lambda: (lambda r: r if r[0] == 200 else None)(http_get(f"{url}api")),
            timeout=30,
            message="JupyterLab /api through kubectl studio connect",
            ignore=(OSError,),
        )
        assert status == 200 and "version" in json.loads(payload)
        status, page = http_get(f"{url}lab")
        assert status == 200 and b"JupyterLab" in page
    finally:
        connect.close()

    env = dict(
        line.split("=", 1) for line in kexec(cluster, ns, pod, "env").stdout.splitlines() if "=" in line
    )
    assert env["TEAM"] == "genomics" and env["SHARED"] == "from-studio" and env["RUN"] == "42"
    assert env["STUDIO_NAME"] == "lab"
    ids = kexec(cluster, ns, pod, "id -u; id -g").stdout.split()
    assert ids == ["1000", "100"]


# ------------------------------------------------------------------------ 3. S3 through rclone


@pytest.fixture(scope="module")
def node_s3(node: dict[str, Any]) -> Iterator[S3Server]:
    """A moto server on the node IP: pods reach the host there (loopback is their own)."""
    server = start_s3_server(CLUSTER_DIR / "logs" / "node-s3.log", host=node["ip"])
    yield server
    server.stop()


def test_rclone_mounts_read_only_and_read_write(
    cluster: Cluster, ns: str, node: dict[str, Any], node_s3: S3Server
) -> None:
    ro_bucket, rw_bucket = f"genomes-{secrets.token_hex(3)}", f"results-{secrets.token_hex(3)}"
    node_s3.create_bucket(ro_bucket, objects={"hello.txt": b"hello from s3\n"})
    node_s3.create_bucket(rw_bucket)
    cluster.core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s3-creds"), string_data=node_s3.admin.secret_data()
        ),
    )
    for link, bucket in (("genomes", ro_bucket), ("results", rw_bucket)):
        spec = {"uri": f"s3://{bucket}", "endpointURL": node_s3.endpoint, "credentialsSecret": "s3-creds"}
        sh.create(cluster, ns, sh.obj("DataLink", link, spec))
    storage = {
        "driver": "fuse",
        "fuseImage": node["images"]["fuse-rclone"],
        "fuseMounter": "rclone",
        "metadataTTLSeconds": 1,
    }
    sh.create_environment(
        cluster, ns, spec=node_environment(node, storage=storage, allowedBuckets=[rw_bucket])
    )
    sh.create_studio(
        cluster,
        ns,
        "data",
        template=web_template(node),
        mounts=[{"dataLink": "genomes"}, {"dataLink": "results"}],
    )
    wait_running(cluster, ns, "data")
    pod = session_pod(cluster, ns, "data")

    assert kexec(cluster, ns, pod, "cat /workspace/data/genomes/hello.txt").stdout == "hello from s3\n"
    refused = kexec(cluster, ns, pod, "echo x > /workspace/data/genomes/new.txt", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    kexec(cluster, ns, pod, "echo result-42 > /workspace/data/results/out.txt")

    s3 = node_s3.client()

    def landed() -> bytes | None:
        try:
            body: bytes = s3.get_object(Bucket=rw_bucket, Key="out.txt")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return body

    assert wait_for(landed, timeout=60, message="out.txt uploaded by rclone") == b"result-42\n"
    assert "out.txt" not in str(s3.list_objects_v2(Bucket=ro_bucket).get("Contents", []))

    # The studio container cannot see the mounter's keys: not in its environment, not in any
    # process it can see, not in its files.
    secret_key = node_s3.admin.secret_access_key
    probe = kexec(
        cluster,
        ns,
        pod,
        "env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; "
        'grep -rs -l -F "$K" /etc /home /workspace/data/results /tmp 2>/dev/null; true'.replace(
            "$K", secret_key
        ),
    )
    assert secret_key not in probe.stdout.replace(f'"{secret_key}"', "")
    assert node_s3.admin.access_key_id not in probe.stdout
    assert "rclone" not in kexec(cluster, ns, pod, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout


# ------------------------------------------------------------------------- 2. a browser


def test_browser_shows_the_data_link_in_jupyterlab(
    cluster: Cluster, ns: str, node: dict[str, Any], node_s3: S3Server
) -> None:
    """Headless Chromium opens the connected JupyterLab: the file browser lists the mounted link
    (checked in the rendered DOM); the screenshot is kept in .cluster/artifacts/."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium (Debian package) is missing: make node-binaries installs it"
    bucket = f"genomes-{secrets.token_hex(3)}"
    node_s3.create_bucket(bucket, objects={"README.txt": b"reference genomes\n"})
    cluster.core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s3-creds"), string_data=node_s3.admin.secret_data()
        ),
    )
    spec = {"uri": f"s3://{bucket}", "endpointURL": node_s3.endpoint, "credentialsSecret": "s3-creds"}
    sh.create(cluster, ns, sh.obj("DataLink", "genomes", spec))
    storage = {"driver": "fuse", "fuseImage": node["images"]["fuse-rclone"], "fuseMounter": "rclone"}
    sh.create_environment(cluster, ns, spec=node_environment(node, storage=storage))
    sh.create_studio(
        cluster,
        ns,
        "lab",
        template={"image": node["images"]["jupyterlab"], "port": 8888},
        mounts=[{"dataLink": "genomes"}],
    )
    wait_running(cluster, ns, "lab")
    artifacts = CLUSTER_DIR / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    png = artifacts / "jupyterlab-data-link.png"
    png.unlink(missing_ok=True)
    connect = Connect(cluster, ns, "lab")
    try:
        page = f"{connect.wait_url()}lab/tree/data"
        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"]
        browser += ["--virtual-time-budget=30000", f"--user-data-dir={artifacts / 'chromium-profile'}"]
        dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=180)
        subprocess.run([*browser, f"--screenshot={png}", page], capture_output=True, timeout=180, check=True)
    finally:
        connect.close()
    assert "jp-DirListing" in dom.stdout and ">genomes<" in dom.stdout, (
        dom.stdout[-2000:] + dom.stderr[-2000:]
    )
    assert "jp-Launcher" in dom.stdout
    assert png.stat().st_size > 10_000


# ------------------------------------------------------------------- 4. workspace volume, 5. lifespan


def workspace_dir(cluster: Cluster, ns: str, studio: str) -> Path:
    """The host directory behind the studio's workspace claim (local-path-provisioner's PV)."""
    claim = cluster.core.read_namespaced_persistent_volume_claim(f"{studio}-workspace", ns)
    pv = cluster.core.read_persistent_volume(claim.spec.volume_name)
    source = pv.spec.host_path or pv.spec.local
    return Path(source.path)


def workspace(node: dict[str, Any]) -> dict[str, Any]:
    return {"size": "1Gi", "storageClassName": node["storage_class"], "reclaim": "Delete"}


def test_workspace_volume_outlives_the_session(cluster: Cluster, ns: str, node: dict[str, Any]) -> None:
    sh.create_environment(cluster, ns, spec=node_environment(node))
    sh.create_studio(cluster, ns, "ws", template=web_template(node), workspaceVolume=workspace(node))
    wait_running(cluster, ns, "ws")
    first = session_pod(cluster, ns, "ws")
    kexec(cluster, ns, first, "echo notebook-v1 > /workspace/analysis.txt")
    sh.set_state(cluster, ns, "ws", "Stopped")
    sh.wait_phase(cluster, ns, "ws", "Stopped", timeout=60)
    sh.wait_no_pods(cluster, ns, "ws", timeout=60)
    sh.set_state(cluster, ns, "ws", "Running")
    wait_running(cluster, ns, "ws")
    second = session_pod(cluster, ns, "ws")
    assert kexec(cluster, ns, second, "cat /workspace/analysis.txt").stdout == "notebook-v1\n"
    assert (workspace_dir(cluster, ns, "ws") / "analysis.txt").read_text() == "notebook-v1\n"


def test_expired_session_really_stops(cluster: Cluster, ns: str, node: dict[str, Any]) -> None:
    """The container receives SIGTERM (its trap writes to the workspace on the host) and is gone."""
    sh.create_environment(cluster, ns, spec=node_environment(node))
    tool = (
        "trap 'echo got-SIGTERM > /workspace/terminated; exit 0' TERM; python3 -m http.server 8080 & wait $!"
    )
    sh.create_studio(
        cluster,
        ns,
        "exp",
        template=web_template(node, command=["sh", "-c", tool]),
        workspaceVolume=workspace(node),
        lifespan={"policy": "StopAfter", "hours": 1},
    )
    wait_running(cluster, ns, "exp")
    pod = session_pod(cluster, ns, "exp")
    host_dir = workspace_dir(cluster, ns, "exp")
    assert not (host_dir / "terminated").exists()
    # The session started more than its lifespan ago (as the lifespan tests do on kwok).
    sh.patch_status(cluster, ns, "exp", {"session": {"startedAt": sh.ago(hours=2)}})
    sh.wait_phase(cluster, ns, "exp", "Stopped", timeout=90, stopReason="LifespanExpired")
    wait_for(
        lambda: sh.gone(lambda: cluster.core.read_namespaced_pod(pod, ns)),
        timeout=60,
        message=f"pod {pod} gone",
    )
    assert (host_dir / "terminated").read_text() == "got-SIGTERM\n"
    sock = CLUSTER_DIR / "node" / "containerd" / "state" / "containerd.sock"
    left = subprocess.run(
        [
            str(CLUSTER_DIR / "bin" / "crictl"),
            f"--runtime-endpoint=unix://{sock}",
            "ps",
            "-a",
            "-q",
            "--label",
            f"io.kubernetes.pod.name={pod}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == "", f"containers of {pod} still on the node: {left.stdout}"


# ------------------------------------------------------------------------------- 6. failures


def test_missing_image_errors_with_the_pull_error(cluster: Cluster, ns: str, node: dict[str, Any]) -> None:
    sh.create_environment(cluster, ns, spec=node_environment(node))
    missing = f"{node['registry']}/studio/does-not-exist:1"
    sh.create_studio(cluster, ns, "ghost", template={"image": missing, "port": 8080})

    def errored() -> dict[str, Any] | None:
        st = sh.status(sh.get(cluster, ns, "ghost"))
        return st if st.get("phase") == "Errored" else None

    st = wait_for(errored, timeout=START_TIMEOUT, message="studio ghost Errored")
    text = json.dumps(st)
    assert "ImagePull" in text or "ErrImagePull" in text, text
    # The registry says "not found" to an authenticated pull; a pull the kubelet makes before it may
    # read the pull secret (the node authorizer has not seen the pod's binding yet: "Unable to
    # retrieve pull secret") gets "pull access denied, repository does not exist or may require
    # authorization" instead. Either names the image and why it cannot be pulled.
    reason = text.lower()
    assert "does-not-exist" in text and ("not found" in reason or "does not exist" in reason), text


def test_tool_exiting_1_fails_with_readable_logs(cluster: Cluster, ns: str, node: dict[str, Any]) -> None:
    sh.create_environment(cluster, ns, spec=node_environment(node))
    sh.create_studio(
        cluster,
        ns,
        "crash",
        template=web_template(
            node, command=["sh", "-c", "echo tool-starting; echo cannot open port >&2; exit 1"]
        ),
    )
    st = sh.wait_phase(cluster, ns, "crash", "Errored", timeout=START_TIMEOUT, stopReason="Failed")
    assert "exited with code 1" in json.dumps(sh.status(st)), sh.status(st)
    pod = sh.status(st).get("session", {}).get("podName") or sh.pods(cluster, ns, "crash")[0].metadata.name
    logs = cluster.kubectl("logs", "-n", ns, pod, "-c", "studio").stdout
    assert "tool-starting" in logs and "cannot open port" in logs


def test_kwok_does_not_manage_the_real_node(cluster: Cluster, node: dict[str, Any]) -> None:
    body = cluster.core.read_node(node["name"])
    assert body.metadata.annotations.get("kwok.x-k8s.io/node") != "fake"
    assert body.status.node_info.kubelet_version == "v1.36.3"
    assert body.status.node_info.container_runtime_version.startswith("containerd://2.")
    assert any(t.key == TAINT_KEY and t.effect == "NoSchedule" for t in body.spec.taints or [])
    addresses = {a.type: a.address for a in body.status.addresses}
    assert addresses["InternalIP"] == node["ip"]


def port_forward(
    cluster: Cluster, ns: str, pod: str, port: int, as_user: str
) -> tuple[subprocess.Popen[str], str]:
    """`kubectl port-forward` as a user: (process, first line it printed on stdout or stderr)."""
    kubectl = shutil.which("kubectl", path=f"{CLUSTER_DIR / 'bin'}:{os.environ.get('PATH', '')}")
    assert kubectl
    proc = subprocess.Popen(
        [
            kubectl,
            f"--kubeconfig={cluster.kubeconfig}",
            f"--as={as_user}",
            "port-forward",
            "-n",
            ns,
            f"pod/{pod}",
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def test_private_studio_refuses_port_forward_to_others(
    cluster: Cluster, ns: str, node: dict[str, Any], as_user: Any
) -> None:
    from studio_operator import rbac

    for body in rbac.user_cluster_roles():
        api = client.RbacAuthorizationV1Api(cluster.api_client)
        try:
            api.create_cluster_role(body)
        except client.exceptions.ApiException as e:
            if e.status != 409:
                raise
    for user, role in (("alice", rbac.MAINTAIN), ("carol", rbac.CONNECT)):
        client.RbacAuthorizationV1Api(cluster.api_client).create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": f"{user}-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            },
        )
    sh.create_environment(cluster, ns, spec=node_environment(node))
    body = sh.studio_body("priv", template=web_template(node), private=True)
    wait_for(
        lambda: client.CustomObjectsApi(as_user("alice")).create_namespaced_custom_object(
            "studios.dev", "v1alpha1", ns, "studios", body
        ),
        timeout=60,
        message="alice creates her private studio",
        ignore=(client.exceptions.ApiException,),
    )
    wait_running(cluster, ns, "priv")
    pod = session_pod(cluster, ns, "priv")

    def forward_ok() -> str | None:
        proc, first = port_forward(cluster, ns, pod, 8080, "alice")
        try:
            match = re.search(r"127\.0\.0\.1:(\d+)", first)
            if not match:
                return None
            status, _ = http_get(f"http://127.0.0.1:{match.group(1)}/")
            return first if status == 200 else None
        finally:
            proc.terminate()
            proc.wait(10)

    wait_for(forward_ok, timeout=60, message="alice (the creator) port-forwards to her studio")
    proc, first = port_forward(cluster, ns, pod, 8080, "carol")
    out = first + (proc.communicate(timeout=30)[0] or "")
    assert proc.returncode != 0 and "forbidden" in out.lower(), out
