"""RFC 9421 HTTP Message Signatures: the structured-field parser
(RFC 8941), the signature base, every algorithm, the RFC's Appendix B test
vectors (and tampered copies), then the ``http_message_signatures`` method
over real sockets on the memory store and a real Redis -- signed by this
file's own client and by the ``http-message-signatures`` and
``requests-http-signature`` packages."""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import time
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fastgate.auth.hmac import rfc9421, structured
from fastgate.auth.hmac.message_signatures import parse_config
from fastgate.auth.hmac.rfc9421 import (
    MalformedSignature,
    RequestView,
    SharedSecret,
    SignatureBaseError,
)
from fastgate.auth.hmac.structured import InnerList, Item, Token
from fastgate.config import ConfigError, FieldReader

from . import rfc9421_vectors as vectors
from .conftest import session

# --------------------------------------------------------------------------- helpers


def view(raw: str, scheme: str = "https") -> RequestView:
    """A RequestView of an RFC example message (LF line ends)."""
    head = raw.split("\n\n", 1)[0].split("\n")
    method, target, _ = head[0].split(" ")
    path, _, query = target.partition("?")
    fields = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields.append((name.lower().encode(), value.strip().encode()))
    return RequestView(method.encode(), scheme, path.encode(), query.encode(), fields)


def with_fields(raw: str, extra: str) -> str:
    """``raw`` with header lines ``extra`` added at the end of its head."""
    head, _, body = raw.partition("\n\n")
    return head + "\n" + extra.strip() + "\n\n" + body


def rfc_keys() -> dict[str, Any]:
    keys: dict[str, Any] = {name: serialization.load_pem_public_key(pub.encode())
                            for name, (pub, _) in vectors.KEYS_PEM.items()}
    keys["test-shared-secret"] = SharedSecret(base64.b64decode(vectors.SHARED_SECRET_B64))
    return keys


KEYS = rfc_keys()


def signatures_of(request: RequestView) -> dict[str, rfc9421.SignatureInput]:
    return rfc9421.parse_signatures(request.values(b"signature-input"),
                                    request.values(b"signature"))


def verify_message(request: RequestView, label: str, algorithm: str | None = None) -> bytes:
    """Verify signature ``label`` of ``request`` with the RFC's key; its base."""
    signature = signatures_of(request)[label]
    base = rfc9421.signature_base(request, signature)
    assert signature.keyid is not None
    key = KEYS[signature.keyid]
    alg = algorithm or signature.alg or rfc9421.default_algorithm(key)
    assert alg is not None
    rfc9421.verify(alg, key, base, signature.signature)
    return base


# --------------------------------------------------------------------------- RFC 8941

PARSE_OK = [
    # (kind, input, parsed, strict serialisation)
    ("item", b"42", Item(42), "42"),
    ("item", b"-999999999999999", Item(-999999999999999), "-999999999999999"),
    ("item", b"4.5", Item(decimal.Decimal("4.5")), "4.5"),
    ("item", b"-0.125", Item(decimal.Decimal("-0.125")), "-0.125"),
    ("item", b'"hello \\"world\\" \\\\"', Item('hello "world" \\'), '"hello \\"world\\" \\\\"'),
    ("item", b"foo123/456", Item(Token("foo123/456")), "foo123/456"),
    ("item", b"*tok:en", Item(Token("*tok:en")), "*tok:en"),
    ("item", b":cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:",
     Item(b"pretend this is binary content."), ":cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:"),
    ("item", b":YQ:", Item(b"a"), ":YQ==:"),  # padding synthesised (RFC 8941 §4.2.7)
    ("item", b"::", Item(b""), "::"),
    ("item", b"?1", Item(True), "?1"),
    ("item", b"?0", Item(False), "?0"),
    ("item", b"  5;a;b=?0;c=1.5;d=\"x\"  ",
     Item(5, (("a", True), ("b", False), ("c", decimal.Decimal("1.5")), ("d", "x"))),
     '5;a;b=?0;c=1.5;d="x"'),
    ("item", b"1; a=1", Item(1, (("a", 1),)), "1;a=1"),
    ("list", b"sugar, tea,\trum", [Item(Token("sugar")), Item(Token("tea")), Item(Token("rum"))],
     "sugar, tea, rum"),
    ("list", b'("foo" "bar"), ("baz"), ("bat" "one"), ()',
     [InnerList((Item("foo"), Item("bar"))), InnerList((Item("baz"),)),
      InnerList((Item("bat"), Item("one"))), InnerList(())],
     '("foo" "bar"), ("baz"), ("bat" "one"), ()'),
    ("list", b'(  "a"   "b"  );x=1', [InnerList((Item("a"), Item("b")), (("x", 1),))],
     '("a" "b");x=1'),
    ("list", b"", [], ""),
    ("dictionary", b'en="Applepie", da=:w4ZibGV0w6ZydGU=:',
     {"en": Item("Applepie"), "da": Item("Æbletæ".encode()[:0] + base64.b64decode(
         "w4ZibGV0w6ZydGU="))}, 'en="Applepie", da=:w4ZibGV0w6ZydGU=:'),
    ("dictionary", b"a=?0, b, c; foo=bar",
     {"a": Item(False), "b": Item(True), "c": Item(True, (("foo", Token("bar")),))},
     "a=?0, b, c;foo=bar"),
    ("dictionary", b"a=1,    b=2;x=1;y=2,   c=(a   b   c)",
     {"a": Item(1), "b": Item(2, (("x", 1), ("y", 2))),
      "c": InnerList((Item(Token("a")), Item(Token("b")), Item(Token("c"))))},
     "a=1, b=2;x=1;y=2, c=(a b c)"),
    # duplicate keys: the last value, in the first one's place (RFC 8941)
    ("dictionary", b"a=1, b=2, a=3", {"a": Item(3), "b": Item(2)}, "a=3, b=2"),
]


def _parse(kind: str, data: bytes, unique: bool = False) -> Any:
    return {"item": structured.parse_item, "list": structured.parse_list,
            "dictionary": structured.parse_dictionary}[kind](data, unique=unique)


def _serialize(kind: str, value: Any) -> str:
    return {"item": structured.serialize_item, "list": structured.serialize_list,
            "dictionary": structured.serialize_dictionary}[kind](value)


@pytest.mark.parametrize(("kind", "data", "parsed", "serialized"), PARSE_OK,
                         ids=[repr(case[1])[:40] for case in PARSE_OK])
def test_structured_fields_parse_and_serialise(kind, data, parsed, serialized):
    value = _parse(kind, data)
    assert value == parsed
    if kind == "item":
        assert type(value.value) is type(parsed.value)  # a Token is no String
    assert _serialize(kind, value) == serialized
    assert _parse(kind, serialized.encode()) == value  # the serialisation parses back


