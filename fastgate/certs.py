"""The certificate store: Tyk's certificate ids, records and metadata.

A certificate is added as a PEM body (Tyk's ``GetCertIDAndChainPEM``): any
number of ``CERTIFICATE`` blocks (a chain, leaf first), at most one private
key, or a lone ``PUBLIC KEY``.  Its id is ``org_id + hex(sha256(DER))`` of
the certificate the private key belongs to, else of the first certificate,
else of the public key.  Tyk's refusals (its texts, answered 403 by
``/tyk/certs``):

* ``Failed to decode certificate. It should be PEM encoded.`` -- no
  certificate and no public key;
* ``Found multiple private keys``;
* ``Public keys can't be combined with certificates``;
* ``certificate is expired`` -- any certificate of the body past its notAfter;
* ``tls: private key does not match public key`` -- a key for none of them;
* ``Certificate with <id> id already exists``.

The record kept in the store is the certificates' PEM, then the private key
as an encrypted PKCS#8 block (``ENCRYPTED PRIVATE KEY``: PBES2, AES-256-CBC)
whose password is ``security.private_certificate_encoding_secret``, else the
gateway ``secret``.  **fastgate differs**: Tyk encrypts the key with Go's
legacy PEM encryption (``Proc-Type: 4,ENCRYPTED``, an MD5 key derivation and
no integrity check); a record is readable by the gateway that wrote it and
by any sharing its secret, not by Tyk.  A private key never leaves the store
through the API: the metadata says ``has_private`` only.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import re
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

__all__ = ["CertError", "ClientCertificate", "StoredCertificate", "prepare", "read_record"]

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n?-----END \1-----", re.DOTALL)

DECODE_FAILED = "Failed to decode certificate. It should be PEM encoded."
MULTIPLE_KEYS = "Found multiple private keys"
PUBLIC_WITH_CERTS = "Public keys can't be combined with certificates"
EXPIRED = "certificate is expired"
KEY_MISMATCH = "tls: private key does not match public key"


class CertError(ValueError):
    """Why a PEM body cannot be stored (Tyk's message)."""


def _blocks(data: bytes) -> list[tuple[str, bytes]]:
    """The PEM blocks of ``data``: (type, DER), in order; undecodable ones skipped
    as Go's pem.Decode skips what is not a block."""
    out = []
    for match in _BLOCK.finditer(data):
        body = match.group(2)
        if b":" in body.split(b"\n", 1)[0]:
            # Headers (Proc-Type, DEK-Info): a legacy encrypted block.
            body = body.partition(b"\n\n")[2]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except ValueError:
            continue
        out.append((match.group(1).decode(), der))
    return out


def _pem(kind: str, der: bytes) -> bytes:
    text = base64.encodebytes(der).replace(b"\n", b"")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        kind.encode(), b"\n".join(lines), kind.encode())


def _private_key(kind: str, der: bytes) -> PrivateKeyTypes:
    if kind == "RSA PRIVATE KEY" or kind == "EC PRIVATE KEY":
        return serialization.load_pem_private_key(_pem(kind, der), password=None)
    return serialization.load_der_private_key(der, password=None)


def _public_der(public: Any) -> bytes:
    return bytes(public.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))


