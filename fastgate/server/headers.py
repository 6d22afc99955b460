"""Header rewriting between client and upstream (RFC 9110 §7.6.1, RFC 9112).

A proxy must not forward hop-by-hop fields: ``Connection`` and every field
it names, ``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``, ``Transfer-Encoding``
and ``Upgrade``.  Message framing is decided again for each hop, so
``Transfer-Encoding`` is re-created by the proxy when it chunks a body.

Headers arrive from the parser as ``(lower_name, name, value)`` triples:
names are lower-cased once in the parser callback and the original spelling
is kept for forwarding.
"""

from __future__ import annotations

Header = tuple[bytes, bytes, bytes]

#: Always hop-by-hop (besides anything ``Connection`` lists and ``proxy-*``).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

#: Request fields the proxy sets itself instead of copying.
_REQUEST_SPECIAL = HOP_BY_HOP | {
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"expect",
    b"content-length",
}

BODY_NONE = 0
BODY_LENGTH = 1
BODY_CHUNKED = 2

#: Tokens of ``Connection`` that name no field to drop.
_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b""})


class BadRequestHead(ValueError):
    """The request head is acceptable to the parser but not to HTTP (e.g. two Hosts)."""


def connection_tokens(value: bytes) -> set[bytes]:
    """Field names listed by a ``Connection`` header value, lower-cased."""
    return {t.strip().lower() for t in value.split(b",")} - _CONNECTION_OPTIONS


def build_request_head(
    method: bytes,
    target: bytes,
    headers: list[Header],
    *,
    host: bytes | None,
    client_ip: bytes,
    proto: bytes,
) -> tuple[bytes, bytes | None, int, bool]:
    """The request head to send upstream, the client's ``Host`` value, how the
    body is framed (``BODY_*``) and whether the client sent
    ``Expect: 100-continue``.

    ``host`` is the Host to send (None: keep the client's, i.e.
    ``preserve_host_header``).  The parser (llhttp, strict) has already refused
    ambiguous framing; this refuses what it lets through: more than one
    ``Host``, and an ``Expect`` other than ``100-continue`` (RFC 9110 §10.1.1
    allows 417; 400 is simpler and as safe).  Raises :class:`BadRequestHead`.
    """
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    client_host: bytes | None = None
    body = BODY_NONE
    expect = False
    forwarded_for: list[bytes] | None = None
    drop: set[bytes] | None = None
    special = _REQUEST_SPECIAL
    for lname, name, value in headers:
        if lname in special or lname.startswith(b"proxy-"):
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
                lines += (name, b": ", value, b"\r\n")
            elif lname == b"transfer-encoding":
                body = BODY_CHUNKED
            elif lname == b"connection":
                tokens = connection_tokens(value)
                if tokens:
                    drop = tokens if drop is None else drop | tokens
            elif lname == b"expect":
                if value.lower() != b"100-continue":
                    raise BadRequestHead("unsupported Expect")
                expect = True
            continue
        lines += (name, b": ", value, b"\r\n")
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


def _without(lines: list[bytes], drop: set[bytes], start: int) -> list[bytes]:
    """Copy of ``lines`` (a head as name, ': ', value, CRLF quads after
    ``start`` items) without the fields whose lower-cased name is in ``drop``."""
    kept = lines[:start]
    for i in range(start, len(lines), 4):
        if lines[i].lower() not in drop:
            kept += lines[i : i + 4]
    return kept


def filter_response_headers(headers: list[Header]) -> tuple[list[bytes], bool, bool]:
    """Response header lines to forward (name, ': ', value, CRLF quads), and
    whether the upstream sent ``Content-Length`` and ``Transfer-Encoding``."""
    lines: list[bytes] = []
    drop: set[bytes] | None = None
    content_length = False
    chunked = False
    for lname, name, value in headers:
        if lname in HOP_BY_HOP or lname.startswith(b"proxy-"):
            if lname == b"transfer-encoding":
                chunked = True
            elif lname == b"connection":
                tokens = connection_tokens(value)
                if tokens:
                    drop = tokens if drop is None else drop | tokens
            continue
        if lname == b"content-length":
            content_length = True
        lines += (name, b": ", value, b"\r\n")
    if drop is not None:
        lines = _without(lines, drop, 0)
    return lines, content_length, chunked
