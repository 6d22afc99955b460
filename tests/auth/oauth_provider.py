"""An independent OAuth 2.0 authorization server for the external OAuth
tests, built with authlib: a real HTTP server (a thread of the test process)
whose token and introspection endpoints are authlib's.

* ``POST /token`` -- authlib's ``ClientCredentialsGrant``; the clients
  authenticate by ``client_secret_basic`` or ``client_secret_post``.  The
  access tokens are opaque (authlib's ``BearerTokenGenerator``), or RFC 9068
  JWTs (authlib's ``JWTBearerTokenGenerator``, RS256, ``kid`` in the header)
  while ``Provider.jwt_tokens`` is set;
* ``POST /introspect`` -- authlib's ``IntrospectionEndpoint`` (RFC 7662),
  authenticating the resource server (``client_secret_post`` or Basic);
  ``/introspect/<fault>`` answers the same requests wrongly: ``slow`` (after
  ``Provider.delay`` seconds), ``500``, ``html`` (not JSON), ``active-string``
  (``"active": "true"``), ``no-active``;
* ``GET /jwks`` -- the public keys of the JWTs.

``Provider.calls`` counts the introspection requests per path (and the
JWKS fetches, ``/jwks``) and
``Provider.received`` keeps each one's form and ``Authorization`` header;
``Provider.issue()`` mints a token without HTTP (same store, same
generator), ``revoke()`` revokes one; ``stop()`` closes the listening socket
and every connection it accepted (the server is then as good as dead: open
keep-alive connections are closed and new ones are refused).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet, RSAKey

# The server speaks plain HTTP on the loopback interface.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_AUTH = ["client_secret_basic", "client_secret_post"]
FAULTS = ("slow", "500", "html", "active-string", "no-active")


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return ""

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or "read"

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class User:
    """The resource owner a token is issued for (its ``sub``)."""

    sub: str

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Token(TokenMixin):
    access_token: str
    client: Client
    scope: str
    sub: str
    issued_at: int
    expires_in: int
    revoked: bool = False
    #: Leave ``exp`` out of the introspection answer.
    no_exp: bool = False
    #: More members of the introspection answer (e.g. an identity claim).
    extra: dict[str, Any] = field(default_factory=dict)

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> None:
        return None

    def get_client(self) -> Client:
        return self.client


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict[str, str],
                 form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return self.server.provider.tokens.get(token_string)  # type: ignore[no-any-return]

    def check_permission(self, token: Token, client: Client, request: Any) -> bool:
        return True  # every registered resource server may ask about every token

    def introspect_token(self, token: Token) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "active": True, "client_id": token.client.client_id, "token_type": "Bearer",
            "scope": token.scope, "sub": token.sub, "iat": token.issued_at,
            "exp": token.issued_at + token.expires_in, "iss": self.server.provider.url}
        if token.no_exp:
            del answer["exp"]
        answer.update(token.extra)
        return answer


class _Server(AuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        self.provider.save(token, request.client, request.client.client_id)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, bytes, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return status, data, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class _JwtGenerator(JWTBearerTokenGenerator):
    def __init__(self, provider: Provider) -> None:
        super().__init__(provider.url, expires_generator=lambda _client, _grant: provider.lifetime)
        self.provider = provider

    def get_jwks(self) -> KeySet:
        return KeySet([self.provider.key])


@dataclass
class Provider:
    """The authorization server's state (the test may change it while it runs)."""

    httpd: ThreadingHTTPServer
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": "as-" + generate_token(6)}, private=True))
    clients: dict[str, Client] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    received: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    lifetime: int = 600
    jwt_tokens: bool = False
    delay: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The connections accepted and not yet closed (``stop()`` closes them).
    connections: set[socket.socket] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.server = _Server(self)
        self.server.register_grant(_ClientCredentials)
        self.server.register_endpoint(_Introspection)
        opaque = BearerTokenGenerator(lambda **_kw: generate_token(40),
                                      expires_generator=lambda _c, _g: self.lifetime)
        signed = _JwtGenerator(self)
        self.server.register_token_generator(
            "default", lambda *a, **kw: (signed if self.jwt_tokens else opaque)(*a, **kw))

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    def introspection_url(self, fault: str = "") -> str:
        return self.url + "/introspect" + (f"/{fault}" if fault else "")

    def client(self) -> Client:
        """A new registered client."""
        client = Client("client-" + generate_token(8), generate_token(24))
        self.clients[client.client_id] = client
        return client

    def save(self, token: dict[str, Any], client: Client, sub: str) -> Token:
        saved = Token(token["access_token"], client, token.get("scope", ""), sub,
                      int(time.time()), int(token.get("expires_in", self.lifetime)))
        with self.lock:
            self.tokens[saved.access_token] = saved
        return saved

    def issue(self, sub: str, *, lifetime: int | None = None, no_exp: bool = False,
              jwt: bool = False, extra: dict[str, Any] | None = None) -> str:
        """A token for ``sub`` (issued to a fresh client), without HTTP: opaque,
        or a JWT (``jwt``) whose ``sub`` is ``sub``; ``extra`` members go into
        its introspection answer."""
        client = self.client()
        saved_lifetime, saved_jwt = self.lifetime, self.jwt_tokens
        self.lifetime = lifetime if lifetime is not None else saved_lifetime
        self.jwt_tokens = jwt
        try:
            generated = self.server.generate_token(
                grant_type="client_credentials", client=client, user=User(sub),
                scope="read", include_refresh_token=False)
        finally:
            self.lifetime, self.jwt_tokens = saved_lifetime, saved_jwt
        token = self.save(generated, client, sub)
        token.no_exp = no_exp
        token.extra = dict(extra or {})
        return token.access_token

    def revoke(self, access_token: str) -> None:
        self.tokens[access_token].revoked = True

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.key]).as_dict(private=False))

    def stop(self) -> None:
        """Close the listening socket and every open connection: the server is
        unreachable from now on, as if its process had died."""
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            open_connections = list(self.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):  # closed meanwhile
                conn.shutdown(socket.SHUT_RDWR)



