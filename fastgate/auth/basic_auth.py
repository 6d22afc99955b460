"""Basic auth (RFC 7617): ``Authorization: Basic base64(user:password)``.

Users are keys created through the REST API with ``basic_auth_data``; the
key a user is stored under is Tyk's ``generateToken(org_id, username)``.
The password is stored as a bcrypt hash.  bcrypt costs about 50 ms of CPU, so
it runs in a worker thread (never on the event loop), and a successful check
is remembered for ``basic_auth.cache_ttl`` seconds (default 60; off with
``disable_caching``) under a keyed digest of (user, password) — never the
password itself — together with the stored hash it was checked against, so a
password change takes effect at once.

Messages, as Tyk: no header: 401 "Authorization field missing"; unknown user
or wrong password: 401 "User not authorised" — both with
``WWW-Authenticate: Basic realm="<API name>"``; not two parts: 400
"Attempted access with malformed header, header not in basic auth format";
bad base64: 400 "Attempted access with malformed header, auth data not
encoded correctly".  **fastgate differs**: the user-pass is split at the
first colon (RFC 7617 §2), so passwords may contain ':' (Tyk refuses them).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fastgate.auth.identity import Found, Identity, KeyNames, find_session
from fastgate.auth.method import AuthMethodSpec
from fastgate.responses import error_response, json_response
from fastgate.services import store_unavailable, then
from fastgate.session import storage_key
from fastgate.session.basic import basic_auth_key, check_password
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services
    from fastgate.session.cache import CachedSession

__all__ = ["METHOD", "BasicAuth", "BasicAuthConfig", "user_keys"]

MALFORMED = error_response(
    400, "Attempted access with malformed header, header not in basic auth format")
NOT_ENCODED = error_response(
    400, "Attempted access with malformed header, auth data not encoded correctly")
NO_COLON = error_response(
    400, "Attempted access with malformed header, values not in basic auth format")
NO_BODY_USER = error_response(400, "Body do not contain username")
NO_BODY_PASSWORD = error_response(400, "Body do not contain password")
BODY_TOO_LARGE = error_response(413, "Request body too large to read credentials from")

#: Remembered successful checks at most (per API).
MAX_VERIFIED = 100_000


@dataclass(frozen=True, slots=True)
class BasicAuthConfig:
    """Tyk's ``basic_auth`` section, and ``auth_configs.basic``."""

    disable_caching: bool = False
    cache_ttl: int = 60
    extract_from_body: bool = False
    body_user_regexp: str = ""
    body_password_regexp: str = ""
    #: ``auth_configs.basic.auth_header_name`` (default ``Authorization``).
    auth_header_name: str = "Authorization"


def user_keys(org_id: str, username: str, *, hash_keys: bool,
              hash_key_function: str) -> tuple[str, ...]:
    """The storage keys a Basic-auth user may be stored under, in the order
    Tyk looks (``SessionDetail``, then mw_basic_auth's legacy fallback):
    Tyk's ``generateToken(org, user)``; the name as given; with a
    ``hash_key_function``, the legacy ``<org_id><user>``.  The OAuth
    password grant finds its users the same way."""
    names = [basic_auth_key(org_id, username, hash_key_function), username]
    if hash_key_function:
        names.append(org_id + username.removeprefix(org_id))
    return tuple(dict.fromkeys(
        storage_key(name, hash_keys=hash_keys, hash_key_function=hash_key_function)
        for name in names))


def parse_config(top: FieldReader) -> BasicAuthConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    section = top.section("basic_auth")
    config = BasicAuthConfig(
        disable_caching=section.boolean("disable_caching"),
        cache_ttl=section.integer("cache_ttl", 0, minimum=0) or 60,
        extract_from_body=section.boolean("extract_from_body"),
        body_user_regexp=section.string("body_user_regexp"),
        body_password_regexp=section.string("body_password_regexp"),
        auth_header_name=top.section("auth_configs").section("basic")
        .string("auth_header_name") or "Authorization",
    )
    for name in ("body_user_regexp", "body_password_regexp"):
        pattern = getattr(config, name)
        if config.extract_from_body and not pattern:
            raise section.error(name, "is required when extract_from_body is true")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise section.error(name, f"invalid regular expression: {exc}") from None
            if compiled.groups < 1:
                raise section.error(name, "needs a capturing group around the value")
    return config


