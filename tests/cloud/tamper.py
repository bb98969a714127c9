"""A loopback HTTP proxy in front of one glance that alters uploaded image bytes in flight.

Tests point a cloud's image endpoint at it (``image_endpoint_override`` in clouds.yaml), so
stackferry talks to the real glance through it and only the bytes of ``PUT .../file`` change:
one byte flipped, size unchanged - the corruption only a checksum can see.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class TamperingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.tampered = 0
        proxy = self

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
                    if length:
                        yield self.rfile.read(length)

            def _flip(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
                for i, chunk in enumerate(chunks):
                    if i == 1 and chunk:  # the second chunk: mid-stream, not the header
                        middle = len(chunk) // 2
                        chunk = chunk[:middle] + bytes([chunk[middle] ^ 0xFF]) + chunk[middle + 1 :]
                        proxy.tampered += 1
                    yield chunk

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                body: Any = self._body()
                if self.command == "PUT" and self.path.endswith("/file"):
                    body = self._flip(body)
                else:
                    body = b"".join(body) or None
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=600,
                )
                content = upstream.content.replace(proxy.upstream.encode(), proxy.url.encode())
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TamperingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
