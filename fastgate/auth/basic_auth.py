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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastgate.auth.auth_token import store_unavailable
from fastgate.middleware.sessions import CachedSession
from fastgate.server.responses import error_response, json_response
from fastgate.session import storage_key
from fastgate.session.basic import basic_auth_key, check_password
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.server.gateway import Gateway

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


class BasicAuth:
    """Finds the session of a Basic-auth user and checks the password."""

    name = "basic_auth"

    def __init__(self, spec: ApiSpec, gateway: Gateway) -> None:
        config = spec.basic_auth
        assert config is not None
        realm = spec.name.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
        challenge = ((b"WWW-Authenticate", b'Basic realm="' + realm + b'"'),)
        self.missing = json_response(401, {"error": "Authorization field missing"},
                                     extra_headers=challenge)
        self.unauthorised = json_response(401, {"error": "User not authorised"},
                                          extra_headers=challenge)
        self.header = config.auth_header_name.lower().encode("latin-1")
        self.ttl = 0 if config.disable_caching else config.cache_ttl
        self.org_id = spec.org_id
        self.sessions = gateway.sessions
        self.sets_identity = spec.base_identity in ("", "basic_auth")
        hash_keys = gateway.config.hash_keys
        hash_function = gateway.config.hash_key_function
        org_id = spec.org_id

        def namer(name_of: Callable[[str], str]) -> Callable[[bytes], str]:
            def derive(tagged: bytes) -> str:
                username = tagged.partition(b"\0")[2].decode("utf-8", "surrogateescape")
                return storage_key(name_of(username), hash_keys=hash_keys,
                                   hash_key_function=hash_function)
            return derive

        # Where a user may be stored, in the order Tyk looks (SessionDetail,
        # then mw_basic_auth's legacy fallback): Tyk's generateToken(org,
        # user); the name as given; with a hash_key_function, the legacy
        # "<org_id><user>".
        names: list[tuple[bytes, Callable[[str], str]]] = [
            (b"token\0", lambda user: basic_auth_key(org_id, user, hash_function)),
            (b"given\0", lambda user: user),
        ]
        if hash_function:
            names.append((b"legacy\0", lambda user: org_id + user.removeprefix(org_id)))
        self.namers = [(tag, namer(name_of)) for tag, name_of in names]
        self.body_user: re.Pattern[bytes] | None = None
        self.body_password: re.Pattern[bytes] | None = None
        if config.extract_from_body:
            self.body_user = re.compile(config.body_user_regexp.encode())
            self.body_password = re.compile(config.body_password_regexp.encode())
        # Checks remembered: digest(user, password) -> (stored hash, valid until).
        self.verified: dict[bytes, tuple[object, float]] = {}
        # Checks under way, so a burst with new credentials runs bcrypt once.
        self.in_flight: dict[bytes, asyncio.Future[bool]] = {}
        self._digest_key = secrets.token_bytes(32)

    def process(self, ex: Any) -> bytes | Awaitable[bytes | None] | None:
        credentials = self._from_header(ex)
        if isinstance(credentials, bytes):
            if self.body_user is not None:
                # As Tyk: when the header does not give credentials, the body may.
                return self._from_body(ex, ex.read_body())
            return credentials
        username, password = credentials
        return self._lookup(ex, username, password)

    def _from_header(self, ex: Any) -> bytes | tuple[bytes, bytes]:
        header = ex.header(self.header)
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

    async def _from_body(self, ex: Any, reading: Awaitable[bytes | None]) -> bytes | None:
        body = await reading
        if body is None:
            return BODY_TOO_LARGE
        assert self.body_user is not None and self.body_password is not None
        user = self.body_user.search(body)
        if user is None:
            return NO_BODY_USER
        password = self.body_password.search(body)
        if password is None:
            return NO_BODY_PASSWORD
        outcome = self._lookup(ex, user.group(1), password.group(1))
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    def _lookup(self, ex: Any, username: bytes,
                password: bytes) -> bytes | Awaitable[bytes | None] | None:
        sessions = self.sessions
        for index, (tag, derive) in enumerate(self.namers):
            skey = sessions.storage_key_of(tag + username, derive)
            try:
                found = sessions.lookup(skey)
            except StoreError as exc:
                return store_unavailable(exc)
            if found is None:
                continue
            if not isinstance(found, CachedSession):
                return self._lookup_from(ex, username, password, index, skey, found)
            return self._check(ex, found, skey, username, password)
        return self.unauthorised

    async def _lookup_from(self, ex: Any, username: bytes, password: bytes, index: int,
                           skey: str, pending: Awaitable[CachedSession | None]) -> bytes | None:
        """The rest of :meth:`_lookup` once the store must be asked."""
        sessions = self.sessions
        try:
            found = await pending
            while found is None:
                index += 1
                if index == len(self.namers):
                    return self.unauthorised
                tag, derive = self.namers[index]
                skey = sessions.storage_key_of(tag + username, derive)
                looked_up = sessions.lookup(skey)
                found = looked_up if looked_up is None or isinstance(looked_up, CachedSession) \
                    else await looked_up
        except StoreError as exc:
            return store_unavailable(exc)
        outcome = self._check(ex, found, skey, username, password)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    def _check(self, ex: Any, entry: CachedSession, skey: str, username: bytes,
               password: bytes) -> bytes | Awaitable[bytes | None] | None:
        stored = (entry.session.get("basic_auth_data") or {}).get("password")
        if not stored:
            return self.unauthorised  # a key without a password is no Basic-auth user
        digest = hmac.new(self._digest_key, skey.encode() + b"\0" + password,
                          hashlib.sha256).digest()
        if self.ttl:
            remembered = self.verified.get(digest)
            if remembered is not None and remembered[0] is stored and \
                    remembered[1] > time.monotonic():
                self._accept(ex, entry, skey)
                return None
        return self._verify(ex, entry, skey, password, stored, digest)

    async def _verify(self, ex: Any, entry: CachedSession, skey: str, password: bytes,
                      stored: object, digest: bytes) -> bytes | None:
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
                del self.verified[next(iter(self.verified))]
            self.verified[digest] = (stored, time.monotonic() + self.ttl)
        self._accept(ex, entry, skey)
        return None

    def _accept(self, ex: Any, entry: CachedSession, skey: str) -> None:
        if self.sets_identity or ex.session is None:
            ex.session = entry
            ex.session_key = skey
