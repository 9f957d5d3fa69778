"""The webhook's serving certificate, managed by the operator itself (no cert-manager, no manual
steps): what Go operators do with controller-runtime's cert rotator.

One Secret holds a CA (with its key) and a serving certificate it signed. Any replica may create
or renew it (optimistic concurrency on the Secret's resourceVersion decides a race); every replica
writes the Secret's certificate to its local cert directory, where kopf's webhook server re-reads
it, and makes the `caBundle` of the Validating/MutatingWebhookConfigurations match the Secret.

Rotation: the serving certificate is renewed a third of its lifetime before expiry by the same CA,
so the caBundle does not change. The CA itself lives ten times longer; when it is renewed, the new
CA is put in front of the old one in `ca.crt` (both are trusted while the old one is valid), so
pods still serving a certificate of the old CA keep being trusted during the roll.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import kube

log = logging.getLogger(__name__)

LEAF_DAYS = 365
CA_DAYS = 3650
CHECK_SECONDS = 30.0
CONFIG_KINDS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
ADMISSION_API = "/apis/admissionregistration.k8s.io/v1"
SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class CertBundle:
    """PEM bytes as stored in the Secret: tls.crt, tls.key, ca.crt (one or more CAs), ca.key."""

    tls_crt: bytes
    tls_key: bytes
    ca_crt: bytes
    ca_key: bytes


# ---------------------------------------------------------------- pure


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    """An IP address SAN for an address (local mode serves on 127.0.0.1), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _ca_key_usage() -> x509.KeyUsage:
    """A CA key signs certificates and CRLs (and digital signatures), nothing else."""
    allowed = {"digital_signature", "key_cert_sign", "crl_sign"}
    usages = (
        *allowed,
        *("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
        *("encipher_only", "decipher_only"),
    )
    return x509.KeyUsage(**{usage: usage in allowed for usage in usages})


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def service_hosts(service: str, namespace: str) -> list[str]:
    """The names a webhook Service is reached by (the API server uses `<svc>.<ns>.svc`)."""
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}", service]


def new_ca(now: dt.datetime, days: int = CA_DAYS) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("studio-operator webhook CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def new_leaf(
    ca_crt: bytes, ca_key: bytes, hosts: Sequence[str], now: dt.datetime, days: int
) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificates(ca_crt)[0]
    signer = serialization.load_pem_private_key(ca_key, password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + dt.timedelta(days=days), ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[-1][:64]))  # a CN has at most 64 characters; SANs carry the names
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in dict.fromkeys(hosts)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _remaining(cert: x509.Certificate, now: dt.datetime) -> dt.timedelta:
    return cert.not_valid_after_utc - now


def _lifetime(cert: x509.Certificate) -> dt.timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def renewal_reason(bundle: CertBundle | None, hosts: Sequence[str], now: dt.datetime) -> str | None:
    """Why the Secret's content must be replaced, or None when it is good to serve."""
    if bundle is None:
        return "no certificate yet"
    try:
        leaf = x509.load_pem_x509_certificate(bundle.tls_crt)
        cas = x509.load_pem_x509_certificates(bundle.ca_crt)
        key = serialization.load_pem_private_key(bundle.tls_key, password=None)
        serialization.load_pem_private_key(bundle.ca_key, password=None)
        sans = set(
            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName
            )
        )
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return "unreadable certificate"
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return "key does not match the certificate"
    if not set(hosts) <= sans:
        return "certificate does not name the webhook Service"
    if leaf.issuer != cas[0].subject:
        return "certificate not signed by the current CA"
    if _remaining(leaf, now) < _lifetime(leaf) / 3:
        return "certificate expires soon"
    if _remaining(cas[0], now) < dt.timedelta(days=LEAF_DAYS):
        return "CA expires soon"
    return None


def issue(previous: CertBundle | None, hosts: Sequence[str], now: dt.datetime) -> CertBundle:
    """A bundle that serves `hosts`: the previous CA is kept while it outlives a new serving
    certificate (stable caBundle); otherwise a new CA, with the old one still trusted after it."""
    ca_crt = ca_key = b""
    kept: list[x509.Certificate] = []
    if previous is not None:
        try:
            cas = x509.load_pem_x509_certificates(previous.ca_crt)
            serialization.load_pem_private_key(previous.ca_key, password=None)
        except (ValueError, TypeError):
            cas = []
        if cas and _remaining(cas[0], now) >= dt.timedelta(days=LEAF_DAYS):
            ca_crt, ca_key = cas[0].public_bytes(serialization.Encoding.PEM), previous.ca_key
        kept = [c for c in cas if _remaining(c, now) > dt.timedelta(0)]
    if not ca_crt:
        ca_crt, ca_key = new_ca(now)
    first = x509.load_pem_x509_certificate(ca_crt)
    trusted = ca_crt + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in kept if c != first)
    tls_crt, tls_key = new_leaf(ca_crt, ca_key, hosts, now, LEAF_DAYS)
    return CertBundle(tls_crt, tls_key, trusted, ca_key)


