"""The JWT middleware: a token in, the caller's session out.

Per request (``JwtAuth.process``):

1. the token is read where ``auth_configs.jwt`` says (a leading ``Bearer ``
   stripped); none: 400 "Authorization field missing";
2. a token verified before (the verified-token cache, keyed by the token's
   bytes) goes straight to its session: a dict probe, the entry's deadline
   (the token's ``exp`` plus the skew) and its key's liveness -- a cached
   token still expires on time, and stops at once when its key leaves the
   JWKS;
3. otherwise: split, decoded and parsed in ``fastgate._core.jws`` (malformed
   or longer than :data:`MAX_TOKEN_BYTES`: 403 "Key not authorized"); an
   ``alg`` outside the configured family -- ``none`` in any spelling among
   them -- is refused before any key is touched: 403 "Key not authorized:
   Unexpected signing method"; the key is found (``jwt_source``'s key, the
   JWKS key named by ``kid``, or the per-key secret); the signature verified
   through OpenSSL; then the time claims (401 "Key not authorized: token has
   expired" / "...: token used before issued" / "...: token is not valid
   yet", the last failing one -- Tyk's order, ``nbf`` last), then
   ``jwt_issuer`` / ``jwt_audience`` when set (401);
4. the session: centralised mode (``jwt_source``) builds or updates the
   identity's session as Tyk does (:mod:`fastgate.auth.jwt.sessions`) and
   stores it (every node sees it); the per-key mode uses the key the token
   names.

The header's ``jku``, ``x5u`` and ``jwk`` are never read: keys come only
from the API definition, its JWKS URL and the key store.

With ``enable_context_vars``, the header's and the claims' members become
context variables ``jwt_claims_<name>`` (and ``token`` the raw token), for
``global_headers``' ``$tyk_context.*``.

**fastgate differs** from Tyk: a non-numeric ``exp``, ``nbf`` or ``iat`` is
a malformed token (403; Tyk ignores the claim).  As in Tyk, a token checked
against a JWKS must name its key (``kid``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from fastgate._core import compare, jws
from fastgate.auth.auth_token import token_candidates
from fastgate.auth.identity import Identity, find_session
from fastgate.auth.jwt import keys, sessions
from fastgate.auth.jwt.sessions import IdentityError, Refusal
from fastgate.auth.jwt.tokens import TokenCache
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.session import key_lifetime, parse_session, policy_ids, storage_key
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from fastgate.apidef import ApiSpec
    from fastgate.auth.jwt.config import JwtConfig
    from fastgate.services import Outcome, Request, Services

__all__ = ["MAX_TOKEN_BYTES", "JwtAuth"]

#: Longer tokens are refused before any parsing (real ones are 0.5-4 KiB; an
#: Azure AD token with many groups reaches ~8 KiB).
MAX_TOKEN_BYTES = 12 * 1024
#: Verified tokens remembered per API at most (the oldest go first).
MAX_CACHED_TOKENS = 50_000

MISSING = error_response(400, "Authorization field missing")
NOT_AUTHORIZED = error_response(403, "Key not authorized")
UNEXPECTED = error_response(403, "Key not authorized: Unexpected signing method")
EXPIRED = "token has expired"
USED_BEFORE_ISSUED = "token used before issued"
NOT_YET_VALID = "token is not valid yet"


def _refuse(status: int, message: str) -> bytes:
    return error_response(status, message)


class _Plan:
    """What one verified token means for this API, worked out once."""

    __slots__ = ("base", "client_id", "context", "deadline", "entry", "exp", "policies",
                 "scope", "secret", "skey")

    def __init__(self, skey: str, exp: int, client_id: str, secret: str | None,
                 context: dict[str, Any] | None, deadline: float = math.inf) -> None:
        #: Where the session is stored.
        self.skey = skey
        #: The token's ``exp`` (0: none).
        self.exp = exp
        #: Until when the token may be used: its ``exp`` plus the skew (inf: no ``exp``).
        self.deadline = deadline
        self.client_id = client_id
        #: Per-key mode: the ``jwt_data.secret`` the token was verified with.
        self.secret = secret
        #: ``apply_policies`` the session had when it was last found right for
        #: this token (centralised mode); None: not checked yet.
        self.policies: list[str] | None = None
        self.context = context
        #: The cached session last accepted with this plan: while the cache
        #: holds that very object (a change replaces it), nothing is re-checked.
        self.entry: CachedSession | None = None
        #: Centralised mode, what the session was reconciled from besides the
        #: session itself and the policies (a policy change empties the session
        #: cache, so ``entry`` is then never the session found): the base policy
        #: and the token's scopes.
        self.base = ""
        self.scope: tuple[str, ...] = ()


class _Name:
    """One identity's session names (md5 and naming done once), and the plan
    last accepted for it -- a new token of that identity whose inputs match it
    finds the same session right without reconciling it again."""

    __slots__ = ("identity", "last", "sid", "skey")

    def __init__(self, identity: str, sid: str, skey: str) -> None:
        self.identity = identity
        self.sid = sid
        self.skey = skey
        self.last: _Plan | None = None


def _numeric(claims: dict[str, Any], name: str) -> float | bool | None:
    """A NumericDate claim: its value, None when absent, False when not a number."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return float(value)


