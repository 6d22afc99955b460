"""Tyk's request signatures (draft-cavage HTTP Signatures): the header's
parameters, the signing string, and the HMAC check -- nothing about keys.

Written in Cython's pure-Python mode: this file is the pure-Python twin *and*
the source of the compiled ``fastgate._core.signing`` (setup.py's
``PURE_MODE_MODULES``), so the two cannot accept different headers.

Theory of operation
-------------------
A client signs a request by listing some of its header fields (and the
pseudo-field ``(request-target)``), joining ``<lower-case name>: <value>``
lines with ``\\n`` into the *signing string*, and sending a MAC (or an RSA
signature) of it in ``Authorization: Signature keyId=..,algorithm=..,
headers=..,signature=..``.  The gateway rebuilds the same string from the
request it received and checks the MAC.  Three places decide whether the
check means anything, and all three are here:

1. :func:`parse_parameters` -- the header, parsed strictly (RFC 7235
   ``auth-param`` grammar, quoted below): a duplicated or unknown parameter,
   an empty list element or a stray byte is refused, never guessed around
   (Tyk's Go scanner reads ``keyId=a-b`` as something else and keeps the last
   of two ``signature=`` values).
2. :func:`signing_string` -- Tyk's rules: ``(request-target)`` is
   ``<lower-case method> <target>``; a header's *first* value, trimmed; for
   ``date`` an ``X-Aux-Date`` field takes precedence (and names the line).
3. :func:`verify_hmac` -- the MAC computed by OpenSSL (``hmac.digest``) and
   compared with the presented one in constant time
   (:func:`fastgate._core.compare.constant_time_equals`).  The presented value
   is Tyk's encoding: URL query-escaped standard base64 (``%2B``, ``%2F``,
   ``%3D``; lower-case ``%2b`` too, as Tyk retries), or the plain base64 a
   client that forgot to escape sends -- both decode to the same MAC, and a
   MAC is compared, never a string.  An unknown algorithm is a ValueError,
   never HMAC-SHA1 (Tyk's fallback for any value, even ``foo``).
"""

from __future__ import annotations

import binascii
import hmac

try:
    import cython
except ImportError:  # pragma: no cover - the compiled build always has Cython
    from fastgate._core import _cython_shim as cython

from fastgate._core.compare import constant_time_equals

__all__ = [
    "decode_signature",
    "encode_signature",
    "matches",
    "parse_parameters",
    "sign_hmac",
    "signing_string",
    "verify_hmac",
]

#: Tyk's HMAC algorithm names -> the hash OpenSSL computes.
HMAC_ALGORITHMS: dict[str, str] = {
    "hmac-sha1": "sha1",
    "hmac-sha256": "sha256",
    "hmac-sha384": "sha384",
    "hmac-sha512": "sha512",
}

#: The parameters of the Signature scheme (draft-cavage §2.1, as Tyk reads them).
_PARAMETERS = ("keyid", "algorithm", "headers", "signature")

# RFC 7230 §3.2.6: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
#                          "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TCHAR: bytes = bytes(
    1 if (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A
          or b in b"!#$%&'*+-.^_`|~") else 0
    for b in range(256))
# qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
_QDTEXT: bytes = bytes(
    1 if (b in (0x09, 0x20, 0x21) or 0x23 <= b <= 0x5B or 0x5D <= b <= 0x7E or b >= 0x80)
    else 0 for b in range(256))
# quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTABLE: bytes = bytes(
    1 if (b in (0x09, 0x20) or 0x21 <= b <= 0x7E or b >= 0x80) else 0 for b in range(256))
_HEX: bytes = bytes(
    (b - 0x30) if 0x30 <= b <= 0x39 else (b - 0x41 + 10) if 0x41 <= b <= 0x46
    else (b - 0x61 + 10) if 0x61 <= b <= 0x66 else 0xFF for b in range(256))


