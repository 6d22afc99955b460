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

**Dynamic mTLS** (``auth_configs.authToken.use_certificate``, else the legacy
``auth.use_certificate``): the key is found by the client certificate, never
by a token (:class:`CertificateAuth`).  A key is made for a certificate with
``POST /tyk/keys/create`` and ``"certificate": "<cert id>"`` (its name is
``generateToken(org, cert id)``); per request, over a connection whose
certificate has the hash ``h``: ``generateToken(org, org + h)``, then
``org + h`` itself, as in Tyk.  Answers:

* no certificate (or plain HTTP): 401 "Client certificate required";
* past its notAfter: 403 "Certificate has expired" (before its notBefore:
  403 "Certificate is not yet valid");
* no key for it (an unknown or self-signed certificate): 401 "Access to
  this API has been disallowed";
* the certificate is not in the certificate store (removed since the key
  was made): 403 "Access to this API has been disallowed".

**fastgate differs**: a token header never stands in for the certificate --
Tyk accepts the key's token without a certificate over plain HTTP, and with
``security.allow_unsafe_dynamic_mtls_token`` over TLS; fastgate has neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fastgate.auth.credentials import CredentialConfig
from fastgate.auth.identity import Found, Identity, KeyNames, find_session
from fastgate.auth.method import AuthMethod, AuthMethodSpec
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.session import key_org, make_key, storage_key
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["METHOD", "AuthToken", "AuthTokenConfig", "CertificateAuth"]

#: Header values remembered per API at most (then the memo starts again).
MEMO_ENTRIES = 200_000

MISSING = error_response(401, "Authorization field missing")
DISALLOWED = error_response(403, "Access to this API has been disallowed")
#: A key bound to other client certificates than the connection's (Tyk's
#: ErrAuthCertMismatch: 401).
CERT_MISMATCH = error_response(401, "Access to this API has been disallowed")
CERT_REQUIRED = error_response(401, "Client certificate required")
#: The key's certificate is no longer in the certificate store (Tyk's
#: ErrAuthCertNotFound: 403).
CERT_NOT_STORED = error_response(403, "Access to this API has been disallowed")


@dataclass(frozen=True, slots=True)
class AuthTokenConfig:
    """``auth_configs.authToken``, else the legacy ``auth``: where the key is
    read, and whether the client certificate names it instead."""

    credential: CredentialConfig
    use_certificate: bool = False


def parse_config(top: FieldReader) -> AuthTokenConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    configs = top.section("auth_configs")
    section = configs.section("authToken") if configs.get("authToken") is not None \
        else top.section("auth")
    return AuthTokenConfig(CredentialConfig.read(section), section.boolean("use_certificate"))


def _build(spec: ApiSpec, config: AuthTokenConfig, services: Services) -> AuthMethod:
    if config.use_certificate:
        return CertificateAuth(spec, services)
    return AuthToken(spec, config, services)


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
        self.source = config.credential.source(strip=spec.strip_auth_data)
        self.min_length = services.config.min_token_length
        self.sessions = services.sessions
        self.names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                      hash_function=services.hash_key_function)
        self.identity = Identity(spec, METHOD.identity)
        #: Static mTLS on the API: keys bound to certificates are checked.
        self.bindings = spec.client_certificates is not None
        self.org_id = spec.org_id
        #: The header's value -> the cached session it named, for requests
        #: that took the common path (key read from the header alone, left in
        #: place, no certificate binding, this method's session the
        #: request's): the next request with the same value skips the
        #: Bearer strip, the key names and the cache probe.  An entry is used
        #: only while the session cache still holds it (``live``).
        source = self.source
        self.memo: dict[bytes, CachedSession] | None = (
            {} if source.header is not None and source.param is None
            and source.cookie is None and not source.strip and not self.bindings
            and self.identity.base else None)
        self.memo_header = source.header or b""

    def present(self, req: Request) -> bool:
        """Whether the request carries a key where it is read (``auth_mode: any``)."""
        return bool(self.source.peek(req))

    def process(self, req: Request) -> Outcome:
        memo = self.memo
        if memo is not None:
            value = req.header(self.memo_header)
            if value is not None:
                entry = memo.get(value)
                if entry is not None and entry.live:
                    self.sessions.stats.hits += 1
                    req.session_key = entry.storage_key
                    req.session = entry
                    return None
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
            if self.identity.base:
                req.session_key = skey
                req.session = found
                if memo is not None:
                    if len(memo) >= MEMO_ENTRIES:
                        memo.clear()
                    memo[req.header(self.memo_header)] = found  # type: ignore[index]
                return None
            return self.identity.accept(req, (skey, found))
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
        return self.identity.accept(req, found)

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


class CertificateAuth:
    """Dynamic mTLS: the session of the key made for the client's certificate."""

    name: ClassVar[str] = "auth_token"

    def __init__(self, spec: ApiSpec, services: Services) -> None:
        org_id = spec.org_id
        hash_keys, function = services.hash_keys, services.hash_key_function
        self.org_id = org_id
        self.sessions = services.sessions
        self.certificates = services.certificates
        self.clock = services.clock

        def candidates(cert_hash: bytes) -> tuple[str, ...]:
            name = cert_hash.decode("ascii")
            return (storage_key(make_key(org_id, name, function), hash_keys=hash_keys,
                                hash_key_function=function),
                    storage_key(name, hash_keys=hash_keys, hash_key_function=function))

        self.names = KeyNames(candidates)
        self.identity = Identity(spec, METHOD.identity)

    def present(self, req: Request) -> bool:
        """Whether the connection has a client certificate (``auth_mode: any``)."""
        return req.client_certificate is not None

    def process(self, req: Request) -> Outcome:
        cert = req.client_certificate
        if cert is None:
            return CERT_REQUIRED
        problem = cert.validity_error(self.clock())
        if problem is not None:
            return error_response(403, problem)
        cert_id = self.org_id + cert.sha256
        try:
            search = find_session(self.sessions, self.names.of(cert_id.encode()), _token)
        except StoreError as exc:
            return store_unavailable(exc)
        return then(search, lambda found: self._stored(req, found, cert_id))

    def _stored(self, req: Request, found: Found, cert_id: str) -> Outcome:
        if found is None:
            return CERT_MISMATCH
        ids = (cert_id,)
        records = self.certificates.cached(ids)
        return then(records if records is not None else self.certificates.get(ids),
                    lambda read: self._accept(req, found, read[0] is not None, cert_id))

    def _accept(self, req: Request, found: tuple[str, CachedSession],
                stored: bool, cert_id: str) -> bytes | None:
        if not stored:
            return CERT_NOT_STORED
        refusal = self.identity.accept(req, found)
        if refusal is None:
            req.certificate_id = cert_id  # the leaf's own id: more precise than a CA's
        return refusal


METHOD = AuthMethodSpec(
    name="auth_token",
    enabled_by=("use_standard_auth",),
    order=80,
    identity="auth_token",
    fields=frozenset({"auth"}),
    parse=parse_config,
    build=_build,
    fallback=True,
)
