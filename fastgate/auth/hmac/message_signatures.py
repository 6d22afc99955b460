"""RFC 9421 HTTP Message Signatures as an authentication method
(fastgate's ``http_message_signatures`` section; Tyk and Kong OSS have none).

The client signs chosen components of its request and sends
``Signature-Input`` (what is covered, and the signature parameters) and
``Signature``; the ``keyid`` parameter names a key, looked for where an
auth-token key is (``generateToken(org, keyid)``, then the id as given;
:func:`fastgate.auth.auth_token.token_candidates`, ``hash_keys`` respected).
A key verifies:

* ``hmac-sha256`` with its ``hmac_string`` -- the secret's bytes as stored,
  not base64-decoded, as Tyk's HMAC -- when ``hmac_enabled`` (or
  ``enable_http_signature_validation``) is set;
* ``ed25519``, ``ecdsa-p256-sha256``, ``rsa-pss-sha512``,
  ``rsa-v1_5-sha256`` with the public key in the certificate store that its
  ``rsa_certificate_id`` names (a ``PUBLIC KEY`` record, or a certificate's
  key; an expired certificate verifies nothing), when
  ``enable_http_signature_validation`` is set.

The algorithm (RFC 9421 §3.2 step 6): the ``alg`` parameter when present,
which must be allowed and fit the key; absent, the key decides -- a key
with an HMAC secret only: ``hmac-sha256``; a public key: its type
(Ed25519, P-256); an RSA key: the one RSA algorithm allowed, if exactly one
is (PSS and PKCS#1 v1.5 cannot be told apart), else refused; a key with
both a secret and a certificate needs ``alg``.

Per request, in this order (every check before the key is looked up does
not depend on the key, so neither time nor a lookup is an oracle):

1. no ``Signature-Input`` or no ``Signature``: 401 "Authorization field
   missing" with ``WWW-Authenticate: Signature``;
2. the fields parse strictly (:func:`.rfc9421.parse_signatures`); else 400;
3. the signature is chosen: those whose label is ``label`` (when set) and
   whose ``tag`` parameter is ``tag`` (when set); exactly one must remain
   -- labels carry no meaning an intermediary cannot change (RFC 9421
   §7.2.2), so without ``label`` / ``tag`` a request carries one signature;
4. its parameters: ``created`` present, not after now + ``clock_skew``, not
   before now - ``max_age`` - ``clock_skew``; ``expires`` (when present) not
   before ``created`` nor before now - ``clock_skew``; ``alg`` (when present)
   allowed; a ``nonce`` when ``nonce_required``; every
   ``required_components`` entry covered; a request with a body covering
   ``content-digest`` (or the legacy ``digest``) unless
   ``require_content_digest`` is false; a ``keyid``;
5. the signature base is built (:func:`.rfc9421.signature_base`);
6. the key is found and the signature verified;
7. a signature with a ``nonce`` (required or not) is accepted once: the
   nonce is claimed in the store (:meth:`fastgate.storage.base.Store.claim_once`,
   Redis ``SET NX PX``, so across nodes) for as long as the signature could
   still be accepted; claimed only after the signature verified, so nobody
   can burn another signer's nonces;
8. when ``content-digest`` or ``digest`` is covered, the body is checked
   against it as it streams through (:func:`fastgate.auth.hmac.digest.watch_body`;
   a malformed header 400, a mismatch refused before the upstream sees the
   body's end).

Steps 3-7 answer 401 "Authorization field missing, malformed or invalid"
with ``WWW-Authenticate: Signature``, byte-identical whatever the cause; the
reason is logged, never the key id or a secret.  A store that cannot be
asked answers 503 as for every method.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from fastgate.auth.auth_token import token_candidates
from fastgate.auth.hmac import rfc9421, structured
from fastgate.auth.hmac.digest import watch_body
from fastgate.auth.hmac.rfc9421 import (
    ALGORITHMS,
    MalformedSignature,
    RequestView,
    SharedSecret,
    SignatureBaseError,
    SignatureInput,
)
from fastgate.auth.hmac.structured import Item, Token
from fastgate.auth.identity import Found, Identity, find_session
from fastgate.auth.method import AuthMethodSpec
from fastgate.responses import json_response
from fastgate.services import store_unavailable, then
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError
from fastgate.storage.certificates import PublicKey

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["METHOD", "MessageSignatureAuth", "MessageSignaturesConfig", "parse_config"]

log = logging.getLogger(__name__)

_CHALLENGE = ((b"WWW-Authenticate", b"Signature"),)
MISSING = json_response(401, {"error": "Authorization field missing"},
                        extra_headers=_CHALLENGE)
MALFORMED = json_response(400, {"error": "Malformed Signature-Input or Signature field"})
INVALID = json_response(401, {"error": "Authorization field missing, malformed or invalid"},
                        extra_headers=_CHALLENGE)

#: What a signature covers unless the definition says otherwise: the method
#: and the whole target URI (scheme, authority, path and query).
DEFAULT_REQUIRED: tuple[Item, ...] = (Item("@method"), Item("@target-uri"))
_DIGEST_FIELDS = ("content-digest", "digest")
_KNOWN_DERIVED = frozenset({"@method", "@target-uri", "@authority", "@scheme",
                            "@request-target", "@path", "@query", "@query-param"})
#: Parsed public keys remembered per API at most.
_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class MessageSignaturesConfig:
    """The ``http_message_signatures`` section (see the module docstring)."""

    algorithms: tuple[str, ...] = ALGORITHMS
    #: Component identifiers every signature must cover.
    required_components: tuple[Item, ...] = DEFAULT_REQUIRED
    max_age: int = 300
    nonce_required: bool = False
    label: str = ""
    tag: str = ""
    clock_skew: int = 5
    require_content_digest: bool = True


def _component(section: FieldReader, index: int, entry: str) -> Item:
    """One ``required_components`` entry: a bare name (``@method``,
    ``content-type``) or a serialised identifier (``"@query-param";name="id"``)."""
    where = f"required_components[{index}]"
    if entry.startswith('"'):
        try:
            item = structured.parse_item(entry.encode("ascii", "replace"), unique=True)
        except ValueError as exc:
            raise section.error(where, f"is not a component identifier: {exc}") from None
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise section.error(where, "is not a component identifier (a String)")
    else:
        item = Item(entry)
    name = str(item.value)
    params = dict(item.params)
    if name.startswith("@"):
        if name not in _KNOWN_DERIVED:
            raise section.error(where, f"{name!r} is not a derived component of a request "
                                "(@method, @target-uri, @authority, @scheme, "
                                "@request-target, @path, @query, @query-param)")
        if (name == "@query-param") != ("name" in params) or set(params) - {"name"}:
            raise section.error(where, '"@query-param" takes exactly one parameter, name '
                                '(e.g. "\\"@query-param\\";name=\\"id\\""); others take none')
    else:
        if not name or name != name.lower() or not rfc9421.is_field_name(name):
            raise section.error(where, f"{name!r} is not a lower-case field name")
        if set(params) - {"sf", "key", "bs"}:
            raise section.error(where, "a field takes only the sf, key or bs parameters")
    return item


def parse_config(top: FieldReader) -> MessageSignaturesConfig:
    """The method's settings from an API definition (ConfigError names the field)."""
    section = top.section("http_message_signatures")
    section.boolean("enabled")
    algorithms = section.string_list("algorithms") if section.get("algorithms") is not None \
        else ALGORITHMS
    if not algorithms:
        raise section.error("algorithms", "allows nothing: list at least one of "
                            + ", ".join(ALGORITHMS))
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise section.error("algorithms", f"unsupported algorithm {algorithm!r} "
                                "(supported: " + ", ".join(ALGORITHMS) + ")")
    if section.get("required_components") is None:
        required = DEFAULT_REQUIRED
    else:
        required = tuple(_component(section, index, entry) for index, entry in
                         enumerate(section.string_list("required_components")))
    label = section.string("label")
    if label:
        try:
            structured.serialize_dictionary({label: Item(True)})
        except ValueError:
            raise section.error("label", f"{label!r} is not a signature label (a "
                                "structured-field key: a-z 0-9 _ - . *)") from None
    tag = section.string("tag")
    if tag and any(not " " <= char <= "~" for char in tag):
        raise section.error("tag", "holds only printable ASCII")
    return MessageSignaturesConfig(
        algorithms=tuple(dict.fromkeys(algorithms)),
        required_components=required,
        max_age=section.integer("max_age", 300, minimum=1),
        nonce_required=section.boolean("nonce_required"),
        label=label,
        tag=tag,
        clock_skew=section.integer("clock_skew", 5, minimum=0),
        require_content_digest=section.boolean("require_content_digest", True),
    )


