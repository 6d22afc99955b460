"""The external OAuth middleware: a token someone else issued in, the
caller's session out.

Per request:

1. the token is read where ``auth_configs.externalOAuth`` says (header
   ``Authorization`` by default, a leading ``Bearer `` stripped); none: 400
   "authorization field missing";
2. a token seen before is answered synchronously -- a dict probe and its
   deadline, then the session lookup -- with no Task and no await:

   * JWT: the verified-token cache (:class:`fastgate.auth.jwt.tokens.TokenCache`),
     until the token's ``exp`` plus ``expires_at_validation_skew``, and only
     while its JWKS key is in service;
   * introspection: the results cache, until
     :func:`~fastgate.auth.external_oauth.introspection.cache_until`;

3. otherwise:

   * JWT: parsed by :mod:`fastgate._core.jws`, the ``alg`` checked against
     the family before any key is touched (``none`` is in no family), the key
     from ``source`` or the gateway's JWKS cache (``Services.jwks``), the
     signature verified, then the time claims -- the JWT method's checks;
   * introspection: the store's record of an earlier answer (table
     ``introspection``, keyed by :func:`record_key` -- the SHA-256 of the
     token, never the token itself, under a tag of the authorization
     server's URL and client id -- so every worker and node asking the same
     server shares it, and an API trusting another server never takes its
     answers), else the authorization server is asked
     (:func:`~fastgate.auth.external_oauth.introspection.introspect`).
     Concurrent requests with the same token share one call;

4. the session, as Tyk builds it: the key ``org_id + md5(identity)``
   (:func:`fastgate.auth.jwt.sessions.session_id`, hashed as the gateway
   hashes keys) when it exists -- identities may be pre-provisioned with
   their own rate limits, quotas and access rights -- else a session that is
   never saved: rate 10000 per 60 s, no quota, no expiry, access to this API.

Answers (Tyk's texts, **fastgate's** statuses where Tyk answers 500): a bad
signature, a malformed token, a wrong ``alg``, an unknown ``kid`` -- 401
"token verification failed: ..."; a time claim -- 401 "key not authorized:
token has expired" / "...: token used before issued" / "...: token is not
valid yet"; ``active: false`` -- 401 "access token is not valid"; no
identity -- 403 with Tyk's JWT texts; the authorization server's faults
(unreachable, non-200, not RFC 7662, JWKS unavailable) -- 502, and too slow
-- 504, "access token validation failed: ...".  Cached results keep working
while the authorization server is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from fastgate._core import jws
from fastgate.auth.external_oauth.introspection import (
    ProviderFault,
    cache_until,
    fault,
    introspect,
    judge,
)
from fastgate.auth.identity import Identity
from fastgate.auth.jwt import keys
from fastgate.auth.jwt.sessions import IdentityError, identity_of, session_id
from fastgate.auth.jwt.tokens import TokenCache
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.session import storage_key
from fastgate.session.cache import CachedSession
from fastgate.stats import cache_stats
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.auth.external_oauth.config import (
        ExternalOAuthConfig,
        IntrospectionConfig,
        JwtValidationConfig,
    )
    from fastgate.services import Outcome, Request, Services

__all__ = ["ExternalIntrospection", "ExternalJwt", "build", "record_key", "server_tag"]

log = logging.getLogger("fastgate.external_oauth")

#: Longer tokens are refused before any parsing (as the JWT method).
MAX_TOKEN_BYTES = 12 * 1024
#: Tokens (and identities) remembered per API at most (the oldest go first).
MAX_CACHED = 50_000
#: The store's table of introspection answers.
TABLE = "introspection"
#: Seconds between two log lines about the authorization server failing.
LOG_INTERVAL = 10.0

MISSING = error_response(400, "authorization field missing")
UNEXPECTED = error_response(401, "token verification failed: unexpected signing method")
BAD_SIGNATURE = error_response(401, "token verification failed: signature is invalid")
NO_KID = error_response(401, "token verification failed: the token names no key (kid)")
UNKNOWN_KID = error_response(
    401, "token verification failed: no key of the authorization server has the token's kid")
JWKS_DOWN = fault(502, "the authorization server's keys (JWKS) cannot be fetched").response
ABANDONED = fault(502, "the introspection call was abandoned").response

#: Tyk's session for an identity that has no key of its own.
_RATE, _PER = 10000.0, 60.0


def server_tag(config: IntrospectionConfig) -> str:
    """Names the authorization server and the gateway's client there (16 hex
    digits): the answers of one server are not another's."""
    who = orjson.dumps([config.url, config.client_id])
    return hashlib.sha256(who).hexdigest()[:16]


