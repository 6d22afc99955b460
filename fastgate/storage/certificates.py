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

import math
from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization

from fastgate.certs import StoredCertificate, read_record
from fastgate.storage.base import Store

__all__ = ["EVENT_CERTS", "CertificateCache", "PublicKey"]

#: Public keys kept at most (then the cache starts again).
MAX_PUBLIC_KEYS = 10_000


class PublicKey(NamedTuple):
    """The public key a certificate-store record holds, and when it is valid."""

    #: A ``cryptography`` public key, or None: no record, or none usable.
    key: Any
    #: Unix times bounding the certificate's validity (-inf / inf: a bare key).
    not_before: float = -math.inf
    not_after: float = math.inf

    def valid_at(self, now: float) -> Any:
        """The key when its certificate is valid at ``now``, else None."""
        return self.key if self.not_before <= now <= self.not_after else None


_NO_KEY = PublicKey(None)

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

    __slots__ = ("_keys", "_records", "generation", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._records: dict[str, StoredCertificate | None] = {}
        self._keys: dict[str, PublicKey] = {}
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

    def public_key(self, cert_id: str) -> PublicKey | Awaitable[PublicKey]:
        """The public key ``cert_id``'s record holds (a key stored bare, or a
        certificate's, with its validity), parsed once; an awaitable of it
        when the record must be read first (raising StoreError)."""
        known = self._keys.get(cert_id)
        if known is not None:
            return known
        records = self.cached((cert_id,))
        if records is not None:
            return self._remember_key(cert_id, records[0], self.generation)
        return self._read_key(cert_id)

    async def _read_key(self, cert_id: str) -> PublicKey:
        generation = self.generation
        records = await self.get((cert_id,))
        return self._remember_key(cert_id, records[0], generation)

    def _remember_key(self, cert_id: str, record: StoredCertificate | None,
                      generation: int) -> PublicKey:
        found = _NO_KEY
        if record is not None:
            try:
                if record.public_key is not None:
                    found = PublicKey(serialization.load_der_public_key(record.public_key))
                elif record.leaf is not None:
                    leaf = record.leaf
                    found = PublicKey(leaf.public_key(),
                                      leaf.not_valid_before_utc.timestamp(),
                                      leaf.not_valid_after_utc.timestamp())
            except ValueError:
                found = _NO_KEY
        if generation == self.generation:
            if len(self._keys) >= MAX_PUBLIC_KEYS:
                self._keys = {}
            self._keys[cert_id] = found
        return found

    def clear(self) -> None:
        """Forget every record (a certificate was added or removed somewhere)."""
        self._records = {}
        self._keys = {}
        self.generation += 1
