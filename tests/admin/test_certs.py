"""/tyk/certs through AdminApi.handle, on memory, Redis and Redis Cluster.

Ids, replies and refusals as Tyk's certHandler (gateway/cert.go) and
GetCertIDAndChainPEM (certs/manager.go); certificates made by trustme.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fastgate import certs

ORG = "org1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="fastgate tests")


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("api.example.com", "www.example.com", common_name="api.example.com")


def der_sha256(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(
        serialization.Encoding.DER)).hexdigest()


def raw_call(env: Any, method: str, path: str, body: bytes = b"") -> Any:
    return env.call(method, path, raw=body)


def test_certificate_lifecycle(admin_factory, leaf, ca):
    env = admin_factory()
    cert_pem = leaf.cert_chain_pems[0].bytes()
    body = cert_pem + leaf.private_key_pem.bytes()
    added = raw_call(env, "POST", f"/tyk/certs?org_id={ORG}", body)
    cert_id = ORG + der_sha256(cert_pem)
    assert (added.status, added.json) == (
        200, {"id": cert_id, "status": "ok", "message": "Certificate added"})

    again = raw_call(env, "POST", f"/tyk/certs?org_id={ORG}", body)
    assert (again.status, again.message) == (
        403, f"Certificate with {cert_id} id already exists")

    meta = env.call("GET", f"/tyk/certs/{cert_id}").json
    assert meta["id"] == cert_id
    assert meta["has_private"] is True
    assert meta["fingerprint"] == der_sha256(cert_pem)
    assert meta["dns_names"] == ["api.example.com", "www.example.com"]
    assert meta["subject"]["CommonName"] == "api.example.com"
    assert meta["issuer"]["Organization"] == ["fastgate tests"]
    assert meta["is_ca"] is False
    assert meta["not_after"].endswith("Z")
    # The private key never leaves the store.
    assert "PRIVATE" not in env.call("GET", f"/tyk/certs/{cert_id}").raw.decode()

    ca_id = raw_call(env, "POST", f"/tyk/certs?org_id={ORG}", ca.cert_pem.bytes()).json["id"]
    listing = env.call("GET", f"/tyk/certs?org_id={ORG}").json
    assert listing == {"certs": sorted([cert_id, ca_id])}
    assert env.call("GET", "/tyk/certs?org_id=other").json == {"certs": []}
    detailed = env.call("GET", f"/tyk/certs?org_id={ORG}&mode=detailed").json["certs"]
    by_id = {item["id"]: item for item in detailed}
    assert by_id[ca_id]["is_ca"] is True and by_id[ca_id]["has_private"] is False
    assert by_id[cert_id]["subject_cn"] == "api.example.com"
    assert by_id[cert_id]["issuer_cn"] == by_id[ca_id]["subject_cn"]
    assert set(by_id[cert_id]) == {"id", "issuer_cn", "subject_cn", "dns_names",
                                   "has_private", "not_before", "not_after", "is_ca"}

    several = env.call("GET", f"/tyk/certs/{cert_id},nope,{ca_id}").json
    assert [item and item["id"] for item in several] == [cert_id, None, ca_id]
    missing = env.call("GET", "/tyk/certs/nope")
    assert (missing.status, missing.message) == (
        404, "Certificate with given SHA256 fingerprint not found")

    deleted = env.call("DELETE", f"/tyk/certs/{cert_id}")
    assert (deleted.status, deleted.json) == (200, {"status": "ok", "message": "removed"})
    assert env.call("GET", f"/tyk/certs/{cert_id}").status == 404
    assert env.call("DELETE", f"/tyk/certs/{cert_id}").status == 200  # as Tyk: always ok
    assert env.call("GET", f"/tyk/certs?org_id={ORG}").json == {"certs": [ca_id]}


def test_the_id_is_the_certificate_the_key_belongs_to_and_the_fingerprint_the_last(
        admin_factory, leaf, ca):
    env = admin_factory()
    chain = leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes()
    added = raw_call(env, "POST", "/tyk/certs", chain + leaf.private_key_pem.bytes()).json
    assert added["id"] == der_sha256(leaf.cert_chain_pems[0].bytes())  # no org_id: no prefix
    meta = env.call("GET", f"/tyk/certs/{added['id']}").json
    assert meta["fingerprint"] == der_sha256(ca.cert_pem.bytes())  # Tyk's quirk


def test_a_public_key_is_stored_under_the_sha256_of_its_der(admin_factory):
    env = admin_factory()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    added = raw_call(env, "POST", f"/tyk/certs?org_id={ORG}", pem).json
    assert added["id"] == ORG + hashlib.sha256(der).hexdigest()
    meta = env.call("GET", f"/tyk/certs/{added['id']}").json
    assert meta["has_private"] is False and "subject" not in meta


@pytest.mark.parametrize(("kind", "message"), [
    ("garbage", "Failed to decode certificate. It should be PEM encoded."),
    ("two-keys", "Found multiple private keys"),
    ("public-and-cert", "Public keys can't be combined with certificates"),
    ("expired", "certificate is expired"),
    ("wrong-key", "tls: private key does not match public key"),
])
def test_refusals_are_403_with_tyks_text_and_store_nothing(admin_factory, leaf, ca, kind,
                                                           message):
    env = admin_factory()
    cert = leaf.cert_chain_pems[0].bytes()
    key = leaf.private_key_pem.bytes()
    other = ca.issue_cert("other.example.com")
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    expired = ca.issue_cert("old.example.com", not_after=datetime.datetime(
        2020, 1, 1, tzinfo=datetime.UTC), not_before=datetime.datetime(
        2019, 1, 1, tzinfo=datetime.UTC))
    body = {
        "garbage": b"not PEM at all",
        "two-keys": cert + key + other.private_key_pem.bytes(),
        "public-and-cert": cert + public,
        "expired": expired.cert_chain_pems[0].bytes(),
        "wrong-key": cert + other.private_key_pem.bytes(),
    }[kind]
    resp = raw_call(env, "POST", f"/tyk/certs?org_id={ORG}", body)
    assert (resp.status, resp.message) == (403, message)
    assert env.run(env.gateway.store.list_certificates()) == []


def test_the_private_key_is_stored_encrypted_with_the_configured_secret(admin_factory, leaf):
    env = admin_factory(security={"private_certificate_encoding_secret": "cert-secret"})
    body = leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes()
    cert_id = raw_call(env, "POST", "/tyk/certs", body).json["id"]
    record = env.run(env.gateway.store.get_certificate(cert_id))
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in record
    assert leaf.private_key_pem.bytes().split(b"\n")[1] not in record
    key = certs.private_key(record, b"cert-secret")
    assert key is not None
    original = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    assert key.private_numbers() == original.private_numbers()  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        certs.private_key(record, env.gateway.config.secret.encode())


def test_without_an_encoding_secret_the_gateway_secret_encrypts(admin_factory, leaf):
    env = admin_factory()
    body = leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes()
    cert_id = raw_call(env, "POST", "/tyk/certs", body).json["id"]
    record = env.run(env.gateway.store.get_certificate(cert_id))
    assert certs.private_key(record, env.gateway.config.secret.encode()) is not None


def test_methods_and_auth(admin_factory):
    env = admin_factory()
    assert env.call("PUT", "/tyk/certs/x").status == 405
    assert env.call("DELETE", "/tyk/certs").status == 405
    assert env.call("GET", "/tyk/certs", secret="wrong").status == 403
