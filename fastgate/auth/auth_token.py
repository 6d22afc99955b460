"""Auth token (Tyk's "standard auth"): a key in a header, a query parameter or
a cookie names a session in the store.

Where the key is read (``auth_configs.authToken``, else the legacy ``auth``):
the header (``auth_header_name``, default ``Authorization``; a leading
``Bearer `` is stripped case-insensitively) unless ``disable_header``; then a
non-empty query parameter overrides it (``use_param``: ``param_name``, else
the header name); then a non-empty cookie overrides both (``use_cookie``:
``cookie_name``, else the header name) — cookie > param > header, as Tyk.

* no key: 401 "Authorization field missing";
* unknown key (or shorter than ``min_token_length``, default 3): 403 "Access
  to this API has been disallowed";
* where the key is looked for, as Tyk's ``SessionDetail`` (called by
  ``CheckSessionAndIdentityForValidKey``) with the API's ``org_id``:
  ``generateToken(org_id, key)`` first, then the key as presented -- so a
  custom key ``POST``-ed as ``/tyk/keys/{key}`` (stored as Tyk names it,
  ``<org><key>`` or a base64 token) works by its name, and the keys of an
  existing Tyk Redis work unchanged.  When the key itself carries the API's
  org (a token of that org, or 24 hex digits of a Tyk Dashboard org id), Tyk
  looks for it alone; fastgate tries it first, then -- **fastgate differs** --
  ``generateToken(org_id, key)`` too, so a custom key of an API without org
  is found by its name under a ``hash_key_function`` as well.  The first
  candidate found wins; the storage keys of the candidates are derived once
  per credential (:class:`fastgate.auth.identity.KeyNames`);
* **fastgate differs**: a session that is a Basic-auth user (it has a
  ``basic_auth_data.password``) is not an auth-token key -- Tyk accepts the
  user's name as a token, without the password;
* ``strip_auth_data``: the credential is removed before the request goes
  upstream;
* a key bound to client certificates (the session's
  ``mtls_static_certificate_bindings``: certificate ids, ``org + sha256``)
  on an API with static mTLS (``use_mutual_tls_auth``) is accepted only over
  a connection whose certificate is one of them, as in Tyk: else 401 "Access
  to this API has been disallowed" (an expired certificate never gets this
  far: the static-mTLS step answers 403 "Certificate has expired").  Without
  static mTLS on the API the bindings are not looked at (Tyk's rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fastgate.auth.credentials import CredentialConfig
from fastgate.auth.identity import Found, Identity, KeyNames, find_session
from fastgate.auth.method import AuthMethodSpec
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.session import key_org, make_key, storage_key
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["METHOD", "AuthToken", "AuthTokenConfig"]

MISSING = error_response(401, "Authorization field missing")
DISALLOWED = error_response(403, "Access to this API has been disallowed")
#: A key bound to other client certificates than the connection's (Tyk's
#: ErrAuthCertMismatch: 401).
CERT_MISMATCH = error_response(401, "Access to this API has been disallowed")


#: Where the key is read (``auth_configs.authToken``, else the legacy ``auth``).
AuthTokenConfig = CredentialConfig


def parse_config(top: FieldReader) -> AuthTokenConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    return CredentialConfig.of(top, "authToken")


def token_candidates(org_id: str, *, hash_keys: bool,
                     hash_function: str) -> KeyNames:
    """Where an auth-token key of an API of ``org_id`` may be stored, in the
    order Tyk looks (see the module docstring)."""

    def candidates(credential: bytes) -> tuple[str, ...]:
        key = credential.decode("utf-8", "surrogateescape")
        given = storage_key(key, hash_keys=hash_keys, hash_key_function=hash_function)
        if org_id and key == org_id:
            return (given,)  # generateToken would make a random id up
        token = storage_key(make_key(org_id, key, hash_function), hash_keys=hash_keys,
                            hash_key_function=hash_function)
        if (key_org(key) or "") == org_id:
            return given, token
        return token, given

    return KeyNames(candidates)


def _token(entry: CachedSession) -> bool:
    """Whether a session may be used as an auth token (a Basic-auth user may not)."""
    return not entry.basic_user


class AuthToken:
    """Finds the session named by the request's key."""

    name: ClassVar[str] = "auth_token"

    def __init__(self, spec: ApiSpec, config: AuthTokenConfig, services: Services) -> None:
        self.source = config.source(strip=spec.strip_auth_data)
        self.min_length = services.config.min_token_length
        self.sessions = services.sessions
        self.names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                      hash_function=services.hash_key_function)
        self.identity = Identity(spec, METHOD.identity)
        #: Static mTLS on the API: keys bound to certificates are checked.
        self.bindings = spec.client_certificates is not None
        self.org_id = spec.org_id

    def process(self, req: Request) -> Outcome:
        key = self.source.read(req)
        if not key:
            return MISSING
        if len(key) < self.min_length:
            return DISALLOWED
        names = self.names.of(key)
        sessions = self.sessions
        # The first candidate, straight: the common request ends here.
        skey = names[0]
        try:
            found = sessions.lookup(skey)
        except StoreError as exc:
            return store_unavailable(exc)
        if found.__class__ is CachedSession and not found.basic_user:
            if self.bindings:
                refusal = self._certificate_binding(req, found)
                if refusal is not None:
                    return refusal
            if self.identity.base or req.session is None:
                req.session_key = skey
                req.session = found
            return None
        try:
            search = find_session(sessions, names, _token, found)
        except StoreError as exc:
            return store_unavailable(exc)
        return then(search, lambda hit: self._accept(req, hit))

    def _accept(self, req: Request, found: Found) -> Outcome:
        if found is None:
            return DISALLOWED
        if self.bindings:
            refusal = self._certificate_binding(req, found[1])
            if refusal is not None:
                return refusal
        self.identity.accept(req, found)
        return None

    def _certificate_binding(self, req: Request, entry: CachedSession) -> bytes | None:
        """Tyk's ``validateCertificateBinding``: a key with
        ``mtls_static_certificate_bindings`` needs one of those certificates."""
        bound = entry.session.get("mtls_static_certificate_bindings")
        if not bound or not isinstance(bound, list):
            return None
        # The static-mTLS step ran first: a certificate is there, within its
        # validity (Tyk checks the expiry again here; nothing is left to catch).
        cert = req.client_certificate
        if cert is None:
            return CERT_MISMATCH
        return None if self.org_id + cert.sha256 in bound else CERT_MISMATCH


METHOD = AuthMethodSpec(
    name="auth_token",
    enabled_by=("use_standard_auth",),
    order=80,
    identity="auth_token",
    fields=frozenset({"auth"}),
    parse=parse_config,
    build=AuthToken,
    fallback=True,
)