def _has_body(req: Request) -> bool:
    """Whether the request head announces a body."""
    if req.header(b"transfer-encoding") is not None:
        return True
    length = req.header(b"content-length")
    return length is not None and length.strip(b" \t") not in (b"", b"0")


def _usable(entry: CachedSession) -> bool:
    """Whether a session can verify a signature at all (a secret or a certificate)."""
    effective = entry.effective
    secret = entry.session.get("hmac_string")
    if isinstance(secret, str) and secret and (
            effective.get("hmac_enabled") or effective.get("enable_http_signature_validation")):
        return True
    cert_id = entry.session.get("rsa_certificate_id")
    return isinstance(cert_id, str) and bool(cert_id) and bool(
        effective.get("enable_http_signature_validation"))


class MessageSignatureAuth:
    """Verifies RFC 9421 request signatures (see the module docstring)."""

    name: ClassVar[str] = "http_message_signatures"

    def __init__(self, spec: ApiSpec, config: MessageSignaturesConfig,
                 services: Services) -> None:
        self.config = config
        self.allowed = frozenset(config.algorithms)
        rsa_allowed = [alg for alg in config.algorithms if alg.startswith("rsa-")]
        #: The RSA algorithm a signature without ``alg`` means ("" when ambiguous).
        self.rsa_default = rsa_allowed[0] if len(rsa_allowed) == 1 else ""
        self.required = frozenset(rfc9421.component_id(item)
                                  for item in config.required_components)
        self.clock = services.clock
        self.store = services.store
        self.sessions = services.sessions
        self.certificates = services.certificates
        self.names = token_candidates(spec.org_id, hash_keys=services.hash_keys,
                                      hash_function=services.hash_key_function)
        self.identity = Identity(spec, METHOD.identity)

    def present(self, req: Request) -> bool:
        """Whether the request carries a signature (``auth_mode: any``)."""
        return req.header(b"signature-input") is not None or \
            req.header(b"signature") is not None

    # -- the request ------------------------------------------------------------

    def process(self, req: Request) -> Outcome:
        fields = [(lname, value) for lname, _, value in req.request_headers]
        inputs = [value for lname, value in fields if lname == b"signature-input"]
        values = [value for lname, value in fields if lname == b"signature"]
        if not inputs or not values:
            return MISSING
        try:
            signatures = rfc9421.parse_signatures(inputs, values)
        except MalformedSignature as exc:
            log.info("HTTP message signature: malformed fields: %s", exc)
            return MALFORMED
        signature = self._select(signatures)
        if signature is None:
            return INVALID
        now = self.clock()
        problem = self._requirements(req, signature, now)
        if problem:
            log.info("HTTP message signature %r refused: %s", signature.label, problem)
            return INVALID
        view = RequestView(req.method, "https" if req.tls else "http", req.path, req.query,
                           fields)
        try:
            base = rfc9421.signature_base(view, signature)
        except SignatureBaseError as exc:
            log.info("HTTP message signature %r: no signature base: %s", signature.label, exc)
            return INVALID
        assert signature.keyid is not None  # _requirements checked it
        names = self.names.of(signature.keyid.encode("utf-8", "surrogateescape"))
        try:
            search = find_session(self.sessions, names, _usable)
        except StoreError as exc:
            return store_unavailable(exc)
        check = _Check(self, req, signature, base, now, fields)
        return then(search, check.found)

    def _select(self, signatures: dict[str, SignatureInput]) -> SignatureInput | None:
        label, tag = self.config.label, self.config.tag
        chosen = [signature for signature in signatures.values()
                  if (not label or signature.label == label)
                  and (not tag or signature.tag == tag)]
        if len(chosen) != 1:
            log.info("HTTP message signature: %d signatures match (label %r, tag %r), "
                     "not one", len(chosen), label, tag)
            return None
        return chosen[0]

    def _requirements(self, req: Request, signature: SignatureInput, now: float) -> str:
        """Why the signature's parameters fail this API's rules ("" when they do not)."""
        config = self.config
        created, expires = signature.created, signature.expires
        if created is None:
            return "no created parameter"
        if created > now + config.clock_skew:
            return "created in the future"
        if created < now - config.max_age - config.clock_skew:
            return "older than max_age"
        if expires is not None:
            if expires < created:
                return "expires before it was created"
            if expires < now - config.clock_skew:
                return "expired"
        if signature.alg is not None and signature.alg not in self.allowed:
            return f"algorithm {signature.alg[:40]!r} not allowed"
        if config.nonce_required and not signature.nonce:
            return "no nonce"
        if signature.keyid is None:
            return "no keyid"
        covered = {rfc9421.component_id(item) for item in signature.components}
        missing = self.required - covered
        if missing:
            return "does not cover " + ", ".join(sorted(name for name, _ in missing))
        if config.require_content_digest and _has_body(req) and not any(
                name in _DIGEST_FIELDS for name, _ in covered):
            return "a request with a body must cover content-digest"
        return ""

    def accepted_until(self, signature: SignatureInput) -> float:
        """The last moment the signature could be accepted."""
        assert signature.created is not None
        config = self.config
        until = float(signature.created + config.max_age + config.clock_skew)
        if signature.expires is not None:
            until = min(until, float(signature.expires + config.clock_skew))
        return until

    # -- keys in the certificate store -------------------------------------------

    def public_key(self, cert_id: str, now: float) -> Any:
        """The public key ``cert_id`` names (None: none, or its certificate is
        not valid now), or an awaitable of it when the record must be read."""
        found = self.certificates.public_key(cert_id)
        if isinstance(found, PublicKey):
            return _usable_key(cert_id, found, now)
        return self._read_public_key(cert_id, found, now)

    async def _read_public_key(self, cert_id: str, pending: Awaitable[PublicKey],
                               now: float) -> Any:
        return _usable_key(cert_id, await pending, now)


