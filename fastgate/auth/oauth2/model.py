"""What the OAuth 2.0 provider keeps, and how: clients, codes, tokens.

One :class:`OAuthStore` per gateway (``Services.oauth``) holds the
provider's state in the store's record tables (:meth:`Store.set_record`),
so that every node sharing the store sees the same clients, codes and
refresh tokens:

==================  ========================================  ===========================
table               key                                       value, lifetime
==================  ========================================  ===========================
``oauth-client``    ``<api_id>/<client_id>``                  :class:`OAuthClient` JSON
``oauth-code``      ``<api_id>/sha256(code)``                 :class:`Authorization`, 250 s
``oauth-refresh``   ``<api_id>/sha256(refresh token)``        :class:`RefreshGrant`,
                                                              ``oauth_refresh_token_expire``
``oauth-token``     ``<api_id>/<client_id>/<storage key>``    ``expires``, ``iat``, ``scope``,
                                                              ``username`` (the client's
                                                              token list)
``oauth-user``      ``<api_id>/<client_id>/<username>``       the storage key of the user's
                                                              token (password grant)
==================  ========================================  ===========================

Secrets never reach the store: a client's secret is kept as a salted
SHA-256 (``sha256$<salt hex>$<digest hex>``; shown once, when created or
rotated), codes and refresh tokens under their SHA-256.  An access token is
a key like any other (Tyk's ``generateToken``): its session is stored under
the token's storage key (its hash with ``hash_keys``) and found by the
session cache like any key's.

A change to a client publishes an ``oauth-client`` event (payload
``<api_id>/<client_id>``) so that every worker's client cache forgets it:
a deleted client's tokens are refused on every node within the event's
delivery time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.session import generate_key, parse_session, storage_key
from fastgate.storage.base import run_now

if TYPE_CHECKING:
    from fastgate.config import OAuthConfig
    from fastgate.session.cache import SessionCache
    from fastgate.storage.base import Store

__all__ = [
    "CLIENT_EVENT",
    "CODE_LIFETIME",
    "DEFAULT_ACCESS_LIFETIME",
    "DEFAULT_REFRESH_LIFETIME",
    "Authorization",
    "IssuedToken",
    "OAuthClient",
    "OAuthError",
    "OAuthStore",
    "RefreshGrant",
    "hash_secret",
    "new_client_id",
    "new_secret",
    "token_digest",
]

#: Authorization codes live this long (osin's default, Tyk's).
CODE_LIFETIME = 250
#: Access tokens live this long unless ``oauth_token_expire`` says otherwise.
DEFAULT_ACCESS_LIFETIME = 3600
#: Refresh tokens live this long unless ``oauth_refresh_token_expire`` says otherwise.
DEFAULT_REFRESH_LIFETIME = 1_209_600

CLIENT_EVENT = "oauth-client"
CLIENT_TABLE = "oauth-client"
CODE_TABLE = "oauth-code"
REFRESH_TABLE = "oauth-refresh"
TOKEN_TABLE = "oauth-token"  # noqa: S105 (a table name)
USER_TABLE = "oauth-user"

#: Clients cached per worker at most.
MAX_CACHED_CLIENTS = 100_000


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` code and ``error_description`` (osin's texts)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def new_client_id() -> str:
    """Tyk's default client id: a version-4 UUID as 32 hex digits."""
    return uuid.uuid4().hex