def record_key(tag: str, token: bytes) -> str:
    """The store key of a token's cached answer: ``<server tag>:<sha256 of the token>``."""
    return tag + ":" + hashlib.sha256(token).hexdigest()


class _Caller:
    """One identity: where its key would be, and the session used when there is none."""

    __slots__ = ("skey", "unsaved")

    def __init__(self, skey: str, unsaved: CachedSession) -> None:
        self.skey = skey
        self.unsaved = unsaved


class _FaultLog:
    """Logs the authorization server's faults at most once per interval."""

    __slots__ = ("api_id", "last", "quiet")

    def __init__(self, api_id: str) -> None:
        self.api_id = api_id
        self.last = -math.inf
        self.quiet = 0

    def __call__(self, what: str, reason: str) -> None:
        now = time.monotonic()
        if now - self.last < LOG_INTERVAL:
            self.quiet += 1
            return
        more = f" ({self.quiet} more since the last report)" if self.quiet else ""
        log.warning("API %s: external OAuth: %s: %s%s", self.api_id, what, reason, more)
        self.last = now
        self.quiet = 0


class _ExternalOAuth:
    """What both ways of validating share: the credential and the session."""

    name: ClassVar[str] = "external_oauth"

    def __init__(self, spec: ApiSpec, config: ExternalOAuthConfig, services: Services) -> None:
        self.source = config.credential.source(strip=spec.strip_auth_data)
        self.sessions = services.sessions
        self.services = services
        self.clock = services.clock
        self.identity = Identity(spec, "")
        self.api_id = spec.api_id
        self.org_id = spec.org_id
        self.faults = _FaultLog(spec.api_id)
        # identity -> its key name and unsaved session.
        self._callers: OrderedDict[str, _Caller] = OrderedDict()

    def present(self, req: Request) -> bool:
        """Whether the request carries a token where it is read (``auth_mode: any``)."""
        return self.source.peek(req) is not None

    def _caller(self, identity: str) -> _Caller:
        caller = self._callers.get(identity)
        if caller is None:
            services = self.services
            function = services.hash_key_function
            skey = storage_key(session_id(self.org_id, identity, function),
                               hash_keys=services.hash_keys, hash_key_function=function)
            session: dict[str, Any] = {
                "org_id": self.org_id, "rate": _RATE, "allowance": _RATE, "per": _PER,
                "quota_max": -1, "quota_remaining": -1, "quota_renewal_rate": 3600,
                "expires": -1, "access_rights": {self.api_id: {}}, "alias": identity,
            }
            caller = _Caller(skey, CachedSession(skey, session, {}))
            if len(self._callers) >= MAX_CACHED:
                self._callers.popitem(last=False)
            self._callers[identity] = caller
        return caller

    def _grant(self, req: Request, caller: _Caller) -> Outcome:
        """The identity's key when it has one, else its unsaved session."""
        try:
            found = self.sessions.lookup(caller.skey)
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None:
            return self.identity.accept(req, (caller.skey, caller.unsaved))
        if found.__class__ is CachedSession:
            return self.identity.accept(req, (caller.skey, found))
        return then(found, lambda entry: self.identity.accept(
            req, (caller.skey, entry if entry is not None else caller.unsaved)))


