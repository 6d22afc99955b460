"""The gateway's own endpoints: ``/hello`` and the Tyk Gateway REST API
under ``/tyk/``.

Requests arrive complete (body read) from the client protocol; a handler
answers with the bytes of a complete response, or an awaitable of them when
it needs I/O.  ``/tyk/`` requests must carry the gateway secret in
``X-Tyk-Authorization``, compared in constant time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastgate._core import compare
from fastgate.server import responses

if TYPE_CHECKING:
    from fastgate.server.gateway import Gateway

#: A request header as the proxy parsed it: (lower-cased name, name, value).
Header = tuple[bytes, bytes, bytes]

FORBIDDEN = responses.json_response(
    403,
    {"status": "error", "message": "Attempted administrative access with invalid or missing key!"},
)
NOT_FOUND = responses.json_response(404, {"status": "error", "message": "Not found"})
METHOD_NOT_ALLOWED = responses.json_response(
    405, {"status": "error", "message": "Method not allowed"})
RELOAD_OK = responses.json_response(200, {"status": "ok", "message": ""})


class AdminApi:
    """Dispatches ``/hello`` and ``/tyk/...`` requests."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.secret = gateway.config.secret.encode()
        self.hello = responses.json_response(200, responses.HELLO_PAYLOAD)

    def handle(self, method: bytes, path: bytes, query: bytes, headers: list[Header],
               body: bytes) -> bytes | Awaitable[bytes]:
        if path == b"/hello":
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            return self.hello
        if not self._authorised(headers):
            return FORBIDDEN
        if path in (b"/tyk/reload", b"/tyk/reload/", b"/tyk/reload/group"):
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            return self._reload(query)
        return NOT_FOUND

    def _authorised(self, headers: list[Header]) -> bool:
        supplied = b""
        for lname, _name, value in headers:
            if lname == b"x-tyk-authorization":
                supplied = value
                break
        # Always compare, so a missing header costs the same as a wrong one.
        return compare.constant_time_equals(supplied, self.secret) and bool(supplied)

    def _reload(self, query: bytes) -> bytes:
        params = parse_qs(query.decode("latin-1"))
        block = params.get("block", ["false"])[-1].lower() in ("true", "1")
        gateway = self.gateway
        if gateway.on_reload is not None:
            gateway.on_reload()  # the other workers reload too
        if not block:
            # Tyk queues the reload and answers at once.
            asyncio.get_running_loop().call_soon(gateway.reload)
            return RELOAD_OK
        error = gateway.reload()
        if error is not None:
            return responses.json_response(500, {"status": "error", "message": error})
        return RELOAD_OK
