"""OAuth 2.0: fastgate as the authorization server (Tyk's ``use_oauth2``).

* :mod:`.config` -- the API definition's provider settings;
* :mod:`.model` -- clients, codes, refresh tokens and token listings in the
  store's record tables; access tokens issued as keys;
* :mod:`.bearer` -- the auth method: ``Authorization: Bearer <token>``;
* :mod:`.endpoints` -- ``/oauth/authorize``, ``/oauth/token``, revocation,
  introspection and metadata under the API's listen path;
* :mod:`.notifications` -- token changes announced to the API owner.
"""

from __future__ import annotations

from fastgate.auth.method import AuthMethodSpec
from fastgate.auth.oauth2.bearer import OAuthBearer
from fastgate.auth.oauth2.config import OAuthApiConfig, parse_config

__all__ = ["METHOD", "OAuthApiConfig", "OAuthBearer"]

METHOD = AuthMethodSpec(
    name="oauth2",
    enabled_by=("use_oauth2",),
    order=10,
    identity="oauth_key",
    fields=frozenset({"oauth_meta", "notifications"}),
    parse=parse_config,
    build=OAuthBearer,
)
