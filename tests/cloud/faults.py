"""A loopback fault-injection proxy in front of every service of one lab cloud.

One listener per service port, on 127.0.0.1 only. Keystone's catalog (and every link a
service returns) is rewritten to point at the proxies, so a clouds.yaml entry whose auth_url
is the proxied keystone sends every call of that cloud through them. Each request may meet
a fault - at random, at ``rate``, each of ``kinds`` in turn - or one of the ``rules`` aimed
at a call:

- ``500`` / ``502`` / ``503``: answered at once with that status; the service never sees it;
- ``429``: answered with ``Retry-After: 1``; the service never sees it;
- ``drop``: the connection is closed without an answer; the service never sees it;
- ``lost``: the service carries it out, then the connection is closed: the answer is lost;
- ``lost-502``: the service carries it out, and the client is told 502;
- ``delay``: held ``delay`` seconds, then passed on;
- ``tamper`` (rules only, for uploads): one byte in the middle of the body flipped on its way
  to the service, size unchanged - the corruption only a checksum can see.

Bounded: no more than ``max_faults`` faults, none after ``lifetime`` seconds, and the proxies
stop by themselves after ``hard_stop`` seconds even if a test forgets to stop them.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from devcloud.layout import SERVICE_PORT_SUFFIX, Cloud

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
ALL_KINDS = ("500", "502", "503", "429", "drop", "lost", "lost-502", "delay")
NOT_SEEN = frozenset({"500", "502", "503", "429", "drop"})  # the service never gets these


@dataclass
class Rule:
    """A fault aimed at matching requests (``method`` and a regex on the path), ``times`` times."""

    method: str
    path: str
    fault: str
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.times
            and method == self.method
            and re.search(self.path, path.split("?")[0]) is not None
        )


@dataclass
class FaultProxy:
    cloud: Cloud
    rate: float = 0.0
    kinds: tuple[str, ...] = ALL_KINDS
    rules: list[Rule] = field(default_factory=list)
    seed: int = 0
    delay: float = 2.0
    max_faults: int = 10_000
    lifetime: float = 3600.0
    hard_stop: float = 3600.0
    counts: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    random_faults: int = 0
    log: list[str] = field(default_factory=list)  # "FAULT METHOD path" of every fault

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._rewrites: list[tuple[bytes, bytes]] = []
        self.started = time.monotonic()
        self.ports: dict[int, int] = {}  # upstream port -> proxy port
        for service in SERVICE_PORT_SUFFIX:
            upstream = self.cloud.port(service)
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(upstream))
            server.daemon_threads = True
            self._servers.append(server)
            self.ports[upstream] = server.server_address[1]
        for upstream, port in self.ports.items():
            self._rewrites.append((f"127.0.0.1:{upstream}".encode(), f"127.0.0.1:{port}".encode()))

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[self.cloud.port('keystone')]}/v3"

    @property
    def faults(self) -> int:
        return sum(self.counts.values())

    def clouds_yaml(self, lab_clouds: Path, out: Path, name: str) -> Path:
        """A copy of the lab's clouds.yaml with ``name``: the cloud, through the proxies."""
        clouds = yaml.safe_load(lab_clouds.read_text())
        entry = dict(clouds["clouds"][self.cloud.name])
        entry["auth"] = {**entry["auth"], "auth_url": self.auth_url}
        clouds["clouds"][name] = entry
        out.write_text(yaml.safe_dump(clouds))
        out.chmod(0o600)
        return out

    def __enter__(self) -> FaultProxy:
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.hard_stop, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.stop()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def summary(self) -> str:
        parts = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items()))
        return f"{self.requests} requests, {self.faults} faults injected ({parts or 'none'})"

    def _choose(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return self._count(rule.fault, method, path)
            live = time.monotonic() - self.started < self.lifetime
            if (
                self.rate
                and live
                and self.faults < self.max_faults
                and self._random.random() < self.rate
            ):
                # Kinds in turn, so that a few faults already cover every kind (the rules'
                # faults are not counted here: they would make the turn skip kinds).
                kind = self.kinds[self.random_faults % len(self.kinds)]
                self.random_faults += 1
                return self._count(kind, method, path)
        return None

    def _count(self, fault: str, method: str, path: str) -> str:
        self.counts[fault] += 1
        self.log.append(f"{fault} {method} {path}")
        return fault

    def _rewrite(self, body: bytes) -> bytes:
        for old, new in self._rewrites:
            body = body.replace(old, new)
        return body

    def _handler(self, upstream_port: int) -> type[BaseHTTPRequestHandler]:
        proxy = self
        upstream = f"http://127.0.0.1:{upstream_port}"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> Iterator[bytes]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return
                        data = self.rfile.read(size)
                        self.rfile.readline()
                        yield data
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    while length > 0:
                        data = self.rfile.read(min(length, 1 << 20))
                        if not data:
                            return
                        length -= len(data)
                        yield data

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.shutdown(2)

            def _answer(self, status: int, extra: dict[str, str] | None = None) -> None:
                body = b'{"message": "injected by the test proxy"}'
                self.send_response(status)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _flip(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
                for i, chunk in enumerate(chunks):
                    if i == 1 and chunk:  # the second chunk: mid-stream, not the header
                        middle = len(chunk) // 2
                        chunk = chunk[:middle] + bytes([chunk[middle] ^ 0xFF]) + chunk[middle + 1 :]
                    yield chunk

            def _forward(self) -> None:
                fault = proxy._choose(self.command, self.path)
                if fault in NOT_SEEN:
                    for _ in self._body():  # read what was sent, then refuse it
                        pass
                    if fault == "drop":
                        self._drop()
                    elif fault == "429":
                        self._answer(429, {"Retry-After": "1"})
                    else:
                        self._answer(int(str(fault)))
                    return
                if fault == "delay":
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                body: Any = self._body()
                if fault == "tamper":
                    body = self._flip(body)
                elif self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    body = b"".join(body) or None
                reply = requests.request(
                    self.command,
                    upstream + self.path,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    stream=True,
                    timeout=900,
                )
                if fault == "lost":
                    _ = reply.content  # the service has done it; the client never hears
                    reply.close()
                    self._drop()
                    return
                if fault == "lost-502":
                    _ = reply.content
                    reply.close()
                    self._answer(502)
                    return
                self._relay(reply)

            def _relay(self, reply: requests.Response) -> None:
                binary = reply.headers.get("Content-Type", "").startswith(
                    "application/octet-stream"
                )
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() in HOP_BY_HOP | {"content-encoding"}:
                        continue
                    if key.lower() == "location":
                        value = proxy._rewrite(value.encode()).decode()
                    self.send_header(key, value)
                if binary:  # image bytes: streamed through as they come
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in reply.iter_content(1 << 20):
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    content = proxy._rewrite(reply.content)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(content)
                reply.close()

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _forward

        return Handler
