"""murmur3: bit-exact with Go's spaolacci/murmur3 and the reference C++ code."""

from __future__ import annotations

import struct

import pytest

# spaolacci/murmur3's murmur_test.go: (seed, Sum32, Sum128 h1 (= Sum64), Sum128 h2, input)
SPAOLACCI = [
    (0x00, 0x00000000, 0x0000000000000000, 0x0000000000000000, b""),
    (0x00, 0x248BFA47, 0xCBD8A7B341BD9B02, 0x5B1E906A48AE1D19, b"hello"),
    (0x00, 0x149BBB7F, 0x342FAC623A5EBC8E, 0x4CDCBC079642414D, b"hello, world"),
    (0x00, 0xE31E8A70, 0xB89E5988B737AFFC, 0x664FC2950231B2CB, b"19 Jan 2038 at 3:14:07 AM"),
    (
        0x00,
        0xD5C48BFC,
        0xCD99481F9EE902C9,
        0x695DA1A38987B6E7,
        b"The quick brown fox jumps over the lazy dog.",
    ),
    (0x01, 0x514E28B7, 0x4610ABE56EFF5CB5, 0x51622DAA78F83583, b""),
    (0x01, 0xBB4ABCAD, 0xA78DDFF5ADAE8D10, 0x128900EF20900135, b"hello"),
    (0x01, 0x6F5CB2E9, 0x8B95F808840725C6, 0x1597ED5422BD493B, b"hello, world"),
    (0x01, 0xF50E1F30, 0x2A929DE9C8F97B2F, 0x56A41D99AF43A2DB, b"19 Jan 2038 at 3:14:07 AM"),
    (
        0x01,
        0x846F6A36,
        0xFB3325171F9744DA,
        0xAAF8B92A5F722952,
        b"The quick brown fox jumps over the lazy dog.",
    ),
    (0x2A, 0x087FCD5C, 0xF02AA77DFA1B8523, 0xD1016610DA11CBB9, b""),
    (0x2A, 0xE2DBD2E1, 0xC4B8B3C960AF6F08, 0x2334B875B0EFBC7A, b"hello"),
    (0x2A, 0x7EC7C6C2, 0xB91864D797CAA956, 0xD5D139A55AFE6150, b"hello, world"),
    (0x2A, 0x58F745F6, 0xFD8F19EBDC8C6B6A, 0xD30FDC310FA08FF9, b"19 Jan 2038 at 3:14:07 AM"),
    (
        0x2A,
        0xC02D1434,
        0x74F33C659CDA5AF7,
        0x4EC7A891CAF316F0,
        b"The quick brown fox jumps over the lazy dog.",
    ),
]
IDS = [f"seed{seed}-{len(data)}B" for seed, _, _, _, data in SPAOLACCI]


@pytest.mark.parametrize(("seed", "h32", "h1", "h2", "data"), SPAOLACCI, ids=IDS)
def test_spaolacci_vectors(impl, seed: int, h32: int, h1: int, h2: int, data: bytes) -> None:
    m = impl.murmur3
    assert m.murmur32(data, seed) == h32
    assert m.murmur64(data, seed) == h1
    assert m.murmur128(data, seed) == (h1, h2)


@pytest.mark.parametrize(("seed", "h32", "h1", "h2", "data"), SPAOLACCI, ids=IDS)
def test_hex_is_go_hash_sum(impl, seed: int, h32: int, h1: int, h2: int, data: bytes) -> None:
    # Tyk stores hex.EncodeToString(h.Sum(nil)); Go's Sum appends big-endian bytes.
    m = impl.murmur3
    assert m.murmur32_hex(data, seed) == struct.pack(">I", h32).hex()
    assert m.murmur64_hex(data, seed) == struct.pack(">Q", h1).hex()
    assert m.murmur128_hex(data, seed) == struct.pack(">QQ", h1, h2).hex()