@cython.cfunc
@cython.inline
def _skip_ows(value: bytes, pos: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
    # OWS = *( SP / HTAB )
    while pos < end and (value[pos] == 0x20 or value[pos] == 0x09):
        pos += 1
    return pos


def _unescape(text: bytes) -> bytes:
    # The quoted-pairs of a quoted-string already checked: "\\x" -> "x".
    out = bytearray()
    pos: cython.Py_ssize_t = 0
    end: cython.Py_ssize_t = len(text)
    while pos < end:
        if text[pos] == 0x5C:
            pos += 1
        out.append(text[pos])
        pos += 1
    return bytes(out)


def parse_parameters(value: bytes) -> tuple[str, str, list[str], bytes]:
    """``(keyId, algorithm, headers, signature)`` from a Signature header value.

    The grammar (RFC 7235 §2.1, draft-cavage-http-signatures §3.1)::

        credentials = [ "Signature" 1*SP ] auth-param *( OWS "," OWS auth-param )
        auth-param  = token BWS "=" BWS ( token / quoted-string )

    Parameter names are case-insensitive; ``keyId`` and ``signature`` are
    required; ``algorithm`` may be missing (returned as ``""``); ``headers``
    is a space-separated list (``["date"]`` when missing, as in Tyk), returned
    lower-cased.  Raises ValueError (with the reason) on any deviation: an
    unknown or repeated parameter, an empty value or list element, a bad
    quoted-string, trailing bytes.
    """
    # Locals: compiled, indexing them is C (a module global is a dict lookup).
    tchar: bytes = _TCHAR
    qdtext: bytes = _QDTEXT
    quotable: bytes = _QUOTABLE
    end: cython.Py_ssize_t = len(value)
    pos: cython.Py_ssize_t = _skip_ows(value, 0, end)
    # The auth-scheme, when the field carries one (Authorization does; a
    # dedicated Signature field does not): "Signature" then whitespace.
    if end - pos > 9 and value[pos:pos + 9].lower() == b"signature" and (
            value[pos + 9] == 0x20 or value[pos + 9] == 0x09):
        pos = _skip_ows(value, pos + 9, end)
    found: dict[str, bytes] = {}
    start: cython.Py_ssize_t
    c: cython.int
    while True:
        start = pos
        while pos < end and tchar[value[pos]]:
            pos += 1
        if pos == start:
            raise ValueError("expected a parameter name")
        name = value[start:pos].decode("ascii").lower()
        if name not in _PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}")
        if name in found:
            raise ValueError(f"parameter {name!r} given twice")
        pos = _skip_ows(value, pos, end)
        if pos >= end or value[pos] != 0x3D:  # "="
            raise ValueError(f"parameter {name!r} without a value")
        pos = _skip_ows(value, pos + 1, end)
        if pos < end and value[pos] == 0x22:  # quoted-string
            pos += 1
            start = pos
            escaped: cython.bint = False
            while True:
                if pos >= end:
                    raise ValueError(f"unterminated quoted value of {name!r}")
                c = value[pos]
                if c == 0x22:
                    break
                if c == 0x5C:  # "\" quoted-pair
                    if pos + 1 >= end or not quotable[value[pos + 1]]:
                        raise ValueError(f"bad escape in the value of {name!r}")
                    escaped = True
                    pos += 2
                    continue
                if not qdtext[c]:
                    raise ValueError(f"control byte in the value of {name!r}")
                pos += 1
            text = value[start:pos]
            pos += 1
            if escaped:
                text = _unescape(text)
        else:
            start = pos
            while pos < end and tchar[value[pos]]:
                pos += 1
            text = value[start:pos]
        if not text:
            raise ValueError(f"empty value of {name!r}")
        found[name] = text
        pos = _skip_ows(value, pos, end)
        if pos == end:
            break
        if value[pos] != 0x2C:  # ","
            raise ValueError("expected ',' between parameters")
        pos = _skip_ows(value, pos + 1, end)
    key_id = found.get("keyid")
    signature = found.get("signature")
    if key_id is None:
        raise ValueError("no keyId")
    if signature is None:
        raise ValueError("no signature")
    listed = found.get("headers")
    headers: list[str]
    if listed is None:
        headers = ["date"]
    else:
        headers = listed.decode("latin-1").lower().split()
        if not headers:
            raise ValueError("empty headers list")
    algorithm = found.get("algorithm", b"").decode("latin-1")
    return key_id.decode("utf-8", "surrogateescape"), algorithm, headers, signature