class _Httpd(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left before its answer (the gateway gave up on a slow
        call, or ``stop()`` closed it) is expected; anything else is shown."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handle_error(request, client_address)


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH


def start_provider() -> Provider:
    """Start an authorization server on a free loopback port."""
    state: dict[str, Provider] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            provider = state["provider"]
            with provider.lock:
                provider.connections.add(self.connection)

        def finish(self) -> None:
            provider = state["provider"]
            with provider.lock:
                provider.connections.discard(self.connection)
            with contextlib.suppress(OSError):  # the peer (or stop()) closed it
                super().finish()

        def _answer(self, status: int, body: bytes,
                    content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            provider = state["provider"]
            if self.path == "/jwks":
                with provider.lock:
                    provider.calls["/jwks"] += 1
                self._answer(200, json.dumps(provider.jwks()).encode())
            else:
                self._answer(404, b"{}")

        def do_POST(self) -> None:
            provider = state["provider"]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = dict(urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
            headers = {name: value for name, value in self.headers.items()}
            request = _Request("POST", provider.url + self.path, headers, form)
            path = self.path
            if path == "/token":
                status, body, _headers = provider.server.create_token_response(request)
                self._answer(status, body)
                return
            if not path.startswith("/introspect"):
                self._answer(404, b"{}")
                return
            fault = path.removeprefix("/introspect").lstrip("/")
            with provider.lock:
                provider.calls[path] += 1
                provider.received.append((path, form, self.headers.get("Authorization") or ""))
            if fault == "slow":
                time.sleep(provider.delay)
            elif fault == "500":
                self._answer(500, b'{"error": "server_error"}')
                return
            elif fault == "html":
                self._answer(200, b"<html>maintenance</html>", "text/html")
                return
            status, body, _headers = provider.server.create_endpoint_response(
                "introspection", request)
            if fault in ("active-string", "no-active") and status == 200:
                answer = json.loads(body)
                if fault == "no-active":
                    answer.pop("active", None)
                else:
                    answer["active"] = "true"
                body = json.dumps(answer).encode()
            self._answer(status, body)

    httpd = _Httpd(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    provider = Provider(httpd)
    state["provider"] = provider
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return provider
