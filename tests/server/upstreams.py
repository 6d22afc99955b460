"""Upstream servers for the upload tests, besides ``fastgate echo``: a stdlib
``http.server`` (threaded, HTTP/1.1 keep-alive) and one that reads slowly.

Both answer every request with ``{"body_length": N, "body_sha256": "<hex>"}``,
reading Content-Length and chunked bodies themselves; ``?close=1`` in the
target makes them answer ``Connection: close`` and close, so the gateway never
pools that connection.  The slow one waits ``delay`` seconds before it reads
anything and then takes ``piece`` bytes every ``interval`` seconds from a socket
with a bounded receive buffer (256 KiB: much smaller makes loopback TCP
crawl on delayed ACKs), so the gateway meets real back-pressure.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO


class _Reader:
    """Reads a request body off ``rfile``, slowly when asked."""

    def __init__(self, rfile: BinaryIO, piece: int, interval: float) -> None:
        self.rfile = rfile
        self.piece = piece
        self.interval = interval
        self.hasher = hashlib.sha256()
        self.length = 0

    def take(self, n: int) -> None:
        while n > 0:
            data = self.rfile.read(min(n, self.piece))
            if not data:
                raise ConnectionError("body cut short")
            self.hasher.update(data)
            self.length += len(data)
            n -= len(data)
            if self.interval:
                time.sleep(self.interval)

    def chunked(self) -> None:
        while True:
            line = self.rfile.readline(1024)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            self.take(size)
            if self.rfile.read(2) != b"\r\n":
                raise ConnectionError("chunk not followed by CRLF")


def _handler(delay: float, piece: int, interval: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            if interval:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            super().setup()

        def _answer(self) -> None:
            if delay:
                time.sleep(delay)
            reader = _Reader(self.rfile, piece, interval)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                reader.chunked()
            else:
                reader.take(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"body_length": reader.length,
                               "body_sha256": reader.hasher.hexdigest()}).encode()
            close = "close=1" in self.path
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

    return Handler


class UploadUpstream:
    """A threaded HTTP/1.1 upstream on a free port; ``stop()`` at the end."""

    def __init__(self, *, delay: float = 0.0, piece: int = 64 * 1024,
                 interval: float = 0.0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(delay, piece, interval))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
