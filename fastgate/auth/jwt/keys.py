"""Key material for JWT verification, and the signature checks (through OpenSSL).

* :func:`key_from_secret` -- an HMAC secret;
* :func:`key_from_material` -- a PEM or DER public key (SubjectPublicKeyInfo,
  or PKCS#1 ``RSA PUBLIC KEY``) or X.509 certificate (its public key);
* :func:`parse_jwk` / :func:`parse_jwks` -- JSON Web Keys (RFC 7517/7518):
  RSA ``n``/``e``, EC ``crv``/``x``/``y`` (the point checked on its curve),
  OKP Ed25519 ``x`` (RFC 8037), ``oct`` ``k``, and ``x5c`` (the first
  certificate's key; when the JWK also carries the key members, both must
  be the same key).  A JWK Set's unusable keys are skipped and reported,
  never fatal for the set.

:meth:`VerifyKey.verify` never raises on hostile input: a bad signature is
False.  The rules:

* the ``alg`` must be of the key's family (``ALGORITHMS``); an ECDSA ``alg``
  must match the key's curve (ES256 P-256, ES384 P-384, ES512 P-521), and a
  JWK's own ``alg`` member, when present, is the only algorithm it verifies;
* HMAC: the MAC computed by OpenSSL (``hmac.digest``), compared in constant
  time (:mod:`fastgate._core.compare`);
* RSA: PKCS#1 v1.5 (RS*) or PSS with MGF1 of the same hash and a salt as long
  as the hash (PS*, RFC 7518 §3.5: exactly that salt);
* ECDSA: the signature only in JOSE's fixed-length ``r||s`` form (RFC 7518
  §3.4) -- a DER signature is refused;
* EdDSA: Ed25519 (``alg`` ``EdDSA``, RFC 8037; also ``Ed25519``, RFC 9864).

**fastgate differs** from Tyk: RSA keys shorter than 2048 bits are refused
(RFC 7518 §3.3 says such keys MUST NOT be used; Go accepts them); a JWK
carrying private members (``d``, ``p``...) is refused -- a published key set
holding a private key is a leak, not a key to trust; a JWK whose ``use`` is
not ``sig`` (or whose ``key_ops`` lack ``verify``) is skipped; in a JWK Set,
an ``oct`` key and both keys of a ``kid`` published twice are skipped; an
RSA key with the ROCA fingerprint (CVE-2017-15361) is refused; a JWK's HMAC
key shorter than its hash is refused (RFC 7518 §3.2; a ``jwt_source`` secret
is taken as Tyk takes it).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fastgate._core import compare, jws

__all__ = [
    "ALGORITHMS",
    "FAMILIES",
    "MIN_RSA_BITS",
    "JwkError",
    "VerifyKey",
    "key_from_material",
    "key_from_secret",
    "parse_jwk",
    "parse_jwks",
    "roca_vulnerable",
]

FAMILIES = ("hmac", "rsa", "ecdsa", "eddsa")

#: Every algorithm fastgate verifies, and its family.  ``none`` is not one.
ALGORITHMS: dict[str, str] = {
    "HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
    "RS256": "rsa", "RS384": "rsa", "RS512": "rsa",
    "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
    "ES256": "ecdsa", "ES384": "ecdsa", "ES512": "ecdsa",
    "EdDSA": "eddsa", "Ed25519": "eddsa",
}

MIN_RSA_BITS = 2048

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HMAC_NAMES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
#: ES* -> (curve name, bytes per coordinate).
_CURVES = {"ES256": ("secp256r1", 32), "ES384": ("secp384r1", 48), "ES512": ("secp521r1", 66)}

#: RS*/PS* -> (padding, hash) and ES* -> the signature algorithm, built once
#: (stateless descriptors; building them per token costs ~0.5 us).
_RSA_SCHEMES: dict[str, tuple[padding.AsymmetricPadding, hashes.HashAlgorithm]] = {
    **{f"RS{bits}": (padding.PKCS1v15(), _HASHES[bits]()) for bits in _HASHES},
    **{f"PS{bits}": (padding.PSS(mgf=padding.MGF1(_HASHES[bits]()),
                                 salt_length=_HASHES[bits]().digest_size), _HASHES[bits]())
       for bits in _HASHES},
}
_EC_SCHEMES = {f"ES{bits}": ec.ECDSA(_HASHES[bits]()) for bits in _HASHES}
_JWK_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
_JWK_CURVE_OF = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
# ROCA (CVE-2017-15361): moduli from the flawed Infineon generator are, modulo
# each of these primes, a power of 65537 (Nemec et al., CCS 2017, §2.3).
_ROCA_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
                73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151,
                157, 163, 167)


def _powers_of_65537(prime: int) -> frozenset[int]:
    out, value = set(), 1
    while value not in out:
        out.add(value)
        value = value * 65537 % prime
    return frozenset(out)


_ROCA_SUBGROUPS = tuple((p, _powers_of_65537(p)) for p in _ROCA_PRIMES)


def roca_vulnerable(modulus: int) -> bool:
    """Whether an RSA modulus has the ROCA fingerprint (its factors are recoverable)."""
    return all(modulus % prime in powers for prime, powers in _ROCA_SUBGROUPS)


class JwkError(ValueError):
    """Why a key cannot be used."""


class VerifyKey:
    """One key that verifies signatures of one family."""

    __slots__ = ("_alg", "_curve", "_key", "family", "kid", "retired")

    def __init__(self, family: str, key: Any, *, kid: str | None = None,
                 alg: str | None = None) -> None:
        self.family = family
        self._key = key
        #: The ``kid`` it is published under (JWKS), else None.
        self.kid = kid
        #: Set by the JWKS cache when the key leaves its set: tokens it
        #: verified stop being honoured (:class:`fastgate.auth.jwt.tokens.TokenCache`).
        self.retired = False
        self._alg = alg
        self._curve = key.curve.name if family == "ecdsa" else ""

    def __repr__(self) -> str:
        return f"<VerifyKey {self.family} kid={self.kid!r}>"

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``signing_input`` under ``alg``."""
        if ALGORITHMS.get(alg) != self.family or (self._alg is not None and alg != self._alg):
            return False
        try:
            if self.family == "hmac":
                mac = hmac.digest(self._key, signing_input, _HMAC_NAMES[alg])
                return compare.constant_time_equals(mac, signature)
            if self.family == "rsa":
                scheme, digest = _RSA_SCHEMES[alg]
                self._key.verify(signature, signing_input, scheme, digest)
                return True
            if self.family == "ecdsa":
                curve, size = _CURVES[alg]
                if self._curve != curve or len(signature) != 2 * size:
                    return False
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                self._key.verify(encode_dss_signature(r, s), signing_input, _EC_SCHEMES[alg])
                return True
            if len(signature) != 64:
                return False
            self._key.verify(signature, signing_input)
            return True
        except (InvalidSignature, ValueError, TypeError, OverflowError):
            return False


