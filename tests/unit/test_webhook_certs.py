"""The operator's own webhook certificate: issue, renewal rules, CA roll-over, caBundle patch."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ssl
from pathlib import Path

from cryptography import x509

from studio_operator import webhook_certs as wc

HOSTS = wc.service_hosts("studio-operator-webhook", "studio-system")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_issued_bundle_verifies_for_the_service_name(tmp_path: Path) -> None:
    bundle = wc.issue(None, HOSTS, dt.datetime.now(dt.UTC))
    assert wc.renewal_reason(bundle, HOSTS, dt.datetime.now(dt.UTC)) is None
    # what the API server does: trust ca.crt, check the name it dials
    (tmp_path / "tls.crt").write_bytes(bundle.tls_crt)
    (tmp_path / "tls.key").write_bytes(bundle.tls_key)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cadata=bundle.ca_crt.decode())
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(incoming, outgoing, server_hostname="studio-operator-webhook.studio-system.svc")
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):  # drive the handshake through memory
        for end in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(outgoing.read())
        incoming.write(s_out.read())
    c.do_handshake()
    assert c.getpeercert()["subject"][0][0][1] == "studio-operator-webhook"


def test_long_namespace_names_fit() -> None:
    hosts = wc.service_hosts(
        "studio-operator-webhook", "a-namespace-name-of-sixty-three-characters-is-allowed-here-xyz"
    )
    bundle = wc.issue(None, hosts, NOW)
    assert wc.renewal_reason(bundle, hosts, NOW) is None


def test_renewal_reasons() -> None:
    bundle = wc.issue(None, HOSTS, NOW)
    assert wc.renewal_reason(None, HOSTS, NOW) == "no certificate yet"
    assert wc.renewal_reason(bundle, HOSTS, NOW + dt.timedelta(days=200)) is None
    assert wc.renewal_reason(bundle, HOSTS, NOW + dt.timedelta(days=250)) == "certificate expires soon"
    assert wc.renewal_reason(bundle, ["other.ns.svc"], NOW) == "certificate does not name the webhook Service"
    broken = wc.CertBundle(b"junk", bundle.tls_key, bundle.ca_crt, bundle.ca_key)
    assert wc.renewal_reason(broken, HOSTS, NOW) == "unreadable certificate"
    other = wc.issue(None, HOSTS, NOW)
    mixed = wc.CertBundle(bundle.tls_crt, other.tls_key, bundle.ca_crt, bundle.ca_key)
    assert wc.renewal_reason(mixed, HOSTS, NOW) == "key does not match the certificate"


def test_renewal_keeps_the_ca_so_the_ca_bundle_does_not_change() -> None:
    first = wc.issue(None, HOSTS, NOW)
    later = NOW + dt.timedelta(days=250)
    renewed = wc.issue(first, HOSTS, later)
    assert renewed.ca_crt == first.ca_crt and renewed.tls_crt != first.tls_crt
    assert wc.renewal_reason(renewed, HOSTS, later) is None
    leaf = x509.load_pem_x509_certificate(renewed.tls_crt)
    assert leaf.not_valid_after_utc > later + dt.timedelta(days=300)


def test_ca_roll_over_trusts_old_and_new() -> None:
    first = wc.issue(None, HOSTS, NOW)
    near_ca_end = NOW + dt.timedelta(days=wc.CA_DAYS - 100)
    assert wc.renewal_reason(first, HOSTS, near_ca_end) is not None
    rolled = wc.issue(first, HOSTS, near_ca_end)
    cas = x509.load_pem_x509_certificates(rolled.ca_crt)
    old_ca = x509.load_pem_x509_certificate(first.ca_crt)
    assert len(cas) == 2 and cas[1] == old_ca and cas[0] != old_ca
    leaf = x509.load_pem_x509_certificate(rolled.tls_crt)
    assert leaf.issuer == cas[0].subject
    assert wc.renewal_reason(rolled, HOSTS, near_ca_end) is None
    # once the old CA has expired it is dropped from the bundle at the next renewal
    after = NOW + dt.timedelta(days=wc.CA_DAYS + 250)
    again = wc.issue(rolled, HOSTS, after)
    assert len(x509.load_pem_x509_certificates(again.ca_crt)) == 1


def test_secret_round_trip() -> None:
    bundle = wc.issue(None, HOSTS, NOW)
    body = wc.secret_body("tls", "ns", bundle, "42")
    assert body["type"] == "kubernetes.io/tls" and body["metadata"]["resourceVersion"] == "42"
    assert wc.from_secret(body) == bundle
    assert wc.from_secret({"data": {"tls.crt": "eA=="}}) is None
    assert wc.from_secret(None) is None


def test_ca_bundle_patch_sets_only_what_differs() -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    wanted = base64.b64encode(ca).decode()
    config = {
        "metadata": {"resourceVersion": "7"},
        "webhooks": [
            {"clientConfig": {"caBundle": wanted}},
            {"clientConfig": {}},
            {"clientConfig": {"caBundle": "b2xk"}},
        ],
    }
    ops = wc.ca_bundle_patch(config, ca)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert [o["path"] for o in ops[1:]] == [
        "/webhooks/1/clientConfig/caBundle",
        "/webhooks/2/clientConfig/caBundle",
    ]
    for hook in config["webhooks"]:
        hook["clientConfig"]["caBundle"] = wanted
    assert wc.ca_bundle_patch(config, ca) == []


def test_write_files_is_idempotent(tmp_path: Path) -> None:
    manager = wc.CertManager("ns", "tls", "svc", "cfg", tmp_path / "certs")
    bundle = wc.issue(None, manager.hosts, NOW)
    assert manager.write_files(bundle) is True
    assert manager.write_files(bundle) is False
    assert (tmp_path / "certs" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs" / "ca.crt").read_bytes() == bundle.ca_crt
