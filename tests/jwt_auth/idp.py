"""A local OpenID-Connect-style issuer for the gateway tests: a real HTTP server
publishing a JWKS (and a discovery document), with keys that rotate, and
tokens minted by PyJWT.

``Issuer.url`` is the issuer; ``/jwks`` the key set; ``/.well-known/openid-configuration``
names it.  ``hits`` counts the JWKS fetches.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def jwk_of(private: Any, kid: str) -> dict[str, Any]:
    """The public JWK of a private key (PyJWT's encoder), with ``kid``."""
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        text = jwt.algorithms.RSAAlgorithm.to_jwk(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        text = jwt.algorithms.ECAlgorithm.to_jwk(public)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        text = jwt.algorithms.OKPAlgorithm.to_jwk(public)
    else:  # pragma: no cover - the tests use the three above
        raise TypeError(type(public))
    out: dict[str, Any] = json.loads(text)
    out["kid"] = kid
    return out


@dataclass
class Issuer:
    """The server's state (mutable by the test while it runs)."""

    server: ThreadingHTTPServer
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    hits: int = 0
    delay: float = 0.0
    down: bool = False
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    def add_key(self, kid: str | None = None, private: Any = None) -> str:
        kid = kid or uuid.uuid4().hex[:12]
        self.keys[kid] = private if private is not None else rsa_key()
        return kid

    def rotate(self) -> str:
        """A new key replaces every old one (the old ones leave the set)."""
        self.keys.clear()
        return self.add_key()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk_of(key, kid) for kid, key in self.keys.items()]
                + self.extra_jwks}

    def mint(self, kid: str | None = None, algorithm: str = "RS256", *,
             lifetime: float = 600, headers: dict[str, Any] | None = None,
             **claims: Any) -> str:
        kid = kid or next(iter(self.keys))
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.url, "iat": now, "exp": now + int(lifetime)}
        payload.update(claims)
        return jwt.encode(payload, self.keys[kid], algorithm=algorithm,
                          headers={"kid": kid, **(headers or {})})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_issuer() -> Issuer:
    state: dict[str, Issuer] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            issuer = state["issuer"]
            if self.path == "/jwks":
                issuer.hits += 1
                if issuer.delay:
                    time.sleep(issuer.delay)
                if issuer.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(issuer.jwks()).encode()
            elif self.path == "/.well-known/openid-configuration":
                body = json.dumps({"issuer": issuer.url, "jwks_uri": issuer.jwks_url}).encode()
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    issuer = Issuer(server)
    state["issuer"] = issuer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return issuer


@dataclass
class TokenServer:
    """A client-credentials token endpoint (``POST /token``) minting RS256 JWTs
    for the clients it knows (form ``client_id``/``client_secret`` or Basic)."""

    server: ThreadingHTTPServer
    key: Any
    clients: dict[str, str] = field(default_factory=dict)
    #: (content type, authorization, body) of every request received.
    received: list[tuple[str, str, bytes]] = field(default_factory=list)
    lifetime: float = 600
    status: int = 0  # answer this status instead (0: normal)
    delay: float = 0.0
    #: Replace the answer's body (to test answers without a JWT).
    body: bytes | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/token"

    def client(self) -> tuple[str, str]:
        client_id = "client-" + uuid.uuid4().hex[:8]
        self.clients[client_id] = uuid.uuid4().hex
        return client_id, self.clients[client_id]

    def grant(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if self.clients.get(client_id) != secret or not secret:
            return 401, {"error": "invalid_client", "error_description": "bad credentials"}
        now = int(time.time())
        token = jwt.encode({"sub": client_id, "azp": client_id, "iat": now,
                            "exp": now + int(self.lifetime), "scope": "read"},
                           self.key, algorithm="RS256", headers={"kid": "k1"})
        return 200, {"access_token": token, "token_type": "Bearer",
                     "expires_in": int(self.lifetime), "refresh_token": "r-" + token[-8:],
                     "refresh_expires_in": 1800, "scope": "read"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_token_server() -> TokenServer:
    state: dict[str, TokenServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            idp = state["idp"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            authorization = self.headers.get("Authorization") or ""
            idp.received.append((self.headers.get("Content-Type") or "", authorization, body))
            if idp.delay:
                time.sleep(idp.delay)
            if idp.status:
                status, payload = idp.status, {"error": "server_error"}
            else:
                form = dict(urllib.parse.parse_qsl(body.decode()))
                status, payload = idp.grant(form, authorization)
            data = idp.body if idp.body is not None and status == 200 \
                else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    idp = TokenServer(server, rsa_key())
    state["idp"] = idp
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return idp
