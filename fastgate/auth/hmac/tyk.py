"""Tyk's signed requests (``enable_signature_checking``): draft-cavage HTTP
Signatures with a shared secret (HMAC) or an RSA key.

The client sends ``Authorization: Signature keyId="<key>",
algorithm="hmac-sha256",headers="(request-target) date",signature="<sig>"``
(the field is ``auth_configs.hmac.auth_header_name``, default
``Authorization``; a query parameter or cookie as the other methods read
them).  ``keyId`` names a session, looked for where an auth-token key is
(``generateToken(org, keyId)``, then the id as given).  What is checked, in
this order -- the date before anything about the key, so that neither the
time nor a key lookup can be used as an oracle:

1. the header parses strictly (:func:`fastgate._core.signing.parse_parameters`);
   malformed: 400;
2. ``algorithm`` is one of ``hmac_allowed_algorithms`` (default: the five
   Tyk signs with); missing, it is the allowed one when exactly one is
   allowed; **fastgate differs**: an unknown algorithm is refused (Tyk
   verifies any value, even ``foo``, as HMAC-SHA1);
3. the date (``X-Aux-Date``, else ``Date``) parses as an HTTP date and, when
   ``hmac_allowed_clock_skew`` (milliseconds) is > 0, is within it of now;
4. the key exists and can sign: HMAC needs its ``hmac_string`` (the secret's
   bytes as stored, not base64-decoded, as in Tyk) and ``hmac_enabled`` (or
   ``enable_http_signature_validation``); ``rsa-sha256`` needs
   ``enable_http_signature_validation`` and ``rsa_certificate_id`` naming a
   public key in the certificate store;
5. the signature verifies over the signing string
   (:func:`fastgate._core.signing.signing_string`): HMAC compared in constant
   time in ``_core``; RSA PKCS#1 v1.5 with SHA-256 through OpenSSL.
   ``(request-target)`` is the method and the target **with** its query, as
   the draft defines it (Tyk signs the path alone, so the query is not
   covered there); a Tyk client signing the path alone works unchanged on
   requests without a query, and ``hmac_accept_path_only_target`` (fastgate's)
   also accepts its signatures on requests with one -- the query is then not
   covered by the signature;
6. with ``hmac_replay_protection`` (fastgate's; needs a clock skew), a
   signature is accepted once: it is remembered in the store
   (:meth:`fastgate.storage.base.Store.claim_once`, Redis ``SET NX PX``, so
   across nodes) for twice the skew, the window in which its date passes;
7. when ``digest`` or ``content-digest`` is among the signed headers, the
   body is checked against it as it streams through
   (:func:`fastgate.auth.hmac.digest.watch_body`; Tyk never checks it).

Answers: no signature: 401 with ``WWW-Authenticate: Signature``; malformed:
400; everything else that fails (unknown key, key without a secret, missing
certificate, wrong algorithm, stale date, bad signature, replay): 401
"Authorization field missing, malformed or invalid", byte-identical whatever
the cause -- the reason goes to the log, never the credential.  **fastgate
differs**: Tyk answers every one of these with 400 (and 500 for a missing
RSA certificate).
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastgate._core import signing
from fastgate.auth.auth_token import token_candidates
from fastgate.auth.credentials import CredentialConfig
from fastgate.auth.identity import Found, Identity, find_session
from fastgate.auth.method import AuthMethodSpec
from fastgate.responses import error_response, json_response
from fastgate.services import store_unavailable, then
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError
from fastgate.storage.certificates import PublicKey

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["ALGORITHMS", "METHOD", "HmacAuth", "HmacConfig", "parse_config"]

log = logging.getLogger(__name__)

#: What Tyk verifies (and signs with, in request_signing).
ALGORITHMS: tuple[str, ...] = ("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512",
                               "rsa-sha256")

_MESSAGE = "Authorization field missing, malformed or invalid"
MISSING = json_response(401, {"error": _MESSAGE},
                        extra_headers=((b"WWW-Authenticate", b"Signature"),))
MALFORMED = error_response(400, _MESSAGE)
INVALID = error_response(401, _MESSAGE)

#: Parsed Date values remembered (a busy gateway sees one per second).
_MAX_DATES = 1024
#: Keyed HMAC contexts remembered (one per key secret in use).
_MAX_KEYED = 100_000


def _mac(keyed: Any, message: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(message)
    return mac.digest()


@dataclass(frozen=True, slots=True)
class HmacConfig:
    """The API definition's signature settings."""

    credential: CredentialConfig
    algorithms: tuple[str, ...] = ALGORITHMS
    #: ``hmac_allowed_clock_skew`` in seconds (<= 0: not checked).
    clock_skew: float = 0.0
    path_only_target: bool = False
    replay_protection: bool = False


