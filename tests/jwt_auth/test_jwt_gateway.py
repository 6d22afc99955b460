"""JWT authentication on a real gateway process, with tokens minted by PyJWT
and joserfc, on the memory store and a real redis-server.

One gateway per store kind serves every API of this module (one listen path
per setting under test); identities are fresh per test so tests do not see
each other's sessions.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jws as joserfc_jws
from joserfc.jwk import RSAKey

from .idp import b64, public_pem, rsa_key

ORG = "test-org"
HMAC_SECRET = b"a-shared-secret-long-enough-for-hs512-which-wants-64-bytes-of-key"
RSA = rsa_key()
OTHER_RSA = rsa_key()
EC256 = ec.generate_private_key(ec.SECP256R1())
EC384 = ec.generate_private_key(ec.SECP384R1())
EC521 = ec.generate_private_key(ec.SECP521R1())
ED = ed25519.Ed25519PrivateKey.generate()


def rights(*api_ids: str) -> dict[str, Any]:
    return {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids}


ALL_APIS = ("hs", "rs", "es", "ed", "pol", "scope", "kc", "perkey", "perkey-rsa", "strip",
            "claims", "client")


def policy(pid: str, *, rate: float = 1000, per: float = 60, quota: int = -1,
           apis: tuple[str, ...] = ALL_APIS, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "org_id": ORG, "rate": rate, "per": per, "quota_max": quota,
            "quota_renewal_rate": 3600, "access_rights": rights(*apis), **extra}


POLICIES = {
    "default": policy("default"),
    "gold": policy("gold", tags=["gold"]),
    "silver": policy("silver", tags=["silver"]),
    "read": policy("read", apis=("scope", "kc")),
    "write": policy("write", apis=("scope", "kc")),
    "limited": policy("limited", rate=3, per=60),
    "quota3": policy("quota3", quota=3),
    "other-org": {**policy("other-org"), "org_id": "someone-else"},
}


def jwt_api(make_api: Any, echo: Any, api_id: str, **fields: Any) -> dict[str, Any]:
    base = {"use_keyless": False, "enable_jwt": True, "jwt_default_policies": ["default"]}
    base.update(fields)
    return make_api(api_id, f"/{api_id}/", echo.base_url, **base)


@pytest.fixture(scope="module")
def gw(module_store: Any, module_gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    storage = module_store.config
    apis = [
        jwt_api(make_api, echo, "hs", jwt_signing_method="hmac", jwt_source=b64(HMAC_SECRET)),
        jwt_api(make_api, echo, "rs", jwt_signing_method="rsa", jwt_source=b64(public_pem(RSA)),
                jwt_expires_at_validation_skew=0),
        jwt_api(make_api, echo, "es", jwt_signing_method="ecdsa",
                jwt_source=b64(public_pem(EC256))),
        jwt_api(make_api, echo, "ed", jwt_signing_method="eddsa", jwt_source=b64(public_pem(ED))),
        jwt_api(make_api, echo, "pol", jwt_signing_method="rsa", jwt_source=b64(public_pem(RSA)),
                jwt_policy_field_name="pol", jwt_default_policies=[]),
        jwt_api(make_api, echo, "scope", jwt_signing_method="rsa",
                jwt_source=b64(public_pem(RSA)), jwt_policy_field_name="pol",
                jwt_scope_to_policy_mapping={"read": "read", "write": "write"}),
        jwt_api(make_api, echo, "kc", jwt_signing_method="rsa", jwt_source=b64(public_pem(RSA)),
                jwt_identity_base_field="preferred_username",
                scopes={"jwt": {"scope_claim_name": "realm_access.roles",
                                "scope_to_policy": {"reader": "read", "writer": "write"}}}),
        jwt_api(make_api, echo, "perkey", jwt_signing_method="hmac", jwt_default_policies=[]),
        jwt_api(make_api, echo, "perkey-rsa", jwt_signing_method="rsa",
                jwt_default_policies=[], jwt_skip_kid=True),
        jwt_api(make_api, echo, "strip", jwt_signing_method="rsa",
                jwt_source=b64(public_pem(RSA)), strip_auth_data=True,
                auth_configs={"jwt": {"use_param": True, "param_name": "jwt",
                                      "use_cookie": True, "cookie_name": "jwt"}}),
        jwt_api(make_api, echo, "claims", jwt_signing_method="rsa",
                jwt_source=b64(public_pem(RSA)), jwt_issuer=["https://issuer.test"],
                jwt_audience="api://claims", jwt_not_before_validation_skew=30,
                jwt_issued_at_validation_skew=30, jwt_expires_at_validation_skew=30),
        jwt_api(make_api, echo, "client", jwt_signing_method="rsa",
                jwt_source=b64(public_pem(RSA)), jwt_client_base_field="azp",
                jwt_default_policies=[]),
    ]
    gateway = module_gateway_factory(apis, start=False, storage=storage)
    (gateway.root / "policies.json").write_text(__import__("json").dumps(POLICIES))
    gateway.start()
    return gateway


def sub() -> str:
    return "user-" + uuid.uuid4().hex[:10]


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub(), "iat": now, "exp": now + 600, **extra}


def call(gw: Any, api: str, token: str | None, path: str = "/x",
         **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(gw.url(f"/{api}{path}"), headers=headers, timeout=10, **kwargs)


def upstream_headers(resp: requests.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in resp.json()["headers"]}


def admin(gw: Any, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, gw.url(path), json=body,
                            headers={"X-Tyk-Authorization": gw.secret}, timeout=10)


def session_id(identity: str) -> str:
    return ORG + hashlib.md5(identity.encode()).hexdigest()


# ---------------------------------------------------------------- the families


@pytest.mark.parametrize(("api", "key", "alg"), [
    ("hs", HMAC_SECRET, "HS256"), ("hs", HMAC_SECRET, "HS384"), ("hs", HMAC_SECRET, "HS512"),
    ("rs", RSA, "RS256"), ("rs", RSA, "RS384"), ("rs", RSA, "RS512"),
    ("rs", RSA, "PS256"), ("rs", RSA, "PS384"), ("rs", RSA, "PS512"),
    ("es", EC256, "ES256"), ("ed", ED, "EdDSA"),
])
def test_each_algorithm_of_the_family_is_accepted(gw, api, key, alg):
    token = jwt.encode(claims(), key, algorithm=alg)
    resp = call(gw, api, token)
    assert resp.status_code == 200, resp.text
    assert upstream_headers(resp)["authorization"] == f"Bearer {token}"


def test_ecdsa_api_accepts_p384_and_p521_keys(gateway_factory, make_api, echo):
    apis = [jwt_api(make_api, echo, "e3", jwt_signing_method="ecdsa",
                    jwt_source=b64(public_pem(EC384))),
            jwt_api(make_api, echo, "e5", jwt_signing_method="ecdsa",
                    jwt_source=b64(public_pem(EC521)))]
    gateway = gateway_factory(apis, start=False)
    (gateway.root / "policies.json").write_text(__import__("json").dumps(
        {"default": policy("default", apis=("e3", "e5"))}))
    gateway.start()
    assert call(gateway, "e3", jwt.encode(claims(), EC384, algorithm="ES384")).status_code == 200
    assert call(gateway, "e5", jwt.encode(claims(), EC521, algorithm="ES512")).status_code == 200
    # The curve belongs to the algorithm (tests/jwt_auth/test_keys.py): ES512 on P-384.
    assert call(gateway, "e3", jwt.encode(claims(), EC521, algorithm="ES512")).status_code == 403


def test_a_token_minted_by_joserfc_is_accepted(gw):
    key = RSAKey.import_key(RSA)
    payload = __import__("json").dumps(claims()).encode()
    token = joserfc_jws.serialize_compact({"alg": "PS384"}, payload, key, algorithms=["PS384"])
    assert call(gw, "rs", token).status_code == 200


@pytest.mark.parametrize(("api", "token_of"), [
    ("hs", lambda: jwt.encode(claims(), RSA, algorithm="RS256")),
    ("rs", lambda: jwt.encode(claims(), HMAC_SECRET, algorithm="HS256")),
    ("rs", lambda: jwt.encode(claims(), EC256, algorithm="ES256")),
    ("es", lambda: jwt.encode(claims(), RSA, algorithm="PS256")),
    ("ed", lambda: jwt.encode(claims(), EC256, algorithm="ES256")),
])
def test_an_algorithm_of_another_family_is_refused(gw, api, token_of):
    resp = call(gw, api, token_of())
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorized: Unexpected signing method"}


def _unsigned(alg: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        raw = __import__("json").dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims())}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("api", ["hs", "rs", "es", "ed"])
def test_alg_none_is_refused_in_any_spelling(gw, api, alg):
    resp = call(gw, api, _unsigned(alg))
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorized: Unexpected signing method"}


def test_the_rsa_public_key_used_as_an_hmac_secret_is_refused(gw):
    # The classic confusion: HS256 "signed" with the RSA API's public key PEM.
    pem = public_pem(RSA)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(
        __import__("json").dumps(claims()).encode()).rstrip(b"=")
    mac = __import__("hmac").new(pem, header + b"." + body, "sha256").digest()
    token = (header + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    resp = call(gw, "rs", token)
    assert resp.status_code == 403
    assert resp.json()["error"] == "Key not authorized: Unexpected signing method"


# ---------------------------------------------------------------- refusals


def test_no_token_is_400_authorization_field_missing(gw):
    resp = call(gw, "rs", None)
    assert resp.status_code == 400
    assert resp.json() == {"error": "Authorization field missing"}


@pytest.mark.parametrize("token", [
    "not-a-jwt", "a.b", "a.b.c.d", "....", "eyJhbGciOiJSUzI1NiJ9.e30.!!!",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0=.c2ln",  # padding
])
def test_malformed_tokens_are_403(gw, token):
    resp = call(gw, "rs", token)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorized"}


def test_wrong_key_and_tampered_payload_are_403(gw):
    assert call(gw, "rs", jwt.encode(claims(), OTHER_RSA, algorithm="RS256")).status_code == 403
    token = jwt.encode(claims(), RSA, algorithm="RS256")
    head, _body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(
        __import__("json").dumps(claims(sub="admin")).encode()).rstrip(b"=").decode()
    resp = call(gw, "rs", f"{head}.{forged}.{sig}")
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorized"}


def test_an_oversized_token_is_refused(gw):
    token = jwt.encode(claims(padding="x" * 9_500), RSA, algorithm="RS256")
    resp = call(gw, "rs", token)
    assert resp.status_code == 403


def test_keys_named_in_the_token_header_are_never_trusted(gw):
    # Signed by the attacker's key, which the header embeds (jwk) or points to (jku/x5u).
    attacker = rsa_key()
    jwk = __import__("json").loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    for headers in ({"jwk": jwk}, {"jku": "http://127.0.0.1:1/jwks"},
                    {"x5u": "http://127.0.0.1:1/cert.pem"}):
        token = jwt.encode(claims(), attacker, algorithm="RS256", headers=headers)
        assert call(gw, "rs", token).status_code == 403


# ---------------------------------------------------------------- time claims


@pytest.mark.parametrize(("field", "offset", "message"), [
    ("exp", -10, "token has expired"),
    ("nbf", 120, "token is not valid yet"),
    ("iat", 120, "token used before issued"),
])
def test_time_claims_are_401_with_tyks_messages(gw, field, offset, message):
    token = jwt.encode(claims(**{field: int(time.time()) + offset}), RSA, algorithm="RS256")
    resp = call(gw, "rs", token)
    assert resp.status_code == 401
    assert resp.json() == {"error": f"Key not authorized: {message}"}


def test_when_several_time_claims_fail_the_last_checked_is_said(gw):
    now = int(time.time())
    token = jwt.encode(claims(exp=now - 10, nbf=now + 100), RSA, algorithm="RS256")
    assert call(gw, "rs", token).json() == {"error": "Key not authorized: token is not valid yet"}


def test_skews_allow_that_much_clock_difference(gw):
    now = int(time.time())
    iss = {"iss": "https://issuer.test", "aud": "api://claims"}
    within = jwt.encode(claims(exp=now - 10, nbf=now + 20, iat=now + 20, **iss), RSA,
                        algorithm="RS256")
    resp = call(gw, "claims", within)
    assert resp.status_code == 200, resp.text
    beyond = jwt.encode(claims(exp=now - 40, **iss), RSA, algorithm="RS256")
    assert call(gw, "claims", beyond).status_code == 401


def test_a_non_numeric_time_claim_is_refused(gw):
    token = jwt.encode({**claims(), "exp": "tomorrow"}, RSA, algorithm="RS256")
    assert call(gw, "rs", token).status_code == 403


def test_a_cached_token_still_expires_on_time(gw):
    token = jwt.encode(claims(exp=int(time.time()) + 2), RSA, algorithm="RS256")
    assert call(gw, "rs", token).status_code == 200
    assert call(gw, "rs", token).status_code == 200  # served from the verified-token cache
    time.sleep(3.1)
    resp = call(gw, "rs", token)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Key not authorized: token has expired"}


# ---------------------------------------------------------------- iss / aud


@pytest.mark.parametrize(("extra", "message"), [
    ({"aud": "api://claims"}, "issuer claim is required but not present in token"),
    ({"iss": "https://evil.test", "aud": "api://claims"},
     "invalid issuer claim: https://evil.test"),
    ({"iss": "https://issuer.test"}, "audience claim is required but not present in token"),
    ({"iss": "https://issuer.test", "aud": ["a", "b"]},
     "no matching audience found in token: [a b]"),
])
def test_issuer_and_audience_are_checked_when_configured(gw, extra, message):
    resp = call(gw, "claims", jwt.encode(claims(**extra), RSA, algorithm="RS256"))
    assert resp.status_code == 401
    assert resp.json() == {"error": f"Key not authorized: {message}"}


def test_an_audience_array_containing_the_configured_one_passes(gw):
    token = jwt.encode(claims(iss="https://issuer.test", aud=["other", "api://claims"]), RSA,
                       algorithm="RS256")
    assert call(gw, "claims", token).status_code == 200


# ---------------------------------------------------------------- sessions from tokens


def test_the_identity_session_is_tyks(gw):
    identity = sub()
    exp = int(time.time()) + 900
    token = jwt.encode(claims(sub=identity, exp=exp), RSA, algorithm="RS256")
    assert call(gw, "rs", token).status_code == 200
    resp = admin(gw, "GET", f"/tyk/keys/{session_id(identity)}")
    assert resp.status_code == 200, resp.text
    stored = resp.json()
    assert stored["meta_data"] == {"TykJWTSessionID": session_id(identity)}
    assert stored["alias"] == identity
    assert stored["expires"] == exp
    assert stored["apply_policies"] == ["default"]
    # A later token's exp extends the session.
    later = jwt.encode(claims(sub=identity, exp=exp + 500), RSA, algorithm="RS256")
    assert call(gw, "rs", later).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()["expires"] == exp + 500


def test_rate_limit_follows_the_identity_across_tokens(gw):
    identity = sub()
    api = "pol"
    tokens = [jwt.encode(claims(sub=identity, pol="limited", jti=str(n)), RSA,
                         algorithm="RS256") for n in range(4)]
    statuses = [call(gw, api, token).status_code for token in tokens]
    assert statuses == [200, 200, 200, 429]
    # Another identity has its own bucket.
    other = jwt.encode(claims(pol="limited"), RSA, algorithm="RS256")
    assert call(gw, api, other).status_code == 200


def test_policy_claim_picks_and_later_replaces_the_policy(gw):
    identity = sub()
    first = jwt.encode(claims(sub=identity, pol="gold"), RSA, algorithm="RS256")
    assert call(gw, "pol", first).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()[
        "apply_policies"] == ["gold"]
    second = jwt.encode(claims(sub=identity, pol="silver"), RSA, algorithm="RS256")
    assert call(gw, "pol", second).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()[
        "apply_policies"] == ["silver"]


@pytest.mark.parametrize("pol", ["no-such-policy", "other-org"])
def test_an_unknown_or_foreign_policy_is_refused(gw, pol):
    resp = call(gw, "pol", jwt.encode(claims(pol=pol), RSA, algorithm="RS256"))
    assert resp.status_code == 403
    assert resp.json() == {"error": "key not authorized: no matching policy"}


def test_no_policy_at_all_is_refused(gw):
    resp = call(gw, "pol", jwt.encode(claims(), RSA, algorithm="RS256"))
    assert resp.status_code == 403
    assert resp.json() == {"error": "key not authorized: no matching policy found"}


@pytest.mark.parametrize(("token_claims", "message"), [
    ({"sub": ""}, "found an empty user ID in sub claim"),
    ({"sub": None}, "no suitable claims for user ID were found"),
])
def test_identity_errors_are_403_with_tyks_text(gw, token_claims, message):
    body = {k: v for k, v in {**claims(), **token_claims}.items() if v is not None}
    resp = call(gw, "rs", jwt.encode(body, RSA, algorithm="RS256"))
    assert resp.status_code == 403
    assert resp.json() == {"error": message}


def test_scopes_map_to_policies_and_drop_the_defaults(gw):
    identity = sub()
    token = jwt.encode(claims(sub=identity, scope="read write unknown"), RSA, algorithm="RS256")
    assert call(gw, "scope", token).status_code == 200
    stored = admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()
    assert sorted(stored["apply_policies"]) == ["read", "write"]
    # Array form, and a base policy from the policy claim kept beside the mapped ones.
    identity = sub()
    token = jwt.encode(claims(sub=identity, pol="gold", scope=["read"]), RSA, algorithm="RS256")
    assert call(gw, "scope", token).status_code == 200
    stored = admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()
    assert sorted(stored["apply_policies"]) == ["gold", "read"]


def test_a_scope_mapping_to_nothing_is_refused(gw):
    resp = call(gw, "scope", jwt.encode(claims(scope="nothing"), RSA, algorithm="RS256"))
    assert resp.status_code == 403
    assert resp.json() == {"error": "key not authorized: no matching policy found in scope claim"}


def test_keycloak_roles_in_a_nested_claim_map_to_policies(gw):
    user = "alice-" + uuid.uuid4().hex[:6]
    token = jwt.encode(claims(preferred_username=user, azp="web-app",
                              realm_access={"roles": ["reader", "offline_access"]}),
                       RSA, algorithm="RS256")
    assert call(gw, "kc", token).status_code == 200
    stored = admin(gw, "GET", f"/tyk/keys/{session_id(user)}").json()
    assert stored["apply_policies"] == ["read"]
    assert stored["alias"] == user
    # The mapped policy grants kc but not rs-only APIs: access follows the policy.
    writer = jwt.encode(claims(preferred_username=user, realm_access={"roles": ["writer"]}),
                        RSA, algorithm="RS256")
    assert call(gw, "kc", writer).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(user)}").json()[
        "apply_policies"] == ["write"]


def test_client_base_field_takes_the_policy_of_the_client_key(gw):
    client = "client-" + uuid.uuid4().hex[:8]
    resp = admin(gw, "POST", f"/tyk/keys/{client}",
                 {"org_id": ORG, "apply_policies": ["gold"], "access_rights": {}})
    assert resp.status_code == 200, resp.text
    identity = sub()
    token = jwt.encode(claims(sub=identity, azp=client), RSA, algorithm="RS256")
    assert call(gw, "client", token).status_code == 200, call(gw, "client", token).text
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()[
        "apply_policies"] == ["gold"]


def test_oauth_client_id_comes_from_the_idp_claims(gw):
    identity = sub()
    token = jwt.encode(claims(sub=identity, cid="okta-client"), RSA, algorithm="RS256")
    assert call(gw, "rs", token).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()[
        "oauth_client_id"] == "okta-client"


def test_deleting_the_identity_session_recreates_it_from_the_next_token(gw):
    identity = sub()
    token = jwt.encode(claims(sub=identity), RSA, algorithm="RS256")
    assert call(gw, "rs", token).status_code == 200
    assert admin(gw, "DELETE", f"/tyk/keys/{session_id(identity)}").status_code == 200
    assert call(gw, "rs", token).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").status_code == 200



def test_a_new_token_of_a_known_identity_sees_what_changed_since_its_last_token(gw):
    """A new token whose identity, session and inputs match the last one accepted
    skips reconciling the session; anything changed in between is seen."""
    identity = sub()
    first = jwt.encode(claims(sub=identity), RSA, algorithm="RS256")
    assert call(gw, "rs", first).status_code == 200
    # An operator edits the session: the next new token restores the default policy.
    stored = admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()
    resp = admin(gw, "PUT", f"/tyk/keys/{session_id(identity)}",
                 {**stored, "apply_policies": ["gold"]})
    assert resp.status_code == 200, resp.text
    second = jwt.encode(claims(sub=identity, jti="2"), RSA, algorithm="RS256")
    assert call(gw, "rs", second).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(identity)}").json()[
        "apply_policies"] == ["default"]
    # The policy a token names is deleted: the next new token is refused.
    pid = "temp-" + uuid.uuid4().hex[:8]
    resp = admin(gw, "POST", "/tyk/policies", policy(pid))
    assert resp.status_code == 200, resp.text
    user = sub()
    assert call(gw, "pol", jwt.encode(claims(sub=user, pol=pid), RSA,
                                      algorithm="RS256")).status_code == 200
    assert call(gw, "pol", jwt.encode(claims(sub=user, pol=pid, jti="2"), RSA,
                                      algorithm="RS256")).status_code == 200
    assert admin(gw, "DELETE", f"/tyk/policies/{pid}").status_code == 200
    resp = call(gw, "pol", jwt.encode(claims(sub=user, pol=pid, jti="3"), RSA,
                                      algorithm="RS256"))
    assert resp.status_code == 403
    assert resp.json() == {"error": "key not authorized: no matching policy"}
    # Other scopes in the next token: its session follows them.
    user = sub()
    assert call(gw, "scope", jwt.encode(claims(sub=user, scope="read"), RSA,
                                        algorithm="RS256")).status_code == 200
    assert call(gw, "scope", jwt.encode(claims(sub=user, scope="read", jti="2"), RSA,
                                        algorithm="RS256")).status_code == 200
    assert call(gw, "scope", jwt.encode(claims(sub=user, scope="write", jti="3"), RSA,
                                        algorithm="RS256")).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(user)}").json()[
        "apply_policies"] == ["write"]
    # Another client id in the next token: the session follows it.
    user = sub()
    for jti, cid in (("1", "client-a"), ("2", "client-a"), ("3", "client-b")):
        token = jwt.encode(claims(sub=user, cid=cid, jti=jti), RSA, algorithm="RS256")
        assert call(gw, "rs", token).status_code == 200
    assert admin(gw, "GET", f"/tyk/keys/{session_id(user)}").json()[
        "oauth_client_id"] == "client-b"


# ---------------------------------------------------------------- per-key mode


def test_per_key_mode_kid_names_the_key_and_its_secret_verifies(gw):
    key_id = "perkey-" + uuid.uuid4().hex[:8]
    secret = "the-hmac-secret-of-key-" + key_id
    resp = admin(gw, "POST", f"/tyk/keys/{key_id}",
                 {"org_id": ORG, "access_rights": rights("perkey"),
                  "jwt_data": {"secret": secret}})
    assert resp.status_code == 200, resp.text
    token = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": key_id})
    assert call(gw, "perkey", token).status_code == 200
    wrong = jwt.encode(claims(), "not-the-secret-but-long-enough-for-pyjwt", algorithm="HS256",
                       headers={"kid": key_id})
    assert call(gw, "perkey", wrong).status_code == 403
    unknown = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": "no-such-key"})
    resp = call(gw, "perkey", unknown)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorized"}
    # Changing the key's secret stops the token at once, cached or not.
    resp = admin(gw, "PUT", f"/tyk/keys/{key_id}",
                 {"org_id": ORG, "access_rights": rights("perkey"),
                  "jwt_data": {"secret": "rotated"}})
    assert resp.status_code == 200, resp.text
    assert call(gw, "perkey", token).status_code == 403


def test_per_key_mode_without_kid_uses_the_identity_claim(gw):
    key_id = "sub-key-" + uuid.uuid4().hex[:8]
    resp = admin(gw, "POST", f"/tyk/keys/{key_id}",
                 {"org_id": ORG, "access_rights": rights("perkey-rsa"),
                  "jwt_data": {"secret": public_pem(RSA).decode()}})
    assert resp.status_code == 200, resp.text
    # jwt_skip_kid: the kid header is ignored, sub names the key.
    token = jwt.encode(claims(sub=key_id), RSA, algorithm="RS256", headers={"kid": "ignored"})
    assert call(gw, "perkey-rsa", token).status_code == 200


def test_per_key_mode_identity_error_is_404(gw):
    token = jwt.encode({"exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    resp = call(gw, "perkey", token)
    assert resp.status_code == 404
    assert resp.json() == {"error": "no suitable claims for user ID were found"}


# ---------------------------------------------------------------- where the token is read


def test_strip_auth_data_and_param_and_cookie(gw):
    token = jwt.encode(claims(), RSA, algorithm="RS256")
    resp = call(gw, "strip", token)
    assert resp.status_code == 200
    assert "authorization" not in upstream_headers(resp)
    resp = requests.get(gw.url(f"/strip/x?jwt={token}&keep=1"), timeout=10)
    assert resp.status_code == 200
    assert resp.json()["query"] == "keep=1"
    resp = requests.get(gw.url("/strip/x"), cookies={"jwt": token, "other": "1"}, timeout=10)
    assert resp.status_code == 200
    assert upstream_headers(resp).get("cookie") == "other=1"


def test_access_rights_follow_the_policy(gw):
    # "read" grants scope and kc only.
    identity = sub()
    token = jwt.encode(claims(sub=identity, pol="read"), RSA, algorithm="RS256")
    assert call(gw, "pol", token).status_code == 403
