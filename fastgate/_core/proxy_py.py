"""The proxy's hot path: client protocol, upstream connections and pools,
header rewriting.  Written in Cython's pure-Python mode: this file is the
pure-Python twin, and the same source compiled by Cython is
``fastgate._core.proxy`` (see ``setup.py``), so the two cannot diverge.

Rules (everything that decides who writes what lives here)
----------------------------------------------------------
1. **One writer per connection side.**  Bytes reach a client's transport only
   from :class:`ClientProtocol` (its own answers, ``100 Continue``, the close)
   and from the :class:`UpstreamConnection` currently attached to the client's
   *active* exchange (the relayed response).  Bytes reach an upstream's
   transport only from that connection's :meth:`UpstreamConnection.send_pending`.
2. **Only the queue's head answers.**  Every parsed request becomes an
   :class:`Exchange` appended to the connection's queue; ``queue[0]`` is the
   active exchange, the only one that may write a response, so pipelined
   requests are answered in order.  Requests behind it buffer their head and
   body (bounded, rule 5).
3. **Nothing unchecked goes upstream.**  Bytes for the upstream produced while
   parsing one read are collected in ``Exchange.pending`` and sent after the
   parser returns, so a request found malformed later in the same read never
   reaches the upstream.
4. **Tasks only for I/O.**  A request gets a Task only when its middleware
   chain answers with an awaitable (a session not cached, a Redis decision),
   when a new upstream connection must be opened (:meth:`UpstreamPool.connect`),
   and when a /tyk/ handler needs I/O.  The common request runs in callbacks.
5. **Flow control, both ways, at one place each.**  Reading from a client
   pauses for a reason bit and resumes when that reason clears:
   ``PAUSE_UPSTREAM`` while the attached upstream does not take the request
   body fast enough (its transport's ``pause_writing``/``resume_writing``, and
   cleared whenever the exchange leaves the connection); ``PAUSE_BUFFER`` while
   more than ``MAX_BUFFERED`` bytes of the request being parsed wait with no
   upstream to take them (not connected yet, a middleware deciding, a request
   behind another), cleared by :meth:`UpstreamConnection.send_pending` when it
   flushes them.  A /tyk/ request's body is collected, bounded by
   ``MAX_ADMIN_BODY`` (413), and never pauses reading.  A client that does not
   read its response pauses the upstream's reading.
6. **Closing never loses an answer.**  When the gateway closes a connection
   after answering (a refusal before the body was read, ``Connection: close``,
   a malformed request), it *lingers* as nginx does: shuts its sending side
   down, reads and discards what the client still sends, and closes at the
   client's EOF or when a bound is reached (``lingering_time`` in all,
   ``lingering_timeout`` of silence, ``lingering_max_bytes``), so the client
   reads the answer instead of a TCP reset.  TLS cannot half-close: there the
   connection lingers only while a request is partly received, and closes at
   once otherwise.
7. **Timeouts are not timers.**  The gateway's sweeper calls
   :meth:`ClientProtocol.check_timeouts` every tick with the tick count; the
   hot path only increments an ``activity`` integer.  A request head must be
   complete within ``read_header_timeout`` of its first byte (of the
   connection, for the first request): a client trickling header lines cannot
   hold a connection.
8. **Upstream writes go out once per loop iteration.**  :meth:`send_pending`
   queues the bytes on the connection and the connection on its loop's
   :class:`UpstreamWrites`, which writes every queued connection in one burst
   when the callbacks of the current iteration are done (``call_soon``).  A
   write that finds the upstream process asleep wakes it, and waking a process
   on another CPU (an IPI; a VM exit in a guest) cost ~24 us of the sender's
   CPU per request when each request's write woke it alone; in a burst only
   the first write wakes it.  HAProxy batches its sends the same way.
   Only small writes wait (a request head, a small body): a body streaming in
   is written at once, so flow control (rule 5) still pauses the client
   before libuv reads on.  Closing a connection writes what it queued first;
   aborting drops it.
9. **Every exchange ends in one place.**  :meth:`ClientProtocol._finished` runs
   once per exchange -- proxied, refused, answered by the gateway itself, or
   dropped when the connection went away -- and calls the gateway's
   ``exchange_finished`` hook (metrics and analytics) with the Exchange, whose
   ``status``, ``bytes_in``, ``bytes_out`` and timings are then final.

How the rest works
------------------
* httptools (llhttp in strict mode) parses both directions.  llhttp already
  refuses the framing request smuggling starts with: Content-Length together
  with Transfer-Encoding, duplicate or malformed Content-Length,
  Transfer-Encoding whose last coding is not ``chunked``, bad chunk sizes,
  obsolete line folding, bare LF, invalid header names and values.  Any parser
  error answers 400 and closes the connection; nothing of that request is
  forwarded.  This module refuses what llhttp lets through: several ``Host``
  fields, a missing ``Host`` in HTTP/1.1, ``Transfer-Encoding`` in HTTP/1.0,
  ``Expect`` other than ``100-continue``, and dot segments in the path.
* One :class:`UpstreamPool` per (scheme, host, port) keeps idle keep-alive
  connections on a LIFO stack (the warmest first).  One request at a time per
  upstream connection.  The response head is rewritten (hop-by-hop fields
  dropped, framing decided for the client), the body passed through or
  re-chunked, and everything one read produced goes to the client in one
  write.
* llhttp cannot be told that a response answers a HEAD request, so a HEAD
  exchange ends with the response head and the connection gets a fresh
  parser; a body after such a head means a broken upstream, never reused.
* A reused upstream connection that fails before any byte of the response is
  retried once on a new connection when that is safe (no request body, nothing
  relayed yet): upstreams close idle connections whenever they like.
* ``Expect: 100-continue`` is answered by the gateway when the request is
  forwarded (or a middleware reads the body); a request refused before that is
  answered without a 100 and the connection closes after it (lingering), since
  the client may or may not send the body it announced.
* A middleware may put a check on the body (:meth:`Exchange.check_body`: a
  digest, :mod:`fastgate.auth.hmac.digest`).  Every piece of the body (after
  transfer decoding) is fed to it as it arrives and streams upstream as usual,
  but the last piece received is *held back*: it joins ``pending`` only when
  the next one arrives, or at the end of the body once the check accepted it.
  So the upstream never sees the end of a body the check refuses: its
  connection, inside an incomplete request, is abandoned (never reused) and
  the client gets the refusal.  The connection to the client stays open: its
  framing was sound and the request was read to its end, so the next request
  starts where it should.  The held piece is at most one read, and is not
  counted in ``pending_bytes``: it never holds flow control (rule 5).

* A plugin may see the upstream's answer before the client
  (:meth:`Exchange.on_response`).  Wanting the body, the whole answer is
  collected (bounded by ``MAX_BUFFERED``; over it, a 502), the upstream
  connection goes back to the pool, and what the hook decides becomes the
  exchange's ``response``, written by :meth:`ClientProtocol._advance` like
  any answer of the gateway's own (rules 1, 2 and 9 unchanged).  Not wanting
  it, the head is held (and the upstream not read) until the hook answers,
  then the body streams as usual.  The same collection re-frames an answer
  when a middleware changed the method to or from HEAD: the framing follows
  the client's method.  With no hook the cost is one flag test per response.

Hop-by-hop fields (RFC 9110 §7.6.1) are never forwarded: ``Connection`` and
every field it names, ``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``,
``Transfer-Encoding`` and ``Upgrade``.  Framing is decided again for each hop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
import weakref
from collections import deque
from typing import Any

import httptools

try:
    import cython
except ImportError:  # interpreted without Cython installed
    from fastgate._core import _cython_shim as cython

from fastgate import responses

__all__ = [
    "ApiCounters",
    "BadRequestHead",
    "Chain",
    "ClientProtocol",
    "Exchange",
    "ExchangeCounter",
    "Route",
    "Router",
    "UpstreamConnection",
    "UpstreamPool",
    "build_request_head",
    "connection_tokens",
]

log = logging.getLogger("fastgate.proxy")

# -- header rewriting ----------------------------------------------------------

#: A parsed header: (lower-cased name, name as sent, value).
Header = tuple[bytes, bytes, bytes]

BODY_NONE: int = 0
BODY_LENGTH: int = 1
BODY_CHUNKED: int = 2

#: Always hop-by-hop (besides what ``Connection`` lists and ``proxy-*``).
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
#: Request fields the proxy handles itself instead of copying.
REQUEST_SPECIAL = HOP_BY_HOP | {
    b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"expect",
    b"content-length",
}
#: ``Connection`` tokens that name no field.
CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b""})


class BadRequestHead(ValueError):
    """The head passed the parser but is not acceptable HTTP (e.g. two Hosts)."""


@cython.ccall
def connection_tokens(value: bytes) -> object:
    """Field names a ``Connection`` value lists, lower-cased; None if none."""
    lowered: bytes = value.lower()
    if lowered in CONNECTION_OPTIONS:
        return None
    tokens = {t.strip() for t in lowered.split(b",")} - CONNECTION_OPTIONS
    return tokens or None


@cython.cfunc
@cython.inline
def _append_field(lines: list, name: bytes, value: bytes) -> None:
    """Append one header line as its four pieces (joined once, at the end)."""
    lines.append(name)
    lines.append(b": ")
    lines.append(value)
    lines.append(b"\r\n")


@cython.cfunc
def _without(lines: list, drop: set, start: cython.Py_ssize_t) -> list:
    """``lines`` (name, ': ', value, CRLF quads after ``start`` items) without
    the fields whose lower-cased name is in ``drop``."""
    kept: list = lines[:start]
    i: cython.Py_ssize_t
    for i in range(start, len(lines), 4):
        if lines[i].lower() not in drop:
            kept += lines[i : i + 4]
    return kept


@cython.ccall
def build_request_head(method: bytes, target: bytes, headers: list, host: bytes | None,
                       client_ip: bytes, proto: bytes) -> tuple:
    """``(head, client_host, body_kind, expect_continue)`` for the upstream.

    ``host`` is the Host to send (None keeps the client's:
    ``preserve_host_header``).  Raises :class:`BadRequestHead` for several
    ``Host`` fields or an ``Expect`` other than ``100-continue``.
    """
    lines: list = [method, b" ", target, b" HTTP/1.1\r\n"]
    client_host: bytes | None = None
    forwarded_for: list | None = None
    drop: set | None = None
    body: cython.int = BODY_NONE
    expect: cython.bint = False
    lname: bytes
    name: bytes
    value: bytes
    for lname, name, value in headers:
        if lname in REQUEST_SPECIAL or lname.startswith(b"proxy-"):
            if lname == b"host":
                if client_host is not None:
                    raise BadRequestHead("more than one Host header")
                client_host = value
            elif lname == b"x-forwarded-for":
                if forwarded_for is None:
                    forwarded_for = [value]
                else:
                    forwarded_for.append(value)
            elif lname == b"content-length":
                body = BODY_LENGTH if value != b"0" else BODY_NONE
                _append_field(lines, name, value)
            elif lname == b"transfer-encoding":
                body = BODY_CHUNKED
            elif lname == b"connection":
                tokens = connection_tokens(value)
                if tokens is not None:
                    drop = tokens if drop is None else drop | tokens
            elif lname == b"expect":
                if value.lower() != b"100-continue":
                    raise BadRequestHead("unsupported Expect")
                expect = True
            continue
        _append_field(lines, name, value)
    if drop is not None:
        lines = _without(lines, drop, 4)
    send_host = host if host is not None else client_host
    if send_host is not None:
        lines += (b"Host: ", send_host, b"\r\n")
    if forwarded_for is None:
        lines += (b"X-Forwarded-For: ", client_ip, b"\r\n")
    else:
        lines += (b"X-Forwarded-For: ", b", ".join(forwarded_for), b", ", client_ip, b"\r\n")
    lines += (b"X-Forwarded-Proto: ", proto, b"\r\n")
    if client_host is not None:
        lines += (b"X-Forwarded-Host: ", client_host, b"\r\n")
    if body == BODY_CHUNKED:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), client_host, body, expect


# -- client side -------------------------------------------------------------------

#: What a listener serves: both, only the APIs (``control_api_port`` is set and
#: this is the gateway port), or only /tyk/ (the control port).  /hello: all.
SERVE_ALL: int = 0
SERVE_APIS: int = 1
SERVE_CONTROL: int = 2

#: Reasons for pausing a client's reading (a bit mask; rule 5).
PAUSE_UPSTREAM: int = 1  # the upstream does not take the request body fast enough
PAUSE_BUFFER: int = 2  # too much of a request that cannot stream yet is buffered
PAUSE_CLOSING: int = 4  # answered and about to close: nothing more is parsed

#: Request bytes held for an exchange that cannot stream yet before reading pauses.
MAX_BUFFERED: int = 256 * 1024
#: Raw bytes a head may hold beyond max_header_bytes before it is refused as
#: incomplete: the request line, the line ends and optional whitespace, which
#: the exact count (the parser's callbacks) leaves out.
HEAD_LINE_SLACK: int = 4096
#: Largest request body the gateway reads for its own endpoints (/tyk/...):
#: larger ones are answered 413 (at once when Content-Length says so).
MAX_ADMIN_BODY: int = 8 * 1024 * 1024
#: Bytes of request body up to which a write to the upstream waits for the
#: iteration's burst (rule 8); more is written at once.
BATCHED_WRITE_MAX: int = 16 * 1024

CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
PROTO_HTTP = b"http"
PROTO_HTTPS = b"https"

_now = time.monotonic


class UpstreamRefused(Exception):
    """A pool's TLS settings refuse a new upstream connection (a pin that does
    not match, a client certificate that cannot be had): the message is the
    502's error."""


