"""fastgate.session.basic: Basic-auth user names and password hashes, as Tyk
(gateway/api.go setBasicAuthSessionPassword, gateway/mw_basic_auth.go
checkPassword, internal/crypto/token.go GenerateToken)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from fastgate.session.basic import (
    BCRYPT_MAX_PASSWORD_BYTES,
    basic_auth_key,
    check_password,
    hash_password,
    is_bcrypt_hash,
)

# OpenBSD's bcrypt test vector (also in passlib, Go's x/crypto/bcrypt tests use its kind).
VECTOR_PASSWORD = b"U*U"
VECTOR_HASH = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"


def user(password: str, hash_type: Any = "bcrypt") -> dict[str, Any]:
    return {"basic_auth_data": {"password": password, "hash_type": hash_type}}


@pytest.mark.parametrize(("org", "name", "function", "expected"), [
    ("", "alice", "", "alice"),
    ("org1", "alice", "", "org1alice"),
    ("org1", "org1alice", "", "org1alice"),  # Tyk trims the org prefix first
    ("default", "user", "murmur64",
     base64.b64encode(b'{"org":"default","id":"user","h":"murmur64"}').decode()),
    ("o", "u", "sha256", base64.b64encode(b'{"org":"o","id":"u","h":"sha256"}').decode()),
    ("o", "u", "whirlpool", base64.b64encode(b'{"org":"o","id":"u","h":"murmur64"}').decode()),
])
def test_basic_auth_key(org: str, name: str, function: str, expected: str) -> None:
    assert basic_auth_key(org, name, function) == expected


def test_hash_password_is_tyk_bcrypt() -> None:
    hashed = hash_password("pa:ss word é")
    assert hashed.startswith("$2a$10$") and len(hashed) == 60  # Go's prefix, Tyk's cost
    assert is_bcrypt_hash(hashed)
    assert check_password("pa:ss word é".encode(), user(hashed))
    assert hash_password("pa:ss word é") != hashed  # salted


def test_hash_password_length_limit() -> None:
    assert check_password(b"x" * 72, user(hash_password("x" * BCRYPT_MAX_PASSWORD_BYTES)))
    with pytest.raises(ValueError, match="72 bytes") as info:
        hash_password("y" * 73)
    assert "yyyy" not in str(info.value)
    with pytest.raises(ValueError):
        hash_password("é" * 37)  # 74 bytes in UTF-8


@pytest.mark.parametrize(("presented", "session", "expected"), [
    # bcrypt, and "bcrypt" for every hash type Tyk does not know (its default branch)
    (VECTOR_PASSWORD, user(VECTOR_HASH), True),
    (b"U*V", user(VECTOR_HASH), False),
    (VECTOR_PASSWORD, user(VECTOR_HASH, "whatever"), True),
    (VECTOR_PASSWORD, user(VECTOR_HASH.replace("$2a$", "$2b$")), True),
    (VECTOR_PASSWORD, user(VECTOR_HASH.replace("$2a$", "$2y$")), True),
    # "" is plain text in Tyk; a stored bcrypt hash is still checked as bcrypt,
    # so the hash itself is no password.
    (b"clear", user("clear", ""), True),
    (b"clear!", user("clear", ""), False),
    (b"", user("clear", ""), False),
    (VECTOR_PASSWORD, user(VECTOR_HASH, ""), True),
    (VECTOR_HASH.encode(), user(VECTOR_HASH, ""), False),
    (VECTOR_PASSWORD, user(VECTOR_HASH, None), True),
    # digests: lower-case hex, as Tyk's storage.HashStr
    (b"hello", user(hashlib.sha256(b"hello").hexdigest(), "sha256"), True),
    (b"hellO", user(hashlib.sha256(b"hello").hexdigest(), "sha256"), False),
    (b"hello", user("248bfa47", "murmur32"), True),
    (b"hello", user("cbd8a7b341bd9b02", "murmur64"), True),
    (b"hello", user("cbd8a7b341bd9b025b1e906a48ae1d19", "murmur128"), True),
    (b"hello", user("CBD8A7B341BD9B02", "murmur64"), False),
    # what is no user at all
    (b"x", {}, False),
    (b"x", {"basic_auth_data": None}, False),
    (b"x", {"basic_auth_data": "x"}, False),
    (b"", user(""), False),
    (b"x", user("", ""), False),
    (b"x", {"basic_auth_data": {"password": 5, "hash_type": ""}}, False),
    (b"x", user("x", 5), False),
    # corrupt records never raise
    (b"x", user("$2a$10$tooshort"), False),
    (b"x", user("not a hash at all"), False),
    (b"x" * 73, user(hash_password("x" * 72)), False),  # no silent truncation
])
def test_check_password(presented: bytes, session: dict[str, Any], expected: bool) -> None:
    assert check_password(presented, session) is expected
