"""Body integrity: ``Content-Digest`` (RFC 9530) and the legacy ``Digest``
(RFC 3230, RFC 5843) checked against the body actually received.

A signature that covers a digest header proves the header, not the body: the
body has to be checked against the header too, or a signed request can carry
any body.  :func:`watch_body` does that for the signature methods
(:mod:`fastgate.auth.hmac.tyk`, :mod:`fastgate.auth.hmac.message_signatures`)
when a digest header is among the signed components.

Theory of operation
-------------------
1. The header is parsed when the request head is complete (here, once): a
   malformed header, or one naming no supported algorithm, is refused at once
   (400) and nothing of the request goes upstream.
2. The body is *streamed through* the hashes, never buffered whole: the proxy
   feeds every byte of the content (the body after transfer decoding: a
   chunked body's payload, which is what both RFCs digest) to
   :meth:`DigestCheck.update` as it arrives, and forwards it upstream as usual
   -- except the last piece received, which it holds back until the end of the
   body (:meth:`fastgate._core.proxy.Exchange.check_body`).  So the upstream
   never sees the end of a body before its digest matched.
3. At the end of the body, :meth:`DigestCheck.finish` compares every digest
   the header states for a supported algorithm, in constant time
   (:func:`fastgate._core.compare.constant_time_equals`).  A mismatch answers
   400 ``Body does not match its Content-Digest`` (or ``Digest``), and the
   upstream connection, holding an incomplete request, is closed and never
   reused.  A request without a body is checked at once, against the digest
   of the empty content.

What is accepted
----------------
* Algorithms: ``sha-256`` and ``sha-512`` only.  The deprecated (insecure)
  algorithms of the IANA registries -- ``md5``, ``sha`` (SHA-1),
  ``unixsum``, ``unixcksum``, ``adler``/``adler32``, ``crc32c`` -- never
  prove anything: a header naming only those is refused.  Unknown algorithms
  are ignored (RFC 9530 §2), but at least one supported digest is required.
* Every supported digest stated must match: several algorithms, and the same
  algorithm stated twice, are all checked (no reading of the header can then
  let a body through that another reading would refuse).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING

from fastgate import responses
from fastgate._core.compare import constant_time_equals

if TYPE_CHECKING:
    from fastgate.services import Request

__all__ = [
    "SUPPORTED",
    "DigestCheck",
    "DigestError",
    "UnsupportedDigest",
    "digest_check",
    "parse_content_digest",
    "parse_digest",
    "watch_body",
]

#: The supported algorithms (their names as RFC 9530 spells them) and their
#: digest sizes.
SUPPORTED: dict[str, int] = {"sha-256": 32, "sha-512": 64}
_HASHLIB = {"sha-256": "sha256", "sha-512": "sha512"}
#: The registries' deprecated algorithms (RFC 9530 §7.2, RFC 3230's registry).
INSECURE = frozenset({"md5", "sha", "unixsum", "unixcksum", "adler", "adler32", "crc32c"})

_CONTENT_DIGEST = "Content-Digest"
_DIGEST = "Digest"
#: The refusals of a body that does not match (prepared once).
_MISMATCH = {
    b"content-digest": responses.error_response(400, "Body does not match its Content-Digest"),
    b"digest": responses.error_response(400, "Body does not match its Digest"),
}


class DigestError(ValueError):
    """A digest header that does not parse (or states a digest of the wrong size)."""


class UnsupportedDigest(DigestError):
    """A digest header that names no supported algorithm."""


# -- Content-Digest: an RFC 8941 Dictionary of Byte Sequences --------------------------
#
# RFC 9530 §2:    Content-Digest   = sf-dictionary   (values: Byte Sequences)
# RFC 8941 §3.2:  sf-dictionary  = dict-member *( OWS "," OWS dict-member )
#                 dict-member    = member-key ( parameters / ( "=" member-value ))
#                 member-key     = key
#                 member-value   = sf-item / inner-list
#                 key            = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
# RFC 8941 §3.3:  sf-item        = bare-item parameters
#                 parameters     = *( ";" *SP param-key [ "=" param-value ] )
#                 bare-item      = sf-integer / sf-decimal / sf-string / sf-token
#                                  / sf-binary / sf-boolean
#                 sf-binary      = ":" *(base64) ":"
#                 base64         = ALPHA / DIGIT / "+" / "/" / "="
#
# Only Byte Sequences are valid member values here: a member of another type
# (a Boolean from a bare key, a number, an inner list) makes the field invalid.
# Parameters are parsed (any bare item) and ignored: RFC 9530 defines none.

_KEY = re.compile(rb"[a-z*][a-z0-9_\-.*]*")
_BINARY = re.compile(rb":([A-Za-z0-9+/=]*):")
_BARE_PARAM_VALUE = re.compile(
    rb"-?[0-9]{1,12}\.[0-9]{1,3}(?![0-9.])"  # decimal
    rb"|-?[0-9]{1,15}(?![0-9.])"  # integer
    rb'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'  # string
    rb"|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*"  # token
    rb"|:[A-Za-z0-9+/=]*:"  # byte sequence
    rb"|\?[01]"  # boolean
)


def _skip(value: bytes, pos: int, chars: bytes) -> int:
    while pos < len(value) and value[pos] in chars:
        pos += 1
    return pos


def _decode_base64(text: bytes) -> bytes:
    """RFC 8941 §4.2.7: base64, '=' padding optional, nothing else allowed."""
    stripped = text.rstrip(b"=")
    if b"=" in stripped or len(text) - len(stripped) > 2:
        raise DigestError("bad base64")
    try:
        return base64.b64decode(stripped + b"=" * (-len(stripped) % 4), validate=True)
    except binascii.Error:
        raise DigestError("bad base64") from None


def parse_content_digest(value: bytes) -> list[tuple[str, bytes]]:
    """The members of a ``Content-Digest`` value, in order: ``(key, digest bytes)``,
    duplicates kept.  Raises :class:`DigestError` when the value is not a
    Dictionary whose values are all Byte Sequences."""
    members: list[tuple[str, bytes]] = []
    pos = _skip(value, 0, b" ")
    end = len(value.rstrip(b" "))
    if pos >= end:
        raise DigestError("empty")
    while True:
        key = _KEY.match(value, pos)
        if key is None:
            raise DigestError("bad key")
        pos = key.end()
        if pos >= end or value[pos] != 0x3D:  # "="
            raise DigestError(f"{key.group().decode()} has no byte sequence value")
        binary = _BINARY.match(value, pos + 1)
        if binary is None:
            raise DigestError(f"{key.group().decode()} has no byte sequence value")
        members.append((key.group().decode(), _decode_base64(binary.group(1))))
        pos = binary.end()
        while pos < end and value[pos] == 0x3B:  # ";" parameters, ignored
            pos = _skip(value, pos + 1, b" ")
            param = _KEY.match(value, pos)
            if param is None:
                raise DigestError("bad parameter")
            pos = param.end()
            if pos < end and value[pos] == 0x3D:
                bare = _BARE_PARAM_VALUE.match(value, pos + 1)
                if bare is None:
                    raise DigestError("bad parameter value")
                pos = bare.end()
        if pos >= end:
            return members
        pos = _skip(value, pos, b" \t")
        if pos >= end or value[pos] != 0x2C:  # ","
            raise DigestError("members must be separated by commas")
        pos = _skip(value, pos + 1, b" \t")
        if pos >= end:
            raise DigestError("trailing comma")


# -- Digest (RFC 3230 §4.3.2, algorithms RFC 5843) ---------------------------------------
#
#   Digest = "Digest" ":" #(instance-digest)
#   instance-digest = digest-algorithm "=" <encoded digest output>
#   digest-algorithm = token            (case-insensitive)
#
# SHA-256 and SHA-512 are encoded in base64 (RFC 5843 §3).  Empty list
# elements are allowed (RFC 9110 §5.6.1).

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_digest(value: bytes) -> list[tuple[str, bytes]]:
    """The instance digests of a legacy ``Digest`` value: ``(algorithm in lower
    case, encoded value)``, in order, duplicates kept.  The value is decoded
    later, for the supported algorithms only (others may use other encodings).
    Raises :class:`DigestError` when it does not parse."""
    members: list[tuple[str, bytes]] = []
    for element in value.split(b","):
        element = element.strip(b" \t")
        if not element:
            continue
        algorithm, sep, encoded = element.partition(b"=")
        if not sep or not _TOKEN.fullmatch(algorithm) or not encoded:
            raise DigestError("expected algorithm=value")
        members.append((algorithm.decode().lower(), encoded))
    if not members:
        raise DigestError("empty")
    return members


# -- the check ------------------------------------------------------------------------------


class DigestCheck:
    """The streaming check the proxy runs over a request body
    (:class:`fastgate.services.BodyCheck`): one hash per algorithm, and every
    digest the header states."""

    __slots__ = ("_expected", "_hashes", "_refusal")

    def __init__(self, expected: list[tuple[str, bytes]], refusal: bytes) -> None:
        self._expected = expected
        self._hashes = {alg: hashlib.new(_HASHLIB[alg]) for alg, _ in expected}
        self._refusal = refusal

    def update(self, data: bytes) -> None:
        """Feed the next piece of the body (after transfer decoding)."""
        for digest in self._hashes.values():
            digest.update(data)

    def finish(self) -> bytes | None:
        """None when every stated digest matches the body fed, else the 400."""
        computed = {alg: digest.digest() for alg, digest in self._hashes.items()}
        ok = True
        for alg, stated in self._expected:
            # Every one compared, none skipped: the time does not say which failed.
            ok &= constant_time_equals(computed[alg], stated)
        return None if ok else self._refusal


def _expected(name: bytes, value: bytes) -> list[tuple[str, bytes]]:
    """The (algorithm, digest) pairs to check; raises :class:`DigestError`."""
    legacy = name == b"digest"
    members = parse_digest(value) if legacy else parse_content_digest(value)
    expected: list[tuple[str, bytes]] = []
    for alg, stated in members:
        size = SUPPORTED.get(alg)
        if size is None:
            continue  # unknown (ignored) or insecure (never proof)
        if legacy:
            stated = _decode_base64(stated)
        if len(stated) != size:
            raise DigestError(f"{alg} digest is not {size} bytes")
        expected.append((alg, stated))
    if not expected:
        insecure = sorted({alg for alg, _ in members} & INSECURE)
        verb = "is" if len(insecure) == 1 else "are"
        why = f"; {', '.join(insecure)} {verb} insecure" if insecure else ""
        raise UnsupportedDigest(f"names no supported algorithm (sha-256, sha-512){why}")
    return expected


def digest_check(name: bytes, value: bytes) -> DigestCheck | bytes:
    """The check for digest header ``name`` (``b"content-digest"`` or
    ``b"digest"``) whose value is ``value``, or the 400 refusing the header."""
    if name not in _MISMATCH:
        raise ValueError(f"not a digest header: {name!r}")
    try:
        expected = _expected(name, value)
    except UnsupportedDigest as exc:
        field = _DIGEST if name == b"digest" else _CONTENT_DIGEST
        return responses.error_response(400, f"{field} header {exc}")
    except DigestError as exc:
        field = _DIGEST if name == b"digest" else _CONTENT_DIGEST
        return responses.error_response(400, f"Malformed {field} header: {exc}")
    return DigestCheck(expected, _MISMATCH[name])


def watch_body(req: Request, name: bytes, value: bytes) -> bytes | None:
    """Check the request body against the digest header ``name``
    (``b"content-digest"`` or ``b"digest"``) whose value is ``value``.

    Returns a complete 400 response (bytes) when the header is malformed or
    names no supported algorithm; else installs a streaming check on the
    request (:meth:`fastgate.services.Request.check_body`) and returns None --
    or, when the body is already complete (a request without a body, or one
    whose body arrived while the chain waited), the check's answer at once:
    None when it matches, the 400 when it does not.  A body found not to match
    later is refused by the proxy (400) before the upstream sees its end.

    Call it from a middleware's ``process()`` (or after an await in it),
    before the request is forwarded.
    """
    check = digest_check(name, value)
    if isinstance(check, bytes):
        return check
    return req.check_body(check)
