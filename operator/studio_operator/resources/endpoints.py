"""The administrator's S3 trust policy (pure): which endpoints and buckets a shared identity may
reach, and which addresses a tenant's endpoint may resolve to.

Three kinds of identity sign S3 requests for a data link:
- the tenant's own keys (the link's `credentialsSecret`, or the environment's for mounts);
- the pod's service account (IRSA / EKS Pod Identity): the namespace's own identity;
- a shared identity, which belongs to the platform: the operator's (its ambient AWS credentials)
  for link checks, the CSI driver's or the node's for mounts.

Rules (docs/storage.md, "Endpoint and bucket trust"):
- A shared identity signs only requests to trusted endpoints: AWS S3 (no `endpointURL`) or one an
  administrator allowed (`allowed_endpoints`). Any other endpoint needs the tenant's own keys.
- A shared identity reaches only the buckets an administrator bound to the namespace
  (`shared_buckets`); tenants cannot widen that list.
- A tenant endpoint (not trusted) must resolve to global addresses only: loopback, link-local
  (the cloud metadata endpoint), private, shared (CGNAT), multicast and reserved addresses, and
  `denied_networks`, are refused unless in `allowed_networks`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": "80", "https": "443"}
# scheme://host[:port][/path]; host is a DNS name, an IPv4 literal or a bracketed IPv6 literal.
# In patterns the host and port may contain '*'.
_URL = re.compile(r"^(?P<scheme>https?)://(?P<host>\[[^\]/]+\]|[^:/\[\]]+)(?::(?P<port>[0-9]+|\*))?(?:/.*)?$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

CREDENTIALS_REQUIRED = "CredentialsRequired"
BUCKET_NOT_ALLOWED = "BucketNotAllowed"
ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"


class PolicyError(ValueError):
    """An administrator's setting that cannot be parsed (reported at operator start)."""


def origin(url: str) -> str:
    """`HTTPS://Host.Example` -> `https://host.example:443`: what endpoints are compared by."""
    match = _URL.match(url.strip())
    if match is None:
        raise PolicyError(f"{url!r} is not an http(s) URL")
    scheme, host = match["scheme"].lower(), match["host"].lower()
    return f"{scheme}://{host}:{match['port'] or DEFAULT_PORTS[scheme]}"


def host_port(url: str) -> tuple[str, int]:
    """The host (without IPv6 brackets) and port a client connects to."""
    found = origin(url)
    scheme_host, _, port = found.rpartition(":")
    host = scheme_host.split("://", 1)[1]
    return host.strip("[]"), int(port)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    out = []
    for value in _split(values, ","):
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise PolicyError(f"{value!r} is not a network (CIDR such as 10.0.0.0/8): {exc}") from None
    return tuple(out)


def parse_endpoints(values: Iterable[str]) -> tuple[str, ...]:
    """Endpoint patterns, normalised like `origin` (a missing port is the scheme's default;
    '*' matches any host part or port, e.g. `https://*.s3.example.com`, `http://127.0.0.1:*`)."""
    return tuple(origin(v) for v in _split(values, ","))


def parse_shared_buckets(values: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`NAMESPACE=PATTERN[,PATTERN...]` entries (several per value separated by ';'); both sides
    are shell-style patterns (`team-a=team-a-*`, `*=public-reference-data`)."""
    out = []
    for entry in _split(values, ";"):
        namespace, sep, patterns = entry.partition("=")
        buckets = tuple(p.strip().removeprefix("s3://").strip("/") for p in patterns.split(",") if p.strip())
        if not sep or not namespace.strip() or not buckets:
            raise PolicyError(f"{entry!r} is not NAMESPACE=BUCKET[,BUCKET...] (patterns may use '*')")
        out.append((namespace.strip(), buckets))
    return tuple(out)


def _split(values: Iterable[str], sep: str) -> list[str]:
    return [part.strip() for value in values for part in value.replace("\n", sep).split(sep) if part.strip()]


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is what it reaches."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


@dataclass(frozen=True)
class S3Policy:
    """Default: AWS S3 only for shared identities, no bucket bound to any namespace, tenant
    endpoints on global addresses only."""

    allowed_endpoints: tuple[str, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    denied_networks: tuple[IPNetwork, ...] = ()
    shared_buckets: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def endpoint_trusted(self, endpoint_url: str | None) -> bool:
        """AWS S3 (no endpoint) or an administrator-allowed endpoint."""
        if not endpoint_url:
            return True
        try:
            found = origin(endpoint_url)
        except PolicyError:
            return False
        return any(fnmatchcase(found, pattern) for pattern in self.allowed_endpoints)

    def bucket_allowed(self, namespace: str, bucket: str) -> bool:
        return any(
            fnmatchcase(namespace, ns) and any(fnmatchcase(bucket, b) for b in buckets)
            for ns, buckets in self.shared_buckets
        )

    def address_refusal(self, address: str) -> str | None:
        """Why a tenant endpoint may not connect to `address` (None: it may)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        candidates = {ip, _unwrap(ip)}
        if any(c in net for c in candidates for net in self.allowed_networks if c.version == net.version):
            return None
        target = _unwrap(ip)
        if target.is_loopback or ip.is_loopback:
            return "a loopback address"
        if target.is_link_local or ip.is_link_local:
            return "a link-local address (where the cloud metadata endpoint lives)"
        if any(c in net for c in candidates for net in self.denied_networks if c.version == net.version):
            return "an address in a network the administrator denied"
        if target.is_multicast or target.is_unspecified or not target.is_global or not ip.is_global:
            return "a private, shared or reserved address"
        return None


def shared_identity_problem(
    policy: S3Policy, namespace: str, bucket: str, endpoint_url: str | None, who: str
) -> tuple[str, str] | None:
    """(reason, message naming the fix) when `who` (a shared identity) may not reach the bucket."""
    if not policy.endpoint_trusted(endpoint_url):
        return (
            CREDENTIALS_REQUIRED,
            f"endpoint {endpoint_url} is not one a cluster administrator allowed for {who}: set "
            "spec.credentialsSecret to a Secret with keys for that endpoint, or ask an administrator "
            "to add it to the operator's allowed S3 endpoints",
        )
    if not policy.bucket_allowed(namespace, bucket):
        return (
            BUCKET_NOT_ALLOWED,
            f"bucket {bucket!r} is not allowed for namespace {namespace!r} through {who}: set "
            "spec.credentialsSecret to a Secret with this namespace's own keys, or ask a cluster "
            "administrator to bind the bucket to the namespace (the operator's shared buckets)",
        )
    return None