PARSE_BAD = [
    ("item", b""), ("item", b" "), ("item", b"1 2"), ("item", b"1,"),
    ("item", b"1234567890123456"),  # 16 digits
    ("item", b"1234567890123.5"),  # 13 integer digits
    ("item", b"1.2345"), ("item", b"1."), ("item", b"-"), ("item", b"-a"), ("item", b"01x"),
    ("item", b'"unterminated'), ('item', b'"bad \\n escape"'), ("item", b'"tab\there"'),
    ("item", b'"caf\xc3\xa9"'), ("item", b"\xff"),
    ("item", b":not base64!:"), ("item", b":YQ"), ("item", b":Y===:"), ("item", b":Y:"),
    ("item", b":YQ=a:"),
    ("item", b"?"), ("item", b"?2"), ("item", b"?true"),
    ("item", b"1;"), ("item", b"1;A=1"), ("item", b"1;a="), ("item", b"1;1a"),
    ("item", b"@tok"), ("item", b"(1 2)"), ("item", b"a=1"),
    ("list", b"a,"), ("list", b"a,,b"), ("list", b",a"), ("list", b"a b"),
    ("list", b'("a""b")'), ('list', b'("a" "b"'), ("list", b"(a);"), ("list", b"(a)x"),
    ("dictionary", b"A=1"), ("dictionary", b"a=1,"), ("dictionary", b"a=1 b=2"),
    ("dictionary", b"a==1"), ("dictionary", b"=1"), ("dictionary", b"a=(1 2"),
    ("dictionary", b"a=1;"), ("dictionary", b"a=1\n"), ("dictionary", b"a =1"),
]


@pytest.mark.parametrize(("kind", "data"), PARSE_BAD, ids=[repr(c[1]) for c in PARSE_BAD])
def test_structured_fields_refuse_any_deviation(kind, data):
    with pytest.raises(ValueError, match="structured field"):
        _parse(kind, data)


def test_structured_fields_unique_keys():
    with pytest.raises(ValueError, match="given twice"):
        structured.parse_dictionary(b"a=1, a=2", unique=True)
    with pytest.raises(ValueError, match="given twice"):
        structured.parse_item(b"1;a=1;a=2", unique=True)
    assert structured.parse_item(b"1;a=1;a=2").params == (("a", 2),)


@pytest.mark.parametrize(("value", "text"), [
    (decimal.Decimal("1.0005"), "1.0"),  # half to even
    (decimal.Decimal("1.0015"), "1.002"),
    (decimal.Decimal("-2.5000"), "-2.5"),
    (decimal.Decimal("10"), "10.0"),
    (decimal.Decimal("-0.0001"), "0.0"),
])
def test_decimal_serialisation(value, text):
    assert structured.serialize_bare_item(value) == text


@pytest.mark.parametrize("value", [
    decimal.Decimal("1234567890123.0"), 10**15, Token("1a"), "new\nline", "café",
    decimal.Decimal("NaN"), 1.5])
def test_serialisation_refuses_what_has_none(value):
    with pytest.raises(ValueError):
        structured.serialize_bare_item(value)
    with pytest.raises(ValueError):
        structured.serialize_params((("Bad", True),))


# --------------------------------------------------------------------------- signature base

