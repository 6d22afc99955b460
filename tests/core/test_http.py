"""http.is_token / http.has_ctl, checked byte by byte against RFC 9110."""

from __future__ import annotations

import string

import pytest

# RFC 9110 §5.6.2, spelled out independently of the code under test.
TCHAR = set(b"!#$%&'*+-.^_`|~" + string.digits.encode() + string.ascii_letters.encode())
CTL = {b for b in range(0x20) if b != 0x09} | {0x7F}


@pytest.mark.parametrize("byte", range(256))
def test_is_token_single_byte(impl, byte: int) -> None:
    assert impl.http.is_token(bytes([byte])) is (byte in TCHAR)
    # the same byte in the middle and at either end of an otherwise valid name
    assert impl.http.is_token(b"X-" + bytes([byte]) + b"-Name") is (byte in TCHAR)
    assert impl.http.is_token(bytes([byte]) + b"name") is (byte in TCHAR)
    assert impl.http.is_token(b"name" + bytes([byte])) is (byte in TCHAR)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        (b"", False),
        (b"Host", True),
        (b"content-length", True),
        (b"X-Tyk-Authorization", True),
        (b"!#$%&'*+-.^_`|~09azAZ", True),
        (b"Content-Length ", False),  # trailing space: a smuggling classic
        (b" Host", False),
        (b"Host:", False),
        (b"Ho st", False),
        (b"Ho\tst", False),
        (b"Host\r\n", False),
        (b"Host\x00", False),
        (b"X\x7f", False),
        (b"X-\xc3\xa9", False),  # non-ASCII is not a tchar
        (b"(comment)", False),
        (b'"quoted"', False),
        (b"a/b", False),
        (b"a@b", False),
        (b"a" * 100_000, True),
        (b"a" * 100_000 + b" ", False),
    ],
)
def test_is_token(impl, name: bytes, ok: bool) -> None:
    assert impl.http.is_token(name) is ok


@pytest.mark.parametrize("byte", range(256))
def test_has_ctl_single_byte(impl, byte: int) -> None:
    assert impl.http.has_ctl(bytes([byte])) is (byte in CTL)
    assert impl.http.has_ctl(b"value " + bytes([byte]) + b" value") is (byte in CTL)
    assert impl.http.has_ctl(b"value" + bytes([byte])) is (byte in CTL)


@pytest.mark.parametrize(
    ("value", "ctl"),
    [
        (b"", False),
        (b"Bearer abc.def.ghi", False),
        (b"a\tb", False),  # HTAB is allowed inside a field value
        (b"caf\xc3\xa9 \x80\xff", False),  # obs-text
        (b"abc\r\nX-Injected: 1", True),
        (b"abc\n", True),
        (b"abc\r", True),
        (b"\x00abc", True),
        (b"abc\x7f", True),
        (b"x" * 100_000, False),
        (b"x" * 100_000 + b"\x01", True),
    ],
)
def test_has_ctl(impl, value: bytes, ctl: bool) -> None:
    assert impl.http.has_ctl(value) is ctl


class _Bytes(bytes):
    pass


@pytest.mark.parametrize(
    "bad",
    ["Host", bytearray(b"Host"), memoryview(b"Host"), None, 1, _Bytes(b"Host")],
    ids=["str", "bytearray", "memoryview", "None", "int", "bytes-subclass"],
)
@pytest.mark.parametrize("function", ["is_token", "has_ctl"])
def test_only_bytes(impl, function: str, bad: object) -> None:
    with pytest.raises(TypeError):
        getattr(impl.http, function)(bad)