def _upstream_error(exc: BaseException) -> str | None:
    """The 502's error for a connection that failed, when it is worth naming
    (TLS); None for the generic answer."""
    if isinstance(exc, UpstreamRefused):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"upstream TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"upstream TLS handshake failed: {exc.reason or exc}"
    return None


class HeadersTooLarge(Exception):
    """Raised inside a parser callback: the head exceeds ``max_header_bytes``."""


@cython.cclass
class Exchange:
    """One request and its response.

    The middleware chain (authentication, access rights...) sees the request
    through this object -- it implements :class:`fastgate.services.Request`:
    ``method``, ``path``, ``query``, ``client_ip``, :meth:`header`, and the
    changes :meth:`remove_header`, :meth:`add_header`, :meth:`set_query`,
    :meth:`set_path`, :meth:`set_method`, :meth:`set_body`, and
    :meth:`read_body`; it records who is calling in ``session`` and
    ``session_key``.  :meth:`check_body` puts a check on the body as it
    streams through; :meth:`on_response` shows the upstream's answer to a
    hook (plugins' response middleware) before the client gets it.

    When the exchange has ended (rule 8) the hook also reads ``route``,
    ``status`` (0: no answer was started), ``complete``, ``bytes_in`` (request head and
    body), ``bytes_out`` (what was written to the client), ``total_time`` and
    ``upstream_time`` (seconds; 0.0 when no upstream answered).
    """

    client: ClientProtocol
    route = cython.declare(object, visibility="readonly")  # Route | None
    method = cython.declare(bytes, visibility="readonly")
    path = cython.declare(bytes, visibility="readonly")
    query = cython.declare(bytes, visibility="readonly")
    request_headers = cython.declare(list, visibility="readonly")
    client_ip = cython.declare(bytes, visibility="readonly")
    #: Set by the authentication middleware: the caller's session and the
    #: storage key it is kept under.
    session = cython.declare(object, visibility="public")
    session_key = cython.declare(object, visibility="public")
    #: Context variables a middleware recorded for later ones (Tyk's
    #: ``$tyk_context.*``, e.g. ``jwt_claims_sub``): a dict, or None for none.
    context = cython.declare(object, visibility="public")
    #: Header lines (``Name: value\r\n``...) added to the upstream's response
    #: (X-RateLimit-*); b"" for none.
    response_headers = cython.declare(bytes, visibility="public")
    #: The certificate-store id the client's TLS certificate was admitted by
    #: (static mTLS: the allow-list entry, leaf or CA; dynamic mTLS: the
    #: key's certificate), or None.
    certificate_id = cython.declare(object, visibility="public")
    #: Set by the middleware chain when one of its steps refused the request:
    #: ``(step name, the refusal)`` (what the metrics count refusals by), or
    #: None; ``(None, refusal)`` when the chain's last step refused through
    #: the awaitable the chain handed back.
    refused_by = cython.declare(object, visibility="public")
    # What the exchange-finished hook reads (rule 8).
    status = cython.declare(cython.int, visibility="readonly")
    #: The answer was written completely (False: the connection went away or
    #: the upstream broke off mid-response).
    complete = cython.declare(cython.bint, visibility="readonly")
    bytes_in = cython.declare(cython.Py_ssize_t, visibility="readonly")
    bytes_out = cython.declare(cython.Py_ssize_t, visibility="readonly")
    started_at: cython.double
    upstream_at: cython.double
    upstream_head_at: cython.double
    ended_at: cython.double
    finished: cython.bint
    headers_modified: cython.bint
    waiting: cython.bint
    # The whole body, collected for a middleware that asked for it.
    collected: list | None
    collected_bytes: cython.Py_ssize_t
    body_waiter: Any
    #: A check over the body as it arrives (:meth:`check_body`), or None.
    body_check = cython.declare(object, visibility="readonly")
    #: The last piece of the body received while ``body_check`` is set, kept
    #: from the upstream until the next one arrives or the check accepts it.
    held: bytes | None
    pending: list
    pending_bytes: cython.Py_ssize_t
    body_kind: cython.int
    is_head: cython.bint
    http11 = cython.declare(cython.bint, visibility="readonly")
    keep_alive: cython.bint
    expect_continue: cython.bint
    request_done: cython.bint
    response_started: cython.bint
    close_after: cython.bint
    started: cython.bint
    retried: cython.bint
    admin: cython.bint
    retry_head: bytes
    response: bytes | None
    body: list | None
    upstream: UpstreamConnection | None
    #: The method sent upstream is HEAD (``is_head`` is the client's).
    upstream_head: cython.bint
    #: The whole request body once known (read_body resolved it, or set_body).
    body_known: bytes | None
    #: read_body found the body larger than MAX_BUFFERED (it resolved to None).
    body_too_large: cython.bint
    #: on_response(): the hook, and whether it wants the body.
    response_hook: Any
    hook_body: cython.bint

    def __init__(self, client: ClientProtocol, method: bytes, http11: cython.bint,
                 keep_alive: cython.bint) -> None:
        self.client = client
        self.method = method
        self.is_head = method == b"HEAD"
        self.http11 = http11
        self.keep_alive = keep_alive
        self.route = None
        self.path = b""
        self.query = b""
        self.request_headers = []
        self.client_ip = client.client_ip
        self.session = None
        self.session_key = None
        self.context = None
        self.response_headers = b""
        self.certificate_id = None
        self.refused_by = None
        self.status = 0
        self.complete = False
        self.bytes_in = client.head_size
        self.bytes_out = 0
        self.started_at = _now() if client.on_finished is not None else 0.0
        self.upstream_at = 0.0
        self.upstream_head_at = 0.0
        self.ended_at = 0.0
        self.finished = False
        self.headers_modified = False
        #: The middleware chain has not decided yet.
        self.waiting = False
        self.collected = None
        self.collected_bytes = 0
        self.body_waiter = None
        self.body_check = None
        self.held = None
        #: Bytes for the upstream not yet written (the head, then body pieces).
        self.pending = []
        self.pending_bytes = 0
        self.body_kind = BODY_NONE
        self.expect_continue = False
        self.request_done = False
        #: A complete response the gateway answers itself (errors, /tyk/...).
        self.response = None
        self.response_started = False
        self.close_after = not keep_alive
        self.started = False
        self.retried = False
        #: The request head, kept for a retry while the request has no body.
        self.retry_head = b""
        self.upstream = None
        #: Requests for the gateway's own endpoints collect their body here.
        self.admin = False
        self.body = None
        self.upstream_head = self.is_head
        self.body_known = None
        self.body_too_large = False
        self.response_hook = None
        self.hook_body = False

    @property
    def total_time(self) -> float:
        """Seconds from the complete request head to the end of the answer."""
        return self.ended_at - self.started_at if self.finished else 0.0

    @property
    def upstream_time(self) -> float:
        """Seconds from sending the request upstream to the upstream's response
        head (0.0 when no upstream answered)."""
        if self.upstream_at and self.upstream_head_at > self.upstream_at:
            return self.upstream_head_at - self.upstream_at
        return 0.0

    @property
    def control_port(self) -> bool:
        """The request came to the control port (``control_api_port``)."""
        return self.client.mode == SERVE_CONTROL

    @property
    def tls(self) -> bool:
        """The request came over TLS."""
        return self.client.proto is PROTO_HTTPS

    @property
    def client_certificate(self) -> Any:
        """The TLS client's certificate (:class:`fastgate.certs.ClientCertificate`),
        read once per connection; None when it sent none or over plain HTTP."""
        return self.client.client_certificate()

    def header(self, lname: bytes) -> bytes | None:
        """The value of the first field named ``lname`` (lower case), or None."""
        entry: tuple
        for entry in self.request_headers:
            if entry[0] == lname:
                return cython.cast(bytes, entry[2])
        return None

    def remove_header(self, lname: bytes) -> None:
        """Drop every field named ``lname`` (lower case) from the forwarded request."""
        self.request_headers = [h for h in self.request_headers if h[0] != lname]
        self.headers_modified = True

    def add_header(self, name: bytes, value: bytes) -> None:
        """Add a field to the forwarded request."""
        self.request_headers = [*self.request_headers, (name.lower(), name, value)]
        self.headers_modified = True

    def set_query(self, query: bytes) -> None:
        """Replace the query string forwarded upstream."""
        self.query = query
        self.headers_modified = True

    def set_path(self, path: bytes) -> None:
        """Send ``path`` upstream instead of the client's (and read it from
        ``path`` from now on): the path as a client would send it -- the
        listen path included, percent-encoded, without the query (see
        :meth:`set_query`).  The upstream target is built from it as from the
        client's: with ``strip_listen_path`` the listen path is stripped when
        the new path starts with it, and a path outside the listen path goes
        as it is; either way after the target URL's path.  The request stays
        on the API it was routed to.

        Raises ValueError when ``path`` does not start with ``/``, holds a
        byte outside visible ASCII (space, CR, LF, NUL, controls, DEL,
        non-ASCII: percent-encode them), ``?`` or ``#``, or has a ``.``/``..``
        segment (plain or percent-encoded): Tyk answers an invalid URL with
        a 500.  RuntimeError once the request is being forwarded."""
        if self.started:
            raise RuntimeError("set_path() after the request was forwarded")
        if not path.startswith(b"/") or not _valid_path(path):
            raise ValueError("invalid request path")
        if (path.find(b"/.") >= 0 or path.find(b"%") >= 0) and _has_dot_segment(path):
            raise ValueError("request path with a dot segment")
        self.path = path
        self.headers_modified = True

    def set_method(self, method: bytes) -> None:
        """Send ``method`` upstream instead of the client's (and read it from
        ``method`` from now on); it must be an RFC 9110 token (ValueError).

        The answer's framing follows the method the *client* sent, since
        that is what the client parses the answer by: a client's HEAD gets
        the head only, whatever was sent upstream (a body the upstream sends
        is read and dropped, its Content-Length kept); a client's GET sent
        upstream as HEAD gets the upstream's head with an empty body
        (``Content-Length: 0``), since a HEAD answer carries none.
        RuntimeError once the request is being forwarded."""
        if self.started:
            raise RuntimeError("set_method() after the request was forwarded")
        if not method or method.translate(None, _TCHAR):
            raise ValueError("invalid request method")
        self.method = method
        self.upstream_head = method == b"HEAD"
        self.headers_modified = True

    def set_body(self, body: bytes) -> None:
        """Forward ``body`` upstream instead of the client's request body,
        with ``Content-Length: len(body)`` and without ``Transfer-Encoding``
        or ``Expect`` (a chunked body becomes a length-delimited one; an
        empty one, no body at all: ``Content-Length: 0``).  The head's
        fields say so from now on (:meth:`header`), and :meth:`read_body`
        resolves to ``body``.

        Allowed when the whole original body is known -- the request has
        none, or :meth:`read_body` resolved to bytes (it resolves at the end
        of the message, so the whole body has been received by then) -- else
        RuntimeError (a body larger than ``MAX_BUFFERED``, a body still
        arriving); RuntimeError too once the request is being forwarded.  The
        original's pieces waiting to go upstream are dropped.  A request
        already answered (refused) is left alone."""
        if self.started:
            raise RuntimeError("set_body() after the request was forwarded")
        if self.response is not None:
            return
        if self.body_kind != BODY_NONE and self.body_known is None:
            raise RuntimeError("set_body() needs the whole request body: await read_body() "
                               "first (and it must resolve to bytes)")
        headers: list = [h for h in self.request_headers
                         if h[0] != b"content-length" and h[0] != b"transfer-encoding"
                         and h[0] != b"expect"]
        headers.append((b"content-length", b"Content-Length", b"%d" % len(body)))
        self.request_headers = headers
        self.body_known = body
        pending: list = self.pending
        # pending[0] is the head (rebuilt after the chain: headers_modified).
        del pending[1:]
        if body:
            pending.append(body)
        self.pending_bytes = len(body)
        self.body_check = None
        self.held = None
        self.expect_continue = False
        self.headers_modified = True

    def on_response(self, hook: Any, body: bool) -> None:
        """Show the upstream's answer to ``hook`` before the client gets it
        (one hook per exchange: a second call replaces the first).  The hook
        is called with ``(status, headers, body)``: ``headers`` is the list
        of ``(name, value)`` fields the proxy would forward, in order
        (hop-by-hop fields already dropped; the gateway's own limit headers,
        ``response_headers``, are not among them and are added after it).

        ``body=True``: the whole response is collected first (transfer coding
        removed), and ``body`` is its bytes (b"" for none: HEAD, 204, 304).
        The hook answers None (relay the answer unchanged; it is written
        with ``Content-Length`` -- a chunked one is re-framed),
        ``(status, headers)`` or ``(status, headers, body)`` (the answer to
        write instead, from bytes: ``status`` an int 200-599, ``headers``
        ``(name, value)`` pairs, framed by the proxy: their Content-Length
        and hop-by-hop fields are ignored), bytes (a complete HTTP/1.1
        response -- status line, fields with Content-Length, body -- written
        instead, as it is), or an awaitable of any of these.
        The upstream connection is released (reused) as soon as the answer
        is collected, before the hook answers.  A body over
        ``MAX_BUFFERED`` bytes is not shown: the client gets a 502 (a hook
        that may be a security control is never skipped) and a warning is
        logged once per API.

        ``body=False``: the hook is called at the response head, with
        ``body`` None; the body then streams through unchanged.  It answers
        None (unchanged), ``(status, headers)`` (the head to write instead,
        checked as above: its framing fields, Content-Length and
        hop-by-hop ones, are replaced by the upstream's (the body is the upstream's); a
        status may not turn a body-less answer (204, 304) into one with a
        body or the other way round), bytes (a complete response written
        instead; the upstream's body is not read and its connection is
        closed), or an awaitable of any of these (the upstream's body waits,
        unread, meanwhile).

        Either way, the answer goes out in order with pipelined requests; the
        proxy still decides the connection's fate (``Connection: close``
        added when it closes after) and adds ``response_headers`` at the end
        of the head; a HEAD request gets the head only.  The hook's time
        counts toward the upstream's timeout only while the upstream
        connection is held (``body=False``).  A hook that raises, answers
        something else, or bytes that are not a response, gets the client
        a 500 ``{"error": "Middleware error"}`` and logs the traceback.
        ``status`` and ``bytes_out`` of the exchange-finished hook are what
        was written."""
        self.response_hook = hook
        self.hook_body = bool(body)

    def read_body(self) -> Any:
        """An awaitable of the whole request body, for a middleware that must
        see it before deciding (it is still forwarded).  It resolves to None
        when the body is larger than ``MAX_BUFFERED`` bytes.  Call it from
        ``process()`` itself (the chain runs when the head is complete), not
        after awaiting something else -- or once it has resolved: later calls
        resolve at once to the same bytes (or to what :meth:`set_body` set),
        or to None again for a body found too large (its end may not arrive
        before the chain decides: reading is paused while it waits)."""
        waiter = asyncio.get_running_loop().create_future()
        if self.body_known is not None:
            waiter.set_result(self.body_known)
            return waiter
        if self.body_too_large:
            waiter.set_result(None)
            return waiter
        if self.body_kind == BODY_NONE:
            waiter.set_result(b"")
            return waiter
        if self.request_done:
            raise RuntimeError("read_body() must be called from a middleware's process(), "
                               "before the body is parsed")
        self.collected = []
        self.body_waiter = waiter
        if self.expect_continue and self.client.transport is not None:
            # The client waits for this before it sends the body.
            self.client.transport.write(CONTINUE_100)
            self.expect_continue = False
        return waiter

    def check_body(self, check: Any) -> Any:
        """Run ``check`` (``update(data)``, ``finish() -> bytes | None``) over
        the body as it arrives, without buffering it: every piece (after
        transfer decoding) goes to ``check.update`` and on upstream, except
        the last one received, held back until ``check.finish()`` returns
        None at the end of the body.  A refusal answers the client instead,
        and the upstream connection is abandoned (it holds an incomplete
        request).  Bytes received before the call (while the chain waited)
        are fed first.  Returns ``check.finish()`` at once when the body is
        already complete (no body, or all of it received), else None.

        Raises RuntimeError when the request is already being forwarded
        (call it from a middleware, before the chain decides)."""
        if self.started:
            raise RuntimeError("check_body() must be called from a middleware, before the "
                               "request is forwarded")
        if self.response is not None:
            return None  # answered: nothing of the body goes anywhere
        if self.body_kind == BODY_NONE:
            return check.finish()
        # Not started: pending is the head, then every piece of body so far
        # (chunked: size line, data, CRLF; the last chunk after them).
        pieces: list = self.pending[1:]
        if self.body_kind == BODY_CHUNKED:
            pieces = pieces[1::3]
        if self.held is not None:
            pieces.append(self.held)
        piece: bytes
        for piece in pieces:
            check.update(piece)
        if self.request_done:
            return check.finish()
        if self.body_check is not None:
            self.body_check = _BodyChecks(self.body_check, check)
            return None
        self.body_check = check
        pending: list = self.pending
        if len(pending) > 1:
            held: bytes
            if self.body_kind == BODY_CHUNKED:
                held = pending[-2]
                del pending[-3:]
            else:
                held = pending.pop()
            self.pending_bytes -= len(held)
            self.held = held
        return None

    @cython.cfunc
    def _hold_back(self, data: bytes) -> None:
        """A piece of a checked body: checked, and held; the one held before
        it goes on."""
        self.body_check.update(data)
        held: bytes | None = self.held
        self.held = data
        if held is not None:
            self._release(held)

    @cython.cfunc
    def _release(self, data: bytes) -> None:
        if self.body_kind == BODY_CHUNKED:
            self.pending += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.pending.append(data)
        self.pending_bytes += len(data)


