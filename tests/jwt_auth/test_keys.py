"""The key rules of ``fastgate.auth.jwt.keys``, one test per rule of its
docstring, with keys and signatures made by ``cryptography`` and PyJWT."""

from __future__ import annotations

import base64
import datetime
import hmac
import math
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from fastgate.auth.jwt import keys
from fastgate.auth.jwt.keys import JwkError

from .idp import jwk_of, public_pem, rsa_key

RSA = rsa_key()
EC256 = ec.generate_private_key(ec.SECP256R1())
EC384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()
MESSAGE = b"header.payload"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkcs1(private: Any, digest: Any = hashes.SHA256) -> bytes:
    return private.sign(MESSAGE, padding.PKCS1v15(), digest())


def p1363(private: Any, digest: Any, size: int) -> bytes:
    r, s = decode_dss_signature(private.sign(MESSAGE, ec.ECDSA(digest())))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def test_none_is_no_algorithm_and_families_do_not_mix():
    for spelling in ("none", "None", "NONE", "nOnE", ""):
        assert spelling not in keys.ALGORITHMS
    key = keys.key_from_material(public_pem(RSA), "rsa")
    signature = pkcs1(RSA)
    assert key.verify("RS256", MESSAGE, signature)
    assert not key.verify("none", MESSAGE, b"")
    assert not key.verify("HS256", MESSAGE, signature)
    assert not key.verify("ES256", MESSAGE, signature)


def test_hmac_is_the_whole_mac_of_the_named_hash():
    secret = b"s" * 64
    key = keys.key_from_secret(secret)
    token = jwt.encode({"a": 1}, secret, algorithm="HS384")
    signing_input, _, sig = token.encode().rpartition(b".")
    mac = base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4))
    assert key.verify("HS384", signing_input, mac)
    assert not key.verify("HS256", signing_input, mac)
    assert not key.verify("HS384", signing_input, mac[:-1])
    assert not key.verify("HS384", signing_input + b"x", mac)
    with pytest.raises(JwkError):
        keys.key_from_secret(b"")


def test_an_hmac_secret_is_never_an_rsa_public_key():
    # The classic confusion: the RSA public key's PEM used as an HMAC secret.
    rsa_verifier = keys.key_from_material(public_pem(RSA), "rsa")
    mac = hmac.digest(public_pem(RSA), MESSAGE, "sha256")
    assert not rsa_verifier.verify("HS256", MESSAGE, mac)


def test_rsa_pkcs1_and_pss_with_a_salt_as_long_as_the_hash():
    key = keys.key_from_material(public_pem(RSA), "rsa")
    assert key.verify("RS512", MESSAGE, pkcs1(RSA, hashes.SHA512))
    assert not key.verify("RS256", MESSAGE, pkcs1(RSA, hashes.SHA512))
    pss = RSA.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert key.verify("PS256", MESSAGE, pss)
    assert not key.verify("RS256", MESSAGE, pss)
    longer = RSA.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()),
                                           padding.PSS.MAX_LENGTH), hashes.SHA256())
    assert not key.verify("PS256", MESSAGE, longer)
    assert not key.verify("PS256", MESSAGE, pkcs1(RSA))


def test_small_rsa_keys_and_private_keys_are_refused():
    small = rsa.generate_private_key(65537, 1024)
    with pytest.raises(JwkError, match="1024 bits"):
        keys.key_from_material(public_pem(small), "rsa")
    private_pem = RSA.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    with pytest.raises(JwkError):
        keys.key_from_material(private_pem, "rsa")
    with pytest.raises(JwkError):
        keys.key_from_material(public_pem(EC256), "rsa")


def test_pkcs1_der_and_certificates_are_read():
    pkcs1_pem = RSA.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.PKCS1)
    der = RSA.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(RSA.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(RSA, hashes.SHA256()))
    for material in (pkcs1_pem, der, cert.public_bytes(serialization.Encoding.PEM)):
        assert keys.key_from_material(material, "rsa").verify("RS256", MESSAGE, pkcs1(RSA))