# -- keys from the API definition --------------------------------------------------------


def key_from_secret(secret: bytes, kid: str | None = None) -> VerifyKey:
    """An HMAC key (the secret's bytes as they are)."""
    if not secret:
        raise JwkError("an empty HMAC secret")
    return VerifyKey("hmac", bytes(secret), kid=kid)


def _public_key(data: bytes) -> Any:
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        if b"PRIVATE KEY" in text.split(b"\n", 1)[0]:
            raise JwkError("a private key: give the public key or certificate")
        if b"CERTIFICATE" in text.split(b"\n", 1)[0]:
            return x509.load_pem_x509_certificate(text).public_key()
        return serialization.load_pem_public_key(text)
    try:
        return serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return x509.load_der_x509_certificate(data).public_key()


def _checked(family: str, public: Any, kid: str | None = None,
             alg: str | None = None) -> VerifyKey:
    if family == "rsa":
        if not isinstance(public, rsa.RSAPublicKey):
            raise JwkError("not an RSA key")
        if public.key_size < MIN_RSA_BITS:
            raise JwkError(f"an RSA key of {public.key_size} bits (at least "
                           f"{MIN_RSA_BITS} are required, RFC 7518 3.3)")
        if roca_vulnerable(public.public_numbers().n):
            raise JwkError("an RSA key with the ROCA weakness (CVE-2017-15361): "
                           "its private key can be computed")
    elif family == "ecdsa":
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise JwkError("not an EC key")
        if public.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise JwkError(f"EC curve {public.curve.name} (P-256, P-384 or P-521 only)")
    elif family == "eddsa":
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise JwkError("not an Ed25519 key")
    else:
        raise JwkError(f"no public key for family {family!r}")
    return VerifyKey(family, public, kid=kid, alg=alg)


def key_from_material(data: bytes, family: str) -> VerifyKey:
    """A public key of ``family`` (rsa, ecdsa, eddsa) from PEM or DER: a public
    key or an X.509 certificate.  Raises JwkError (a ValueError) on anything else."""
    try:
        public = _public_key(data)
    except JwkError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise JwkError(f"neither a public key nor a certificate ({exc})") from None
    return _checked(family, public)


# -- JSON Web Keys ------------------------------------------------------------------------


def _b64url(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise JwkError(f"member {name!r} missing or not a string")
    decoded = jws.b64url_decode(value.encode("ascii", "replace"))
    if decoded is None:
        raise JwkError(f"member {name!r} is not base64url")
    return decoded


def _member_key(jwk: Mapping[str, Any], kty: str) -> Any:
    """The key the JWK's own members describe (RSA, EC, OKP)."""
    if kty == "RSA":
        n = int.from_bytes(_b64url(jwk, "n"), "big")
        e = int.from_bytes(_b64url(jwk, "e"), "big")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise JwkError(f"not an RSA public key ({exc})") from None
    if kty == "EC":
        crv = jwk.get("crv")
        curve = _JWK_CURVES.get(crv) if isinstance(crv, str) else None
        if curve is None:
            raise JwkError(f"EC curve {crv!r} (P-256, P-384 or P-521 only)")
        size = (curve.key_size + 7) // 8
        x, y = _b64url(jwk, "x"), _b64url(jwk, "y")
        if len(x) != size or len(y) != size:
            raise JwkError(f"EC coordinates must be {size} bytes each")
        try:
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve).public_key()
        except ValueError:
            raise JwkError("the EC point is not on the curve") from None
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise JwkError(f"OKP curve {jwk.get('crv')!r} (Ed25519 only)")
        x = _b64url(jwk, "x")
        if len(x) != 32:
            raise JwkError("an Ed25519 key is 32 bytes")
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
        except ValueError as exc:
            raise JwkError(f"not an Ed25519 key ({exc})") from None
    raise JwkError(f"key type {kty!r} (RSA, EC, OKP or oct)")


