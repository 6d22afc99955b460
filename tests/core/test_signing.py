"""``fastgate._core.signing``: Tyk's Signature header, signing string and HMAC
check, compiled and twin alike (``impl``), verified against RFC 4231 / RFC 2202
HMAC vectors (invalid cases too), and the two never disagreeing on hostile
headers."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=400, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# RFC 4231 §4.2 (test case 1) and RFC 2202 §3 (test case 1) for SHA-1.
KEY_1 = b"\x0b" * 20
DATA_1 = b"Hi There"
VECTORS_1 = {
    "hmac-sha1": "b617318655057264e28bc0b6fb378c8ef146be00",
    "hmac-sha256": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    "hmac-sha384": "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
                   "faea9ea9076ede7f4af152e8b2fa9cb6",
    "hmac-sha512": "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                   "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
}
# RFC 4231 §4.3 (test case 2): a key shorter than the block.
KEY_2 = b"Jefe"
DATA_2 = b"what do ya want for nothing?"
VECTORS_2 = {
    "hmac-sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "hmac-sha512": "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                   "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
}


def tyk_encoded(mac: bytes) -> bytes:
    return urllib.parse.quote(base64.b64encode(mac).decode(), safe="").encode()


@pytest.mark.parametrize("algorithm", sorted(VECTORS_1))
def test_rfc_vectors(impl, algorithm):
    mac = bytes.fromhex(VECTORS_1[algorithm])
    assert impl.signing.sign_hmac(algorithm, KEY_1, DATA_1) == mac
    assert impl.signing.verify_hmac(algorithm, KEY_1, DATA_1, tyk_encoded(mac))
    if algorithm in VECTORS_2:
        mac2 = bytes.fromhex(VECTORS_2[algorithm])
        assert impl.signing.verify_hmac(algorithm, KEY_2, DATA_2, tyk_encoded(mac2))


@pytest.mark.parametrize("algorithm", sorted(VECTORS_1))
def test_rfc_vectors_invalid(impl, algorithm):
    mac = bytearray(bytes.fromhex(VECTORS_1[algorithm]))
    verify = impl.signing.verify_hmac
    assert not verify(algorithm, KEY_1, DATA_1 + b"!", tyk_encoded(bytes(mac)))
    assert not verify(algorithm, KEY_1[:-1], DATA_1, tyk_encoded(bytes(mac)))
    assert not verify(algorithm, KEY_1, DATA_1, tyk_encoded(bytes(mac[:-1])))  # truncated
    mac[0] ^= 1
    assert not verify(algorithm, KEY_1, DATA_1, tyk_encoded(bytes(mac)))
    assert not verify(algorithm, KEY_1, DATA_1, b"")
    assert not verify(algorithm, KEY_1, DATA_1, b"%zz")


@pytest.mark.parametrize("algorithm", ["foo", "", "HMAC-SHA256", "rsa-sha256", "hmac-md5"])
def test_unknown_algorithm_is_never_sha1(impl, algorithm):
    with pytest.raises(ValueError, match="unsupported algorithm"):
        impl.signing.verify_hmac(algorithm, KEY_1, DATA_1,
                                 tyk_encoded(bytes.fromhex(VECTORS_1["hmac-sha1"])))


def test_signature_encodings(impl):
    mac = bytes(range(250, 256)) + b"\xfb\xff"  # base64 with "+", "/" and "="
    encoded = base64.b64encode(mac)
    assert b"+" in encoded and b"/" in encoded
    decode = impl.signing.decode_signature
    assert decode(tyk_encoded(mac)) == mac
    assert decode(tyk_encoded(mac).replace(b"%2B", b"%2b").replace(b"%2F", b"%2f")) == mac
    assert decode(encoded) == mac
    assert impl.signing.encode_signature(mac) == tyk_encoded(mac)
    for bad in (b"", b"%", b"%2", b"%g0", b"abc", b"ab=c", b"a" * 5000, b"YWJj\n"):
        assert decode(bad) is None, bad


def test_parse_parameters(impl):
    parse = impl.signing.parse_parameters
    assert parse(b'Signature keyId="k1",algorithm="hmac-sha256",'
                 b'headers="(request-target) Date X-A",signature="c2ln"') == (
        "k1", "hmac-sha256", ["(request-target)", "date", "x-a"], b"c2ln")
    # no scheme, tokens unquoted, whitespace around separators, any case
    assert parse(b'KEYID=k-1 ,  Signature = "a\\"b"') == ("k-1", "", ["date"], b'a"b')
    # a parameter named signature first is not the scheme
    assert parse(b'signature="s",keyId="k"') == ("k", "", ["date"], b"s")


@pytest.mark.parametrize("value", [
    b"",
    b"Signature",
    b'Signature keyId="k"',                        # no signature
    b'Signature signature="s"',                    # no keyId
    b'keyId="k",keyid="k",signature="s"',          # duplicate (any case)
    b'keyId="k",signature="s",signature="t"',
    b'keyId="k",signature="s",realm="x"',          # unknown
    b'keyId="k",,signature="s"',                   # empty element
    b'keyId="k",signature="s",',
    b'keyId="k" signature="s"',                    # no comma
    b'keyId="k",signature="s"x',
    b'keyId="",signature="s"',                     # empty value
    b'keyId=,signature="s"',
    b'keyId="k",signature="s',                     # unterminated
    b'keyId="k\x01",signature="s"',                # control byte
    b'keyId="k\\\x01",signature="s"',              # bad escape
    b'keyId="k",headers="  ",signature="s"',       # empty list
    b'keyId="k",signature=s/=',                    # "/" is not a token char
    b'k\xc3\xa9y="k",signature="s"',
])
def test_parse_refusals(impl, value):
    with pytest.raises(ValueError):
        impl.signing.parse_parameters(value)


def test_signing_string(impl):
    fields = {b"date": b"Tue, 07 Jun 2014 20:51:35 GMT", b"x-a": b"  one  ",
              b"host": b"example.org"}
    build = impl.signing.signing_string
    assert build(b"POST", b"/foo?param=value", ["(request-target)", "host", "date", "x-a"],
                 fields.get) == (b"(request-target): post /foo?param=value\n"
                                 b"host: example.org\n"
                                 b"date: Tue, 07 Jun 2014 20:51:35 GMT\n"
                                 b"x-a: one")
    # X-Aux-Date wins and names the line; no date at all signs ": "; a missing field "x: "
    aux = {**fields, b"x-aux-date": b"Wed, 08 Jun 2014 20:51:35 GMT"}
    assert build(b"GET", b"/", ["date"], aux.get) == b"x-aux-date: Wed, 08 Jun 2014 20:51:35 GMT"
    assert build(b"GET", b"/", ["date", "x-missing"], {}.get) == b": \nx-missing: "


HEADER = st.lists(st.sampled_from([
    b"Signature ", b"signature ", b"keyId", b"KeyId", b"algorithm", b"headers", b"signature",
    b"realm", b"=", b",", b" ", b"\t", b'"', b"\\", b"k1", b"hmac-sha256", b"(request-target)",
    b"date", b"c2ln", b"%2B", b"\x00", b"\xff",
]), max_size=24).map(b"".join)


@given(HEADER)
@SETTINGS
def test_compiled_and_twin_agree_on_any_header(both, value):
    compiled, twin = both("signing")

    def outcome(module):
        try:
            return module.parse_parameters(value)
        except ValueError:
            return "refused"

    assert outcome(compiled) == outcome(twin)


@given(st.binary(max_size=80))
@SETTINGS
def test_compiled_and_twin_agree_on_any_signature(both, presented):
    compiled, twin = both("signing")
    assert compiled.decode_signature(presented) == twin.decode_signature(presented)
    assert compiled.verify_hmac("hmac-sha256", b"k", b"m", presented) == \
        twin.verify_hmac("hmac-sha256", b"k", b"m", presented)
