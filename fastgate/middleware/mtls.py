"""Static mutual TLS: ``use_mutual_tls_auth`` with a ``client_certificates`` allow-list.

The first step of an API's chain when the definition turns it on (keyless
APIs included, as in Tyk's ``CertificateCheckMW``).  The allow-list is the
API's ``client_certificates`` plus the gateway's ``security.certificates.apis``:
ids of the certificate store (``/tyk/certs``).  A request passes when

* its connection's **leaf** certificate is one of them (and is within its
  validity period), or
* the leaf **verified** (OpenSSL, at the handshake: signatures, dates,
  ``clientAuth`` purpose) through one of them that is a CA -- the listener
  trusts the CAs of every allow-list and records the verified chain
  (:class:`fastgate.certs.ClientCertificate`).

**fastgate differs** from Tyk, which admits a request when *any* certificate
the client sends -- chain entries included -- is on the list: a client that
appends an allow-listed certificate behind a leaf of its own is refused
here.  Refusals are Tyk's, all 403: ``TLS not enabled`` (plain HTTP),
``Client TLS certificate is required``, ``Certificate has expired`` (also
``Certificate is not yet valid``), ``Certificate with SHA256 <leaf hex> not
allowed``.  The handshake never fails for a certificate: every refusal is an
HTTP answer the client can read, on a listener that also serves APIs
without mTLS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from fastgate import responses
from fastgate.certs import ClientCertificate, StoredCertificate, is_ca
from fastgate.services import store_unavailable
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services
    from fastgate.storage.certificates import CertificateCache

__all__ = ["CertificateCheck", "allowed_cas"]

TLS_NOT_ENABLED = responses.error_response(403, "TLS not enabled")
CERT_REQUIRED = responses.error_response(403, "Client TLS certificate is required")


class _AllowList:
    __slots__ = ("cas", "generation", "leaves")

    def __init__(self, records: Sequence[StoredCertificate | None], generation: int) -> None:
        self.generation = generation
        #: The id of every certificate listed by its sha256; of those that are CAs.
        self.leaves: dict[str, str] = {
            record.leaf_sha256: record.cert_id for record in records
            if record is not None and record.leaf is not None}
        self.cas: dict[str, str] = {
            record.leaf_sha256: record.cert_id for record in records
            if record is not None and record.leaf is not None and is_ca(record.leaf)}


def allowed_cas(records: Sequence[StoredCertificate | None]) -> list[bytes]:
    """The DER of the CA certificates among ``records``: what a listener
    trusts to verify client certificates with."""
    return [der for record in records if record is not None and record.leaf is not None
            and is_ca(record.leaf) and (der := record.leaf_der()) is not None]


class CertificateCheck:
    """Refuses a request whose client certificate is not allowed (403)."""

    name: ClassVar[str] = "mutual_tls"

    __slots__ = ("_allow", "cache", "clock", "ids")

    def __init__(self, ids: Sequence[str], cache: CertificateCache,
                 clock: Callable[[], float]) -> None:
        self.ids = tuple(dict.fromkeys(ids))
        self.cache = cache
        self.clock = clock
        self._allow: _AllowList | None = None

    @classmethod
    def for_api(cls, spec: ApiSpec, services: Services) -> CertificateCheck:
        """The API's ``client_certificates`` with ``security.certificates.apis``."""
        assert spec.client_certificates is not None
        return cls((*spec.client_certificates, *services.config.api_client_certificates),
                   services.certificates, services.clock)

    def present(self, req: Request) -> bool:
        """Whether the connection has a client certificate: static mTLS is one
        of the alternatives of ``auth_mode: "any"`` (:mod:`.any_auth`)."""
        return req.client_certificate is not None

    def process(self, req: Request) -> Outcome:
        if not req.tls:
            return TLS_NOT_ENABLED
        cert = req.client_certificate
        if cert is None:
            return CERT_REQUIRED
        allow = self._allow
        if allow is None or allow.generation != self.cache.generation:
            generation = self.cache.generation
            records = self.cache.cached(self.ids)
            if records is None:
                return self._fetch_and_check(req, cert)
            allow = self._allow = _AllowList(records, generation)
        return self._check(req, cert, allow)

    async def _fetch_and_check(self, req: Request, cert: ClientCertificate) -> bytes | None:
        generation = self.cache.generation
        try:
            records = await self.cache.get(self.ids)
        except StoreError as exc:
            return store_unavailable(exc)
        allow = _AllowList(records, generation)
        if generation == self.cache.generation:
            self._allow = allow
        return self._check(req, cert, allow)

    def _check(self, req: Request, cert: ClientCertificate, allow: _AllowList) -> bytes | None:
        listed = allow.leaves.get(cert.sha256)
        if listed is not None:
            problem = cert.validity_error(self.clock())
            if problem is not None:
                return responses.error_response(403, problem)
            req.certificate_id = listed
            return None
        for sha256 in cert.chain_sha256:
            ca = allow.cas.get(sha256)
            if ca is not None:
                # Verified by OpenSSL through an allowed CA, dates included.
                req.certificate_id = ca
                return None
        problem = cert.validity_error(self.clock())
        if problem is not None:
            return responses.error_response(403, problem)
        return responses.error_response(403, f"Certificate with SHA256 {cert.sha256} not allowed")