class JwtAuth:
    """Checks the request's JWT and finds (or makes) the caller's session."""

    name: ClassVar[str] = "jwt"

    def __init__(self, spec: ApiSpec, config: JwtConfig, services: Services) -> None:
        self.config = config
        self.spec = spec
        self.services = services
        self.source = config.credential.source(strip=spec.strip_auth_data)
        self.algorithms = frozenset(
            alg for alg, family in keys.ALGORITHMS.items() if family == config.family)
        self.cache = TokenCache(MAX_CACHED_TOKENS)
        self.sessions = services.sessions
        self.clock = services.clock
        self.identity = Identity(spec, "jwt_claim")
        self.org_id = spec.org_id
        self.key_names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                          hash_function=services.hash_key_function)
        self.context_vars = spec.enable_context_vars
        # identity -> its session names and last accepted plan.
        self._names: OrderedDict[str, _Name] = OrderedDict()
        # per-key mode: jwt_data.secret -> its key (parsed once).
        self._secret_keys: OrderedDict[str, keys.VerifyKey | None] = OrderedDict()
        if config.jwks_url:
            # Fetched while the API loads, so that its first token need not wait.
            services.jwks.prefetch(config.jwks_url, spec.api_id)

    # -- the request ------------------------------------------------------------

    def present(self, req: Request) -> bool:
        """Whether the request carries a JWT where it is read (``auth_mode:
        any``): something with a JWS's shape (two dots), so that a JWT and an
        auth token may share a header."""
        raw = self.source.peek(req)
        return raw is not None and raw.count(b".") == 2

    def process(self, req: Request) -> Outcome:
        raw = self.source.read(req)
        if not raw:
            return MISSING
        now = self.clock()
        plan: _Plan | None = self.cache.get(raw, now)
        if plan is None:
            return self._verify(req, raw, now)
        found = self.sessions.lookup(plan.skey)
        if found.__class__ is CachedSession and self._current(found, plan):
            return self._accept(req, plan, found)
        return self._verify(req, raw, now)

    def _current(self, found: CachedSession, plan: _Plan) -> bool:
        """Whether the session is still what the token makes of it."""
        if found is plan.entry:
            return True
        session = found.session
        if plan.secret is not None:
            data = session.get("jwt_data")
            secret = data.get("secret") if isinstance(data, dict) else None
            return isinstance(secret, str) and compare.constant_time_equals(
                secret.encode("utf-8", "surrogateescape"),
                plan.secret.encode("utf-8", "surrogateescape"))
        if plan.policies is None or session.get("apply_policies") != plan.policies:
            return False
        if plan.exp and plan.exp + self.config.expires_at_skew > (session.get("expires") or 0):
            return False
        return (session.get("oauth_client_id") or "") == plan.client_id

    def _accept(self, req: Request, plan: _Plan, found: CachedSession) -> bytes | None:
        """Hands the session to the request (a non-base key may be refused)."""
        plan.entry = found
        refusal = self.identity.accept(req, (plan.skey, found))
        if refusal is not None:
            return refusal
        if plan.context is not None:
            context = req.context
            if context is None:
                req.context = dict(plan.context)
            else:
                context.update(plan.context)
        return None

    # -- verification -------------------------------------------------------------

    def _verify(self, req: Request, raw: bytes, now: float) -> Outcome:
        token = jws.parse(raw, MAX_TOKEN_BYTES)
        if isinstance(token, str):
            return NOT_AUTHORIZED
        if token.alg not in self.algorithms:
            return UNEXPECTED
        config = self.config
        if config.static_key is not None:
            return self._check(req, token, config.static_key, now)
        if config.jwks_url:
            key = self.services.jwks.key(config.jwks_url, token.kid, self.spec.api_id)
            return then(key, lambda found: self._check(req, token, found, now))
        return self._per_key(req, token, now)

    def _per_key(self, req: Request, token: jws.Token, now: float) -> Outcome:
        """Tyk's one-to-one mode: the token names the key whose secret checks it."""
        if token.kid is not None and not self.config.skip_kid:
            name = token.kid
        else:
            try:
                name = sessions.identity_of(token.claims, self.config.identity_field)
            except IdentityError as exc:
                return _refuse(404, str(exc))
        try:
            search = find_session(self.sessions, self.key_names.of(
                name.encode("utf-8", "surrogateescape")))
        except StoreError as exc:
            return store_unavailable(exc)
        return then(search, lambda hit: self._with_key(req, token, hit, now))

    def _with_key(self, req: Request, token: jws.Token,
                  hit: tuple[str, CachedSession] | None, now: float) -> Outcome:
        if hit is None:
            return NOT_AUTHORIZED
        skey, found = hit
        data = found.session.get("jwt_data")
        secret = data.get("secret") if isinstance(data, dict) else None
        if not isinstance(secret, str) or not secret:
            return NOT_AUTHORIZED
        key = self._secret_key(secret)
        if key is None or not key.verify(token.alg, token.signing_input, token.signature):
            return NOT_AUTHORIZED
        refusal = self._claims(token, now)
        if refusal is not None:
            return refusal
        plan = _Plan(skey, 0, "", secret, self._context(token), self._deadline(token))
        self.cache.put(token.raw, plan, key, plan.deadline)
        return self._accept(req, plan, found)

    def _secret_key(self, secret: str) -> keys.VerifyKey | None:
        known = self._secret_keys.get(secret, False)
        if known is not False:
            return known  # type: ignore[return-value]
        material = secret.encode("utf-8", "surrogateescape")
        key: keys.VerifyKey | None
        try:
            key = keys.key_from_secret(material) if self.config.family == "hmac" \
                else keys.key_from_material(material, self.config.family)
        except ValueError:
            key = None
        if len(self._secret_keys) >= MAX_CACHED_TOKENS:
            self._secret_keys.popitem(last=False)
        self._secret_keys[secret] = key
        return key

    def _deadline(self, token: jws.Token) -> float:
        exp = token.claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            return float(exp) + self.config.expires_at_skew
        return math.inf

    def _claims(self, token: jws.Token, now: float) -> bytes | None:
        """The time claims (Tyk's messages, the last failing one), then iss/aud."""
        config = self.config
        claims = token.claims
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        nbf = _numeric(claims, "nbf")
        if exp is False or iat is False or nbf is False:
            return NOT_AUTHORIZED
        failed = ""
        if exp is not None and not now - config.expires_at_skew < exp:
            failed = EXPIRED
        if iat is not None and not iat <= now + config.issued_at_skew:
            failed = USED_BEFORE_ISSUED
        if nbf is not None and not nbf <= now + config.not_before_skew:
            failed = NOT_YET_VALID
        if failed:
            return _refuse(401, "Key not authorized: " + failed)
        if config.issuers:
            iss = claims.get("iss")
            if iss is None:
                return _refuse(401, "Key not authorized: issuer claim is required but "
                               "not present in token")
            if not isinstance(iss, str):
                return _refuse(401, "Key not authorized: issuer claim must be a string")
            if iss not in config.issuers:
                return _refuse(401, "Key not authorized: invalid issuer claim: " + iss[:256])
        if config.audiences:
            aud = claims.get("aud")
            if aud is None:
                return _refuse(401, "Key not authorized: audience claim is required but "
                               "not present in token")
            if isinstance(aud, str):
                audiences = [aud]
            elif isinstance(aud, list):
                audiences = [item for item in aud if isinstance(item, str)]
            else:
                return _refuse(401, "Key not authorized: invalid audience claim format")
            if not any(item in config.audiences for item in audiences):
                return _refuse(401, "Key not authorized: no matching audience found in token: ["
                               + " ".join(audiences)[:256] + "]")
        return None

    def _context(self, token: jws.Token) -> dict[str, Any] | None:
        if not self.context_vars:
            return None
        context: dict[str, Any] = {}
        for name, value in token.header.items():
            context["jwt_claims_" + name] = value
        for name, value in token.claims.items():
            context["jwt_claims_" + name] = value
        context["token"] = token.raw.decode("ascii", "replace")
        return context

    # -- centralised mode: the identity's session -----------------------------------

    def _check(self, req: Request, token: jws.Token, key: keys.VerifyKey | None,
               now: float) -> Outcome:
        if key is None or not key.verify(token.alg, token.signing_input, token.signature):
            return NOT_AUTHORIZED
        refusal = self._claims(token, now)
        if refusal is not None:
            return refusal
        config = self.config
        claims = token.claims
        try:
            identity = sessions.identity_of(claims, config.identity_field)
        except IdentityError as exc:
            return _refuse(403, str(exc))
        name = self._name(identity)
        exp = claims.get("exp")
        plan = _Plan(name.skey, int(exp) if isinstance(exp, int | float) else 0,
                     sessions.client_id_of(claims) if config.client_id_mapping else "", None,
                     self._context(token), self._deadline(token))
        if config.scope_to_policy:
            plan.scope = tuple(sessions.scope_of(claims, config.scope_claim))
        try:
            base = self._base_policy(token)
        except StoreError as exc:
            return store_unavailable(exc)
        if not isinstance(base, str):
            return self._after_base(base, req, token, key, plan, name)
        plan.base = base
        try:
            found = self.sessions.lookup(plan.skey)
        except StoreError as exc:
            return store_unavailable(exc)
        if found.__class__ is not CachedSession:
            return then(found, lambda entry: self._settle(req, token, key, plan, name, entry))
        last = name.last
        if (last is not None and last.entry is found and last.base == plan.base
                and last.scope == plan.scope and last.client_id == plan.client_id
                and (not plan.exp
                     or plan.exp + config.expires_at_skew <= (found.session.get("expires") or 0))):
            # The same identity, session and inputs as a token accepted before:
            # reconciling would find the session right again.
            plan.policies = last.policies
            return self._remember(req, token, key, plan, name, found)
        return self._settle(req, token, key, plan, name, found)

    async def _after_base(self, pending: Awaitable[str], req: Request, token: jws.Token,
                          key: keys.VerifyKey, plan: _Plan, name: _Name) -> bytes | None:
        try:
            plan.base = await pending
            found: Any = self.sessions.lookup(plan.skey)
            if found is not None and found.__class__ is not CachedSession:
                found = await found
        except StoreError as exc:
            return store_unavailable(exc)
        outcome = self._settle(req, token, key, plan, name, found)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    def _name(self, identity: str) -> _Name:
        name = self._names.get(identity)
        if name is None:
            services = self.services
            sid = sessions.session_id(self.org_id, identity, services.hash_key_function)
            name = _Name(identity, sid, storage_key(sid, hash_keys=services.hash_keys,
                                          hash_key_function=services.hash_key_function))
            if len(self._names) >= MAX_CACHED_TOKENS:
                self._names.popitem(last=False)
            self._names[identity] = name
        return name

    def _base_policy(self, token: jws.Token) -> str | Awaitable[str]:
        """The policy claim, else the first policy of the ``jwt_client_base_field``
        key; "" for none."""
        config = self.config
        if config.policy_field:
            return sessions.claim_string(token.claims, config.policy_field) or ""
        if not config.client_base_field:
            return ""
        client = token.claims.get(config.client_base_field)
        if not isinstance(client, str) or not client:
            return ""
        search = find_session(self.sessions, self.key_names.of(
            client.encode("utf-8", "surrogateescape")))
        if search is None or isinstance(search, tuple):
            return _first_policy(search)
        return _first_policy_of(search)

    def _settle(self, req: Request, token: jws.Token, key: keys.VerifyKey, plan: _Plan,
                name: _Name, found: CachedSession | None) -> Outcome:
        try:
            wanted = sessions.reconcile(
                self.config, token.claims, org_id=self.org_id, identity=name.identity, sid=name.sid,
                existing=found.session if found is not None else None, base_policy=plan.base,
                policies=self.services.policies(), now=self.clock())
        except Refusal as refusal:
            return _refuse(refusal.status, refusal.message)
        if wanted is None and found is not None:
            return self._remember(req, token, key, plan, name, found)
        return self._store(req, token, key, plan, name, wanted or {})

    def _remember(self, req: Request, token: jws.Token, key: keys.VerifyKey, plan: _Plan,
                  name: _Name | None, found: CachedSession) -> bytes | None:
        """Accepts the session found right for the token, and caches the token
        with the policies that session has (if it can be used at all)."""
        if found.refusal is None:
            policies = found.session.get("apply_policies")
            plan.policies = policies if isinstance(policies, list) else None
            if plan.policies is not None:
                self.cache.put(token.raw, plan, key, plan.deadline)
                if name is not None:
                    name.last = plan
        return self._accept(req, plan, found)

    async def _store(self, req: Request, token: jws.Token, key: keys.VerifyKey, plan: _Plan,
                     name: _Name, session: dict[str, Any]) -> bytes | None:
        """Writes the identity's session (every node sees it), then uses it."""
        services = self.services
        spec = self.spec
        config = services.config
        try:
            record = parse_session(session)
        except ValueError as exc:
            return _refuse(500, f"failed to create key: {exc}")
        lifetime = key_lifetime(
            record, services.clock(), api_lifetime=spec.session_lifetime,
            respects_expiration=spec.session_lifetime_respects_key_expiration,
            force_global=config.force_global_session_lifetime,
            global_lifetime=config.global_session_lifetime)
        try:
            await self.sessions.save(plan.skey, orjson.dumps(record),
                                     0 if lifetime == -1 else lifetime)
            found: Any = self.sessions.lookup(plan.skey)
            if found is not None and not isinstance(found, CachedSession):
                found = await found
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None:
            return NOT_AUTHORIZED
        return self._remember(req, token, key, plan, name, found)


def _first_policy(hit: tuple[str, CachedSession] | None) -> str:
    """The first policy of the key found (Tyk's ``jwt_client_base_field``)."""
    if hit is None:
        return ""
    ids = policy_ids(hit[1].session)
    return ids[0] if ids else ""


async def _first_policy_of(search: Awaitable[tuple[str, CachedSession] | None]) -> str:
    return _first_policy(await search)
