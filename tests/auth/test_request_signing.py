"""Tyk's ``request_signing``: what the upstream receives is signed, and the
signature verifies over exactly what it received (checked with the
independent client of tests/auth/tyk_signing.py, from the echo upstream's
view of the request), with the query in ``(request-target)``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastgate.apidef import parse_api_definition
from fastgate.config import ConfigError

from .tyk_signing import signing_string

SECRET = "upstream-shared-secret"
PARAMS = re.compile(r'(\w+)="([^"]*)"')


def _signing(**fields: Any) -> dict[str, Any]:
    return {"is_enabled": True, "key_id": "gateway-1", "algorithm": "hmac-sha256",
            "secret": SECRET, **fields}


@pytest.fixture(scope="module")
def gw(module_gateway_factory, make_api, echo):
    apis = [
        make_api("all", "/all/", echo.base_url, request_signing=_signing()),
        make_api("some", "/some/", echo.base_url + "/base",
                 request_signing=_signing(header_list=["x-a", "host", "x-absent"],
                                          algorithm="hmac-sha512",
                                          signature_header="X-Gateway-Signature")),
        make_api("none", "/none/", echo.base_url, request_signing=_signing(
            header_list=["x-absent"])),
        make_api("rsa", "/rsa/", echo.base_url, request_signing=_signing(
            algorithm="rsa-sha256", certificate_id="test-org-placeholder")),
    ]
    return module_gateway_factory(apis)


def upstream_view(resp: requests.Response) -> tuple[str, str, dict[str, str]]:
    assert resp.status_code == 200, resp.text
    seen = resp.json()
    target = seen["url"]
    headers: dict[str, str] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), value)
    return seen["method"], target, headers


def check_signature(resp: requests.Response, header: str = "authorization",
                    algorithm: str = "hmac-sha256") -> dict[str, str]:
    method, target, headers = upstream_view(resp)
    params = dict(PARAMS.findall(headers[header]))
    assert headers[header].startswith("Signature ")
    assert params["keyId"] == "gateway-1"
    assert params["algorithm"] == algorithm
    signed = params["headers"].split(" ")
    message = signing_string(method, target, headers, signed).encode()
    digest = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}[algorithm]
    expected = hmac.new(SECRET.encode(), message, digest).digest()
    presented = base64.b64decode(urllib.parse.unquote(params["signature"]))
    assert hmac.compare_digest(expected, presented)
    return params


def test_empty_list_signs_every_end_to_end_field_and_the_query(gw):
    resp = requests.post(gw.url("/all/orders/7?page=2"), data=b"body",
                         headers={"X-A": "1", "Authorization": "client-credential"},
                         timeout=10)
    params = check_signature(resp)
    signed = params["headers"].split(" ")
    assert signed[0] == "(request-target)"
    assert {"host", "x-a", "content-length", "date"} <= set(signed)
    assert "authorization" not in signed and "connection" not in signed
    _method, target, headers = upstream_view(resp)
    assert target == "/orders/7?page=2"
    assert "date" in headers  # added, since the client sent none
    assert "client-credential" not in str(resp.json()["headers"])  # Authorization replaced


def test_listed_fields_that_are_present(gw):
    resp = requests.get(gw.url("/some/x?q=1"), headers={"X-A": "v"}, timeout=10)
    params = check_signature(resp, "x-gateway-signature", "hmac-sha512")
    assert params["headers"] == "x-a host"  # x-absent is not there
    _method, target, headers = upstream_view(resp)
    assert target == "/base/x?q=1"
    assert headers["host"] != "example.invalid"


def test_no_listed_field_present_signs_target_and_date(gw):
    resp = requests.get(gw.url("/none/x"), timeout=10)
    params = check_signature(resp)
    assert params["headers"] == "(request-target) date"


def test_tampering_upstream_side_would_be_seen(gw):
    resp = requests.get(gw.url("/all/x?a=1"), headers={"X-A": "1"}, timeout=10)
    method, target, headers = upstream_view(resp)
    params = dict(PARAMS.findall(headers["authorization"]))
    message = signing_string(method, target.replace("a=1", "a=2"), headers,
                             params["headers"].split(" ")).encode()
    forged = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    assert base64.b64decode(urllib.parse.unquote(params["signature"])) != forged


def test_rsa_certificate_missing_is_tyks_500(gw):
    resp = requests.get(gw.url("/rsa/x"), timeout=10)
    assert resp.status_code == 500
    assert resp.json() == {"error": "Certificate not found"}


def test_rsa_signing_with_a_stored_certificate(gateway_factory, make_api, echo):
    from trustme import CA

    leaf = CA().issue_cert("gateway.test")
    gw = gateway_factory([make_api("a", "/a/", echo.base_url)])
    body = leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes()
    added = requests.post(gw.url("/tyk/certs?org_id=test-org"), data=body,
                          headers={"X-Tyk-Authorization": gw.secret}, timeout=10)
    assert added.status_code == 200, added.text
    cert_id = added.json()["id"]
    # trustme's keys are EC: a record without an RSA key is Tyk's other 500
    gw.write_api(make_api("a", "/a/", echo.base_url, request_signing=_signing(
        algorithm="rsa-sha256", certificate_id=cert_id)))
    assert gw.reload().status_code == 200
    resp = requests.get(gw.url("/a/x"), timeout=10)
    assert (resp.status_code, resp.json()) == (
        500, {"error": "Certificate does not contain RSA private key"})
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    cert = _self_signed(private)
    added = requests.post(gw.url("/tyk/certs?org_id=test-org"), data=cert + pem,
                          headers={"X-Tyk-Authorization": gw.secret}, timeout=10)
    assert added.status_code == 200, added.text
    gw.write_api(make_api("a", "/a/", echo.base_url, request_signing=_signing(
        algorithm="rsa-sha256", certificate_id=added.json()["id"])))
    assert gw.reload().status_code == 200
    resp = requests.get(gw.url("/a/x?z=9"), timeout=10)
    method, target, headers = upstream_view(resp)
    params = dict(PARAMS.findall(headers["authorization"]))
    message = signing_string(method, target, headers, params["headers"].split(" ")).encode()
    private.public_key().verify(base64.b64decode(params["signature"]), message,
                                padding.PKCS1v15(), hashes.SHA256())


def _self_signed(private: rsa.RSAPrivateKey) -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(private, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _api(**signing: Any) -> dict[str, Any]:
    return {"api_id": "x", "org_id": "o", "use_keyless": True,
            "proxy": {"listen_path": "/x/", "target_url": "http://127.0.0.1:1"},
            "request_signing": {"is_enabled": True, **signing}}


@pytest.mark.parametrize(("signing", "field"), [
    ({"algorithm": "hmac-sha256", "secret": "s"}, "request_signing.key_id"),
    ({"key_id": "k", "algorithm": "foo", "secret": "s"}, "request_signing.algorithm"),
    ({"key_id": "k", "algorithm": "hmac-sha256"}, "request_signing.secret"),
    ({"key_id": "k", "algorithm": "rsa-sha256"}, "request_signing.certificate_id"),
    ({"key_id": "k", "algorithm": "hmac-sha256", "secret": "s", "header_list": ["a b"]},
     "request_signing.header_list"),
])
def test_unusable_settings_refuse_the_definition(signing, field):
    with pytest.raises(ConfigError) as caught:
        parse_api_definition(_api(**signing), "api.json")
    assert caught.value.field == field


def test_algorithm_must_be_allowed_by_the_api():
    api = {**_api(key_id="k", algorithm="hmac-sha1", secret="s"),
           "hmac_allowed_algorithms": ["hmac-sha256"]}
    with pytest.raises(ConfigError, match="hmac-sha256"):
        parse_api_definition(api, "api.json")
    off = {**_api(key_id="", algorithm=""), "request_signing": {"is_enabled": False}}
    assert parse_api_definition(off, "api.json").request_signing is None