class _BodyChecks:
    """Two checks on one body (two middleware each put one), run as one."""

    __slots__ = ("first", "second")

    def __init__(self, first: Any, second: Any) -> None:
        self.first = first
        self.second = second

    def update(self, data: bytes) -> None:
        self.first.update(data)
        self.second.update(data)

    def finish(self) -> Any:
        refusal = self.first.finish()
        second = self.second.finish()
        return refusal if refusal is not None else second


@cython.cclass
class ClientProtocol:
    """Serves one client connection (an asyncio protocol)."""

    # Global state (the gateway's settings, copied once).
    gateway: Any
    max_header_bytes: cython.Py_ssize_t
    mode: cython.int  # SERVE_* : what this listener serves
    read_ticks: cython.long
    write_ticks: cython.long
    idle_ticks_max: cython.long
    header_ticks: cython.long
    linger_ticks: cython.long
    linger_idle_ticks: cython.long
    linger_max_bytes: cython.Py_ssize_t
    on_finished: Any  # the exchange-finished hook, or None
    proto: bytes  # X-Forwarded-Proto: the listener's scheme
    # Per-connection state.
    transport: Any
    peer: Any  # the client's TLS certificate, once read (peer_read)
    peer_read: cython.bint
    client_ip: bytes
    parser: Any
    queue: Any
    paused: cython.int
    write_paused: cython.bint
    shutting_down: cython.bint
    eof: cython.bint  # the client half-closed
    lingering: cython.bint
    linger_since: cython.long
    linger_bytes: cython.Py_ssize_t
    activity: cython.long
    seen_activity: cython.long
    idle_ticks = cython.declare(cython.long, visibility="readonly")
    tick: cython.long  # the sweeper's tick count, as last seen
    # Per-request state (the request being parsed).
    current: Exchange | None
    in_head: cython.bint
    head_due: cython.bint  # a request head is expected (deadline from head_since)
    head_since: cython.long
    head_size: cython.Py_ssize_t
    head_raw: cython.Py_ssize_t
    url: bytes
    headers: list

    def __init__(self, gateway: Any, mode: int = 0, tls: bool = False) -> None:
        self.gateway = gateway
        self.max_header_bytes = gateway.max_header_bytes
        self.mode = mode
        self.proto = PROTO_HTTPS if tls else PROTO_HTTP
        self.read_ticks = gateway.read_ticks
        self.write_ticks = gateway.write_ticks
        self.idle_ticks_max = gateway.idle_ticks
        self.header_ticks = gateway.header_ticks
        self.linger_ticks = gateway.linger_ticks
        self.linger_idle_ticks = gateway.linger_idle_ticks
        self.linger_max_bytes = gateway.linger_max_bytes
        self.on_finished = gateway.exchange_finished
        self.transport = None
        self.peer = None
        self.peer_read = False
        self.client_ip = b""
        self.parser = httptools.HttpRequestParser(self)
        self.queue = deque()
        self.paused = 0
        self.write_paused = False
        self.shutting_down = False
        self.eof = False
        self.lingering = False
        self.linger_since = 0
        self.linger_bytes = 0
        self.activity = 0
        self.seen_activity = 0
        self.idle_ticks = 0
        self.tick = gateway.tick
        self.current = None
        self.in_head = False
        # The first request's head is due from the connection's start.
        self.head_due = True
        self.head_since = self.tick
        self.head_size = 0
        self.head_raw = 0
        self.url = b""
        self.headers = []

    def client_certificate(self) -> Any:
        """The client's TLS certificate, read from the handshake the first
        time a middleware asks (:meth:`fastgate.server.tls.ServerTls.client_certificate`)."""
        if not self.peer_read:
            self.peer_read = True
            if self.proto is PROTO_HTTPS and self.transport is not None:
                self.peer = self.gateway.tls.client_certificate(self.transport)
        return self.peer

    # -- connection events ---------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0].encode() if isinstance(peer, tuple) else b"unknown"
        if not self.gateway.admit(self):
            # Past max_connections with no idle connection to close.
            transport.write(responses.TOO_MANY_CONNECTIONS)
            transport.close()
            self.transport = None
            return
        if self.gateway.shutting_down:
            self.shutting_down = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.connections.discard(self)
        self._drop_queue()
        self.transport = None

    @cython.cfunc
    def _drop_queue(self) -> None:
        """The exchanges still queued will never be answered: end them."""
        ex: Exchange
        for ex in self.queue:
            if ex.upstream is not None:
                ex.upstream.abandon()
            self._finished(ex)
        self.queue.clear()
        self.current = None

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        if self.lingering:
            # Read and discarded (rule 6), within the byte bound.
            self.linger_bytes += len(data)
            if self.linger_bytes > self.linger_max_bytes:
                self.transport.abort()
            return
        if self.in_head:
            # The raw bytes of a head still incomplete (head_size counts what
            # the parser reported; this chunk may also end the head and carry
            # body bytes, so it is judged after parsing).
            self.head_raw += len(data)
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
        if self.in_head and self.head_raw > self.max_header_bytes + HEAD_LINE_SLACK:
            # A head still incomplete past max_header_bytes (a line that never
            # ends): refuse before the parser buffers any more of it.
            self._refuse(responses.HEADERS_TOO_LARGE_CLOSE)
            return
        queue = self.queue
        ex: Exchange
        if queue:
            ex = queue[0]
            if not ex.started or ex.response is not None:
                # (A started exchange has a response when a body check refused it.)
                self._advance()
            elif ex.pending and ex.upstream is not None:
                ex.upstream.send_pending()
        current: Exchange | None = self.current
        if (current is not None and current.pending_bytes > MAX_BUFFERED
                and not self.paused & PAUSE_BUFFER
                and (current.upstream is None or not queue or current is not queue[0])):
            # Nobody takes these bytes yet: stop reading until send_pending
            # flushes them (rule 5).
            self.pause_reading(PAUSE_BUFFER)

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.lingering or not self.queue:
            return None  # close
        # The client half-closed: answer what was asked, then close.
        ex: Exchange
        for ex in self.queue:
            ex.close_after = True
        return True

    # -- parser callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        if not self.head_due:
            self.head_due = True
            self.head_since = self.tick
        self.head_size = 0
        self.head_raw = 0
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
        self.head_due = False
        parser = self.parser
        version = parser.get_http_version()
        ex = Exchange(self, parser.get_method(), version == "1.1", parser.should_keep_alive())
        if self.shutting_down:
            ex.close_after = True
        self.current = ex
        self.queue.append(ex)
        if version != "1.1" and version != "1.0":
            # HTTP/0.9 (no version) or an unknown version: nothing to proxy.
            self._answer(ex, responses.error_response(400, "Unsupported HTTP version",
                                                      close=True), True)
            return
        self._route(ex)

    def on_body(self, data: bytes) -> None:
        ex: Exchange | None = self.current
        if ex is None:
            return
        ex.bytes_in += len(data)
        if ex.response is not None:
            return  # discarding the body of a request already answered
        if ex.body is not None:
            ex.body.append(data)
            ex.collected_bytes += len(data)
            if ex.collected_bytes > MAX_ADMIN_BODY:
                ex.body = None
                self._answer(ex, responses.ADMIN_BODY_TOO_LARGE_CLOSE, True)
            return
        if ex.body_check is not None:
            ex._hold_back(data)
        else:
            if ex.body_kind == BODY_CHUNKED:
                ex.pending += (b"%x\r\n" % len(data), data, b"\r\n")
            else:
                ex.pending.append(data)
            ex.pending_bytes += len(data)
        if ex.collected is not None:
            ex.collected.append(data)
            ex.collected_bytes += len(data)
            if ex.collected_bytes > MAX_BUFFERED:
                ex.collected = None
                ex.body_too_large = True
                if not ex.body_waiter.done():
                    ex.body_waiter.set_result(None)

    def on_message_complete(self) -> None:
        ex: Exchange | None = self.current
        self.current = None
        if ex is None:
            return
        ex.request_done = True
        if ex.collected is not None:
            known: bytes = b"".join(ex.collected)
            ex.body_known = known
            if not ex.body_waiter.done():
                ex.body_waiter.set_result(known)
            ex.collected = None
        if ex.response is not None or ex.route is None:
            if ex.admin and ex.body is not None:
                self._dispatch_admin(ex)
            return
        if ex.body_check is not None and not self._body_accepted(ex):
            return
        if ex.body_kind == BODY_CHUNKED:
            ex.pending.append(b"0\r\n\r\n")

    @cython.cfunc
    def _body_accepted(self, ex: Exchange) -> cython.bint:
        """The end of a checked body: release the piece held back, or refuse."""
        check = ex.body_check
        held: bytes | None = ex.held
        ex.body_check = None
        ex.held = None
        refusal = check.finish()
        if refusal is None:
            if held is not None:
                ex._release(held)
            return True
        upstream: UpstreamConnection | None = ex.upstream
        if upstream is not None:
            # Inside a request whose end it never got: closed, never reused.
            upstream.abandon()
            ex.upstream = None
            self.resume_reading(PAUSE_UPSTREAM)
        if ex.response_started:
            # The upstream answered before the body ended and that answer is
            # being relayed: it cannot become the refusal.
            self.abort()
            return False
        # Answered by data_received once the parser returns (and kept alive:
        # the request was framed soundly and read to its end).
        self._answer(ex, refusal, False)
        return False

    # -- routing ---------------------------------------------------------------

    @cython.cfunc
    def _route(self, ex: Exchange) -> None:
        url: bytes = self.url
        path: bytes
        query: bytes
        qpos: cython.Py_ssize_t = url.find(b"?")
        if qpos >= 0:
            path, query = url[:qpos], url[qpos + 1:]
        else:
            path, query = url, b""
        if not path.startswith(b"/"):
            origin_path = _origin_path(path)
            if origin_path is None:
                self._answer(ex, responses.error_response(400, "Malformed request target",
                                                          close=True), True)
                return
            path = origin_path
        if (path.find(b"/.") >= 0 or path.find(b"%") >= 0) and _has_dot_segment(path):
            self._answer(ex, responses.error_response(400, "Malformed request path",
                                                      close=True), True)
            return
        ex.path = path
        ex.query = query
        if path == b"/hello" or (self.mode != SERVE_APIS and (
                path.startswith(self.gateway.admin_prefixes)
                or path in self.gateway.admin_paths)):
            ex.admin = True
            ex.request_headers = self.headers
            if _declared_length(self.headers) > MAX_ADMIN_BODY:
                # Said up front: answered before a byte of the body is read.
                self._answer(ex, responses.ADMIN_BODY_TOO_LARGE_CLOSE, True)
                return
            ex.body = []
            return
        if self.mode == SERVE_CONTROL:
            self._answer(ex, responses.NOT_FOUND, False)
            return
        router: Router = self.gateway.router
        route: Route | None = router.match(path)
        if route is None:
            self._answer(ex, responses.NOT_FOUND, False)
            return
        if route.refusal is not None:
            self._answer(ex, route.refusal, False)
            return
        ex.route = route
        ex.request_headers = self.headers
        if not self._build_head(ex, route):
            return
        chain = route.chain
        if chain is None:
            return
        result = chain(ex)
        if result is None:
            if ex.headers_modified:
                self._build_head(ex, route)
        elif isinstance(result, bytes):
            self._answer(ex, result, False)
        else:
            # The chain needs I/O (a session not cached here): the request
            # waits, its body buffering, until the chain decides.
            ex.waiting = True
            task = asyncio.ensure_future(result)
            task.add_done_callback(functools.partial(self._chain_done, ex))

    @cython.cfunc
    def _build_head(self, ex: Exchange, route: Route) -> cython.bint:
        """Put the upstream request head first in ``ex.pending``; False when
        the request was answered instead (refused)."""
        path: bytes = ex.path
        target: bytes
        target_path: bytes = route.target_path
        if route.strip and path.startswith(route.listen_path):
            # (A path a middleware set may lie outside the listen path: as it is.)
            rest: bytes = path[len(route.listen_path):]
            target = target_path + (rest if rest.startswith(b"/") else b"/" + rest)
        else:
            target = target_path + path if target_path else path
        if ex.query:
            target += b"?" + ex.query
        try:
            head, client_host, body_kind, expect = build_request_head(
                ex.method, target, ex.request_headers, route.host_header, self.client_ip,
                self.proto)
        except BadRequestHead as exc:
            self._answer(ex, responses.error_response(400, str(exc), close=True), True)
            return False
        if client_host is None and ex.http11:
            self._answer(ex, responses.error_response(400, "Missing Host header", close=True),
                         True)
            return False
        if body_kind == BODY_CHUNKED and not ex.http11:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            self._answer(ex, responses.error_response(400, "Transfer-Encoding in HTTP/1.0",
                                                      close=True), True)
            return False
        ex.body_kind = body_kind
        ex.expect_continue = expect and ex.http11
        if ex.headers_modified:
            # Rebuilt after the chain changed the request: the head is still
            # first in line (nothing is sent before the chain decides).
            ex.pending[0] = head
            ex.headers_modified = False
        else:
            ex.pending.append(head)
        ex.retry_head = head if body_kind == BODY_NONE else b""
        return True

    def _chain_done(self, ex: Exchange, task: Any) -> None:
        ex.waiting = False
        if task.cancelled() or self.transport is None or ex.response is not None:
            return
        exc = task.exception()
        if exc is not None:
            log.error("middleware failed", exc_info=exc)
            self._answer(ex, responses.error_response(500, "Internal error"), False)
        else:
            result = task.result()
            if result is not None:
                if ex.refused_by is None:
                    # The chain's last step answered through its awaitable.
                    ex.refused_by = (None, result)
                self._answer(ex, result, False)
            elif ex.headers_modified:
                self._build_head(ex, cython.cast(Route, ex.route))
        if self.queue and self.queue[0] is ex:
            self._advance()

    @cython.cfunc
    def _on_upgrade(self) -> None:
        # llhttp stops at a request asking for a protocol upgrade.  fastgate
        # does not tunnel upgrades: the request is proxied without Upgrade (a
        # hop-by-hop field) and the connection closes after the answer, since
        # what follows in the stream is not HTTP/1.1 that could be framed.
        ex: Exchange | None = self.current
        self.current = None
        if ex is None:
            self._refuse(responses.error_response(400, "Malformed request", close=True))
            return
        ex.close_after = True
        ex.request_done = True
        if ex.body_kind != BODY_NONE and ex.response is None:
            ex.pending.clear()
            ex.response = responses.error_response(400, "Upgrade with a body", close=True)
        self.pause_reading(PAUSE_CLOSING)
        if ex.admin and ex.body is not None:
            self._dispatch_admin(ex)
        self._advance()

    # -- answering -------------------------------------------------------------

    @cython.cfunc
    def _answer(self, ex: Exchange, response: bytes, close: cython.bint) -> None:
        """Give ``ex`` a response of the gateway's own (its body is discarded)."""
        ex.response = response
        ex.pending = []
        ex.pending_bytes = 0
        ex.body_check = None
        ex.held = None
        if not close and ex.expect_continue and not ex.request_done:
            # Refused before its 100 Continue: the client may or may not send
            # the body it announced, so the stream cannot be trusted after it.
            close = True
        if close:
            ex.close_after = True
            if self.current is ex:
                self.current = None
            self.pause_reading(PAUSE_CLOSING)
        elif self.current is ex:
            # The rest of its body is read and discarded from now on.
            self.resume_reading(PAUSE_BUFFER)

    @cython.cfunc
    def _refuse(self, response: bytes) -> None:
        """A malformed request: answer it after those before it, then close."""
        self.current = None
        self.in_head = False
        self.head_due = False
        self.pause_reading(PAUSE_CLOSING)
        queue = self.queue
        ex: Exchange
        last: Exchange | None = queue[-1] if queue else None
        if last is not None and last.response is None and not last.request_done:
            # The malformed bytes belong to this request: it is never forwarded.
            ex = last
            if ex.upstream is not None:
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
        ex.pending = []
        ex.body_check = None
        ex.held = None
        self._advance()

    @cython.cfunc
    def _dispatch_admin(self, ex: Exchange) -> None:
        body = b"".join(ex.body) if ex.body else b""
        ex.body = None
        result = self.gateway.admin.handle(ex.method, ex.path, ex.query,
                                           ex.request_headers, body, ex)
        if isinstance(result, bytes):
            ex.response = result if not ex.is_head else _strip_body(result)
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(functools.partial(self._admin_done, ex))

    def _admin_done(self, ex: Exchange, task: Any) -> None:
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

    @cython.cfunc
    def _advance(self) -> None:
        """Write the responses that are ready, in order, and start the next
        proxied exchange."""
        queue = self.queue
        transport = self.transport
        ex: Exchange
        while queue and transport is not None:
            ex = queue[0]
            response = ex.response
            if response is None:
                if ex.admin or ex.started or ex.waiting:
                    return  # waiting for the handler, the middleware or the upstream
                self._start(ex)
                return
            queue.popleft()
            if ex.is_head:
                # A HEAD answer has no body (RFC 9110 §9.3.2), whoever made it.
                response = _strip_body(response)
            close: cython.bint = ex.close_after or self.shutting_down
            if close:
                response = _with_close(response)
            transport.write(response)
            ex.bytes_out = len(response)
            ex.status = _status_of(response)
            ex.complete = True
            self._finished(ex)
            if close:
                self._close()
                return

    @cython.cfunc
    def _start(self, ex: Exchange) -> None:
        route: Route = cython.cast(Route, ex.route)
        ex.started = True
        if ex.expect_continue and not ex.request_done and self.transport is not None:
            self.transport.write(CONTINUE_100)
            ex.expect_continue = False
        pool: UpstreamPool = route.pool
        conn: UpstreamConnection | None = pool.acquire()
        if conn is None:
            pool.connect(ex)
        else:
            conn.attach(ex)

    @cython.cfunc
    def retry(self, ex: Exchange) -> None:
        """The upstream connection broke before answering; try a new one once."""
        ex.retried = True
        ex.pending = [ex.retry_head]
        route: Route = cython.cast(Route, ex.route)
        route.pool.connect(ex)

    @cython.cfunc
    def upstream_failed(self, ex: Exchange, response: bytes, response_close: bytes) -> None:
        """The upstream could not answer ``ex`` (refused, reset, timeout)."""
        ex.upstream = None
        if not ex.request_done:
            # The rest of the body has nowhere to go: answer and close.
            self._answer(ex, response_close, True)
        else:
            ex.response = response
        if self.queue and self.queue[0] is ex:
            self._advance()

    @cython.cfunc
    def answer_instead(self, ex: Exchange, response: bytes) -> None:
        """Answer ``ex`` with ``response`` (complete) instead of relaying the
        upstream's answer (a response hook decided, or failed)."""
        self.upstream_failed(ex, response, _with_close(response))

    @cython.cfunc
    def response_collected(self, ex: Exchange, status: cython.int, lines: list,
                           body: bytes) -> None:
        """The upstream's whole answer to ``ex`` (its upstream connection
        already let go): ask the response hook, then write what it says."""
        hook = ex.response_hook
        if hook is None:
            # Collected only to re-frame it (the method sent upstream changed).
            self.answer_instead(ex, _assemble(ex, status, lines, body))
            return
        try:
            result = hook(status, _pairs(lines), body if ex.hook_body else None)
        except Exception:
            log.exception("response middleware failed")
            self.answer_instead(ex, MIDDLEWARE_ERROR)
            return
        if result is None or isinstance(result, (bytes, tuple)):
            self.answer_instead(ex, _hook_answer(ex, result, status, lines, body))
            return
        try:
            task = asyncio.ensure_future(result)
        except TypeError:
            log.error("response middleware answered %r", type(result).__name__)
            self.answer_instead(ex, MIDDLEWARE_ERROR)
            return
        task.add_done_callback(functools.partial(self._response_hook_done, ex, status, lines,
                                                 body))

    def _response_hook_done(self, ex: Exchange, status: int, lines: list, body: bytes,
                            task: Any) -> None:
        if self.transport is None or ex.finished:
            return
        answer: bytes
        if task.cancelled():
            answer = MIDDLEWARE_ERROR
        elif task.exception() is not None:
            log.error("response middleware failed", exc_info=task.exception())
            answer = MIDDLEWARE_ERROR
        else:
            answer = _hook_answer(ex, task.result(), status, lines, body)
        self.answer_instead(ex, answer)

    @cython.cfunc
    def response_done(self, ex: Exchange) -> None:
        """The upstream's response to ``ex`` has been relayed completely."""
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        ex.complete = True
        self._finished(ex)
        if self.transport is None:
            return
        if ex.close_after or self.shutting_down:
            self._close()
            return
        if queue:
            self._advance()

    @cython.cfunc
    def _finished(self, ex: Exchange) -> None:
        """Rule 8: the exchange has ended; tell the hook, once."""
        if ex.finished:
            return
        ex.finished = True
        hook = self.on_finished
        if hook is None:
            return
        ex.ended_at = _now()
        try:
            hook(ex)
        except Exception:
            log.exception("the exchange-finished hook failed")

    def abort(self) -> None:
        """Drop the connection (a response cannot be completed)."""
        if self.transport is not None:
            self.transport.abort()

    # -- closing ---------------------------------------------------------------

    @cython.cfunc
    def _close(self) -> None:
        """Close after the answers written so far (rule 6)."""
        transport = self.transport
        if transport is None or self.lingering:
            return
        if self.eof:
            transport.close()  # the client has sent everything it will send
            return
        if not transport.can_write_eof() and self.current is None and not self.in_head:
            # TLS cannot half-close: lingering would leave a client that waits
            # for the end of the answer waiting lingering_timeout.  Nothing of
            # a request is on its way: close now.
            transport.close()
            return
        # Whatever the client sends from now on is never parsed: the requests
        # behind this answer are dropped.
        self._drop_queue()
        self.lingering = True
        self.linger_since = self.tick
        self.idle_ticks = 0
        if transport.can_write_eof():
            transport.write_eof()  # after the buffered answer: a FIN, not a reset
        self.paused = 0
        transport.resume_reading()

    # -- flow control ----------------------------------------------------------

    @cython.ccall
    def pause_reading(self, reason: cython.int) -> None:
        if not self.paused and self.transport is not None and not self.lingering:
            self.transport.pause_reading()
        self.paused |= reason

    @cython.ccall
    def resume_reading(self, reason: cython.int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.lingering:
                self.transport.resume_reading()

    @cython.cfunc
    def buffer_flushed(self, ex: Exchange) -> None:
        """``ex``'s buffered request bytes went upstream: reading may go on."""
        if self.paused & PAUSE_BUFFER and self.current is ex:
            self.resume_reading(PAUSE_BUFFER)

    def pause_writing(self) -> None:
        self.write_paused = True
        ex: Exchange
        if self.queue:
            ex = self.queue[0]
            if ex.upstream is not None:
                ex.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.activity += 1
        ex: Exchange
        if self.queue:
            ex = self.queue[0]
            if ex.upstream is not None:
                ex.upstream.resume_reading()

    # -- life cycle --------------------------------------------------------------

    @cython.ccall
    def idle(self) -> cython.bint:
        """Between requests on a keep-alive connection (nothing to lose by closing)."""
        return (self.transport is not None and not self.queue and not self.in_head
                and self.current is None and not self.lingering and not self.head_due)

    def shutdown(self) -> None:
        """Stop after the responses in flight (graceful shutdown)."""
        self.shutting_down = True
        if self.transport is not None and (self.idle() or (self.head_due and not self.in_head)):
            self.transport.close()

    def close_idle(self) -> None:
        """Close this idle keep-alive connection (the gateway needs the room)."""
        if self.idle():
            self.transport.close()

    def check_timeouts(self, tick: cython.long) -> None:
        """Called by the gateway's sweeper every tick (rule 7)."""
        self.tick = tick
        transport = self.transport
        if transport is None:
            return
        if self.lingering:
            if tick - self.linger_since >= self.linger_ticks:
                transport.abort()  # lingering_time: the client never stopped
                return
        elif self.head_due and tick - self.head_since >= self.header_ticks:
            if self.in_head:
                self._refuse(responses.HEADER_TIMEOUT_CLOSE)
            else:
                transport.close()  # connected and said nothing at all
            return
        if self.activity != self.seen_activity:
            self.seen_activity = self.activity
            self.idle_ticks = 0
            return
        self.idle_ticks += 1
        if self.lingering:
            if self.idle_ticks >= self.linger_idle_ticks:
                transport.abort()
            return
        ex: Exchange
        if self.queue:
            ex = self.queue[0]
            if ex.started:
                if self.write_paused and self.idle_ticks >= self.write_ticks:
                    transport.abort()
                return  # waiting for the upstream: its own timeout governs
        if self.in_head or self.current is not None or self.queue:
            if self.idle_ticks >= self.read_ticks:
                transport.abort()
        elif self.idle_ticks >= self.idle_ticks_max:
            transport.close()


# -- upstream side -----------------------------------------------------------------

# How a response body is relayed to the client.
RELAY_RAW: int = 0
RELAY_CHUNKED: int = 1

TERMINAL_CHUNK = b"0\r\n\r\n"
_CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE = b"Connection: close\r\n"
_KEEP_ALIVE_LINE = b"Connection: keep-alive\r\n"


@cython.cclass
class UpstreamPool:
    """Keep-alive connections to one upstream target."""

    loop: Any
    host = cython.declare(str, visibility="public")
    port = cython.declare(cython.int, visibility="public")
    max_idle: cython.Py_ssize_t
    ssl: Any
    tls: Any  # fastgate.server.upstream_tls.UpstreamTls, or None
    server_hostname: Any
    idle = cython.declare(list, visibility="public")
    busy = cython.declare(set, visibility="public")
    closed = cython.declare(cython.bint, visibility="public")
    writes: UpstreamWrites
    #: Counters the metrics read: connections opened, attempts that failed,
    #: connections that broke under an exchange, upstream timeouts.
    connects = cython.declare(cython.long, visibility="readonly")
    connect_failures = cython.declare(cython.long, visibility="readonly")
    resets = cython.declare(cython.long, visibility="readonly")
    timeouts = cython.declare(cython.long, visibility="readonly")

    def __init__(self, loop: Any, scheme: str, host: str, port: int, max_idle: int,
                 tls: Any = None) -> None:
        self.loop = loop
        self.writes = UpstreamWrites.of(loop)
        self.host = host
        self.port = port
        self.max_idle = max_idle
        # ``tls`` hands each new connection its context and checks it once
        # made; without one, https gets the default (verifying) context.
        self.tls = tls if scheme == "https" else None
        self.ssl = ssl.create_default_context() if scheme == "https" and tls is None else None
        self.server_hostname = host if scheme == "https" else None
        self.idle = []
        self.busy = set()
        self.closed = False
        self.connects = 0
        self.connect_failures = 0
        self.resets = 0
        self.timeouts = 0

    @cython.ccall
    def acquire(self) -> UpstreamConnection | None:
        """An idle connection, or None."""
        idle = self.idle
        conn: UpstreamConnection
        while idle:
            conn = idle.pop()
            if conn.transport is not None:
                self.busy.add(conn)
                return conn
        return None

    @cython.cfunc
    def release(self, conn: UpstreamConnection) -> None:
        self.busy.discard(conn)
        if self.closed or len(self.idle) >= self.max_idle or conn.transport is None:
            conn.close()
        else:
            self.idle.append(conn)

    @cython.cfunc
    def discard(self, conn: UpstreamConnection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    @cython.ccall
    def connect(self, ex: Exchange) -> None:
        """Open a new connection for ``ex`` (asynchronously)."""
        self.connects += 1
        task = self.loop.create_task(self._connect())
        task.add_done_callback(functools.partial(self._connected, ex))

    async def _connect(self) -> Any:
        tls = self.tls
        context = self.ssl if tls is None else await tls.context()
        transport, conn = await self.loop.create_connection(
            functools.partial(UpstreamConnection, self), self.host, self.port,
            ssl=context, server_hostname=self.server_hostname,
        )
        if tls is not None:
            problem = tls.check(transport)
            if problem is not None:
                transport.abort()
                raise UpstreamRefused(problem)
        return conn

    def _connected(self, ex: Exchange, task: Any) -> None:
        client: ClientProtocol = ex.client
        exc = task.exception()
        if exc is not None:
            self.connect_failures += 1
            log.warning("upstream %s:%d unreachable: %s", self.host, self.port, exc)
            message = _upstream_error(exc)
            if message is None:
                client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)
            else:
                client.upstream_failed(ex, responses.error_response(502, message),
                                       responses.error_response(502, message, close=True))
            return
        conn: UpstreamConnection = task.result()
        if client.transport is None or self.closed:
            conn.close()
            return
        if ex.response is not None:
            # Answered while connecting (a body check refused it, the rest of
            # the request was malformed): nothing to send, the fresh
            # connection waits for the next request.
            self.release(conn)
            return
        self.busy.add(conn)
        conn.attach(ex)

    def close(self) -> None:
        """Close idle connections; busy ones close when their exchange ends."""
        self.closed = True
        conn: UpstreamConnection
        for conn in self.idle:
            conn.close()
        self.idle.clear()


_WRITES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@cython.final
@cython.cclass
class UpstreamWrites:
    """The upstream connections of one event loop with bytes queued, written
    in one burst once the loop's current callbacks are done (rule 8)."""

    loop: Any
    queued: list
    scheduled: cython.bint

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.queued = []
        self.scheduled = False

    @staticmethod
    def of(loop: Any) -> UpstreamWrites:
        """The loop's one instance (made on first use)."""
        writes = _WRITES.get(loop)
        if writes is None:
            writes = UpstreamWrites(loop)
            _WRITES[loop] = writes
        return cython.cast(UpstreamWrites, writes)

    @cython.cfunc
    def add(self, conn: UpstreamConnection) -> None:
        self.queued.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        queued = self.queued
        self.queued = []
        conn: UpstreamConnection
        for conn in queued:
            conn.write_queued()


@cython.cclass
class UpstreamConnection:
    """One keep-alive connection to an upstream (an asyncio protocol)."""

    pool: UpstreamPool
    transport: Any
    #: Bytes handed over by send_pending, not yet written (rule 8).
    queued = cython.declare(list, visibility="readonly")
    parser: Any
    exchange: Exchange | None
    used: cython.long
    reusable: cython.bint
    reading_paused: cython.bint
    activity: cython.long
    seen_activity: cython.long
    idle_ticks: cython.long
    # Per-response state.
    lines: list  # response header lines to forward: name, ': ', value, CRLF quads
    drop: set | None  # fields the upstream's Connection header lists
    has_length: cython.bint
    has_chunked: cython.bint
    in_head: cython.bint
    skip: cython.bint
    done: cython.bint
    until_close: cython.bint
    relay: cython.int
    out: list
    # A response shown to a hook (Exchange.on_response) or re-framed for a
    # changed method: collected whole (capturing), or its head held until
    # the hook answers (hold).
    capturing: cython.bint
    keep_body: cython.bint
    overflow: cython.bint
    hold: cython.bint
    hook_asked: cython.bint
    hook_status: cython.int
    hook_lines: list  # the fields as forwarded: name, ': ', value, CRLF quads
    head_tail: bytes  # hold: the head's lines after the fields (framing, limits, Connection)
    held_head: bytes
    captured: list
    captured_bytes: cython.Py_ssize_t

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange = None
        self.used = 0
        self.reusable = True
        self.reading_paused = False
        self.activity = 0
        self.seen_activity = 0
        self.idle_ticks = 0
        self.lines = []
        self.drop = None
        self.has_length = False
        self.has_chunked = False
        self.in_head = False
        self.skip = False
        self.done = False
        self.until_close = False
        self.relay = RELAY_RAW
        self.out = []
        self.queued = []
        self.capturing = False
        self.keep_body = False
        self.overflow = False
        self.hold = False
        self.hook_asked = False
        self.hook_status = 0
        self.hook_lines = []
        self.head_tail = b""
        self.held_head = b""
        self.captured = []
        self.captured_bytes = 0

    # -- exchange life cycle -----------------------------------------------------

    @cython.cfunc
    def attach(self, ex: Exchange) -> None:
        """Start sending ``ex``'s request on this connection."""
        self.exchange = ex
        ex.upstream = self
        if ex.started_at:
            ex.upstream_at = _now()
        self.used += 1
        self.done = False
        self.skip = False
        self.until_close = False
        if self.capturing or self.hold:
            self._reset_hook_state()
        if ex.client.write_paused:
            self.pause_reading()
        self.send_pending()

    @cython.cfunc
    def _reset_hook_state(self) -> None:
        self.capturing = False
        self.overflow = False
        self.hold = False
        self.hook_asked = False
        self.hook_lines = []
        self.captured = []
        self.captured_bytes = 0

    @cython.cfunc
    def send_pending(self) -> None:
        ex: Exchange | None = self.exchange
        transport = self.transport
        if ex is None or transport is None:
            return
        if ex.pending:
            self.queue(ex.pending, ex.pending_bytes)
        ex.pending = []
        ex.pending_bytes = 0
        ex.client.buffer_flushed(ex)

    @cython.cfunc
    def _detach(self, ex: Exchange) -> None:
        """``ex`` leaves this connection: whatever it paused resumes."""
        self.exchange = None
        ex.upstream = None
        ex.client.resume_reading(PAUSE_UPSTREAM)

    @cython.ccall
    def abandon(self) -> None:
        """The client went away or sent a malformed request mid-exchange: this
        connection is somewhere inside a message and cannot be reused."""
        self.exchange = None
        self.reusable = False
        self.queued = []
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)

    @cython.ccall
    def queue(self, data: list, body_bytes: cython.Py_ssize_t) -> None:
        """Send ``data`` (which holds ``body_bytes`` of request body): in the
        loop's burst, or at once (rule 8)."""
        if self.queued or body_bytes > BATCHED_WRITE_MAX:
            # A body streaming in (a second read in one iteration, or a large
            # one): written now, so that the upstream's flow control pauses
            # the client before libuv reads on (rule 5).
            self.queued.extend(data)
            self.write_queued()
        else:
            self.queued = data
            self.pool.writes.add(self)

    @cython.ccall
    def write_queued(self) -> None:
        queued: list = self.queued
        if not queued:
            return  # written by close(), or dropped by abandon()
        self.queued = []
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # aborted (a broken response, a timeout): nothing more to send
        if len(queued) == 1:
            transport.write(queued[0])
        else:
            transport.writelines(queued)

    @cython.ccall
    def close(self) -> None:
        if self.transport is not None:
            self.write_queued()
            self.transport.close()

    @cython.cfunc
    def _finish(self) -> None:
        ex: Exchange = cython.cast(Exchange, self.exchange)
        if self.capturing:
            self._hand_over(ex)
            return
        self._let_go(ex)
        ex.client.response_done(ex)

    @cython.cfunc
    def _let_go(self, ex: Exchange) -> None:
        """The response has been read to its end: back to the pool (or closed)."""
        self._detach(ex)
        if ex.upstream_head:
            # llhttp still expects the body a HEAD answer does not have.
            self.parser = httptools.HttpResponseParser(self)
        if self.reading_paused:
            self.resume_reading()
        if self.reusable and ex.request_done:
            self.pool.release(self)
        else:
            self.pool.busy.discard(self)
            self.close()

    @cython.cfunc
    def _give_up(self, ex: Exchange) -> None:
        """Leave a response unread: the connection is inside it, never reused."""
        self._detach(ex)
        self.reusable = False
        self.out = []
        self.queued = []
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)

    @cython.cfunc
    def _hand_over(self, ex: Exchange) -> None:
        """A collected response is complete: the connection goes back to the
        pool before the client side (its hook) decides what to write."""
        captured: list = self.captured
        lines: list = self.hook_lines
        status: cython.int = self.hook_status
        overflow: cython.bint = self.overflow
        self._reset_hook_state()
        if overflow:
            self._give_up(ex)
            _warn_too_large(ex)
            ex.client.upstream_failed(ex, RESPONSE_TOO_LARGE, RESPONSE_TOO_LARGE_CLOSE)
            return
        self._let_go(ex)
        ex.client.response_collected(ex, status, lines, b"".join(captured) if captured else b"")

    @cython.cfunc
    def _on_hold(self, ex: Exchange) -> None:
        """The head waits for the hook (``on_response(hook, body=False)``):
        ask it once; while it has not answered, read nothing more."""
        if self.hook_asked:
            self.pause_reading()
            return
        self.hook_asked = True
        try:
            result = ex.response_hook(self.hook_status, _pairs(self.hook_lines), None)
        except Exception:
            log.exception("response middleware failed")
            self._head_answer(ex, MIDDLEWARE_ERROR)
            return
        if result is None or isinstance(result, (bytes, tuple)):
            self._head_answer(ex, result)
            return
        self.pause_reading()
        try:
            task = asyncio.ensure_future(result)
        except TypeError:
            log.error("response middleware answered %r", type(result).__name__)
            self._head_answer(ex, MIDDLEWARE_ERROR)
            return
        task.add_done_callback(functools.partial(self._head_hook_done, ex))

    def _head_hook_done(self, ex: Exchange, task: Any) -> None:
        if self.exchange is not ex or not self.hold:
            return  # timed out, or the client went away, meanwhile
        if task.cancelled():
            self._head_answer(ex, MIDDLEWARE_ERROR)
            return
        exc = task.exception()
        if exc is not None:
            log.error("response middleware failed", exc_info=exc)
            self._head_answer(ex, MIDDLEWARE_ERROR)
        else:
            self._head_answer(ex, task.result())

    @cython.cfunc
    def _head_answer(self, ex: Exchange, result: Any) -> None:
        """The hook's answer to a held head: write the head (and the body
        read so far) and stream on, or write a complete answer instead."""
        head: bytes | None = None
        answer: bytes | None = None
        if result is None:
            head = self.held_head
        elif isinstance(result, bytes):
            answer = _adopt(ex, result)
        else:
            try:
                head = self._rebuilt_head(ex, result)
            except Exception:
                log.exception("response middleware answered an unusable head")
                answer = MIDDLEWARE_ERROR
        self.hold = False
        self.held_head = b""
        if head is None:
            if answer is None:
                answer = MIDDLEWARE_ERROR
            self.out = []
            if self.done:
                self._let_go(ex)
            else:
                self._give_up(ex)
            ex.client.answer_instead(ex, answer)
            return
        out: list = self.out
        out.insert(0, head)
        self.out = []
        ex.response_started = True
        transport = ex.client.transport
        if transport is not None:
            transport.writelines(out)
            if ex.started_at:
                ex.bytes_out += _total_length(out)
        if self.done:
            self._finish()
        elif self.reading_paused and not ex.client.write_paused:
            self.resume_reading()

    @cython.cfunc
    def _rebuilt_head(self, ex: Exchange, result: Any) -> bytes:
        """The head from a hook's ``(status, headers)``, framed as the
        upstream's body is (raises on anything unusable)."""
        status_value, fields = result
        status: cython.int = _hook_status(status_value)
        if not ex.is_head and _bodyless(status) != _bodyless(self.hook_status):
            raise ValueError("a status that changes whether the answer has a body")
        ex.status = status
        lines: list = _field_lines(fields)
        upstream: list = self.hook_lines
        i: cython.Py_ssize_t
        for i in range(0, len(upstream), 4):
            if upstream[i].lower() == b"content-length":
                lines += upstream[i : i + 4]
                break
        return _status_line(status) + b"".join(lines) + self.head_tail

    # -- connection events -----------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.queued = []
        self.pool.discard(self)
        ex: Exchange | None = self.exchange
        if ex is None:
            return
        self._detach(ex)
        client: ClientProtocol = ex.client
        if client.transport is None:
            return
        if not (self.until_close and ex.response_started and not self.done):
            self.pool.resets += 1  # broke off under an exchange
        if self.until_close and ex.response_started and not self.done:
            # A close-delimited response ends here.
            if self.relay == RELAY_CHUNKED:
                client.transport.write(TERMINAL_CHUNK)
            client.response_done(ex)
        elif self.capturing:
            if self.until_close and not self.done and not self.overflow:
                self.done = True
                self._hand_over(ex)  # a close-delimited response, collected
            else:
                self._reset_hook_state()
                client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)
        elif not ex.response_started:
            if (self.used > 1 and not ex.retried and ex.request_done
                    and ex.body_kind == BODY_NONE and not self.in_head and not self.hold):
                client.retry(ex)
            else:
                client.upstream_failed(ex, responses.BAD_GATEWAY, responses.BAD_GATEWAY_CLOSE)
        else:
            client.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost does the rest

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        ex: Exchange | None = self.exchange
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
        if self.hold:
            self._on_hold(ex)
            return
        out: list = self.out
        if out:
            transport = ex.client.transport
            if transport is not None:
                if len(out) == 1:
                    transport.write(out[0])
                else:
                    transport.writelines(out)
                if ex.started_at:
                    ex.bytes_out += _total_length(out)
            self.out = []
        if self.done:
            self._finish()

    @cython.cfunc
    def _broken(self, ex: Exchange, exc: Exception) -> None:
        log.warning("upstream %s:%d sent an invalid response: %s", self.pool.host,
                    self.pool.port, exc)
        if self.capturing or self.hold:
            self._reset_hook_state()
        self._detach(ex)
        self.reusable = False
        self.out = []
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
        self.lines = []
        self.drop = None
        self.has_length = False
        self.has_chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        # Filtered as they arrive: no list of all fields is kept.
        if not self.in_head:
            return  # a trailer field: not forwarded
        lname: bytes = name.lower()
        if lname in HOP_BY_HOP or lname.startswith(b"proxy-"):
            if lname == b"transfer-encoding":
                self.has_chunked = True
            elif lname == b"connection":
                tokens = connection_tokens(value)
                if tokens is not None:
                    self.drop = tokens if self.drop is None else self.drop | tokens
            return
        if lname == b"content-length":
            self.has_length = True
        _append_field(self.lines, name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        ex: Exchange | None = self.exchange
        if ex is None:
            return
        parser = self.parser
        status: cython.int = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise httptools.HttpParserError("unexpected 101 Switching Protocols")
            self.skip = True  # an interim response (100, 103): not relayed
            return
        if not parser.should_keep_alive():
            self.reusable = False
        ex.status = status
        if ex.started_at:
            ex.upstream_head_at = _now()
        lines: list = self.lines
        if self.drop is not None:
            lines = _without(lines, self.drop, 0)
        if ex.response_hook is not None or ex.upstream_head != ex.is_head:
            if ex.hook_body or ex.upstream_head != ex.is_head:
                self._collect(ex, status, lines)
                return
            self.hook_lines = lines[:]
        has_length: cython.bint = self.has_length
        has_chunked: cython.bint = self.has_chunked
        status_line = responses.STATUS_LINES.get(status)
        if status_line is None:
            status_line = b"HTTP/1.1 %d Unknown\r\n" % status
        close: cython.bint = (ex.close_after or ex.client.shutting_down
                              or not ex.request_done)
        no_body: cython.bint = ex.is_head or status == 204 or status == 304
        self.relay = RELAY_RAW
        if not no_body and not has_length:
            if not has_chunked:
                self.until_close = True
                self.reusable = False
            if ex.http11:
                lines.append(_CHUNKED_LINE)
                self.relay = RELAY_CHUNKED
            else:
                close = True
        if ex.response_headers:
            lines.append(ex.response_headers)
        if close:
            lines.append(_CLOSE_LINE)
            ex.close_after = True
        elif not ex.http11:
            lines.append(_KEEP_ALIVE_LINE)
        lines.append(b"\r\n")
        if ex.response_hook is not None:
            # on_response(hook, body=False): the head waits for the hook.
            self.hold = True
            self.hook_asked = False
            self.hook_status = status
            self.head_tail = b"".join(lines[len(self.hook_lines):])
            self.held_head = status_line + b"".join(lines)
        else:
            self.out.append(status_line + b"".join(lines))
            ex.response_started = True
        if ex.is_head:
            self.done = True

    @cython.cfunc
    def _collect(self, ex: Exchange, status: cython.int, lines: list) -> None:
        """Collect this response whole instead of relaying it (a hook wants
        the body, or the method sent upstream changed whether it has one)."""
        self.capturing = True
        self.hook_status = status
        self.hook_lines = lines
        self.captured = []
        self.captured_bytes = 0
        self.relay = RELAY_RAW
        # A client's HEAD gets no body: none is kept (nor limited).
        self.keep_body = not ex.is_head and not ex.upstream_head
        if ex.upstream_head:
            self.done = True  # a HEAD answer: no body follows
        elif status != 204 and status != 304 and not self.has_length and not self.has_chunked:
            self.until_close = True
            self.reusable = False
        if ex.close_after or ex.client.shutting_down or not ex.request_done:
            ex.close_after = True

    def on_body(self, data: bytes) -> None:
        if self.done or self.skip:
            self.reusable = False  # a body where none may be
            return
        if self.capturing:
            if self.keep_body:
                self.captured_bytes += len(data)
                if self.captured_bytes > MAX_BUFFERED:
                    # Too large to show the hook: ends here (a 502).
                    self.overflow = True
                    self.done = True
                    self.captured = []
                else:
                    self.captured.append(data)
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

    @cython.ccall
    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    @cython.ccall
    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        ex: Exchange | None = self.exchange
        if ex is not None:
            ex.client.pause_reading(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        self.activity += 1
        ex: Exchange | None = self.exchange
        if ex is not None:
            ex.client.resume_reading(PAUSE_UPSTREAM)

    # -- timeouts --------------------------------------------------------------------

    def check_timeout(self, timeout_ticks: cython.long) -> None:
        """Called by the gateway's sweeper every tick while the connection is busy."""
        if self.activity != self.seen_activity:
            self.seen_activity = self.activity
            self.idle_ticks = 0
            return
        ex: Exchange | None = self.exchange
        if ex is None or ex.client.write_paused:
            self.idle_ticks = 0
            return
        self.idle_ticks += 1
        if self.idle_ticks < timeout_ticks:
            return
        self.pool.timeouts += 1
        self._detach(ex)
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)
        if ex.response_started:
            ex.client.abort()
        else:
            ex.client.upstream_failed(ex, responses.GATEWAY_TIMEOUT,
                                      responses.GATEWAY_TIMEOUT_CLOSE)


# -- routing -------------------------------------------------------------------------


@cython.cclass
class Route:
    """An API definition compiled for the hot path (built by the gateway)."""

    spec = cython.declare(object, visibility="readonly")
    listen_path = cython.declare(bytes, visibility="readonly")
    strip = cython.declare(cython.bint, visibility="readonly")
    target_path = cython.declare(bytes, visibility="readonly")
    #: The Host to send upstream; None keeps the client's (preserve_host_header).
    host_header = cython.declare(object, visibility="readonly")
    pool = cython.declare(UpstreamPool, visibility="readonly")
    #: A prepared refusal when the API cannot be served safely.
    refusal = cython.declare(object, visibility="readonly")
    #: The middleware chain: called with the Exchange, answers None (go on),
    #: bytes (a complete response) or an awaitable of either; None for none.
    chain = cython.declare(object, visibility="readonly")
    #: The metrics' counters of this API (set on its first exchange).
    counters = cython.declare(object, visibility="public")

    def __init__(self, spec: Any, listen_path: bytes, strip: bool, target_path: bytes,
                 host_header: bytes | None, pool: UpstreamPool,
                 refusal: bytes | None, chain: Any = None) -> None:
        self.spec = spec
        self.listen_path = listen_path
        self.strip = strip
        self.target_path = target_path
        self.host_header = host_header
        self.pool = pool
        self.refusal = refusal
        self.chain = chain
        self.counters = None


@cython.cclass
class Router:
    """The route whose ``listen_path`` is the longest prefix of the path.

    Tyk matches listen paths as plain string prefixes of the request path (a
    gorilla/mux ``PathPrefix``), so ``/a`` also matches ``/abc``; fastgate does
    the same so existing definitions route identically.  Lookup is one dict
    probe per distinct listen-path length, longest first: independent of the
    number of APIs.
    """

    routes = cython.declare(tuple, visibility="readonly")
    by_length: dict
    lengths: tuple

    def __init__(self, routes: Any) -> None:
        self.routes = tuple(routes)
        by_length: dict = {}
        route: Route
        for route in self.routes:
            by_length.setdefault(len(route.listen_path), {})[route.listen_path] = route
        self.lengths = tuple(sorted(by_length, reverse=True))
        self.by_length = by_length

    @cython.ccall
    def match(self, path: bytes) -> Route | None:
        """The route serving ``path``, or None."""
        n: cython.Py_ssize_t = len(path)
        length: cython.Py_ssize_t
        for length in self.lengths:
            if length <= n:
                route = self.by_length[length].get(path[:length])
                if route is not None:
                    return cython.cast(Route, route)
        return None


# -- the middleware chain ---------------------------------------------------------------


@cython.cclass
class Chain:
    """Runs an API's middleware steps in order until one refuses the request
    (built by :func:`fastgate.middleware.chain.build_chain`).

    Each step's ``process(request)`` answers None (go on), bytes (a complete
    response: the refusal) or an awaitable of either.  While every step
    answers synchronously the chain costs no coroutine and no Task; the first
    awaitable turns the rest of the chain into one coroutine -- except the
    last step's, which is handed back as it is.  A refusal is recorded on the
    request as ``refused_by = (step name, refusal)``; ``(None, refusal)`` is
    the proxy's, when the last step's awaitable refuses.
    """

    steps = cython.declare(tuple, visibility="readonly")

    def __init__(self, steps: Any) -> None:
        self.steps = tuple(steps)

    def __call__(self, req: Any) -> Any:
        steps: tuple = self.steps
        n: cython.Py_ssize_t = len(steps)
        index: cython.Py_ssize_t
        for index in range(n):
            step = steps[index]
            result = step.process(req)
            if result is None:
                continue
            if type(result) is bytes:
                req.refused_by = (step.name, result)
                return result
            if index == n - 1:
                return result
            return self._resume(result, index, req)
        return None

    async def _resume(self, pending: Any, waiting: cython.Py_ssize_t, req: Any) -> Any:
        """The rest of the chain once step ``waiting``'s awaitable resolves."""
        steps: tuple = self.steps
        result = await pending
        if result is not None:
            req.refused_by = (steps[waiting].name, result)
            return result
        index: cython.Py_ssize_t
        for index in range(waiting + 1, len(steps)):
            step = steps[index]
            outcome = step.process(req)
            if outcome is None:
                continue
            if isinstance(outcome, bytes):
                req.refused_by = (step.name, outcome)
                return outcome
            result = await outcome
            if result is not None:
                req.refused_by = (step.name, result)
                return result
        return None


# -- request counters -------------------------------------------------------------------

#: Methods the counters name; any other counts as the last index ("OTHER").
COUNTED_METHODS: tuple = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD",
                          b"OPTIONS")
