"""The OAuth 2.0 provider's endpoints, under each API's listen path.

One chain step (:class:`OAuthEndpoints`), before authentication, answers
these paths of an API with ``use_oauth2`` (each also with a trailing ``/``);
every other request goes on to the bearer-token check:

=====================================  ==========  ==========================================
path under the listen path             methods     what
=====================================  ==========  ==========================================
``/oauth/authorize``                   GET, POST   checks the client, redirect URI and PKCE,
                                                   then 307 to ``auth_login_redirect``
``/tyk/oauth/authorize-client``        POST        the login service (``X-Tyk-Authorization``:
                                                   the gateway secret) approves: a code, or
                                                   a token (``response_type=token``)
``/oauth/token``                       POST        grants ``authorization_code``,
                                                   ``refresh_token``, ``client_credentials``,
                                                   ``password`` (GET: ``invalid_request``)
``/oauth/revoke``                      POST        RFC 7009 / Tyk: one token (client auth
                                                   checked when given or required)
``/oauth/revoke_all``                  POST        every token of a client (its secret)
``/oauth/introspect``                  POST        RFC 7662 (fastgate's): a confidential
                                                   client of the API asks about the API's
                                                   tokens
``/.well-known/oauth-authorization-    GET         RFC 8414 metadata (fastgate's)
server``
=====================================  ==========  ==========================================

Another method gets 405 ``{"status":"error","message":"Method not supported"}``.

Errors of ``/oauth/token`` and ``/oauth/introspect`` are RFC 6749's
``{"error","error_description"}`` with osin's texts; of ``/oauth/authorize``
Tyk's ``{"status":"error","message":<description>}``.  Their status is
``oauth_error_status_code`` when set (Tyk's default is 403 for all), else
(fastgate's default) RFC 6749's: 400, 401 with ``WWW-Authenticate: Basic``
for a client that failed to authenticate, 500 for ``server_error``.  The
error *codes* follow the same switch where Tyk's differ from the RFC: an
unknown client is ``server_error`` and a wrong secret ``unauthorized_client``
in Tyk's mode, ``invalid_client`` in RFC mode.

Clients authenticate with ``Authorization: Basic`` (RFC 6749 §2.3.1) or,
fastgate's addition, ``client_id``/``client_secret`` in the body
(``client_secret_post``) -- not both.  A public client (no secret) sends its
``client_id`` alone and must use PKCE.  Tokens, codes and secrets are never
logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from fastgate import responses
from fastgate._core import compare
from fastgate.auth.basic_auth import user_keys
from fastgate.auth.identity import find_session
from fastgate.auth.oauth2 import notifications
from fastgate.auth.oauth2.model import Authorization, IssuedToken, OAuthClient, OAuthError
from fastgate.auth.oauth2.protocol import (
    DESCRIPTIONS,
    PKCE_METHOD,
    ParamError,
    basic_credential_forms,
    pkce_matches,
    pkce_value_ok,
    request_params,
    validate_redirect,
)
from fastgate.services import store_unavailable
from fastgate.session import parse_session
from fastgate.session.basic import check_password
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.auth.oauth2.config import OAuthApiConfig
    from fastgate.services import Outcome, Request, Services

__all__ = ["MAX_REQUEST_BODY", "OAuthEndpoints"]

#: The largest request body the endpoints read (a token request is tiny;
#: ``key_rules`` may hold a whole session).
MAX_REQUEST_BODY = 64 * 1024

_NO_STORE = ((b"Cache-Control", b"no-store"), (b"Pragma", b"no-cache"))
_GET = frozenset({b"GET"})
_POST = frozenset({b"POST"})
_GET_POST = frozenset({b"GET", b"POST"})
TOO_LARGE = responses.json_response(
    413, {"status": "error", "message": "Request body too large for the OAuth endpoint"})
ADMIN_REFUSED = responses.json_response(
    403, {"status": "error",
          "message": "Attempted administrative access with invalid or missing key!"})
_MALFORMED = "error parsing form. Form malformed"
_WWW_AUTHENTICATE = (b"WWW-Authenticate", b'Basic realm="oauth"')


def _method_not_supported(allowed: frozenset[bytes]) -> bytes:
    return responses.json_response(
        405, {"status": "error", "message": "Method not supported"},
        extra_headers=((b"Allow", b", ".join(sorted(allowed))),))


def _status_answer(status: int, message: str) -> bytes:
    state = "ok" if status < 400 else "error"
    return responses.json_response(status, {"status": state, "message": message})


class _Refusal(Exception):
    """An OAuth error to answer: ``error`` code, description, and whether the
    client failed to authenticate (RFC 6749 §5.2: 401)."""

    def __init__(self, error: str, description: str = "", *, client_auth: bool = False,
                 redirect: str = "", state: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.description = description or DESCRIPTIONS.get(error, error)
        self.client_auth = client_auth
        #: Where the authorize-client answer tells the login service to send
        #: the user with the error (once the redirect URI is known to be good).
        self.redirect = redirect
        self.state = state


Handler = Callable[["Request", Mapping[str, str], "bytes | None"], Awaitable[bytes]]


class OAuthEndpoints:
    """Answers the provider's paths under one API's listen path (see the module)."""

    name: ClassVar[str] = "oauth_endpoints"

    def __init__(self, spec: ApiSpec, config: OAuthApiConfig, services: Services) -> None:
        self.spec = spec
        self.config = config
        self.services = services
        self.oauth = services.oauth
        self.settings = services.config.oauth
        self.secret = services.config.secret.encode("utf-8")
        self.base = spec.listen_path.rstrip("/")
        routes: dict[bytes, tuple[frozenset[bytes], Handler, bool]] = {}
        # (path, methods, handler, whether the request body is read)
        for path, methods, handler, reads in (
                ("/oauth/authorize", _GET_POST, self._authorize_passthrough, True),
                ("/tyk/oauth/authorize-client", _POST, self._authorize_client, True),
                ("/oauth/token", _GET_POST, self._token, True),
                ("/oauth/revoke", _POST, self._revoke, True),
                ("/oauth/revoke_all", _POST, self._revoke_all, True),
                ("/oauth/introspect", _POST, self._introspect, True),
                ("/.well-known/oauth-authorization-server", _GET, self._metadata, False)):
            full = (self.base + path).encode("ascii")
            routes[full] = routes[full + b"/"] = (methods, handler, reads)
        self.routes = routes

    # -- the step ------------------------------------------------------------------------

    def process(self, req: Request) -> Outcome:
        route = self.routes.get(req.path)
        if route is None:
            return None
        methods, handler, reads = route
        if req.method not in methods:
            return _method_not_supported(methods)
        body_pending: Awaitable[bytes | None] | None = None
        if reads and req.method == b"POST":
            length = req.header(b"content-length")
            if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BODY:
                return TOO_LARGE
            body_pending = req.read_body()
        return self._run(req, handler, body_pending)

    async def _run(self, req: Request, handler: Handler,
                   body_pending: Awaitable[bytes | None] | None) -> bytes:
        body: bytes | None = None
        if body_pending is not None:
            body = await body_pending
            if body is None or len(body) > MAX_REQUEST_BODY:
                return TOO_LARGE
        try:
            params = request_params(req.query, body, req.header(b"content-type"))
        except ParamError as exc:
            params = None
            problem = str(exc)
        try:
            if params is None:
                return self._bad_params(req, handler, problem)
            return await handler(req, params, body)
        except StoreError as exc:
            return store_unavailable(exc)

    def _bad_params(self, req: Request, handler: Handler, problem: str) -> bytes:
        if handler == self._authorize_client and not self._admin_ok(req):
            return ADMIN_REFUSED  # nothing but the 403 to one without the secret
        if handler in (self._revoke, self._revoke_all):
            return _status_answer(400, _MALFORMED)
        if handler == self._authorize_passthrough:
            return self._rest_error(_Refusal("invalid_request", f"invalid_request: {problem}"))
        return self._oauth_error(_Refusal("invalid_request", problem))

    # -- answers ------------------------------------------------------------------------

    def _error_status(self, refusal: _Refusal) -> int:
        if self.settings.error_status_code:
            return self.settings.error_status_code
        if refusal.client_auth:
            return 401
        return 500 if refusal.error == "server_error" else 400

    def _oauth_error(self, refusal: _Refusal, extra: Mapping[str, str] | None = None) -> bytes:
        status = self._error_status(refusal)
        body: dict[str, str] = {"error": refusal.error,
                                "error_description": refusal.description}
        if extra:
            body.update(extra)
        challenge = status == 401 and not self.settings.error_status_code
        headers = _NO_STORE + ((_WWW_AUTHENTICATE,) if challenge else ())
        return responses.json_response(status, body, extra_headers=headers)

    def _rest_error(self, refusal: _Refusal) -> bytes:
        return responses.json_response(
            self._error_status(refusal), {"status": "error", "message": refusal.description},
            extra_headers=_NO_STORE)

    def _tyk_mode(self) -> bool:
        return self.settings.error_status_code != 0

    # -- clients ---------------------------------------------------------------------------

    async def _client(self, client_id: str) -> OAuthClient:
        """The client named in an authorization request (not authenticated)."""
        if not client_id:
            raise _Refusal("invalid_request", "client_id is required")
        client = await self.oauth.load_client(self.spec.api_id, client_id)
        if client is None:
            # Tyk's storage answers an error for an unknown client: osin's server_error.
            raise _Refusal("server_error" if self._tyk_mode() else "unauthorized_client")
        if not client.redirect_uri:
            raise _Refusal("unauthorized_client")
        return client

    async def _authenticate(self, req: Request, params: Mapping[str, str], *,
                            public_ok: bool) -> OAuthClient:
        """The client of a token or introspection request, authenticated."""
        header = req.header(b"authorization")
        try:
            readings = basic_credential_forms(header) if header is not None else ()
        except ParamError as exc:
            raise _Refusal("invalid_request", str(exc)) from None
        body_id = params.get("client_id", "")
        body_secret = params.get("client_secret")
        if readings:
            if body_secret is not None:
                raise _Refusal("invalid_request", "the client authenticates once: "
                               "Authorization: Basic or client_secret in the body, not both")
            if body_id and all(body_id != reading[0] for reading in readings):
                raise _Refusal("invalid_request", "client_id differs from the Basic "
                               "credentials")
        else:
            readings = ((body_id, body_secret or ""),)
        tyk = self._tyk_mode()
        client: OAuthClient | None = None
        for client_id in dict.fromkeys(reading[0] for reading in readings):
            if client_id:
                client = await self.oauth.load_client(self.spec.api_id, client_id)
            if client is not None:
                break
        if client is None:
            if not any(reading[0] for reading in readings):
                raise _Refusal("invalid_request" if tyk else "invalid_client",
                               client_auth=not tyk)
            raise _Refusal("server_error" if tyk else "invalid_client", client_auth=not tyk)
        secrets = [secret for client_id, secret in readings if client_id == client.client_id]
        if client.public:
            if any(secrets) or not public_ok:
                raise _Refusal("unauthorized_client" if tyk else "invalid_client",
                               client_auth=not tyk)
        elif not [secret for secret in secrets if client.secret_matches(secret)]:
            raise _Refusal("unauthorized_client" if tyk else "invalid_client",
                           client_auth=not tyk)
        if not client.redirect_uri:
            raise _Refusal("unauthorized_client")  # Tyk: such a client fails every grant
        return client

    # -- authorization ----------------------------------------------------------------------

    async def _check_authorization(self, params: Mapping[str, str]
                                   ) -> tuple[OAuthClient, str, Authorization]:
        """osin's ``HandleAuthorizeRequest``: response type, client, redirect
        URI, PKCE.  The client, the response type and the authorization."""
        response_type = params.get("response_type", "")
        if not self.config.response_type_allowed(response_type):
            raise _Refusal("unsupported_response_type")
        client = await self._client(params.get("client_id", ""))
        registered = client.redirect_uris(self.settings.redirect_uri_separator)
        redirect = params.get("redirect_uri", "")
        given = bool(redirect)
        if not redirect:
            if len(registered) != 1:
                raise _Refusal("invalid_request", "redirect_uri is required: the client "
                               "has several")
            redirect = registered[0]
        if not validate_redirect(registered, redirect):
            raise _Refusal("invalid_request")
        state = params.get("state", "")
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "")
        if response_type == "code":
            if challenge or method:
                if method != PKCE_METHOD:
                    raise _Refusal("invalid_request", "code_challenge_method must be S256 "
                                   "(plain is not accepted)", redirect=redirect, state=state)
                if not pkce_value_ok(challenge):
                    raise _Refusal("invalid_request", "code_challenge must be 43 to 128 "
                                   "characters of [A-Za-z0-9-._~]", redirect=redirect,
                                   state=state)
            elif client.public or self.config.require_pkce:
                raise _Refusal("invalid_request", "code_challenge is required (PKCE, S256)",
                               redirect=redirect, state=state)
        authorization = Authorization(
            client_id=client.client_id, redirect_uri=redirect,
            scope=params.get("scope", ""), code_challenge=challenge,
            code_challenge_method=method if challenge else "", redirect_uri_given=given)
        return client, response_type, authorization

    async def _authorize_passthrough(self, req: Request, params: Mapping[str, str],
                                     body: bytes | None) -> bytes:
        """``/oauth/authorize``: a good request goes on to the login page (307)."""
        try:
            await self._check_authorization(params)
        except _Refusal as refusal:
            return self._rest_error(refusal)
        target = self.config.auth_login_redirect
        if not target:
            return _status_answer(500, "the API has no oauth_meta.auth_login_redirect")
        location = target.encode("utf-8")
        if req.method == b"GET" and req.query:
            # The query as the client sent it, byte for byte.
            location += (b"&" if b"?" in location else b"?") + req.query
        if b"\r" in location or b"\n" in location:
            return _status_answer(500, "oauth_meta.auth_login_redirect is not a URL")
        return b"".join((responses.STATUS_LINES[307], b"Location: ", location, b"\r\n",
                         b"Cache-Control: no-store\r\nContent-Length: 0\r\n\r\n"))

    def _admin_ok(self, req: Request) -> bool:
        """Whether ``X-Tyk-Authorization`` is the gateway secret (constant time)."""
        supplied = req.header(b"x-tyk-authorization") or b""
        return bool(supplied) and compare.constant_time_equals(self.secret, supplied)

    async def _authorize_client(self, req: Request, params: Mapping[str, str],
                                body: bytes | None) -> bytes:
        """``/tyk/oauth/authorize-client``: the login service grants access."""
        if not self._admin_ok(req):
            return ADMIN_REFUSED
        state = params.get("state", "")
        try:
            client, response_type, authorization = await self._check_authorization(params)
            key_rules = _key_rules(params.get("key_rules", ""))
        except _Refusal as refusal:
            extra: dict[str, str] = {}
            if refusal.state or state:
                extra["state"] = refusal.state or state
            if refusal.redirect:
                extra["redirect_to"] = _with_params(
                    refusal.redirect, {"error": refusal.error,
                                       "error_description": refusal.description, **extra})
            return self._oauth_error(refusal, extra)
        if response_type == "code":
            code = await self.oauth.new_code(self.spec.api_id,
                                             replace(authorization, key_rules=key_rules))
            answer: dict[str, str] = {"code": code}
            if state:
                answer["state"] = state
            answer["redirect_to"] = _with_params(authorization.redirect_uri, answer)
            return responses.json_response(200, answer, extra_headers=_NO_STORE)
        # The implicit grant: the token itself, in the redirect's fragment.
        try:
            issued = await self.oauth.issue(client, key_rules=key_rules,
                                            scope=authorization.scope, refresh=False)
        except OAuthError as exc:
            return self._oauth_error(_Refusal(exc.error, exc.description))
        token_answer = issued.response(state)
        token_answer["redirect_to"] = _with_params(
            authorization.redirect_uri, {k: str(v) for k, v in token_answer.items()},
            fragment=True)
        notifications.send(self.services, self.config.notifications,
                           notifications.message(new_token=issued.access_token))
        return responses.json_response(200, token_answer, extra_headers=_NO_STORE)

    # -- tokens -----------------------------------------------------------------------------------

    async def _token(self, req: Request, params: Mapping[str, str],
                     body: bytes | None) -> bytes:
        """``/oauth/token``: osin's ``HandleAccessRequest`` and Tyk's grants."""
        if req.method != b"POST":
            return self._oauth_error(_Refusal("invalid_request", "the token endpoint takes "
                                              "POST"))
        grant_type = params.get("grant_type", "")
        try:
            if not self.config.grant_allowed(grant_type):
                raise _Refusal("unsupported_grant_type")
            client = await self._authenticate(
                req, params, public_ok=grant_type in ("authorization_code", "refresh_token"))
            if grant_type == "authorization_code":
                issued, note = await self._code_grant(client, params)
            elif grant_type == "refresh_token":
                issued, note = await self._refresh_grant(client, params)
            elif grant_type == "client_credentials":
                issued = await self.oauth.issue(client, key_rules=None,
                                                scope=params.get("scope", ""), refresh=False)
                note = notifications.message(new_token=issued.access_token)
            else:
                issued, note = await self._password_grant(client, params)
        except _Refusal as refusal:
            return self._oauth_error(refusal)
        except OAuthError as exc:
            return self._oauth_error(_Refusal(exc.error, exc.description))
        notifications.send(self.services, self.config.notifications, note)
        return responses.json_response(200, issued.response(), extra_headers=_NO_STORE)

    def _refresh_allowed(self) -> bool:
        # A refresh token the API would not accept is not handed out.
        return self.config.grant_allowed("refresh_token")

    async def _code_grant(self, client: OAuthClient, params: Mapping[str, str]
                          ) -> tuple[IssuedToken, dict[str, str]]:
        code = params.get("code", "")
        if not code:
            raise _Refusal("invalid_grant")
        authorization = await self.oauth.take_code(self.spec.api_id, code)
        if authorization is None or authorization.client_id != client.client_id:
            raise _Refusal("invalid_grant")
        redirect = params.get("redirect_uri", "")
        if not redirect:
            registered = client.redirect_uris(self.settings.redirect_uri_separator)
            redirect = registered[0] if registered else ""
        if redirect != authorization.redirect_uri:
            raise _Refusal("invalid_request", "redirect_uri differs from the authorization "
                           "request's")
        verifier = params.get("code_verifier", "")
        if authorization.code_challenge:
            if not verifier:
                raise _Refusal("invalid_request", "code_verifier is required (PKCE)")
            if not pkce_value_ok(verifier):
                raise _Refusal("invalid_request", "code_verifier must be 43 to 128 "
                               "characters of [A-Za-z0-9-._~]")
            if not pkce_matches(verifier, authorization.code_challenge):
                raise _Refusal("invalid_grant", "code_verifier does not match the "
                               "code_challenge")
        elif verifier:
            # OAuth 2.1 §4.1.3: a verifier for a code issued without a challenge.
            raise _Refusal("invalid_grant", "the authorization request had no "
                           "code_challenge")
        if client.public and not authorization.code_challenge:
            raise _Refusal("invalid_grant", "a public client's code needs PKCE")
        issued = await self.oauth.issue(client, key_rules=authorization.key_rules,
                                        scope=authorization.scope,
                                        refresh=self._refresh_allowed())
        return issued, notifications.message(new_token=issued.access_token,
                                             refresh_token=issued.refresh_token,
                                             auth_code=code)

    async def _refresh_grant(self, client: OAuthClient, params: Mapping[str, str]
                             ) -> tuple[IssuedToken, dict[str, str]]:
        token = params.get("refresh_token", "")
        if not token:
            raise _Refusal("invalid_grant")
        grant = await self.oauth.refresh_grant(self.spec.api_id, token)
        if grant is None:
            raise _Refusal("invalid_grant")
        if grant.client_id != client.client_id:
            raise _Refusal("invalid_client", client_auth=not self._tyk_mode())
        asked = params.get("scope", "")
        if asked and not set(asked.split()) <= set(grant.scope.split()):
            raise _Refusal("invalid_scope", "the scope asked for is more than the refresh "
                           "token's")
        # RFC 6749 §6: a scope given narrows the new tokens (osin's too).
        issued = await self.oauth.rotate(client, token, scope=asked or None)
        if issued is None:  # used meanwhile (by a concurrent request, on any node)
            raise _Refusal("invalid_grant")
        return issued, notifications.message(new_token=issued.access_token,
                                             refresh_token=issued.refresh_token,
                                             old_refresh_token=token)

    async def _password_grant(self, client: OAuthClient, params: Mapping[str, str]
                              ) -> tuple[IssuedToken, dict[str, str]]:
        username = params.get("username", "")
        password = params.get("password", "")
        if not username or not password:
            raise _Refusal("invalid_grant")
        services = self.services
        candidates = user_keys(self.spec.org_id, username, hash_keys=services.hash_keys,
                               hash_key_function=services.hash_key_function)
        found: Any = find_session(services.sessions, candidates)
        if found is not None and not isinstance(found, tuple):
            found = await found
        if found is None or found[1].inactive:
            raise _Refusal("access_denied")
        expires = found[1].session.get("expires")
        if isinstance(expires, int | float) and 0 < expires <= services.clock():
            raise _Refusal("access_denied")  # an expired user (fastgate differs: Tyk issues)
        user = found[1].session
        loop = asyncio.get_running_loop()
        # bcrypt is deliberately slow: never on the event loop.
        if not await loop.run_in_executor(None, check_password,
                                          password.encode("utf-8"), user):
            raise _Refusal("access_denied")
        rules = {name: value for name, value in user.items() if name != "basic_auth_data"}
        api_id = self.spec.api_id
        previous = await self.oauth.user_token(api_id, client.client_id, username)
        if previous is not None:
            await self.oauth.delete_access(api_id, client.client_id, previous)
        issued = await self.oauth.issue(client, key_rules=rules, scope=params.get("scope", ""),
                                        refresh=self._refresh_allowed(), username=username)
        return issued, notifications.message(new_token=issued.access_token,
                                             refresh_token=issued.refresh_token)

    # -- revocation ---------------------------------------------------------------------------

    async def _revoke(self, req: Request, params: Mapping[str, str],
                      body: bytes | None) -> bytes:
        """``/oauth/revoke`` (Tyk's; RFC 7009's answer: 200 for an unknown
        token).  Client credentials, when presented (or required by
        ``oauth_meta.revoke_requires_client_auth``), are checked, and then
        only that client's tokens are revoked (another's is left alone, with
        the same 200, RFC 7009 §2.2)."""
        token = params.get("token", "")
        if not token:
            return _status_answer(400, "token is required")
        header = req.header(b"authorization")
        presented = (header is not None and header[:6].lower() == b"basic ") \
            or "client_secret" in params
        owner: str | None = None
        if presented or self.config.revoke_requires_client_auth:
            try:
                owner = (await self._authenticate(req, params, public_ok=True)).client_id
            except _Refusal as refusal:
                return self._oauth_error(refusal)
        hint = params.get("token_type_hint", "")
        api_id = self.spec.api_id
        if hint != "refresh_token":
            await self.oauth.revoke_access_token(api_id, token, owner)
        if hint != "access_token":
            await self.oauth.revoke_refresh_token(api_id, token, owner)
        return _status_answer(200, "token revoked successfully")

    async def _revoke_all(self, req: Request, params: Mapping[str, str],
                          body: bytes | None) -> bytes:
        """``/oauth/revoke_all``: every token of the client whose secret this is."""
        client_id = params.get("client_id", "")
        secret = params.get("client_secret", "")
        if not client_id:
            return _status_answer(401, "client_id is required")
        if not secret:
            return _status_answer(401, "client_secret is required")
        client = await self.oauth.load_client(self.spec.api_id, client_id)
        if client is None:
            return _status_answer(404, "error getting oauth client")
        if not client.secret_matches(secret):
            return _status_answer(401, "client secret is wrong")
        await self.oauth.revoke_all(self.spec.api_id, client_id)
        return _status_answer(200, "tokens revoked successfully")

    # -- fastgate's additions ------------------------------------------------------------------

    async def _introspect(self, req: Request, params: Mapping[str, str],
                          body: bytes | None) -> bytes:
        """RFC 7662: a confidential client of this API (a resource server, or
        the client itself) asks whether a token is active.  Tokens issued on
        this API are answered for; any other token is inactive."""
        try:
            await self._authenticate(req, params, public_ok=False)
            token = params.get("token", "")
            if not token:
                raise _Refusal("invalid_request", "token is required")
        except _Refusal as refusal:
            return self._oauth_error(refusal)
        # RFC 7662 §2.1: the hint says which kind to try first, then the other.
        kinds = (self._introspect_refresh, self._introspect_access) \
            if params.get("token_type_hint") == "refresh_token" \
            else (self._introspect_access, self._introspect_refresh)
        answer: dict[str, Any] | None = None
        for kind in kinds:
            answer = await kind(token)
            if answer is not None:
                break
        return responses.json_response(200, answer or {"active": False},
                                       extra_headers=_NO_STORE)

    async def _introspect_access(self, token: str) -> dict[str, Any] | None:
        skey = self.oauth.access_key(token)
        data = await self.oauth.store.get_session(skey)
        if data is None:
            return None
        try:
            session = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        client_id = session.get("oauth_client_id") if isinstance(session, dict) else None
        if not isinstance(client_id, str) or not client_id:
            return None  # a key, not a token of this provider
        expires = session.get("expires")
        if not isinstance(expires, int) or (0 < expires <= self.services.clock()) \
                or session.get("is_inactive"):
            return None
        api_id = self.spec.api_id
        # Issued on this API (its client is this API's, and still exists).
        if await self.oauth.load_client(api_id, client_id) is None:
            return None
        listing = await self.oauth.token_listing(api_id, client_id, skey) or {}
        answer: dict[str, Any] = {"active": True, "client_id": client_id,
                                  "token_type": "bearer"}
        if expires:
            answer["exp"] = expires
        if isinstance(listing.get("iat"), int):
            answer["iat"] = listing["iat"]
        if listing.get("scope"):
            answer["scope"] = listing["scope"]
        sub = listing.get("username") or session.get("alias")
        if isinstance(sub, str) and sub:
            answer["sub"] = sub
            answer["username"] = sub
        return answer

    async def _introspect_refresh(self, token: str) -> dict[str, Any] | None:
        grant = await self.oauth.refresh_grant(self.spec.api_id, token)
        if grant is None:
            return None
        answer: dict[str, Any] = {"active": True, "client_id": grant.client_id,
                                  "token_type": "refresh_token"}
        if grant.scope:
            answer["scope"] = grant.scope
        if grant.username:
            answer["sub"] = answer["username"] = grant.username
        return answer

    async def _metadata(self, req: Request, params: Mapping[str, str],
                        body: bytes | None) -> bytes:
        """RFC 8414: where the endpoints are and what they support."""
        host = (req.header(b"host") or b"").decode("latin-1")
        scheme = "https" if req.tls else "http"
        issuer = f"{scheme}://{host}{self.base}"
        config = self.config
        document: dict[str, Any] = {"issuer": issuer}
        if config.allowed_authorize_types:
            document["authorization_endpoint"] = issuer + "/oauth/authorize"
        document.update({
            "token_endpoint": issuer + "/oauth/token",
            "revocation_endpoint": issuer + "/oauth/revoke",
            "introspection_endpoint": issuer + "/oauth/introspect",
            "grant_types_supported": [*config.allowed_access_types,
                                      *(["implicit"] if config.response_type_allowed("token")
                                        else [])],
            "response_types_supported": list(config.allowed_authorize_types),
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                           "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                              "client_secret_post"],
            "code_challenge_methods_supported": [PKCE_METHOD],
        })
        return responses.json_response(200, document)


def _key_rules(text: str) -> dict[str, Any] | None:
    """The ``key_rules`` session of an authorize-client request (None: the
    client's policy decides).  **fastgate differs**: rules that do not parse
    are refused (Tyk falls back to the policy, silently)."""
    if not text:
        return None
    try:
        rules = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _Refusal("invalid_request", "key_rules is not JSON") from None
    if not isinstance(rules, dict):
        raise _Refusal("invalid_request", "key_rules must be a session object")
    try:
        parse_session(dict(rules))
    except ValueError as exc:
        raise _Refusal("invalid_request", f"key_rules is not a valid session: {exc}") \
            from None
    return rules


def _with_params(uri: str, values: Mapping[str, str], *, fragment: bool = False) -> str:
    """``uri`` with ``values`` added to its query (or set as its fragment)."""
    parts = urlsplit(uri)
    encoded = urlencode(values)
    if fragment:
        return urlunsplit(parts._replace(fragment=encoded))
    query = parts.query + "&" + encoded if parts.query else encoded
    return urlunsplit(parts._replace(query=query))

