"""``fastgate._core.jws``: strict base64url and JWS compact parsing, compiled
and twin alike (``impl``), and the two never disagreeing on hostile input."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=400, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _encode(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def token(header: Any, claims: Any, signature: bytes = b"sig") -> bytes:
    return b".".join((b64(_encode(header)), b64(_encode(claims)), b64(signature)))


# -- base64url --------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", b"\xff\xfe\xfd\xfc", bytes(range(256))])
def test_round_trip(impl, data):
    assert impl.jws.b64url_decode(b64(data)) == data


@pytest.mark.parametrize("text", [
    b"Zm9v=",      # padding
    b"Zg==",       # padding
    b"Zm9v+g",     # standard alphabet, not url-safe
    b"Zm9v/g",
    b"Zm 9v",      # space
    b"Zm9v\n",     # newline
    b"Z",          # length % 4 == 1
    b"Zm9vY",
    b"Zh",         # trailing bits not zero: "Zg" is the one spelling of b"f"
    b"Zm9",        # "Zm8" is the one spelling of b"fo"
    b"\xc3\xa9",   # non-ASCII
    b"Zm9v\x00",
])
def test_strict_refusals(impl, text):
    assert impl.jws.b64url_decode(text) is None


@given(st.binary(max_size=64))
@SETTINGS
def test_round_trip_any(both, data):
    compiled, twin = both("jws")
    assert compiled.b64url_decode(b64(data)) == twin.b64url_decode(b64(data)) == data


@given(st.binary(max_size=48))
@SETTINGS
def test_decoders_agree_on_any_bytes(both, data):
    compiled, twin = both("jws")
    assert compiled.b64url_decode(data) == twin.b64url_decode(data)


# -- compact JWS ------------------------------------------------------------------


def test_a_token(impl):
    raw = token({"alg": "RS256", "kid": "k1", "typ": "JWT"}, {"sub": "alice", "exp": 5})
    parsed = impl.jws.parse(raw, 4096)
    assert not isinstance(parsed, str)
    assert (parsed.alg, parsed.kid) == ("RS256", "k1")
    assert parsed.claims == {"sub": "alice", "exp": 5}
    assert parsed.header["typ"] == "JWT"
    assert parsed.signature == b"sig"
    assert parsed.signing_input == raw.rsplit(b".", 1)[0]
    assert parsed.raw == raw


@pytest.mark.parametrize(("raw", "why"), [
    (b"a.b", "not three parts"),
    (b"a.b.c.d", "not three parts"),
    (b".e30.c2ln", "not three parts"),
    (b"e30..c2ln", "not three parts"),
    (token({"alg": "HS256"}, {}) + b"=", "signature is not base64url"),
    (b64(b'{"alg":"HS256"}') + b"=." + b64(b"{}") + b".c2ln", "header is not base64url"),
    (token(b"[1]", {}), "header is not a JSON object"),
    (token(b"not json", {}), "header is not JSON"),
    (token({"alg": "HS256"}, b'"a string"'), "payload is not a JSON object"),
    (token({"alg": "HS256"}, b"\xff"), "payload is not JSON"),
    (token({"alg": 5}, {}), "alg is not a string"),
    (token({"typ": "JWT"}, {}), "alg is not a string"),
    (token({"alg": "HS256", "crit": ["exp"]}, {}), "crit header (no extension is understood)"),
    (token({"alg": "HS256", "b64": False}, {}), "unencoded payload (b64)"),
])
def test_malformed(impl, raw, why):
    assert impl.jws.parse(raw, 4096) == why


def test_the_length_limit_is_checked_first(impl):
    raw = token({"alg": "HS256"}, {"pad": "x" * 200})
    assert impl.jws.parse(raw, len(raw) - 1) == "longer than the limit"
    assert not isinstance(impl.jws.parse(raw, len(raw)), str)


def test_a_kid_that_is_not_a_string_is_no_kid(impl):
    parsed = impl.jws.parse(token({"alg": "HS256", "kid": 7}, {}), 4096)
    assert parsed.kid is None and parsed.header["kid"] == 7


def test_deep_nesting_is_malformed_not_a_crash(impl):
    deep = b"[" * 100_000 + b"]" * 100_000
    assert impl.jws.parse(token({"alg": "HS256"}, deep), 10**7) in (
        "payload is not JSON", "payload is not a JSON object")


def _view(result: object) -> object:
    if isinstance(result, str):
        return result
    return (result.raw, result.alg, result.kid, result.header, result.claims,  # type: ignore[attr-defined]
            result.signing_input, result.signature)  # type: ignore[attr-defined]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)
_headers = st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "x"]),
                           _json_values, max_size=4)


@given(_headers, st.dictionaries(st.text(max_size=5), _json_values, max_size=4),
       st.binary(max_size=16))
@SETTINGS
def test_parsers_agree_on_structured_tokens(both, header, claims, signature):
    compiled, twin = both("jws")
    raw = token(header, claims, signature)
    assert _view(compiled.parse(raw, 4096)) == _view(twin.parse(raw, 4096))


@given(st.binary(max_size=80), st.integers(0, 100))
@SETTINGS
def test_parsers_agree_on_any_bytes(both, raw, limit):
    compiled, twin = both("jws")
    assert _view(compiled.parse(raw, limit)) == _view(twin.parse(raw, limit))


# -- more fixed cases ---------------------------------------------------------------


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "not three parts"),
    (b"..", "not three parts"),
    (b"e30.e30", "not three parts"),
    (b"e30.e30.c2ln.", "not three parts"),
    (b"e30.e30..c2ln", "not three parts"),
    (b"." + token({"alg": "HS256"}, {}), "not three parts"),
    (token({"alg": "HS256"}, {}).replace(b".", b"=.", 1), "header is not base64url"),
    (b"e30." + b64(b"{}") + b"=.c2ln", "payload is not base64url"),
    (b"e30.e3+.c2ln", "payload is not base64url"),
    (b"e30.e30.c2l", "signature is not base64url"),       # "c2l" has trailing bits set
    (b"e30.e30.c", "signature is not base64url"),         # length % 4 == 1
    (b"e30.e30.c2ln\xff", "signature is not base64url"),  # non-ASCII byte
    (b"e\xc3\xa930.e30.c2ln", "header is not base64url"),
    (token(b'{"alg":"HS256","x":"\xff"}', {}), "header is not JSON"),  # not UTF-8
    (token(b'{"alg":"HS256"} x', {}), "header is not JSON"),
    (token(b"null", {}), "header is not a JSON object"),
    (token(b'"HS256"', {}), "header is not a JSON object"),
    (token({"alg": "HS256"}, b"[]"), "payload is not a JSON object"),
    (token({"alg": None}, {}), "alg is not a string"),
    (token({"alg": ["HS256"]}, {}), "alg is not a string"),
    (token({"alg": "HS256", "crit": []}, {}), "crit header (no extension is understood)"),
    (token({"alg": "HS256", "b64": 0}, {}), "unencoded payload (b64)"),
    (token({"alg": "HS256", "b64": "true"}, {}), "unencoded payload (b64)"),
    (token(b"[" * 5000 + b"]" * 5000, {}), "header is not JSON"),
])
def test_more_malformed(impl, raw, why):
    assert impl.jws.parse(raw, 1 << 20) == why


def test_what_parses(impl):
    # An empty signature parses (alg "none" is then refused by every key);
    # "b64": true is the default spelled out; the token's bytes are kept as sent.
    for raw in (token({"alg": "none"}, {"a": 1}, b""),
                token({"alg": "HS256", "b64": True}, {}),
                token({"alg": "HS256", "kid": ""}, {}, bytes(range(256)))):
        parsed = impl.jws.parse(raw, 4096)
        assert not isinstance(parsed, str), raw
        assert parsed.raw is raw
        assert parsed.signature == base64.urlsafe_b64decode(raw.rsplit(b".", 1)[1] + b"==")
    assert impl.jws.parse(token({"alg": "HS256", "kid": ""}, {}), 4096).kid == ""


def test_a_header_or_payload_of_any_json_object(impl):
    claims = {"exp": 1e300, "nested": {"a": [1, 2, {"b": None}]}, "u": "\u00e9\U0001f600"}
    parsed = impl.jws.parse(token({"alg": "ES256", "x": [True]}, claims), 4096)
    assert parsed.claims == claims and parsed.header == {"alg": "ES256", "x": [True]}


# -- the two implementations on hostile input ---------------------------------------------


class _Bytes(bytes):
    pass


def _outcome(function: Any, *args: object) -> tuple[str, object]:
    try:
        return ("returned", _view(function(*args)))
    except Exception as exc:  # the exception type is part of the interface
        return ("raised", type(exc))


_hostile = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=30),
    st.builds(bytearray, st.binary(max_size=30)),
    st.builds(memoryview, st.binary(max_size=30)),
    st.builds(_Bytes, st.binary(max_size=30)),
    st.just(_Bytes(token({"alg": "HS256"}, {}))),
    st.just(bytearray(token({"alg": "HS256"}, {}))),
)
_limits = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**63 - 1, -(2**63),
                                                                    2**63, True]),
                    st.floats(), st.none(), st.text(max_size=3))


@given(st.one_of(st.binary(max_size=40), _hostile))
@SETTINGS
def test_decoders_agree_on_hostile_arguments(both, data):
    compiled, twin = both("jws")
    assert _outcome(compiled.b64url_decode, data) == _outcome(twin.b64url_decode, data)


@given(st.one_of(st.binary(max_size=60), _hostile), _limits)
@SETTINGS
def test_parsers_agree_on_hostile_arguments(both, raw, limit):
    compiled, twin = both("jws")
    assert _outcome(compiled.parse, raw, limit) == _outcome(twin.parse, raw, limit)


_VALID = token({"alg": "RS256", "kid": "k1", "typ": "JWT"}, {"sub": "alice", "exp": 5},
               bytes(range(40)))


@st.composite
def near_misses(draw: st.DrawFn) -> bytes:
    """A valid token with a few bytes flipped, inserted, deleted or replaced."""
    raw = bytearray(_VALID)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw) - 1))
        how = draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
        byte = draw(st.one_of(st.sampled_from(b".=+/-_ \n\x00\x80AQgw"), st.integers(0, 255)))
        if how == "flip":
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            raw.insert(at, byte)
        elif how == "delete":
            del raw[at]
        else:
            raw[at] = byte
    return bytes(raw)


@given(near_misses())
@SETTINGS
def test_parsers_agree_on_near_misses(both, raw):
    compiled, twin = both("jws")
    assert _view(compiled.parse(raw, 4096)) == _view(twin.parse(raw, 4096))


@given(st.binary(max_size=48))
@SETTINGS
def test_one_spelling_per_value(both, data):
    # Whatever decodes re-encodes to exactly the text it came from, and equals
    # what the standard library's decoder makes of it.
    compiled, _twin = both("jws")
    decoded = compiled.b64url_decode(data)
    if decoded is not None:
        assert b64(decoded) == data
        assert base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4)) == decoded