def test_ecdsa_only_fixed_length_r_s_on_the_algorithms_curve():
    key = keys.key_from_material(public_pem(EC256), "ecdsa")
    good = p1363(EC256, hashes.SHA256, 32)
    assert key.verify("ES256", MESSAGE, good)
    der = EC256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert not key.verify("ES256", MESSAGE, der)
    assert not key.verify("ES256", MESSAGE, good[:-1])
    assert not key.verify("ES256", MESSAGE, b"\x00" + good)
    assert not key.verify("ES384", MESSAGE, p1363(EC256, hashes.SHA384, 48))
    p384 = keys.key_from_material(public_pem(EC384), "ecdsa")
    assert p384.verify("ES384", MESSAGE, p1363(EC384, hashes.SHA384, 48))
    assert not p384.verify("ES512", MESSAGE, p1363(EC384, hashes.SHA512, 66))


def test_ed25519():
    key = keys.key_from_material(public_pem(ED), "eddsa")
    signature = ED.sign(MESSAGE)
    assert key.verify("EdDSA", MESSAGE, signature)
    assert key.verify("Ed25519", MESSAGE, signature)
    assert not key.verify("EdDSA", MESSAGE, signature[:63])
    assert not key.verify("EdDSA", MESSAGE + b"x", signature)


# -- JWKs -------------------------------------------------------------------------


def test_jwk_kinds():
    assert keys.parse_jwk(jwk_of(RSA, "r")).verify("RS256", MESSAGE, pkcs1(RSA))
    assert keys.parse_jwk(jwk_of(EC256, "e")).verify("ES256", MESSAGE,
                                                     p1363(EC256, hashes.SHA256, 32))
    assert keys.parse_jwk(jwk_of(ED, "d")).verify("EdDSA", MESSAGE, ED.sign(MESSAGE))
    oct_key = {"kty": "oct", "k": b64u(b"k" * 32), "alg": "HS256"}
    assert keys.parse_jwk(oct_key).verify("HS256", MESSAGE,
                                          hmac.digest(b"k" * 32, MESSAGE, "sha256"))


@pytest.mark.parametrize(("change", "words"), [
    ({"d": "AAAA"}, "private members"),
    ({"use": "enc"}, "not a signature key"),
    ({"key_ops": ["encrypt"]}, "not a verification key"),
    ({"alg": "ES256"}, "does not fit"),
    ({"alg": "RS1"}, "does not fit"),
    ({"kty": "RSX"}, "key type"),
    ({"kid": 5}, "kid is not a string"),
    ({"n": "AA=="}, "not base64url"),
])
def test_jwk_refusals(change, words):
    with pytest.raises(JwkError, match=words):
        keys.parse_jwk({**jwk_of(RSA, "r"), **change})


def test_jwk_alg_restricts_the_key():
    key = keys.parse_jwk({**jwk_of(RSA, "r"), "alg": "RS256"})
    assert key.verify("RS256", MESSAGE, pkcs1(RSA))
    pss = RSA.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert not key.verify("PS256", MESSAGE, pss)


def test_ec_jwk_checks():
    jwk = jwk_of(EC256, "e")
    with pytest.raises(JwkError, match="needs curve P-256"):
        keys.parse_jwk({**jwk, "alg": "ES256", "crv": "P-384"})
    with pytest.raises(JwkError):
        keys.parse_jwk({**jwk, "alg": "ES384"})
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "=="))
    y[-1] ^= 1
    with pytest.raises(JwkError, match="not on the curve"):
        keys.parse_jwk({**jwk, "y": b64u(bytes(y))})
    with pytest.raises(JwkError, match="32 bytes"):
        keys.parse_jwk({**jwk, "x": b64u(b"\x01" * 31)})