def prepare(body: bytes, password: bytes,
            now: datetime.datetime | None = None) -> tuple[str, bytes]:
    """``(id without the org prefix, the record to store)`` for a PEM body.
    Raises CertError (Tyk's messages)."""
    now = now or datetime.datetime.now(datetime.UTC)
    certificates: list[x509.Certificate] = []
    key_block: tuple[str, bytes] | None = None
    public: bytes | None = None
    for kind, der in _blocks(body):
        if kind.endswith("PRIVATE KEY"):
            if key_block is not None:
                raise CertError(MULTIPLE_KEYS)
            key_block = (kind, der)
        elif kind == "CERTIFICATE":
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError as exc:
                raise CertError(f"x509: malformed certificate: {exc}") from None
            if cert.not_valid_after_utc < now:
                raise CertError(EXPIRED)
            certificates.append(cert)
        elif kind == "PUBLIC KEY":
            public = der
    if not certificates:
        if public is None:
            raise CertError(DECODE_FAILED)
        try:
            serialization.load_der_public_key(public)
        except ValueError:
            raise CertError(DECODE_FAILED) from None
        return hashlib.sha256(public).hexdigest(), _pem("PUBLIC KEY", public)
    if public is not None:
        raise CertError(PUBLIC_WITH_CERTS)
    record = b"\n".join(
        cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)
    chosen = certificates[0]
    if key_block is not None:
        try:
            key = _private_key(*key_block)
        except (ValueError, TypeError) as exc:
            raise CertError(f"tls: failed to parse private key: {exc}") from None
        key_der = _public_der(key.public_key())
        # Go's X509KeyPair: the key must be the first certificate's.
        if _public_der(chosen.public_key()) != key_der:
            raise CertError(KEY_MISMATCH)
        record += b"\n" + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password))
    return hashlib.sha256(chosen.public_bytes(serialization.Encoding.DER)).hexdigest(), record


def _name(name: x509.Name) -> dict[str, Any]:
    """A subject or issuer as Go's pkix.Name marshals to JSON (the common fields)."""
    def values(oid: x509.ObjectIdentifier) -> list[str] | None:
        found = [str(a.value) for a in name.get_attributes_for_oid(oid)]
        return found or None

    common = values(NameOID.COMMON_NAME)
    serial = values(NameOID.SERIAL_NUMBER)
    return {
        "Country": values(NameOID.COUNTRY_NAME),
        "Organization": values(NameOID.ORGANIZATION_NAME),
        "OrganizationalUnit": values(NameOID.ORGANIZATIONAL_UNIT_NAME),
        "Locality": values(NameOID.LOCALITY_NAME),
        "Province": values(NameOID.STATE_OR_PROVINCE_NAME),
        "StreetAddress": values(NameOID.STREET_ADDRESS),
        "PostalCode": values(NameOID.POSTAL_CODE),
        "SerialNumber": serial[0] if serial else "",
        "CommonName": common[0] if common else "",
        "Names": [{"Type": [int(p) for p in a.oid.dotted_string.split(".")],
                   "Value": str(a.value)} for a in name],
        "ExtraNames": None,
    }


