"""Where the operator finds the API server and its identity (kubeconfig.py): a kubeconfig's
server, CA, client certificate and token, the in-cluster ServiceAccount (its token re-read), and
credential plugins handed to the official loader."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml

from studio_operator import kubeconfig


def write(path: Path, user: dict[str, object], cluster: dict[str, object] | None = None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "other", "context": {"cluster": "c", "user": "u"}},
            {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}},
        ],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_certificate_data_and_token_from_a_kubeconfig(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        {
            "client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key": "key.pem",
            "token": "t0k",
        },
        {"server": "https://127.0.0.1:6443/", "certificate-authority-data": base64.b64encode(b"CA").decode()},
    )
    conn = kubeconfig.from_kubeconfig(str(path))
    assert conn.server == "https://127.0.0.1:6443"  # no trailing slash: paths are appended
    assert conn.namespace == "team"  # the current context's
    assert conn.bearer() == "t0k"
    assert conn.cert_file is not None and Path(conn.cert_file).read_bytes() == b"CERT"
    assert oct(os.stat(conn.cert_file).st_mode & 0o777) == "0o600"
    assert conn.ca_file is not None and Path(conn.ca_file).read_bytes() == b"CA"
    assert conn.key_file == str(tmp_path / "key.pem")  # relative to the kubeconfig


def test_an_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "config", {"token": "x"})
    with pytest.raises(kubeconfig.ConfigError, match="no context named 'nope'"):
        kubeconfig.from_kubeconfig(str(path), context="nope")


def test_in_cluster_identity_rereads_a_rotated_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("studio-system")
    (tmp_path / "ca.crt").write_text("CA")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "nohome")
    conn = kubeconfig.load()
    assert (conn.server, conn.namespace, conn.ca_file) == (
        "https://10.96.0.1:443",
        "studio-system",
        str(tmp_path / "ca.crt"),
    )
    assert conn.bearer() == "first"
    (tmp_path / "token").write_text("second\n")  # the kubelet rotated it
    assert conn.bearer() == "first"  # not re-read on every request ...
    monkeypatch.setattr(kubeconfig, "TOKEN_REREAD_SECONDS", 0.0)
    assert conn.bearer() == "second"  # ... but soon


def test_an_exec_plugin_goes_through_the_official_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "config", {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}
    )
    seen: list[tuple[str, str | None]] = []

    def official(p: str, context: str | None, namespace: str) -> kubeconfig.Connection:
        seen.append((p, context))
        return kubeconfig.Connection(server="https://eks.example", token="from-plugin", namespace=namespace)

    monkeypatch.setattr(kubeconfig, "_through_official_loader", official)
    conn = kubeconfig.from_kubeconfig(str(path))
    assert seen == [(str(path), "ctx")] and conn.bearer() == "from-plugin" and conn.namespace == "team"