FIELDS_MESSAGE = [
    (b"host", b"www.example.com"),
    (b"date", b"Tue, 20 Apr 2021 02:07:56 GMT"),
    (b"x-ows-header", b"  Leading and trailing whitespace.  "),
    (b"x-obs-fold-header", b"Obsolete\r\n    line folding."),
    (b"cache-control", b"max-age=60"),
    (b"cache-control", b"   must-revalidate"),
    (b"example-dict", b" a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
    (b"x-empty-header", b""),
    (b"example-header", b"value, with, lots"),
    (b"example-header", b"of, commas"),
    (b"example-dict2", b"a=1, b=2;x=1;y=2, c=(a   b    c), d"),
]
FIELD_TYPES = {**rfc9421.STRUCTURED_FIELDS, "example-dict": "dictionary",
               "example-dict2": "dictionary"}


def base_of(request: RequestView, components: str, params: str = ";created=1",
            **kwargs: Any) -> str:
    """The signature base for ``components`` (a serialised inner list's
    contents) over ``request``, without its last line."""
    signature = rfc9421.parse_signatures(
        [f"sig=({components}){params}".encode()], [b"sig=::"])["sig"]
    base = rfc9421.signature_base(request, signature, **kwargs).decode()
    return base.rpartition("\n")[0]


def fields_request(**kwargs: Any) -> RequestView:
    values = {"method": b"POST", "scheme": "https", "path": b"/path", "query": b"param=value",
              "fields": FIELDS_MESSAGE, **kwargs}
    return RequestView(**values)


BASE_LINES = [
    # RFC 9421 §2.1 (fields), §2.1.1 (sf), §2.1.2 (key), §2.1.3 (bs)
    ('"host"', '"host": www.example.com'),
    ('"date"', '"date": Tue, 20 Apr 2021 02:07:56 GMT'),
    ('"x-ows-header"', '"x-ows-header": Leading and trailing whitespace.'),
    ('"x-obs-fold-header"', '"x-obs-fold-header": Obsolete line folding.'),
    ('"cache-control"', '"cache-control": max-age=60, must-revalidate'),
    ('"example-dict"', '"example-dict": a=1,    b=2;x=1;y=2,   c=(a   b   c)'),
    ('"x-empty-header"', '"x-empty-header": '),
    ('"example-dict";sf', '"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c)'),
    ('"example-dict2";key="a"', '"example-dict2";key="a": 1'),
    ('"example-dict2";key="d"', '"example-dict2";key="d": ?1'),
    ('"example-dict2";key="b"', '"example-dict2";key="b": 2;x=1;y=2'),
    ('"example-dict2";key="c"', '"example-dict2";key="c": (a b c)'),
    ('"example-header"', '"example-header": value, with, lots, of, commas'),
    ('"example-header";bs',
     '"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:'),
    # §2.2 derived components
    ('"@method"', '"@method": POST'),
    ('"@target-uri"', '"@target-uri": https://www.example.com/path?param=value'),
    ('"@authority"', '"@authority": www.example.com'),
    ('"@scheme"', '"@scheme": https'),
    ('"@request-target"', '"@request-target": /path?param=value'),
    ('"@path"', '"@path": /path'),
    ('"@query"', '"@query": ?param=value'),
    ('"@query-param";name="param"', '"@query-param";name="param": value'),
    # the identifier is re-serialised strictly; parameter order is kept
    ('"example-dict2";key="a";sf=?1', '"example-dict2";key="a";sf: 1'),
]


@pytest.mark.parametrize(("components", "line"), BASE_LINES, ids=[c[0] for c in BASE_LINES])
def test_signature_base_lines(components, line):
    assert base_of(fields_request(), components, structured_fields=FIELD_TYPES) == line


@pytest.mark.parametrize(("kwargs", "component", "line"), [
    ({"query": b""}, '"@query"', '"@query": ?'),
    ({"query": b""}, '"@target-uri"', '"@target-uri": https://www.example.com/path'),
    ({"path": b""}, '"@path"', '"@path": /'),
    ({"scheme": "http"}, '"@scheme"', '"@scheme": http'),
    ({"fields": [(b"host", b"WWW.Example.COM:443")]}, '"@authority"',
     '"@authority": www.example.com'),
    ({"fields": [(b"host", b"example.com:8443")]}, '"@authority"',
     '"@authority": example.com:8443'),
    ({"scheme": "http", "fields": [(b"host", b"example.com:80")]}, '"@target-uri"',
     '"@target-uri": http://example.com/path?param=value'),
    ({"scheme": "http", "fields": [(b"host", b"example.com:443")]}, '"@authority"',
     '"@authority": example.com:443'),
    ({"path": b"/a%2Fb", "query": b"x=%41"}, '"@request-target"',
     '"@request-target": /a%2Fb?x=%41'),
])
def test_derived_components_normalise_as_the_rfc_says(kwargs, component, line):
    assert base_of(fields_request(**kwargs), component) == line


def test_query_params_are_decoded_then_encoded():
    # RFC 9421 §2.2.8, both examples
    request = fields_request(query=b"param=value&foo=bar&baz=batman&qux=")
    assert base_of(request, '"@query-param";name="baz" "@query-param";name="qux" '
                   '"@query-param";name="param"') == (
        '"@query-param";name="baz": batman\n"@query-param";name="qux": \n'
        '"@query-param";name="param": value')
    request = fields_request(path=b"/parameters", query=(
        b"var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace"
        b"&fa%C3%A7ade%22%3A%20=something"))
    assert base_of(request, '"@query-param";name="var" "@query-param";name="bar" '
                   '"@query-param";name="fa%C3%A7ade%22%3A%20"') == (
        '"@query-param";name="var": this%20is%20a%20big%0Amultiline%20value\n'
        '"@query-param";name="bar": with%20plus%20whitespace\n'
        '"@query-param";name="fa%C3%A7ade%22%3A%20": something')


def test_signature_params_is_the_strict_serialisation():
    # §3.2 step 7: the member re-serialised (a lax one is canonicalised)
    request = fields_request()
    signature = rfc9421.parse_signatures(
        [b'sig=(  "@method"    "example-dict2";sf=?1;key="a" );created=1;  keyid="k";x=?1'],
        [b"sig=::"])["sig"]
    base = rfc9421.signature_base(request, signature, structured_fields=FIELD_TYPES)
    assert base.decode().splitlines()[-1] == (
        '"@signature-params": ("@method" "example-dict2";sf;key="a");created=1;keyid="k";x')


BASE_ERRORS = [
    ('"@status"', "responses"),
    ('"@signature-params"', "never a covered"),
    ('"@unknown"', "unknown derived"),
    ('"@method";req', "request is the target"),
    ('"date";req', "request is the target"),
    ('"date";tr', "trailers"),
    ('"@method";x', "no parameters"),
    ('"@query-param"', "exactly one parameter"),
    ('"@query-param";name=param', "String"),
    ('"@query-param";name="nope"', "no parameter"),
    ('"date";foo', "unknown parameter"),
    ('"date";sf=?0', "flag"),
    ('"example-dict";bs;sf', "bs cannot"),
    ('"example-dict";bs;key="a"', "bs cannot"),
    ('"date";sf', "structured type is not known"),
    ('"date";key="a"', "structured type is not known"),
    ('"cache-control";key="a"', "structured type is not known"),
    ('"example-dict2";key="zzz"', "no member"),
    ('"example-dict2";key=a', "String"),
    ('"x-ows-header";sf', "structured type is not known"),
    ('"missing-field"', "not in the request"),
    ('"Date"', "lower-case"),
    ('"date" "date"', "covered twice"),
    ('"example-dict2";sf;key="a" "example-dict2";key="a";sf', "covered twice"),
]


@pytest.mark.parametrize(("components", "match"), BASE_ERRORS, ids=[c[0] for c in BASE_ERRORS])
def test_signature_base_errors(components, match):
    with pytest.raises(SignatureBaseError, match=match):
        base_of(fields_request(), components, structured_fields=FIELD_TYPES)


def test_signature_base_errors_on_the_request():
    with pytest.raises(SignatureBaseError, match="more than once"):
        base_of(fields_request(query=b"a=1&a=2"), '"@query-param";name="a"')
    with pytest.raises(SignatureBaseError, match="no single Host"):
        base_of(fields_request(fields=[]), '"@authority"')
    with pytest.raises(SignatureBaseError, match="not ASCII"):
        base_of(fields_request(fields=[(b"x", "café".encode())]), '"x"')
    # the same value wrapped as a byte sequence is fine
    assert base_of(fields_request(fields=[(b"x", "café".encode())]), '"x";bs') == \
        '"x";bs: :Y2Fmw6k=:'
    with pytest.raises(SignatureBaseError, match="newline"):
        base_of(fields_request(fields=[(b"x", b"a\nb")]), '"x"')
    with pytest.raises(SignatureBaseError, match="example-dict"):
        base_of(fields_request(fields=[(b"example-dict", b"a=(")]), '"example-dict";sf',
                structured_fields=FIELD_TYPES)


SIG_INPUT_ERRORS = [
    ([b'a=("x")'], [b"b=::"], "different labels"),
    ([b'a=("x")', b'a=("y")'], [b"a=::"], "given twice"),
    ([b'a=("x"), a=("y")'], [b"a=::"], "given twice"),
    ([b'a="x"'], [b"a=::"], "inner list"),
    ([b"a=(x)"], [b"a=::"], "String"),
    ([b'a=("x")'], [b'a="c2ln"'], "byte sequence"),
    ([b'a=("x")'], [b"a=:c2ln:;p"], "byte sequence"),
    ([b'a=("x");created="1"'], [b"a=::"], "Integer"),
    ([b'a=("x");created=?1'], [b"a=::"], "Integer"),
    ([b'a=("x");expires=1.5'], [b"a=::"], "Integer"),
    ([b'a=("x");keyid=k'], [b"a=::"], "String"),
    ([b'a=("x");alg=1'], [b"a=::"], "String"),
    ([b'a=("x");created=1;created=2'], [b"a=::"], "given twice"),
    ([b'a=("x"'], [b"a=::"], "not closed"),
    ([b'a=("x\\n")'], [b"a=::"], "escape"),
    ([b'a=("x")'], [b"a=:!!:"], "base64"),
]


@pytest.mark.parametrize(("inputs", "signatures", "match"), SIG_INPUT_ERRORS,
                         ids=[repr(c[0])[:40] + repr(c[1])[:20] for c in SIG_INPUT_ERRORS])
def test_signature_fields_malformed(inputs, signatures, match):
    with pytest.raises(MalformedSignature, match=match):
        rfc9421.parse_signatures(inputs, signatures)


def test_signature_fields_over_several_lines():
    parsed = rfc9421.parse_signatures(
        [b'a=("@method");created=1;keyid="k";alg="ed25519";nonce="n";tag="t";other=5',
         b'b=()'], [b"b=:YQ==:", b"a=:Yg==:"])
    assert list(parsed) == ["a", "b"]
    a = parsed["a"]
    assert (a.created, a.keyid, a.alg, a.nonce, a.tag, a.expires, a.signature) == (
        1, "k", "ed25519", "n", "t", None, b"b")
    assert a.signature_params == '("@method");created=1;keyid="k";alg="ed25519";nonce="n";' \
        'tag="t";other=5'


# --------------------------------------------------------------------------- Appendix B

REQUEST_VECTORS = [
    # (id, headers, expected base, algorithm -- the RFC's keys imply none for RSA)
    ("B.2.1", vectors.HEADERS_B21, vectors.BASE_B21, "rsa-pss-sha512"),
    ("B.2.2", vectors.HEADERS_B22, vectors.BASE_B22, "rsa-pss-sha512"),
    ("B.2.3", vectors.HEADERS_B23, vectors.BASE_B23, "rsa-pss-sha512"),
    ("B.2.5", vectors.HEADERS_B25, vectors.BASE_B25, None),
    ("B.2.6", vectors.HEADERS_B26, vectors.BASE_B26, None),
]


def _label(headers: str) -> str:
    return headers.split("Signature-Input: ", 1)[1].split("=", 1)[0]


@pytest.mark.parametrize(("headers", "base", "algorithm"), [c[1:] for c in REQUEST_VECTORS],
                         ids=[c[0] for c in REQUEST_VECTORS])
def test_appendix_b2_request_signatures(headers, base, algorithm):
    request = view(with_fields(vectors.TEST_REQUEST, headers))
    assert verify_message(request, _label(headers), algorithm).decode() == base


def _tampered_signature(headers: str) -> str:
    value = headers.split("Signature: ", 1)[1]
    label, _, rest = value.partition("=:")
    raw = bytearray(base64.b64decode(rest.rstrip().rstrip(":")))
    raw[len(raw) // 2] ^= 0x01
    return headers.split("Signature: ", 1)[0] + f"Signature: {label}=:" + \
        base64.b64encode(bytes(raw)).decode() + ":\n"


@pytest.mark.parametrize(("headers", "base", "algorithm"), [c[1:] for c in REQUEST_VECTORS],
                         ids=[c[0] for c in REQUEST_VECTORS])
def test_appendix_b2_tampered_copies_refused(headers, base, algorithm):
    label = _label(headers)
    # a flipped bit of the signature
    request = view(with_fields(vectors.TEST_REQUEST, _tampered_signature(headers)))
    with pytest.raises(InvalidSignature):
        verify_message(request, label, algorithm)
    # a covered component changed (B.2.1 covers nothing but its parameters)
    tampered = vectors.TEST_REQUEST.replace("example.com", "example.net") \
        .replace("application/json", "application/xml").replace("GMT", "UTC")
    if label == "sig-b21":
        headers = headers.replace("created=1618884473", "created=1618884474")
    request = view(with_fields(tampered, headers))
    with pytest.raises(InvalidSignature):
        verify_message(request, label, algorithm)
    # another algorithm than the signature's
    request = view(with_fields(vectors.TEST_REQUEST, headers))
    other = "rsa-v1_5-sha256" if algorithm else "ecdsa-p256-sha256"
    with pytest.raises(InvalidSignature):
        verify_message(request, label, other)


def test_appendix_b24_response_signature():
    # A response: verified on the RFC's base; as a request signature it is refused.
    value = vectors.HEADERS_B24.split("sig-b24=:", 1)[1].split(":", 1)[0]
    signature = base64.b64decode(value)
    key = KEYS["test-key-ecc-p256"]
    rfc9421.verify("ecdsa-p256-sha256", key, vectors.BASE_B24.encode(), signature)
    with pytest.raises(InvalidSignature):
        rfc9421.verify("ecdsa-p256-sha256", key, vectors.BASE_B24.replace("200", "201").encode(),
                       signature)
    request = view(with_fields(vectors.TEST_REQUEST, vectors.HEADERS_B24))
    with pytest.raises(SignatureBaseError, match="responses"):
        rfc9421.signature_base(request, signatures_of(request)["sig-b24"])


def test_appendix_b3_tls_terminating_proxy():
    request = view(vectors.TTRP_REQUEST)
    assert verify_message(request, "ttrp").decode() == vectors.TTRP_BASE
    tampered = view(vectors.TTRP_REQUEST.replace("Client-Cert: :MIIBq", "Client-Cert: :MIIBr"))
    with pytest.raises(InvalidSignature):
        verify_message(tampered, "ttrp")
    moved = view(vectors.TTRP_REQUEST.replace("Host: service.internal.example",
                                              "Host: other.internal.example"))
    with pytest.raises(InvalidSignature):
        verify_message(moved, "ttrp")


@pytest.mark.parametrize(("message", "valid"), vectors.TRANSFORMS,
                         ids=["signed", "query added", "accept combined", "fields reordered",
                              "method and authority changed", "accept values swapped"])
def test_appendix_b4_transformations(message, valid):
    request = view(message)
    if valid:
        assert verify_message(request, "transform").decode() == vectors.TRANSFORM_BASE
    else:
        with pytest.raises(InvalidSignature):
            verify_message(request, "transform")


def test_section_3_2_and_4_3_examples():
    request = view(vectors.SEC32_REQUEST)
    assert verify_message(request, "sig1", "rsa-pss-sha512").decode() == vectors.SEC25_BASE
    verify_message(view(vectors.SEC43_CLIENT_REQUEST), "sig1")
    proxied = view(vectors.SEC43_PROXY_REQUEST)
    assert verify_message(proxied, "proxy_sig").decode() == vectors.SEC43_PROXY_BASE
    with pytest.raises(InvalidSignature):  # the client's signature, after the proxy's changes
        verify_message(proxied, "sig1")
    forwarded = view(vectors.SEC43_PROXY_REQUEST.replace("for=192.0.2.123", "for=192.0.2.124"))
    with pytest.raises(InvalidSignature):
        verify_message(forwarded, "proxy_sig")


# --------------------------------------------------------------------------- algorithms

BASE = b'"@method": GET\n"@signature-params": ("@method");created=1'
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
SECRET = SharedSecret(b"s3cret-bytes")


def _p1363(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign(algorithm: str, data: bytes = BASE) -> bytes:
    if algorithm == "hmac-sha256":
        import hmac

        return hmac.digest(SECRET.secret, data, "sha256")
    if algorithm == "ed25519":
        return ED_KEY.sign(data)
    if algorithm == "ecdsa-p256-sha256":
        return _p1363(EC_KEY.sign(data, ec.ECDSA(hashes.SHA256())))
    if algorithm == "rsa-pss-sha512":
        return RSA_KEY.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64),
                            hashes.SHA512())
    return RSA_KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())


