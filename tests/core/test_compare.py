"""compare.constant_time_equals: the one helper that compares secrets."""

from __future__ import annotations

import pytest

CASES = [
    # (a, b, equal)
    (b"", b"", True),
    (b"s3cr3t", b"s3cr3t", True),
    (bytes(range(256)) * 4, bytes(range(256)) * 4, True),
    (b"s3cr3t", b"s3cr3T", False),
    (b"s3cr3t", b"S3cr3t", False),
    (b"s3cr3t", b"", False),
    (b"", b"s3cr3t", False),
    # prefixes and extensions: a length check must not be skipped
    (b"s3cr3t", b"s3cr3", False),
    (b"s3cr3", b"s3cr3t", False),
    (b"s3cr3t", b"s3cr3t\x00", False),
    # NUL bytes are data, not terminators (a strcmp-style bug would say equal)
    (b"a\x00b", b"a\x00c", False),
    (b"\x00", b"\x00\x00", False),
    (b"\x00" * 32, b"\x00" * 32, True),
    # high bytes and single-bit differences
    (b"\xff" * 40, b"\xff" * 39 + b"\xfe", False),
    (b"\x80" + b"x" * 39, b"\x00" + b"x" * 39, False),
]


@pytest.mark.parametrize(("a", "b", "equal"), CASES)
def test_constant_time_equals(impl, a: bytes, b: bytes, equal: bool) -> None:
    result = impl.compare.constant_time_equals(a, b)
    assert result is equal


def test_keywords(impl) -> None:
    assert impl.compare.constant_time_equals(a=b"x", b=b"x") is True


def test_every_single_byte_difference(impl) -> None:
    # Each position and each bit of a 40-byte token must count.
    token = bytes(range(40))
    for i in range(len(token)):
        for bit in range(8):
            other = bytearray(token)
            other[i] ^= 1 << bit
            assert impl.compare.constant_time_equals(token, bytes(other)) is False


class _Bytes(bytes):
    pass


@pytest.mark.parametrize(
    "bad",
    ["s3cr3t", bytearray(b"s3cr3t"), memoryview(b"s3cr3t"), None, 7, _Bytes(b"s3cr3t")],
    ids=["str", "bytearray", "memoryview", "None", "int", "bytes-subclass"],
)
def test_only_bytes(impl, bad: object) -> None:
    with pytest.raises(TypeError):
        impl.compare.constant_time_equals(bad, b"s3cr3t")
    with pytest.raises(TypeError):
        impl.compare.constant_time_equals(b"s3cr3t", bad)
