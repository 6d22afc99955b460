"""``/tyk/oauth/...``: the OAuth 2.0 provider's clients and tokens through the
Gateway REST API.

Follows Tyk's ``createOauthClient``, ``oAuthClientHandler``,
``updateOauthClient``, ``rotateOauthClientHandler``,
``getOauthClientDetails``, ``getOauthClients``, ``oAuthClientTokensHandler``,
``getApisForOauthApp``, ``oAuthTokensHandler``, ``invalidateOauthRefresh``,
``RevokeTokenHandler`` and ``RevokeAllTokensHandler`` (``gateway/api.go``),
on top of :class:`fastgate.auth.oauth2.model.OAuthStore`:

=============================================  ======  ======================================
path (under ``/tyk/oauth/``)                   method  answer
=============================================  ======  ======================================
``clients/create``                             POST    the client, its secret shown once
``clients/{api_id}``                           GET     the API's clients (a list)
``clients/{api_id}/{client_id}``               GET     the client
``clients/{api_id}/{client_id}``               PUT     the client, its fields replaced
``clients/{api_id}/{client_id}``               DELETE  ``{"key","status":"ok","action":"deleted"}``
``clients/{api_id}/{client_id}/rotate``        PUT     the client, its new secret shown once
``clients/{api_id}/{client_id}/tokens``        GET     ``[{"code","expires"}]`` (``?page=N``)
``clients/apis/{client_id}``                   GET     the ids of the APIs having the client
``tokens?scope=lapsed``                        DELETE  lapsed token listings purged
``refresh/{refresh token}?api_id=``            DELETE  the refresh token revoked
``revoke``                                     POST    form ``token, token_type_hint?,
                                                       client_id, org_id?``
``revoke_all``                                 POST    form ``client_id, client_secret,
                                                       org_id?``
=============================================  ======  ======================================

The client JSON is Tyk's ``NewClientRequest``: ``{client_id, secret,
redirect_uri, api_id?, policy_id?, meta_data, description}``.  On create the
id defaults to a UUID in hex and the secret to base64 of a UUID; with
``api_id`` the client is that API's (400 "API doesn't exist", 400 "API is not
OAuth2"); without it, the client goes on every API of the policy
``policy_id`` that has ``use_oauth2`` or ``enable_jwt`` (400 "Policy doesn't
exist", 400 "API doesn't exist" for an API of the policy that is not loaded,
400 "API is not OAuth2" when none qualifies).  An API is OAuth 2.0 when its
definition sets ``use_oauth2``.

A PUT replaces ``redirect_uri``, ``policy_id``, ``meta_data`` and
``description`` (omitted fields are cleared; the id and secret stay): 404
"API doesn't exist", 404 "Policy doesn't exist", 400 "Policy access rights
doesn't contain API this OAuth client belongs to", 404 "OAuth Client ID not
found".  A policy change deletes the client's access tokens (their refresh
tokens stay, as in Tyk).  A DELETE keeps the tokens' sessions: the bearer
check refuses them with 403 "Key not authorised. OAuth client access was
revoked".

**fastgate differs**:

* Secrets are kept only as salted hashes, so a client's ``secret`` is shown
  when it is created or rotated and is ``""`` in every other answer (Tyk
  shows it on every GET and PUT).
* A bad body is 400 and writes nothing: not JSON, not an object, a field of
  the wrong type (``meta_data`` must be an object or null), a ``client_id``
  containing ``/`` (Tyk answers 500 "Unmarshalling failed" to the first
  ones; its policy path may write the client on some APIs before refusing
  another).
* DELETE of a client that does not exist is 404 "OAuth Client ID not found"
  (Tyk answers 200).
* ``revoke_all`` with a secret that matches the client on none of its APIs
  is 401 "client secret is wrong" (Tyk answers 200 "tokens revoked
  successfully" and revokes nothing).
* ``revoke`` and ``revoke_all`` revoke every token of the client, refresh
  tokens and expired listings included.
* The ``tokens`` listing's ``code`` is the token's storage key: its hash with
  ``hash_keys``, else the token itself, as in Tyk.

Nothing here logs a secret or a token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import orjson

from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.auth.oauth2.model import OAuthClient, hash_secret, new_client_id, new_secret
from fastgate.auth.oauth2.protocol import ParamError, parse_form

if TYPE_CHECKING:
    from fastgate.admin.control import Control
    from fastgate.apidef import ApiSpec
    from fastgate.auth.oauth2.model import OAuthStore

__all__ = ["OAuthApi", "is_oauth2"]

UNMARSHALLING_FAILED = "Unmarshalling failed"
API_MISSING = "API doesn't exist"
NOT_OAUTH2 = "API is not OAuth2"
POLICY_MISSING = "Policy doesn't exist"
POLICY_WITHOUT_API = "Policy access rights doesn't contain API this OAuth client belongs to"
CLIENT_NOT_FOUND = "OAuth Client ID not found"
CLIENTS_NOT_FOUND = "OAuth client not found"
SCOPE_REQUIRED = "scope parameter is required"
UNKNOWN_SCOPE = "unknown scope"
MISSING_API_ID = "Missing parameter api_id"
REFRESH_API_MISSING = "API for this refresh token not found"
OAUTH_DISABLED = "OAuth is not enabled on this API"
FORM_MALFORMED = "cannot parse form. Form malformed"
TOKEN_REQUIRED = "token is required"  # noqa: S105 (a message)
CLIENT_ID_REQUIRED = "client_id is required"
CLIENT_SECRET_REQUIRED = "client_secret is required"  # noqa: S105 (a message)
CLIENT_SECRET_WRONG = "client secret is wrong"  # noqa: S105 (a message)
NO_SUCH_CLIENT = "oauth client doesn't exist"

#: Tokens per page of ``GET .../tokens?page=N`` (Tyk's).
PAGE_SIZE = 100

_NOT_FOUND = replies.error(404, "Not found")
_METHOD_NOT_ALLOWED = replies.error(405, "Method not supported")
_STRING_FIELDS = ("client_id", "secret", "redirect_uri", "api_id", "policy_id", "description")
#: Go's ``strconv.Atoi`` syntax.
_INTEGER = re.compile(r"[+-]?[0-9]+")
#: A ``%`` not followed by two hex digits: Go's ``ParseQuery`` refuses it.
_Handler = Callable[[], Coroutine[Any, Any, bytes]]


def is_oauth2(spec: ApiSpec) -> bool:
    """Whether the API is an OAuth 2.0 provider's (``use_oauth2``)."""
    return spec.auth_settings("oauth2") is not None or bool(spec.raw.get("use_oauth2"))