def parse_config(top: FieldReader) -> HmacConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    configs = top.section("auth_configs")
    credential = CredentialConfig.read(configs.section("hmac"))
    algorithms = top.string_list("hmac_allowed_algorithms")
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise top.error("hmac_allowed_algorithms",
                            f"unsupported algorithm {algorithm!r} (supported: "
                            + ", ".join(ALGORITHMS) + ")")
    skew_ms = top.number("hmac_allowed_clock_skew", 0.0)
    replay = top.boolean("hmac_replay_protection")
    if replay and skew_ms <= 0:
        raise top.error("hmac_replay_protection",
                        "needs hmac_allowed_clock_skew > 0 (the window a signature is "
                        "remembered for)")
    return HmacConfig(
        credential=credential,
        algorithms=algorithms or ALGORITHMS,
        clock_skew=skew_ms / 1000.0 if skew_ms > 0 else 0.0,
        path_only_target=top.boolean("hmac_accept_path_only_target"),
        replay_protection=replay,
    )


def parse_http_date(value: bytes) -> float | None:
    """A ``Date`` value as a unix time (Tyk's layouts: ``Mon, 02 Jan 2006
    15:04:05 MST`` or a numeric zone); None when it does not parse."""
    try:
        parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    except (ValueError, TypeError, IndexError):
        return None
    if parsed is None:
        return None
    try:
        return float(email.utils.mktime_tz(parsed))
    except (ValueError, OverflowError, TypeError):
        return None


class HmacAuth:
    """Verifies Tyk's request signatures (see the module docstring)."""

    name: ClassVar[str] = "hmac"

    def __init__(self, spec: ApiSpec, config: HmacConfig, services: Services) -> None:
        self.source = config.credential.source(strip=spec.strip_auth_data, bearer=False)
        self.allowed = frozenset(config.algorithms)
        self.only = config.algorithms[0] if len(config.algorithms) == 1 else ""
        self.skew = config.clock_skew
        self.path_only = config.path_only_target
        self.replay_ttl = 2 * config.clock_skew if config.replay_protection else 0.0
        self.clock = services.clock
        self.store = services.store
        self.sessions = services.sessions
        self.certificates = services.certificates
        self.names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                      hash_function=services.hash_key_function)
        self.identity = Identity(spec, METHOD.identity)
        self._dates: dict[bytes, float | None] = {}
        self._macs: dict[tuple[str, str], Any] = {}

    def present(self, req: Request) -> bool:
        """Whether the request carries a signature (``auth_mode: any``)."""
        return bool(self.source.peek(req))

    def process(self, req: Request) -> Outcome:
        # The target as received, before a credential parameter is stripped.
        query = req.query
        path = req.path
        value = self.source.read(req)
        if not value:
            return MISSING
        try:
            key_id, algorithm, headers, signature = signing.parse_parameters(value)
        except ValueError as exc:
            log.info("HMAC: malformed signature header: %s", exc)
            return MALFORMED
        if not algorithm:
            if not self.only:
                log.info("HMAC: no algorithm, and more than one is allowed")
                return INVALID
            algorithm = self.only
        elif algorithm not in self.allowed:
            log.info("HMAC: algorithm %r not allowed", algorithm[:40])
            return INVALID
        # The date before anything about the key (no oracle).
        date = req.header(b"x-aux-date") or req.header(b"date")
        when = self._date(date) if date else None
        if when is None:
            log.info("HMAC: no parsable Date / X-Aux-Date")
            return INVALID
        if self.skew > 0 and abs(self.clock() - when) > self.skew:
            log.info("HMAC: date outside hmac_allowed_clock_skew")
            return INVALID
        target = path + b"?" + query if query else path
        message = signing.signing_string(req.method, target, headers, req.header)
        fallback = b""
        if query and self.path_only:
            fallback = signing.signing_string(req.method, path, headers, req.header)
        for name in headers:
            if name == "digest" or name == "content-digest":
                refusal = self._watch_body(req, name.encode())
                if refusal is not None:
                    return refusal
        names = self.names.of(key_id.encode("utf-8", "surrogateescape"))
        try:
            search = find_session(self.sessions, names)
        except StoreError as exc:
            return store_unavailable(exc)
        check = _Check(self, req, key_id, algorithm, signature, message, fallback)
        return then(search, check.found)

    def _date(self, value: bytes) -> float | None:
        dates = self._dates
        if value in dates:
            return dates[value]
        when = parse_http_date(value)
        if len(dates) >= _MAX_DATES:
            dates.clear()
        dates[value] = when
        return when

    @staticmethod
    def _watch_body(req: Request, name: bytes) -> bytes | None:
        value = req.header(name)
        if not value:
            return None  # signed as absent: no digest claimed
        from fastgate.auth.hmac.digest import watch_body

        return watch_body(req, name, value)

    def keyed(self, algorithm: str, secret: str) -> Any:
        """An HMAC context keyed with ``secret``, to copy per message: OpenSSL
        derives the padded key once per key, not per request (bounded)."""
        macs = self._macs
        keyed = macs.get((algorithm, secret))
        if keyed is None:
            keyed = hmac.new(secret.encode(), digestmod=signing.HMAC_ALGORITHMS[algorithm])
            if len(macs) >= _MAX_KEYED:
                macs.clear()
            macs[(algorithm, secret)] = keyed
        return keyed

    def public_key(self, cert_id: str) -> Any:
        """The RSA public key ``cert_id`` names (None when the store has none,
        or not an RSA one), or an awaitable of it when the record must be read."""
        found = self.certificates.public_key(cert_id)
        if isinstance(found, PublicKey):
            return _rsa_key(cert_id, found)
        return self._read_public_key(cert_id, found)

    async def _read_public_key(self, cert_id: str,
                               pending: Awaitable[PublicKey]) -> rsa.RSAPublicKey | None:
        return _rsa_key(cert_id, await pending)


