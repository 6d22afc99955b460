"""Key formats and hashing as Tyk: GenerateToken, TokenOrg, TokenHashAlgo, HashStr, HashKey.

Expected digests are public vectors (spaolacci/murmur3's test table for
seed 0, SHA-256 of "hello") or computed here with hashlib, never with the code
under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

from fastgate.session import generate_key, hash_key, key_org, make_key, storage_key
from fastgate.session.keys import key_hash_algorithm

HELLO = {
    "murmur32": "248bfa47",
    "murmur64": "cbd8a7b341bd9b02",
    "murmur128": "cbd8a7b341bd9b025b1e906a48ae1d19",
    "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
}
FOX = b"The quick brown fox jumps over the lazy dog."
FOX_DIGESTS = {
    "murmur32": "d5c48bfc",
    "murmur64": "cd99481f9ee902c9",
    "murmur128": "cd99481f9ee902c9695da1a38987b6e7",
}
UUID4_HEX = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


def decode_json_key(key: str) -> tuple[bytes, dict[str, str]]:
    raw = base64.b64decode(key, validate=True)  # standard alphabet, padded
    return raw, json.loads(raw)


@pytest.mark.parametrize("algorithm", ["murmur32", "murmur64", "murmur128", "sha256"])
@pytest.mark.parametrize("org", ["default", "", "5e9d9544a1dcd60001d0ed20", "org é"])
def test_generated_json_key_carries_org_id_and_algorithm(org: str, algorithm: str) -> None:
    key = generate_key(org, algorithm)
    assert key.startswith("ey")
    raw, fields = decode_json_key(key)
    assert list(fields) == ["org", "id", "h"]
    assert fields["org"] == org
    assert fields["h"] == algorithm
    assert UUID4_HEX.fullmatch(fields["id"])
    # byte for byte Tyk's fmt.Sprintf format: no spaces, this field order
    assert raw == f'{{"org":"{org}","id":"{fields["id"]}","h":"{algorithm}"}}'.encode()
    assert key_org(key) == org
    assert key_hash_algorithm(key) == algorithm


def test_unknown_algorithm_generates_murmur64_keys() -> None:
    _, fields = decode_json_key(generate_key("o", "md5"))
    assert fields["h"] == "murmur64"


@pytest.mark.parametrize("org", ["default", "", "5e9d9544a1dcd60001d0ed20"])
def test_legacy_key_is_org_then_uuid_hex(org: str) -> None:
    key = generate_key(org, "")
    assert key.startswith(org)
    assert UUID4_HEX.fullmatch(key[len(org) :])


def test_keys_are_unique() -> None:
    assert len({generate_key("o", "murmur64") for _ in range(2000)}) == 2000
    assert len({generate_key("o", "") for _ in range(2000)}) == 2000


MAKE_KEY = [
    # (org, key id, hash function, expected key)
    ("org1", "abc", "", "org1abc"),
    ("org1", "org1abc", "", "org1abc"),  # Tyk trims the org prefix first
    ("", "abc", "", "abc"),
    (
        "org1",
        "user@example.com",
        "sha256",
        base64.b64encode(b'{"org":"org1","id":"user@example.com","h":"sha256"}').decode(),
    ),
    (
        "org1",
        "org1alice",
        "murmur64",
        base64.b64encode(b'{"org":"org1","id":"alice","h":"murmur64"}').decode(),
    ),
    (
        "o",
        "k",
        "bogus",
        base64.b64encode(b'{"org":"o","id":"k","h":"murmur64"}').decode(),
    ),
]


@pytest.mark.parametrize(("org", "key_id", "function", "expected"), MAKE_KEY)
def test_make_key(org: str, key_id: str, function: str, expected: str) -> None:
    assert make_key(org, key_id, function) == expected


def test_make_key_without_id_generates_one() -> None:
    _, fields = decode_json_key(make_key("o", "o", "murmur128"))
    assert UUID4_HEX.fullmatch(fields["id"])


@pytest.mark.parametrize(("function", "digest"), sorted(HELLO.items()))
def test_hash_vectors_hello(function: str, digest: str) -> None:
    assert hash_key("hello", function) == digest


@pytest.mark.parametrize(("function", "digest"), sorted(FOX_DIGESTS.items()))
def test_hash_vectors_fox(function: str, digest: str) -> None:
    assert hash_key(FOX.decode(), function) == digest


def test_sha256_of_any_key_is_hashlib() -> None:
    for key in ("", "k", "5e9d9544a1dcd60001d0ed20" + "a" * 32, "é"):
        assert hash_key(key, "sha256") == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize("function", ["", "murmur32", "md5", "SHA256", "Murmur64"])
def test_empty_and_unknown_functions_hash_with_murmur32(function: str) -> None:
    assert hash_key("hello", function) == HELLO["murmur32"]


def test_keys_are_hashed_as_utf8_bytes() -> None:
    # "é" is C3 A9; a credential read as utf-8 with surrogateescape keeps its bytes
    wire = b"key-\xc3\xa9-\xff"
    assert hash_key(wire.decode("utf-8", "surrogateescape"), "sha256") == (
        hashlib.sha256(wire).hexdigest()
    )


SHA_KEY = base64.b64encode(b'{"org":"org1","id":"abc","h":"sha256"}').decode()
M128_KEY = base64.b64encode(b'{"org":"org1","id":"abc","h":"murmur128"}').decode()


def test_json_key_without_function_hashes_with_its_own_algorithm() -> None:
    assert hash_key(SHA_KEY, "") == hashlib.sha256(SHA_KEY.encode()).hexdigest()
    assert len(hash_key(M128_KEY, "")) == 32
    assert hash_key(M128_KEY, "") == hash_key(M128_KEY, "murmur128")
    assert hash_key(M128_KEY, "") != hash_key(M128_KEY, "murmur64")


def test_explicit_function_wins_over_the_key() -> None:
    # Tyk's HashStr(key, alg): a named algorithm is used as is, an unknown one is murmur32
    assert hash_key(SHA_KEY, "murmur64") != hash_key(SHA_KEY, "")
    assert len(hash_key(SHA_KEY, "murmur64")) == 16
    assert len(hash_key(SHA_KEY, "murmur32")) == 8
    assert hash_key(SHA_KEY, "md5") == hash_key(SHA_KEY, "murmur32")


STORAGE = [
    # (key, hash_keys, hash_key_function, expected algorithm or None for the raw key)
    ("org1abcdef", False, "murmur64", None),
    (SHA_KEY, False, "", None),
    ("org1abcdef", True, "", "murmur32"),
    # Tyk's HashKey ignores the configured function: legacy and custom keys use murmur32
    ("org1abcdef", True, "murmur64", "murmur32"),
    ("org1abcdef", True, "sha256", "murmur32"),
    # and a JSON-format key uses the algorithm it names, whatever the config says now
    (SHA_KEY, True, "murmur64", "sha256"),
    (M128_KEY, True, "", "murmur128"),
]


@pytest.mark.parametrize(("key", "hash_keys", "function", "algorithm"), STORAGE)
def test_storage_key(key: str, hash_keys: bool, function: str, algorithm: str | None) -> None:
    expected = key if algorithm is None else hash_key(key, algorithm)
    assert storage_key(key, hash_keys=hash_keys, hash_key_function=function) == expected
    if algorithm == "sha256":
        assert expected == hashlib.sha256(key.encode()).hexdigest()


def test_generated_keys_store_under_their_configured_function() -> None:
    for function, length in (("murmur32", 8), ("murmur64", 16), ("murmur128", 32), ("sha256", 64)):
        key = generate_key("org", function)
        stored = storage_key(key, hash_keys=True, hash_key_function=function)
        assert len(stored) == length
        assert stored == hash_key(key, function)


KEY_ORG = [
    # (key, org) -- Tyk's TokenOrg, with None where Tyk returns ""
    (base64.b64encode(b'{"org":"default","id":"x","h":"murmur64"}').decode(), "default"),
    (base64.b64encode(b'{"org":"","id":"x","h":"murmur64"}').decode(), ""),
    ("eyJvcmciOiJkZWZhdWx0In0=", "default"),  # {"org":"default"}
    ("eyJvcmciOiJkZWZhdWx0In0", None),  # Go's StdEncoding wants the padding
    ("eyJvcmciOiJkZWZh\ndWx0In0=", "default"),  # Go's decoder skips newlines
    (base64.b64encode(b'{"org":5,"id":"x"}').decode(), None),  # not a string
    (base64.b64encode(b'{"id":"x"}').decode(), None),
    (base64.b64encode(b'["org"]').decode(), None),
    ("eyJ-not-base64!!", None),
    ("5e9d9544a1dcd60001d0ed20" + "a1b2c3d4" * 4, "5e9d9544a1dcd60001d0ed20"),
    ("5E9D9544A1DCD60001D0ED20x", "5E9D9544A1DCD60001D0ED20"),
    ("5e9d9544a1dcd60001d0ed20", None),  # exactly 24: Tyk wants more
    ("5e9d9544a1dcd60001d0ed2g" + "a" * 32, None),  # not hex
    ("default" + "a" * 32, None),  # a legacy key whose org is not a Mongo id
    ("", None),
]


@pytest.mark.parametrize(("key", "org"), KEY_ORG)
def test_key_org(key: str, org: str | None) -> None:
    assert key_org(key) == org
