"""Using a token the provider issued: ``Authorization: Bearer <token>``
(Tyk's ``Oauth2KeyExists``).

Where the token is read: ``auth_configs.oauth`` (header ``Authorization``
by default; a query parameter or cookie when configured, cookie > param >
header as for every method).  Answers, Tyk's:

* no header, or a header without a space: 400 "Authorization field missing";
* a scheme other than ``Bearer`` (any case): 400 "Bearer token malformed";
* no session for the token: 403 "Key not authorised";
* the session's ``oauth_client_id`` names no client of this API (the client
  was deleted, or the key was not issued by this API's provider): 403 "Key
  not authorised. OAuth client access was revoked".

The token is a key like any other: found where the auth token's keys are
(:func:`fastgate.auth.auth_token.token_candidates`), its session checked and
limited by the rest of the chain -- rate limits and quotas apply per token,
so per client or user.  The client check is answered from the worker's
client cache, which an ``oauth-client`` store event clears on every node
(Tyk re-reads the client every second).

**fastgate differs**: a token in a query parameter or a cookie is the token
itself (``Bearer `` optional); Tyk applies the header's ``Bearer <token>``
rule to those values too, so they never work there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fastgate.auth.auth_token import token_candidates
from fastgate.auth.identity import Found, Identity, find_session
from fastgate.auth.oauth2.model import OAuthClient
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.auth.oauth2.config import OAuthApiConfig
    from fastgate.services import Outcome, Request, Services

__all__ = ["CLIENT_REVOKED", "MALFORMED", "MISSING", "NOT_FOUND", "OAuthBearer"]

MISSING = error_response(400, "Authorization field missing")
MALFORMED = error_response(400, "Bearer token malformed")
NOT_FOUND = error_response(403, "Key not authorised")
CLIENT_REVOKED = error_response(403, "Key not authorised. OAuth client access was revoked")


def _token(entry: CachedSession) -> bool:
    """A Basic-auth user's session is never a bearer token."""
    return not entry.basic_user


class OAuthBearer:
    """Finds the session of the request's access token (see the module docstring)."""

    name: ClassVar[str] = "oauth2"

    def __init__(self, spec: ApiSpec, config: OAuthApiConfig, services: Services) -> None:
        credential = config.credential
        self.source = credential.source(strip=spec.strip_auth_data, bearer=False)
        #: The header's lower-cased name (None when ``disable_header``).
        self.header = self.source.header
        #: Only the header is read, and nothing stripped: its value is the credential.
        self.header_only = self.header is not None and self.source.param is None \
            and self.source.cookie is None and not self.source.strip
        self.sessions = services.sessions
        self.clients = services.oauth
        self.api_id = spec.api_id
        self.names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                      hash_function=services.hash_key_function)
        self.identity = Identity(spec, "oauth_key")

    def present(self, req: Request) -> bool:
        """Whether the request carries a token where it is read (``auth_mode: any``)."""
        return bool(self.source.peek(req))

    def _credential(self, req: Request) -> bytes:
        """The token, or one of the prepared refusals :data:`MISSING` and
        :data:`MALFORMED` (told apart by identity)."""
        header = req.header(self.header) if self.header is not None else None
        value = header if self.header_only else self.source.read(req)
        if not value:
            return MISSING
        if value == header:
            scheme, space, rest = value.partition(b" ")
            if not space:
                return MISSING
            if scheme.lower() != b"bearer":
                return MALFORMED
            return rest.split(b" ", 1)[0]
        # A query parameter or cookie: the token itself, "Bearer " optional.
        scheme, space, rest = value.partition(b" ")
        if space and scheme.lower() == b"bearer":
            return rest.strip()
        return value

    def process(self, req: Request) -> Outcome:
        token = self._credential(req)
        if token is MISSING or token is MALFORMED:
            return token
        if not token:
            return NOT_FOUND
        try:
            search = find_session(self.sessions, self.names.of(token), _token)
        except StoreError as exc:
            return store_unavailable(exc)
        if search is None or search.__class__ is tuple:
            return self._found(req, search)  # found in the cache
        return then(search, lambda found: self._found(req, found))

    def _found(self, req: Request, found: Found) -> Outcome:
        if found is None:
            return NOT_FOUND
        client_id = found[1].session.get("oauth_client_id")
        if not isinstance(client_id, str) or not client_id:
            return CLIENT_REVOKED
        try:
            client = self.clients.client(self.api_id, client_id)
        except StoreError as exc:
            return store_unavailable(exc)
        if client is None:
            return CLIENT_REVOKED
        if client.__class__ is OAuthClient:
            return self.identity.accept(req, found)
        return then(client, lambda known: self._client(req, found, known))

    def _client(self, req: Request, found: tuple[str, CachedSession],
                client: OAuthClient | None) -> Outcome:
        if client is None:
            return CLIENT_REVOKED
        return self.identity.accept(req, found)
