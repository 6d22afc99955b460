"""Prepared responses (a leaf: every layer, ``fastgate._core`` included, may
import it; it imports nothing of fastgate's but the version).

Everything the gateway answers by itself is built here, once where possible:
status lines, and the complete bytes of the common error responses.  The hot
path only looks finished responses up; rejections are values, not raised
exceptions.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson

from fastgate import __version__

SERVER_NAME = b"fastgate"


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


#: ``HTTP/1.1 <code> <reason>\r\n`` for every code 100-599.
STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, _reason(code)) for code in range(100, 600)
}

JSON_TYPE = b"Content-Type: application/json\r\n"


def json_response(
    status: int,
    payload: object,
    *,
    close: bool = False,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response with a JSON body.

    ``head_only`` leaves the body out (the answer to a HEAD request) but keeps
    the Content-Length the body would have had (RFC 9110 §9.3.2).
    """
    body = orjson.dumps(payload)
    parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status, JSON_TYPE]
    for name, value in extra_headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"Content-Length: %d\r\n" % len(body))
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def error_response(status: int, message: str, *, close: bool = False) -> bytes:
    """Tyk's error shape: ``{"error": "<message>"}``, ``Content-Type: application/json``."""
    return json_response(status, {"error": message}, close=close)


class ErrorResponses:
    """Prepared bytes for the errors the proxy itself produces."""

    __slots__ = ()

    NOT_FOUND = "No API is listening on this path"
    BAD_GATEWAY = "There was a problem proxying the request"
    GATEWAY_TIMEOUT = "Upstream service reached hard timeout."
    BAD_REQUEST = "Malformed request"
    HEADERS_TOO_LARGE = "Request header fields too large"
    HEADER_TIMEOUT = "Request header not received in time"
    BODY_TOO_LARGE = "Request body too large"
    TOO_MANY_CONNECTIONS = "Too many connections"
    SHUTTING_DOWN = "The gateway is shutting down"


def _prepared(status: int, message: str) -> tuple[bytes, bytes]:
    return error_response(status, message), error_response(status, message, close=True)


NOT_FOUND, NOT_FOUND_CLOSE = _prepared(404, ErrorResponses.NOT_FOUND)
BAD_GATEWAY, BAD_GATEWAY_CLOSE = _prepared(502, ErrorResponses.BAD_GATEWAY)
GATEWAY_TIMEOUT, GATEWAY_TIMEOUT_CLOSE = _prepared(504, ErrorResponses.GATEWAY_TIMEOUT)
HEADERS_TOO_LARGE_CLOSE = error_response(431, ErrorResponses.HEADERS_TOO_LARGE, close=True)
HEADER_TIMEOUT_CLOSE = error_response(408, ErrorResponses.HEADER_TIMEOUT, close=True)
#: A /tyk/ request body over the proxy's MAX_ADMIN_BODY (8 MiB).
ADMIN_BODY_TOO_LARGE_CLOSE = error_response(
    413, ErrorResponses.BODY_TOO_LARGE + " (the REST API reads at most 8 MiB)", close=True)
TOO_MANY_CONNECTIONS = error_response(503, ErrorResponses.TOO_MANY_CONNECTIONS, close=True)

HELLO_PAYLOAD = {"status": "pass", "version": __version__, "description": "fastgate"}
