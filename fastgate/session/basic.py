"""Basic-auth users: the key a user is stored under, and their password hash.

A Basic-auth user is an ordinary session (key) whose ``basic_auth_data``
holds ``{"password": <hash>, "hash_type": <algorithm>}``.  As in Tyk:

* The key name is Tyk's ``generateToken(org_id, username)``
  (:func:`basic_auth_key`): with a ``hash_key_function`` it is
  ``base64('{"org":"<org>","id":"<username>","h":"<fn>"}')``, without one the
  legacy ``<org_id><username>``.  A username that already starts with the org
  id has that prefix removed first, so ``POST /tyk/keys/{org_id}{username}``
  and ``POST /tyk/keys/{username}`` name the same user.
* New passwords are stored as bcrypt, cost 10 (Tyk's
  ``setBasicAuthSessionPassword``; ``hash_type: "bcrypt"``).
* :func:`check_password` understands every ``hash_type`` Tyk writes:
  ``bcrypt`` (and any unknown value, which Tyk also treats as bcrypt),
  ``sha256``, ``murmur32``, ``murmur64``, ``murmur128`` (lower-case hex of the
  digest, Tyk's ``storage.HashStr``), and ``""``, which Tyk means as
  *plain text* (it stores a password in clear when bcrypt fails).  For ``""``
  fastgate uses bcrypt when the stored value is a bcrypt hash -- so that
  presenting the hash itself never logs anyone in -- and a constant-time
  comparison otherwise.

bcrypt reads at most 72 bytes of a password.  :func:`hash_password` refuses
longer passwords instead of silently ignoring their tail, and
:func:`check_password` answers False for them: no stored hash can stand for a
password whose bytes after the 72nd would be ignored.

Nothing here logs: passwords and hashes are secrets.  bcrypt costs about
50 ms; callers on the request path cache successful checks
(:mod:`fastgate.auth.basic_auth`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import bcrypt

from fastgate._core import compare, murmur3
from fastgate.session.keys import make_key

__all__ = [
    "BCRYPT_COST",
    "BCRYPT_MAX_PASSWORD_BYTES",
    "HASH_TYPES",
    "basic_auth_key",
    "check_password",
    "hash_password",
    "is_bcrypt_hash",
]

#: Tyk's cost (``bcrypt.GenerateFromPassword(..., 10)``).
BCRYPT_COST = 10
#: bcrypt ignores every byte after the 72nd.
BCRYPT_MAX_PASSWORD_BYTES = 72

#: The digest a ``hash_type`` names, as Tyk's ``storage.HashStr`` writes it.
_DIGESTS: dict[str, Callable[[bytes], str]] = {
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    "murmur32": murmur3.murmur32_hex,
    "murmur64": murmur3.murmur64_hex,
    "murmur128": murmur3.murmur128_hex,
}

#: Every ``basic_auth_data.hash_type`` Tyk defines ("" is plain text).
HASH_TYPES = frozenset({"", "bcrypt", *_DIGESTS})

_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")


def basic_auth_key(org_id: str, username: str, hash_key_function: str) -> str:
    """The key name Tyk stores user ``username`` of ``org_id`` under.

    Tyk's ``generateToken(orgID, username)`` (:func:`fastgate.session.keys.make_key`):
    the org prefix is trimmed from ``username``; with ``hash_key_function``
    set the name is the base64 of ``{"org":"<org>","id":"<username>","h":"<fn>"}``
    (an unknown function is written as ``murmur64``, as Tyk does), else
    ``org_id + username``.  Byte for byte as Tyk, so a fastgate and a Tyk
    gateway sharing a Redis agree.
    """
    return make_key(org_id, username, hash_key_function)


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password`` (cost 10, ``$2a$`` as Go writes it).

    Raises ValueError when the password is longer than 72 bytes in UTF-8
    (bcrypt would ignore the rest).  The message never contains the password.
    """
    data = password.encode("utf-8")
    if len(data) > BCRYPT_MAX_PASSWORD_BYTES:
        raise ValueError(
            f"longer than {BCRYPT_MAX_PASSWORD_BYTES} bytes, the most bcrypt can hash")
    return bcrypt.hashpw(data, bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode("ascii")


def is_bcrypt_hash(value: str) -> bool:
    """Whether ``value`` has the shape of a bcrypt hash (``$2a$10$...``, 60 chars)."""
    data = value.encode("utf-8", "replace")
    return len(data) == 60 and data.startswith(_BCRYPT_PREFIXES)


def check_password(password: bytes, session: Mapping[str, object]) -> bool:
    """Whether ``password`` is the password of the Basic-auth user ``session``.

    Reads ``session["basic_auth_data"]`` (``password`` and ``hash_type``);
    False when the session holds no password.  Comparisons of digests and of
    plain-text passwords are constant-time; bcrypt compares in constant time
    itself.  Never raises on a malformed session, never logs.
    """
    data = session.get("basic_auth_data")
    if not isinstance(data, Mapping):
        return False
    stored = data.get("password")
    hash_type = data.get("hash_type") or ""
    if not isinstance(stored, str) or not stored or not isinstance(hash_type, str):
        return False
    digest = _DIGESTS.get(hash_type)
    if digest is not None:
        return compare.constant_time_equals(stored.encode("utf-8"), digest(password).encode())
    if hash_type == "" and not is_bcrypt_hash(stored):
        return compare.constant_time_equals(stored.encode("utf-8"), password)
    return _bcrypt_matches(password, stored)


def _bcrypt_matches(password: bytes, stored: str) -> bool:
    if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(password, stored.encode("utf-8"))
    except ValueError:  # not a bcrypt hash (corrupt or foreign record)
        return False
