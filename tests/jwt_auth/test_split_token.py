"""The split-token flow end to end: a real gateway, a local IdP minting RS256
JWTs for client credentials, the memory store and a real redis-server.

The client gets only the JWT's signature; the gateway keeps the JWT under a
key named by it and sends the whole JWT upstream.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from fastgate.apidef import parse_api_definition
from fastgate.config import ConfigError

from .idp import TokenServer, public_pem, start_token_server

ORG = "test-org"


def rights(*api_ids: str) -> dict[str, Any]:
    return {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids}


POLICIES = {
    "sp": {"id": "sp", "org_id": ORG, "rate": 1000, "per": 60, "quota_max": -1,
           "access_rights": rights("split", "tykstyle")},
    "three": {"id": "three", "org_id": ORG, "rate": 3, "per": 60, "quota_max": -1,
              "access_rights": rights("limited")},
}


@pytest.fixture(scope="module")
def idp() -> Iterator[TokenServer]:
    server = start_token_server()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def normal_idp(idp: TokenServer) -> None:
    idp.status, idp.delay, idp.body, idp.lifetime = 0, 0.0, None, 600


def api_definition(api_id: str, listen_path: str, target: str, **fields: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "api_id": api_id, "name": api_id, "org_id": ORG, "use_keyless": True,
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    api.update(fields)
    return api


def split_api(api_id: str, target: str, idp_url: str, **split: Any) -> dict[str, Any]:
    section = {"enabled": True, "idp_token_url": idp_url, **split}
    return api_definition(api_id, f"/{api_id}/", target, use_keyless=False,
                          use_standard_auth=True, split_token=section)


@pytest.fixture(scope="module")
def gw(module_store: Any, module_gateway_factory: Any, echo: Any, idp: TokenServer,
       free_port: Any) -> Any:
    storage = module_store.config
    closed = f"http://127.0.0.1:{free_port()}/token"
    apis = [
        split_api("split", echo.base_url, idp.url, apply_policies=["sp"]),
        split_api("open", echo.base_url, idp.url, token_path="/oauth/token"),
        split_api("limited", echo.base_url, idp.url, apply_policies=["three"]),
        split_api("slow", echo.base_url, idp.url, timeout=0.5),
        split_api("down", echo.base_url, closed),
        # Tyk's way: an auth-token API and a global header from the key's metadata.
        api_definition("tykstyle", "/tykstyle/", echo.base_url, use_keyless=False,
                       use_standard_auth=True, version_data={
                           "not_versioned": True, "versions": {"Default": {
                               "name": "Default",
                               "global_headers": {"Authorization": "Bearer $tyk_meta.jwt",
                                                  "X-Missing": "[$tyk_meta.nothing]"}}}}),
    ]
    gateway = module_gateway_factory(apis, start=False, storage=storage)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    gateway.store = module_store
    return gateway


def get_token(gw: Any, api: str, client: tuple[str, str], *, path: str = "/token",
              basic: bool = False) -> requests.Response:
    form = {"grant_type": "client_credentials"}
    auth = None
    if basic:
        auth = client
    else:
        form.update(client_id=client[0], client_secret=client[1])
    return requests.post(gw.url(f"/{api}{path}"), data=form, auth=auth, timeout=10)


def upstream_headers(resp: requests.Response) -> list[tuple[str, str]]:
    return [(name.lower(), value) for name, value in resp.json()["headers"]]


def call(gw: Any, api: str, token: str) -> requests.Response:
    return requests.get(gw.url(f"/{api}/x"), headers={"Authorization": token}, timeout=10)


def test_the_client_gets_only_the_signature_and_upstream_gets_the_jwt(gw, idp):
    client = idp.client()
    resp = get_token(gw, "split", client)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    grant = resp.json()
    opaque = grant["access_token"]
    assert "." not in opaque
    # The IdP's answer, less the refresh token (it would hand out a whole JWT).
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 600
    assert grant["scope"] == "read"
    assert "refresh_token" not in grant and "refresh_expires_in" not in grant
    # The IdP got the client's form as sent.
    content_type, _authorization, body = idp.received[-1]
    assert content_type == "application/x-www-form-urlencoded"
    assert f"client_id={client[0]}".encode() in body

    proxied = call(gw, "split", opaque)
    assert proxied.status_code == 200, proxied.text
    sent = [value for name, value in upstream_headers(proxied) if name == "authorization"]
    assert len(sent) == 1 and sent[0].startswith("Bearer ")
    full = sent[0].removeprefix("Bearer ")
    assert full.rsplit(".", 1)[1] == opaque
    claims = jwt.decode(full, public_pem(idp.key), algorithms=["RS256"])
    assert claims["sub"] == client[0]


def test_the_key_is_named_by_the_signature_and_expires_with_the_jwt(gw, idp):
    resp = get_token(gw, "split", idp.client())
    opaque = resp.json()["access_token"]
    key = requests.get(gw.url(f"/tyk/keys/{opaque}"), timeout=10,
                       headers={"X-Tyk-Authorization": gw.secret})
    assert key.status_code == 200, key.text
    session = key.json()
    full = session["meta_data"]["jwt"]
    exp = jwt.decode(full, options={"verify_signature": False})["exp"]
    assert session["expires"] == exp
    assert session["apply_policies"] == ["sp"]
    assert session["alias"].startswith("client-")
    if gw.store.kind == "redis":
        # hash_keys is on: the signature itself never reaches the store, and
        # the record's TTL ends with the JWT.
        client = gw.store.redis.client()
        names = [name.decode() for name in client.keys("*")]
        assert not any(opaque in name for name in names)
        ttls = [client.ttl(name) for name in names if name.startswith("apikey-")
                and full.encode() in (client.get(name) or b"")]
        assert len(ttls) == 1 and 590 <= ttls[0] <= 602


def test_basic_client_authentication_is_forwarded(gw, idp):
    resp = get_token(gw, "split", idp.client(), basic=True)
    assert resp.status_code == 200, resp.text
    assert idp.received[-1][1].startswith("Basic ")
    assert call(gw, "split", resp.json()["access_token"]).status_code == 200


def test_the_idps_refusal_is_passed_through(gw, idp):
    resp = get_token(gw, "split", ("client-nobody", "wrong"))
    assert resp.status_code == 401
    assert resp.json() == {"error": "invalid_client", "error_description": "bad credentials"}
    bad_grant = requests.post(gw.url("/split/token"), data={"grant_type": "password"},
                              timeout=10)
    assert bad_grant.status_code == 400
    assert bad_grant.json() == {"error": "unsupported_grant_type"}


def test_an_unusable_idp_is_a_502(gw, idp):
    idp.status = 500
    resp = get_token(gw, "split", idp.client())
    assert resp.status_code == 502
    assert "answered 500" in resp.json()["error"]
    idp.status = 0
    idp.body = json.dumps({"access_token": "opaque-not-a-jwt"}).encode()
    resp = get_token(gw, "split", idp.client())
    assert resp.status_code == 502
    assert "no JWT access_token" in resp.json()["error"]
    idp.body = b"<html>"
    assert get_token(gw, "split", idp.client()).status_code == 502
    assert get_token(gw, "down", idp.client()).status_code == 502


def test_a_slow_idp_is_cut_at_the_timeout_and_others_are_served(gw, idp):
    idp.delay = 3
    started = time.monotonic()
    resp = get_token(gw, "slow", idp.client())
    assert resp.status_code == 502
    assert time.monotonic() - started < 2.5


def test_other_methods_on_the_token_path_get_405(gw):
    resp = requests.get(gw.url("/split/token"), timeout=10)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    # The token path is exact: anything else under the API needs a key.
    assert requests.post(gw.url("/split/token/x"), timeout=10).status_code == 401


def test_a_token_path_of_ones_own(gw, idp):
    resp = get_token(gw, "open", idp.client(), path="/oauth/token")
    assert resp.status_code == 200, resp.text
    opaque = resp.json()["access_token"]
    # No policies named: the key reaches this API only.
    assert call(gw, "open", opaque).status_code == 200
    assert call(gw, "split", opaque).status_code == 403


def test_the_signature_is_the_only_credential(gw, idp):
    resp = get_token(gw, "split", idp.client())
    opaque = resp.json()["access_token"]
    assert call(gw, "split", opaque[:-2] + ("AA" if opaque[-2:] != "AA" else "BB")) \
        .status_code == 403
    assert call(gw, "split", "").status_code == 401


def test_the_key_expires_with_the_jwt(gw, idp):
    # exp is whole seconds (iat + lifetime, iat truncated): a lifetime of 1 s
    # can leave a few milliseconds, so give the first call 2 to 3 s.
    idp.lifetime = 3
    resp = get_token(gw, "split", idp.client())
    opaque = resp.json()["access_token"]
    assert call(gw, "split", opaque).status_code == 200
    time.sleep(4.2)
    assert call(gw, "split", opaque).status_code in (401, 403)


def test_the_policys_rate_limit_holds_for_the_split_key(gw, idp):
    opaque = get_token(gw, "limited", idp.client()).json()["access_token"]
    codes = [call(gw, "limited", opaque).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_tyks_way_a_global_header_from_the_keys_metadata(gw, idp):
    opaque = get_token(gw, "split", idp.client()).json()["access_token"]
    resp = call(gw, "tykstyle", opaque)
    assert resp.status_code == 200, resp.text
    headers = upstream_headers(resp)
    sent = [value for name, value in headers if name == "authorization"]
    assert len(sent) == 1
    assert sent[0].startswith("Bearer ey") and sent[0].endswith("." + opaque)
    # A variable with no value is "", as in Tyk.
    assert ("x-missing", "[]") in headers


# ---------------------------------------------------------------------------
# The section, read when the definition loads
# ---------------------------------------------------------------------------


def parse(**split: Any) -> Any:
    return parse_api_definition(split_api("a", "http://127.0.0.1:1", "http://idp/token",
                                          **split), "a.json")


@pytest.mark.parametrize(("split", "field", "words"), [
    ({"idp_token_url": ""}, "split_token.idp_token_url", "is required"),
    ({"idp_token_url": "ftp://idp/token"}, "split_token.idp_token_url", "http://"),
    ({"token_path": "token"}, "split_token.token_path", "starting with '/'"),
    ({"token_path": "/t?x=1"}, "split_token.token_path", "starting with '/'"),
    ({"timeout": 0}, "split_token.timeout", "positive"),
    ({"apply_policies": "gold"}, "split_token.apply_policies", "array"),
])
def test_a_bad_section_names_its_field(split: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**split)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_the_section_needs_the_auth_token() -> None:
    data = split_api("a", "http://127.0.0.1:1", "http://idp/token")
    data.update(use_standard_auth=False, enable_jwt=True, jwt_source=base64.b64encode(
        b"a-shared-secret-long-enough-for-hs512-which-wants-64-bytes-of-key").decode())
    with pytest.raises(ConfigError, match="needs use_standard_auth"):
        parse_api_definition(data, "a.json")
    data = split_api("a", "http://127.0.0.1:1", "http://idp/token")
    data["use_keyless"] = True
    with pytest.raises(ConfigError, match="needs use_standard_auth"):
        parse_api_definition(data, "a.json")


def test_an_api_without_the_section_has_none() -> None:
    spec = parse_api_definition(api_definition("a", "/a/", "http://127.0.0.1:1"), "a.json")
    assert spec.split_token is None
    assert parse(enabled=False).split_token is None
    assert "split_token" not in parse().ignored_fields
    assert parse().split_token.token_path == "/token"