def _certificate_key(jwk: Mapping[str, Any]) -> Any:
    chain = jwk.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise JwkError("x5c must be a non-empty array of base64 certificates")
    try:
        der = base64.b64decode(chain[0], validate=True)
        return x509.load_der_x509_certificate(der).public_key()
    except (binascii.Error, ValueError) as exc:
        raise JwkError(f"x5c[0] is not a certificate ({exc})") from None


def _same_key(one: Any, other: Any) -> bool:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        return bool(one.public_bytes(*spki) == other.public_bytes(*spki))
    except (ValueError, TypeError):
        return False


_FAMILY_OF_KTY = {"RSA": "rsa", "EC": "ecdsa", "OKP": "eddsa", "oct": "hmac"}


def parse_jwk(jwk: object) -> VerifyKey:
    """One JSON Web Key as a :class:`VerifyKey`; raises JwkError saying why not."""
    if not isinstance(jwk, dict):
        raise JwkError("not a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _FAMILY_OF_KTY:
        raise JwkError(f"key type {kty!r} (RSA, EC, OKP or oct)")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JwkError("kid is not a string")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise JwkError(f"use {use!r}: not a signature key")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise JwkError(f"key_ops {key_ops!r}: not a verification key")
    alg = jwk.get("alg")
    family = _FAMILY_OF_KTY[kty]
    if alg is not None and (not isinstance(alg, str) or ALGORITHMS.get(alg) != family):
        raise JwkError(f"alg {alg!r} does not fit key type {kty}")
    if alg in _CURVES and jwk.get("crv") != _JWK_CURVE_OF[alg]:
        raise JwkError(f"alg {alg} needs curve {_JWK_CURVE_OF[alg]}, not {jwk.get('crv')!r}")
    if kty == "oct":
        secret = _b64url(jwk, "k")
        # RFC 7518 §3.2: a key at least as long as the hash output.
        least = int(alg[2:]) // 8 if isinstance(alg, str) else 32
        if len(secret) < least:
            raise JwkError(f"an HMAC key of {len(secret)} bytes: at least {least} are needed")
        return key_from_secret(secret, kid)
    private = [name for name in _PRIVATE_MEMBERS if name in jwk]
    if private:
        raise JwkError(f"holds private members ({', '.join(private)}): a published key "
                       "must be public")
    has_members = any(name in jwk for name in ("n", "e", "x", "y"))
    public = _member_key(jwk, kty) if has_members or "x5c" not in jwk else None
    if "x5c" in jwk:
        certified = _certificate_key(jwk)
        if public is None:
            public = certified
        elif not _same_key(public, certified):
            raise JwkError("x5c[0] holds another key than the JWK's members")
    return _checked(family, public, kid=kid, alg=alg if isinstance(alg, str) else None)


def parse_jwks(doc: object) -> tuple[dict[str, VerifyKey], list[VerifyKey], list[str]]:
    """A JWK Set (``{"keys": [...]}``): (keys by kid, keys without kid, one
    text per JWK skipped).  A kid published twice names no key (ambiguous); a
    symmetric ``oct`` key is skipped (a published set is readable by anyone).
    Never raises; a document that is not a set gives no keys and one error."""
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        return {}, [], ['not a JWK Set (no "keys" array)']
    by_kid: dict[str, VerifyKey] = {}
    without_kid: list[VerifyKey] = []
    errors: list[str] = []
    published: dict[str, int] = {}
    for jwk in keys:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if isinstance(kid, str):
            published[kid] = published.get(kid, 0) + 1
    for index, jwk in enumerate(keys):
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        where = f"keys[{index}]" + (f" (kid {kid[:64]!r})" if isinstance(kid, str) else "")
        if isinstance(kid, str) and published[kid] > 1:
            # Two JWKs under one kid (even one unusable): which one a token
            # means is ambiguous.
            errors.append(f"{where}: kid published {published[kid]} times")
            continue
        if isinstance(jwk, dict) and jwk.get("kty") == "oct":
            # Whoever can read the set can sign with it.
            errors.append(f"{where}: a symmetric (oct) key in a published key set")
            continue
        try:
            key = parse_jwk(jwk)
        except JwkError as exc:
            errors.append(f"{where}: {exc}")
            continue
        except Exception as exc:  # a parser bug must not fail the set
            errors.append(f"{where}: {type(exc).__name__}")
            continue
        if key.kid is None:
            without_kid.append(key)
        else:
            by_kid[key.kid] = key
    return by_kid, without_kid, errors