def _usable_key(cert_id: str, found: PublicKey, now: float) -> Any:
    """The record's key, when its certificate is valid at ``now``."""
    if found.key is None:
        log.info("HTTP message signature: rsa_certificate_id %s names no usable "
                 "public key in the certificate store", cert_id)
    return found.valid_at(now)


class _Check:
    """The rest of one request's check, once its key is found."""

    __slots__ = ("algorithm", "auth", "base", "entry", "fields", "now", "req", "signature",
                 "skey")

    def __init__(self, auth: MessageSignatureAuth, req: Request, signature: SignatureInput,
                 base: bytes, now: float, fields: list[tuple[bytes, bytes]]) -> None:
        self.auth = auth
        self.req = req
        self.signature = signature
        self.base = base
        self.now = now
        self.fields = fields
        self.algorithm = ""
        self.skey = ""
        self.entry: CachedSession | None = None

    def found(self, found: Found) -> Outcome:
        if found is None:
            log.info("HTTP message signature %r: no key that can verify it",
                     self.signature.label)
            return INVALID
        self.skey, entry = found
        self.entry = entry
        effective = entry.effective
        secret = entry.session.get("hmac_string")
        hmac_ok = isinstance(secret, str) and bool(secret) and bool(
            effective.get("hmac_enabled") or effective.get("enable_http_signature_validation"))
        cert_id = entry.session.get("rsa_certificate_id")
        cert_ok = isinstance(cert_id, str) and bool(cert_id) and bool(
            effective.get("enable_http_signature_validation"))
        alg = self.signature.alg
        if alg == "hmac-sha256" or (alg is None and hmac_ok and not cert_ok):
            if not hmac_ok:
                return self._refuse("the key has no HMAC secret")
            assert isinstance(secret, str)
            self.algorithm = "hmac-sha256"
            return self.verify(SharedSecret(secret.encode("utf-8", "surrogateescape")))
        if not cert_ok:
            return self._refuse("the key has no public key" if alg else
                                "no alg, and the key has both a secret and a public key")
        assert isinstance(cert_id, str)
        self.algorithm = alg or ""
        if alg is None and hmac_ok:
            return self._refuse("no alg, and the key has both a secret and a public key")
        return then(self.auth.public_key(cert_id, self.now), self.verify)

    def _refuse(self, why: str) -> bytes:
        log.info("HTTP message signature %r refused: %s", self.signature.label, why)
        return INVALID

    def verify(self, key: Any) -> Outcome:
        if key is None:
            return self._refuse("the key's certificate is missing or not valid now")
        algorithm = self.algorithm
        if not algorithm:
            algorithm = rfc9421.default_algorithm(key) or (
                self.auth.rsa_default if isinstance(key, rsa.RSAPublicKey) else "") or ""
            if not algorithm:
                return self._refuse("no alg, and the key does not imply one")
        if algorithm not in self.auth.allowed:
            return self._refuse(f"algorithm {algorithm!r} not allowed")
        try:
            rfc9421.verify(algorithm, key, self.base, self.signature.signature)
        except InvalidSignature:
            return self._refuse(f"the {algorithm} signature does not verify")
        return self.verified()

    def verified(self) -> Outcome:
        signature = self.signature
        if not signature.nonce:
            return self.accept(True)
        assert signature.keyid is not None
        name = hashlib.sha256(signature.keyid.encode("utf-8", "surrogateescape") + b"\n"
                              + signature.nonce.encode("utf-8", "surrogateescape")).hexdigest()
        ttl = max(self.auth.accepted_until(signature) - self.now, 1.0)
        try:
            claim = self.auth.store.claim_once("msgsig-" + name, ttl)
        except StoreError as exc:
            return store_unavailable(exc)
        return then(claim, self.accept)

    def accept(self, first: bool) -> Outcome:
        if not first:
            return self._refuse("nonce replayed")
        covered = {str(item.value) for item in self.signature.components}
        for name in _DIGEST_FIELDS:
            if name in covered:
                lname = name.encode("ascii")
                value = b", ".join(v for n, v in self.fields if n == lname)
                refusal = watch_body(self.req, lname, value)
                if refusal is not None:
                    return refusal
        assert self.entry is not None
        return self.auth.identity.accept(self.req, (self.skey, self.entry))


METHOD = AuthMethodSpec(
    name="http_message_signatures",
    enabled_by=("http_message_signatures.enabled",),
    order=45,
    identity="http_signature_key",
    fields=frozenset({"http_message_signatures"}),
    parse=parse_config,
    build=MessageSignatureAuth,
)
