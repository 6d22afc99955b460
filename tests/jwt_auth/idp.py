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
