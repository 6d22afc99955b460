"""Tyk's ``request_signing``: the gateway signs the request it sends upstream,
so the upstream can tell it came through the gateway.

``request_signing{is_enabled, key_id, algorithm, secret, certificate_id,
header_list, signature_header}``: the signature is Tyk's (draft-cavage, the
same scheme :mod:`.tyk` verifies), written to ``signature_header`` as
``Signature keyId="..",algorithm="..",headers="..",signature=".."``, or, when
that is empty, to ``Authorization`` (replacing the client's, as in Tyk).

* ``algorithm``: ``hmac-sha1/256/384/512`` with ``secret`` (its bytes as
  written), or ``rsa-sha256`` with the private key of the certificate-store
  record ``certificate_id`` (PKCS#1 v1.5); checked against
  ``hmac_allowed_algorithms`` when the API sets it;
* what is signed: ``header_list`` names the fields, and those the request
  has are signed (none: ``(request-target) date``); an empty list signs
  ``(request-target)`` and every end-to-end field of the request; a ``Date``
  is added when the request has none and ``date`` is signed.  ``Host`` is
  the one the upstream receives (the target's, unless
  ``preserve_host_header``); hop-by-hop fields are never signed (the proxy
  does not forward them);
* ``(request-target)`` is the method and the target the upstream receives:
  the path after the listen path is stripped, **with the query** -- as Tyk
  signs, and as fastgate verifies (Tyk verifies without the query: the one
  scheme, signed and verified on the same target).

It runs last in the chain (after the global headers: Tyk signs after its
transforms).  **fastgate differs**: Tyk answers each request with 500 when
the settings are incomplete (no key id, no secret, an algorithm it does not
support); fastgate refuses the definition when it loads, naming the field.
A certificate that is missing or holds no RSA private key answers 500
"Certificate not found" / "Certificate does not contain RSA private key", as
in Tyk (the store is read per certificate change, not per request).
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastgate import certs
from fastgate._core import signing
from fastgate.auth.hmac.tyk import ALGORITHMS
from fastgate.responses import error_response
from fastgate.services import store_unavailable, then
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["RequestSigning", "RequestSigningConfig", "parse_request_signing"]

log = logging.getLogger(__name__)

#: Fields the proxy never forwards as they are (so never signed).
_NOT_SIGNED = frozenset({b"connection", b"keep-alive", b"te", b"trailer",
                         b"transfer-encoding", b"upgrade", b"expect",
                         # rewritten by the proxy on the way (the client's value is not sent)
                         b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
NOT_FOUND = error_response(500, "Certificate not found")
NOT_RSA = error_response(500, "Certificate does not contain RSA private key")


@dataclass(frozen=True, slots=True)
class RequestSigningConfig:
    """The ``request_signing`` section, checked."""

    key_id: str
    algorithm: str
    secret: str = ""
    certificate_id: str = ""
    header_list: tuple[str, ...] = ()
    signature_header: str = ""


def parse_request_signing(top: FieldReader) -> RequestSigningConfig | None:
    """The section, or None when it is off; a ConfigError names the field
    that makes it unusable."""
    section = top.section("request_signing")
    if not section.boolean("is_enabled"):
        return None
    key_id = section.string("key_id")
    algorithm = section.string("algorithm")
    if not key_id:
        raise section.error("key_id", "is required to sign requests")
    allowed = top.string_list("hmac_allowed_algorithms") or ALGORITHMS
    if algorithm not in allowed or algorithm not in ALGORITHMS:
        raise section.error("algorithm", f"{algorithm!r} is not supported (use one of: "
                            + ", ".join(a for a in ALGORITHMS if a in allowed) + ")")
    secret = section.string("secret")
    certificate_id = section.string("certificate_id")
    if algorithm.startswith("rsa"):
        if not certificate_id:
            raise section.error("certificate_id", "is required for " + algorithm)
    elif not secret:
        raise section.error("secret", "is required for " + algorithm)
    headers = tuple(name.strip().lower() for name in section.string_list("header_list"))
    for name in headers:
        if not name or any(c.isspace() for c in name):
            raise section.error("header_list", f"{name!r} is not a field name")
    return RequestSigningConfig(
        key_id=key_id, algorithm=algorithm, secret=secret, certificate_id=certificate_id,
        header_list=headers, signature_header=section.string("signature_header"))


class RequestSigning:
    """Signs the request forwarded upstream (see the module docstring)."""

    name: ClassVar[str] = "request_signing"

    def __init__(self, spec: ApiSpec, config: RequestSigningConfig,
                 services: Services) -> None:
        self.config = config
        self.algorithm = config.algorithm
        self.rsa = config.algorithm.startswith("rsa")
        self.secret = config.secret.encode()
        self.listen_path = spec.listen_path.encode()
        self.strip = spec.strip_listen_path
        self.target_path = spec.target_path.encode()
        self.host = None if spec.preserve_host_header else spec.target_host_header.encode()
        header = config.signature_header or "Authorization"
        self.header = header.encode("latin-1")
        self.header_lname = self.header.lower()
        self.prefix = ('Signature keyId="' + config.key_id + '",algorithm="' + config.algorithm
                       + '",headers="').encode()
        self.store = services.store
        self.certificates = services.certificates
        self.password = (services.config.private_certificate_encoding_secret
                         or services.config.secret).encode()
        self._key: tuple[int, rsa.RSAPrivateKey | bytes] | None = None

    def target(self, req: Request) -> bytes:
        """The request target the upstream receives (as the proxy builds it)."""
        path = req.path
        if self.strip:
            rest = path[len(self.listen_path):]
            target = self.target_path + (rest if rest.startswith(b"/") else b"/" + rest)
        else:
            target = self.target_path + path if self.target_path else path
        return target + b"?" + req.query if req.query else target

    def process(self, req: Request) -> Outcome:
        if not self.rsa:
            self._sign(req, None)
            return None
        generation = self.certificates.generation
        known = self._key
        if known is not None and known[0] == generation:
            return self._sign_rsa(req, known[1])
        try:
            record = self.store.get_certificate(self.config.certificate_id)
        except StoreError as exc:
            return store_unavailable(exc)
        return then(record, lambda raw: self._loaded(req, generation, raw))

    def _loaded(self, req: Request, generation: int, record: bytes | None) -> Outcome:
        key: rsa.RSAPrivateKey | bytes
        if record is None:
            key = NOT_FOUND
        else:
            try:
                private = certs.private_key(record, self.password)
            except (ValueError, TypeError) as exc:
                log.error("request_signing: certificate %s: private key unreadable: %s",
                          self.config.certificate_id, exc)
                private = None
            key = private if isinstance(private, rsa.RSAPrivateKey) else NOT_RSA
        if key is NOT_FOUND or key is NOT_RSA:
            log.error("request_signing: certificate %s: %s", self.config.certificate_id,
                      "not found" if key is NOT_FOUND else "holds no RSA private key")
        self._key = (generation, key)
        return self._sign_rsa(req, key)

    def _sign_rsa(self, req: Request, key: rsa.RSAPrivateKey | bytes) -> Outcome:
        if isinstance(key, bytes):
            return key
        self._sign(req, key)
        return None

    def _sign(self, req: Request, key: rsa.RSAPrivateKey | None) -> None:
        names = self._signed_names(req)
        host = self.host

        def field(lname: bytes) -> bytes | None:
            if lname == b"host" and host is not None:
                return host
            return req.header(lname)

        message = signing.signing_string(req.method, self.target(req), names, field)
        if key is None:
            encoded = signing.encode_signature(
                signing.sign_hmac(self.algorithm, self.secret, message))
        else:
            encoded = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
        value = self.prefix + " ".join(names).encode("latin-1") + b'",signature="' \
            + encoded + b'"'
        req.remove_header(self.header_lname)
        req.add_header(self.header, value)

    def _signed_names(self, req: Request) -> list[str]:
        """Tyk's generateHeaderList, without hop-by-hop fields; adds a Date
        when one is signed and missing."""
        listed = self.config.header_list
        names: list[str]
        if not listed:
            names = ["(request-target)"]
            seen: set[bytes] = set()
            for lname, _name, _value in req.request_headers:
                if lname in seen or lname in _NOT_SIGNED or lname.startswith(b"proxy-") \
                        or lname == self.header_lname:
                    continue
                seen.add(lname)
                names.append(lname.decode("latin-1"))
            if b"date" not in seen:
                names.append("date")
        else:
            names = [name for name in listed
                     if name == "(request-target)" or (name == "host" and self.host)
                     or req.header(name.encode("latin-1"))]
            if not names:
                names = ["(request-target)", "date"]
        if "date" in names and not req.header(b"date"):
            req.add_header(b"Date", formatdate(time.time(), usegmt=True).encode())
        return names