class ExternalJwt(_ExternalOAuth):
    """``providers[0].jwt``: tokens verified here, with the JWT method's checks."""

    def __init__(self, spec: ApiSpec, config: ExternalOAuthConfig, services: Services) -> None:
        super().__init__(spec, config, services)
        assert config.jwt is not None
        self.config: JwtValidationConfig = config.jwt
        self.algorithms = frozenset(
            alg for alg, family in keys.ALGORITHMS.items() if family == self.config.family)
        self.cache = TokenCache(MAX_CACHED)
        if self.config.jwks_url:
            # Fetched while the API loads, so that its first token need not wait.
            services.jwks.prefetch(self.config.jwks_url, spec.api_id)

    def process(self, req: Request) -> Outcome:
        raw = self.source.read(req)
        if not raw:
            return MISSING
        now = self.clock()
        caller: _Caller | None = self.cache.get(raw, now)
        if caller is not None:
            return self._grant(req, caller)
        return self._verify(req, raw, now)

    def _verify(self, req: Request, raw: bytes, now: float) -> Outcome:
        token = jws.parse(raw, MAX_TOKEN_BYTES)
        if isinstance(token, str):
            return error_response(401, "token verification failed: token is malformed: " + token)
        if token.alg not in self.algorithms:
            return UNEXPECTED
        config = self.config
        if config.static_key is not None:
            return self._check(req, token, config.static_key, now)
        if token.kid is None:
            return NO_KID
        key = self.services.jwks.key(config.jwks_url, token.kid, self.api_id)
        return then(key, lambda found: self._check(req, token, found, now))

    def _check(self, req: Request, token: jws.Token, key: keys.VerifyKey | None,
               now: float) -> Outcome:
        if key is None:
            status = self.services.jwks.status(self.config.jwks_url)
            if status is None or status.fetched_at is None:
                self.faults("the JWKS cannot be fetched",
                            status.failure if status is not None else "never fetched")
                return JWKS_DOWN
            return UNKNOWN_KID
        if not key.verify(token.alg, token.signing_input, token.signature):
            return BAD_SIGNATURE
        refusal = self._claims(token.claims, now)
        if refusal is not None:
            return refusal
        try:
            identity = identity_of(token.claims, self.config.identity_field)
        except IdentityError as exc:
            return error_response(403, str(exc))
        caller = self._caller(identity)
        exp = token.claims.get("exp")
        deadline = float(exp) + self.config.expires_at_skew if exp is not None else math.inf
        self.cache.put(token.raw, caller, key, deadline)
        return self._grant(req, caller)

    def _claims(self, claims: dict[str, Any], now: float) -> bytes | None:
        """The time claims, Tyk's messages (the last failing one: ``nbf`` last)."""
        config = self.config
        values: dict[str, float] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                return error_response(401, "token verification failed: token is malformed: "
                                      f"{name} is not a number")
            values[name] = float(value)
        failed = ""
        if "exp" in values and not now - config.expires_at_skew < values["exp"]:
            failed = "token has expired"
        if "iat" in values and not values["iat"] <= now + config.issued_at_skew:
            failed = "token used before issued"
        if "nbf" in values and not values["nbf"] <= now + config.not_before_skew:
            failed = "token is not valid yet"
        if failed:
            return error_response(401, "key not authorized: " + failed)
        return None


