"""Tyk's signed requests (``enable_signature_checking``) over real sockets,
signed by an independent client (tests/auth/tyk_signing.py), on the memory
store and on a real Redis: every parameter missing, duplicated, wrong or
tampered, stale dates, replays, RSA keys from the certificate store."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .conftest import session
from .tyk_signing import http_date, sign

MESSAGE = "Authorization field missing, malformed or invalid"
SECRET = "c2VjcmV0LWJ5dGVzLWFzLXN0b3JlZA=="  # used as these bytes, never decoded
SKEW_MS = 5000


def _apis(make_api: Any, echo: Any) -> list[dict[str, Any]]:
    def signed(api_id: str, **fields: Any) -> dict[str, Any]:
        return make_api(api_id, f"/{api_id}/", echo.base_url, use_keyless=False,
                        enable_signature_checking=True, **fields)

    return [
        signed("h", hmac_allowed_clock_skew=SKEW_MS),
        signed("noskew"),
        signed("one", hmac_allowed_algorithms=["hmac-sha512"]),
        signed("replay", hmac_allowed_clock_skew=SKEW_MS, hmac_replay_protection=True),
        signed("compat", hmac_accept_path_only_target=True),
        signed("hdr", auth_configs={"hmac": {"auth_header_name": "Signature"}},
               strip_auth_data=True),
    ]


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def gw(request, module_gateway_factory, make_api, echo):
    storage: dict[str, Any] = {"type": "memory"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.ensure_running()
        server.flush()
        storage = {"type": "redis", "host": server.host, "port": server.port}
    gateway = module_gateway_factory(_apis(make_api, echo), storage=storage)
    admin = _admin(gateway)
    apis = ("h", "noskew", "one", "replay", "compat", "hdr")
    admin.add_key("hkey1", session(apis, hmac_enabled=True, hmac_string=SECRET))
    admin.add_key("nohmac1", session(apis, hmac_string=SECRET))  # not enabled
    admin.add_key("nosecret", session(apis, hmac_enabled=True, hmac_string=""))
    admin.add_key("expired1", session(apis, hmac_enabled=True, hmac_string=SECRET,
                                      expires=int(time.time()) - 60))
    return gateway


def _admin(gateway: Any) -> Any:
    from tests.conftest import Admin

    return Admin(gateway.base_url, gateway.secret)


def get(gw: Any, target: str, headers: dict[str, str], method: str = "GET") -> requests.Response:
    return requests.request(method, gw.url(target), headers=headers, timeout=10)


def signed_headers(target: str, *, key_id: str = "hkey1", secret: str = SECRET,
                   signed: list[str] | None = None, algorithm: str = "hmac-sha256",
                   date: str | None = None, method: str = "GET",
                   extra_headers: dict[str, str] | None = None,
                   header: str = "Authorization", **kwargs: Any) -> dict[str, str]:
    headers = {"Date": date or http_date(), **(extra_headers or {})}
    headers[header] = sign(key_id, secret, method, target, headers, signed, algorithm,
                           **kwargs)
    return headers


def refused(resp: requests.Response, status: int = 401) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": MESSAGE}


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("algorithm", ["hmac-sha1", "hmac-sha256", "hmac-sha384",
                                       "hmac-sha512"])
def test_every_hmac_algorithm(gw, algorithm):
    target = "/h/orders/7?page=2&sort=asc"
    headers = signed_headers(target, algorithm=algorithm,
                             signed=["(request-target)", "date", "x-custom"],
                             extra_headers={"X-Custom": "value, with comma "})
    resp = get(gw, target, headers)
    assert resp.status_code == 200, resp.text


def test_signature_variants_tyk_clients_send(gw):
    target = "/h/x"
    # lower-case %xx escapes (.Net), and plain base64 a client forgot to escape
    headers = signed_headers(target, signed=["(request-target)", "date"])
    lowered = headers["Authorization"].replace("%2B", "%2b").replace("%2F", "%2f") \
        .replace("%3D", "%3d")
    assert get(gw, target, {**headers, "Authorization": lowered}).status_code == 200
    plain = signed_headers(target, signed=["(request-target)", "date"], escape=False)
    assert get(gw, target, plain).status_code == 200
    # parameters in any order and case, unquoted tokens, optional whitespace
    value = headers["Authorization"].removeprefix("Signature ")
    parts = value.split(",")
    reordered = "Signature " + " , ".join(reversed(parts)).replace("keyId", "KEYID") \
        .replace('algorithm="hmac-sha256"', "algorithm=hmac-sha256")
    assert get(gw, target, {**headers, "Authorization": reordered}).status_code == 200
    # no scheme prefix at all (Tyk trims it when present)
    assert get(gw, target, {**headers, "Authorization": value}).status_code == 200


def test_headers_default_to_date_and_x_aux_date_wins(gw):
    target = "/h/x"
    headers = signed_headers(target)  # headers="date"
    assert 'headers="date"' in headers["Authorization"]
    without = headers["Authorization"].replace(',headers="date"', "")
    assert get(gw, target, {**headers, "Authorization": without}).status_code == 200
    # X-Aux-Date takes the place of Date in the signing string (its own name)
    aux = http_date()
    message_headers = {"X-Aux-Date": aux, "Date": "Thu, 01 Jan 1970 00:00:00 GMT"}
    signature = sign("hkey1", SECRET, "GET", target, {"x-aux-date": aux}, ["x-aux-date"])
    signature = signature.replace('headers="x-aux-date"', 'headers="date"')
    resp = get(gw, target, {**message_headers, "Authorization": signature})
    assert resp.status_code == 200, resp.text


def test_missing_algorithm_is_the_one_allowed(gw):
    target = "/one/x"
    headers = signed_headers(target, algorithm="hmac-sha512")
    bare = headers["Authorization"].replace('algorithm="hmac-sha512",', "")
    assert get(gw, target, {**headers, "Authorization": bare}).status_code == 200
    # with several algorithms allowed, a missing one is refused
    headers = signed_headers("/h/x")
    bare = headers["Authorization"].replace('algorithm="hmac-sha256",', "")
    refused(get(gw, "/h/x", {**headers, "Authorization": bare}))


def test_own_header_name_and_strip_auth_data(gw):
    target = "/hdr/x"
    headers = signed_headers(target, header="Signature")
    resp = get(gw, target, headers)
    assert resp.status_code == 200, resp.text
    sent = {name.lower() for name, _ in resp.json()["headers"]}
    assert "signature" not in sent  # strip_auth_data removed the credential


def test_key_created_by_the_rest_api_gets_a_secret_that_signs(gw):
    admin = _admin(gw)
    created = admin.call("POST", "/tyk/keys/create", session(("h",), hmac_enabled=True))
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    secret = admin.call("GET", "/tyk/keys/" + key).json()["hmac_string"]
    assert secret
    target = "/h/x"
    resp = get(gw, target, signed_headers(target, key_id=key, secret=secret))
    assert resp.status_code == 200, resp.text


def test_session_drives_limits_and_expiry(gw):
    refused_expired = get(gw, "/h/x", signed_headers("/h/x", key_id="expired1"))
    assert refused_expired.status_code == 401
    assert refused_expired.json() == {"error": "Key has expired, please renew"}


# --------------------------------------------------------------------------- refused


def test_missing_signature_is_401_with_a_challenge(gw):
    resp = get(gw, "/h/x", {"Date": http_date()})
    refused(resp)
    assert resp.headers["WWW-Authenticate"] == "Signature"


MALFORMED = [
    ("duplicate keyId", ',keyId="hkey1"'),
    ("duplicate signature", ',signature="abc"'),
    ("unknown parameter", ',realm="x"'),
    ("empty element", ",,"),
    ("trailing garbage", ' x'),
    ("unterminated quote", ',headers="date'),
    ("no value", ",headers="),
]


@pytest.mark.parametrize("extra", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_header_is_400(gw, extra):
    target = "/h/x"
    headers = signed_headers(target, extra=extra)
    refused(get(gw, target, headers), 400)


def test_missing_required_parameters_are_400(gw):
    headers = signed_headers("/h/x")
    no_sig = headers["Authorization"].split(',signature=')[0]
    refused(get(gw, "/h/x", {**headers, "Authorization": no_sig}), 400)
    no_key = headers["Authorization"].replace('keyId="hkey1",', "")
    refused(get(gw, "/h/x", {**headers, "Authorization": no_key}), 400)


def _bodies(responses: list[requests.Response]) -> set[bytes]:
    return {resp.content for resp in responses}


def test_every_failure_answers_the_same_bytes(gw):
    target = "/h/x"
    good = signed_headers(target, signed=["(request-target)", "date", "x-a"],
                          extra_headers={"X-A": "1"})
    stale = http_date(time.time() - 60)
    future = http_date(time.time() + 60)
    cases = {
        "unknown key": signed_headers(target, key_id="nosuchkey"),
        "hmac not enabled": signed_headers(target, key_id="nohmac1"),
        "no secret": signed_headers(target, key_id="nosecret"),
        "wrong secret": signed_headers(target, secret="other"),
        "tampered header": {**good, "X-A": "2"},
        "tampered path": good,  # sent to another path below
        "unknown algorithm": {**good, "Authorization": good["Authorization"]
                              .replace("hmac-sha256", "foo")},
        "sha1 named, sha256 sent": {**good, "Authorization": good["Authorization"]
                                    .replace("hmac-sha256", "hmac-sha1")},
        "stale date": signed_headers(target, date=stale),
        "future date": signed_headers(target, date=future),
        "unparsable date": signed_headers(target, date="yesterday"),
        "bad base64": {**good, "Authorization": good["Authorization"]
                       .rsplit('signature="', 1)[0] + 'signature="%%zz"'},
    }
    answers = []
    for name, headers in cases.items():
        path = "/h/y" if name == "tampered path" else target
        resp = get(gw, path, headers)
        assert resp.status_code == 401, (name, resp.text)
        answers.append(resp)
    assert len(_bodies(answers)) == 1
    assert answers[0].json() == {"error": MESSAGE}
    assert all("WWW-Authenticate" not in resp.headers for resp in answers)


def test_missing_date_fails_even_without_a_skew(gw):
    target = "/noskew/x"
    headers = signed_headers(target, signed=["(request-target)"])
    del headers["Date"]
    refused(get(gw, target, headers))
    # without a skew an old date is fine, as in Tyk
    old = signed_headers(target, date="Mon, 02 Jan 2006 15:04:05 GMT")
    assert get(gw, target, old).status_code == 200


def test_query_is_covered_by_the_request_target(gw):
    headers = signed_headers("/h/x?amount=1", signed=["(request-target)", "date"])
    assert get(gw, "/h/x?amount=1", headers).status_code == 200
    refused(get(gw, "/h/x?amount=1000", headers))
    # a Tyk client signing the path alone: fine without a query ...
    path_only = signed_headers("/h/x", signed=["(request-target)", "date"])
    assert get(gw, "/h/x", path_only).status_code == 200
    # ... refused with one, unless the API accepts path-only targets
    refused(get(gw, "/h/x?amount=1", path_only))
    compat = signed_headers("/compat/x", signed=["(request-target)", "date"])
    assert get(gw, "/compat/x?amount=1", compat).status_code == 200


def test_method_is_covered(gw):
    headers = signed_headers("/h/x", signed=["(request-target)", "date"])
    refused(get(gw, "/h/x", headers, method="DELETE"))


def test_replayed_signature_is_refused(gw):
    target = "/replay/x"
    headers = signed_headers(target, signed=["(request-target)", "date"])
    assert get(gw, target, headers).status_code == 200
    refused(get(gw, target, headers))
    # a fresh signature (another date) is accepted
    time.sleep(1.05)
    again = signed_headers(target, signed=["(request-target)", "date"])
    assert get(gw, target, again).status_code == 200


def test_replay_is_not_guarded_where_it_is_off(gw):
    headers = signed_headers("/h/x")
    assert get(gw, "/h/x", headers).status_code == 200
    assert get(gw, "/h/x", headers).status_code == 200


# --------------------------------------------------------------------------- RSA


@pytest.fixture(scope="module")
def rsa_key(gw):
    admin = _admin(gw)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    resp = requests.post(gw.url("/tyk/certs?org_id=test-org"), data=pem,
                         headers=admin.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    cert_id = resp.json()["id"]
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ec_id = requests.post(gw.url("/tyk/certs?org_id=test-org"), data=ec_pem,
                          headers=admin.headers, timeout=10).json()["id"]
    apis = ("h",)
    admin.add_key("rsakey1", session(apis, enable_http_signature_validation=True,
                                     rsa_certificate_id=cert_id))
    admin.add_key("rsaoff1", session(apis, rsa_certificate_id=cert_id))
    admin.add_key("rsagone", session(apis, enable_http_signature_validation=True,
                                     rsa_certificate_id="test-org" + "0" * 64))
    admin.add_key("rsaecdsa", session(apis, enable_http_signature_validation=True,
                                      rsa_certificate_id=ec_id))
    return private


def test_rsa_signature(gw, rsa_key):
    target = "/h/rsa?x=1"
    headers = signed_headers(target, key_id="rsakey1", algorithm="rsa-sha256",
                             signed=["(request-target)", "date"], private_key=rsa_key)
    resp = get(gw, target, headers)
    assert resp.status_code == 200, resp.text
    refused(get(gw, "/h/rsa?x=2", headers))


def test_rsa_refusals_are_401_never_500(gw, rsa_key):
    target = "/h/rsa"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for key_id, private in (("rsaoff1", rsa_key), ("rsagone", rsa_key),
                            ("rsaecdsa", rsa_key), ("rsakey1", other),
                            ("hkey1", rsa_key)):
        headers = signed_headers(target, key_id=key_id, algorithm="rsa-sha256",
                                 private_key=private)
        resp = get(gw, target, headers)
        assert resp.status_code == 401, (key_id, resp.text)
        assert resp.json() == {"error": MESSAGE}


# --------------------------------------------------------------------------- body digests


def _digest_headers(target: str, body: bytes, name: str = "Digest",
                    value: str | None = None) -> dict[str, str]:
    import base64
    import hashlib

    if value is None:
        encoded = base64.b64encode(hashlib.sha256(body).digest()).decode()
        value = f"SHA-256={encoded}" if name == "Digest" else f"sha-256=:{encoded}:"
    return signed_headers(target, method="POST",
                          signed=["(request-target)", "date", name.lower()],
                          extra_headers={name: value})


@pytest.mark.parametrize("name", ["Digest", "Content-Digest"])
def test_signed_digest_is_checked_against_the_body(gw, name):
    body = b"amount=10&to=alice" * 1000
    headers = _digest_headers("/h/pay", body, name)
    resp = requests.post(gw.url("/h/pay"), data=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["body_length"] == len(body)
    # the same signed headers over another body: the upstream never gets it whole
    tampered = body.replace(b"alice", b"mallo")
    resp = requests.post(gw.url("/h/pay"), data=tampered, headers=headers, timeout=10)
    assert resp.status_code == 400, resp.text
    assert "does not match" in resp.json()["error"]


def test_unsigned_digest_is_not_a_signature_concern(gw):
    body = b"payload"
    headers = signed_headers("/h/pay", method="POST", signed=["(request-target)", "date"],
                             extra_headers={"Digest": "SHA-256=bm90LXRoZS1kaWdlc3Q="})
    resp = requests.post(gw.url("/h/pay"), data=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text


def test_a_changed_secret_takes_effect_at_once(gw):
    admin = _admin(gw)
    admin.add_key("rotating", session(("h",), hmac_enabled=True, hmac_string="first-secret"))
    assert get(gw, "/h/x", signed_headers("/h/x", key_id="rotating",
                                          secret="first-secret")).status_code == 200
    admin.update_key("rotating", session(("h",), hmac_enabled=True,
                                         hmac_string="second-secret"))
    refused(get(gw, "/h/x", signed_headers("/h/x", key_id="rotating", secret="first-secret")))
    assert get(gw, "/h/x", signed_headers("/h/x", key_id="rotating",
                                          secret="second-secret")).status_code == 200
