"""Raw-socket clients for the body and closing tests: they send exactly what the
test says, in the order real clients do."""

from __future__ import annotations

import time
from typing import Any

PIECE = 64 * 1024


def send_all_then_read(conn: Any, data: bytes, pace: float = 0.001) -> Any:
    """Send all of ``data`` (as a simple client sends a whole request before it
    looks at the answer), then read one response.  The bytes go out in 64 KiB
    pieces ``pace`` seconds apart, as over a real network (on loopback the
    kernel would otherwise take everything before the gateway even looks).  A
    gateway that closed with unread bytes makes this fail with a reset instead
    of returning its answer."""
    for start in range(0, len(data), PIECE):
        conn.send(data[start:start + PIECE])
        if pace:
            time.sleep(pace)
    return conn.read_response()


def upload(raw: Any, port: int, path: str, body: bytes, *, chunked: bool, expect: bool,
           timeout: float = 30.0) -> Any:
    """POST ``body`` over a raw socket (``raw``: the fixture); with ``expect``, send
    the body only after ``100 Continue`` (or after 1 s without one, as curl does)."""
    conn = raw(port, timeout=timeout)
    try:
        framing = (b"Transfer-Encoding: chunked\r\n" if chunked
                   else b"Content-Length: %d\r\n" % len(body))
        head = (b"POST %s HTTP/1.1\r\nHost: upload.test\r\n" % path.encode() + framing
                + (b"Expect: 100-continue\r\n" if expect else b"") + b"\r\n")
        conn.send(head)
        if expect:
            conn.settimeout(1.0)
            try:
                interim = conn.read_response()
            except TimeoutError:
                interim = None
            conn.settimeout(timeout)
            if interim is not None and interim.status != 100:
                return interim  # a final answer before the body
        for start in range(0, len(body), PIECE):
            piece = body[start:start + PIECE]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            conn.send(b"0\r\n\r\n")
        return conn.read_response()
    finally:
        conn.close()
