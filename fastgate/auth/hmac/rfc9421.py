"""HTTP Message Signatures (RFC 9421) for requests: the signature base, and
the five algorithms of its registry that fastgate verifies.

Theory of operation
-------------------
Everything that decides *which bytes are signed* lives here; the middleware
(:mod:`.message_signatures`) only decides which signature to look at, which
key it names and whether the application's requirements hold.

1. ``Signature-Input`` and ``Signature`` are Dictionaries (RFC 9421 §4.1,
   §4.2), parsed strictly (:mod:`.structured`): every field line of each is
   combined with ``", "`` before parsing (RFC 8941 §4.2), a label may appear
   once across all lines, every ``Signature-Input`` member must be an Inner
   List of Strings and every ``Signature`` member a Byte Sequence, and both
   fields must carry the same labels.  A failure here is
   :class:`MalformedSignature` (the request is malformed: 400).
2. The signature parameters (``created``, ``expires``, ``nonce``, ``keyid``,
   ``alg``, ``tag``; §2.3) are type-checked when parsed; what they must
   *satisfy* (ages, nonces, allowed algorithms) is the application's rule
   and is the middleware's.
3. :func:`signature_base` rebuilds the base of §2.5 from the request as the
   gateway received it: for each covered component, in order, its
   identifier re-serialised strictly (RFC 8941 §4.1), ``": "``, its value,
   ``"\\n"``; then ``"@signature-params": `` and the Inner List of the
   ``Signature-Input`` member re-serialised -- §3.2 step 7 says the value is
   "the value of the Signature-Input field for this signature serialized
   according to the rules described in Section 2.3", i.e. re-serialised
   from what was parsed, not the raw bytes; a signer following §4.1 sends
   exactly that serialisation, and one that does not (extra spaces,
   ``;sf=?1`` for ``;sf``) gets the canonical form, as every conforming
   verifier computes it.  Any component that cannot be resolved -- unknown
   derived name, ``@status`` (responses only), ``req``/``tr`` (not
   applicable to a request's header section), an unknown or conflicting
   parameter, a field absent, a Dictionary member absent, a field whose
   structured type is unknown under ``sf``, the same identifier twice, a
   non-ASCII value -- is :class:`SignatureBaseError`: no base, no
   verification (§2.5: "All errors produced as described immediately MUST
   fail the algorithm").
4. :func:`verify` runs ``HTTP_VERIFY`` (§3.3) through OpenSSL
   (``cryptography``) and *raises* ``InvalidSignature`` on any mismatch,
   including a key unfit for the algorithm; it never hands back a digest to
   compare.  The HMAC is compared in constant time in one place
   (:func:`fastgate._core.compare.constant_time_equals`).

The request context (:class:`RequestView`): the method as received, the
scheme of the connection the gateway accepted (``https`` over TLS, else
``http``), the authority from ``Host`` (normalised: lower-cased, the
scheme's default port dropped; RFC 9110 §4.2.3), the path (never decoded;
empty is ``/``) and the query as received.  ``@request-target`` is the
origin form (``/path?query``); a request sent in absolute form to the
gateway is signed as its origin form.  Derived names are never looked up as
fields (§7.5.1): a component starting with ``@`` is derived or an error.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fastgate._core import compare
from fastgate.auth.hmac import structured
from fastgate.auth.hmac.structured import InnerList, Item, Token

__all__ = [
    "ALGORITHMS",
    "MIN_RSA_BITS",
    "STRUCTURED_FIELDS",
    "MalformedSignature",
    "RequestView",
    "SharedSecret",
    "SignatureBaseError",
    "SignatureInput",
    "component_id",
    "default_algorithm",
    "is_field_name",
    "parse_signatures",
    "signature_base",
    "verify",
]

#: The algorithms verified (RFC 9421 §3.3, the registry's names).
ALGORITHMS: tuple[str, ...] = (
    "hmac-sha256", "ed25519", "ecdsa-p256-sha256", "rsa-pss-sha512", "rsa-v1_5-sha256")

#: RSA keys shorter than this are refused (as for JWT; NIST SP 800-131A).
MIN_RSA_BITS = 2048

#: Fields whose structured type is known (RFC 8941 types: "dictionary",
#: "list", "item"), for ``sf`` and ``key`` (§2.1.1: an unknown type under
#: ``sf`` is an error).
STRUCTURED_FIELDS: Mapping[str, str] = {
    # RFC 9530
    "content-digest": "dictionary", "repr-digest": "dictionary",
    "want-content-digest": "dictionary", "want-repr-digest": "dictionary",
    # RFC 9421
    "signature": "dictionary", "signature-input": "dictionary",
    "accept-signature": "dictionary",
    # RFC 9218, RFC 9211, RFC 9209, RFC 9440
    "priority": "dictionary", "cache-status": "list", "proxy-status": "list",
    "client-cert": "item", "client-cert-chain": "list",
}

_SIGNATURE_PARAMS = "@signature-params"
_DERIVED_PLAIN = frozenset({
    "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"})
_DEFAULT_PORTS = {"http": b":80", "https": b":443"}
# A field name (RFC 9110 §5.1: a token), as a component name: lower case.
_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+\Z")
# obs-fold (RFC 9112 §5.2), replaced by one SP (RFC 9421 §2.1).
_OBS_FOLD = re.compile(rb"\r?\n[ \t]+")
# WHATWG application/x-www-form-urlencoded percent-encode set: everything but
# ASCII alphanumerics and *-._ is escaped (RFC 9421 §2.2.8: spaces as %20).
_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")
_HEX = b"0123456789abcdefABCDEF"


class MalformedSignature(ValueError):
    """``Signature-Input`` / ``Signature`` are not what RFC 9421 §4 defines."""


class SignatureBaseError(ValueError):
    """The signature base cannot be built for this request (RFC 9421 §2.5)."""


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a signature base is built from (see the module docstring)."""

    method: bytes
    #: "http" or "https": the connection's.
    scheme: str
    path: bytes
    #: After the ``?``, as received (b"" for none).
    query: bytes
    #: Every field of the header section, in order: (lower-cased name, value).
    fields: Sequence[tuple[bytes, bytes]]

    def values(self, lname: bytes) -> list[bytes]:
        """Every value of the field named ``lname``, in order."""
        return [value for name, value in self.fields if name == lname]


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """One signature of the message: its ``Signature-Input`` member, its
    parameters and its ``Signature`` value."""

    label: str
    #: The covered components, in order (String items with their parameters).
    components: tuple[Item, ...]
    #: The Inner List as parsed: ``@signature-params`` is its serialisation.
    inner: InnerList
    signature: bytes
    created: int | None = None
    expires: int | None = None
    nonce: str | None = None
    keyid: str | None = None
    alg: str | None = None
    tag: str | None = None

    @property
    def signature_params(self) -> str:
        """The ``@signature-params`` value (RFC 9421 §2.3)."""
        return structured.serialize_inner_list(self.inner)