_METHOD_INDEX: dict = {name: index for index, name in enumerate(COUNTED_METHODS)}
#: Status classes per method: 0 ("none": no answer started, or past 599), 1xx..5xx.
STATUS_CLASSES: int = 6


@cython.cclass
class ApiCounters:
    """One API's request counters (or the unrouted requests'), filled by
    :class:`ExchangeCounter` and read by the metrics' export.

    ``requests[method index * STATUS_CLASSES + status // 100]``; ``total``,
    ``upstream`` and ``gateway`` (total minus upstream) count latencies per
    bucket of the counter's bounds (one more past the last); ``sums`` are
    their seconds summed; ``refusals`` is the metrics' own
    (``(step, status, reason) -> count``).
    """

    api_id = cython.declare(str, visibility="readonly")
    requests = cython.declare(list, visibility="readonly")
    total = cython.declare(list, visibility="readonly")
    upstream = cython.declare(list, visibility="readonly")
    gateway = cython.declare(list, visibility="readonly")
    sums = cython.declare(list, visibility="readonly")
    refusals = cython.declare(dict, visibility="readonly")

    def __init__(self, api_id: str, nbuckets: int) -> None:
        self.api_id = api_id
        self.requests = [0] * ((len(COUNTED_METHODS) + 1) * STATUS_CLASSES)
        self.total = [0] * (nbuckets + 1)
        self.upstream = [0] * (nbuckets + 1)
        self.gateway = [0] * (nbuckets + 1)
        self.sums = [0.0, 0.0, 0.0]
        self.refusals = {}


