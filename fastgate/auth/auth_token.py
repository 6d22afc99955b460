"""Auth token (Tyk's "standard auth"): a key in a header, a query parameter or
a cookie names a session in the store.

Where the key is read (``auth_configs.authToken``, else the legacy ``auth``):
the header (``auth_header_name``, default ``Authorization``; a leading
``Bearer `` is stripped case-insensitively) unless ``disable_header``; then a
non-empty query parameter overrides it (``use_param``: ``param_name``, else
the header name); then a non-empty cookie overrides both (``use_cookie``:
``cookie_name``, else the header name) — cookie > param > header, as Tyk.

* no key: 401 "Authorization field missing";
* unknown key (or shorter than 3 characters): 403 "Access to this API has been
  disallowed";
* ``strip_auth_data``: the credential is removed before the request goes
  upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from fastgate.middleware.sessions import CachedSession
from fastgate.server.responses import error_response
from fastgate.session import storage_key
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.server.gateway import Gateway

MISSING = error_response(401, "Authorization field missing")
DISALLOWED = error_response(403, "Access to this API has been disallowed")

#: Keys shorter than this count as not found (Tyk's min_token_length default).
MIN_TOKEN_LENGTH = 3


def store_unavailable(exc: Exception) -> bytes:
    """The answer when the store cannot be asked (never a guess either way)."""
    return error_response(503, f"Session store unavailable: {exc}")


def strip_bearer(value: bytes) -> bytes:
    """``Bearer <token>`` -> ``<token>`` (case-insensitive), else the value."""
    if value[:7].lower() == b"bearer ":
        return value[7:].strip()
    return value.strip()


def query_param(query: bytes, name: bytes) -> bytes | None:
    """The first value of ``name`` in a query string (percent-decoded)."""
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def without_param(query: bytes, name: bytes) -> bytes:
    """The query string without ``name``."""
    kept = [pair for pair in query.split(b"&")
            if pair and unquote_to_bytes(pair.partition(b"=")[0].replace(b"+", b" ")) != name]
    return b"&".join(kept)


def cookie_value(header: bytes | None, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a ``Cookie`` header (RFC 6265 §5.4)."""
    if not header:
        return None
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name:
            return value.strip(b'"')
    return None


def without_cookie(header: bytes, name: bytes) -> bytes:
    parts = [p.strip() for p in header.split(b";")]
    return b"; ".join(p for p in parts if p and p.partition(b"=")[0] != name)


class AuthToken:
    """Finds the session named by the request's key."""

    name = "auth_token"

    def __init__(self, spec: ApiSpec, gateway: Gateway) -> None:
        config = spec.auth_token
        assert config is not None
        header_name = config.auth_header_name or "Authorization"
        self.header = None if config.disable_header else header_name.lower().encode("latin-1")
        self.param = (config.param_name or header_name).encode() if config.use_param else None
        self.cookie = (config.cookie_name or header_name).encode() if config.use_cookie else None
        self.strip = spec.strip_auth_data
        self.sessions = gateway.sessions
        hash_keys = gateway.config.hash_keys
        hash_function = gateway.config.hash_key_function

        def derive(credential: bytes) -> str:
            return storage_key(credential.decode("utf-8", "surrogateescape"), hash_keys=hash_keys,
                               hash_key_function=hash_function)

        self.derive = derive
        self.sets_identity = spec.base_identity in ("", "auth_token")

    def process(self, ex: Any) -> bytes | Awaitable[bytes | None] | None:
        key = self._credential(ex)
        if not key:
            return MISSING
        if len(key) < MIN_TOKEN_LENGTH:
            return DISALLOWED
        skey = self.sessions.storage_key_of(key, self.derive)
        try:
            found = self.sessions.lookup(skey)
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None:
            return DISALLOWED
        if found.__class__ is not CachedSession:
            return self._wait(ex, found, skey)  # type: ignore[arg-type]
        if self.sets_identity or ex.session is None:
            ex.session = found
            ex.session_key = skey
        return None

    async def _wait(self, ex: Any, pending: Awaitable[CachedSession | None],
                    skey: str) -> bytes | None:
        try:
            found = await pending
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None:
            return DISALLOWED
        if self.sets_identity or ex.session is None:
            ex.session = found
            ex.session_key = skey
        return None

    def _credential(self, ex: Any) -> bytes | None:
        key: bytes | None = None
        if self.header is not None:
            value = ex.header(self.header)
            if value:
                key = strip_bearer(value)
                if self.strip:
                    ex.remove_header(self.header)
        if self.param is not None and ex.query:
            value = query_param(ex.query, self.param)
            if value:
                key = value
                if self.strip:
                    ex.set_query(without_param(ex.query, self.param))
        if self.cookie is not None:
            cookies = ex.header(b"cookie")
            value = cookie_value(cookies, self.cookie)
            if value:
                key = value
                if self.strip and cookies is not None:
                    rest = without_cookie(cookies, self.cookie)
                    ex.remove_header(b"cookie")
                    if rest:
                        ex.add_header(b"Cookie", rest)
        return key

