"""External OAuth with JWT validation, on a real gateway: tokens of the
authlib authorization server checked against its JWKS (through the gateway's
JWKS cache) or a static key, and every way a token can be wrong -- on the
memory store and on Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.auth.oauth_provider import Provider

from .conftest import OAuthGateway, b64, jwt_api, unique

HMAC_SECRET = "a shared secret of the authorization server"
NOT_VERIFIED = "token verification failed: "


@pytest.fixture(scope="module")
def gw(oauth_gateway: Any, provider: Provider, echo: Any, free_port: Any) -> OAuthGateway:
    pem = provider.key.as_pem(private=False)
    target = echo.base_url
    apis = [
        jwt_api("jwks", target, provider.jwks_url),
        jwt_api("jwksb64", target, b64(provider.jwks_url)),
        jwt_api("pem", target, b64(pem)),
        jwt_api("hmac", target, b64(HMAC_SECRET), signing_method="hmac"),
        jwt_api("skew", target, b64(pem), jwt={"expires_at_validation_skew": 60,
                                               "not_before_validation_skew": 60,
                                               "issued_at_validation_skew": 60}),
        jwt_api("email", target, b64(pem), jwt={"identity_base_field": "email"}),
        jwt_api("nojwks", target, f"http://127.0.0.1:{free_port()}/jwks"),
    ]
    return oauth_gateway(apis)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub: str = "", **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub or unique("user"), "iat": now, "exp": now + 300, **more}


def rs256(key: RSAKey, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, payload, key)


def by_hand(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWS built without a library (for what libraries refuse to make)."""
    signing_input = (b64url(json.dumps(header).encode()) + "."
                     + b64url(json.dumps(payload).encode()))
    mac = b"" if secret is None else hmac.digest(secret, signing_input.encode(), hashlib.sha256)
    return signing_input + "." + b64url(mac)


def error(resp: Any) -> str:
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()["error"]


# -- tokens that pass -----------------------------------------------------------------------


def test_a_jwt_from_the_token_endpoint_passes_through_the_jwks(gw, provider):
    client = provider.client()
    provider.jwt_tokens = True
    try:
        session = OAuth2Session(client.client_id, client.client_secret)
        token = session.fetch_token(provider.token_url, grant_type="client_credentials")
    finally:
        provider.jwt_tokens = False
    assert token["access_token"].count(".") == 2
    for api_id in ("jwks", "jwksb64"):
        resp = session.get(gw.url(f"/{api_id}/hello"), timeout=15)
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"] == "/hello"


def test_the_jwks_is_fetched_once_for_many_tokens(gw, provider):
    assert gw.get("jwks", provider.issue(unique("first"), jwt=True)).status_code == 200
    fetched = provider.calls["/jwks"]
    assert fetched >= 1
    for _ in range(5):
        for api_id in ("jwks", "jwksb64"):
            assert gw.get(api_id, provider.issue(unique("many"), jwt=True)).status_code == 200
    # The gateway's JWKS cache answers: fetched once when the APIs loaded
    # (shared by both naming the URL), never per token.
    assert provider.calls["/jwks"] == fetched


def test_a_static_public_key_and_an_hmac_secret(gw, provider):
    assert gw.get("pem", provider.issue(unique("pem"), jwt=True)).status_code == 200
    token = by_hand({"alg": "HS256", "typ": "JWT"}, claims(), HMAC_SECRET.encode())
    assert gw.get("hmac", token).status_code == 200


def test_no_introspection_call_is_made_for_jwts(gw, provider):
    before = sum(count for path, count in provider.calls.items() if path != "/jwks")
    assert gw.get("pem", provider.issue(unique("local"), jwt=True)).status_code == 200
    assert sum(count for path, count in provider.calls.items() if path != "/jwks") == before


# -- tokens that do not ----------------------------------------------------------------------


def test_a_bad_signature_is_401(gw, provider):
    impostor = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid}, private=True)
    token = rs256(impostor, claims())
    for api_id in ("jwks", "pem"):
        resp = gw.get(api_id, token)
        assert (resp.status_code, error(resp)) == (401, NOT_VERIFIED + "signature is invalid")
    good = provider.issue(unique("tamper"), jwt=True)
    head, body, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "=="))
    tampered["sub"] = "admin"
    forged = ".".join((head, b64url(json.dumps(tampered).encode()), signature))
    assert gw.get("jwks", forged).status_code == 401


