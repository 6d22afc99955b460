"""The client side of the proxy: one :class:`ClientProtocol` per connection.

Theory of operation
-------------------
* httptools (llhttp in strict mode) parses the byte stream.  llhttp already
  refuses the framing that request smuggling starts with: Content-Length
  together with Transfer-Encoding, duplicate or malformed Content-Length,
  Transfer-Encoding whose last coding is not ``chunked``, bad chunk sizes,
  obsolete line folding, bare LF, invalid header names and values.  Any parser
  error answers 400 and closes the connection; nothing of that request is
  forwarded.
* Every parsed request becomes an :class:`Exchange` appended to ``queue``.
  ``queue[0]`` is the *active* exchange, the only one that may write a
  response, so pipelined requests are answered in order.  Requests behind it
  buffer their head and body (bounded: reading pauses past ``MAX_BUFFERED``).
* Bytes for the upstream produced while parsing one read are collected in
  ``Exchange.pending`` and sent after the parser returns.  A request found
  malformed later in the same read therefore never reaches the upstream.
* Flow control both ways: a client that does not read pauses the upstream
  connection's reading; an upstream that does not take the request body
  pauses the client's reading.
* Timeouts are not timers: the gateway's sweeper compares each connection's
  ``activity`` counter every tick (``TICK`` seconds), so the hot path only
  increments an integer.

The class is laid out as uvicorn's protocols are: per-connection state,
per-request (parser) state, parser callbacks, then flow control and the
exchange life cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from fastgate.server import responses
from fastgate.server.headers import (
    BODY_CHUNKED,
    BODY_NONE,
    BadRequestHead,
    Header,
    build_request_head,
)

if TYPE_CHECKING:
    from fastgate.server.gateway import ApiRoute, Gateway
    from fastgate.server.upstream import UpstreamConnection

log = logging.getLogger("fastgate.server")

#: Reasons for pausing the client's reading (a bit mask).
PAUSE_UPSTREAM = 1  # the upstream does not take the request body fast enough
PAUSE_BUFFER = 2  # too much of a request that is not yet streaming is buffered

#: Request bytes held for exchanges that cannot stream yet (pipelined, or
#: waiting for an upstream connection) before reading pauses.
MAX_BUFFERED = 256 * 1024
#: Largest request body the gateway reads for its own endpoints (/tyk/...).
MAX_ADMIN_BODY = 8 * 1024 * 1024

CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
PROTO_HTTP = b"http"


class HeadersTooLarge(Exception):
    """Raised inside a parser callback: the head exceeds ``max_header_bytes``."""


class Exchange:
    """One request and its response."""

    __slots__ = (
        "admin",
        "body",
        "body_kind",
        "client",
        "close_after",
        "expect_continue",
        "http11",
        "is_head",
        "keep_alive",
        "method",
        "path",
        "pending",
        "pending_bytes",
        "query",
        "request_done",
        "request_headers",
        "response",
        "response_started",
        "retried",
        "retry_head",
        "route",
        "started",
        "upstream",
    )

    def __init__(self, client: ClientProtocol, method: bytes, http11: bool, keep_alive: bool):
        self.client = client
        self.method = method
        self.is_head = method == b"HEAD"
        self.http11 = http11
        self.keep_alive = keep_alive
        self.route: ApiRoute | None = None
        self.path = b""
        self.query = b""
        self.request_headers: list[Header] = []
        #: Bytes for the upstream not yet written (the head, then body pieces).
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.body_kind = BODY_NONE
        self.expect_continue = False
        self.request_done = False
        #: A complete response the gateway answers itself (errors, /tyk/...).
        self.response: bytes | None = None
        self.response_started = False
        self.close_after = not keep_alive
        self.started = False
        self.retried = False
        #: The request head, kept for a retry while the request has no body.
        self.retry_head = b""
        self.upstream: UpstreamConnection | None = None
        #: Requests for the gateway's own endpoints collect their body here.
        self.admin = False
        self.body: list[bytes] | None = None


class ClientProtocol(asyncio.Protocol):
    """Serves one client connection."""

    __slots__ = (
        "activity",
        "client_ip",
        "current",
        "gateway",
        "head_size",
        "headers",
        "idle_ticks",
        "in_head",
        "max_header_bytes",
        "parser",
        "paused",
        "queue",
        "seen_activity",
        "shutting_down",
        "transport",
        "url",
        "write_paused",
    )

    def __init__(self, gateway: Gateway) -> None:
        # Global state.
        self.gateway = gateway
        self.max_header_bytes = gateway.max_header_bytes
        # Per-connection state.
        self.transport: asyncio.Transport | None = None
        self.client_ip = b""
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()
        self.paused = 0
        self.write_paused = False
        self.shutting_down = False
        self.activity = 0
        self.seen_activity = 0
        self.idle_ticks = 0
        # Per-request state (the request being parsed).
        self.current: Exchange | None = None
        self.in_head = False
        self.head_size = 0
        self.url = b""
        self.headers: list[Header] = []

    # -- connection events ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0].encode() if isinstance(peer, tuple) else b"unknown"
        self.gateway.connections.add(self)
        if self.gateway.shutting_down:
            self.shutting_down = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.connections.discard(self)
        for ex in self.queue:
            if ex.upstream is not None:
                ex.upstream.abandon()
        self.queue.clear()
        self.current = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        if self.in_head:
            # A head still incomplete after max_header_bytes: refuse before the
            # parser buffers any more of it.
            self.head_size += len(data)
            if self.head_size > self.max_header_bytes:
                self._refuse(responses.HEADERS_TOO_LARGE_CLOSE)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._on_upgrade()
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadersTooLarge):
                self._refuse(responses.HEADERS_TOO_LARGE_CLOSE)
            else:
                log.error("request handling failed", exc_info=exc.__context__)
                self._refuse(responses.error_response(500, "Internal error", close=True))
            return
        except httptools.HttpParserError as exc:
            self._refuse(responses.error_response(400, _parser_message(exc), close=True))
            return
        queue = self.queue
        if queue:
            ex = queue[0]
            if not ex.started:
                self._advance()
            elif ex.pending and ex.upstream is not None:
                ex.upstream.send_pending()
        current = self.current
        if current is not None and not self.paused & PAUSE_BUFFER:
            if current.pending_bytes > MAX_BUFFERED and (not queue or current is not queue[0]
                                                         or current.upstream is None):
                self.pause_reading(PAUSE_BUFFER)

    def eof_received(self) -> bool | None:
        # The client half-closed: answer what was asked, then close.
        if not self.queue:
            return None
        for ex in self.queue:
            ex.close_after = True
        return True

    # -- parser callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_size = 0
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.max_header_bytes:
            raise HeadersTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.max_header_bytes:
            raise HeadersTooLarge

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        ex = Exchange(self, parser.get_method(), parser.get_http_version() == "1.1",
                      parser.should_keep_alive())
        if self.shutting_down:
            ex.close_after = True
        self.current = ex
        self.queue.append(ex)
        self._route(ex)

    def on_body(self, data: bytes) -> None:
        ex = self.current
        if ex is None or ex.response is not None:
            return  # discarding the body of a request already answered
        if ex.body is not None:
            ex.body.append(data)
            ex.pending_bytes += len(data)
            if ex.pending_bytes > MAX_ADMIN_BODY:
                ex.body = None
                self._answer(ex, responses.error_response(413, "Request body too large",
                                                          close=True), close=True)
            return
        if ex.body_kind == BODY_CHUNKED:
            ex.pending += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            ex.pending.append(data)
        ex.pending_bytes += len(data)

    def on_message_complete(self) -> None:
        ex = self.current
        self.current = None
        if ex is None:
            return
        ex.request_done = True
        if ex.response is not None or ex.route is None:
            if ex.admin and ex.body is not None:
                self._dispatch_admin(ex)
            return
        if ex.body_kind == BODY_CHUNKED:
            ex.pending.append(b"0\r\n\r\n")

    # -- routing ---------------------------------------------------------------

    def _route(self, ex: Exchange) -> None:
        url = self.url
        qpos = url.find(b"?")
        if qpos >= 0:
            path, query = url[:qpos], url[qpos + 1:]
        else:
            path, query = url, b""
        if not path.startswith(b"/"):
            path = _origin_path(path)
            if path is None:
                self._answer(ex, responses.error_response(400, "Malformed request target",
                                                          close=True), close=True)
                return
        if (b"/." in path or b"%" in path) and _has_dot_segment(path):
            self._answer(ex, responses.error_response(400, "Malformed request path",
                                                      close=True), close=True)
            return
        ex.path = path
        ex.query = query
        gateway = self.gateway
        if path == b"/hello" or path.startswith(b"/tyk/"):
            ex.admin = True
            ex.request_headers = self.headers
            ex.body = []
            return
        route = gateway.router.match(path)
        if route is None:
            self._answer(ex, responses.NOT_FOUND)
            return
        if route.refusal is not None:
            self._answer(ex, route.refusal)
            return
        if route.strip:
            rest = path[len(route.listen_path):]
            target = route.target_path + (rest if rest.startswith(b"/") else b"/" + rest)
        else:
            target = route.target_path + path if route.target_path else path
        if query:
            target += b"?" + query
        try:
            head, client_host, body_kind, expect = build_request_head(
                ex.method, target, self.headers,
                host=route.host_header, client_ip=self.client_ip, proto=PROTO_HTTP,
            )
        except BadRequestHead as exc:
            self._answer(ex, responses.error_response(400, str(exc), close=True), close=True)
            return
        if client_host is None and ex.http11:
            self._answer(ex, responses.error_response(400, "Missing Host header", close=True),
                         close=True)
            return
        if body_kind == BODY_CHUNKED and not ex.http11:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            self._answer(ex, responses.error_response(400, "Transfer-Encoding in HTTP/1.0",
                                                      close=True), close=True)
            return
        ex.route = route
        ex.body_kind = body_kind
        ex.expect_continue = expect and ex.http11
        ex.pending.append(head)
        if body_kind == BODY_NONE:
            ex.retry_head = head

    def _on_upgrade(self) -> None:
        # llhttp stops at a request asking for a protocol upgrade.  fastgate
        # does not tunnel upgrades: the request is proxied without Upgrade
        # (a hop-by-hop field) and the connection closes after the answer,
        # since whatever follows in the stream is not HTTP/1.1 we can frame.
        ex = self.current
        self.current = None
        if ex is None:
            self._refuse(responses.error_response(400, "Malformed request", close=True))
            return
        ex.close_after = True
        ex.request_done = True
        if ex.body_kind != BODY_NONE and ex.response is None:
            ex.pending.clear()
            ex.response = responses.error_response(400, "Upgrade with a body", close=True)
        self.pause_reading(PAUSE_BUFFER)
        if ex.admin and ex.body is not None:
            self._dispatch_admin(ex)
        self._advance()

    # -- answering -------------------------------------------------------------

    def _answer(self, ex: Exchange, response: bytes, *, close: bool = False) -> None:
        """Give ``ex`` a response of the gateway's own (the body is discarded)."""
        ex.response = response
        ex.pending.clear()
        ex.pending_bytes = 0
        if close:
            ex.close_after = True
            self.current = None
            self.pause_reading(PAUSE_BUFFER)

    def _refuse(self, response: bytes) -> None:
        """A malformed request: answer it after those before it, then close."""
        self.current = None
        self.in_head = False
        self.pause_reading(PAUSE_BUFFER)
        queue = self.queue
        if queue and queue[-1].response is None and not queue[-1].request_done:
            # The malformed bytes belong to this request: it is never forwarded.
            ex = queue[-1]
            if ex.upstream is not None and ex.started:
                ex.upstream.abandon()
                ex.upstream = None
            ex.route = None
            ex.admin = False
        else:
            ex = Exchange(self, b"", True, False)
            queue.append(ex)
        ex.request_done = True
        ex.response = response
        ex.close_after = True
        ex.pending.clear()
        self._advance()

    def _dispatch_admin(self, ex: Exchange) -> None:
        body = b"".join(ex.body) if ex.body else b""
        ex.body = None
        result = self.gateway.admin.handle(ex.method, ex.path, ex.query,
                                           ex.request_headers, body)
        if isinstance(result, bytes):
            ex.response = result if not ex.is_head else _strip_body(result)
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(lambda t, ex=ex: self._admin_done(ex, t))

    def _admin_done(self, ex: Exchange, task: asyncio.Future[bytes]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("admin request failed", exc_info=exc)
            ex.response = responses.error_response(500, "Internal error")
        else:
            result = task.result()
            ex.response = result if not ex.is_head else _strip_body(result)
        if self.transport is not None and self.queue and self.queue[0] is ex:
            self._advance()

    def _advance(self) -> None:
        """Write the responses that are ready, in order, and start the next
        proxied exchange."""
        queue = self.queue
        transport = self.transport
        while queue and transport is not None:
            ex = queue[0]
            response = ex.response
            if response is None:
                if ex.admin or ex.started:
                    return  # waiting for the handler or the upstream
                self._start(ex)
                return
            if ex.admin and not ex.request_done:
                return
            queue.popleft()
            if ex.close_after or self.shutting_down:
                if not ex.close_after:
                    response = _with_close(response)
                transport.write(response)
                self._close()
                return
            transport.write(response)

    def _start(self, ex: Exchange) -> None:
        route = ex.route
        assert route is not None
        ex.started = True
        if ex.expect_continue and not ex.request_done and self.transport is not None:
            self.transport.write(CONTINUE_100)
        conn = route.pool.acquire()
        if conn is None:
            route.pool.connect(ex)
        else:
            conn.attach(ex)
        if self.paused & PAUSE_BUFFER and self.current is ex:
            self.resume_reading(PAUSE_BUFFER)

    def retry(self, ex: Exchange) -> None:
        """The upstream connection broke before answering; try a new one once."""
        ex.retried = True
        assert ex.route is not None
        ex.pending = [ex.retry_head]
        ex.route.pool.connect(ex)

    def upstream_failed(self, ex: Exchange, response: bytes, response_close: bytes) -> None:
        """The upstream could not answer ``ex`` (refused, reset, timeout)."""
        ex.upstream = None
        if not ex.request_done:
            # The rest of the body has nowhere to go: answer and close.
            self._answer(ex, response_close, close=True)
        else:
            ex.response = response
        if self.queue and self.queue[0] is ex:
            self._advance()

    def response_done(self, ex: Exchange) -> None:
        """The upstream's response to ``ex`` has been relayed completely."""
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        if self.transport is None:
            return
        if ex.close_after or self.shutting_down:
            self._close()
            return
        if queue:
            self._advance()

    def abort(self) -> None:
        """Drop the connection (a response cannot be completed)."""
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.close()

    # -- flow control ----------------------------------------------------------

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.queue:
            conn = self.queue[0].upstream
            if conn is not None:
                conn.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.activity += 1
        if self.queue:
            conn = self.queue[0].upstream
            if conn is not None:
                conn.resume_reading()

    # -- life cycle --------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop after the responses in flight (graceful shutdown)."""
        self.shutting_down = True
        if not self.queue and not self.in_head and self.current is None:
            self._close()

    def check_timeouts(self, read_ticks: int, write_ticks: int, idle_ticks: int) -> None:
        """Called by the sweeper every tick."""
        if self.activity != self.seen_activity:
            self.seen_activity = self.activity
            self.idle_ticks = 0
            return
        self.idle_ticks += 1
        transport = self.transport
        if transport is None:
            return
        if self.queue and self.queue[0].started:
            if self.write_paused and self.idle_ticks >= write_ticks:
                transport.abort()
            return  # waiting for the upstream: its own timeout governs
        if self.in_head or self.current is not None or self.queue:
            if self.idle_ticks >= read_ticks:
                transport.abort()
        elif self.idle_ticks >= idle_ticks:
            transport.close()


# -- helpers --------------------------------------------------------------------


def _parser_message(exc: Exception) -> str:
    reason = str(exc) or "invalid HTTP"
    return "Malformed request: " + reason


def _origin_path(target: bytes) -> bytes | None:
    """The path of an absolute-form request target (RFC 9112 §3.2.2), or None."""
    lower = target[:8].lower()
    if lower.startswith(b"http://"):
        rest = target[7:]
    elif lower.startswith(b"https://"):
        rest = target[8:]
    else:
        return None
    slash = rest.find(b"/")
    return b"/" if slash < 0 else rest[slash:]


def _has_dot_segment(path: bytes) -> bool:
    """True for paths with ``.``/``..`` segments, plain or percent-encoded.

    An upstream that normalises ``/public/../admin`` to ``/admin`` would
    otherwise receive requests for an API other than the one the gateway
    routed (and authorised) them to.
    """
    plain = path.replace(b"%2e", b".").replace(b"%2E", b".")
    segments = plain.replace(b"%2f", b"/").replace(b"%2F", b"/").split(b"/")
    return b"." in segments or b".." in segments


def _strip_body(response: bytes) -> bytes:
    end = response.find(b"\r\n\r\n")
    return response if end < 0 else response[: end + 4]


def _with_close(response: bytes) -> bytes:
    end = response.find(b"\r\n\r\n")
    if end < 0 or b"\r\nConnection: close\r\n" in response[: end + 2]:
        return response
    return response[:end] + b"\r\nConnection: close" + response[end:]