@cython.cfunc
@cython.inline
def _bucket(bounds: tuple, value: cython.double) -> cython.Py_ssize_t:
    """``bisect_left(bounds, value)``."""
    lo: cython.Py_ssize_t = 0
    hi: cython.Py_ssize_t = len(bounds)
    mid: cython.Py_ssize_t
    while lo < hi:
        mid = (lo + hi) >> 1
        if cython.cast(cython.double, bounds[mid]) < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.cclass
class ExchangeCounter:
    """The metrics' exchange-finished hook: a few list increments per exchange.

    ``counters(api_id)`` gives the :class:`ApiCounters` of an API (kept by the
    metrics, so they outlive reloads); the route remembers them.
    ``on_refused(counters, route, status, refused_by)`` is called for an
    exchange the chain refused.
    """

    bounds = cython.declare(tuple, visibility="readonly")
    unrouted = cython.declare(ApiCounters, visibility="readonly")
    counters: Any
    on_refused: Any

    def __init__(self, bounds: Any, counters: Any, on_refused: Any) -> None:
        self.bounds = tuple(float(bound) for bound in bounds)
        self.counters = counters
        self.on_refused = on_refused
        self.unrouted = counters("")

    def __call__(self, ex: Exchange) -> None:
        route = ex.route
        api: ApiCounters
        if route is None:
            api = self.unrouted
        else:
            found = cython.cast(Route, route).counters
            if found is None:
                found = cython.cast(Route, route).counters = self.counters(
                    cython.cast(Route, route).spec.api_id)
            api = cython.cast(ApiCounters, found)
        status: cython.int = ex.status
        klass: cython.Py_ssize_t = status // 100 if 0 <= status < 600 else 0
        method = _METHOD_INDEX.get(ex.method)
        index: cython.Py_ssize_t = (
            (len(COUNTED_METHODS) if method is None else cython.cast(cython.Py_ssize_t, method))
            * STATUS_CLASSES + klass)
        requests: list = api.requests
        requests[index] += 1
        bounds: tuple = self.bounds
        total: cython.double = ex.ended_at - ex.started_at if ex.finished else 0.0
        upstream: cython.double = 0.0
        if ex.upstream_at and ex.upstream_head_at > ex.upstream_at:
            upstream = ex.upstream_head_at - ex.upstream_at
        sums: list = api.sums
        counts: list = api.total
        counts[_bucket(bounds, total)] += 1
        sums[0] += total
        if upstream:
            counts = api.upstream
            counts[_bucket(bounds, upstream)] += 1
            sums[1] += upstream
            total -= upstream
        counts = api.gateway
        counts[_bucket(bounds, total)] += 1
        sums[2] += total
        if ex.refused_by is not None:
            self.on_refused(api, route, status, ex.refused_by)