class SharedSecret:
    """An HMAC key (the secret's bytes)."""

    __slots__ = ("secret",)

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return "SharedSecret(<redacted>)"


# ----------------------------------------------------------------------------
# Signature-Input and Signature (RFC 9421 §4)
# ----------------------------------------------------------------------------


def _combined(lines: Sequence[bytes]) -> bytes:
    # RFC 8941 §4.2: field lines combined into one comma-separated value.
    return b", ".join(lines)


def parse_signatures(inputs: Sequence[bytes],
                     signatures: Sequence[bytes]) -> dict[str, SignatureInput]:
    """Every signature of the message by label, from the values of its
    ``Signature-Input`` and ``Signature`` field lines.  Raises
    MalformedSignature (see the module docstring, step 1)."""
    try:
        described = structured.parse_dictionary(_combined(inputs), unique=True)
        values = structured.parse_dictionary(_combined(signatures), unique=True)
    except ValueError as exc:
        raise MalformedSignature(str(exc)) from None
    if described.keys() != values.keys():
        raise MalformedSignature("Signature-Input and Signature name different labels")
    out: dict[str, SignatureInput] = {}
    for label, member in described.items():
        value = values[label]
        if not isinstance(value, Item) or not isinstance(value.value, bytes) or value.params:
            raise MalformedSignature(f"Signature {label!r}: not a byte sequence")
        if not isinstance(member, InnerList):
            raise MalformedSignature(f"Signature-Input {label!r}: not an inner list")
        out[label] = _signature_input(label, member, value.value)
    return out