def _time(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoredCertificate:
    """A record read back from the store."""

    cert_id: str
    chain: Sequence[x509.Certificate]
    public_key: bytes | None  # DER, for a public-key record
    has_private: bool

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    def fingerprint(self) -> str:
        """Tyk's: sha256 of the **last** certificate of the record (its quirk),
        or of the public key."""
        if self.chain:
            return hashlib.sha256(
                self.chain[-1].public_bytes(serialization.Encoding.DER)).hexdigest()
        return hashlib.sha256(self.public_key or b"").hexdigest()

    def _dns_names(self) -> list[str]:
        leaf = self.leaf
        if leaf is None:
            return []
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return list(san.value.get_values_for_type(x509.DNSName))

    def _is_ca(self) -> bool:
        return self.leaf is not None and is_ca(self.leaf)

    def leaf_der(self) -> bytes | None:
        """The DER of the record's first certificate (the one its id names
        when it has no private key), or None for a public-key record."""
        leaf = self.leaf
        return leaf.public_bytes(serialization.Encoding.DER) if leaf is not None else None

    @functools.cached_property
    def leaf_sha256(self) -> str:
        """Hex SHA-256 of :meth:`leaf_der` ("" for a public-key record)."""
        der = self.leaf_der()
        return hashlib.sha256(der).hexdigest() if der is not None else ""

    def meta(self) -> dict[str, Any]:
        """``GET /tyk/certs/{id}``: Tyk's CertificateMeta."""
        out: dict[str, Any] = {"id": self.cert_id, "fingerprint": self.fingerprint(),
                               "has_private": self.has_private}
        leaf = self.leaf
        if leaf is not None:
            out["issuer"] = _name(leaf.issuer)
            out["subject"] = _name(leaf.subject)
            out["not_before"] = _time(leaf.not_valid_before_utc)
            out["not_after"] = _time(leaf.not_valid_after_utc)
            names = self._dns_names()
            if names:
                out["dns_names"] = names
        out["is_ca"] = self._is_ca()
        return out

    def basics(self) -> dict[str, Any]:
        """``GET /tyk/certs?mode=detailed``: Tyk's CertificateBasics."""
        leaf = self.leaf
        zero = "0001-01-01T00:00:00Z"
        return {
            "id": self.cert_id,
            "issuer_cn": _name(leaf.issuer)["CommonName"] if leaf else "",
            "subject_cn": _name(leaf.subject)["CommonName"] if leaf else "",
            "dns_names": self._dns_names() or None,
            "has_private": self.has_private,
            "not_before": _time(leaf.not_valid_before_utc) if leaf else zero,
            "not_after": _time(leaf.not_valid_after_utc) if leaf else zero,
            "is_ca": self._is_ca(),
        }


def is_ca(cert: x509.Certificate) -> bool:
    """Whether the certificate's basicConstraints say it is a CA."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


#: Tyk's answers about a client certificate's validity period.
CERT_EXPIRED = "Certificate has expired"
CERT_NOT_YET_VALID = "Certificate is not yet valid"
CERT_UNREADABLE = "Certificate cannot be read"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """The certificate a TLS client presented, read once per connection.

    ``sha256`` is the hex SHA-256 of the leaf's DER (what Tyk's ids and
    allow-lists carry after the org).  ``chain_sha256`` holds the hashes of
    the certificates OpenSSL verified the leaf through, up to a trusted CA
    (the CAs of every ``client_certificates`` list on the listener): empty
    when the chain did not verify, and then ``verify_error`` says why.
    Certificates the client sent that are not on a verified path never
    count (Tyk's chain-entry allow-listing is not repeated).
    """

    der: bytes
    sha256: str
    not_before: float
    not_after: float
    chain_sha256: frozenset[str]
    verify_error: str

    @classmethod
    def read(cls, der: bytes, verified_chain: Sequence[bytes],
             verify_error: str) -> ClientCertificate:
        try:
            leaf = x509.load_der_x509_certificate(der)
            not_before = leaf.not_valid_before_utc.timestamp()
            not_after = leaf.not_valid_after_utc.timestamp()
        except ValueError:
            not_before = not_after = float("nan")
        chain = frozenset(hashlib.sha256(entry).hexdigest() for entry in verified_chain[1:])
        return cls(der, hashlib.sha256(der).hexdigest(), not_before, not_after, chain,
                   verify_error)

    def validity_error(self, now: float) -> str | None:
        """Tyk's refusal when ``now`` is outside the leaf's validity, or None."""
        if self.not_after != self.not_after:  # NaN: cryptography could not parse it
            return CERT_UNREADABLE
        if now > self.not_after:
            return CERT_EXPIRED
        if now < self.not_before:
            return CERT_NOT_YET_VALID
        return None


def read_record(cert_id: str, record: bytes) -> StoredCertificate:
    """A stored record, parsed (the private key is not decrypted)."""
    chain: list[x509.Certificate] = []
    public: bytes | None = None
    has_private = False
    for kind, der in _blocks(record):
        if kind == "CERTIFICATE":
            chain.append(x509.load_der_x509_certificate(der))
        elif kind == "PUBLIC KEY":
            public = der
        elif kind.endswith("PRIVATE KEY"):
            has_private = True
    return StoredCertificate(cert_id, tuple(chain), public, has_private)


def load_into(context: ssl.SSLContext, record: bytes, password: bytes) -> None:
    """Serve (or present) a record's chain and private key from ``context``.
    The record holds the key encrypted: OpenSSL decrypts it with the
    password, and nothing decrypted is written anywhere.  Raises OSError or
    ValueError when the record cannot be loaded (no key, wrong password)."""
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        pem.write(record)
        pem.flush()
        context.load_cert_chain(pem.name, password=password)


def private_key(record: bytes, password: bytes) -> PrivateKeyTypes | None:
    """The record's private key, decrypted; None when it has none."""
    for kind, der in _blocks(record):
        if kind == "ENCRYPTED PRIVATE KEY":
            return serialization.load_der_private_key(der, password=password)
    return None