VERIFY_KEYS = {"hmac-sha256": SECRET, "ed25519": ED_KEY.public_key(),
               "ecdsa-p256-sha256": EC_KEY.public_key(), "rsa-pss-sha512": RSA_KEY.public_key(),
               "rsa-v1_5-sha256": RSA_KEY.public_key()}


@pytest.mark.parametrize("algorithm", rfc9421.ALGORITHMS)
def test_every_algorithm_verifies_and_refuses(algorithm):
    key = VERIFY_KEYS[algorithm]
    signature = sign(algorithm)
    assert rfc9421.verify(algorithm, key, BASE, signature) is None
    with pytest.raises(InvalidSignature):
        rfc9421.verify(algorithm, key, BASE + b"x", signature)
    with pytest.raises(InvalidSignature):
        rfc9421.verify(algorithm, key, BASE, signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(InvalidSignature):
        rfc9421.verify(algorithm, key, BASE, b"")
    for other, other_key in VERIFY_KEYS.items():
        if other != algorithm:
            with pytest.raises(InvalidSignature):  # another algorithm, with its key or this one
                rfc9421.verify(other, other_key, BASE, signature)
            with pytest.raises(InvalidSignature):
                rfc9421.verify(other, key, BASE, signature)


def test_algorithm_rules():
    with pytest.raises(InvalidSignature):  # ECDSA in DER is not r||s
        rfc9421.verify("ecdsa-p256-sha256", EC_KEY.public_key(), BASE,
                       EC_KEY.sign(BASE, ec.ECDSA(hashes.SHA256())))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidSignature, match="P-256"):
        rfc9421.verify("ecdsa-p256-sha256", p384.public_key(), BASE, bytes(64))
    with pytest.raises(InvalidSignature):  # PSS with another salt length than 64
        rfc9421.verify("rsa-pss-sha512", RSA_KEY.public_key(), BASE, RSA_KEY.sign(
            BASE, padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32),
            hashes.SHA512()))
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidSignature, match="2048"):
        rfc9421.verify("rsa-v1_5-sha256", short.public_key(), BASE,
                       short.sign(BASE, padding.PKCS1v15(), hashes.SHA256()))
    with pytest.raises(InvalidSignature, match="unsupported"):
        rfc9421.verify("hmac-sha512", SECRET, BASE, b"")
    assert rfc9421.default_algorithm(SECRET) == "hmac-sha256"
    assert rfc9421.default_algorithm(ED_KEY.public_key()) == "ed25519"
    assert rfc9421.default_algorithm(EC_KEY.public_key()) == "ecdsa-p256-sha256"
    assert rfc9421.default_algorithm(RSA_KEY.public_key()) is None
    assert rfc9421.default_algorithm(p384.public_key()) is None
    assert "s3cret" not in repr(SECRET)