def test_smhasher_verification_values(impl) -> None:
    # SMHasher's VerificationTest (src/KeysetTest.cpp) with the expected values
    # from src/main.cpp: keys {}, {0}, {0,1}, ... {0..254} hashed with seed
    # 256 - len, the hashes (native little-endian) concatenated and hashed with
    # seed 0.  It covers every tail length and 256 seeds.
    m = impl.murmur3
    key = bytes(range(256))
    hashes32 = b"".join(struct.pack("<I", m.murmur32(key[:i], 256 - i)) for i in range(256))
    assert m.murmur32(hashes32, 0) == 0xB0F57EE3
    hashes128 = b"".join(struct.pack("<QQ", *m.murmur128(key[:i], 256 - i)) for i in range(256))
    assert m.murmur128(hashes128, 0)[0] & 0xFFFFFFFF == 0x6384BA69


def test_tyk_style_keys(impl) -> None:
    # A legacy Tyk key (org id + uuid hex) and a JSON-style key: full-width, lower-case hex.
    m = impl.murmur3
    for key in (b"5e9d9544a1dcd60001d0ed20" + b"a" * 32, b"eyJvcmciOiJkZWZhdWx0In0="):
        assert len(m.murmur32_hex(key)) == 8
        assert len(m.murmur64_hex(key)) == 16
        assert len(m.murmur128_hex(key)) == 32
        for digest in (m.murmur32_hex(key), m.murmur64_hex(key), m.murmur128_hex(key)):
            assert digest == digest.lower()
            int(digest, 16)


def test_trailing_bytes_count(impl) -> None:
    # Tyk issue #1309: a murmur32 that ignored the 1-3 trailing bytes let a key
    # with different last characters match.  Standard MurmurHash3 mixes them in.
    m = impl.murmur3
    a = b"defaultf1bfc265b48841f1b1dcdc26cd39eadf"
    b = b"defaultf1bfc265b48841f1b1dcdc26cd39eade"
    assert m.murmur32_hex(a) != m.murmur32_hex(b)
    for n in range(1, 40):
        data = bytes(range(n))
        changed = data[:-1] + bytes([data[-1] ^ 1])
        assert m.murmur32(data) != m.murmur32(changed)
        assert m.murmur128(data) != m.murmur128(changed)


def test_ranges_and_seed_edges(impl) -> None:
    m = impl.murmur3
    for seed in (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, True):
        h32 = m.murmur32(b"fastgate", seed)
        h1, h2 = m.murmur128(b"fastgate", seed)
        assert 0 <= h32 < 2**32
        assert 0 <= h1 < 2**64
        assert 0 <= h2 < 2**64
        assert m.murmur64(b"fastgate", seed) == h1
    assert m.murmur32(b"x", True) == m.murmur32(b"x", 1)
    assert m.murmur32(b"x", seed=5) == m.murmur32(data=b"x", seed=5) == m.murmur32(b"x", 5)


class _Index:
    def __index__(self) -> int:
        return 42


def test_seed_accepts_index(impl) -> None:
    assert impl.murmur3.murmur32(b"hello", _Index()) == impl.murmur3.murmur32(b"hello", 42)


FUNCTIONS = ["murmur32", "murmur64", "murmur128", "murmur32_hex", "murmur64_hex", "murmur128_hex"]


class _Bytes(bytes):
    pass


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(
    "bad",
    ["key", bytearray(b"key"), memoryview(b"key"), None, 1, _Bytes(b"key")],
    ids=["str", "bytearray", "memoryview", "None", "int", "bytes-subclass"],
)
def test_data_must_be_bytes(impl, function: str, bad: object) -> None:
    with pytest.raises(TypeError):
        getattr(impl.murmur3, function)(bad)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(
    ("seed", "error"),
    [
        (-1, OverflowError),
        (2**32, OverflowError),
        (2**64, OverflowError),
        (-(2**63), OverflowError),
        (1.0, TypeError),
        ("1", TypeError),
        (None, TypeError),
    ],
)
def test_bad_seed(impl, function: str, seed: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        getattr(impl.murmur3, function)(b"key", seed)