def _signature_input(label: str, inner: InnerList, signature: bytes) -> SignatureInput:
    for item in inner.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise MalformedSignature(
                f"Signature-Input {label!r}: a component identifier is a String")
    fields: dict[str, Any] = {}
    for key, value in inner.params:
        if key in ("created", "expires"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise MalformedSignature(f"Signature-Input {label!r}: {key} is an Integer")
        elif key in ("nonce", "keyid", "alg", "tag"):
            if not isinstance(value, str) or isinstance(value, Token):
                raise MalformedSignature(f"Signature-Input {label!r}: {key} is a String")
        else:
            continue  # another registered parameter: covered, not interpreted
        fields[key] = value
    return SignatureInput(label=label, components=inner.items, inner=inner,
                          signature=signature, **fields)


# ----------------------------------------------------------------------------
# The signature base (RFC 9421 §2.5)
# ----------------------------------------------------------------------------


def is_field_name(name: str) -> bool:
    """Whether ``name`` is a field name as a component names it (lower case)."""
    return _FIELD_NAME.match(name) is not None


def component_id(item: Item) -> tuple[str, frozenset[tuple[str, Any]]]:
    """A component identifier's identity: its name and its parameters as a
    set (§2: the order of parameters does not distinguish identifiers)."""
    return str(item.value), frozenset(item.params)


def signature_base(request: RequestView, signature: SignatureInput, *,
                   structured_fields: Mapping[str, str] = STRUCTURED_FIELDS) -> bytes:
    """The signature base of ``signature`` for ``request`` (RFC 9421 §2.5).
    Raises SignatureBaseError."""
    lines: list[bytes] = []
    seen: set[tuple[str, frozenset[tuple[str, Any]]]] = set()
    for item in signature.components:
        identity = component_id(item)
        if identity in seen:
            raise SignatureBaseError(f"component {item.value!r} covered twice")
        seen.add(identity)
        value = _component_value(request, item, structured_fields)
        if b"\n" in value or b"\r" in value:
            raise SignatureBaseError(f"component {item.value!r}: a newline in its value")
        lines.append(structured.serialize_item(item).encode("ascii") + b": " + value)
    lines.append(b'"@signature-params": ' + signature.signature_params.encode("ascii"))
    base = b"\n".join(lines)
    if not base.isascii():
        raise SignatureBaseError("the signature base is not ASCII")
    return base


def _component_value(request: RequestView, item: Item,
                     structured_fields: Mapping[str, str]) -> bytes:
    name = str(item.value)
    params = dict(item.params)
    if "req" in params:
        raise SignatureBaseError(f"{name!r};req: the request is the target message")
    if name.startswith("@"):
        return _derived(request, name, params)
    if "tr" in params:
        raise SignatureBaseError(f"{name!r};tr: trailers are not available before the "
                                 "request is verified")
    if not _FIELD_NAME.match(name):
        raise SignatureBaseError(f"{name!r} is not a lower-case field name")
    return _field(request, name, params, structured_fields)


def _derived(request: RequestView, name: str, params: dict[str, Any]) -> bytes:
    """A derived component (RFC 9421 §2.2)."""
    if name == "@query-param":
        if set(params) != {"name"}:
            raise SignatureBaseError('"@query-param" takes exactly one parameter, name')
        wanted = params["name"]
        if not isinstance(wanted, str) or isinstance(wanted, Token):
            raise SignatureBaseError('"@query-param": name is a String')
        return _query_param(request.query, wanted)
    if name == "@status":
        raise SignatureBaseError('"@status" belongs to responses (RFC 9421 §2.2.9)')
    if name == _SIGNATURE_PARAMS:
        raise SignatureBaseError('"@signature-params" is never a covered component')
    if name not in _DERIVED_PLAIN:
        raise SignatureBaseError(f"unknown derived component {name!r}")
    if params:
        raise SignatureBaseError(f"{name!r} takes no parameters")
    query = b"?" + request.query if request.query else b""
    if name == "@method":
        return request.method
    if name == "@path":
        return request.path or b"/"
    if name == "@query":
        return b"?" + request.query
    if name == "@request-target":
        return (request.path or b"/") + query
    scheme = request.scheme.lower()
    if name == "@scheme":
        return scheme.encode("ascii")
    authority = _authority(request, scheme)
    if name == "@authority":
        return authority
    return scheme.encode("ascii") + b"://" + authority + (request.path or b"/") + query


def _authority(request: RequestView, scheme: str) -> bytes:
    """``Host``, normalised (RFC 9110 §4.2.3): lower case, no default port."""
    hosts = request.values(b"host")
    if len(hosts) != 1 or not hosts[0].strip():
        raise SignatureBaseError("@authority: the request has no single Host")
    host = hosts[0].strip(b" \t").lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and host.endswith(default):
        host = host[:-len(default)]
    elif host.endswith(b":"):
        host = host[:-1]  # an empty port is the default one
    return host


def _form_decode(raw: bytes) -> str:
    """One name or value of application/x-www-form-urlencoded (WHATWG URL
    §5.1): ``+`` is a space, then percent-decoding, then UTF-8 (replacing)."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        out = bytearray()
        index = 0
        while index < len(raw):
            byte = raw[index]
            if (byte == 0x25 and index + 2 < len(raw) and raw[index + 1] in _HEX
                    and raw[index + 2] in _HEX):
                out.append(int(raw[index + 1:index + 3], 16))
                index += 3
            else:
                out.append(byte)
                index += 1
        raw = bytes(out)
    return raw.decode("utf-8", "replace")


def _form_encode(text: str) -> bytes:
    """"percent-encode after encoding" with the form percent-encode set, a
    space as ``%20`` (the RFC 9421 §2.2.8 examples)."""
    return b"".join(bytes((byte,)) if byte in _FORM_SAFE else b"%%%02X" % byte
                    for byte in text.encode("utf-8"))


def _query_param(query: bytes, name: str) -> bytes:
    """``@query-param;name=...`` (RFC 9421 §2.2.8)."""
    found: list[bytes] = []
    for part in query.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        if _form_encode(_form_decode(raw_name)).decode("ascii") == name:
            found.append(_form_encode(_form_decode(raw_value)))
    if not found:
        raise SignatureBaseError(f'"@query-param": no parameter {name!r}')
    if len(found) > 1:
        raise SignatureBaseError(f'"@query-param": {name!r} occurs more than once')
    return found[0]


def _field(request: RequestView, name: str, params: dict[str, Any],
           structured_fields: Mapping[str, str]) -> bytes:
    """An HTTP field (RFC 9421 §2.1), with ``sf``, ``key`` or ``bs``."""
    for key, value in params.items():
        if key not in ("sf", "key", "bs"):
            raise SignatureBaseError(f"{name!r}: unknown parameter {key!r}")
        if key != "key" and value is not True:
            raise SignatureBaseError(f"{name!r}: {key} is a flag (true)")
    if "bs" in params and ("sf" in params or "key" in params):
        raise SignatureBaseError(f"{name!r}: bs cannot be combined with sf or key")
    lines = request.values(name.encode("ascii"))
    if not lines:
        raise SignatureBaseError(f"field {name!r} is not in the request")
    values = [_OBS_FOLD.sub(b" ", line).strip(b" \t") for line in lines]
    if "bs" in params:
        # §2.1.3: each value a Byte Sequence, the List serialised strictly.
        return b", ".join(b":" + base64.b64encode(value) + b":" for value in values)
    combined = b", ".join(values)
    if "key" not in params and "sf" not in params:
        return combined
    kind = structured_fields.get(name)
    if kind is None:
        raise SignatureBaseError(f"{name!r}: its structured type is not known")
    try:
        if "key" in params:
            member = params["key"]
            if not isinstance(member, str) or isinstance(member, Token):
                raise SignatureBaseError(f"{name!r}: key is a String")
            if kind != "dictionary":
                raise SignatureBaseError(f"{name!r}: key needs a Dictionary field")
            dictionary = structured.parse_dictionary(combined)
            if member not in dictionary:
                raise SignatureBaseError(f"{name!r}: no member {member!r}")
            return structured.serialize_member(dictionary[member]).encode("ascii")
        if kind == "dictionary":
            return structured.serialize_dictionary(
                structured.parse_dictionary(combined)).encode("ascii")
        if kind == "list":
            return structured.serialize_list(structured.parse_list(combined)).encode("ascii")
        return structured.serialize_item(structured.parse_item(combined)).encode("ascii")
    except SignatureBaseError:
        raise
    except ValueError as exc:
        raise SignatureBaseError(f"{name!r}: {exc}") from None


# ----------------------------------------------------------------------------
# HTTP_VERIFY (RFC 9421 §3.3)
# ----------------------------------------------------------------------------

_PSS_SHA512 = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)  # §3.3.1
_PKCS1 = padding.PKCS1v15()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def default_algorithm(key: object) -> str | None:
    """The algorithm a key implies when the signature names none: an HMAC
    secret ``hmac-sha256``, an Ed25519 key ``ed25519``, a P-256 key
    ``ecdsa-p256-sha256``; None for an RSA key (PSS or PKCS#1 v1.5: the
    key cannot tell) or any other."""
    if isinstance(key, SharedSecret):
        return "hmac-sha256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "ecdsa-p256-sha256"
    return None


def verify(algorithm: str, key: object, base: bytes, signature: bytes) -> None:
    """``HTTP_VERIFY(base, key, signature)`` for ``algorithm``.

    Returns None when the signature verifies; raises
    ``cryptography.exceptions.InvalidSignature`` otherwise -- a wrong
    signature, an unknown algorithm, or a key that is not for this algorithm
    (an RSA key shorter than :data:`MIN_RSA_BITS`, an EC key not on P-256).
    """
    if algorithm == "hmac-sha256":
        if not isinstance(key, SharedSecret):
            raise InvalidSignature("hmac-sha256 needs a shared secret")
        expected = hmac.digest(key.secret, base, "sha256")
        if not compare.constant_time_equals(expected, signature):
            raise InvalidSignature("HMAC mismatch")
        return
    if algorithm == "ed25519":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise InvalidSignature("ed25519 needs an Ed25519 key")
        key.verify(signature, base)
        return
    if algorithm == "ecdsa-p256-sha256":
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise InvalidSignature("ecdsa-p256-sha256 needs a P-256 key")
        if len(signature) != 64:  # §3.3.4: r || s, 32 octets each
            raise InvalidSignature("an ecdsa-p256-sha256 signature is 64 octets")
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        key.verify(encode_dss_signature(r, s), base, _ECDSA_SHA256)
        return
    if algorithm in ("rsa-pss-sha512", "rsa-v1_5-sha256"):
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature(f"{algorithm} needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise InvalidSignature(f"RSA keys shorter than {MIN_RSA_BITS} bits are refused")
        if algorithm == "rsa-pss-sha512":
            key.verify(signature, base, _PSS_SHA512, hashes.SHA512())
        else:
            key.verify(signature, base, _PKCS1, hashes.SHA256())
        return
    raise InvalidSignature(f"unsupported algorithm {algorithm[:40]!r}")