# -- helpers ----------------------------------------------------------------------------


def _parser_message(exc: Exception) -> str:
    return "Malformed request: " + (str(exc) or "invalid HTTP")


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


#: A response hook that raised, or answered something unusable.
MIDDLEWARE_ERROR = responses.error_response(500, "Middleware error")
#: A response larger than MAX_BUFFERED for a hook that wants the body.
RESPONSE_TOO_LARGE = responses.error_response(
    502, "Upstream response too large for the response middleware")
RESPONSE_TOO_LARGE_CLOSE = responses.error_response(
    502, "Upstream response too large for the response middleware", close=True)
#: Listen paths whose too-large responses were logged (once per API).
_WARNED_TOO_LARGE: set = set()


def _warn_too_large(ex: Any) -> None:
    route = ex.route
    listen_path = route.listen_path if route is not None else b""
    if listen_path not in _WARNED_TOO_LARGE:
        _WARNED_TOO_LARGE.add(listen_path)
        log.warning("API at %r: an upstream response over %d bytes cannot be shown to its "
                    "response middleware: answered 502 (logged once per API)",
                    listen_path.decode("latin-1"), MAX_BUFFERED)


def _pairs(lines: list) -> list:
    """``(name, value)`` of header quads (name, ': ', value, CRLF)."""
    return [(lines[i], lines[i + 2]) for i in range(0, len(lines), 4)]