def _uses_jwt(spec: ApiSpec) -> bool:
    return spec.auth_settings("jwt") is not None or bool(spec.raw.get("enable_jwt"))


class OAuthApi:
    """The ``/tyk/oauth/...`` handlers (see the module docstring); each returns
    a complete response or raises :class:`AdminError` (or StoreError,
    answered 503 by the dispatcher)."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway

    @property
    def oauth(self) -> OAuthStore:
        """The provider's state (``Services.oauth``, which the gateway holds)."""
        return self.gateway.oauth

    # -- routing ---------------------------------------------------------------------

    def route(self, method: str, rest: bytes, params: dict[str, str],
              body: bytes) -> bytes | _Handler:
        """The handler for ``/tyk/oauth/<rest>`` (``rest`` without trailing
        slashes), or a finished 404/405 answer."""
        raw_parts = rest.split(b"/")
        parts: list[str] = []
        for raw in raw_parts:
            part = _segment(raw)
            if not part:
                return _NOT_FOUND  # an empty or undecodable segment names nothing
            parts.append(part)
        if parts == ["tokens"]:
            return (lambda: self.purge(params)) if method == "DELETE" else _METHOD_NOT_ALLOWED
        if parts == ["revoke"]:
            return (lambda: self.revoke(body)) if method == "POST" else _METHOD_NOT_ALLOWED
        if parts == ["revoke_all"]:
            return (lambda: self.revoke_all(body)) if method == "POST" else _METHOD_NOT_ALLOWED
        if len(parts) == 2 and parts[0] == "refresh":
            token = parts[1]
            return (lambda: self.delete_refresh(token, params)) if method == "DELETE" \
                else _METHOD_NOT_ALLOWED
        if not parts or parts[0] != "clients" or len(parts) < 2:
            return _NOT_FOUND
        return self._route_clients(method, parts[1:], params, body)

    def _route_clients(self, method: str, parts: list[str], params: dict[str, str],
                       body: bytes) -> bytes | _Handler:
        if parts == ["create"] and method == "POST":
            return lambda: self.create(body)
        # As in Tyk's router: GET .../apis/{id} before the API named "apis".
        if len(parts) == 2 and parts[0] == "apis" and method == "GET":
            client_id = parts[1]
            return lambda: self.apis_of(client_id, params)
        api_id = parts[0]
        if len(parts) == 1:
            if method == "GET":
                return lambda: self.listing(api_id)
            if method == "DELETE":  # no client named: none found
                return replies.error(404, CLIENT_NOT_FOUND)
            return _METHOD_NOT_ALLOWED
        client_id = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return lambda: self.get(api_id, client_id)
            if method == "PUT":
                return lambda: self.update(api_id, client_id, body)
            if method == "DELETE":
                return lambda: self.delete(api_id, client_id)
            return _METHOD_NOT_ALLOWED
        if len(parts) == 3 and parts[2] == "rotate":
            return (lambda: self.rotate(api_id, client_id)) if method == "PUT" \
                else _METHOD_NOT_ALLOWED
        if len(parts) == 3 and parts[2] == "tokens":
            return (lambda: self.tokens(api_id, client_id, params)) if method == "GET" \
                else _METHOD_NOT_ALLOWED
        return _NOT_FOUND

    # -- helpers ---------------------------------------------------------------------

    def _spec(self, api_id: str) -> ApiSpec | None:
        """The loaded API of that id (an active one first)."""
        found = None
        for spec in self.gateway.specs:
            if spec.api_id == api_id:
                if spec.active:
                    return spec
                found = found or spec
        return found

    async def _apis_with_client(self, client_id: str, org_id: str
                                ) -> list[tuple[ApiSpec, OAuthClient]]:
        """Tyk's ``getApisForOauthClientId``: the OAuth 2.0 APIs (of ``org_id``,
        or of every org when it is empty) that have the client."""
        found: list[tuple[ApiSpec, OAuthClient]] = []
        seen: set[str] = set()
        for spec in self.gateway.specs:
            if spec.api_id in seen or (org_id and spec.org_id != org_id) \
                    or not is_oauth2(spec):
                continue
            seen.add(spec.api_id)
            client = await self.oauth.load_client(spec.api_id, client_id)
            if client is not None:
                found.append((spec, client))
        return found

    # -- clients ---------------------------------------------------------------------

    async def create(self, body: bytes) -> bytes:
        """``POST /tyk/oauth/clients/create``."""
        fields = _client_request(body)
        client_id = fields["client_id"] or new_client_id()
        if "/" in client_id:
            raise AdminError(400, "client_id: must not contain '/'")
        if fields["public"]:
            # fastgate's: a public client (RFC 6749 §2.1) has no secret and must use PKCE.
            if fields["secret"]:
                raise AdminError(400, "secret: a public client has none")
            secret = ""
        else:
            secret = fields["secret"] or new_secret()
        targets: list[ApiSpec] = []
        if fields["api_id"]:
            spec = self._spec(fields["api_id"])
            if spec is None:
                raise AdminError(400, API_MISSING)
            if not is_oauth2(spec):
                raise AdminError(400, NOT_OAUTH2)
            targets.append(spec)
        else:
            policy = self.gateway.policies.get(fields["policy_id"])
            if policy is None:
                raise AdminError(400, POLICY_MISSING)
            rights = policy.get("access_rights")
            # Every API of the policy is checked before anything is written.
            for api_id in rights if isinstance(rights, Mapping) else ():
                spec = self._spec(str(api_id))
                if spec is None:
                    raise AdminError(400, API_MISSING)
                if is_oauth2(spec) or _uses_jwt(spec):
                    targets.append(spec)
            if not targets:
                raise AdminError(400, NOT_OAUTH2)
        secret_hash = hash_secret(secret)
        client = None
        for spec in targets:
            client = OAuthClient(
                client_id=client_id, api_id=spec.api_id, secret_hash=secret_hash,
                redirect_uri=fields["redirect_uri"], policy_id=fields["policy_id"],
                meta_data=fields["meta_data"], description=fields["description"],
                org_id=spec.org_id)
            await self.oauth.save_client(client)
        assert client is not None
        return replies.ok(client.admin_json(secret))

    async def listing(self, api_id: str) -> bytes:
        """``GET /tyk/oauth/clients/{api_id}``: every client of the API (by id)."""
        spec = self._spec(api_id)
        if spec is None:
            raise AdminError(404, CLIENTS_NOT_FOUND)
        if not is_oauth2(spec):
            return replies.ok([])  # Tyk lists the clients of OAuth 2.0 APIs only
        clients = sorted(await self.oauth.clients(api_id), key=lambda c: c.client_id)
        return replies.ok([client.admin_json() for client in clients])

    async def _client(self, api_id: str, client_id: str, missing_api: str) -> OAuthClient:
        if self._spec(api_id) is None:
            raise AdminError(404, missing_api)
        client = await self.oauth.load_client(api_id, client_id)
        if client is None:
            raise AdminError(404, CLIENT_NOT_FOUND)
        return client

    async def get(self, api_id: str, client_id: str) -> bytes:
        """``GET /tyk/oauth/clients/{api_id}/{client_id}``."""
        client = await self._client(api_id, client_id, CLIENT_NOT_FOUND)
        return replies.ok(client.admin_json())

    async def update(self, api_id: str, client_id: str, body: bytes) -> bytes:
        """``PUT /tyk/oauth/clients/{api_id}/{client_id}``."""
        fields = _client_request(body)
        spec = self._spec(api_id)
        if spec is None:
            raise AdminError(404, API_MISSING)
        policy_id = fields["policy_id"]
        if policy_id:
            policy = self.gateway.policies.get(policy_id)
            if policy is None:
                raise AdminError(404, POLICY_MISSING)
            rights = policy.get("access_rights")
            if not isinstance(rights, Mapping) or api_id not in rights:
                raise AdminError(400, POLICY_WITHOUT_API)
        client = await self._client(api_id, client_id, API_MISSING)
        updated = replace(client, redirect_uri=fields["redirect_uri"], policy_id=policy_id,
                          meta_data=fields["meta_data"], description=fields["description"])
        await self.oauth.save_client(updated)
        if client.policy_id and client.policy_id != policy_id:
            # Tokens minted with the old policy must not outlive it.
            await self.oauth.delete_client_tokens(api_id, client_id)
        return replies.ok(updated.admin_json())

    async def delete(self, api_id: str, client_id: str) -> bytes:
        """``DELETE /tyk/oauth/clients/{api_id}/{client_id}`` (the tokens' sessions stay)."""
        await self._client(api_id, client_id, CLIENT_NOT_FOUND)
        await self.oauth.delete_client(api_id, client_id)
        return replies.modified(client_id, "deleted")

    async def rotate(self, api_id: str, client_id: str) -> bytes:
        """``PUT /tyk/oauth/clients/{api_id}/{client_id}/rotate``: a new secret."""
        client = await self._client(api_id, client_id, API_MISSING)
        secret = new_secret()
        updated = self.oauth.with_secret(client, secret)
        await self.oauth.save_client(updated)
        return replies.ok(updated.admin_json(secret))

    async def tokens(self, api_id: str, client_id: str, params: Mapping[str, str]) -> bytes:
        """``GET /tyk/oauth/clients/{api_id}/{client_id}/tokens[?page=N]``:
        the client's unexpired tokens, soonest expiry first."""
        if self._spec(api_id) is None:
            raise AdminError(404, CLIENT_NOT_FOUND)
        listed = [{"code": skey, "expires": expires}
                  for skey, expires in await self.oauth.tokens(api_id, client_id)]
        page_param = params.get("page", "")
        if not page_param:
            return replies.ok(listed)
        page = int(page_param) if _INTEGER.fullmatch(page_param) else 1
        page = max(page, 1)
        start = min((page - 1) * PAGE_SIZE, len(listed))
        return replies.ok({
            "Pagination": {"page_num": page,
                           "page_total": math.ceil(len(listed) / PAGE_SIZE),
                           "page_size": PAGE_SIZE},
            "Tokens": listed[start:start + PAGE_SIZE],
        })

    async def apis_of(self, client_id: str, params: Mapping[str, str]) -> bytes:
        """``GET /tyk/oauth/clients/apis/{client_id}?orgID=``: the ids of the
        OAuth 2.0 APIs (of that org; every org when empty) having the client."""
        found = await self._apis_with_client(client_id, params.get("orgID", ""))
        return replies.ok([spec.api_id for spec, _client in found])

    # -- tokens ----------------------------------------------------------------------

    async def purge(self, params: Mapping[str, str]) -> bytes:
        """``DELETE /tyk/oauth/tokens?scope=lapsed``."""
        if "scope" not in params:
            raise AdminError(422, SCOPE_REQUIRED)
        if params["scope"] != "lapsed":
            raise AdminError(400, UNKNOWN_SCOPE)
        await self.oauth.purge_lapsed()
        return replies.status_ok("lapsed tokens purged")

    async def delete_refresh(self, token: str, params: Mapping[str, str]) -> bytes:
        """``DELETE /tyk/oauth/refresh/{token}?api_id=``."""
        api_id = params.get("api_id", "")
        if not api_id:
            raise AdminError(400, MISSING_API_ID)
        spec = self._spec(api_id)
        if spec is None:
            raise AdminError(404, REFRESH_API_MISSING)
        if not is_oauth2(spec):
            raise AdminError(400, OAUTH_DISABLED)
        await self.oauth.revoke_refresh_token(api_id, token)
        return replies.modified(token, "deleted")

    async def revoke(self, body: bytes) -> bytes:
        """``POST /tyk/oauth/revoke``: one token, on every API having the client."""
        form = _form(body)
        token = form.get("token", "")
        client_id = form.get("client_id", "")
        if not token:
            raise AdminError(400, TOKEN_REQUIRED)
        if not client_id:
            raise AdminError(400, CLIENT_ID_REQUIRED)
        found = await self._apis_with_client(client_id, form.get("org_id", ""))
        if not found:
            raise AdminError(400, NO_SUCH_CLIENT)
        hint = form.get("token_type_hint", "")
        for spec, _client in found:
            if hint != "refresh_token":
                await self.oauth.revoke_access_token(spec.api_id, token)
            if hint != "access_token":
                await self.oauth.revoke_refresh_token(spec.api_id, token)
        return replies.status_ok("token revoked successfully")

    async def revoke_all(self, body: bytes) -> bytes:
        """``POST /tyk/oauth/revoke_all``: every token of the client, on every
        API where the secret is the client's."""
        form = _form(body)
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        if not client_id:
            raise AdminError(401, CLIENT_ID_REQUIRED)
        if not secret:
            raise AdminError(401, CLIENT_SECRET_REQUIRED)
        found = await self._apis_with_client(client_id, form.get("org_id", ""))
        if not found:
            raise AdminError(404, NO_SUCH_CLIENT)
        # Every secret is checked (constant time each) before anything goes.
        matching = [spec for spec, client in found if client.secret_matches(secret)]
        if not matching:
            raise AdminError(401, CLIENT_SECRET_WRONG)
        for spec in matching:
            await self.oauth.revoke_all(spec.api_id, client_id)
        return replies.status_ok("tokens revoked successfully")


