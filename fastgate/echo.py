"""fastgate echo: a small, fast HTTP/1.1 upstream for demos, tests and benchmarks.

Theory of operation
-------------------
One :class:`EchoProtocol` per connection; httptools (llhttp) parses requests.

* A request body is consumed as it arrives: hashed incrementally and, while it
  stays under :data:`ECHO_BODY_LIMIT`, kept for the echo.  Memory per request
  is bounded whatever the body size.
* Parsed requests wait in a queue and are answered strictly in order
  (pipelining).  Everything the parser produced from one ``data_received`` is
  answered with as few ``write`` calls as possible (usually one).
* Responses that need time or are large (``/delay``, ``/bytes`` and
  ``/chunked`` over :data:`STREAM_THRESHOLD`, big ``/close``) run as a task
  that holds the queue until it is done.  It writes 64 KiB pieces and waits for
  ``resume_writing`` whenever the transport is above its high-water mark, so a
  slow reader never makes the server buffer the body.
* Reading is paused while the queue is long or writing is paused, so a client
  that pipelines without reading cannot grow the server either.

Endpoints (matched on the *last* path segments, so ``/api/bytes/10`` is
``/bytes/10``: this works behind a gateway that does not strip its listen
path):

=========================  ====================================================
``*`` (default)            200 JSON: method, url, path, query, http_version,
                           headers (``[name, value]`` as received, in order),
                           body_length, body_sha256, body (UTF-8 text when
                           <= 64 KiB and valid, else null)
``GET /bytes/N``           N bytes of :func:`pattern`, Content-Length framed
``GET /chunked/N``         the same, ``Transfer-Encoding: chunked``
``GET /close/N``           the same, delimited by closing the connection
``GET /status/CODE``       that status, JSON ``{"status": CODE}`` (no body for
                           204 and 304)
``GET /delay/SECONDS``     waits (float seconds, at most 300), then as default
``GET /headers-out?N=V``   default answer plus the given response headers
                           (``Content-Length``/``Transfer-Encoding`` ignored;
                           a ``Connection: close`` among them is honoured)
``GET /reset``             aborts the connection with a TCP RST, no answer
``GET /__count``           JSON counters of this server: ``requests`` (request
                           heads started, ``/__count`` excluded),
                           ``parse_errors``, ``connections``
=========================  ====================================================

HEAD on any of them: the same status and headers, no body.  A request that does
not parse gets 400 and the connection is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http
import math
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Coroutine
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools
import orjson

ECHO_BODY_LIMIT = 64 * 1024
"""Request bodies up to this size are echoed as text (when valid UTF-8)."""

PIECE = 64 * 1024
"""Size of the pieces streamed responses are written in."""

STREAM_THRESHOLD = 256 * 1024
"""Generated bodies larger than this are streamed with back-pressure."""

MAX_DELAY = 300.0
_MAX_QUEUE = 32  # pipelined requests waiting before reading is paused
_FLUSH_AT = 64 * 1024  # bytes of queued output that trigger a write mid-batch

_BLOCK = bytes(range(256)) * (PIECE // 256)
_EMPTY_SHA256 = hashlib.sha256().hexdigest()


def pattern(n: int, offset: int = 0) -> bytes:
    """The ``n`` bytes ``/bytes``, ``/chunked`` and ``/close`` send from ``offset``.

    Byte ``i`` of a generated body is ``i % 256``.
    """
    start = offset % 256
    if start + n <= len(_BLOCK):
        return _BLOCK[start : start + n]
    reps = (start + n) // len(_BLOCK) + 1
    return (_BLOCK * reps)[start : start + n]


def _status_line(code: int) -> bytes:
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (code, reason.encode("ascii"))


_STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}
_JSON_200 = _STATUS_LINES[200] + b"Content-Type: application/json\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONN_CLOSE = b"Connection: close\r\n"
_CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_OCTETS = b"Content-Type: application/octet-stream\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_NO_BODY_STATUS = frozenset({204, 304})

# Endpoint names; a path whose last segments match none of them is "default".
_WITH_ARG = frozenset({"bytes", "chunked", "close", "status", "delay"})
_NO_ARG = frozenset({"headers-out", "reset", "__count"})


class EchoStats:
    """Counters shared by the connections of one echo server."""

    __slots__ = ("connections", "count_hits", "parse_errors", "started")

    def __init__(self) -> None:
        self.connections = 0
        self.started = 0
        self.count_hits = 0
        self.parse_errors = 0

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "requests": self.started - self.count_hits,
                "parse_errors": self.parse_errors,
                "connections": self.connections,
            }
        )


class _Request:
    __slots__ = (
        "arg",
        "endpoint",
        "hasher",
        "head",
        "headers",
        "keep_alive",
        "kept",
        "length",
        "method",
        "path",
        "query",
        "url",
        "version",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.version = "1.1"
        self.head = False
        self.path = ""
        self.query = ""
        self.endpoint = ""
        self.arg = ""
        self.hasher: Any = None
        self.length = 0
        self.kept: bytearray | None = bytearray()
        self.keep_alive = True


class _BadRequest:
    """Queue marker: the parser failed here; answer 400 and close."""

    __slots__ = ()


_BAD = _BadRequest()


def _route(path: str) -> tuple[str, str]:
    parts = path.split("/")
    last = parts[-1]
    if len(parts) >= 3 and parts[-2] in _WITH_ARG:
        return parts[-2], last
    if last in _NO_ARG:
        return last, ""
    return "", ""


class EchoProtocol(asyncio.Protocol):
    """One client connection of the echo server."""

    # -- per-connection state ------------------------------------------------
    def __init__(self, stats: EchoStats) -> None:
        self._stats = stats
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[_Request | _BadRequest] = deque()
        self._task: asyncio.Task[None] | None = None
        self._task_request: _Request | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._closing = False  # no further requests will be read or answered
        self._closed = False
        # -- per-request state (the request being parsed) --
        self._req: _Request | None = None
        self._url_parts: list[bytes] = []

    # -- asyncio.Protocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._closing = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()
        if self._task is None:
            self._process_queue()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Answer what was parsed, then close: the echo speaks no other protocol.
            self._stop_reading()
        except httptools.HttpParserError:
            self._stats.parse_errors += 1
            self._queue.append(_BAD)
            self._stop_reading()
        self._process_queue()

    # -- httptools callbacks --------------------------------------------------
    def on_message_begin(self) -> None:
        self._stats.started += 1
        self._req = _Request()
        self._url_parts = []

    def on_url(self, url: bytes) -> None:
        self._url_parts.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._req is not None
        self._req.headers.append((name, value))

    def on_headers_complete(self) -> None:
        req = self._req
        assert req is not None
        parser = self._parser
        req.url = url = b"".join(self._url_parts)
        req.method = parser.get_method()
        req.head = req.method == b"HEAD"
        req.version = parser.get_http_version()
        text = url.decode("latin-1")
        path, _, req.query = text.partition("?")
        req.path = path
        req.endpoint, req.arg = _route(path)
        if req.endpoint == "__count":
            self._stats.count_hits += 1
        if self._task is None and not self._queue:
            for name, value in req.headers:
                if name.lower() == b"expect" and value.lower() == b"100-continue":
                    assert self._transport is not None
                    self._transport.write(_CONTINUE)
                    break

    def on_body(self, body: bytes) -> None:
        req = self._req
        assert req is not None
        if req.hasher is None:
            req.hasher = hashlib.sha256(body)
        else:
            req.hasher.update(body)
        req.length += len(body)
        kept = req.kept
        if kept is not None:
            if len(kept) + len(body) <= ECHO_BODY_LIMIT:
                kept += body
            else:
                req.kept = None

    def on_message_complete(self) -> None:
        req = self._req
        assert req is not None
        req.keep_alive = self._parser.should_keep_alive()
        self._req = None
        self._queue.append(req)

    # -- flow control -----------------------------------------------------------
    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        want_pause = self._closing or self._write_paused or len(self._queue) > _MAX_QUEUE
        if want_pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not want_pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _stop_reading(self) -> None:
        self._closing = True
        self._update_reading()

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        if self._closed:
            raise ConnectionResetError("connection lost")
        if self._write_paused:
            waiter = self._loop.create_future()
            self._drain_waiter = waiter
            await waiter
            if self._closed:
                raise ConnectionResetError("connection lost")

    # -- answering, in order ----------------------------------------------------
    def _process_queue(self) -> None:
        transport = self._transport
        if transport is None:
            return
        out: list[bytes] = []
        size = 0
        queue = self._queue
        while queue and self._task is None and not self._closed:
            req = queue.popleft()
            if isinstance(req, _BadRequest):
                out.append(_error_response(400, "bad request"))
                self._finish(out, close=True)
                return
            result = self._respond(req)
            if isinstance(result, bytes):
                out.append(result)
                size += len(result)
                if not req.keep_alive:
                    self._finish(out, close=True)
                    return
                if size >= _FLUSH_AT:
                    transport.write(b"".join(out))
                    out.clear()
                    size = 0
                    if self._write_paused:
                        break
            elif result is None:  # the request closed the connection itself
                self._finish(out, close=False)
                return
            else:
                if out:
                    transport.write(b"".join(out))
                    out.clear()
                self._task_request = req
                self._task = self._loop.create_task(result)
                self._task.add_done_callback(self._on_task_done)
                break
        if out:
            transport.write(b"".join(out))
        if self._closing and not queue and self._task is None and not self._closed:
            self._finish([], close=True)
            return
        self._update_reading()

    def _finish(self, out: list[bytes], *, close: bool) -> None:
        """Write what is pending and, if asked, close after it (rest of queue dropped)."""
        transport = self._transport
        assert transport is not None
        if out:
            transport.write(b"".join(out))
        self._closing = True
        self._queue.clear()
        if close and not self._closed:
            transport.close()

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        req = self._task_request
        self._task = None
        self._task_request = None
        if self._closed or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if self._transport is not None:
                self._transport.abort()
            return
        if req is not None and not req.keep_alive:
            self._finish([], close=True)
            return
        self._process_queue()

    def _respond(self, req: _Request) -> bytes | Coroutine[Any, Any, None] | None:
        """The response as bytes, a coroutine that writes it, or None (connection aborted)."""
        endpoint = req.endpoint
        if not endpoint:
            return self._echo(req, b"")
        if endpoint == "bytes" or endpoint == "chunked" or endpoint == "close":
            n = _parse_size(req.arg)
            if n is None:
                return _error_response(400, "bad size", req)
            return self._generated(req, n, endpoint)
        if endpoint == "status":
            try:
                code = int(req.arg)
            except ValueError:
                code = 0
            if not 200 <= code <= 599:
                return _error_response(400, "bad status code", req)
            return self._status(req, code)
        if endpoint == "delay":
            try:
                seconds = float(req.arg)
            except ValueError:
                seconds = -1.0
            if not 0.0 <= seconds <= MAX_DELAY:
                return _error_response(400, "bad delay", req)
            return self._delayed(req, seconds)
        if endpoint == "headers-out":
            return self._headers_out(req)
        if endpoint == "reset":
            self._reset()
            return None
        # endpoint == "__count"
        body = self._stats.as_json()
        return _json_response(req, body)

    def _echo(self, req: _Request, extra_headers: bytes) -> bytes:
        kept = req.kept
        text: str | None = None
        if kept is not None:
            try:
                text = kept.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        body = orjson.dumps(
            {
                "method": req.method.decode("latin-1"),
                "url": req.url.decode("latin-1"),
                "path": req.path,
                "query": req.query,
                "http_version": req.version,
                "headers": [
                    [name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in req.headers
                ],
                "body_length": req.length,
                "body_sha256": _EMPTY_SHA256 if req.hasher is None else req.hasher.hexdigest(),
                "body": text,
            }
        )
        return _json_response(req, body, extra_headers)

    def _status(self, req: _Request, code: int) -> bytes:
        head = [_STATUS_LINES[code], keep_alive_header(req)]
        if code in _NO_BODY_STATUS:
            head.append(b"\r\n")
            return b"".join(head)
        body = b'{"status":%d}' % code
        head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        if not req.head:
            head.append(body)
        return b"".join(head)

    def _headers_out(self, req: _Request) -> bytes:
        lines = []
        for name, value in parse_qsl(req.query, keep_blank_values=True):
            if not _safe_header(name, value):
                return _error_response(400, "bad header in query", req)
            lname = name.lower()
            if lname in ("content-length", "transfer-encoding"):
                continue
            if lname == "connection" and "close" in [
                t.strip().lower() for t in value.split(",")
            ]:
                req.keep_alive = False
            lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        return self._echo(req, b"".join(lines))

    def _generated(self, req: _Request, n: int, kind: str) -> bytes | Coroutine[Any, Any, None]:
        if kind == "close":
            req.keep_alive = False
            head = _STATUS_LINES[200] + _OCTETS + _CONN_CLOSE + b"\r\n"
        elif kind == "chunked":
            head = _STATUS_LINES[200] + _OCTETS + _CHUNKED + keep_alive_header(req) + b"\r\n"
        else:
            head = (
                _STATUS_LINES[200]
                + _OCTETS
                + keep_alive_header(req)
                + b"Content-Length: %d\r\n\r\n" % n
            )
        if req.head:
            return head
        if n > STREAM_THRESHOLD:
            return self._stream(head, n, kind == "chunked")
        if kind != "chunked":
            return head + pattern(n)
        # Small chunked bodies still come in several chunks (up to 4).
        out = [head]
        step = max(1, math.ceil(n / 4))
        for offset in range(0, n, step):
            piece = pattern(min(step, n - offset), offset)
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        out.append(_LAST_CHUNK)
        return b"".join(out)

    async def _stream(self, head: bytes, n: int, chunked: bool) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(head)
        full_chunk = b"%x\r\n" % PIECE
        remaining = n
        while remaining > 0:
            await self._drain()
            size = PIECE if remaining >= PIECE else remaining
            piece = _BLOCK if size == PIECE else _BLOCK[:size]
            if chunked:
                prefix = full_chunk if size == PIECE else b"%x\r\n" % size
                transport.write(b"".join((prefix, piece, b"\r\n")))
            else:
                transport.write(piece)
            remaining -= size
        if chunked:
            transport.write(_LAST_CHUNK)

    async def _delayed(self, req: _Request, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self._transport is not None
        if not self._closed:
            self._transport.write(self._echo(req, b""))

    def _reset(self) -> None:
        transport = self._transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST, not FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._closing = True
        self._queue.clear()
        transport.abort()


def keep_alive_header(req: _Request) -> bytes:
    """The Connection header (or nothing) this request's response carries."""
    if not req.keep_alive:
        return _CONN_CLOSE
    if req.version == "1.0":
        return _CONN_KEEP_ALIVE
    return b""