def from_secret(secret: Mapping[str, Any] | None) -> CertBundle | None:
    data = (secret or {}).get("data") or {}
    try:
        return CertBundle(*(base64.b64decode(data[k]) for k in ("tls.crt", "tls.key", "ca.crt", "ca.key")))
    except (KeyError, ValueError, TypeError):
        return None


def secret_body(
    name: str, namespace: str, bundle: CertBundle, resource_version: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "studio-operator", "app.kubernetes.io/component": "webhook"},
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    values = {
        "tls.crt": bundle.tls_crt,
        "tls.key": bundle.tls_key,
        "ca.crt": bundle.ca_crt,
        "ca.key": bundle.ca_key,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v).decode() for k, v in values.items()},
    }


def ca_bundle_patch(config: Mapping[str, Any], ca_crt: bytes) -> list[dict[str, Any]]:
    """JSON patch ops that set every webhook's caBundle (empty when all match). The first op
    tests the resourceVersion, so a configuration changed meanwhile is not patched by index."""
    wanted = base64.b64encode(ca_crt).decode()
    ops: list[dict[str, Any]] = []
    for i, hook in enumerate(config.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") != wanted:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted})
    if ops:
        version = (config.get("metadata") or {}).get("resourceVersion")
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": version})
    return ops


# ---------------------------------------------------------------- I/O


@dataclass
class CertManager:
    """Keeps the Secret, the local files and the webhook configurations' caBundle in step."""

    namespace: str
    secret: str
    service: str
    config_name: str
    cert_dir: Path

    @property
    def hosts(self) -> list[str]:
        return service_hosts(self.service, self.namespace)

    def _secret_path(self, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base

    async def _read(self) -> dict[str, Any] | None:
        try:
            secret: dict[str, Any] = await kube.request("GET", self._secret_path(self.secret))
            return secret
        except kube.ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def ensure_secret(self) -> CertBundle:
        """The Secret's bundle, created or renewed when needed; a lost race reads the winner's."""
        for _ in range(5):
            secret = await self._read()
            current = from_secret(secret)
            now = dt.datetime.now(dt.UTC)
            reason = renewal_reason(current, self.hosts, now)
            if reason is None and current is not None:
                return current
            bundle = issue(current, self.hosts, now)
            try:
                if secret is None:
                    await kube.request(
                        "POST", self._secret_path(), secret_body(self.secret, self.namespace, bundle)
                    )
                else:
                    version = (secret.get("metadata") or {}).get("resourceVersion")
                    body = secret_body(self.secret, self.namespace, bundle, version)
                    await kube.request("PUT", self._secret_path(self.secret), body)
            except kube.ApiError as exc:
                if exc.status == 409:
                    continue  # another replica wrote it first: use theirs
                raise
            log.info("webhook certificate in Secret %s/%s written: %s", self.namespace, self.secret, reason)
            return bundle
        raise RuntimeError(
            f"could not settle the webhook certificate in Secret {self.namespace}/{self.secret}"
        )

    def write_files(self, bundle: CertBundle) -> bool:
        """Atomically replace tls.crt/tls.key/ca.crt when they differ (kopf re-reads them)."""
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        changed = False
        for name, data, mode in (
            ("tls.key", bundle.tls_key, 0o600),
            ("tls.crt", bundle.tls_crt, 0o644),
            ("ca.crt", bundle.ca_crt, 0o644),
        ):
            path = self.cert_dir / name
            if path.exists() and path.read_bytes() == data:
                continue
            tmp = path.with_suffix(path.suffix + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            changed = True
        return changed

    async def inject_ca(self, ca_crt: bytes) -> None:
        for plural in CONFIG_KINDS:
            path = f"{ADMISSION_API}/{plural}/{self.config_name}"
            try:
                config = await kube.request("GET", path)
                ops = ca_bundle_patch(config, ca_crt)
                if ops:
                    await kube.request("PATCH", path, ops, content_type="application/json-patch+json")
                    log.info("caBundle of %s %s updated", plural, self.config_name)
            except kube.ApiError as exc:
                if exc.status == 404:
                    log.warning("%s %s not found: nothing to inject the CA into", plural, self.config_name)
                elif exc.status in (409, 422):
                    log.info("%s %s changed meanwhile; next pass", plural, self.config_name)
                else:
                    raise

    async def sync(self) -> CertBundle:
        bundle = await self.ensure_secret()
        if self.write_files(bundle):
            log.info("webhook certificate files in %s updated", self.cert_dir)
        await self.inject_ca(bundle.ca_crt)
        return bundle

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        """Re-check forever: renewals, another replica's rotation, re-created configurations."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook certificate check failed; retrying in %.0fs", interval)


def operator_namespace() -> str | None:
    """The namespace the operator runs in: POD_NAMESPACE (downward API), then the service account's."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
