"""The OAuth 2.0 protocol pieces of :mod:`fastgate.auth.oauth2.protocol`, on
their own (no gateway): PKCE (RFC 7636), redirect-URI matching (osin's
``ValidateUri``), request parameters (Go's ``FormValue`` with RFC 6749
§3.1's duplicate rule) and client credentials (RFC 6749 §2.3.1).
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from fastgate.auth.oauth2.protocol import (
    ParamError,
    basic_credential_forms,
    basic_credentials,
    parse_form,
    pkce_challenge,
    pkce_matches,
    pkce_value_ok,
    request_params,
    validate_redirect,
)

FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"

# -- PKCE -------------------------------------------------------------------------------------

#: RFC 7636 Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_vector() -> None:
    assert pkce_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert pkce_matches(RFC_VERIFIER, RFC_CHALLENGE)


def test_challenge_is_unpadded_base64url_of_sha256() -> None:
    verifier = "a" * 64
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert pkce_challenge(verifier) == expected.rstrip(b"=").decode()
    assert "=" not in pkce_challenge(verifier) and len(pkce_challenge(verifier)) == 43


def _flip(text: str, index: int) -> str:
    char = "A" if text[index] != "A" else "B"
    return text[:index] + char + text[index + 1:]


@pytest.mark.parametrize("index", [0, 21, -1])
def test_tampered_verifier_or_challenge_does_not_match(index: int) -> None:
    assert not pkce_matches(_flip(RFC_VERIFIER, index), RFC_CHALLENGE)
    assert not pkce_matches(RFC_VERIFIER, _flip(RFC_CHALLENGE, index))


def test_matches_refuses_odd_values_without_raising() -> None:
    assert not pkce_matches(RFC_VERIFIER, "")
    assert not pkce_matches(RFC_VERIFIER, RFC_CHALLENGE + "=")
    assert not pkce_matches(RFC_VERIFIER, "é" * 43)  # not ASCII: no error, no match
    assert not pkce_matches("é" * 43, RFC_CHALLENGE)
    # A verifier that is not a valid one never matches, even its own challenge.
    short = "a" * 42
    assert not pkce_matches(short, pkce_challenge(short))
    assert not pkce_matches(RFC_CHALLENGE, RFC_CHALLENGE)  # the challenge as its verifier


@pytest.mark.parametrize(("length", "ok"), [(0, False), (42, False), (43, True),
                                            (128, True), (129, False)])
def test_pkce_value_length_bounds(length: int, ok: bool) -> None:
    assert pkce_value_ok("x" * length) is ok
    value = ("aZ09-._~" * 20)[:length]
    assert pkce_value_ok(value) is ok
    if ok:
        assert pkce_matches(value, pkce_challenge(value))


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "%", "é", "\n", "*"])
def test_pkce_value_refuses_characters_outside_unreserved(bad: str) -> None:
    assert not pkce_value_ok("a" * 42 + bad)
    assert not pkce_value_ok(bad + "a" * 50)
    assert not pkce_value_ok("a" * 43 + "\n")  # no trailing newline slips through


# -- redirect URIs ---------------------------------------------------------------------------

CB = "http://127.0.0.1/cb"


@pytest.mark.parametrize("given", [
    CB,
    CB + "/",
    CB + "/sub",
    CB + "/sub/deeper",
    CB + "?x=1&y=2",                 # the query is the client's own
    CB + "/a/./b",
    "HTTP://127.0.0.1/cb",          # scheme and host are case-insensitive
])
def test_redirect_accepted(given: str) -> None:
    assert validate_redirect((CB,), given)


@pytest.mark.parametrize("given", [
    "http://127.0.0.1/cbx",          # not on a '/' boundary
    "http://127.0.0.1/c",
    "http://127.0.0.1/",
    "http://127.0.0.1",
    "http://127.0.0.1/CB",           # the path is case-sensitive
    CB + "/../admin",
    CB + "/..",
    CB + "/a/../../admin",
    CB + "/%2e%2e/admin",
    CB + "/%2E%2E/admin",
    CB + "/.%2e/admin",
    CB + "/..%2fadmin",
    CB + "/..%2Fadmin",
    "https://127.0.0.1/cb",          # another scheme
    "ftp://127.0.0.1/cb",
    "http://127.0.0.2/cb",           # another host
    "http://localhost/cb",
    "http://127.0.0.1:8080/cb",      # another port
    "http://127.0.0.1:80/cb",        # even the default one spelled out
    CB + "#frag",                    # RFC 6749 §3.1.2: no fragment
    CB + "#",
    CB + "/sub#x",
    "/cb",                           # relative
    "cb",
    "//127.0.0.1/cb",
    "",
    "http://127.0.0.1@evil/cb",      # userinfo: the host is "evil"
    "http://127.0.0.1@evil/",
    "http://user@127.0.0.1/cb",
    "http://evil/127.0.0.1/cb",
    "http://127.0.0.1.evil/cb",
    CB + "/%ff",                     # a path that is not UTF-8 once decoded
])
def test_redirect_refused(given: str) -> None:
    assert not validate_redirect((CB,), given)


def test_backslash_traversal_refused() -> None:
    """Browsers read ``\\`` as ``/`` in http(s) URLs (WHATWG URL), so
    ``/cb/..\\evil`` leads to ``/evil``: it is a ``..`` segment too."""
    assert not validate_redirect((CB,), CB + "/..\\evil")
    assert not validate_redirect((CB,), CB + "\\..\\evil")
    assert not validate_redirect((CB + "/",), CB + "/..\\")
    assert validate_redirect((CB,), CB + "/a\\b")  # still below /cb/


def test_registered_with_trailing_slash() -> None:
    assert validate_redirect((CB + "/",), CB + "/")
    assert validate_redirect((CB + "/",), CB + "/x")
    assert not validate_redirect((CB + "/",), CB + "/../x")


def test_registered_root() -> None:
    root = "http://127.0.0.1/"
    assert validate_redirect((root,), "http://127.0.0.1/anything/below")
    assert not validate_redirect((root,), "http://127.0.0.1/../x")


def test_several_registered_uris() -> None:
    registered = (CB, "https://app.example/return", "http://127.0.0.1:9000/other")
    assert validate_redirect(registered, CB)
    assert validate_redirect(registered, "https://app.example/return/x")
    assert validate_redirect(registered, "http://127.0.0.1:9000/other")
    # A path of one registered URI on the host of another is not allowed.
    assert not validate_redirect(registered, "https://app.example/cb")
    assert not validate_redirect(registered, "http://127.0.0.1:9000/cb")
    assert not validate_redirect(registered, "http://127.0.0.1/other")
    assert not validate_redirect((), CB)


def test_a_bad_registered_uri_is_skipped() -> None:
    assert not validate_redirect(("/cb",), "/cb")
    assert not validate_redirect((CB + "#x",), CB)
    assert validate_redirect(("not a uri", CB + "#x", CB), CB + "/ok")


# -- request parameters ---------------------------------------------------------------------------


def test_body_before_query() -> None:
    params = request_params(b"a=query&q=only", b"a=body&b=2", FORM)
    assert params == {"a": "body", "b": "2", "q": "only"}


def test_query_alone_and_nothing() -> None:
    assert request_params(b"a=1&b=", None, None) == {"a": "1", "b": ""}
    assert request_params(b"", None, None) == {}
    assert request_params(b"", b"", FORM) == {}


def test_form_decoding() -> None:
    params = request_params(b"", b"s=a+b%2Bc%3D&e=caf%C3%A9&empty=&flag", FORM)
    assert params == {"s": "a b+c=", "e": "café", "empty": "", "flag": ""}


def test_content_type_parameters_and_case() -> None:
    body = b"a=1"
    assert request_params(b"", body, FORM + b"; charset=UTF-8") == {"a": "1"}
    assert request_params(b"", body, b"Application/X-WWW-Form-Urlencoded") == {"a": "1"}
    assert request_params(b"", b'{"a":"1"}', b"application/json; charset=utf-8") == {"a": "1"}


@pytest.mark.parametrize(("query", "body"), [
    (b"", b"a=1&a=2"),
    (b"", b"a=1&a=1"),
    (b"a=1&a=2", None),
    (b"a=1&b=2&a=3", b"a=0"),  # twice in the query even though the body has it
    (b"", b"a=1&b=&a="),
])
def test_duplicate_parameters_refused(query: bytes, body: bytes | None) -> None:
    with pytest.raises(ParamError, match="more than once"):
        request_params(query, body, FORM)


def test_once_in_body_and_once_in_query_is_allowed() -> None:
    assert request_params(b"a=q", b"a=b", FORM) == {"a": "b"}


def test_json_body() -> None:
    body = b'{"grant_type":"client_credentials","n":5,"f":1.5,"neg":-2,"skip":null}'
    params = request_params(b"scope=q&n=9", body, JSON)
    assert params == {"grant_type": "client_credentials", "n": "5", "f": "1.5", "neg": "-2",
                      "scope": "q"}


@pytest.mark.parametrize("body", [
    b'["a"]', b'"text"', b"5", b"null", b"true",
    b'{"a":true}', b'{"a":false}', b'{"a":["x"]}', b'{"a":{"b":"c"}}',
    b"{not json", b'{"a":"1"', b"\xff\xfe",
])
def test_json_body_refused(body: bytes) -> None:
    with pytest.raises(ParamError):
        request_params(b"", body, JSON)


def test_json_duplicate_key_is_not_two_values() -> None:
    # A JSON object has one value per key (the last); it cannot smuggle two.
    assert request_params(b"", b'{"a":"1","a":"2"}', JSON) == {"a": "2"}


@pytest.mark.parametrize("ctype", [None, b"", b"text/plain", b"multipart/form-data",
                                   b"application/jsonx", b"application/x-www-form"])
def test_other_content_types_are_ignored(ctype: bytes | None) -> None:
    assert request_params(b"q=1", b"a=1&a=2;%zz", ctype) == {"q": "1"}


@pytest.mark.parametrize("bad", [b"a=%zz", b"a=%4", b"a=%", b"%g0=1", b"a=1;b=2", b"a=1&;",
                                 b"a=\xff", b"a=%ff", b"a=%C3", b"%80=x"])
def test_malformed_forms_refused(bad: bytes) -> None:
    with pytest.raises(ParamError):
        parse_form(bad)
    with pytest.raises(ParamError):
        request_params(b"", bad, FORM)
    with pytest.raises(ParamError):
        request_params(bad, None, None)


def test_param_error_never_repeats_a_value() -> None:
    with pytest.raises(ParamError) as refused:
        request_params(b"", b'{"client_secret":["s3cr3t-value"]}', JSON)
    assert "s3cr3t-value" not in str(refused.value)
    with pytest.raises(ParamError) as refused:
        request_params(b"", b"client_secret=s3cr3t&client_secret=s3cr3t", FORM)
    assert "s3cr3t" not in str(refused.value)


# -- client credentials ------------------------------------------------------------------------


def _basic(text: str, scheme: str = "Basic") -> bytes:
    return f"{scheme} {base64.b64encode(text.encode()).decode()}".encode()


@pytest.mark.parametrize(("text", "expected"), [
    ("client:secret", ("client", "secret")),
    ("client:se:cr:et", ("client", "se:cr:et")),          # the first ':' splits
    ("client:se%3Acret", ("client", "se:cret")),           # RFC 6749 §2.3.1 encoding
    ("client:a+b", ("client", "a b")),                     # form-urlencoded '+'
    ("client:a%2Bb", ("client", "a+b")),
    ("my%20client:x", ("my client", "x")),
    ("cli%3Aent:x", ("cli:ent", "x")),                     # a ':' in the id, encoded
    ("client:", ("client", "")),
    (":secret", ("", "secret")),
    ("caf%C3%A9:%E2%82%AC", ("café", "€")),
    ("café:€", ("café", "€")),                             # raw UTF-8
])
def test_basic_credentials(text: str, expected: tuple[str, str]) -> None:
    assert basic_credentials(_basic(text)) == expected


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_basic_scheme_is_case_insensitive(scheme: str) -> None:
    assert basic_credentials(_basic("id:pw", scheme)) == ("id", "pw")
    assert basic_credentials(b"  " + _basic("id:pw", scheme) + b" ") == ("id", "pw")


@pytest.mark.parametrize("header", [b"Bearer abc", b"Digest x=y", b"", b"Basicx aWQ6cHc=",
                                    b"Token aWQ6cHc="])
def test_other_schemes_are_none(header: bytes) -> None:
    assert basic_credentials(header) is None
    assert basic_credential_forms(header) == ()


@pytest.mark.parametrize("header", [
    b"Basic !!!!", b"Basic aWQ6cHc", b"Basic aWQ6 cHc=", b"Basic a", b"Basic ",
    b"Basic", b"Basic " + base64.b64encode(b"\xff:\xfe"),
])
def test_bad_base64_is_a_param_error(header: bytes) -> None:
    with pytest.raises(ParamError):
        basic_credentials(header)


@pytest.mark.parametrize("text", ["no-colon", "", "a%3Ab"])
def test_no_colon_is_a_param_error(text: str) -> None:
    with pytest.raises(ParamError, match="':'"):
        basic_credentials(_basic(text))


def test_escape_that_is_not_utf8_is_a_param_error() -> None:
    with pytest.raises(ParamError):
        basic_credentials(_basic("id:%ff"))


def test_credential_forms_encoded_then_raw() -> None:
    assert basic_credential_forms(_basic("id:plain")) == (("id", "plain"),)
    # A secret holding '+' or '%' reads both ways, RFC 6749's first.
    assert basic_credential_forms(_basic("id:a+b%3A")) == (("id", "a b:"), ("id", "a+b%3A"))
    with pytest.raises(ParamError):
        basic_credential_forms(b"Basic !!!")


def test_param_errors_never_repeat_the_secret() -> None:
    for header in (_basic("id:%ffs3cr3t"), b"Basic s3cr3t!"):
        with pytest.raises(ParamError) as refused:
            basic_credentials(header)
        assert "s3cr3t" not in str(refused.value)
