"""The gateway's own outbound HTTP/1.1 client: what authentication methods use
to fetch a JWKS, introspect a token or notify a URL (never the proxy path,
which has its own pools in :mod:`fastgate._core.proxy`).

* ``http`` and ``https`` (the system's CA store by default, or the
  ``ssl.SSLContext`` given), a ``Host`` header, ``Content-Length`` bodies.
* Responses framed by Content-Length, chunked encoding or the close, parsed
  by llhttp (httptools); a body larger than ``max_body`` is an error, never
  buffered whole.
* Keep-alive: idle connections are kept per origin (at most
  ``max_idle_per_origin``) and reused; a reused connection that turns out to
  be closed before any byte of the answer is replaced once.
* Every request is bounded by ``timeout`` seconds in all (connect, send,
  answer).  Failures raise :class:`OutboundError` with the reason; the URL's
  userinfo and query are never put in messages (they may hold credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from fastgate import __version__

__all__ = ["HttpClient", "OutboundError", "OutboundResponse"]

USER_AGENT = f"fastgate/{__version__}"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 4 * 1024 * 1024
_READ_SIZE = 65536


class OutboundError(Exception):
    """An outbound request failed: unreachable, timed out, malformed or too large."""


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status: int
    #: (lower-cased name, value) pairs as received.
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return None


class _Reader:
    """httptools callbacks collecting one response."""

    def __init__(self, max_body: int, head_only: bool) -> None:
        self.max_body = max_body
        self.head_only = head_only
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.done = False
        self.too_large = False
        self.keep_alive = False
        #: The body ends when the connection does (no length, not chunked).
        self.until_close = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.head_done = True
        # llhttp knows this only while the message is being parsed.
        self.keep_alive = self.parser.should_keep_alive()
        names = {name for name, _value in self.headers}
        status = self.parser.get_status_code()
        self.until_close = ("content-length" not in names and "transfer-encoding" not in names
                            and status not in (204, 304) and status >= 200)
        if self.head_only:
            self.done = True

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_body:
            self.too_large = True
        elif not self.too_large:
            self.body.append(data)

    def on_message_complete(self) -> None:
        self.done = True


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """An HTTP/1.1 client with per-origin keep-alive (see the module docstring)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 max_idle_per_origin: int = 4) -> None:
        self._ssl = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def request(self, method: str, url: str, *,
                      headers: Mapping[str, str] | None = None, body: bytes = b"",
                      timeout: float = DEFAULT_TIMEOUT,
                      max_body: int = DEFAULT_MAX_BODY) -> OutboundResponse:
        """Send one request; raises :class:`OutboundError` (also on timeout)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise OutboundError(f"not an http(s) URL: {_safe(url)}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise OutboundError(f"bad port in {_safe(url)}") from None
        origin = (scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            host += f":{parts.port}"
        given = headers or {}
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        if not any(name.lower() == "user-agent" for name in given):
            lines.append(f"User-Agent: {USER_AGENT}")
        for name, value in given.items():
            if "\r" in name + value or "\n" in name + value:
                raise OutboundError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(origin, head + body, method == "HEAD", max_body)
        except TimeoutError:
            raise OutboundError(f"{_safe(url)}: no answer within {timeout:g} s") from None

    async def _exchange(self, origin: tuple[str, str, int], request: bytes, head_only: bool,
                        max_body: int) -> OutboundResponse:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            try:
                return await self._send(origin, conn, request, head_only, max_body)
            except _Stale:
                conn.close()  # closed while idle: try the next, then a new one
        conn = await self._connect(origin)
        try:
            return await self._send(origin, conn, request, head_only, max_body)
        except _Stale:
            conn.close()
            raise OutboundError(f"{_origin(origin)} closed the connection without an answer") \
                from None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self._context() if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None, limit=_READ_SIZE)
        except (OSError, ssl.SSLError) as exc:
            raise OutboundError(f"cannot connect to {_origin(origin)}: {exc}") from None
        return _Connection(reader, writer)

    async def _send(self, origin: tuple[str, str, int], conn: _Connection, request: bytes,
                    head_only: bool, max_body: int) -> OutboundResponse:
        got_any = False
        collected = _Reader(max_body, head_only)
        parser = collected.parser
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            while not collected.done:
                data = await conn.reader.read(_READ_SIZE)
                if not data:
                    if not got_any:
                        raise _Stale
                    if not (collected.head_done and collected.until_close):
                        raise OutboundError(f"{_origin(origin)} closed mid-answer")
                    collected.done = True  # a close-delimited body ends here
                    collected.keep_alive = False
                    break
                got_any = True
                parser.feed_data(data)
        except (ConnectionError, BrokenPipeError) as exc:
            conn.close()
            if not got_any:
                raise _Stale from None
            raise OutboundError(f"{_origin(origin)}: {exc}") from None
        except httptools.HttpParserError as exc:
            conn.close()
            raise OutboundError(f"{_origin(origin)} sent an invalid answer: {exc}") from None
        except BaseException:
            conn.close()
            raise
        if collected.too_large:
            conn.close()
            raise OutboundError(f"{_origin(origin)}: answer larger than {max_body} bytes")
        response = OutboundResponse(parser.get_status_code(), tuple(collected.headers),
                                    b"".join(collected.body))
        if collected.keep_alive and not collected.until_close and not conn.reader.at_eof():
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return response

    async def close(self) -> None:
        """Close the idle connections (and wait until they are closed)."""
        connections = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        for conn in connections:
            conn.close()
        for conn in connections:
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await conn.writer.wait_closed()


class _Stale(Exception):
    """A reused connection was closed before it answered anything."""


def _origin(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def _safe(url: str) -> str:
    """A URL for a message: no userinfo, no query (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