def test_expired_and_not_yet_valid_tokens_are_401_with_tyks_messages(gw, provider):
    now = int(time.time())
    expired = rs256(provider.key, claims(exp=now - 10))
    resp = gw.get("pem", expired)
    assert (resp.status_code, error(resp)) == (401, "key not authorized: token has expired")
    early = rs256(provider.key, claims(nbf=now + 30))
    resp = gw.get("pem", early)
    assert (resp.status_code, error(resp)) == (401, "key not authorized: token is not valid yet")
    future = rs256(provider.key, claims(iat=now + 30))
    resp = gw.get("pem", future)
    assert (resp.status_code, error(resp)) == (401, "key not authorized: token used before issued")
    # within the configured skews they pass
    for token in (expired, early, future):
        assert gw.get("skew", token).status_code == 200


def test_a_token_expiring_while_cached_stops_on_time(gw, provider):
    token = rs256(provider.key, claims(exp=int(time.time()) + 2))
    assert gw.get("pem", token).status_code == 200
    time.sleep(2.2)
    resp = gw.get("pem", token)
    assert (resp.status_code, error(resp)) == (401, "key not authorized: token has expired")


@pytest.mark.parametrize("api_id", ["jwks", "pem"])
def test_alg_none_and_other_families_are_refused_before_any_key(gw, provider, api_id):
    unexpected = NOT_VERIFIED + "unexpected signing method"
    payload = claims()
    tokens = [
        by_hand({"alg": "none", "kid": provider.key.kid}, payload, None),
        by_hand({"alg": "None", "kid": provider.key.kid}, payload, None),
        by_hand({"alg": "HS256", "kid": provider.key.kid}, payload, HMAC_SECRET.encode()),
        # the RS/HS confusion: the public key as the HMAC secret
        by_hand({"alg": "HS256", "kid": provider.key.kid}, payload,
                provider.key.as_pem(private=False)),
    ]
    for token in tokens:
        resp = gw.get(api_id, token)
        assert (resp.status_code, error(resp)) == (401, unexpected), token


def test_an_rsa_token_is_refused_by_the_hmac_api(gw, provider):
    resp = gw.get("hmac", provider.issue(unique("rsa"), jwt=True))
    assert (resp.status_code, error(resp)) == (401, NOT_VERIFIED + "unexpected signing method")


def test_kid_problems_against_a_jwks(gw, provider):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "not-published"}, private=True)
    resp = gw.get("jwks", rs256(stranger, claims()))
    assert resp.status_code == 401
    assert error(resp) == (NOT_VERIFIED + "no key of the authorization server has the "
                                          "token's kid")
    no_kid = jwt.encode({"alg": "RS256"}, claims(), provider.key)
    resp = gw.get("jwks", no_kid)
    assert (resp.status_code, error(resp)) == (401, NOT_VERIFIED + "the token names no key (kid)")
    assert gw.get("pem", no_kid).status_code == 200  # a static key needs no kid


@pytest.mark.parametrize("token", ["abc", "a.b.c", "e30.e30.", "x" * 13000])
def test_malformed_tokens_are_401(gw, token):
    resp = gw.get("pem", token)
    assert resp.status_code == 401
    assert error(resp).startswith(NOT_VERIFIED + "token is malformed")


def test_a_non_numeric_time_claim_is_malformed(gw, provider):
    resp = gw.get("pem", rs256(provider.key, claims(exp="tomorrow")))
    assert resp.status_code == 401
    assert error(resp) == NOT_VERIFIED + "token is malformed: exp is not a number"


def test_an_unreachable_jwks_is_502(gw, provider):
    resp = gw.get("nojwks", provider.issue(unique("down"), jwt=True))
    assert resp.status_code == 502
    assert error(resp) == ("access token validation failed: the authorization server's keys "
                           "(JWKS) cannot be fetched")


# -- sessions by identity ------------------------------------------------------------------


def test_a_preprovisioned_identity_key_gives_its_rate_limit(gw, provider):
    identity = unique("erin")
    gw.provision(identity, ("pem",), rate=2, per=60, allowance=2)
    statuses = [gw.get("pem", provider.issue(identity, jwt=True)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_identity_comes_from_identity_base_field_else_sub(gw, provider):
    email = unique("frank") + "@example.test"
    gw.provision(email, ("email",), rate=1, per=60, allowance=1)
    token = rs256(provider.key, claims(email=email))
    assert gw.get("email", token).status_code == 200
    assert gw.get("email", token).status_code == 429
    assert gw.get("email", rs256(provider.key, claims())).status_code == 200  # sub
    resp = gw.get("email", rs256(provider.key, {"exp": int(time.time()) + 60}))
    assert (resp.status_code, error(resp)) == (403, "no suitable claims for user ID were found")