def test_okp_jwk_checks():
    jwk = jwk_of(ED, "d")
    with pytest.raises(JwkError, match="Ed25519 only"):
        keys.parse_jwk({**jwk, "crv": "X25519"})
    with pytest.raises(JwkError, match="32 bytes"):
        keys.parse_jwk({**jwk, "x": b64u(b"\x01" * 31)})
    with pytest.raises(JwkError, match="does not fit"):
        keys.parse_jwk({**jwk, "alg": "ES256"})
    assert keys.parse_jwk({**jwk, "alg": "EdDSA"}).verify("EdDSA", MESSAGE, ED.sign(MESSAGE))
    assert not keys.parse_jwk({**jwk, "alg": "EdDSA"}).verify("Ed25519", MESSAGE,
                                                             ED.sign(MESSAGE))


@pytest.mark.parametrize("alg", [*sorted(keys.ALGORITHMS), "none", "HS1", "RS", "ES", ""])
@pytest.mark.parametrize("signature", [b"", b"\x00", b"\xff" * 64, b"\x00" * 132,
                                       b"\x01" * 256, b"\x00" * 512, b"\xff" * 100_000])
def test_verify_never_raises(alg, signature):
    verifiers = [keys.key_from_secret(b"k" * 64), keys.key_from_material(public_pem(RSA), "rsa"),
                 keys.key_from_material(public_pem(EC256), "ecdsa"),
                 keys.key_from_material(public_pem(ED), "eddsa")]
    for key in verifiers:
        assert key.verify(alg, MESSAGE, signature) is False


def test_x5c_must_hold_the_same_key():
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    now = datetime.datetime.now(datetime.UTC)

    def cert_of(private: Any) -> str:
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(private.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(private, hashes.SHA256()))
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    jwk = jwk_of(RSA, "r")
    assert keys.parse_jwk({**jwk, "x5c": [cert_of(RSA)]}).verify("RS256", MESSAGE, pkcs1(RSA))
    only_cert = {"kty": "RSA", "kid": "c", "x5c": [cert_of(RSA)]}
    assert keys.parse_jwk(only_cert).verify("RS256", MESSAGE, pkcs1(RSA))
    with pytest.raises(JwkError, match="another key"):
        keys.parse_jwk({**jwk, "x5c": [cert_of(rsa_key())]})
    with pytest.raises(JwkError, match="x5c"):
        keys.parse_jwk({"kty": "RSA", "x5c": ["not base64!"]})


def test_short_hmac_jwks_are_refused():
    with pytest.raises(JwkError, match="at least 64"):
        keys.parse_jwk({"kty": "oct", "k": b64u(b"k" * 63), "alg": "HS512"})
    with pytest.raises(JwkError, match="at least 32"):
        keys.parse_jwk({"kty": "oct", "k": b64u(b"k" * 16)})


def test_a_set_skips_what_it_cannot_use_and_says_why():
    good = jwk_of(RSA, "good")
    doc = {"keys": [
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        good,
        {**jwk_of(EC256, "enc"), "use": "enc"},
        {"kty": "oct", "kid": "secret", "k": b64u(b"k" * 32)},
        {**jwk_of(ED, "dup")}, {**jwk_of(EC256, "dup")},
        "not an object",
        {**jwk_of(EC256, "x"), "kid": None},
    ]}
    by_kid, without_kid, errors = keys.parse_jwks(doc)
    assert set(by_kid) == {"good"}
    assert len(without_kid) == 1
    assert by_kid["good"].verify("RS256", MESSAGE, pkcs1(RSA))
    text = "\n".join(errors)
    assert "'broken'" in text and "'enc'" in text
    assert "symmetric (oct) key in a published key set" in text
    assert text.count("kid published 2 times") == 2
    assert len(errors) == 6
    assert keys.parse_jwks({"nokeys": []}) == ({}, [], ['not a JWK Set (no "keys" array)'])
    assert keys.parse_jwks([1])[2]


def test_roca_fingerprint():
    primes = keys._ROCA_PRIMES
    modulus = math.prod(primes)
    fingerprinted = pow(65537, 123456, modulus) + modulus * 10**300
    assert keys.roca_vulnerable(fingerprinted)
    assert not keys.roca_vulnerable(RSA.public_key().public_numbers().n)
    assert not keys.roca_vulnerable(fingerprinted + 1)