class ExternalIntrospection(_ExternalOAuth):
    """``providers[0].introspection``: tokens the authorization server is asked about."""

    def __init__(self, spec: ApiSpec, config: ExternalOAuthConfig, services: Services) -> None:
        super().__init__(spec, config, services)
        assert config.introspection is not None
        self.config: IntrospectionConfig = config.introspection
        self.caching = self.config.cache
        self.tag = server_tag(self.config)
        self.http = services.http
        self.store = services.store
        # token -> (caller, until when): answers reused without a call.
        self.results: OrderedDict[bytes, tuple[_Caller, float]] = OrderedDict()
        # token -> the call under way (one per token, whoever waits for it).
        self.in_flight: dict[bytes, asyncio.Task[_Caller | bytes]] = {}
        #: Hits and misses of ``results``, for the metrics.
        self.stats = cache_stats("introspection")

    def process(self, req: Request) -> Outcome:
        raw = self.source.read(req)
        if not raw:
            return MISSING
        entry = self.results.get(raw)
        if entry is not None:
            if self.clock() < entry[1]:
                self.stats.hits += 1
                return self._grant(req, entry[0])
            del self.results[raw]
        self.stats.misses += 1
        return self._introspected(req, raw)

    async def _introspected(self, req: Request, raw: bytes) -> bytes | None:
        task = self.in_flight.get(raw)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._resolve(raw))
            self.in_flight[raw] = task
            task.add_done_callback(lambda done: self._finished(raw, done))
        try:
            # Shielded: a request that goes away must not cancel the call
            # the others wait for.
            outcome = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request was cancelled, not the call
            return ABANDONED
        if isinstance(outcome, bytes):
            return outcome
        granted = self._grant(req, outcome)
        if granted is None or isinstance(granted, bytes):
            return granted
        return await granted

    def _finished(self, raw: bytes, task: asyncio.Task[_Caller | bytes]) -> None:
        if self.in_flight.get(raw) is task:
            del self.in_flight[raw]

    async def _resolve(self, raw: bytes) -> _Caller | bytes:
        """The token's caller, or the refusal (run once per token at a time)."""
        digest = record_key(self.tag, raw) if self.caching else ""
        if self.caching:
            stored = await self._stored(raw, digest)
            if stored is not None:
                return stored
        now = self.clock()
        try:
            claims = await introspect(self.http, self.config, raw)
            verdict = judge(claims, self.config.identity_field, now)
        except ProviderFault as exc:
            self.faults("introspection failed", str(exc))
            return exc.response
        if isinstance(verdict, bytes):
            return verdict
        identity, exp = verdict
        caller = self._caller(identity)
        if self.caching:
            until = cache_until(now, exp, self.config.cache_timeout)
            left = until - self.clock()  # the call itself took some of it
            if left > 0:
                self._remember(raw, caller, until)
                record = orjson.dumps({"until": until, "claims": claims})
                try:
                    await self.store.set_record(TABLE, digest, record, left)
                except StoreError as exc:
                    self.faults("the answer cannot be stored", str(exc))
        return caller

    async def _stored(self, raw: bytes, digest: str) -> _Caller | None:
        """An earlier answer from the store, when it still holds."""
        try:
            record = await self.store.get_record(TABLE, digest)
        except StoreError as exc:
            self.faults("stored answers cannot be read", str(exc))
            return None  # the authorization server is asked instead
        if record is None:
            return None
        try:
            stored = orjson.loads(record)
            until = float(stored["until"])
            claims = stored["claims"]
            if not isinstance(claims, dict):
                return None
            now = self.clock()
            verdict = judge(claims, self.config.identity_field, now)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ProviderFault):
            return None  # not ours, or damaged: ask again
        if isinstance(verdict, bytes) or not until > now:
            return None
        caller = self._caller(verdict[0])
        self._remember(raw, caller, until)
        return caller

    def _remember(self, raw: bytes, caller: _Caller, until: float) -> None:
        results = self.results
        if raw not in results and len(results) >= MAX_CACHED:
            results.popitem(last=False)
        results[raw] = (caller, until)


def build(spec: ApiSpec, config: ExternalOAuthConfig,
          services: Services) -> ExternalJwt | ExternalIntrospection:
    """The middleware for the method in use (``jwt`` wins, as in Tyk)."""
    if config.jwt is not None:
        return ExternalJwt(spec, config, services)
    return ExternalIntrospection(spec, config, services)
