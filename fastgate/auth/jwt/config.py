"""The JWT settings of an API definition (Tyk Classic), read and checked once.

Where the token is read: ``auth_configs.jwt`` (else the legacy ``auth``
section, as Tyk), header / parameter / cookie like the auth token, a leading
``Bearer `` stripped.

``jwt_signing_method`` names the algorithm family: ``hmac`` (HS256/384/512),
``rsa`` (RS* and PS*), ``ecdsa`` (ES256/384/512) and fastgate's own
``eddsa`` (Ed25519).  Empty means ``hmac``, as Tyk.  **fastgate differs**: an
unknown value is an error naming the field (Tyk silently uses ``hmac``, so a
typo such as ``RS256`` turns an RSA API into one that only accepts HMAC tokens).

``jwt_source``, as Tyk reads it:

* a value starting ``http://`` or ``https://`` (any case) is a JWKS URL --
  **fastgate differs**: it works on every request (TykTechnologies/tyk#7461);
* otherwise it is padded standard base64 of: a URL (a JWKS URL), or the key --
  the shared secret for ``hmac``; a PEM or DER public key or X.509
  certificate for the others.  **fastgate differs**: a value that is not
  base64, or a key that cannot be read, is refused when the definition is
  loaded (Tyk answers 403 to every request);
* a JWKS URL may also be an OpenID Connect issuer: the JWKS is then the
  ``jwks_uri`` of its ``/.well-known/openid-configuration``
  (:mod:`fastgate.auth.jwt.jwks`);
* empty: the per-key mode -- the ``kid`` header (unless ``jwt_skip_kid``),
  else the identity claim, names a key whose ``jwt_data.secret`` verifies
  the token.

Beyond Tyk Classic (which never checks them): ``jwt_issuer`` and
``jwt_audience`` -- a string or an array of strings each; when set, the
token's ``iss`` must be one of the issuers and its ``aud`` (a string or an
array) must contain one of the audiences (RFC 7519 §4.1.1, §4.1.3).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastgate.auth.credentials import CredentialConfig
from fastgate.auth.jwt import keys
from fastgate.config import ConfigError

if TYPE_CHECKING:
    from fastgate.config import FieldReader

__all__ = ["FAMILIES", "JwtConfig", "parse_config"]

#: ``jwt_signing_method`` values; "" means "hmac" (Tyk's default).
FAMILIES = ("hmac", "rsa", "ecdsa", "eddsa")

_URL = re.compile(r"(?i)^https?://")


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """One API's JWT settings (see the module docstring)."""

    credential: CredentialConfig = field(default_factory=CredentialConfig)
    family: str = "hmac"
    #: The key every token is checked with (``jwt_source`` holding the key itself).
    static_key: keys.VerifyKey | None = None
    #: The JWKS (or OpenID issuer) URL ``jwt_source`` names.
    jwks_url: str = ""
    identity_field: str = ""  # "" means "sub"
    client_base_field: str = ""
    policy_field: str = ""
    default_policies: tuple[str, ...] = ()
    skip_kid: bool = False
    issued_at_skew: int = 0
    expires_at_skew: int = 0
    not_before_skew: int = 0
    scope_to_policy: dict[str, str] = field(default_factory=dict)
    scope_claim: str = "scope"
    issuers: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    #: Map ``clientId`` / ``cid`` / ``client_id`` to the session's
    #: ``oauth_client_id`` (Tyk's ``idp_client_id_mapping_disabled`` unset).
    client_id_mapping: bool = True

    @property
    def centralised(self) -> bool:
        """Every token is checked with one key or key set (``jwt_source`` set)."""
        return self.static_key is not None or bool(self.jwks_url)


def _strings(top: FieldReader, name: str) -> tuple[str, ...]:
    value = top.get(name)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return top.string_list(name)


def _string_map(top: FieldReader, name: str) -> dict[str, str]:
    value = top.obj_field(name)
    if not value:
        return {}
    for scope, policy in value.items():
        if not isinstance(policy, str):
            raise top.error(f"{name}.{scope}", "expected a policy id (a string)")
    return {scope: str(policy) for scope, policy in value.items()}


def _source(top: FieldReader, family: str) -> tuple[keys.VerifyKey | None, str]:
    """``jwt_source`` -> (static key, JWKS URL); at most one is set."""
    source = top.string("jwt_source").strip()
    if not source:
        return None, ""
    if _URL.match(source):
        return None, source
    try:
        decoded = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        raise top.error("jwt_source", "is neither a URL nor base64 (of a URL, a secret "
                        "or a public key)") from None
    try:
        text = decoded.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if text and _URL.match(text):
        return None, text
    if not decoded:
        raise top.error("jwt_source", "decodes to nothing")
    if family == "hmac":
        return keys.key_from_secret(decoded), ""
    try:
        return keys.key_from_material(decoded, family), ""
    except ValueError as exc:
        raise top.error("jwt_source", f"is not a usable {family} public key or "
                        f"certificate: {exc}") from None


def parse_config(top: FieldReader) -> JwtConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    family = top.string("jwt_signing_method").strip().lower() or "hmac"
    if family not in FAMILIES:
        raise top.error("jwt_signing_method", "must be one of " + ", ".join(
            repr(name) for name in FAMILIES) + f"; got {family!r}")
    static_key, jwks_url = _source(top, family)
    scopes = top.section("scopes").section("jwt")
    mapping = _string_map(scopes, "scope_to_policy") or _string_map(
        top, "jwt_scope_to_policy_mapping")
    claim = scopes.string("scope_claim_name") or top.string("jwt_scope_claim_name") or "scope"
    skews = {name: top.integer(name, minimum=0) for name in (
        "jwt_issued_at_validation_skew", "jwt_expires_at_validation_skew",
        "jwt_not_before_validation_skew")}
    defaults = top.string_list("jwt_default_policies")
    for index, policy in enumerate(defaults):
        if not policy:
            raise ConfigError(top.file, f"{top.path('jwt_default_policies')}[{index}]",
                              "is empty")
    return JwtConfig(
        credential=CredentialConfig.of(top, "jwt"),
        family=family,
        static_key=static_key,
        jwks_url=jwks_url,
        identity_field=top.string("jwt_identity_base_field"),
        client_base_field=top.string("jwt_client_base_field"),
        policy_field=top.string("jwt_policy_field_name"),
        default_policies=defaults,
        skip_kid=top.boolean("jwt_skip_kid"),
        issued_at_skew=skews["jwt_issued_at_validation_skew"],
        expires_at_skew=skews["jwt_expires_at_validation_skew"],
        not_before_skew=skews["jwt_not_before_validation_skew"],
        scope_to_policy=mapping,
        scope_claim=claim,
        issuers=_strings(top, "jwt_issuer"),
        audiences=_strings(top, "jwt_audience"),
        client_id_mapping=not top.boolean("idp_client_id_mapping_disabled"),
    )
