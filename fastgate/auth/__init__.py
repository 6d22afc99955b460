"""Authentication methods: one module (or folder) each, and the registry.

:data:`REGISTRY` is every method Tyk has, in Tyk's chain order (OAuth 2.0 →
external OAuth → Basic → HMAC → JWT → OIDC → custom plugin → auth token; all
enabled ones must pass).  An implemented method is its module's ``METHOD``
(see :mod:`fastgate.auth.method` for what an entry declares); a method not
implemented yet is an entry without a parser, so that the definition loader
knows its switches and settings and refuses an API that enables it (501)
instead of serving it open.

The definition loader (:mod:`fastgate.apidef`) and the chain builder
(:mod:`fastgate.middleware.chain`) read only this registry.  Adding a method
is its module plus one line here: its ``METHOD`` in place of its pending
entry.

Shared by the methods: :mod:`.credentials` (a credential from a header,
parameter or cookie), :mod:`.identity` (candidate key names, the session
lookup, the hand-off to the request).
"""

from __future__ import annotations

from fastgate.auth import auth_token, basic_auth, custom, external_oauth, hmac, jwt, oauth2
from fastgate.auth.hmac import message_signatures
from fastgate.auth.method import AuthMethod, AuthMethodSpec

__all__ = ["REGISTRY", "AuthMethod", "AuthMethodSpec", "by_identity"]

REGISTRY: tuple[AuthMethodSpec, ...] = tuple(sorted((
    oauth2.METHOD,
    external_oauth.METHOD,
    basic_auth.METHOD,
    hmac.METHOD,
    message_signatures.METHOD,
    jwt.METHOD,
    AuthMethodSpec("oidc", ("use_openid",), 60, "oidc_user",
                   frozenset({"openid_options", "scopes", "idp_client_id_mapping_disabled"})),
    custom.METHOD,
    # Go plugins: fastgate runs none (Python plugins are its equivalent).
    AuthMethodSpec("go_plugin", ("use_go_plugin_auth",), 70, "custom_auth"),
    auth_token.METHOD,
), key=lambda method: method.order))


def by_identity(identity: str) -> AuthMethodSpec | None:
    """The method a ``base_identity_provided_by`` value names."""
    for method in REGISTRY:
        if method.identity == identity and identity:
            return method
    return None
