#!/usr/bin/env python3
"""Loopback S3 endpoint for `make run`: moto's server with the sample buckets.

    python hack/s3.py up       # idempotent: start (or reuse) the server, ensure the sample buckets
    python hack/s3.py down     # stop the recorded process
    python hack/s3.py status   # exit code 0 iff it answers

Listens on 127.0.0.1 on a free port picked on the first start and recorded with the endpoint in
.cluster/s3.endpoint (S3_PORT overrides), so two checkouts on one machine do not collide; `make run`
puts that endpoint into the sample DataLinks. pid in .cluster/s3.pid, log in .cluster/logs/s3.log.
No authentication: any key pair signs valid requests (the sample DataLink's Secret holds dummy
keys). State lives in memory: after `down`/`up` the buckets are created again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from loopback import http

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / ".cluster"
PIDFILE = CLUSTER / "s3.pid"
LOG = CLUSTER / "logs" / "s3.log"
HOST = "127.0.0.1"
ENDPOINT_FILE = CLUSTER / "s3.endpoint"
SAMPLE_ENDPOINT = "http://127.0.0.1:9000"  # what manifests/samples/datalink.yaml says


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def recorded_port() -> int | None:
    try:
        return int(ENDPOINT_FILE.read_text().strip().rsplit(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


def choose_port() -> int:
    """S3_PORT, else the recorded port (kept while our server runs on it), else a free one."""
    if os.environ.get("S3_PORT"):
        return int(os.environ["S3_PORT"])
    port = recorded_port()
    if port is None:
        return _free_port()
    try:  # free, or held by our own server (its pid file names a moto server)
        with socket.socket() as s:
            s.bind((HOST, port))
        return port
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            pid = int(PIDFILE.read_text().strip())
            if b"moto.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return port
    return _free_port()


PORT = choose_port()
ENDPOINT = f"http://{HOST}:{PORT}"
REGION: Final = "eu-west-1"  # the sample environment's region: no CrossRegionMount for the sample

# bucket -> {key: content}
SAMPLE_BUCKETS: dict[str, dict[str, bytes]] = {
    "reference-genomes": {
        "README.txt": b"Sample reference data served by the loopback S3 endpoint of `make run`.\n",
        "hg38/chr21.fa": b">chr21 (excerpt)\nNNNNNNNNNNGATCACAGGTCTATCACCCTATTAACCACTCACGGGAGCTCTCCATGCAT\n",
        "hg38/annotation.gtf": b'chr21\tdemo\tgene\t1\t60\t.\t+\t.\tgene_id "DEMO1";\n',
    },
    "scratch": {"README.txt": b"A writable bucket (allowedBuckets of the sample environment).\n"},
}


def say(msg: str) -> None:
    print(f"[s3] {msg}", flush=True)


def answers(timeout: float = 1.0) -> bool:
    return 200 <= http(f"{ENDPOINT}/moto-api/data.json", timeout=timeout)[0] < 400


def recorded_pid() -> int | None:
    """The recorded pid if that process is alive and is a moto server."""
    try:
        pid = int(PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError):
        return None
    return pid if b"moto.server" in cmdline else None


def start() -> None:
    if recorded_pid() is not None and answers():
        say(f"already running at {ENDPOINT} (pid {recorded_pid()})")
        return
    if answers():
        sys.exit(f"[s3] {ENDPOINT} already answers but is not ours: stop it or set S3_PORT")
    CLUSTER.mkdir(parents=True, exist_ok=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)  # never require IAM keys here
    with open(LOG, "ab") as out:
        out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting on {ENDPOINT}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(PORT)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
    PIDFILE.write_text(f"{proc.pid}\n")
    ENDPOINT_FILE.write_text(f"{ENDPOINT}\n")
    deadline = time.monotonic() + 30
    while not answers():
        if proc.poll() is not None:
            sys.exit(f"[s3] moto server exited with {proc.returncode}; see {LOG}")
        if time.monotonic() > deadline:
            sys.exit(f"[s3] moto server not answering at {ENDPOINT} after 30 s; see {LOG}")
        time.sleep(0.1)
    say(f"started at {ENDPOINT} (pid {proc.pid}, log {LOG.relative_to(ROOT)})")


def ensure_buckets() -> None:
    import boto3  # the venv's; imported late so `down`/`status` work without it
    from botocore.config import Config

    client = boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION
    ).client("s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"}))
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket, objects in SAMPLE_BUCKETS.items():
        if bucket not in existing:
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for key, body in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=body)
    say(f"buckets: {', '.join(f's3://{b}' for b in SAMPLE_BUCKETS)} ({REGION})")


def stop() -> None:
    pid = recorded_pid()
    if pid is None:
        say("not running")
        PIDFILE.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while recorded_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if recorded_pid() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    say(f"stopped (pid {pid})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "endpoint"])
    command = parser.parse_args().command
    if command == "endpoint":  # for scripts: the endpoint to put into DataLinks
        print(ENDPOINT)
        return 0
    if command == "up":
        start()
        ensure_buckets()
    elif command == "down":
        stop()
    else:
        ok = answers()
        say(f"{ENDPOINT} {'answers' if ok else 'does not answer'} (pid {recorded_pid()})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
