"""TLS to upstreams: verification, client certificates and key pinning.

An API whose ``target_url`` is ``https://`` gets one :class:`UpstreamTls`,
which its pool of keep-alive connections asks for the ``ssl.SSLContext`` of
each new connection and which checks each connection once it is made.

* **Verification** is on by default: the system's CA bundle plus
  ``proxy_ssl_ca_file`` (gateway) and ``proxy.transport.ssl_ca_file`` (API;
  both fastgate's own), SNI and the host name checked against the
  certificate.  ``proxy_ssl_insecure_skip_verify`` (gateway) or
  ``proxy.transport.ssl_insecure_skip_verify`` (API) turns it off, as in Tyk.
* **Versions and suites**: ``proxy.transport.ssl_min_version`` /
  ``ssl_max_version`` / ``ssl_ciphers``, else the gateway's
  ``proxy_ssl_min_version`` / ``proxy_ssl_max_version`` /
  ``proxy_ssl_ciphers`` (Tyk's numbers and Go's suite names); TLS 1.2+ by
  default.
* **Client certificate** (upstream mTLS): ``security.certificates.upstream``
  (gateway), then the API's ``upstream_certificates`` (unless
  ``upstream_certificates_disabled``), each a map from a host pattern to a
  certificate-store id, or the path of a PEM file holding the certificate
  and its key (a value with a ``/``).  Within a map the most specific pattern wins:
  ``*`` < ``*.parent`` < ``*.parent:port`` < ``host`` < ``host:port``; the
  API's map wins over the gateway's (Tyk's ``getCertificateIDForHost``).
* **Pinning**: ``security.pinned_public_keys`` then the API's
  ``pinned_public_keys`` (unless ``certificate_pinning_disabled``), a map
  from a host pattern (``*``, ``*.parent``, ``host``) to comma-separated
  certificate-store ids (a stored public key or certificate: its key's
  SHA-256 over the PKIX DER) or bare SHA-256 hex fingerprints.  The
  connection's key must be one of them.  **fastgate differs**: Tyk turns
  certificate verification off when pinning and accepts a pin found
  anywhere in what the upstream sends; here verification stays on and the
  pin must be the leaf's key or one of the verified chain's (only the leaf's
  when verification is off).

Failures are 502 with a JSON error naming the reason (a certificate that
does not verify, a pin that does not match, a client certificate missing
from the store), and are logged.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fastgate._core.proxy import UpstreamRefused
from fastgate.certs import StoredCertificate, load_into
from fastgate.config import TLS_VERSIONS, UpstreamTlsOptions
from fastgate.server.openssl import peer_verification
from fastgate.storage.base import StoreError
from fastgate.storage.certificates import CertificateCache

__all__ = ["UpstreamTls", "for_host"]

_HEX = frozenset("0123456789abcdef")


def for_host(host: str, port: int, maps: Sequence[Mapping[str, str]]) -> str:
    """The value ``maps`` give ``host:port`` (later maps win; within a map
    ``*`` < ``*.parent`` < ``*.parent:port`` < ``host`` < ``host:port``), or ""."""
    found = ""
    with_port = f"{host}:{port}"
    _, dot, parent = host.partition(".")
    for entries in maps:
        if not entries:
            continue
        candidates = ["*"]
        if dot:
            candidates += ["*." + parent, f"*.{parent}:{port}"]
        candidates += [host, with_port]
        for pattern in candidates:
            value = entries.get(pattern)
            if value:
                found = value
    return found


def _key_sha256(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _record_key_sha256(record: StoredCertificate) -> str | None:
    if record.public_key is not None:
        return hashlib.sha256(record.public_key).hexdigest()
    if record.leaf is not None:
        return _key_sha256(record.leaf.public_key())
    return None


class UpstreamTls:
    """How one API speaks TLS to one upstream host (see the module docstring)."""

    def __init__(self, gateway: UpstreamTlsOptions, api: UpstreamTlsOptions, host: str,
                 port: int, certificates: CertificateCache, password: bytes) -> None:
        self.host, self.port = host, port
        self.verify = not (gateway.insecure_skip_verify or api.insecure_skip_verify)
        self.min_version = api.min_version or gateway.min_version or 771
        self.max_version = api.max_version or gateway.max_version or 772
        self.ciphers = api.ciphers or gateway.ciphers
        self.ca_files = tuple(f for f in (gateway.ca_file, api.ca_file) if f)
        #: The client certificate: a store id, or a PEM file.
        self.certificate = for_host(host, port, (gateway.certificates, api.certificates))
        # Store ids are an org and hex digits: a value with a "/" is a file
        # (Tyk's certificate manager reads a path it is given, too).
        self.certificate_is_file = "/" in self.certificate
        pins = for_host(host, 0, (gateway.pinned_public_keys, api.pinned_public_keys))
        self.pins = tuple(p.strip() for p in pins.split(",") if p.strip())
        self.cache = certificates
        self.password = password
        self._context: ssl.SSLContext | None = None
        self._fingerprints: frozenset[str] = frozenset()
        self._generation = -1

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two APIs' connections to the host interchangeable."""
        return (self.verify, self.min_version, self.max_version, self.ciphers, self.ca_files,
                self.certificate, self.pins)

    async def context(self) -> ssl.SSLContext:
        """The context of a new connection (built again when the certificate
        store changed); raises UpstreamRefused with the reason."""
        if self._context is None or self._generation != self.cache.generation:
            generation = self.cache.generation
            context = self._new_context()
            if self.certificate:
                await self._load_client_certificate(context)
            self._fingerprints = await self._resolve_pins()
            self._context, self._generation = context, generation
        return self._context

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.maximum_version = TLS_VERSIONS[self.max_version]
        if self.ciphers:
            context.set_ciphers(self.ciphers + (":@SECLEVEL=0" if self.min_version < 771
                                                else ""))
        context.set_alpn_protocols(["http/1.1"])
        if self.verify:
            for ca_file in self.ca_files:
                try:
                    context.load_verify_locations(cafile=ca_file)
                except (OSError, ValueError) as exc:
                    raise UpstreamRefused(
                        f"upstream TLS: the CA file {ca_file} cannot be used: {exc}") from None
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        name = self.certificate
        if self.certificate_is_file:
            try:
                context.load_cert_chain(name)
            except (OSError, ValueError) as exc:
                raise UpstreamRefused(f"upstream certificate {name} cannot be loaded "
                                      f"(a PEM file with the certificate and its key): "
                                      f"{exc}") from None
            return
        try:
            record = await self.cache.store.get_certificate(name)
        except StoreError as exc:
            raise UpstreamRefused(f"upstream certificate {name}: the store is "
                                  f"unavailable: {exc}") from None
        if record is None:
            raise UpstreamRefused(f"upstream certificate {name} is not in the certificate store")
        try:
            load_into(context, record, self.password)
        except (OSError, ValueError) as exc:
            raise UpstreamRefused(f"upstream certificate {name} has no usable private "
                                  f"key: {exc}") from None

    async def _resolve_pins(self) -> frozenset[str]:
        if not self.pins:
            return frozenset()
        try:
            records = await self.cache.get(self.pins)
        except StoreError as exc:
            raise UpstreamRefused(f"pinned_public_keys: the store is unavailable: {exc}") \
                from None
        fingerprints = set()
        for pin, record in zip(self.pins, records, strict=True):
            found = _record_key_sha256(record) if record is not None else None
            if found is not None:
                fingerprints.add(found)
            elif len(pin) == 64 and set(pin.lower()) <= _HEX:
                fingerprints.add(pin.lower())
        return frozenset(fingerprints)

    def check(self, transport: Any) -> str | None:
        """The reason to refuse a new connection (a pin that does not match), or None."""
        if not self.pins:
            return None
        ssl_object = transport.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject):
            return "upstream TLS: no certificate to check the pinned keys against"
        if self.verify:
            _error, chain = peer_verification(ssl_object)
        else:
            leaf = ssl_object.getpeercert(binary_form=True)
            chain = [leaf] if leaf else []
        for der in chain:
            try:
                if _key_sha256(x509.load_der_x509_certificate(der).public_key()) \
                        in self._fingerprints:
                    return None
            except ValueError:
                continue
        return (f"https://{self.host} certificate public key pinning error. "
                "Public keys do not match.")
