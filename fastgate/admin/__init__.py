"""The gateway's own endpoints: ``/hello`` and the Tyk Gateway REST API
under ``/tyk/``.

Requests arrive complete (body read) from the client protocol; a handler
answers with the bytes of a complete response, or an awaitable of them when
it needs I/O.  ``/tyk/`` requests must carry the gateway secret in
``X-Tyk-Authorization``, compared in constant time.  With
``security.control_api_use_mutual_tls`` they must also come over a TLS
connection whose client certificate ``security.certificates.control_api``
allows (the leaf, or a chain verified to one of its CAs), checked before the
secret; the refusals are static mTLS's 403s (:mod:`fastgate.middleware.mtls`).
**fastgate differs**: Tyk fails the handshake instead; ``/hello`` stays open
for health checks.

Routes (trailing slashes are ignored, as Tyk's ``stripSlashes`` does):

==================================  ========================  ==================
path                                methods                   module
==================================  ========================  ==================
``/tyk/reload[/group]``             GET                       here
``/tyk/keys``                       GET (list), POST (create) :mod:`.keys`
``/tyk/keys/create``                POST                      :mod:`.keys`
``/tyk/keys/{key}``                 GET POST PUT DELETE       :mod:`.keys`
``/tyk/keys/policy/{key hash}``     POST                      :mod:`.keys`
``/tyk/policies[/{id}]``            GET POST PUT DELETE       :mod:`.policies`
``/tyk/apis[/{id}]``                GET POST PUT DELETE       :mod:`.apis`
``/tyk/org/keys``                   GET (list)                :mod:`.orgs`
``/tyk/org/keys/{org}``             GET POST PUT DELETE       :mod:`.orgs`
``/tyk/cache/{api_id}``             DELETE                    :mod:`.cache`
``/tyk/cache/jwks[/{api_id}]``      DELETE                    :mod:`.cache`
``/tyk/certs[/{id}[,{id}...]]``     GET POST DELETE           :mod:`.certs`
``/tyk/oauth/...``                  (see the module)          :mod:`.oauth`
``/metrics`` (``prometheus.path``)  GET                       :mod:`~.observability.metrics`
``/dashboard[/...]``                GET                       :mod:`~.observability.dashboard`
==================================  ========================  ==================

``/metrics`` needs the secret (``X-Tyk-Authorization``, or ``Authorization:
Bearer <secret>``) except on the control port; the dashboard's static files
need none (they hold no data).

Anything else under ``/tyk/`` is 404; a known path with another method is
405 ``{"status":"error","message":"Method not supported"}`` (Tyk's text).
Errors are Tyk's ``{"status": "error", "message": ...}``; the store being
unreachable is 503 "storage unavailable: <reason>".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qs, unquote_to_bytes

from fastgate import responses
from fastgate._core import compare
from fastgate.admin.apis import ApisApi
from fastgate.admin.cache import CacheApi
from fastgate.admin.certs import CertsApi
from fastgate.admin.keys import KeysApi
from fastgate.admin.oauth import OAuthApi
from fastgate.admin.orgs import OrgKeysApi
from fastgate.admin.policies import PoliciesApi
from fastgate.admin.replies import AdminError, error, parse_query
from fastgate.middleware.mtls import TLS_NOT_ENABLED, CertificateCheck
from fastgate.services import then
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.admin.control import Control
    from fastgate.services import Request

log = logging.getLogger("fastgate.admin")

#: A request header as the proxy parsed it: (lower-cased name, name, value).
Header = tuple[bytes, bytes, bytes]

FORBIDDEN = responses.json_response(
    403,
    {"status": "error", "message": "Attempted administrative access with invalid or missing key!"},
)
NOT_FOUND = responses.json_response(404, {"status": "error", "message": "Not found"})
METHOD_NOT_ALLOWED = responses.json_response(
    405, {"status": "error", "message": "Method not supported"})
RELOAD_OK = responses.json_response(200, {"status": "ok", "message": ""})

_Handler = Callable[[], Coroutine[Any, Any, bytes]]


class _Resource(Protocol):
    """A /tyk/ collection addressed by id alone (policies, APIs)."""

    async def listing(self) -> bytes: ...
    async def get(self, name: str, /) -> bytes: ...
    async def add(self, name: str, body: bytes, /) -> bytes: ...
    async def update(self, name: str, body: bytes, /) -> bytes: ...
    async def delete(self, name: str, /) -> bytes: ...


class AdminApi:
    """Dispatches ``/hello`` and ``/tyk/...`` requests."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway
        self.secret = gateway.config.secret.encode()
        self.hello = responses.json_response(200, responses.HELLO_PAYLOAD)
        self.keys = KeysApi(gateway)
        self.policies = PoliciesApi(gateway)
        self.apis = ApisApi(gateway)
        self.orgs = OrgKeysApi(gateway)
        self.cache = CacheApi(gateway)
        self.certs = CertsApi(gateway)
        self.oauth = OAuthApi(gateway)
        config = gateway.config
        #: ``prometheus.path`` (None: metrics off) and the dashboard, made on
        #: its first request.
        self.metrics_path = (config.observability.metrics.path.encode()
                             if config.observability.metrics.enabled else None)
        self._dashboard_files: Any = None
        #: ``control_api_use_mutual_tls``: the client certificate a ``/tyk/``
        #: request must present (static mTLS's check and answers).
        self.client_certificate: CertificateCheck | None = None
        if config.control_api_use_mutual_tls:
            self.client_certificate = CertificateCheck(
                config.control_api_certificates, gateway.certificates, time.time)

    def handle(self, method: bytes, path: bytes, query: bytes, headers: list[Header],
               body: bytes, request: Request | None = None) -> bytes | Awaitable[bytes]:
        """The answer to a request for ``/hello`` or ``/tyk/...``; ``request``
        (the exchange) is what the client-certificate check reads."""
        if path == b"/hello":
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            return self.hello
        if path == self.metrics_path:
            check = self.client_certificate  # control_api_use_mutual_tls: it too
            if check is None:
                return self._metrics(method, headers, request)
            outcome = check.process(request) if request is not None else TLS_NOT_ENABLED
            return cast("bytes | Awaitable[bytes]", then(
                outcome, lambda refusal: refusal if refusal is not None
                else self._metrics(method, headers, request)))
        if path == b"/dashboard" or path.startswith(b"/dashboard/"):
            return self._dashboard(method, path, query, headers)
        check = self.client_certificate
        if check is None:
            return self._handle(method, path, query, headers, body)
        outcome = check.process(request) if request is not None else TLS_NOT_ENABLED
        # The refusal, else the answer (never None: _handle always answers).
        return cast("bytes | Awaitable[bytes]", then(
            outcome, lambda refusal: refusal if refusal is not None
            else self._handle(method, path, query, headers, body)))

    def _metrics(self, method: bytes, headers: list[Header], request: Request | None) -> bytes:
        """``GET /metrics``: open on the control port, else only with the secret
        (``X-Tyk-Authorization``, or ``Authorization: Bearer`` as Prometheus
        sends a credential)."""
        if method not in (b"GET", b"HEAD"):
            return METHOD_NOT_ALLOWED
        on_control_port = request is not None and getattr(request, "control_port", False)
        if not on_control_port and not (self._authorised(headers)
                                        or self._bearer_authorised(headers)):
            return FORBIDDEN
        accept = None
        for lname, _name, value in headers:
            if lname == b"accept":
                accept = value
                break
        content_type, body = self.gateway.metrics.export(accept)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type
                + b"\r\nCache-Control: no-store\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body)

    def _dashboard(self, method: bytes, path: bytes, query: bytes,
                   headers: list[Header]) -> bytes:
        """The dashboard's static files (they carry no data: the page asks
        ``/tyk/`` and ``/metrics`` with the secret the user types in)."""
        dashboard = self._dashboard_files
        if dashboard is None:
            from fastgate.observability.dashboard import Dashboard
            dashboard = self._dashboard_files = Dashboard(self.gateway.config)
        return cast("bytes", dashboard.handle(method, path, query, headers))

    def _bearer_authorised(self, headers: list[Header]) -> bool:
        supplied = b""
        for lname, _name, value in headers:
            if lname == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = token.strip()
                break
        return compare.constant_time_equals(self.secret, supplied) and bool(supplied)

    def _handle(self, method: bytes, path: bytes, query: bytes, headers: list[Header],
                body: bytes) -> bytes | Awaitable[bytes]:
        if not self._authorised(headers):
            return FORBIDDEN
        path = path.rstrip(b"/")
        if path in (b"/tyk/reload", b"/tyk/reload/group"):
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            return self._reload(query)
        handler = self._route(method.decode("latin-1"), path, query, body)
        if isinstance(handler, bytes):
            return handler
        return self._run(handler)

    def _route(self, method: str, path: bytes, query: bytes, body: bytes) -> bytes | _Handler:
        """The handler for a ``/tyk/`` request, or a finished 404/405 response."""
        if not path.startswith(b"/tyk/"):
            return NOT_FOUND
        collection, sep, rest = path.removeprefix(b"/tyk/").partition(b"/")
        params = parse_query(query)
        if collection == b"oauth":
            return self.oauth.route(method, rest, params, body) if sep else NOT_FOUND
        if collection == b"org" or b"/" in rest:
            return self._route_deep(method, collection, rest, params, body)
        item = None
        if sep:
            item = _segment(rest)
            if item is None:
                return NOT_FOUND  # no key, policy or API is named so
        if collection == b"keys":
            keys = self.keys
            if item == "create" and method == "POST":
                return lambda: keys.create(params, body)
            # Other methods on /tyk/keys/create name the key "create", as in Tyk.
            key = item or ""
            if method == "GET":
                return (lambda: keys.get(key, params)) if item else (lambda: keys.listing(params))
            if method == "POST":
                return lambda: keys.add(key, params, body)
            if method == "PUT":
                return lambda: keys.update(key, params, body)
            if method == "DELETE":
                return lambda: keys.delete(key, params)
            return METHOD_NOT_ALLOWED
        if collection == b"certs":
            certs = self.certs
            if method == "POST":  # an id in the path is ignored, as in Tyk
                return lambda: certs.add(params, body)
            if method == "GET":
                return (lambda: certs.get(item)) if item else (lambda: certs.listing(params))
            if method == "DELETE" and item:
                return lambda: certs.delete(item)
            return METHOD_NOT_ALLOWED
        if collection == b"cache":
            if not item:
                return NOT_FOUND
            api_id = item
            cache = self.cache
            if method != "DELETE":
                return METHOD_NOT_ALLOWED
            if item == "jwks":  # before /tyk/cache/{api_id}, as Tyk routes it
                return lambda: cache.delete_jwks(None)
            return lambda: cache.delete(api_id)
        resources: dict[bytes, _Resource] = {b"policies": self.policies, b"apis": self.apis}
        resource = resources.get(collection)
        if resource is None:
            return NOT_FOUND
        name = item or ""
        if method == "GET":
            return (lambda: resource.get(name)) if item else resource.listing
        if method == "POST":
            return lambda: resource.add(name, body)
        if method == "PUT":
            return lambda: resource.update(name, body)
        if method == "DELETE":
            return lambda: resource.delete(name)
        return METHOD_NOT_ALLOWED

    def _route_deep(self, method: str, collection: bytes, rest: bytes,
                    params: dict[str, str], body: bytes) -> bytes | _Handler:
        """``/tyk/keys/policy/{key}``, ``/tyk/org/keys[/{org}]`` and
        ``/tyk/cache/jwks/{api_id}``."""
        group, _, tail = rest.partition(b"/")
        if b"/" in tail:
            return NOT_FOUND
        item = _segment(tail)  # "" when there is none
        if item is None:
            return NOT_FOUND
        if collection == b"cache" and _segment(group) == "jwks" and item:
            cache = self.cache
            return (lambda: cache.delete_jwks(item)) if method == "DELETE" \
                else METHOD_NOT_ALLOWED
        if collection == b"keys" and group == b"policy" and item:
            keys = self.keys
            return (lambda: keys.policies(item, body)) if method == "POST" \
                else METHOD_NOT_ALLOWED
        if collection == b"org" and group == b"keys":
            orgs = self.orgs
            if not item:
                # Tyk's route for /tyk/org/keys is GET only.
                return (lambda: orgs.listing(params)) if method == "GET" else METHOD_NOT_ALLOWED
            if method == "GET":
                return lambda: orgs.get(item)
            if method in ("POST", "PUT"):
                action = "added" if method == "POST" else "modified"
                return lambda: orgs.put(item, params, body, action)
            if method == "DELETE":
                return lambda: orgs.delete(item)
            return METHOD_NOT_ALLOWED
        return NOT_FOUND

    async def _run(self, handler: _Handler) -> bytes:
        try:
            return await handler()
        except AdminError as exc:
            return exc.response()
        except StoreError as exc:
            return error(503, f"storage unavailable: {exc}")
        except Exception:
            # Never a key in the message: the traceback holds no local values.
            log.exception("the admin API failed on a request")
            return error(500, "Internal error")

    def _authorised(self, headers: list[Header]) -> bool:
        supplied = b""
        for lname, _name, value in headers:
            if lname == b"x-tyk-authorization":
                supplied = value
                break
        # Always compare, so a missing header costs the same as a wrong one.
        return compare.constant_time_equals(self.secret, supplied) and bool(supplied)

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
        error_text = gateway.reload()
        if error_text is None:
            return RELOAD_OK
        return responses.json_response(500, {"status": "error", "message": error_text})


def _segment(raw: bytes) -> str | None:
    """A percent-decoded path segment, or None when it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