# --------------------------------------------------------------------------- configuration


def config(section: Any) -> Any:
    return parse_config(FieldReader({"http_message_signatures": section}, "api.json"))


def test_configuration_defaults():
    parsed = config({"enabled": True})
    assert parsed.algorithms == rfc9421.ALGORITHMS
    assert [str(item.value) for item in parsed.required_components] == ["@method", "@target-uri"]
    assert (parsed.max_age, parsed.clock_skew, parsed.nonce_required, parsed.label,
            parsed.tag, parsed.require_content_digest) == (300, 5, False, "", "", True)
    parsed = config({"enabled": True, "algorithms": ["ed25519"], "max_age": 60,
                     "required_components": ["@authority", '"@query-param";name="id"',
                                             "content-type", '"content-digest";key="sha-256"'],
                     "label": "sig1", "tag": "app", "clock_skew": 0, "nonce_required": True,
                     "require_content_digest": False})
    assert parsed.algorithms == ("ed25519",)
    assert parsed.required_components[1] == Item("@query-param", (("name", "id"),))


@pytest.mark.parametrize(("section", "field"), [
    ({"algorithms": ["hmac-sha512"]}, "http_message_signatures.algorithms"),
    ({"algorithms": []}, "http_message_signatures.algorithms"),
    ({"algorithms": "ed25519"}, "http_message_signatures.algorithms"),
    ({"max_age": 0}, "http_message_signatures.max_age"),
    ({"max_age": "300"}, "http_message_signatures.max_age"),
    ({"clock_skew": -1}, "http_message_signatures.clock_skew"),
    ({"nonce_required": "yes"}, "http_message_signatures.nonce_required"),
    ({"label": "Sig"}, "http_message_signatures.label"),
    ({"label": 5}, "http_message_signatures.label"),
    ({"tag": "caf\u00e9"}, "http_message_signatures.tag"),
    ({"required_components": ["@status"]}, "http_message_signatures.required_components[0]"),
    ({"required_components": ["@method", "Date"]},
     "http_message_signatures.required_components[1]"),
    ({"required_components": ['"@query-param"']},
     "http_message_signatures.required_components[0]"),
    ({"required_components": ['"x";name="a"']}, "http_message_signatures.required_components[0]"),
    ({"required_components": ['"unclosed']}, "http_message_signatures.required_components[0]"),
    ({"required_components": [5]}, "http_message_signatures.required_components[0]"),
    ({"require_content_digest": 1}, "http_message_signatures.require_content_digest"),
])
def test_configuration_errors_name_the_field(section, field):
    with pytest.raises(ConfigError) as caught:
        config({"enabled": True, **section})
    assert caught.value.field == field, str(caught.value)


# --------------------------------------------------------------------------- the gateway

MISSING = (401, {"error": "Authorization field missing"})
INVALID = (401, {"error": "Authorization field missing, malformed or invalid"})
MALFORMED = (400, {"error": "Malformed Signature-Input or Signature field"})
HMAC_SECRET = "c2VjcmV0LWFzLXN0b3JlZA=="  # used as these bytes, never decoded
APIS = ("ms", "pss", "once", "lab")


