"""S3 fixtures for integration tests: a session-wide moto server on loopback (see tests/s3_server.py).

Not a conftest (pytest does not load this file by itself): test modules load it as a plugin,
``pytest_plugins = ["conftest_s3"]`` (one server per session however many modules do).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from kube_helpers import CLUSTER_DIR
from s3_server import S3Server, start_s3_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Authenticating moto server: `s3_server.admin` keys may do s3:*, `no_access` keys nothing,
    any other key is refused (InvalidAccessKeyId). Log: .cluster/logs/test-s3.log."""
    server = start_s3_server(CLUSTER_DIR / "logs" / "test-s3.log")
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> Callable[..., str]:
    """``bucket("genomes", region="eu-west-2", objects={...})`` creates a uniquely named bucket."""

    def make(stem: str = "data", region: str | None = None, objects: dict[str, bytes] | None = None) -> str:
        name = f"{stem}-{secrets.token_hex(4)}"
        s3_server.create_bucket(name, region=region, objects=objects)
        return name

    return make