def _json_response(req: _Request, body: bytes, extra_headers: bytes = b"") -> bytes:
    head = b"%s%s%sContent-Length: %d\r\n\r\n" % (
        _JSON_200,
        keep_alive_header(req),
        extra_headers,
        len(body),
    )
    return head if req.head else head + body


def _error_response(code: int, message: str, req: _Request | None = None) -> bytes:
    """A JSON error; without ``req`` (unparsable request) it closes the connection."""
    body = orjson.dumps({"error": message})
    head = b"%sContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (
        _STATUS_LINES[code],
        _CONN_CLOSE if req is None else keep_alive_header(req),
        len(body),
    )
    return head if req is not None and req.head else head + body


def _parse_size(text: str) -> int | None:
    if not text.isdigit() or len(text) > 15:
        return None
    return int(text)


def _safe_header(name: str, value: str) -> bool:
    if not name or any(c in name for c in " \t\r\n:\x00"):
        return False
    return not any(c in value for c in "\r\n\x00")


async def serve_echo(host: str, port: int) -> asyncio.Server:
    """Start an echo server on ``host:port`` (port 0: any free port) in the running loop."""
    loop = asyncio.get_running_loop()
    stats = EchoStats()
    return await loop.create_server(
        lambda: EchoProtocol(stats), host, port, reuse_address=True, backlog=1024
    )


def run_echo(host: str, port: int) -> None:
    """Run an echo server on uvloop until SIGTERM or SIGINT, then return.

    Prints ``fastgate echo listening on http://HOST:PORT`` once it accepts
    connections (with the real port when ``port`` is 0).
    """
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await serve_echo(host, port)
        bound = server.sockets[0].getsockname()
        print(f"fastgate echo listening on http://{bound[0]}:{bound[1]}", flush=True)
        await stop.wait()
        server.close()

    with contextlib.suppress(KeyboardInterrupt):  # a SIGINT before the handler is set
        uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    """``python -m fastgate.echo [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(prog="fastgate-echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    run_echo(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