def _status_line(status: int) -> bytes:
    line = responses.STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


def _bodyless(status: int) -> bool:
    """An answer with this status never has a body (RFC 9110 §6.4.1)."""
    return status < 200 or status == 204 or status == 304


def _hook_status(value: Any) -> int:
    """A status a response hook chose: an int 200-599 (ValueError else)."""
    if type(value) is not int or not 200 <= value <= 599:
        raise ValueError(f"response status {value!r}: an int from 200 to 599")
    return value


def _field_lines(fields: Any) -> list:
    """Header quads from a hook's ``(name, value)`` pairs (bytes, checked:
    a name is a token, a value holds no CR, LF or NUL); framing and
    hop-by-hop fields are left out (the proxy frames the answer)."""
    lines: list = []
    for name, value in fields:
        if type(name) is not bytes or type(value) is not bytes:
            raise TypeError("header names and values must be bytes")
        if not name or name.translate(None, _TCHAR):
            raise ValueError(f"invalid header name {name!r}")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise ValueError(f"invalid value for header {name!r}")
        lname = name.lower()
        if lname in HOP_BY_HOP or lname.startswith(b"proxy-") or lname == b"content-length":
            continue
        lines += (name, b": ", value, b"\r\n")
    return lines


def _assemble(ex: Exchange, status: int, lines: list, body: bytes) -> bytes:
    """A complete answer from a status, header quads and the whole body:
    framed with Content-Length (the upstream's kept when no body is sent:
    HEAD, 204, 304), the limit headers added."""
    sends_body = not ex.is_head and not _bodyless(status)
    parts = [_status_line(status)]
    for i in range(0, len(lines), 4):
        if sends_body and lines[i].lower() == b"content-length":
            continue
        parts += lines[i : i + 4]
    if sends_body:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts.append(ex.response_headers)
    parts.append(b"\r\n")
    if sends_body:
        parts.append(body)
    return b"".join(parts)


