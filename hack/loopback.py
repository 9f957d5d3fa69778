"""Loopback networking shared by hack/, bench/ and tests/: free ports and plain HTTP (standard
library only, no proxies: everything here talks to 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (free when checked; bind them soon)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http(
    url: str,
    *,
    ctx: ssl.SSLContext | None = None,
    method: str = "GET",
    body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """(status, body) of one request; `body` is sent as JSON, `data` as is. Status 0 (and the
    error as the body) when the server cannot be reached."""
    headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError, ssl.SSLError) as e:
        return 0, str(e).encode()


def http_get(url: str, timeout: float = 2.0, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    """(status, body as text) of a GET; status 0 when unreachable."""
    status, raw = http(url, ctx=ctx, timeout=timeout)
    return status, raw.decode(errors="replace")
