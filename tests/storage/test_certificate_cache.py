"""The certificate cache's public keys: parsed once per record, forgotten on a change."""

from __future__ import annotations

import asyncio
import datetime
import math

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fastgate import certs
from fastgate.storage.certificates import CertificateCache, PublicKey
from fastgate.storage.memory import MemoryStore


def test_public_keys_bare_and_from_certificates_are_cached_until_a_change():
    ca = trustme.CA()
    leaf = ca.issue_cert("signer.example")
    bare = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    async def body() -> None:
        store = MemoryStore(None)
        await store.start()
        cache = CertificateCache(store)
        cert_id, record = certs.prepare(leaf.cert_chain_pems[0].bytes(), b"")
        key_id, key_record = certs.prepare(bare, b"")
        await store.add_certificate(cert_id, record)
        await store.add_certificate(key_id, key_record)
        reads = 0
        real_get = store.get_certificate

        async def counting_get(name: str) -> bytes | None:
            nonlocal reads
            reads += 1
            return await real_get(name)

        store.get_certificate = counting_get  # type: ignore[method-assign]
        pending = cache.public_key(cert_id)
        assert not isinstance(pending, PublicKey)  # not read yet: an awaitable
        found = await pending
        assert isinstance(found, PublicKey) and found.key is not None
        now = datetime.datetime.now(datetime.UTC).timestamp()
        assert found.not_before <= now <= found.not_after < math.inf
        assert found.valid_at(now) is found.key
        assert found.valid_at(found.not_after + 1) is None
        assert cache.public_key(cert_id) is found  # synchronous and the same object
        key = await cache.public_key(key_id)  # type: ignore[misc]
        assert isinstance(key.key, ec.EllipticCurvePublicKey)
        assert (key.not_before, key.not_after) == (-math.inf, math.inf)
        missing = await cache.public_key("nope")  # type: ignore[misc]
        assert missing.key is None and missing.valid_at(now) is None
        assert reads == 3
        cache.clear()  # a certificate changed somewhere: read again
        assert (await cache.public_key(cert_id)).key is not None  # type: ignore[misc]
        assert reads == 4
        await store.close()

    asyncio.run(body())
