"""Key names and key hashing, byte for byte as Tyk (``internal/crypto`` token.go and hash.go).

Key formats (``GenerateToken``):

* ``hash_key_function`` set: standard base64, with padding, of
  ``{"org":"<org>","id":"<id>","h":"<algorithm>"}`` -- written with Go's
  ``fmt.Sprintf``, so nothing in it is escaped.  An algorithm Tyk does not
  know becomes ``murmur64``.  Such keys start with ``ey`` (``{"`` in base64).
* otherwise (legacy): ``<org_id><id>``.

A generated ``id`` is a version-4 UUID as 32 lower-case hex digits.

Hashing (``HashStr(key, algorithm)``): ``sha256``, ``murmur64`` and
``murmur128`` as named; ``murmur32`` (and anything unknown) as murmur32.
Without an algorithm, the one named by the key's own ``"h"`` is used, else
murmur32.  The store key of a key under ``hash_keys`` is ``HashKey(key)`` =
``HashStr(key)`` *without* an algorithm: the configured
``hash_key_function`` only reaches the store through the ``"h"`` of the keys
it generated, so keys made before a change of function are still found, and
legacy and custom keys hash with murmur32.  Hex digests throughout (Tyk's
``hex.EncodeToString(h.Sum(nil))``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import uuid
from typing import Final

from fastgate._core import murmur3

__all__ = [
    "HASH_ALGORITHMS",
    "generate_key",
    "hash_key",
    "key_hash_algorithm",
    "key_org",
    "make_key",
    "storage_key",
]

#: The algorithms Tyk hashes keys with (``""`` means murmur32).
HASH_ALGORITHMS: Final = ("murmur32", "murmur64", "murmur128", "sha256")
_DEFAULT_GENERATED_ALGORITHM: Final = "murmur64"  # Tyk's DefaultHashAlgorithm
_JSON_KEY_PREFIX: Final = "ey"  # '{"' in base64
_MONGO_ID = re.compile(r"[0-9A-Fa-f]{24}")


def _new_id() -> str:
    return uuid.UUID(bytes=secrets.token_bytes(16), version=4).hex


def make_key(org_id: str, key_id: str, hash_key_function: str) -> str:
    """The key Tyk files ``key_id`` under for ``org_id`` (its ``generateToken``).

    Used for custom keys (``POST /tyk/keys/{key}``, Basic-auth user names):
    a leading ``org_id`` is removed from ``key_id`` first, as Tyk does; an
    empty ``key_id`` gets a new random id.
    """
    if org_id and key_id.startswith(org_id):
        key_id = key_id[len(org_id) :]
    if not key_id:
        key_id = _new_id()
    if hash_key_function:
        if hash_key_function not in HASH_ALGORITHMS:
            hash_key_function = _DEFAULT_GENERATED_ALGORITHM
        token = f'{{"org":"{org_id}","id":"{key_id}","h":"{hash_key_function}"}}'
        return base64.b64encode(token.encode()).decode("ascii")
    return org_id + key_id


def generate_key(org_id: str, hash_key_function: str) -> str:
    """A new random key for ``org_id`` in Tyk's format (see the module docstring)."""
    return make_key(org_id, "", hash_key_function)


def _json_field(key: str, name: str) -> str | None:
    """The string field ``name`` of a JSON-format key, or None when it is not one or lacks it."""
    if not key.startswith(_JSON_KEY_PREFIX):
        return None
    try:
        # Go's decoder skips CR and LF; it insists on the padding and the alphabet.
        raw = base64.b64decode(key.replace("\r", "").replace("\n", ""), validate=True)
        fields = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, dict):
        return None
    value = fields.get(name)
    return value if isinstance(value, str) else None


def key_hash_algorithm(key: str) -> str:
    """The algorithm a key names in its ``"h"`` (Tyk's ``TokenHashAlgo``); ``""`` when none."""
    return _json_field(key, "h") or ""


def hash_key(key: str, hash_key_function: str) -> str:
    """Tyk's ``HashStr(key, hash_key_function)``: the hex digest of ``key``'s bytes.

    ``key`` is encoded as UTF-8 with ``surrogateescape``: a credential read
    from the wire as ``raw.decode("utf-8", "surrogateescape")`` hashes exactly
    the bytes the client sent, as Tyk does.

    ``hash_key_function`` ``""`` means: the algorithm named by the key's
    ``"h"``, else murmur32.  ``"murmur32"`` and unknown names hash with
    murmur32, as Tyk does (it logs the unknown name).
    """
    algorithm = hash_key_function or key_hash_algorithm(key)
    data = key.encode("utf-8", "surrogateescape")
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "murmur64":
        return murmur3.murmur64_hex(data)
    if algorithm == "murmur128":
        return murmur3.murmur128_hex(data)
    return murmur3.murmur32_hex(data)


def storage_key(key: str, *, hash_keys: bool, hash_key_function: str) -> str:
    """What a key's session is stored under: its hash when ``hash_keys``, else the key itself.

    As Tyk's ``HashKey``, the hash uses the algorithm the key names (murmur32
    for keys naming none), whatever ``hash_key_function`` is now: keys made
    under another function stay reachable.  ``hash_key_function`` is taken
    for symmetry with :func:`generate_key` and does not change the result.
    """
    if not hash_keys:
        return key
    return hash_key(key, "")


def key_org(key: str) -> str | None:
    """The organisation a key belongs to by its format (Tyk's ``TokenOrg``), or None.

    A JSON-format key gives its ``"org"`` (possibly ``""``); otherwise a key
    longer than 24 characters starting with 24 hex digits (a MongoDB object
    id, Tyk Dashboard's org ids) gives those.  Tyk returns ``""`` where this
    returns None.
    """
    org = _json_field(key, "org")
    if org is not None:
        return org
    if len(key) > 24 and _MONGO_ID.fullmatch(key, 0, 24):
        return key[:24]
    return None
