"""The ``external_oauth`` section of an API definition (Tyk Classic), read
and checked once.

::

    "external_oauth": {
      "enabled": true,
      "providers": [{
        "jwt": {"enabled": true, "signing_method": "rsa",
                "source": "<base64 secret / PEM, or a JWKS URL>",
                "issued_at_validation_skew": 0, "not_before_validation_skew": 0,
                "expires_at_validation_skew": 0, "identity_base_field": "sub"},
        "introspection": {"enabled": true, "url": "https://idp/introspect",
                          "client_id": "gw", "client_secret": "...",
                          "identity_base_field": "sub",
                          "cache": {"enabled": true, "timeout": 60},
                          "request_timeout": 5}
      }]
    }

As in Tyk, the first provider is the one used, and ``jwt`` wins when both
``jwt`` and ``introspection`` are enabled.  **fastgate differs** where Tyk
would serve the API and fail every request:

* no provider (Tyk answers 404), more than one (Tyk ignores the others), a
  provider enabling neither method (Tyk answers 500), an enabled method
  missing what it needs (``source``, ``url``), a ``signing_method`` that is
  not one of the families (Tyk falls back to ``hmac``), a ``source`` that is
  neither a URL nor base64 of a URL or a usable key -- each refuses the
  definition, naming the field;
* a field name neither Tyk nor fastgate has in these objects is refused with
  the closest known name (a misspelt setting of an access control).

``source``, as Tyk reads it: a value starting ``http://`` or ``https://`` is
a JWKS URL (also when it is an OpenID issuer: see
:mod:`fastgate.auth.jwt.jwks`); otherwise padded standard base64 of a URL
(a JWKS URL), of the HMAC secret (``hmac``), or of a PEM/DER public key or
X.509 certificate (the other families).

fastgate's own field: ``introspection.request_timeout`` -- seconds one
introspection call may take in all (connect, send, answer); default 5,
at most 60.  Past it the request is answered 504.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastgate.auth.credentials import CredentialConfig
from fastgate.auth.jwt import keys
from fastgate.config import ConfigError, FieldReader, json_type_name, unknown_fields

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "ExternalOAuthConfig",
    "IntrospectionConfig",
    "JwtValidationConfig",
    "parse_config",
]

#: ``signing_method`` values; "" means "hmac" (Tyk's default).
FAMILIES = ("hmac", "rsa", "ecdsa", "eddsa")
#: Seconds an introspection call may take (``introspection.request_timeout``).
DEFAULT_REQUEST_TIMEOUT = 5.0
MAX_REQUEST_TIMEOUT = 60.0

_URL = re.compile(r"(?i)^https?://")

# Tyk's struct fields (apidef.ExternalOAuth, Provider, JWTValidation,
# Introspection, IntrospectionCache), and fastgate's own.
_SECTION_FIELDS = ("enabled", "providers")
_PROVIDER_FIELDS = ("jwt", "introspection")
_JWT_FIELDS = ("enabled", "signing_method", "source", "issued_at_validation_skew",
               "not_before_validation_skew", "expires_at_validation_skew",
               "identity_base_field")
_INTROSPECTION_FIELDS = ("enabled", "url", "client_id", "client_secret",
                         "identity_base_field", "cache")
_INTROSPECTION_OWN = ("request_timeout",)
_CACHE_FIELDS = ("enabled", "timeout")


@dataclass(frozen=True, slots=True)
class JwtValidationConfig:
    """``providers[0].jwt``: tokens verified locally."""

    family: str = "hmac"
    #: The key every token is checked with (``source`` holding the key itself).
    static_key: keys.VerifyKey | None = None
    #: The JWKS (or OpenID issuer) URL ``source`` names.
    jwks_url: str = ""
    issued_at_skew: int = 0
    not_before_skew: int = 0
    expires_at_skew: int = 0
    identity_field: str = ""  # "" means "sub"


@dataclass(frozen=True, slots=True)
class IntrospectionConfig:
    """``providers[0].introspection``: tokens asked about (RFC 7662)."""

    url: str
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    identity_field: str = ""  # "" means "sub"
    cache: bool = False
    #: ``cache.timeout``: seconds a result is kept at most; 0: until the token's ``exp``.
    cache_timeout: int = 0
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT


@dataclass(frozen=True, slots=True)
class ExternalOAuthConfig:
    """One API's external OAuth settings: exactly one of ``jwt`` and
    ``introspection`` is set (the one in use)."""

    credential: CredentialConfig = field(default_factory=CredentialConfig)
    jwt: JwtValidationConfig | None = None
    introspection: IntrospectionConfig | None = None


def _check_names(reader: FieldReader, names: tuple[str, ...], own: tuple[str, ...] = ()) -> None:
    """Refuse a field that is neither Tyk's nor fastgate's here."""
    for unknown in unknown_fields(reader.obj, names, reader.file, reader.prefix,
                                  also_known=own):
        hint = unknown.suggestion
        raise ConfigError(reader.file, unknown.path, "unknown field" + (
            f" (did you mean {hint}?)" if hint else " (known: " + ", ".join(
                (*names, *own)) + ")"))


def _object(value: object, file: str, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(file, path, f"expected an object, got {json_type_name(value)}")
    return value


def _source(reader: FieldReader, family: str) -> tuple[keys.VerifyKey | None, str]:
    """``source`` -> (static key, JWKS URL); exactly one is set."""
    source = reader.string("source").strip()
    if not source:
        raise reader.error("source", "is required when jwt is enabled (a JWKS URL, or "
                           "base64 of a URL, a secret or a public key)")
    if _URL.match(source):
        return None, source
    try:
        decoded = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        raise reader.error("source", "is neither a URL nor base64 (of a URL, a secret "
                           "or a public key)") from None
    try:
        text = decoded.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if text and _URL.match(text):
        return None, text
    if not decoded:
        raise reader.error("source", "decodes to nothing")
    if family == "hmac":
        return keys.key_from_secret(decoded), ""
    try:
        return keys.key_from_material(decoded, family), ""
    except ValueError as exc:
        raise reader.error("source", f"is not a usable {family} public key or "
                           f"certificate: {exc}") from None


def _jwt(reader: FieldReader) -> JwtValidationConfig:
    _check_names(reader, _JWT_FIELDS)
    family = reader.string("signing_method").strip().lower() or "hmac"
    if family not in FAMILIES:
        raise reader.error("signing_method", "must be one of " + ", ".join(
            repr(name) for name in FAMILIES) + f"; got {family!r}")
    static_key, jwks_url = _source(reader, family)
    return JwtValidationConfig(
        family=family, static_key=static_key, jwks_url=jwks_url,
        issued_at_skew=reader.integer("issued_at_validation_skew", minimum=0),
        not_before_skew=reader.integer("not_before_validation_skew", minimum=0),
        expires_at_skew=reader.integer("expires_at_validation_skew", minimum=0),
        identity_field=reader.string("identity_base_field"))


def _introspection(reader: FieldReader) -> IntrospectionConfig:
    _check_names(reader, _INTROSPECTION_FIELDS, _INTROSPECTION_OWN)
    url = reader.string("url").strip()
    if not url:
        raise reader.error("url", "is required when introspection is enabled (the "
                           "authorization server's RFC 7662 endpoint)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise reader.error("url", f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise reader.error("url", "must be an http:// or https:// URL with a host")
    cache = reader.section("cache")
    _check_names(cache, _CACHE_FIELDS)
    return IntrospectionConfig(
        url=url,
        client_id=reader.string("client_id"),
        client_secret=reader.string("client_secret"),
        identity_field=reader.string("identity_base_field"),
        cache=cache.boolean("enabled"),
        cache_timeout=cache.integer("timeout", minimum=0),
        request_timeout=reader.number("request_timeout", DEFAULT_REQUEST_TIMEOUT,
                                      minimum=0.001, maximum=MAX_REQUEST_TIMEOUT))


def parse_config(top: FieldReader) -> ExternalOAuthConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    section = top.section("external_oauth")
    _check_names(section, _SECTION_FIELDS)
    section.boolean("enabled")
    providers = section.get("providers")
    if providers is not None and not isinstance(providers, list):
        raise section.error("providers", f"expected an array, got {json_type_name(providers)}")
    if not providers:
        raise section.error("providers", "is empty: configure one provider (jwt or "
                            "introspection); Tyk answers every request 404 without one")
    if len(providers) > 1:
        raise ConfigError(top.file, section.path("providers[1]"),
                          "only one provider is supported (Tyk uses the first and "
                          "ignores the others): remove the others")
    where = section.path("providers[0]")
    provider = FieldReader(_object(providers[0], top.file, where), top.file, where + ".")
    _check_names(provider, _PROVIDER_FIELDS)
    jwt_section = provider.section("jwt")
    introspection_section = provider.section("introspection")
    jwt_on = jwt_section.boolean("enabled")
    introspection_on = introspection_section.boolean("enabled")
    if not jwt_on and not introspection_on:
        raise ConfigError(top.file, where, "enables neither jwt nor introspection (Tyk "
                          "answers every request 500 \"access token validation method is "
                          "not specified\"): set jwt.enabled or introspection.enabled")
    credential = CredentialConfig.read(top.section("auth_configs").section("externalOAuth"))
    if jwt_on:
        # As Tyk: jwt wins; the introspection settings are still checked.
        jwt = _jwt(jwt_section)
        if introspection_on:
            _introspection(introspection_section)
        return ExternalOAuthConfig(credential=credential, jwt=jwt)
    return ExternalOAuthConfig(credential=credential,
                               introspection=_introspection(introspection_section))