def _pem(private: Any) -> bytes:
    return bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _private_pem(private: Any) -> bytes:
    return bytes(private.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def gw(request, module_gateway_factory, make_api, echo):
    storage: dict[str, Any] = {"type": "memory"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.ensure_running()
        server.flush()
        storage = {"type": "redis", "host": server.host, "port": server.port}

    def signed(api_id: str, **section: Any) -> dict[str, Any]:
        return make_api(api_id, f"/{api_id}/", echo.base_url, use_keyless=False,
                        http_message_signatures={"enabled": True, **section})

    apis = [
        signed("ms"),
        signed("pss", algorithms=["rsa-pss-sha512", "ed25519"]),
        signed("once", nonce_required=True, max_age=60),
        signed("lab", label="mine", tag="app"),
        # the RFC's test request, signed in 2021 (max_age reaches back to it)
        make_api("rfc", "/foo", echo.base_url, use_keyless=False, strip_listen_path=False,
                 http_message_signatures={"enabled": True, "max_age": 2_000_000_000,
                                          "required_components": ["@authority"],
                                          "require_content_digest": False}),
    ]
    gateway = module_gateway_factory(apis, storage=storage)
    from tests.conftest import Admin

    admin = Admin(gateway.base_url, gateway.secret)

    ids: dict[int, str] = {}

    def stored(private: Any) -> str:
        if id(private) in ids:
            return ids[id(private)]
        resp = requests.post(gateway.url("/tyk/certs?org_id=test-org"), data=_pem(private),
                             headers=admin.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        ids[id(private)] = str(resp.json()["id"])
        return ids[id(private)]

    every = (*APIS, "rfc")
    admin.add_key("hkey1", session(every, hmac_enabled=True, hmac_string=HMAC_SECRET))
    admin.add_key("hoff1", session(every, hmac_string=HMAC_SECRET))
    admin.add_key("edkey1", session(every, enable_http_signature_validation=True,
                                    rsa_certificate_id=stored(ED_KEY)))
    admin.add_key("edoff1", session(every, rsa_certificate_id=stored(ED_KEY)))
    admin.add_key("eckey1", session(every, enable_http_signature_validation=True,
                                    rsa_certificate_id=stored(EC_KEY)))
    admin.add_key("rsakey1", session(every, enable_http_signature_validation=True,
                                     rsa_certificate_id=stored(RSA_KEY)))
    admin.add_key("both1", session(every, enable_http_signature_validation=True,
                                   hmac_string=HMAC_SECRET, rsa_certificate_id=stored(EC_KEY)))
    admin.add_key("gone1", session(every, enable_http_signature_validation=True,
                                   rsa_certificate_id="test-org" + "0" * 64))
    admin.add_key("expired1", session(every, hmac_enabled=True, hmac_string=HMAC_SECRET,
                                      expires=int(time.time()) - 60))
    admin.add_key("other1", session(("nothere",), hmac_enabled=True, hmac_string=HMAC_SECRET))
    rfc_ed = serialization.load_pem_private_key(
        vectors.KEYS_PEM["test-key-ed25519"][1].encode(), None)
    admin.add_key("test-key-ed25519", session(("rfc",), enable_http_signature_validation=True,
                                              rsa_certificate_id=stored(rfc_ed)))
    return gateway


KEY_MATERIAL: dict[str, tuple[str, Any]] = {
    "hkey1": ("hmac-sha256", SharedSecret(HMAC_SECRET.encode())),
    "hoff1": ("hmac-sha256", SharedSecret(HMAC_SECRET.encode())),
    "edkey1": ("ed25519", None), "edoff1": ("ed25519", None),
    "eckey1": ("ecdsa-p256-sha256", None), "rsakey1": ("rsa-pss-sha512", None),
    "both1": ("ecdsa-p256-sha256", None), "gone1": ("ed25519", None),
    "expired1": ("hmac-sha256", None), "other1": ("hmac-sha256", None),
}


def signed_request(gw: Any, path: str, *, keyid: str = "hkey1", method: str = "GET",
                   algorithm: str | None = None, alg: str | bool | None = True,
                   components: tuple[str, ...] = ("@method", "@target-uri"),
                   created: int | bool | None = True, expires: int | None = None,
                   nonce: str | None = None, label: str = "sig", tag: str | None = None,
                   body: bytes | None = None, headers: dict[str, str] | None = None,
                   digest: str | None = None, tamper: Any = None) -> requests.Response:
    """Sign a request with this file's own signer and send it through ``gw``."""
    url = gw.url(path)
    sent = dict(headers or {})
    if body is not None:
        sent["Content-Digest"] = "sha-256=:" + base64.b64encode(
            hashlib.sha256(body).digest()).decode() + ":"
    if digest is not None:
        sent["Content-Digest"] = digest
    algorithm = algorithm or KEY_MATERIAL.get(keyid, ("hmac-sha256", None))[0]
    params = ""
    if created is True:
        params += f";created={int(time.time())}"
    elif isinstance(created, int) and created is not False:
        params += f";created={created}"
    if expires is not None:
        params += f";expires={expires}"
    if nonce is not None:
        params += f';nonce="{nonce}"'
    params += f';keyid="{keyid}"'
    if alg is True:
        params += f';alg="{algorithm}"'
    elif isinstance(alg, str):
        params += f';alg="{alg}"'
    if tag is not None:
        params += f';tag="{tag}"'
    inner = "(" + " ".join(c if c.startswith('"') else f'"{c}"' for c in components) + ")" \
        + params
    prepared = requests.Request(method, url, headers=sent, data=body).prepare()
    fields = [(name.lower().encode(), value.encode() if isinstance(value, str) else value)
              for name, value in prepared.headers.items()]
    host = url.split("/")[2]
    fields.append((b"host", host.encode()))
    split_path, _, query = path.partition("?")
    signature = rfc9421.parse_signatures([f"{label}={inner}".encode()], [b"%s=::" % label.encode()])
    request = RequestView(method.encode(), "http", split_path.encode(), query.encode(), fields)
    base = rfc9421.signature_base(request, signature[label])
    signature_bytes = _sign_for(keyid, algorithm, base)
    prepared.headers["Signature-Input"] = f"{label}={inner}"
    prepared.headers["Signature"] = f"{label}=:" + base64.b64encode(signature_bytes).decode() + ":"
    if tamper is not None:
        tamper(prepared)
    with requests.Session() as client:
        return client.send(prepared, timeout=10)


def _sign_for(keyid: str, algorithm: str, base: bytes) -> bytes:
    if algorithm == "hmac-sha256":
        import hmac

        return hmac.digest(HMAC_SECRET.encode(), base, "sha256")
    return sign(algorithm, base)


def check(resp: requests.Response, expected: tuple[int, Any]) -> None:
    status, body = expected
    assert resp.status_code == status, resp.text
    if body is not None:
        assert resp.json() == body
    if (status, body) in (MISSING, INVALID):
        assert resp.headers["WWW-Authenticate"] == "Signature"


OK = (200, None)


def test_no_signature_is_a_challenge(gw):
    check(requests.get(gw.url("/ms/x"), timeout=10), MISSING)
    check(requests.get(gw.url("/ms/x"), headers={"Signature": "sig=:YQ==:"}, timeout=10), MISSING)
    check(requests.get(gw.url("/ms/x"), headers={"Signature-Input": 'sig=("@method")'},
                       timeout=10), MISSING)


@pytest.mark.parametrize(("signature_input", "signature"), [
    ('sig=("@method"', "sig=:YQ==:"),
    ('sig=("@method")', "sig=:YQ==:, sig=:YQ==:"),
    ('sig=("@method")', "other=:YQ==:"),
    ('sig=("@method");created="now"', "sig=:YQ==:"),
    ('sig=(@method)', "sig=:YQ==:"),
    ('Sig=("@method")', "Sig=:YQ==:"),
])
def test_malformed_fields_are_400(gw, signature_input, signature):
    resp = requests.get(gw.url("/ms/x"), headers={"Signature-Input": signature_input,
                                                  "Signature": signature}, timeout=10)
    check(resp, MALFORMED)


@pytest.mark.parametrize("keyid", ["hkey1", "edkey1", "eckey1"])
def test_signed_requests_pass(gw, keyid):
    resp = signed_request(gw, "/ms/items?id=7", keyid=keyid)
    check(resp, OK)
    echoed = resp.json()
    assert echoed["url"] == "/items?id=7"
    sent = {name.lower() for name, _ in echoed["headers"]}
    assert {"signature", "signature-input"} <= sent  # forwarded as received
    # without alg the key decides (HMAC secret, Ed25519, P-256)
    check(signed_request(gw, "/ms/items", keyid=keyid, alg=False), OK)


def test_rsa_needs_alg_unless_one_rsa_algorithm_is_allowed(gw):
    check(signed_request(gw, "/ms/r", keyid="rsakey1", algorithm="rsa-pss-sha512"), OK)
    check(signed_request(gw, "/ms/r", keyid="rsakey1", algorithm="rsa-v1_5-sha256"), OK)
    check(signed_request(gw, "/ms/r", keyid="rsakey1", alg=False), INVALID)  # ambiguous
    check(signed_request(gw, "/pss/r", keyid="rsakey1", alg=False), OK)  # pss alone allowed
    check(signed_request(gw, "/pss/r", keyid="rsakey1", algorithm="rsa-v1_5-sha256"), INVALID)


def refusals(gw: Any) -> list[tuple[str, requests.Response]]:
    now = int(time.time())
    alter_path = lambda p: setattr(p, "url", p.url.replace("/ms/x", "/ms/y"))  # noqa: E731

    def alter_signature(prepared: Any) -> None:
        value = prepared.headers["Signature"]
        prepared.headers["Signature"] = value[:10] + ("A" if value[10] != "A" else "B") \
            + value[11:]

    def alter_input(prepared: Any) -> None:
        prepared.headers["Signature-Input"] = prepared.headers["Signature-Input"].replace(
            "@target-uri", "@path")

    return [
        ("tampered path", signed_request(gw, "/ms/x", tamper=alter_path)),
        ("tampered signature", signed_request(gw, "/ms/x", tamper=alter_signature)),
        ("tampered components", signed_request(gw, "/ms/x", tamper=alter_input)),
        ("method changed", signed_request(gw, "/ms/x", tamper=lambda p: setattr(
            p, "method", "DELETE"))),
        ("wrong alg for the key", signed_request(gw, "/ms/x", alg="ed25519")),
        ("alg not allowed", signed_request(gw, "/pss/x", keyid="eckey1")),
        ("unknown alg", signed_request(gw, "/ms/x", alg="hmac-sha512")),
        ("missing created", signed_request(gw, "/ms/x", created=None)),
        ("stale", signed_request(gw, "/ms/x", created=now - 400)),
        ("in the future", signed_request(gw, "/ms/x", created=now + 60)),
        ("expired", signed_request(gw, "/ms/x", created=now - 30, expires=now - 20)),
        ("expires before created", signed_request(gw, "/ms/x", expires=now - 100)),
        ("unknown keyid", signed_request(gw, "/ms/x", keyid="nosuchkey")),
        ("hmac not enabled", signed_request(gw, "/ms/x", keyid="hoff1")),
        ("public key not enabled", signed_request(gw, "/ms/x", keyid="edoff1")),
        ("certificate gone", signed_request(gw, "/ms/x", keyid="gone1")),
        ("secret and key, no alg", signed_request(gw, "/ms/x", keyid="both1", alg=False)),
        ("@target-uri not covered", signed_request(gw, "/ms/x", components=("@method",
                                                                            "@path"))),
        ("@method not covered", signed_request(gw, "/ms/x", components=("@target-uri",))),
        ("body without content-digest", signed_request(
            gw, "/ms/x", method="POST", body=b"{}", components=("@method", "@target-uri"))),
        ("component not resolvable", signed_request(
            gw, "/ms/x", components=("@method", "@target-uri", "x-absent"),
            headers={"X-Absent": "1"}, tamper=lambda p: p.headers.pop("X-Absent"))),
        ("@status", signed_request(gw, "/ms/x", components=("@method", "@target-uri"),
                                   tamper=lambda p: p.headers.__setitem__(
                                       "Signature-Input", p.headers["Signature-Input"].replace(
                                           '"@target-uri"', '"@target-uri" "@status"')))),
        ("no keyid", signed_request(gw, "/ms/x", tamper=lambda p: p.headers.__setitem__(
            "Signature-Input", p.headers["Signature-Input"].replace(';keyid="hkey1"', "")))),
        ("nonce required", signed_request(gw, "/once/x")),
        ("label not the configured one", signed_request(gw, "/lab/x", tag="app")),
        ("tag not the configured one", signed_request(gw, "/lab/x", label="mine", tag="other")),
        ("two signatures, no label rule", signed_request(
            gw, "/ms/x", tamper=lambda p: (
                p.headers.__setitem__("Signature-Input", p.headers["Signature-Input"]
                                      + ", b=" + p.headers["Signature-Input"][4:]),
                p.headers.__setitem__("Signature", p.headers["Signature"] + ", b="
                                      + p.headers["Signature"][4:])))),
    ]


def test_every_refusal_is_the_same_401(gw):
    answers = refusals(gw)
    for why, resp in answers:
        assert resp.status_code == 401, (why, resp.text)
        assert resp.json() == INVALID[1], why
        assert resp.headers["WWW-Authenticate"] == "Signature", why
    first = answers[0][1]
    shape = {name: first.headers[name] for name in ("Content-Type", "Content-Length")}
    for why, resp in answers:
        assert resp.content == first.content, why
        assert {name: resp.headers[name] for name in shape} == shape, why


def test_labels_and_tags(gw):
    check(signed_request(gw, "/lab/x", label="mine", tag="app"), OK)

    def add_other(prepared: Any) -> None:
        # another signer's (garbage) signature alongside: not looked at
        prepared.headers["Signature-Input"] += ', theirs=("@method");created=1;keyid="x"'
        prepared.headers["Signature"] += ", theirs=:YQ==:"

    check(signed_request(gw, "/lab/x", label="mine", tag="app", tamper=add_other), OK)


def test_key_of_another_api_and_expired_keys(gw):
    check(signed_request(gw, "/ms/x", keyid="other1"), (403, None))
    check(signed_request(gw, "/ms/x", keyid="expired1"), (401, {
        "error": "Key has expired, please renew"}))


def test_nonce_replay_refused(gw):
    nonce = f"n-{time.time_ns()}"
    first = signed_request(gw, "/once/x", nonce=nonce)
    check(first, OK)

    def replay(prepared: Any) -> None:
        prepared.headers["Signature-Input"] = first.request.headers["Signature-Input"]
        prepared.headers["Signature"] = first.request.headers["Signature"]

    check(signed_request(gw, "/once/x", nonce=nonce, tamper=replay), INVALID)
    # a fresh nonce passes; the same nonce of another key is another nonce
    check(signed_request(gw, "/once/x", nonce=nonce + "2"), OK)
    check(signed_request(gw, "/once/x", nonce=nonce, keyid="edkey1"), OK)
    # a nonce is claimed only by a signature that verified
    bad = f"b-{time.time_ns()}"
    alter = lambda p: setattr(p, "url", p.url.replace("/once/x", "/once/y"))  # noqa: E731
    check(signed_request(gw, "/once/x", nonce=bad, tamper=alter), INVALID)
    check(signed_request(gw, "/once/x", nonce=bad), OK)
    # a nonce is honoured where it is not required, too
    optional = f"o-{time.time_ns()}"
    check(signed_request(gw, "/ms/x", nonce=optional), OK)
    again = signed_request(gw, "/ms/x", nonce=optional)
    check(again, INVALID)


def test_body_with_content_digest(gw):
    components = ("@method", "@target-uri", "content-digest", "content-type")
    headers = {"Content-Type": "application/json"}
    resp = signed_request(gw, "/ms/upload", method="POST", body=b'{"a": 1}',
                          components=components, headers=headers)
    check(resp, OK)
    assert resp.json()["body"] == '{"a": 1}'

    def other_body(prepared: Any) -> None:
        prepared.body = b'{"a": 2}'

    resp = signed_request(gw, "/ms/upload", method="POST", body=b'{"a": 1}',
                          components=components, headers=headers, tamper=other_body)
    assert resp.status_code == 400, resp.text
    assert "Content-Digest" in resp.json()["error"]
    # a malformed digest that is signed is the digest check's 400, after the signature
    resp = signed_request(gw, "/ms/upload", method="POST", body=b"x", components=components,
                          headers=headers, digest="sha-256=:bm9wZQ==:")
    assert resp.status_code == 400, resp.text
    assert "Content-Digest" in resp.json()["error"]
    # covered without a body: checked against the empty content
    check(signed_request(gw, "/ms/empty", components=("@method", "@target-uri",
                                                      "content-digest"),
                         headers={"Content-Digest": "sha-256=:" + base64.b64encode(
                             hashlib.sha256(b"").digest()).decode() + ":"}), OK)
    resp = signed_request(gw, "/ms/empty", components=("@method", "@target-uri",
                                                       "content-digest"),
                          headers={"Content-Digest": "sha-256=:" + base64.b64encode(
                              hashlib.sha256(b"x").digest()).decode() + ":"})
    assert resp.status_code == 400, resp.text


def wire(message: str) -> bytes:
    """An RFC example message as it goes on the wire (CRLF line ends)."""
    head, _, body = message.partition("\n\n")
    return (head.replace("\n", "\r\n") + "\r\n\r\n" + body.rstrip("\n")).encode()


def test_appendix_b_through_the_gateway(gw, raw):
    # B.2.6 (ed25519): the RFC's request as the RFC signed it in 2021, to an
    # API whose max_age reaches back that far.  (B.2.5's shared secret is 64
    # random bytes, which no hmac_string -- a JSON string used as its UTF-8
    # bytes -- can hold; it is checked above, without the gateway.)
    for headers in (vectors.HEADERS_B26,):
        message = with_fields(vectors.TEST_REQUEST, headers)
        with raw(gw.port) as conn:
            resp = conn.request(wire(message))
        assert resp.status == 200, resp.body
        for tampered in (message.replace("Date: Tue", "Date: Wed"),
                         message.replace("Host: example.com", "Host: example.org")):
            with raw(gw.port) as conn:
                resp = conn.request(wire(tampered))
            assert resp.status == 401, resp.body


# --------------------------------------------------------------------------- interop


def _library_keys() -> dict[str, tuple[Any, Any]]:
    from http_message_signatures import algorithms

    return {
        "hkey1": (algorithms.HMAC_SHA256, HMAC_SECRET.encode()),
        "edkey1": (algorithms.ED25519, _private_pem(ED_KEY)),
        "eckey1": (algorithms.ECDSA_P256_SHA256, _private_pem(EC_KEY)),
        "rsakey1": (algorithms.RSA_PSS_SHA512, _private_pem(RSA_KEY)),
    }


@pytest.mark.parametrize("keyid", ["hkey1", "edkey1", "eckey1", "rsakey1"])
def test_requests_http_signature_interop(gw, keyid):
    from requests_http_signature import HTTPSignatureAuth

    algorithm, key = _library_keys()[keyid]
    auth = HTTPSignatureAuth(signature_algorithm=algorithm, key=key, key_id=keyid,
                             use_nonce=True)
    resp = requests.post(gw.url("/ms/interop?x=1"), json={"hello": "world"}, auth=auth,
                         timeout=10)
    check(resp, OK)
    assert json.loads(resp.json()["body"]) == {"hello": "world"}
    check(requests.get(gw.url("/ms/interop"), auth=auth, timeout=10), OK)
    # the signature over another target, another body, replayed
    prepared = requests.Request("GET", gw.url("/ms/interop?x=1"), auth=auth).prepare()
    prepared.url = prepared.url.replace("x=1", "x=2")
    with requests.Session() as client:
        check(client.send(prepared, timeout=10), INVALID)
    prepared = requests.Request("POST", gw.url("/ms/interop"), json={"a": 1}, auth=auth) \
        .prepare()
    prepared.body = b'{"a": 2}'
    with requests.Session() as client:
        resp = client.send(prepared, timeout=10)
    assert resp.status_code == 400, resp.text
    prepared = requests.Request("GET", gw.url("/ms/interop"), auth=auth).prepare()
    with requests.Session() as client:
        check(client.send(prepared, timeout=10), OK)
        check(client.send(prepared, timeout=10), INVALID)  # its nonce, replayed


@pytest.mark.parametrize("keyid", ["hkey1", "edkey1", "eckey1", "rsakey1"])
def test_http_message_signatures_interop(gw, keyid):
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver

    algorithm, key = _library_keys()[keyid]

    class Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id: str) -> Any:
            if key_id == "hkey1":
                return key
            return serialization.load_pem_private_key(key, None)

        def resolve_public_key(self, key_id: str) -> Any:
            raise AssertionError("only signing here")

    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=Keys())

    def send(path: str, tamper: Any = None, **sign_options: Any) -> requests.Response:
        prepared = requests.Request("GET", gw.url(path)).prepare()
        signer.sign(prepared, key_id=keyid, created=datetime.datetime.now(),
                    covered_component_ids=("@method", "@authority", "@target-uri", "@path",
                                           '"@query-param";name="q"'), **sign_options)
        if tamper is not None:
            tamper(prepared)
        with requests.Session() as client:
            return client.send(prepared, timeout=10)

    check(send("/ms/lib?q=a%20b&r=1"), OK)
    # without alg: the key decides (an RSA key where one RSA algorithm is allowed)
    check(send("/pss/lib?q=1" if keyid == "rsakey1" else "/ms/lib?q=1", include_alg=False), OK)
    check(send("/lab/lib?q=1", label="mine", tag="app"), OK)
    check(send("/lab/lib?q=1", label="mine", tag="other"), INVALID)
    check(send("/ms/lib?q=1", tamper=lambda p: setattr(p, "url", p.url.replace("q=1", "q=2"))),
          INVALID)
    check(send("/ms/lib?q=1", tamper=lambda p: setattr(p, "url", p.url.replace("/lib", "/lob"))),
          INVALID)


@pytest.mark.redis
def test_replay_guard_store_down_is_a_503(gateway_factory, make_api, echo, redis_flush,
                                         admin_for):
    gateway = gateway_factory(
        [make_api("once", "/once/", echo.base_url, use_keyless=False,
                  http_message_signatures={"enabled": True, "nonce_required": True})],
        storage={"type": "redis", "host": redis_flush.host, "port": redis_flush.port,
                 "timeout": 0.5})
    admin_for(gateway).add_key("hkey1", session(("once",), hmac_enabled=True,
                                                hmac_string=HMAC_SECRET))
    check(signed_request(gateway, "/once/x", nonce=f"s-{time.time_ns()}"), OK)
    redis_flush.stop()
    try:
        resp = signed_request(gateway, "/once/x", nonce=f"t-{time.time_ns()}")
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"].startswith("Session store unavailable")
    finally:
        redis_flush.start()
