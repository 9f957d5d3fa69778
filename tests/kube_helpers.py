"""Helpers shared by the tests that talk to a real API server (see tests/integration/conftest.py).

Import as ``import kube_helpers`` / ``from kube_helpers import wait_for`` (tests/ is on sys.path).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from loopback import free_ports, http_get
from urllib3 import HTTPHeaderDict

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DIR = ROOT / ".cluster"
LOCAL_KUBECONFIG = CLUSTER_DIR / "kubeconfig"

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# polling


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60,
    interval: float = 0.2,
    message: str | Callable[[], str] = "",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Exceptions listed in ``ignore`` count as "not yet" (e.g. ``ApiException`` while an object does
    not exist). On timeout raises AssertionError with ``message`` and the last observed value.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except ignore as e:
            last = e
        else:
            if last:
                return cast(T, last)
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            what = text or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last observed: {last!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# API clients


def load_configuration(kubeconfig: Path | str) -> client.Configuration:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return cfg


def impersonating_client(kubeconfig: Path | str, user: str, groups: Iterable[str] = ()) -> client.ApiClient:
    """An ApiClient that sends ``Impersonate-User`` and one ``Impersonate-Group`` header per group.

    ApiClient.default_headers is a plain dict (one value per header), so the groups are added
    as repeated headers by wrapping the client's urllib3 pool manager.
    """
    api = client.ApiClient(load_configuration(kubeconfig))
    api.set_default_header("Impersonate-User", user)
    group_list = list(groups)
    if group_list:
        pool = api.rest_client.pool_manager
        original = pool.request

        def request(method: str, url: str, **kwargs: Any) -> Any:
            merged = HTTPHeaderDict(kwargs.pop("headers", None) or {})
            merged.discard("Impersonate-Group")
            for group in group_list:
                merged.add("Impersonate-Group", group)
            return original(method, url, headers=merged, **kwargs)

        setattr(pool, "request", request)  # noqa: B010 - instance attribute shadows the method
    return api


def token_client(kubeconfig: Path | str, token: str) -> client.ApiClient:
    """An ApiClient for the kubeconfig's server and CA that authenticates with a bearer token."""
    cfg = load_configuration(kubeconfig)
    cfg.cert_file = None
    cfg.key_file = None
    cfg.api_key = {"authorization": f"Bearer {token}"}
    cfg.api_key_prefix = {}
    return client.ApiClient(cfg)


def kubectl_binary() -> str | None:
    local = CLUSTER_DIR / "bin" / "kubectl"
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which("kubectl")


@dataclass
class Cluster:
    """The API server the tests run against (from the ``cluster`` fixture)."""

    kubeconfig: Path
    api_client: client.ApiClient
    local: bool  # True: the loopback control plane of hack/cluster.py
    info: dict[str, Any] = field(default_factory=dict)  # .cluster/cluster.json when local

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    def api(self, cls: Callable[[client.ApiClient], T]) -> T:
        """Any generated API class for the admin, e.g. ``cluster.api(client.AppsV1Api)``."""
        return cls(self.api_client)

    @property
    def token_user(self) -> str | None:
        """An unprivileged user (no groups, no RBAC) with a static token; local cluster only."""
        user = self.info.get("token_user") or {}
        return user.get("name")

    @property
    def token(self) -> str | None:
        user = self.info.get("token_user") or {}
        return user.get("token")

    @property
    def kwok_node(self) -> str | None:
        """Name of the fake node managed by kwok, or None when kwok is not running."""
        node = self.info.get("kwok_node")
        return str(node) if node else None

    def new_admin_client(self) -> client.ApiClient:
        return client.ApiClient(load_configuration(self.kubeconfig))

    def impersonate(self, user: str, groups: Iterable[str] = ()) -> client.ApiClient:
        return impersonating_client(self.kubeconfig, user, groups)

    def token_client(self, token: str) -> client.ApiClient:
        return token_client(self.kubeconfig, token)

    def kubectl(
        self,
        *args: str,
        as_user: str | None = None,
        as_groups: Sequence[str] = (),
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl with this cluster's kubeconfig (text mode); impersonates with as_user/as_groups."""
        binary = kubectl_binary()
        if binary is None:
            raise FileNotFoundError("kubectl not found in .cluster/bin/ or on PATH")
        argv = [binary, f"--kubeconfig={self.kubeconfig}"]
        if as_user is not None:
            argv.append(f"--as={as_user}")
        argv += [f"--as-group={g}" for g in as_groups]
        argv += list(args)
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[1:])} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc


def apply_crds(cluster: Cluster, directory: Path, timeout: float = 60) -> list[str]:
    """Server-side apply every CustomResourceDefinition in directory/*.yaml; wait until Established."""
    ext = client.ApiextensionsV1Api(cluster.api_client)
    names: list[str] = []
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") != "CustomResourceDefinition":
                raise ValueError(
                    f"{path}: only CustomResourceDefinitions belong in crds/, got {doc.get('kind')}"
                )
            name = doc["metadata"]["name"]
            try:
                ext.patch_custom_resource_definition(
                    name,
                    doc,
                    field_manager="studio-tests",
                    force=True,
                    _content_type="application/apply-patch+yaml",
                )
            except ApiException as e:
                raise AssertionError(
                    f"applying {path.relative_to(ROOT)} ({name}): {e.status} {e.body}"
                ) from e
            names.append(name)

    def established(name: str) -> bool:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for name in names:
        wait_for(functools.partial(established, name), timeout=timeout, message=f"CRD {name} Established")
    return names


# --------------------------------------------------------------------------------------------
# the operator as a real process

_log_numbers = itertools.count(1)


# The S3 trust of test operators unless a test passes its own `s3_args`: the tests' S3 servers
# listen on loopback ports picked at run time, so every loopback endpoint counts as one an
# administrator allowed, and every namespace may reach every bucket through the shared identity.
# tests/integration/test_s3_trust.py runs operators with the real defaults instead.
# The tests' S3 servers listen on loopback, and on the real node's host address (10.250.0.1, see
# hack/node.py) for pods: a test administrator allows both.
TEST_S3_TRUST = (
    "--s3-allowed-endpoint=http://127.0.0.1:*",
    "--s3-shared-buckets=*=*",
    "--s3-allowed-network=10.250.0.1/32",
)