def signing_string(method: bytes, target: bytes, headers: list[str], fields: object) -> bytes:
    """The string a client signs, built as Tyk builds it (see the module docstring).

    ``fields(lname: bytes) -> bytes | None`` gives a header's first value;
    ``target`` is the request target as signed (path, and query when it is
    covered).  A listed header the request lacks signs ``<name>: `` (Tyk's
    rule); ``date`` with neither ``X-Aux-Date`` nor ``Date`` signs ``: ``.
    """
    get = fields
    lines: list[bytes] = []
    for header in headers:
        if header == "(request-target)":
            lines.append(b"(request-target): " + method.lower() + b" " + target)
            continue
        lname: bytes = header.encode("latin-1")
        value = None
        if lname == b"date":
            value = get(b"x-aux-date")  # type: ignore[operator]
            if value:
                lname = b"x-aux-date"
            else:
                value = get(b"date")  # type: ignore[operator]
                if not value:
                    lname = b""
        else:
            value = get(lname)  # type: ignore[operator]
        lines.append(lname + b": " + (value.strip(b" \t") if value else b""))
    return b"\n".join(lines)


def decode_signature(presented: bytes) -> bytes | None:
    """The signature bytes a client sent: URL-unescaped (``%XX``, either case),
    then strict standard base64.  None when it is neither."""
    end: cython.Py_ssize_t = len(presented)
    if end == 0 or end > 4096:
        return None
    raw = presented
    if b"%" in presented:
        hexval: bytes = _HEX
        out = bytearray()
        pos: cython.Py_ssize_t = 0
        hi: cython.int
        lo: cython.int
        while pos < end:
            c: cython.int = presented[pos]
            if c == 0x25:  # "%"
                if pos + 2 >= end:
                    return None
                hi = hexval[presented[pos + 1]]
                lo = hexval[presented[pos + 2]]
                if hi == 0xFF or lo == 0xFF:
                    return None
                out.append(hi * 16 + lo)
                pos += 3
            else:
                out.append(c)
                pos += 1
        raw = bytes(out)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def encode_signature(mac: bytes) -> bytes:
    """Tyk's encoding of a signature: standard base64, URL query-escaped."""
    return (binascii.b2a_base64(mac, newline=False)
            .replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D"))


def sign_hmac(algorithm: str, key: bytes, message: bytes) -> bytes:
    """The MAC of ``message`` under ``algorithm`` (a name of HMAC_ALGORITHMS;
    ValueError for any other)."""
    digest = HMAC_ALGORITHMS.get(algorithm)
    if digest is None:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    return hmac.digest(key, message, digest)


def matches(expected: bytes, presented: bytes) -> bool:
    """Whether ``presented`` (as the client sent it, encoded) decodes to the
    MAC ``expected``; compared in constant time."""
    decoded = decode_signature(presented)
    if decoded is None:
        decoded = b""
    return constant_time_equals(expected, decoded)


def verify_hmac(algorithm: str, key: bytes, message: bytes, presented: bytes) -> bool:
    """Whether ``presented`` (as the client sent it, encoded) is the MAC of
    ``message`` under ``key``; compared in constant time.  ValueError for an
    algorithm that is not an HMAC one."""
    return matches(sign_hmac(algorithm, key, message), presented)