def new_secret() -> str:
    """Tyk's default client secret and refresh token: base64 of a UUID string."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode("ascii")


def hash_secret(secret: str) -> str:
    """``sha256$<salt>$<digest>`` of a client secret ("" for none: a public client)."""
    if not secret:
        return ""
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(salt + secret.encode("utf-8", "surrogateescape")).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def token_digest(token: str) -> str:
    """What codes and refresh tokens are stored under (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """One client of one API (Tyk's ``OAuthClient``)."""

    client_id: str
    api_id: str
    #: :func:`hash_secret` of the secret; "" for a public client (PKCE required).
    secret_hash: str = field(default="", repr=False)
    #: As given; several URIs joined by ``oauth_redirect_uri_separator``.
    redirect_uri: str = ""
    policy_id: str = ""
    meta_data: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: The org of the API the client belongs to.
    org_id: str = ""

    @property
    def public(self) -> bool:
        """No secret: a public client (RFC 6749 §2.1), which must use PKCE."""
        return not self.secret_hash

    def redirect_uris(self, separator: str) -> tuple[str, ...]:
        """The registered redirect URIs, the default first (empty: none)."""
        if not self.redirect_uri:
            return ()
        if not separator:
            return (self.redirect_uri,)
        return tuple(uri for uri in self.redirect_uri.split(separator) if uri)

    def secret_matches(self, secret: str) -> bool:
        """Whether ``secret`` is the client's, compared in constant time."""
        stored = self.secret_hash
        if not stored:
            return False
        try:
            scheme, salt_hex, digest_hex = stored.split("$")
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            return False
        if scheme != "sha256":
            return False
        given = hashlib.sha256(salt + secret.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(given, digest_hex)

    def admin_json(self, secret: str = "") -> dict[str, Any]:
        """Tyk's REST shape (``NewClientRequest``: ``policy_id`` only when set,
        as its ``omitempty``); ``secret`` only when just created or rotated
        (it is not kept: GET answers ``"secret": ""``); ``"public": true`` for
        a public client (fastgate's)."""
        body: dict[str, Any] = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
        }
        if self.policy_id:
            body["policy_id"] = self.policy_id
        body["secret"] = secret
        body["meta_data"] = dict(self.meta_data)
        body["description"] = self.description
        if self.public:
            body["public"] = True  # fastgate's: no secret, PKCE required
        return body

    def record(self) -> bytes:
        return orjson.dumps({
            "id": self.client_id, "api_id": self.api_id, "secret": self.secret_hash,
            "redirecturi": self.redirect_uri, "policyid": self.policy_id,
            "meta_data": dict(self.meta_data), "description": self.description,
            "org_id": self.org_id,
        })

    @classmethod
    def from_record(cls, data: bytes) -> OAuthClient:
        fields = orjson.loads(data)
        meta = fields.get("meta_data")
        return cls(
            client_id=str(fields.get("id", "")), api_id=str(fields.get("api_id", "")),
            secret_hash=str(fields.get("secret", "")),
            redirect_uri=str(fields.get("redirecturi", "")),
            policy_id=str(fields.get("policyid", "")),
            meta_data=meta if isinstance(meta, dict) else {},
            description=str(fields.get("description", "")),
            org_id=str(fields.get("org_id", "")),
        )


@dataclass(frozen=True, slots=True)
class Authorization:
    """What an authorization code stands for (kept 250 s, used once)."""

    client_id: str
    redirect_uri: str
    scope: str = ""
    #: The session the resource owner's login service granted (``key_rules``), or None.
    key_rules: Mapping[str, Any] | None = None
    #: RFC 7636: the challenge and its method ("S256"), "" without PKCE.
    code_challenge: str = ""
    code_challenge_method: str = ""
    #: The redirect_uri parameter was given in the authorization request
    #: (RFC 6749 §4.1.3: then the token request must repeat it).
    redirect_uri_given: bool = True

    def record(self) -> bytes:
        return orjson.dumps({
            "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": self.scope, "key_rules": self.key_rules,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "redirect_uri_given": self.redirect_uri_given,
        })

    @classmethod
    def from_record(cls, data: bytes) -> Authorization:
        fields = orjson.loads(data)
        rules = fields.get("key_rules")
        return cls(
            client_id=str(fields["client_id"]), redirect_uri=str(fields["redirect_uri"]),
            scope=str(fields.get("scope") or ""),
            key_rules=rules if isinstance(rules, dict) else None,
            code_challenge=str(fields.get("code_challenge") or ""),
            code_challenge_method=str(fields.get("code_challenge_method") or ""),
            redirect_uri_given=bool(fields.get("redirect_uri_given", True)),
        )


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for."""

    client_id: str
    #: The storage key of the access token issued with it (deleted on rotation).
    access_key: str
    scope: str = ""
    key_rules: Mapping[str, Any] | None = None
    #: The password grant's user ("" otherwise).
    username: str = ""

    def record(self) -> bytes:
        return orjson.dumps({
            "client_id": self.client_id, "access_key": self.access_key, "scope": self.scope,
            "key_rules": self.key_rules, "username": self.username,
        })

    @classmethod
    def from_record(cls, data: bytes) -> RefreshGrant:
        fields = orjson.loads(data)
        rules = fields.get("key_rules")
        return cls(
            client_id=str(fields["client_id"]), access_key=str(fields["access_key"]),
            scope=str(fields.get("scope") or ""),
            key_rules=rules if isinstance(rules, dict) else None,
            username=str(fields.get("username") or ""),
        )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token response's content (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    #: The access token's storage key (its hash with ``hash_keys``).
    access_key: str
    refresh_token: str = ""
    scope: str = ""
    #: The session stored under ``access_key``.
    session: Mapping[str, Any] = field(default_factory=dict)

    def response(self, state: str = "") -> dict[str, Any]:
        """Tyk's token JSON: ``access_token, token_type: bearer, expires_in,
        refresh_token?, scope?`` (and ``state`` for the implicit grant)."""
        body: dict[str, Any] = {"access_token": self.access_token, "token_type": "bearer",
                                "expires_in": self.expires_in}
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.scope:
            body["scope"] = self.scope
        if state:
            body["state"] = state
        return body


_ABSENT: Any = object()


class OAuthStore:
    """The provider's state (see the module docstring); one per gateway."""

    def __init__(self, store: Store, sessions: SessionCache,
                 policies: Callable[[], dict[str, dict[str, Any]]], *,
                 settings: OAuthConfig, hash_keys: bool, hash_key_function: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sessions = sessions
        self.policies = policies
        self.settings = settings
        self.hash_keys = hash_keys
        self.hash_key_function = hash_key_function
        self.clock = clock
        self._clients: OrderedDict[str, OAuthClient | None] = OrderedDict()
        self._generation = 0
        self._local = not store.shared

    # -- clients ---------------------------------------------------------------------

    def client(self, api_id: str, client_id: str
               ) -> OAuthClient | Awaitable[OAuthClient | None] | None:
        """The client, from this worker's cache when it knows it (synchronous),
        else an awaitable asking the store (which raises StoreError)."""
        name = api_id + "/" + client_id
        cached = self._clients.get(name, _ABSENT)
        if cached is not _ABSENT:
            return cached
        if self._local:
            return self._remember(name, run_now(self.store.get_record(CLIENT_TABLE, name)),
                                  self._generation)
        return self._fetch_client(name)

    async def load_client(self, api_id: str, client_id: str) -> OAuthClient | None:
        """The client (awaiting the store if needed)."""
        found = self.client(api_id, client_id)
        if found is None or isinstance(found, OAuthClient):
            return found
        return await found

    async def _fetch_client(self, name: str) -> OAuthClient | None:
        generation = self._generation
        data = await self.store.get_record(CLIENT_TABLE, name)
        return self._remember(name, data, generation)

    def _remember(self, name: str, data: bytes | None, generation: int) -> OAuthClient | None:
        client = None
        if data is not None:
            try:
                client = OAuthClient.from_record(data)
            except (ValueError, TypeError, KeyError):
                client = None  # a corrupt record counts as no client
        if generation == self._generation:
            if len(self._clients) >= MAX_CACHED_CLIENTS:
                self._clients.popitem(last=False)
            self._clients[name] = client
        return client

    def forget_client(self, name: str | None = None) -> None:
        """Drop one cached client (``<api_id>/<client_id>``), or all of them."""
        if name is None:
            self._clients.clear()
        else:
            self._clients.pop(name, None)
        self._generation += 1

    async def save_client(self, client: OAuthClient) -> None:
        """Create or replace a client (every worker and node forgets the old one)."""
        name = client.api_id + "/" + client.client_id
        await self.store.set_record(CLIENT_TABLE, name, client.record())
        self.forget_client(name)
        await self.store.publish(CLIENT_EVENT, name)

    async def delete_client(self, api_id: str, client_id: str) -> bool:
        """Delete a client; its tokens' sessions stay, and are refused ("OAuth
        client access was revoked") while it does not exist.  Its token
        listing goes, as Tyk's ``DeleteClient`` deletes it.  True if it existed."""
        name = api_id + "/" + client_id
        existed = await self.store.delete_record(CLIENT_TABLE, name)
        self.forget_client(name)
        await self.store.publish(CLIENT_EVENT, name)
        for listed in await self.store.list_records(TOKEN_TABLE, name + "/"):
            await self.store.delete_record(TOKEN_TABLE, listed)
        return existed

    async def clients(self, api_id: str) -> list[OAuthClient]:
        """Every client of an API (a SCAN on Redis: for the admin API)."""
        found: list[OAuthClient] = []
        for name in await self.store.list_records(CLIENT_TABLE, api_id + "/"):
            client = await self.load_client(api_id, name[len(api_id) + 1:])
            if client is not None:
                found.append(client)
        return found

    # -- codes -------------------------------------------------------------------------

    async def new_code(self, api_id: str, authorization: Authorization) -> str:
        """A new authorization code for ``authorization`` (250 s, single use)."""
        code = secrets.token_urlsafe(32)
        await self.store.set_record(CODE_TABLE, api_id + "/" + token_digest(code),
                                    authorization.record(), CODE_LIFETIME)
        return code

    async def take_code(self, api_id: str, code: str) -> Authorization | None:
        """The code's authorization, once: the code is gone afterwards, on every node."""
        data = await self.store.take_record(CODE_TABLE, api_id + "/" + token_digest(code))
        return None if data is None else Authorization.from_record(data)

    # -- tokens ---------------------------------------------------------------------------

    def session_for(self, client: OAuthClient, key_rules: Mapping[str, Any] | None,
                    expires_in: int) -> dict[str, Any]:
        """The session an access token is issued with (Tyk's): ``key_rules``
        when given, else the client's policy; ``oauth_client_id`` set;
        ``expires`` = now + ``expires_in`` (overriding the rules' and the
        policy's, as Tyk does); the client's ``meta_data`` fills what the
        session's lacks.  OAuthError ``server_error`` without either."""
        if key_rules is not None:
            session: dict[str, Any] = dict(key_rules)
        elif client.policy_id:
            policy = self.policies().get(client.policy_id)
            if policy is None:
                raise OAuthError("server_error", "The authorization server encountered an "
                                 "unexpected condition that prevented it from fulfilling "
                                 "the request.")
            session = {"apply_policies": [client.policy_id],
                       "org_id": str(policy.get("org_id") or client.org_id)}
        else:
            raise OAuthError("server_error", "The authorization server encountered an "
                             "unexpected condition that prevented it from fulfilling the "
                             "request.")
        session.setdefault("org_id", client.org_id)
        session["oauth_client_id"] = client.client_id
        session["expires"] = int(self.clock()) + expires_in
        meta = session.get("meta_data")
        merged = dict(meta) if isinstance(meta, dict) else {}
        for name, value in client.meta_data.items():
            merged.setdefault(name, value)
        session["meta_data"] = merged
        try:
            return parse_session(session)
        except ValueError as exc:
            raise OAuthError("server_error", f"the session for the token is invalid: {exc}") \
                from None

    async def issue(self, client: OAuthClient, *, key_rules: Mapping[str, Any] | None,
                    scope: str = "", refresh: bool, username: str = "") -> IssuedToken:
        """A new access token (and refresh token when ``refresh``): the session
        stored, the token listed under the client, the refresh token filed."""
        settings = self.settings
        expires_in = settings.token_expire
        session = self.session_for(client, key_rules, expires_in)
        token = generate_key(str(session.get("org_id") or client.org_id),
                             self.hash_key_function)
        skey = storage_key(token, hash_keys=self.hash_keys,
                           hash_key_function=self.hash_key_function)
        retain = settings.expired_retain_period
        # The session goes when the token expires (plus the retain period):
        # the store does not fill up with dead tokens.
        await self.sessions.save(skey, orjson.dumps(session), expires_in + max(retain, 0) + 1)
        expires = int(session["expires"])
        api_id = client.api_id
        listing: dict[str, Any] = {"expires": expires, "iat": expires - expires_in}
        if scope:
            listing["scope"] = scope
        if username:
            listing["username"] = username
        await self.store.set_record(
            TOKEN_TABLE, f"{api_id}/{client.client_id}/{skey}",
            orjson.dumps(listing), expires_in + retain if retain > 0 else 0)
        refresh_token = ""
        if refresh:
            refresh_token = new_secret()
            grant = RefreshGrant(client_id=client.client_id, access_key=skey, scope=scope,
                                 key_rules=key_rules, username=username)
            await self.store.set_record(
                REFRESH_TABLE, api_id + "/" + token_digest(refresh_token), grant.record(),
                settings.refresh_token_expire)
        if username:
            await self.store.set_record(USER_TABLE, f"{api_id}/{client.client_id}/{username}",
                                        skey.encode("utf-8", "surrogateescape"))
        return IssuedToken(access_token=token, expires_in=expires_in, access_key=skey,
                           refresh_token=refresh_token, scope=scope, session=session)

    async def refresh_grant(self, api_id: str, refresh_token: str) -> RefreshGrant | None:
        """The grant a refresh token stands for (not used up), or None."""
        data = await self.store.get_record(REFRESH_TABLE, api_id + "/" +
                                           token_digest(refresh_token))
        return None if data is None else RefreshGrant.from_record(data)

    async def rotate(self, client: OAuthClient, refresh_token: str,
                     scope: str | None = None) -> IssuedToken | None:
        """Refresh rotation: the old refresh token is used up (once, on every
        node), its access token and session deleted, and a new pair issued
        -- of ``scope`` when given (a narrower scope, checked by the caller;
        osin narrows the new refresh token too), else the old one's.
        None when the token is unknown, used or another client's."""
        api_id = client.api_id
        name = api_id + "/" + token_digest(refresh_token)
        data = await self.store.take_record(REFRESH_TABLE, name)
        if data is None:
            return None
        grant = RefreshGrant.from_record(data)
        if grant.client_id != client.client_id:
            # Not this client's: put it back for its owner (the caller answers invalid_client).
            await self.store.set_record(REFRESH_TABLE, name, data,
                                        self.settings.refresh_token_expire)
            return None
        await self.delete_access(api_id, client.client_id, grant.access_key)
        return await self.issue(client, key_rules=grant.key_rules,
                                scope=grant.scope if scope is None else scope,
                                refresh=True, username=grant.username)

    async def delete_access(self, api_id: str, client_id: str, skey: str) -> bool:
        """Delete an access token's session (by storage key) and its listing."""
        existed = await self.store.delete_session(skey)
        self.sessions.invalidate(skey)
        await self.store.publish("session", skey)
        await self.store.delete_record(TOKEN_TABLE, f"{api_id}/{client_id}/{skey}")
        return existed

    def access_key(self, token: str) -> str:
        """An access token's storage key."""
        return storage_key(token, hash_keys=self.hash_keys,
                           hash_key_function=self.hash_key_function)

    async def revoke_access_token(self, api_id: str, token: str,
                                  client_id: str | None = None) -> bool:
        """RFC 7009 / Tyk's revoke of an access token: its session goes --
        only when it is an OAuth token of a client of ``api_id`` (any other
        key, a Basic-auth user's say, is left alone: the revoke endpoints
        need no key of their own), and of ``client_id`` when given.  True if
        a token was revoked."""
        owner = client_id
        skey = self.access_key(token)
        data = await self.store.get_session(skey)
        if data is None:
            return False
        try:
            found = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        client_id = found.get("oauth_client_id") if isinstance(found, dict) else None
        if not isinstance(client_id, str) or not client_id \
                or (owner is not None and client_id != owner) \
                or await self.load_client(api_id, client_id) is None:
            return False
        return await self.delete_access(api_id, client_id, skey)

    async def revoke_refresh_token(self, api_id: str, token: str,
                                   client_id: str | None = None) -> bool:
        """Revoke a refresh token (its access token stays, as in Tyk) -- of
        ``client_id`` only, when given."""
        name = api_id + "/" + token_digest(token)
        if client_id is not None:
            grant = await self.refresh_grant(api_id, token)
            if grant is None or grant.client_id != client_id:
                return False
        return await self.store.delete_record(REFRESH_TABLE, name)

    async def revoke_all(self, api_id: str, client_id: str) -> int:
        """Every access and refresh token of a client: gone.  How many."""
        count = 0
        for skey, _expires in await self.tokens(api_id, client_id, include_expired=True):
            await self.delete_access(api_id, client_id, skey)
            count += 1
        for name in await self.store.list_records(REFRESH_TABLE, api_id + "/"):
            data = await self.store.get_record(REFRESH_TABLE, name)
            if data is not None and RefreshGrant.from_record(data).client_id == client_id:
                await self.store.delete_record(REFRESH_TABLE, name)
                count += 1
        for name in await self.store.list_records(USER_TABLE, f"{api_id}/{client_id}/"):
            await self.store.delete_record(USER_TABLE, name)
        return count

    async def token_listing(self, api_id: str, client_id: str, skey: str
                            ) -> dict[str, Any] | None:
        """The client's listing of one access token: ``expires``, ``iat`` and,
        when the token has them, ``scope`` and ``username`` (introspection)."""
        data = await self.store.get_record(TOKEN_TABLE, f"{api_id}/{client_id}/{skey}")
        if data is None:
            return None
        try:
            listing = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return listing if isinstance(listing, dict) else None

    async def user_token(self, api_id: str, client_id: str, username: str) -> str | None:
        """The storage key of the token the password grant last gave ``username``."""
        data = await self.store.get_record(USER_TABLE, f"{api_id}/{client_id}/{username}")
        return None if data is None else data.decode("utf-8", "surrogateescape")

    async def tokens(self, api_id: str, client_id: str, *,
                     include_expired: bool = False) -> list[tuple[str, int]]:
        """``(storage key, expires)`` of the client's listed tokens, soonest
        expiry first; unexpired only unless ``include_expired``."""
        prefix = f"{api_id}/{client_id}/"
        now = self.clock()
        found: list[tuple[str, int]] = []
        for name in await self.store.list_records(TOKEN_TABLE, prefix):
            data = await self.store.get_record(TOKEN_TABLE, name)
            if data is None:
                continue
            try:
                expires = int(orjson.loads(data).get("expires", 0))
            except (ValueError, TypeError, AttributeError):
                continue
            if include_expired or expires > now:
                found.append((name[len(prefix):], expires))
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    async def purge_lapsed(self) -> int:
        """Drop the token listings expired longer than the retain period
        (``DELETE /tyk/oauth/tokens?scope=lapsed``); how many.

        A retain period of 0 purges nothing, as Tyk's ``purgeLapsedOAuthTokens``
        (the listings of expired tokens are then kept for ever)."""
        retain = self.settings.expired_retain_period
        if retain <= 0:
            return 0
        cutoff = self.clock() - retain
        count = 0
        for name in await self.store.list_records(TOKEN_TABLE):
            data = await self.store.get_record(TOKEN_TABLE, name)
            if data is None:
                continue
            try:
                expires = int(orjson.loads(data).get("expires", 0))
            except (ValueError, TypeError, AttributeError):
                expires = 0
            if expires <= cutoff:
                await self.store.delete_record(TOKEN_TABLE, name)
                count += 1
        return count

    async def delete_client_tokens(self, api_id: str, client_id: str) -> int:
        """A policy change deletes the client's access tokens (Tyk's
        ``invalidateTokens``); its refresh tokens stay, and mint tokens of
        the new policy.  How many."""
        count = 0
        for skey, _expires in await self.tokens(api_id, client_id, include_expired=True):
            await self.delete_access(api_id, client_id, skey)
            count += 1
        return count

    def with_secret(self, client: OAuthClient, secret: str) -> OAuthClient:
        """``client`` with a new secret (hashed)."""
        return replace(client, secret_hash=hash_secret(secret))
