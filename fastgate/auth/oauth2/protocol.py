"""The OAuth 2.0 protocol's pieces, free of I/O: request parameters, client
credentials, redirect-URI matching, PKCE and the error vocabulary.

Used by :mod:`fastgate.auth.oauth2.endpoints` (and the form parser by the
``/tyk/oauth/revoke`` admin routes).  Each function answers from its
arguments alone, so each is tested on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import parse_qsl, unquote, unquote_to_bytes, urlsplit

import orjson

from fastgate._core import compare

__all__ = [
    "DESCRIPTIONS",
    "PKCE_METHOD",
    "ParamError",
    "basic_credential_forms",
    "basic_credentials",
    "parse_form",
    "pkce_challenge",
    "pkce_matches",
    "pkce_value_ok",
    "request_params",
    "validate_redirect",
]

#: osin's ``error_description`` texts (RFC 6749's wording), by error code.
DESCRIPTIONS: dict[str, str] = {
    "invalid_request": "The request is missing a required parameter, includes an invalid "
                       "parameter value, includes a parameter more than once, or is "
                       "otherwise malformed.",
    "unauthorized_client": "The client is not authorized to request a token using this "
                           "method.",
    "access_denied": "The resource owner or authorization server denied the request.",
    "unsupported_response_type": "The authorization server does not support obtaining a "
                                 "token using this method.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "server_error": "The authorization server encountered an unexpected condition that "
                    "prevented it from fulfilling the request.",
    "temporarily_unavailable": "The authorization server is currently unable to handle the "
                               "request due to a temporary overloading or maintenance of "
                               "the server.",
    "unsupported_grant_type": "The authorization grant type is not supported by the "
                              "authorization server.",
    "invalid_grant": "The provided authorization grant (e.g., authorization code, resource "
                     "owner credentials) or refresh token is invalid, expired, revoked, does "
                     "not match the redirection URI used in the authorization request, or "
                     "was issued to another client.",
    "invalid_client": "Client authentication failed (e.g., unknown client, no client "
                      "authentication included, or unsupported authentication method).",
}

#: The only PKCE method fastgate accepts (RFC 7636 §4.2; ``plain`` is refused).
PKCE_METHOD = "S256"
_PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_SEGMENTS = re.compile(r"[/\\]")


class ParamError(ValueError):
    """The parameters cannot be read (the message says why, never a value)."""


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order.

    ParamError for what Go's ``ParseForm`` refuses (a ``%`` not followed by
    two hex digits, a ``;`` separator) and for text that is not UTF-8.
    """
    if _BAD_ESCAPE.search(body) or b";" in body:
        raise ParamError("the form is malformed")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ParamError("the form is malformed") from None


def _json_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParamError("the JSON body does not parse") from None
    if not isinstance(data, dict):
        raise ParamError("the JSON body must be an object")
    fields: list[tuple[str, str]] = []
    for name, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ParamError(f"{name}: expected a string")
        fields.append((name, str(value)))
    return fields


def request_params(query: bytes, body: bytes | None, content_type: bytes | None
                   ) -> dict[str, str]:
    """The request's parameters as Go's ``r.FormValue`` sees them: the body's
    (a form, or a JSON object of strings when ``Content-Type`` is
    ``application/json``, as Tyk accepts) before the query's.

    RFC 6749 §3.1: a parameter given twice (in the body, or in the query) is
    refused -- ParamError, as is an unreadable body.  A body of another
    content type is ignored (Go's ``ParseForm``).
    """
    ctype = (content_type or b"").split(b";", 1)[0].strip().lower()
    fields: list[tuple[str, str]] = []
    if body:
        if ctype == b"application/json":
            fields = _json_fields(body)
        elif ctype == b"application/x-www-form-urlencoded":
            fields = parse_form(body)
    params: dict[str, str] = {}
    for source in (fields, parse_form(query) if query else []):
        seen: set[str] = set()
        for name, value in source:
            if name in seen:
                raise ParamError(f"{name} is given more than once")
            seen.add(name)
            params.setdefault(name, value)
    return params


def basic_credentials(header: bytes) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from ``Authorization: Basic ...`` (RFC
    6749 §2.3.1: each form-urlencoded before base64); None when the header
    uses another scheme.  ParamError when it is Basic but malformed."""
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ParamError("the Basic credentials are not base64 of UTF-8 text") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise ParamError("the Basic credentials have no ':'")
    try:
        return (unquote(client_id.replace("+", " "), errors="strict"),
                unquote(secret.replace("+", " "), errors="strict"))
    except UnicodeDecodeError:
        raise ParamError("the Basic credentials are not UTF-8 once unescaped") from None


def basic_credential_forms(header: bytes) -> tuple[tuple[str, str], ...]:
    """The readings of ``Authorization: Basic``: RFC 6749 §2.3.1's
    (form-urlencoded id and secret), then the raw one when it differs --
    Tyk compares the raw values, and clients such as requests-oauthlib send
    them unencoded, so a secret holding ``+`` or ``%`` reads both ways.
    Empty when the header uses another scheme; ParamError when it is Basic
    but malformed."""
    decoded = basic_credentials(header)
    if decoded is None:
        return ()
    _, _, value = header.strip().partition(b" ")
    raw_id, _, raw_secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    if (raw_id, raw_secret) == decoded:
        return (decoded,)
    return (decoded, (raw_id, raw_secret))


def _parts(uri: str) -> tuple[str, str, str] | None:
    """``(scheme, host, decoded path)`` of an absolute URI without fragment."""
    try:
        parts = urlsplit(uri)
        path = unquote_to_bytes(parts.path).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not parts.scheme or not parts.netloc or parts.fragment or "#" in uri:
        return None
    return parts.scheme.lower(), parts.netloc.lower(), path


def validate_redirect(registered: tuple[str, ...], given: str) -> bool:
    """Whether ``given`` is allowed by one of the client's ``registered``
    redirect URIs (osin's ``ValidateUriList``): the same scheme and host, and
    the same path or a path below it (on a ``/`` boundary), without a ``..``
    segment (percent-encoded ones included, ``\\`` read as ``/`` as browsers
    do) and without a fragment (RFC 6749 §3.1.2).  The query of ``given`` is
    kept as sent."""
    wanted = _parts(given)
    if wanted is None:
        return False
    scheme, host, path = wanted
    for uri in registered:
        base = _parts(uri)
        if base is None or base[0] != scheme or base[1] != host:
            continue
        if base[2] == path:
            return True
        prefix = base[2].rstrip("/") + "/"
        # Browsers read "\\" as "/" in http(s) URLs (WHATWG): a separator too.
        if path.startswith(prefix) and ".." not in _SEGMENTS.split(path[len(prefix):]):
            return True
    return False


def pkce_value_ok(value: str) -> bool:
    """RFC 7636 §4.1/§4.2: 43 to 128 unreserved characters."""
    return _PKCE_VALUE.fullmatch(value) is not None


def pkce_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding (RFC 7636 §4.2, S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` answers the S256 ``challenge`` (constant time)."""
    if not pkce_value_ok(verifier):
        return False
    return compare.constant_time_equals(pkce_challenge(verifier).encode("ascii"),
                                        challenge.encode("ascii", "replace"))
