"""A real S3 HTTP endpoint on loopback for tests: moto's server (`moto[server]`) in a subprocess.

A subprocess (not moto's in-process mocks) so the operator under test, a separate process, talks
to it over HTTP exactly as it would to S3, and so its state never mixes with the test process.

With `auth=True` the server checks signatures and IAM policies (moto's INITIAL_NO_AUTH_ACTION_COUNT
mechanism, switched on through /moto-api/reset-auth once the users exist): `admin` may do s3:*,
`no_access` has no policy, and any other key is rejected as InvalidAccessKeyId.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from loopback import free_ports, http

HOST = "127.0.0.1"
# Any values work while authentication is off (bootstrap only).
BOOTSTRAP_KEYS = ("bootstrap", "bootstrap")


@dataclass(frozen=True, repr=False)
class Keys:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return "Keys(<hidden>)"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def secret_data(self) -> dict[str, str]:
        """`stringData` of a credentials Secret with these keys."""
        return self.env()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path
    admin: Keys
    no_access: Keys | None = None
    _created: list[str] = field(default_factory=list)

    def client(self, keys: Keys | None = None, region: str = "us-east-1") -> Any:
        keys = keys or self.admin
        return boto3.session.Session(
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            region_name=region,
        ).client(
            "s3",
            endpoint_url=self.endpoint,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 2}),
        )

    def create_bucket(
        self, name: str, region: str | None = None, objects: dict[str, bytes] | None = None
    ) -> None:
        """Idempotent. With a region other than us-east-1 the bucket records a LocationConstraint,
        and moto then reports that region (x-amz-bucket-region / GetBucketLocation)."""
        client = self.client(region=region or "us-east-1")
        kwargs: dict[str, Any] = {"Bucket": name}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(**kwargs)
        self._created.append(name)
        for key, body in (objects or {}).items():
            client.put_object(Bucket=name, Key=key, Body=body)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def free_port() -> int:
    return free_ports(1)[0]


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    return free_port()


def _post(url: str, data: bytes) -> bytes:
    # text/plain: a form body would be parsed away
    status, body = http(url, method="POST", data=data, headers={"Content-Type": "text/plain"}, timeout=5)
    if not 200 <= status < 300:
        raise RuntimeError(f"POST {url}: {status} {body[:300]!r}")
    return body


def _wait_up(endpoint: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto server exited with {process.returncode}: {log_path.read_text()[-2000:]}"
            )
        if 200 <= http(f"{endpoint}/moto-api/data.json", timeout=1)[0] < 400:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto server at {endpoint} not up after {timeout}s")
        time.sleep(0.1)


def _iam_user(endpoint: str, name: str, policy: dict[str, Any] | None) -> Keys:
    iam = boto3.session.Session(
        aws_access_key_id=BOOTSTRAP_KEYS[0], aws_secret_access_key=BOOTSTRAP_KEYS[1], region_name="us-east-1"
    ).client("iam", endpoint_url=endpoint)
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


def start_s3_server(
    log_path: Path, *, port: int | None = None, auth: bool = True, host: str = HOST
) -> S3Server:
    """`host`: the address to listen on (the real node's pods reach the host at its node IP)."""
    port = port or free_port()
    endpoint = f"http://{host}:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_up(endpoint, process, log_path)
        if not auth:
            return S3Server(endpoint, process, log_path, admin=Keys(*BOOTSTRAP_KEYS))
        admin = _iam_user(
            endpoint,
            "studio-admin",
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
        )
        no_access = _iam_user(endpoint, "studio-no-access", None)
        _post(f"{endpoint}/moto-api/reset-auth", b"0")  # authenticate every request from now on
        return S3Server(endpoint, process, log_path, admin=admin, no_access=no_access)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
