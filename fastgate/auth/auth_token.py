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
* where the key is looked for, as Tyk's ``SessionDetail`` (called by
  ``CheckSessionAndIdentityForValidKey``) with the API's ``org_id``:
  ``generateToken(org_id, key)`` first, then the key as presented -- so a
  custom key ``POST``-ed as ``/tyk/keys/{key}`` (stored as Tyk names it,
  ``<org><key>`` or a base64 token) works by its name, and the keys of an
  existing Tyk Redis work unchanged.  When the key itself carries the API's
  org (a token of that org, or 24 hex digits of a Tyk Dashboard org id), Tyk
  looks for it alone; fastgate tries it first, then -- **fastgate differs** --
  ``generateToken(org_id, key)`` too, so a custom key of an API without org
  is found by its name under a ``hash_key_function`` as well.  The first
  candidate found wins; the storage key of each candidate is derived once
  per credential (``SessionCache.storage_key_of``);
* **fastgate differs**: a session that is a Basic-auth user (it has a
  ``basic_auth_data.password``) is not an auth-token key -- Tyk accepts the
  user's name as a token, without the password;
* ``strip_auth_data``: the credential is removed before the request goes
  upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote_to_bytes

from fastgate.auth.method import AuthMethodSpec
from fastgate.middleware.sessions import CachedSession
from fastgate.server.responses import error_response
from fastgate.session import key_org, make_key, storage_key
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Services

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

    name: ClassVar[str] = "auth_token"

    def __init__(self, spec: ApiSpec, config: AuthTokenConfig, services: Services) -> None:
        header_name = config.auth_header_name or "Authorization"
        self.header = None if config.disable_header else header_name.lower().encode("latin-1")
        self.param = (config.param_name or header_name).encode() if config.use_param else None
        self.cookie = (config.cookie_name or header_name).encode() if config.use_cookie else None
        self.strip = spec.strip_auth_data
        self.sessions = services.sessions
        hash_keys = services.hash_keys
        hash_function = services.hash_key_function
        org_id = spec.org_id

        def candidates(credential: bytes) -> tuple[str, str]:
            """The storage keys to try, in order (see the module docstring)."""
            key = credential.decode("utf-8", "surrogateescape")
            given = storage_key(key, hash_keys=hash_keys, hash_key_function=hash_function)
            if org_id and key == org_id:
                return given, given  # generateToken would make a random id up
            token = storage_key(make_key(org_id, key, hash_function), hash_keys=hash_keys,
                                hash_key_function=hash_function)
            if (key_org(key) or "") == org_id:
                return given, token
            return token, given

        # Cache keys: a tag naming the candidate and the API's org, then the
        # credential.  The leading NUL keeps them apart from the Basic-auth
        # middleware's tagged user names in the same cache.
        org_tag = org_id.encode("utf-8", "surrogateescape") + b"\0"
        first_tag, second_tag = b"\0tk1\0" + org_tag, b"\0tk2\0" + org_tag
        self.namers = (
            (first_tag, lambda tagged: candidates(tagged[len(first_tag):])[0]),
            (second_tag, lambda tagged: candidates(tagged[len(second_tag):])[1]),
        )
        self.first_tag = first_tag
        self.first = self.namers[0][1]
        self.sets_identity = spec.base_identity in ("", "auth_token")

    def process(self, ex: Any) -> bytes | Awaitable[bytes | None] | None:
        key = self._credential(ex)
        if not key:
            return MISSING
        if len(key) < MIN_TOKEN_LENGTH:
            return DISALLOWED
        # The first candidate, straight: the common request ends here.
        sessions = self.sessions
        skey = sessions.storage_key_of(self.first_tag + key, self.first)
        try:
            found = sessions.lookup(skey)
        except StoreError as exc:
            return store_unavailable(exc)
        if found.__class__ is CachedSession:
            # _basic_auth_user and _accept, inlined: this runs per request.
            data = found.session.get("basic_auth_data")
            if not (data and data.__class__ is dict and data.get("password")):
                if self.sets_identity or ex.session is None:
                    ex.session = found
                    ex.session_key = skey
                return None
        elif found is not None:
            return self._wait(ex, key, found, skey, 1)  # type: ignore[arg-type]
        return self._next(ex, key, 1, skey)

    def _next(self, ex: Any, key: bytes, index: int,
              tried: str) -> bytes | Awaitable[bytes | None] | None:
        """Look for ``key`` under the candidates from ``index`` on (``tried``:
        the storage key just looked up, not asked twice)."""
        sessions = self.sessions
        while index < len(self.namers):
            tag, derive = self.namers[index]
            index += 1
            skey = sessions.storage_key_of(tag + key, derive)
            if skey == tried:
                continue
            tried = skey
            try:
                found = sessions.lookup(skey)
            except StoreError as exc:
                return store_unavailable(exc)
            if found is None:
                continue
            if not isinstance(found, CachedSession):
                return self._wait(ex, key, found, skey, index)
            if not _basic_auth_user(found):
                self._accept(ex, found, skey)
                return None
        return DISALLOWED

    async def _wait(self, ex: Any, key: bytes, pending: Awaitable[CachedSession | None],
                    skey: str, index: int) -> bytes | None:
        try:
            found = await pending
        except StoreError as exc:
            return store_unavailable(exc)
        if found is not None and not _basic_auth_user(found):
            self._accept(ex, found, skey)
            return None
        outcome = self._next(ex, key, index, skey)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    def _accept(self, ex: Any, found: CachedSession, skey: str) -> None:
        if self.sets_identity or ex.session is None:
            ex.session = found
            ex.session_key = skey

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



def _basic_auth_user(entry: CachedSession) -> bool:
    """Whether the session is a Basic-auth user's (its name is no secret)."""
    data = entry.session.get("basic_auth_data")
    return isinstance(data, dict) and bool(data.get("password"))


@dataclass(frozen=True, slots=True)
class AuthTokenConfig:
    """Where an auth-token (standard auth) key is read: ``auth_configs.authToken``,
    falling back to the legacy ``auth`` section, as Tyk does."""

    auth_header_name: str = "Authorization"
    use_param: bool = False
    param_name: str = ""  # "" means the header name
    use_cookie: bool = False
    cookie_name: str = ""  # "" means the header name
    disable_header: bool = False


def parse_config(top: FieldReader) -> AuthTokenConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    configs = top.section("auth_configs")
    section = configs.section("authToken") if configs.get("authToken") is not None \
        else top.section("auth")
    return AuthTokenConfig(
        auth_header_name=section.string("auth_header_name") or "Authorization",
        use_param=section.boolean("use_param"),
        param_name=section.string("param_name"),
        use_cookie=section.boolean("use_cookie"),
        cookie_name=section.string("cookie_name"),
        disable_header=section.boolean("disable_header"),
    )


METHOD = AuthMethodSpec(
    name="auth_token",
    enabled_by=("use_standard_auth",),
    order=80,
    identity="auth_token",
    fields=frozenset({"auth"}),
    parse=parse_config,
    build=AuthToken,
    fallback=True,
)
