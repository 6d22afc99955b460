"""The upstream side of the proxy: keep-alive connection pools per target.

Theory of operation
-------------------
* One :class:`UpstreamPool` per (scheme, host, port).  Idle connections are
  kept on a LIFO stack (the most recently used is the warmest and the least
  likely to have been closed by the upstream's idle timeout), at most
  ``max_idle`` of them.  A miss opens a new connection; that is the only place
  the proxy creates a Task.
* One request at a time per connection (no upstream pipelining).  The
  response is parsed by httptools' response parser and relayed as it arrives:
  the head rewritten (hop-by-hop fields dropped, framing decided for the
  client), the body passed through or re-chunked.  Everything produced by one
  read is written to the client in one call.
* llhttp cannot be told that a response answers a HEAD request, so a HEAD
  exchange ends when the response head is complete, and the connection gets
  a fresh parser; bytes after such a head mean a broken upstream, and the
  connection is not reused.
* A reused connection that fails before any byte of the response arrives is
  retried once on a new connection when that is safe (the request has no body
  and nothing of the response reached the client).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, cast

import httptools

from fastgate.server import responses
from fastgate.server.headers import BODY_NONE, Header, filter_response_headers
from fastgate.server.protocol import PAUSE_UPSTREAM

if TYPE_CHECKING:
    from fastgate.server.protocol import Exchange

log = logging.getLogger("fastgate.upstream")

# How the response body is relayed to the client.
RELAY_RAW = 0
RELAY_CHUNKED = 1

TERMINAL_CHUNK = b"0\r\n\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


class UpstreamPool:
    """Keep-alive connections to one upstream target."""

    __slots__ = ("busy", "closed", "host", "idle", "loop", "max_idle", "port", "server_hostname",
                 "ssl")

    def __init__(self, loop: asyncio.AbstractEventLoop, scheme: str, host: str, port: int,
                 max_idle: int) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if scheme == "https" else None
        self.server_hostname = host if self.ssl is not None else None
        self.idle: list[UpstreamConnection] = []
        self.busy: set[UpstreamConnection] = set()
        self.closed = False

    def acquire(self) -> UpstreamConnection | None:
        """An idle connection, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None:
                self.busy.add(conn)
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        self.busy.discard(conn)
        if self.closed or len(self.idle) >= self.max_idle or conn.transport is None:
            conn.close()
        else:
            self.idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        self.busy.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def connect(self, ex: Exchange) -> None:
        """Open a new connection for ``ex`` (asynchronously)."""
        task = self.loop.create_task(self._connect())
        task.add_done_callback(lambda t: self._connected(t, ex))

    async def _connect(self) -> UpstreamConnection:
        _, conn = await self.loop.create_connection(
            lambda: UpstreamConnection(self), self.host, self.port,
            ssl=self.ssl, server_hostname=self.server_hostname,
        )
        return conn

    def _connected(self, task: asyncio.Task[UpstreamConnection], ex: Exchange) -> None:
        exc = task.exception()
        client = ex.client
        if exc is not None:
            log.warning("upstream %s:%d unreachable: %s", self.host, self.port, exc)
            client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)
            return
        conn = task.result()
        if client.transport is None or self.closed:
            conn.close()
            return
        self.busy.add(conn)
        conn.attach(ex)

    def close(self) -> None:
        """Close idle connections; busy ones close when their exchange ends."""
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream."""

    __slots__ = (
        "activity",
        "done",
        "exchange",
        "headers",
        "idle_ticks",
        "in_head",
        "parser",
        "pool",
        "reading_paused",
        "relay",
        "reusable",
        "seen_activity",
        "skip",
        "transport",
        "until_close",
        "used",
        "out",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.used = 0
        self.reusable = True
        self.reading_paused = False
        self.activity = 0
        self.seen_activity = 0
        self.idle_ticks = 0
        # Per-response state.
        self.headers: list[Header] = []
        self.in_head = False
        self.skip = False
        self.done = False
        self.until_close = False
        self.relay = RELAY_RAW
        self.out: list[bytes] = []

    # -- exchange life cycle -----------------------------------------------------

    def attach(self, ex: Exchange) -> None:
        """Start sending ``ex``'s request on this connection."""
        self.exchange = ex
        ex.upstream = self
        self.used += 1
        self.done = False
        self.skip = False
        self.until_close = False
        if ex.client.write_paused:
            self.pause_reading()
        self.send_pending()

    def send_pending(self) -> None:
        ex = self.exchange
        transport = self.transport
        if ex is None or transport is None:
            return
        pending = ex.pending
        if len(pending) == 1:
            transport.write(pending[0])
        else:
            transport.writelines(pending)
        ex.pending = []
        ex.pending_bytes = 0

    def abandon(self) -> None:
        """The client went away or sent a malformed request mid-exchange: this
        connection is somewhere inside a message and cannot be reused."""
        self.exchange = None
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        ex = self.exchange
        assert ex is not None
        self.exchange = None
        ex.upstream = None
        if ex.is_head:
            self.parser = httptools.HttpResponseParser(self)
        if self.reading_paused:
            self.resume_reading()
        if self.reusable and ex.request_done:
            self.pool.release(self)
        else:
            self.pool.busy.discard(self)
            self.close()
        ex.client.response_done(ex)

    # -- connection events -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.discard(self)
        ex = self.exchange
        if ex is None:
            return
        self.exchange = None
        ex.upstream = None
        client = ex.client
        if client.transport is None:
            return
        if self.until_close and ex.response_started and not self.done:
            # A close-delimited response ends here.
            if self.relay == RELAY_CHUNKED:
                client.transport.write(TERMINAL_CHUNK)
            client.response_done(ex)
        elif not ex.response_started:
            if (self.used > 1 and not ex.retried and ex.request_done
                    and ex.body_kind == BODY_NONE and not self.in_head):
                client.retry(ex)
            else:
                client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)
        else:
            client.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost does the rest

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        ex = self.exchange
        if ex is None:
            # Bytes nobody asked for: the connection is out of sync.
            self.reusable = False
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(ex, exc)
            return
        out = self.out
        if out:
            transport = ex.client.transport
            if transport is not None:
                if len(out) == 1:
                    transport.write(out[0])
                else:
                    transport.writelines(out)
            out.clear()
        if self.done:
            self._finish()

    def _broken(self, ex: Exchange, exc: Exception) -> None:
        log.warning("upstream %s:%d sent an invalid response: %s", self.pool.host,
                    self.pool.port, exc)
        self.exchange = None
        ex.upstream = None
        self.reusable = False
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()
        if ex.response_started:
            ex.client.abort()
        else:
            ex.client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:
            self.reusable = False  # a second response to one request
        self.in_head = True
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # else a trailer field: not forwarded
            self.headers.append((name.lower(), name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        ex = self.exchange
        if ex is None:
            return
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise httptools.HttpParserError("unexpected 101 Switching Protocols")
            self.skip = True  # an interim response (100, 103): not relayed
            return
        if not parser.should_keep_alive():
            self.reusable = False
        lines, has_length, has_chunked = filter_response_headers(self.headers)
        status_line = responses.STATUS_LINES.get(status)
        if status_line is None:
            status_line = b"HTTP/1.1 %d Unknown\r\n" % status
        close = ex.close_after or ex.client.shutting_down or not ex.request_done
        no_body = ex.is_head or status == 204 or status == 304
        self.relay = RELAY_RAW
        if not no_body and not has_length:
            if not has_chunked:
                self.until_close = True
                self.reusable = False
            if ex.http11:
                lines.append(_CHUNKED)
                self.relay = RELAY_CHUNKED
            else:
                close = True
        if close:
            lines.append(_CLOSE)
            ex.close_after = True
        elif not ex.http11:
            lines.append(_KEEP_ALIVE)
        lines.append(b"\r\n")
        self.out.append(status_line + b"".join(lines))
        ex.response_started = True
        if ex.is_head:
            self.done = True

    def on_body(self, data: bytes) -> None:
        if self.done or self.skip:
            self.reusable = False  # a body where none may be
            return
        if self.relay == RELAY_CHUNKED:
            self.out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.out.append(data)

    def on_message_complete(self) -> None:
        if self.skip:
            self.skip = False
            return
        if self.done:
            return
        if self.relay == RELAY_CHUNKED:
            self.out.append(TERMINAL_CHUNK)
        self.done = True

    # -- flow control ------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.pause_reading(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        self.activity += 1
        ex = self.exchange
        if ex is not None:
            ex.client.resume_reading(PAUSE_UPSTREAM)

    # -- timeouts --------------------------------------------------------------------

    def check_timeout(self, timeout_ticks: int) -> None:
        """Called by the sweeper every tick while the connection is busy."""
        if self.activity != self.seen_activity:
            self.seen_activity = self.activity
            self.idle_ticks = 0
            return
        ex = self.exchange
        if ex is None or ex.client.write_paused:
            self.idle_ticks = 0
            return
        self.idle_ticks += 1
        if self.idle_ticks < timeout_ticks:
            return
        self.exchange = None
        ex.upstream = None
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)
        if ex.response_started:
            ex.client.abort()
        else:
            ex.client.upstream_failed(ex, responses.GATEWAY_TIMEOUT,
                                      responses.GATEWAY_TIMEOUT_CLOSE)