def _adopt(ex: Exchange, response: bytes) -> bytes | None:
    """A hook's complete response with the limit headers added; None (and
    a log line) when it is not an HTTP/1.x response."""
    end = response.find(b"\r\n\r\n")
    if (end < 0 or not response.startswith(b"HTTP/1.") or len(response) < 12
            or not response[9:12].isdigit() or response[12:13] not in (b" ", b"\r")):
        log.error("response middleware answered bytes that are not an HTTP/1.1 response")
        return None
    if ex.response_headers:
        return response[: end + 2] + ex.response_headers + response[end + 2:]
    return response


def _hook_answer(ex: Exchange, result: Any, status: int, lines: list, body: bytes) -> bytes:
    """What a response hook's answer to a collected response writes."""
    if result is None:
        return _assemble(ex, status, lines, body)
    if isinstance(result, bytes):
        adopted = _adopt(ex, result)
        return adopted if adopted is not None else MIDDLEWARE_ERROR
    try:
        if len(result) == 3:
            new_body = result[2]
            if type(new_body) is not bytes:
                raise TypeError("the body must be bytes")
        elif len(result) == 2:
            new_body = body
        else:
            raise ValueError("a tuple of (status, headers) or (status, headers, body)")
        return _assemble(ex, _hook_status(result[0]), _field_lines(result[1]), new_body)
    except Exception:
        log.exception("response middleware answered an unusable response")
        return MIDDLEWARE_ERROR


#: RFC 9110 §5.6.2 tchar: what a method may be made of.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Bytes a path set by a middleware may not hold: controls, space, ``?``,
#: ``#``, DEL and non-ASCII (percent-encoded, they may).
_PATH_FORBIDDEN = bytes(range(0x21)) + b"?#" + bytes(range(0x7F, 0x100))


def _valid_path(path: bytes) -> bool:
    """No forbidden byte in ``path`` (see :data:`_PATH_FORBIDDEN`)."""
    return len(path.translate(None, _PATH_FORBIDDEN)) == len(path)


def _has_dot_segment(path: bytes) -> bool:
    """True for paths with ``.``/``..`` segments, plain or percent-encoded.

    An upstream that normalises ``/public/../admin`` to ``/admin`` would
    otherwise receive requests for another API than the one the gateway routed
    (and authorised) them to.
    """
    plain = path.replace(b"%2e", b".").replace(b"%2E", b".")
    segments = plain.replace(b"%2f", b"/").replace(b"%2F", b"/").split(b"/")
    return b"." in segments or b".." in segments


def _status_of(response: bytes) -> int:
    """The status code of a complete response the gateway built."""
    return int(response[9:12])


def _total_length(pieces: list) -> int:
    total = 0
    for piece in pieces:
        total += len(piece)
    return total


def _declared_length(headers: list) -> int:
    """The Content-Length a request head declares (-1 for none)."""
    for entry in headers:
        if entry[0] == b"content-length":
            try:
                return int(entry[2])
            except ValueError:
                return -1
    return -1


def _strip_body(response: bytes) -> bytes:
    end = response.find(b"\r\n\r\n")
    return response if end < 0 else response[: end + 4]


def _with_close(response: bytes) -> bytes:
    end = response.find(b"\r\n\r\n")
    if end < 0 or b"\r\nConnection: close\r\n" in response[: end + 2]:
        return response
    return response[:end] + b"\r\nConnection: close" + response[end:]
