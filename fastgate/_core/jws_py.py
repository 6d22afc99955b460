"""JWS compact tokens (RFC 7515 §7.1): split, base64url-decode, parse -- nothing verified.

Written in Cython's pure-Python mode: this file is the pure-Python twin *and*
the source of the compiled ``fastgate._core.jws`` (setup.py's
``PURE_MODE_MODULES``), so the two cannot diverge in what they accept -- a
divergence in a token parser would be an authentication bypass.

:func:`parse` refuses, before any key is touched:

* a token longer than ``max_length`` (checked first: no work on junk);
* anything but exactly three dot-separated parts, with a non-empty header
  and payload;
* base64url that is not strict: ``=`` padding, bytes outside ``A-Z a-z 0-9 - _``,
  a length of 4n+1, non-zero trailing bits (so one token has one spelling,
  and a cache keyed by the token's bytes cannot be bypassed by re-spelling it);
* a header or payload that is not a JSON object (orjson), a header ``alg``
  that is not a string, a ``crit`` header (no extension is understood, RFC
  7515 §4.1.11), an unencoded payload (``b64: false``, RFC 7797).

The reason for a refusal is returned as a ``str`` (for logs and tests; the
client sees Tyk's text).
"""

from __future__ import annotations

import operator

import orjson

try:
    import cython
except ImportError:  # pragma: no cover - the compiled build always has Cython
    from fastgate._core import _cython_shim as cython

__all__ = ["Token", "b64url_decode", "parse"]

# base64url alphabet -> value (0-63); 0xFF for any other byte.
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TABLE: bytes = bytes(_ALPHABET.find(_byte) & 0xFF for _byte in range(256))
_SSIZE_MAX = 2**63 - 1


def _argument_types(value: object, name: str) -> None:
    # Interpreted, what the compiled signature's ``bytes`` does: exactly bytes
    # (no subclass, no bytearray, no None), the same TypeError.
    if type(value) is not bytes:
        raise TypeError(f"Argument '{name}' has incorrect type (expected bytes, "
                        f"got {type(value).__name__})")


def _ssize(value: object) -> int:
    # Interpreted, Cython's conversion to Py_ssize_t: an integer (not a float),
    # within C's range.
    number = operator.index(value)  # type: ignore[arg-type]
    if not -_SSIZE_MAX - 1 <= number <= _SSIZE_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return number


@cython.cclass
class Token:
    """A parsed, **not yet verified** JWS compact token."""

    #: The token as presented.
    raw = cython.declare(bytes, visibility="readonly")
    #: The header's ``alg``.
    alg = cython.declare(str, visibility="readonly")
    #: The header's ``kid`` when it is a string, else None.
    kid = cython.declare(object, visibility="readonly")
    #: The decoded JOSE header and payload (JSON objects).
    header = cython.declare(dict, visibility="readonly")
    claims = cython.declare(dict, visibility="readonly")
    #: ``<b64 header>.<b64 payload>``: what the signature covers.
    signing_input = cython.declare(bytes, visibility="readonly")
    #: The decoded signature (may be empty: ``alg: none`` -- refused by family).
    signature = cython.declare(bytes, visibility="readonly")

    def __init__(self, raw: bytes, alg: str, kid: object, header: dict, claims: dict,
                 signing_input: bytes, signature: bytes) -> None:
        self.raw = raw
        self.alg = alg
        self.kid = kid
        self.header = header
        self.claims = claims
        self.signing_input = signing_input
        self.signature = signature

    def __repr__(self) -> str:
        return f"<Token alg={self.alg!r} kid={self.kid!r}>"


@cython.ccall
@cython.locals(n=cython.Py_ssize_t, rest=cython.Py_ssize_t, i=cython.Py_ssize_t,
               j=cython.Py_ssize_t, a=cython.uint, b=cython.uint, c=cython.uint,
               d=cython.uint, src=cython.p_uchar, dst=cython.p_uchar, table=cython.p_uchar)
def b64url_decode(data: bytes) -> bytes | None:
    """``data`` decoded as strict, unpadded base64url (RFC 7515 §2), or None.

    Compiled, the loop is C over the bytes' buffers; interpreted, the very same
    loop over Python ints (slow, and the same answers).
    """
    if not cython.compiled:
        _argument_types(data, "data")
    n = len(data)
    rest = n % 4
    if rest == 1:
        return None
    out = bytearray((n // 4) * 3 + (rest * 3) // 4)
    src = data
    dst = out
    table = _TABLE
    i = 0
    j = 0
    while i + 4 <= n:
        a = table[src[i]]
        b = table[src[i + 1]]
        c = table[src[i + 2]]
        d = table[src[i + 3]]
        if (a | b | c | d) > 63:
            return None
        dst[j] = ((a << 2) | (b >> 4)) & 0xFF
        dst[j + 1] = ((b << 4) | (c >> 2)) & 0xFF
        dst[j + 2] = ((c << 6) | d) & 0xFF
        i += 4
        j += 3
    if rest:
        a = table[src[i]]
        b = table[src[i + 1]]
        c = table[src[i + 2]] if rest == 3 else 0
        if (a | b | c) > 63:
            return None
        # The bits after the last whole byte must be zero (one spelling per value).
        if rest == 2:
            if b & 0x0F:
                return None
            dst[j] = ((a << 2) | (b >> 4)) & 0xFF
        else:
            if c & 0x03:
                return None
            dst[j] = ((a << 2) | (b >> 4)) & 0xFF
            dst[j + 1] = ((b << 4) | (c >> 2)) & 0xFF
    return bytes(out)


@cython.cfunc
def _object(data: bytes) -> object:
    """The JSON object ``data`` holds, or a str saying why not."""
    if not data:
        return "empty"
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "not JSON"
    if not isinstance(value, dict):
        return "not a JSON object"
    return value


@cython.ccall
def parse(token: bytes, max_length: cython.Py_ssize_t) -> object:
    """The :class:`Token` in ``token``, or a str saying why it is malformed."""
    if not cython.compiled:
        max_length = _ssize(max_length)
        _argument_types(token, "token")
    if len(token) > max_length:
        return "longer than the limit"
    first: cython.Py_ssize_t = token.find(b".")
    if first <= 0:
        return "not three parts"
    second: cython.Py_ssize_t = token.find(b".", first + 1)
    if second < 0 or second == first + 1:
        return "not three parts"
    if token.find(b".", second + 1) >= 0:
        return "not three parts"
    header_raw = b64url_decode(token[:first])
    if header_raw is None:
        return "header is not base64url"
    payload_raw = b64url_decode(token[first + 1:second])
    if payload_raw is None:
        return "payload is not base64url"
    signature = b64url_decode(token[second + 1:])
    if signature is None:
        return "signature is not base64url"
    header = _object(header_raw)
    if isinstance(header, str):
        return "header is " + header
    claims = _object(payload_raw)
    if isinstance(claims, str):
        return "payload is " + claims
    alg = header.get("alg")
    if not isinstance(alg, str):
        return "alg is not a string"
    if "crit" in header:
        return "crit header (no extension is understood)"
    if header.get("b64", True) is not True:
        return "unencoded payload (b64)"
    kid = header.get("kid")
    if not isinstance(kid, str):
        kid = None
    return Token(token, alg, kid, header, claims, token[:second],
                 signature)