class _Check:
    """The rest of one request's check, once its key is found."""

    __slots__ = ("algorithm", "auth", "entry", "fallback", "key_id", "message", "req",
                 "signature", "skey")

    def __init__(self, auth: HmacAuth, req: Request, key_id: str, algorithm: str,
                 signature: bytes, message: bytes, fallback: bytes) -> None:
        self.auth = auth
        self.req = req
        self.key_id = key_id
        self.algorithm = algorithm
        self.signature = signature
        self.message = message
        self.fallback = fallback
        self.skey = ""
        self.entry: CachedSession | None = None

    def found(self, found: Found) -> Outcome:
        if found is None:
            log.info("HMAC: keyId names no key")
            return INVALID
        self.skey, entry = found
        self.entry = entry
        session = entry.session
        if self.algorithm.startswith("rsa"):
            cert_id = session.get("rsa_certificate_id")
            if not cert_id or not session.get("enable_http_signature_validation"):
                log.info("HMAC: key has no rsa_certificate_id or RSA not enabled for it")
                return INVALID
            try:
                key = self.auth.public_key(str(cert_id))
            except StoreError as exc:
                return store_unavailable(exc)
            if isinstance(key, Awaitable):
                return then(key, self.verify_rsa)
            return self.verify_rsa(key)
        secret = session.get("hmac_string")
        if not secret or not isinstance(secret, str) or not (
                session.get("hmac_enabled") or session.get("enable_http_signature_validation")):
            log.info("HMAC: key has no hmac_string or HMAC not enabled for it")
            return INVALID
        keyed = self.auth.keyed(self.algorithm, secret)
        if not signing.matches(_mac(keyed, self.message), self.signature) \
                and not (self.fallback and signing.matches(_mac(keyed, self.fallback),
                                                           self.signature)):
            log.info("HMAC: signature does not match")
            return INVALID
        return self.verified()

    def verify_rsa(self, key: rsa.RSAPublicKey | None) -> Outcome:
        if key is None:
            return INVALID
        raw = signing.decode_signature(self.signature)
        if raw is None:
            log.info("HMAC: RSA signature is not base64")
            return INVALID
        for message in (self.message, self.fallback):
            if not message:
                continue
            try:
                key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            return self.verified()
        log.info("HMAC: RSA signature does not match")
        return INVALID

    def verified(self) -> Outcome:
        auth = self.auth
        if auth.replay_ttl > 0:
            name = hashlib.sha256(self.key_id.encode("utf-8", "surrogateescape") + b"\n"
                                  + self.signature).hexdigest()
            try:
                claim = auth.store.claim_once("hmac-" + name, auth.replay_ttl)
            except StoreError as exc:
                return store_unavailable(exc)
            return then(claim, self.fresh)
        return self.accept()

    def fresh(self, first: bool) -> Outcome:
        if not first:
            log.info("HMAC: signature replayed")
            return INVALID
        return self.accept()

    def accept(self) -> Outcome:
        assert self.entry is not None
        return self.auth.identity.accept(self.req, (self.skey, self.entry))


METHOD = AuthMethodSpec(
    name="hmac",
    enabled_by=("enable_signature_checking",),
    order=40,
    identity="hmac_key",
    fields=frozenset({
        "hmac_allowed_clock_skew", "hmac_allowed_algorithms",
        # fastgate's own
        "hmac_accept_path_only_target", "hmac_replay_protection",
    }),
    parse=parse_config,
    build=HmacAuth,
)


def _rsa_key(cert_id: str, found: PublicKey) -> rsa.RSAPublicKey | None:
    """The record's key when it is an RSA one (Tyk checks no validity dates here)."""
    key = found.key
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if key is None:
        log.info("HMAC: rsa_certificate_id %s names no certificate in the store", cert_id)
    else:
        log.info("HMAC: certificate %s holds no RSA public key", cert_id)
    return None