class BasicAuth:
    """Finds the session of a Basic-auth user and checks the password."""

    name: ClassVar[str] = "basic_auth"

    def __init__(self, spec: ApiSpec, config: BasicAuthConfig, services: Services) -> None:
        realm = spec.name.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
        challenge = ((b"WWW-Authenticate", b'Basic realm="' + realm + b'"'),)
        self.missing = json_response(401, {"error": "Authorization field missing"},
                                     extra_headers=challenge)
        self.unauthorised = json_response(401, {"error": "User not authorised"},
                                          extra_headers=challenge)
        self.header = config.auth_header_name.lower().encode("latin-1")
        self.ttl = 0 if config.disable_caching else config.cache_ttl
        self.sessions = services.sessions
        self.identity = Identity(spec, METHOD.identity)
        hash_keys = services.hash_keys
        hash_function = services.hash_key_function
        org_id = spec.org_id

        def candidates(username: bytes) -> tuple[str, ...]:
            return user_keys(org_id, username.decode("utf-8", "surrogateescape"),
                             hash_keys=hash_keys, hash_key_function=hash_function)

        self.names = KeyNames(candidates)
        self.body_user: re.Pattern[bytes] | None = None
        self.body_password: re.Pattern[bytes] | None = None
        if config.extract_from_body:
            self.body_user = re.compile(config.body_user_regexp.encode())
            self.body_password = re.compile(config.body_password_regexp.encode())
        # Checks remembered: digest(user, password) -> (stored hash, valid until).
        self.verified: OrderedDict[bytes, tuple[object, float]] = OrderedDict()
        # Checks under way, so a burst with new credentials runs bcrypt once.
        self.in_flight: dict[bytes, asyncio.Future[bool]] = {}
        self._digest_key = secrets.token_bytes(32)

    def present(self, req: Request) -> bool:
        """Whether the request carries Basic credentials (``auth_mode: any``):
        its header in the Basic scheme, or -- with ``extract_from_body`` -- a
        body to read them from."""
        header = req.header(self.header)
        if header and header.lstrip()[:6].lower() == b"basic ":
            return True
        return self.body_user is not None and (
            req.header(b"transfer-encoding") is not None
            or (req.header(b"content-length") or b"0").strip() not in (b"0", b""))

    def process(self, req: Request) -> Outcome:
        credentials = self._from_header(req)
        if isinstance(credentials, bytes):
            if self.body_user is not None:
                # As Tyk: when the header does not give credentials, the body may.
                return then(req.read_body(), lambda body: self._from_body(req, body))
            return credentials
        username, password = credentials
        return self._lookup(req, username, password)

    def _from_header(self, req: Request) -> bytes | tuple[bytes, bytes]:
        header = req.header(self.header)
        if not header:
            return self.missing
        scheme, sep, encoded = header.strip().partition(b" ")
        if not sep or scheme.lower() != b"basic" or b" " in encoded.strip():
            return MALFORMED
        try:
            decoded = binascii.a2b_base64(encoded.strip(), strict_mode=True)
        except (binascii.Error, ValueError):
            return NOT_ENCODED
        username, colon, password = decoded.partition(b":")
        if not colon:
            return NO_COLON
        return username, password

    def _from_body(self, req: Request, body: bytes | None) -> Outcome:
        if body is None:
            return BODY_TOO_LARGE
        assert self.body_user is not None and self.body_password is not None
        user = self.body_user.search(body)
        if user is None:
            return NO_BODY_USER
        password = self.body_password.search(body)
        if password is None:
            return NO_BODY_PASSWORD
        return self._lookup(req, user.group(1), password.group(1))

    def _lookup(self, req: Request, username: bytes, password: bytes) -> Outcome:
        try:
            found = find_session(self.sessions, self.names.of(username))
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None or found.__class__ is tuple:
            return self._check(req, found, password)  # cached: no closure, no coroutine
        return then(found, lambda found: self._check(req, found, password))

    def _check(self, req: Request, found: Found, password: bytes) -> Outcome:
        if found is None:
            return self.unauthorised
        skey, entry = found
        stored = (entry.session.get("basic_auth_data") or {}).get("password")
        if not stored:
            return self.unauthorised  # a key without a password is no Basic-auth user
        digest = hmac.new(self._digest_key, skey.encode() + b"\0" + password,
                          hashlib.sha256).digest()
        if self.ttl:
            remembered = self.verified.get(digest)
            if remembered is not None and remembered[0] is stored and \
                    remembered[1] > time.monotonic():
                return self.identity.accept(req, found)
        return self._verify(req, found, entry, password, stored, digest)

    async def _verify(self, req: Request, found: tuple[str, CachedSession],
                      entry: CachedSession, password: bytes, stored: object,
                      digest: bytes) -> bytes | None:
        running = self.in_flight.get(digest)
        if running is not None:
            ok = await asyncio.shield(running)
        else:
            loop = asyncio.get_running_loop()
            # bcrypt is deliberately slow: never on the event loop.
            running = loop.run_in_executor(None, check_password, password, entry.session)
            self.in_flight[digest] = running
            try:
                ok = await running
            finally:
                del self.in_flight[digest]
        if not ok:
            return self.unauthorised
        if self.ttl:
            if len(self.verified) >= MAX_VERIFIED:
                self.verified.popitem(last=False)
            self.verified[digest] = (stored, time.monotonic() + self.ttl)
        return self.identity.accept(req, found)


def _build(spec: ApiSpec, config: BasicAuthConfig, services: Services) -> BasicAuth:
    return BasicAuth(spec, config, services)


METHOD = AuthMethodSpec(
    name="basic_auth",
    enabled_by=("use_basic_auth",),
    order=30,
    identity="basic_auth_user",
    fields=frozenset({"basic_auth"}),
    parse=parse_config,
    build=_build,
)