class OperatorProcess:
    """``python -m studio_operator run --webhook-mode=local`` as a subprocess with its own ports.

    The ports are chosen once, so a restarted process serves the same webhook URL.
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 60,
        s3_args: Sequence[str] | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.extra_args = list(args)
        self.s3_args = list(TEST_S3_TRUST if s3_args is None else s3_args)
        self.extra_env = dict(env or {})
        self.liveness_port, self.metrics_port, self.webhook_port = free_ports(3)
        logs = CLUSTER_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path or logs / f"operator-test-{next(_log_numbers)}.log"
        self.log_path.write_text("")
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "studio_operator",
            "run",
            "--webhook-mode=local",
            f"--liveness-port={self.liveness_port}",
            f"--metrics-port={self.metrics_port}",
            f"--webhook-port={self.webhook_port}",
            *self.s3_args,
            *self.extra_args,
        ]

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def healthy(self) -> bool:
        return self.running and http_get(self.liveness_url)[0] == 200

    def start(self, timeout: float | None = None) -> None:
        """Start the process (no-op while running) and wait until its liveness endpoint answers 200."""
        if self.running:
            return
        self.starts += 1
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.extra_env}
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            out.write(f"=== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_healthy(timeout if timeout is not None else self.startup_timeout)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise AssertionError(
                    f"operator exited with {self.returncode} during startup; log {self.log_path}:\n"
                    + self.log_tail()
                )
            status, _ = http_get(self.liveness_url)
            if status == 200 and self._webhooks_registered():
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"operator liveness {self.liveness_url} not 200 after {timeout:g}s (last {status}); "
                    f"log {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.2)

    def _webhooks_registered(self) -> bool:
        """Liveness answers before kopf has registered the webhook configuration; writes made in
        between would skip admission (created-by stamping). Wait for our URL to be registered."""
        mode = [a for a in self.argv if a.startswith("--webhook-mode=")][-1].split("=", 1)[1]
        if mode != "local":
            return True
        # A configuration left by a killed predecessor on the same port is registered already: the
        # server must also be listening, or the next write gets "connection refused".
        try:
            socket.create_connection(("127.0.0.1", self.webhook_port), timeout=0.5).close()
        except OSError:
            return False
        import kubernetes

        api = kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            admission = kubernetes.client.AdmissionregistrationV1Api(api)
            marker = f":{self.webhook_port}/"
            for read in (
                admission.read_mutating_webhook_configuration,
                admission.read_validating_webhook_configuration,
            ):
                config = read("studios.dev")
                if not any(marker in (w.client_config.url or "") for w in config.webhooks or []):
                    return False
            return True
        except kubernetes.client.ApiException:
            return False
        finally:
            api.close()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code (None if never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._remove_own_webhooks()
        return self.process.returncode

    def _remove_own_webhooks(self) -> None:
        """A stopped operator serves no webhooks: make sure no configuration still points at its
        port (kopf removes them on a clean exit, but not when the exit was forced), so that tests
        writing while the operator is stopped are not refused by `failurePolicy: Fail`."""
        import kubernetes

        api = kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))
        # Best effort: a teardown while the API server is unreachable must not hide the real failure.
        with contextlib.suppress(Exception):
            self._remove_webhooks_with(api)
        api.close()

    def _remove_webhooks_with(self, api: Any) -> None:
        import kubernetes

        try:
            admission = kubernetes.client.AdmissionregistrationV1Api(api)
            marker = f":{self.webhook_port}/"
            for read, delete in (
                (
                    admission.read_mutating_webhook_configuration,
                    admission.delete_mutating_webhook_configuration,
                ),
                (
                    admission.read_validating_webhook_configuration,
                    admission.delete_validating_webhook_configuration,
                ),
            ):
                try:
                    config = read("studios.dev")
                except kubernetes.client.ApiException:
                    continue
                if any(marker in (w.client_config.url or "") for w in config.webhooks or []):
                    with contextlib.suppress(kubernetes.client.ApiException):
                        delete("studios.dev")
        finally:
            pass

    def kill(self) -> None:
        """SIGKILL, as a crash would (no cleanup in the operator)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout: float | None = None) -> None:
        self.stop()
        self.start(timeout)

    def log_text(self) -> str:
        """The whole log of this object (all starts)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_since_start(self) -> str:
        """The log written since the latest start()."""
        try:
            return self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<OperatorProcess pid={self.pid} running={self.running} liveness={self.liveness_port}>"


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount `account` (a TokenRequest token):
    what a pod running as it would have."""
    from kubernetes import client

    token = cluster.core.create_namespaced_service_account_token(
        account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cluster_entry = config["clusters"][0]
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"] = [
        {"name": "sa", "context": {"cluster": cluster_entry["name"], "user": "sa", "namespace": namespace}}
    ]
    config["current-context"] = "sa"
    path.write_text(yaml.safe_dump(config))
    return path


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    """The admin kubeconfig's server and CA, authenticated with `token` only."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    ca = {k: v for k, v in server.items() if k.startswith("certificate-authority")}
    if "certificate-authority" in ca and not Path(ca["certificate-authority"]).is_absolute():
        ca["certificate-authority"] = str((cluster.kubeconfig.parent / ca["certificate-authority"]).resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server["server"], **ca}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "operator"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
