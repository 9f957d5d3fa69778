"""Where the API server is and who the operator is to it: a kubeconfig or the in-cluster identity.

Read without the typed Kubernetes client, whose import alone costs the operator about 35 MB:
server, CA, client certificate, bearer token (a projected ServiceAccount token is re-read, as it
is rotated). A kubeconfig user with an `exec` or `auth-provider` plugin is resolved once through
the official client's loader, imported only then.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # kubelet rotates projected tokens well before they expire


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster identity."""


@dataclass
class Connection:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False
    namespace: str = "default"
    _read_at: float = field(default=0.0, repr=False)

    def bearer(self) -> str | None:
        """The current token: a token file is re-read now and then (rotation)."""
        if self.token_file and time.monotonic() - self._read_at > TOKEN_REREAD_SECONDS:
            self.token = Path(self.token_file).read_text().strip()
            self._read_at = time.monotonic()
        return self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def load(kubeconfig: str | None = None) -> Connection:
    """A kubeconfig (given, $KUBECONFIG, ~/.kube/config) outside a cluster, else the in-cluster
    identity; inside a pod without either, the in-cluster one."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    if path is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        path = str(Path.home() / ".kube" / "config")
    if path is not None and Path(path).exists():
        return from_kubeconfig(path)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    raise ConfigError(f"no kubeconfig at {path} and not running in a cluster")


def in_cluster() -> Connection:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return Connection(
        server=f"https://{host}:{port}",
        ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token_file=str(SERVICE_ACCOUNT_DIR / "token"),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
    )


def from_kubeconfig(path: str, context: str | None = None) -> Connection:
    doc = yaml.safe_load(Path(path).read_text()) or {}
    name = context or doc.get("current-context")
    ctx = _named(doc, "contexts", name, "context")
    cluster = _named(doc, "clusters", ctx.get("cluster"), "cluster")
    user = _named(doc, "users", ctx.get("user"), "user") if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        return _through_official_loader(path, name, ctx.get("namespace") or "default")
    base = Path(path).parent
    conn = Connection(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", base),
        cert_file=_file(user, "client-certificate", base),
        key_file=_file(user, "client-key", base),
        token=user.get("token"),
        token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=ctx.get("namespace") or "default",
    )
    if conn.token is None and conn.token_file:
        conn.bearer()
    return conn


def _named(doc: dict[str, Any], section: str, name: str | None, key: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return dict(entry.get(key) or {})
    raise ConfigError(f"kubeconfig: no {section[:-1]} named {name!r}")


def _file(section: dict[str, Any], key: str, base: Path) -> str | None:
    """A `<key>-data` (base64) is written to a private temporary file: the TLS library reads files."""
    data = section.get(f"{key}-data")
    if data:
        handle = tempfile.NamedTemporaryFile(prefix="studio-kube-", suffix=".pem", delete=False)  # noqa: SIM115
        with handle:
            handle.write(base64.b64decode(data))
        os.chmod(handle.name, 0o600)
        atexit.register(_remove, handle.name)
        return handle.name
    value = section.get(key)
    return str(base / value) if value else None


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _through_official_loader(path: str, context: str | None, namespace: str) -> Connection:
    """Credential plugins (exec, auth-provider) through the official client: its import is costly,
    so it happens only for such kubeconfigs."""
    from kubernetes import config as k8s_config
    from kubernetes.client import Configuration

    configuration = Configuration()
    k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)  # type: ignore[no-untyped-call]
    token = configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization")
    if token and token.startswith("Bearer "):
        token = token[len("Bearer ") :]
    return Connection(
        server=str(configuration.host).rstrip("/"),
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        token=token,
        insecure=not configuration.verify_ssl,
        namespace=namespace,
    )