def _client_request(body: bytes) -> dict[str, Any]:
    """Tyk's ``NewClientRequest`` from a body: the string fields ("" when
    absent or null) and ``meta_data`` (a dict).  AdminError(400) otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AdminError(400, UNMARSHALLING_FAILED) from None
    if not isinstance(data, dict):
        raise AdminError(400, UNMARSHALLING_FAILED)
    fields: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = data.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise AdminError(400, f"{UNMARSHALLING_FAILED}: {name}: expected a string")
        fields[name] = value
    meta = data.get("meta_data")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise AdminError(400, f"{UNMARSHALLING_FAILED}: meta_data: expected an object")
    fields["meta_data"] = meta
    public = data.get("public", False)
    if not isinstance(public, bool):
        raise AdminError(400, f"{UNMARSHALLING_FAILED}: public: expected a boolean")
    fields["public"] = public
    return fields


def _form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each
    field (Go's ``PostFormValue``); AdminError(400) for what Go's
    ``ParseForm`` refuses (bad ``%`` escapes, ``;``) or text that is not UTF-8."""
    try:
        pairs = parse_form(body)
    except ParamError:
        raise AdminError(400, FORM_MALFORMED) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def _segment(raw: bytes) -> str | None:
    """A percent-decoded path segment, or None when it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
