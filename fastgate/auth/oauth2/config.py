"""The OAuth 2.0 provider settings of an API definition (Tyk Classic), read
and checked once.

Tyk's fields:

* ``use_oauth2`` -- the switch (:data:`fastgate.auth.oauth2.METHOD`);
* ``oauth_meta.allowed_access_types`` -- the grants ``/oauth/token``
  accepts: ``authorization_code``, ``refresh_token``, ``client_credentials``,
  ``password``;
* ``oauth_meta.allowed_authorize_types`` -- the ``response_type`` values
  ``/oauth/authorize`` and ``/tyk/oauth/authorize-client/`` accept: ``code``,
  ``token``;
* ``oauth_meta.auth_login_redirect`` -- where ``/oauth/authorize`` sends the
  user (307) to log in and approve;
* ``auth_configs.oauth`` -- where the bearer token is read (header
  ``Authorization`` by default; a query parameter or cookie as for the auth
  token);
* ``notifications.shared_secret``, ``notifications.oauth_on_keychange_url``
  -- where each new or refreshed token is announced
  (:mod:`fastgate.auth.oauth2.notifications`).

fastgate's own:

* ``notifications.retry_interval`` -- seconds between two attempts of a
  notification (Tyk's fixed 10);
* ``oauth_meta.require_pkce`` -- every authorization-code request needs a
  PKCE ``code_challenge`` (RFC 7636, S256), confidential clients' too.
  Public clients (a client without a secret) always need one.
* ``oauth_meta.revoke_requires_client_auth`` -- ``/oauth/revoke`` needs the
  client's credentials (RFC 7009 §2.1) and revokes that client's tokens
  only.  Off by default, as Tyk's endpoint takes a token alone; credentials
  presented are checked either way.

**fastgate differs**: a grant or response type Tyk does not know is an error
naming the field (Tyk ignores it, so a typo disables a grant silently), and
so is a notification URL that is not ``http(s)://``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastgate.auth.credentials import CredentialConfig

if TYPE_CHECKING:
    from fastgate.config import FieldReader

__all__ = [
    "ACCESS_TYPES",
    "AUTHORIZE_TYPES",
    "DEFAULT_NOTIFICATION_INTERVAL",
    "NotificationsConfig",
    "OAuthApiConfig",
    "parse_config",
]

#: The grants ``oauth_meta.allowed_access_types`` may name.
ACCESS_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")
#: The ``response_type`` values ``oauth_meta.allowed_authorize_types`` may name.
AUTHORIZE_TYPES = ("code", "token")
#: Seconds between two attempts of a notification (Tyk's).
DEFAULT_NOTIFICATION_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    """The ``notifications`` section: where token changes are announced."""

    url: str = ""
    shared_secret: str = field(default="", repr=False)
    retry_interval: float = DEFAULT_NOTIFICATION_INTERVAL

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True, slots=True)
class OAuthApiConfig:
    """One API's OAuth 2.0 provider settings (see the module docstring)."""

    credential: CredentialConfig = field(default_factory=CredentialConfig)
    allowed_access_types: tuple[str, ...] = ()
    allowed_authorize_types: tuple[str, ...] = ()
    auth_login_redirect: str = ""
    require_pkce: bool = False
    revoke_requires_client_auth: bool = False
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)

    def grant_allowed(self, grant_type: str) -> bool:
        """Whether ``/oauth/token`` accepts ``grant_type`` on this API."""
        return grant_type in self.allowed_access_types

    def response_type_allowed(self, response_type: str) -> bool:
        """Whether the authorize endpoints accept ``response_type`` on this API."""
        return response_type in self.allowed_authorize_types


def _choices(reader: FieldReader, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = reader.string_list(name)
    for value in values:
        if value not in allowed:
            listed = ", ".join(repr(c) for c in allowed)
            raise reader.error(name, f"{value!r} is not one of {listed}")
    return tuple(dict.fromkeys(values))


def _url(reader: FieldReader, name: str) -> str:
    value = reader.string(name).strip()
    if value and not value.lower().startswith(("http://", "https://")):
        raise reader.error(name, "must be an http:// or https:// URL")
    return value


def parse_config(top: FieldReader) -> OAuthApiConfig:
    """The provider's settings from an API definition (ConfigError names the field)."""
    meta = top.section("oauth_meta")
    notes = top.section("notifications")
    configs = top.section("auth_configs")
    credential = CredentialConfig.read(configs.section("oauth")) \
        if configs.get("oauth") is not None else CredentialConfig()
    return OAuthApiConfig(
        credential=credential,
        allowed_access_types=_choices(meta, "allowed_access_types", ACCESS_TYPES),
        allowed_authorize_types=_choices(meta, "allowed_authorize_types", AUTHORIZE_TYPES),
        auth_login_redirect=meta.string("auth_login_redirect"),
        require_pkce=meta.boolean("require_pkce"),
        revoke_requires_client_auth=meta.boolean("revoke_requires_client_auth"),
        notifications=NotificationsConfig(
            url=_url(notes, "oauth_on_keychange_url"),
            shared_secret=notes.string("shared_secret"),
            retry_interval=notes.number("retry_interval", DEFAULT_NOTIFICATION_INTERVAL,
                                        minimum=0.0, maximum=3600.0),
        ),
    )
