"""The certificate store's records, read once and kept until one changes.

Client-certificate allow-lists (``client_certificates``,
``security.certificates.apis``) and the TLS listener's trusted CAs are read
from the certificate store (:mod:`fastgate.certs`).  This cache keeps the
records read (and the ids found missing), so that a request never waits for
the store once its API's list is known.  ``/tyk/certs`` publishes a
``"certs"`` event on every change; every worker and node sharing the store
then :meth:`clears <CertificateCache.clear>` its cache, as it does on a
``"resync"``, and :attr:`~CertificateCache.generation` moves on so that what
was built from the old records is rebuilt.

An "id" with a ``/`` in it is a PEM file's path instead (store ids are an
org and hex digits), read the same way: Tyk's certificate manager takes
paths wherever it takes ids.  A file is read again after a clear.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastgate.certs import StoredCertificate, read_record
from fastgate.storage.base import Store

__all__ = ["EVENT_CERTS", "CertificateCache"]

#: The store event ``/tyk/certs`` publishes (payload: the certificate id).
EVENT_CERTS = "certs"


def _read_file(path: str) -> bytes | None:
    """A PEM file named where an id is expected (Tyk's certificate manager
    takes paths too), or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class CertificateCache:
    """Certificate records by id, read from the store on demand."""

    __slots__ = ("_records", "generation", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._records: dict[str, StoredCertificate | None] = {}
        #: Moves on every clear(): a list built from an older generation is stale.
        self.generation = 0

    def cached(self, ids: Sequence[str]) -> list[StoredCertificate | None] | None:
        """The records of ``ids`` (None for an id not in the store) when all
        are known, else None."""
        records = self._records
        try:
            return [records[cert_id] for cert_id in ids]
        except KeyError:
            return None

    async def get(self, ids: Sequence[str]) -> list[StoredCertificate | None]:
        """The records of ``ids``, read from the store where not known yet.
        Raises StoreError when the store cannot be read."""
        generation = self.generation
        found: list[StoredCertificate | None] = []
        for cert_id in ids:
            if cert_id in self._records:
                found.append(self._records[cert_id])
                continue
            record = _read_file(cert_id) if "/" in cert_id else \
                await self.store.get_certificate(cert_id)
            try:
                stored = read_record(cert_id, record) if record is not None else None
            except ValueError:
                stored = None  # not written by /tyk/certs: as good as missing
            if generation == self.generation:  # no change published meanwhile
                self._records[cert_id] = stored
            found.append(stored)
        return found

    def clear(self) -> None:
        """Forget every record (a certificate was added or removed somewhere)."""
        self._records = {}
        self.generation += 1
