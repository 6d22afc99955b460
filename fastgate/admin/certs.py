"""``/tyk/certs``: the certificate store (Tyk's ``certHandler``, ``gateway/cert.go``).

* ``POST /tyk/certs?org_id=<org>``: the body is PEM (a certificate or chain,
  with or without its private key, or a public key); the id is
  ``org + sha256 hex`` (:mod:`fastgate.certs`).  200 ``{"id", "status": "ok",
  "message": "Certificate added"}``; every refusal is 403 with Tyk's text.
* ``GET /tyk/certs?org_id=<org>``: ``{"certs": [ids]}`` of that org (every id
  without ``org_id``); ``&mode=detailed``: ``{"certs": [CertificateBasics]}``.
* ``GET /tyk/certs/{id}``: Tyk's CertificateMeta, or 404 "Certificate with
  given SHA256 fingerprint not found"; ``GET /tyk/certs/a,b``: a list, with
  ``null`` for an id not found.
* ``DELETE /tyk/certs/{id}``: 200 ``{"status": "ok", "message": "removed"}``,
  found or not (as Tyk).

Certificates live in the store, so every worker and node sharing it sees the
same ones; private keys are stored encrypted and never returned.  Every
change publishes a ``"certs"`` event: each worker and node reads its
allow-lists and listener certificates (``ssl_certificates``) again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastgate import certs
from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.storage.certificates import EVENT_CERTS

if TYPE_CHECKING:
    from fastgate.admin.control import Control

NOT_FOUND = "Certificate with given SHA256 fingerprint not found"
#: A PEM body larger than this is refused (a chain of a few certificates is ~10 KiB).
MAX_BODY = 1024 * 1024


class CertsApi:
    """The ``/tyk/certs`` handlers."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway

    def _password(self) -> bytes:
        config = self.gateway.config
        return (config.private_certificate_encoding_secret or config.secret).encode()

    async def add(self, params: dict[str, str], body: bytes) -> bytes:
        if len(body) > MAX_BODY:
            raise AdminError(403, certs.DECODE_FAILED)
        try:
            cert_id, record = certs.prepare(body, self._password())
        except certs.CertError as exc:
            raise AdminError(403, str(exc)) from None
        cert_id = params.get("org_id", "") + cert_id
        if not await self.gateway.store.add_certificate(cert_id, record):
            raise AdminError(403, f"Certificate with {cert_id} id already exists")
        await self.gateway.store.publish(EVENT_CERTS, cert_id)
        return replies.ok({"id": cert_id, "status": "ok", "message": "Certificate added"})

    async def listing(self, params: dict[str, str]) -> bytes:
        org_id = params.get("org_id", "")
        ids = sorted(i for i in await self.gateway.store.list_certificates()
                     if i.startswith(org_id))
        if params.get("mode") != "detailed":
            return replies.ok({"certs": ids})
        details = []
        for cert_id in ids:
            found = await self._read(cert_id)
            if found is not None:
                details.append(found.basics())
        return replies.ok({"certs": details})

    async def get(self, item: str) -> bytes:
        ids = item.split(",")
        found = [await self._read(cert_id) for cert_id in ids]
        if len(ids) == 1:
            if found[0] is None:
                raise AdminError(404, NOT_FOUND)
            return replies.ok(found[0].meta())
        return replies.ok([cert.meta() if cert is not None else None for cert in found])

    async def delete(self, item: str) -> bytes:
        if await self.gateway.store.delete_certificate(item):
            await self.gateway.store.publish(EVENT_CERTS, item)
        return replies.ok({"status": "ok", "message": "removed"})

    async def _read(self, cert_id: str) -> certs.StoredCertificate | None:
        record = await self.gateway.store.get_certificate(cert_id)
        if record is None:
            return None
        return certs.read_record(cert_id, record)
