"""Differential tests: the compiled modules and their twins must never disagree.

A disagreement in a comparison or a validator is an authentication bypass or a
smuggling hole that only shows on one build, so every input, including hostile
types and out-of-range arguments, must give the same result or the same
exception type from both.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=300,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


class _Bytes(bytes):
    pass


def outcome(function: Callable[..., Any], *args: object) -> tuple[str, object]:
    try:
        return ("returned", function(*args))
    except Exception as exc:  # the exception *type* is part of the interface
        return ("raised", type(exc))


def same(name: str, compiled: Any, twin: Any, *args: object) -> None:
    expected = outcome(getattr(twin, name), *args)
    got = outcome(getattr(compiled, name), *args)
    assert got == expected, f"{name}{args!r}: compiled {got!r} != twin {expected!r}"
    if expected[0] == "returned":
        assert type(got[1]) is type(expected[1])


def _insert(parts: tuple[list[int], int, int]) -> bytes:
    """``(body, byte, at)`` -> body with one byte inserted: a near-miss input."""
    body, byte, at = parts
    return bytes([*body[:at], byte, *body[at:]])


TCHARS = sorted(set(b"!#$%&'*+-.^_`|~" + (string.digits + string.ascii_letters).encode()))
ANY_BYTE = st.integers(0, 255)

hostile = st.one_of(
    st.text(max_size=20),
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.builds(bytearray, st.binary(max_size=20)),
    st.builds(memoryview, st.binary(max_size=20)),
    st.builds(_Bytes, st.binary(max_size=20)),
)
data = st.one_of(st.binary(max_size=200), st.binary(min_size=1000, max_size=5000))
seeds = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, -1, 2**64, -(2**64)]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(),
    st.none(),
    st.text(max_size=3),
)
tokenish = st.one_of(
    st.lists(st.sampled_from(TCHARS), max_size=64).map(bytes),
    st.lists(st.one_of(st.sampled_from(TCHARS), ANY_BYTE), max_size=64).map(bytes),
    st.tuples(st.lists(st.sampled_from(TCHARS), max_size=32), ANY_BYTE, st.integers(0, 32)).map(
        _insert
    ),
    st.binary(max_size=64),
)
PRINTABLE = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
valueish = st.one_of(
    st.lists(st.sampled_from(PRINTABLE), max_size=128).map(bytes),
    st.tuples(st.lists(st.sampled_from(PRINTABLE), max_size=64), ANY_BYTE, st.integers(0, 64)).map(
        _insert
    ),
    st.binary(max_size=128),
)


@st.composite
def secret_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    a = draw(st.binary(max_size=100))
    how = draw(st.sampled_from(["same", "flip", "truncate", "extend", "random"]))
    if how == "same" or not a:
        b = bytes(a)
    elif how == "flip":
        i = draw(st.integers(0, len(a) - 1))
        bit = draw(st.integers(0, 7))
        b = a[:i] + bytes([a[i] ^ (1 << bit)]) + a[i + 1 :]
    elif how == "truncate":
        b = a[: draw(st.integers(0, len(a) - 1))]
    elif how == "extend":
        b = a + draw(st.binary(min_size=1, max_size=8))
    else:
        b = draw(st.binary(max_size=100))
    if draw(st.booleans()):
        a, b = b, a
    return a, b


@SETTINGS
@given(ab=secret_pairs())
def test_compare(both, ab: tuple[bytes, bytes]) -> None:
    compiled, twin = both("compare")
    same("constant_time_equals", compiled, twin, *ab)


@SETTINGS
@given(a=st.one_of(st.binary(max_size=20), hostile), b=st.one_of(st.binary(max_size=20), hostile))
def test_compare_hostile(both, a: object, b: object) -> None:
    compiled, twin = both("compare")
    same("constant_time_equals", compiled, twin, a, b)


MURMUR = ["murmur32", "murmur64", "murmur128", "murmur32_hex", "murmur64_hex", "murmur128_hex"]


@SETTINGS
@given(value=data, seed=st.integers(0, 2**32 - 1))
def test_murmur3(both, value: bytes, seed: int) -> None:
    compiled, twin = both("murmur3")
    for name in MURMUR:
        same(name, compiled, twin, value, seed)
        same(name, compiled, twin, value)


@SETTINGS
@given(value=st.one_of(st.binary(max_size=40), hostile), seed=seeds)
def test_murmur3_hostile(both, value: object, seed: object) -> None:
    compiled, twin = both("murmur3")
    for name in MURMUR:
        same(name, compiled, twin, value, seed)


@SETTINGS
@given(name=tokenish)
def test_is_token(both, name: bytes) -> None:
    compiled, twin = both("http")
    same("is_token", compiled, twin, name)


@SETTINGS
@given(value=valueish)
def test_has_ctl(both, value: bytes) -> None:
    compiled, twin = both("http")
    same("has_ctl", compiled, twin, value)


@SETTINGS
@given(value=hostile)
def test_http_hostile(both, value: object) -> None:
    compiled, twin = both("http")
    same("is_token", compiled, twin, value)
    same("has_ctl", compiled, twin, value)


@pytest.mark.parametrize("function", ["is_token", "has_ctl"])
def test_http_every_two_byte_input(both, function: str) -> None:
    compiled, twin = both("http")
    fc, ft = getattr(compiled, function), getattr(twin, function)
    for first in range(256):
        for second in range(256):
            value = bytes((first, second))
            assert fc(value) is ft(value), value


def test_murmur3_every_length(both) -> None:
    compiled, twin = both("murmur3")
    blob = bytes((i * 131 + 7) & 0xFF for i in range(600))
    for n in range(len(blob)):
        for seed in (0, 0xFFFFFFFF):
            assert compiled.murmur32(blob[:n], seed) == twin.murmur32(blob[:n], seed)
            assert compiled.murmur128(blob[:n], seed) == twin.murmur128(blob[:n], seed)
