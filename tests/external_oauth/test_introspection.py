"""External OAuth by RFC 7662 introspection, on a real gateway in front of a
real upstream, asking a real authorization server (authlib) -- on the memory
store and on Redis."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session

from fastgate.auth.external_oauth.config import IntrospectionConfig
from fastgate.auth.external_oauth.middleware import record_key, server_tag
from tests.auth.oauth_provider import Client, Provider, start_provider

from .conftest import ORG, OAuthGateway, identity_key, introspection_api, unique

#: API id -> (introspection URL fault, cache on, cache timeout, own settings).
APIS: dict[str, tuple[str, bool, int, dict[str, Any]]] = {
    "cached": ("", True, 0, {}),
    "uncached": ("", False, 0, {}),
    "short": ("", True, 1, {}),
    "byname": ("", True, 0, {"identity_base_field": "username"}),
    "slow": ("slow", True, 0, {"request_timeout": 0.5}),
    "http500": ("500", True, 0, {}),
    "html": ("html", True, 0, {}),
    "activestr": ("active-string", True, 0, {}),
    "noactive": ("no-active", True, 0, {}),
}


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Provider]:
    """A second, unrelated authorization server."""
    server = start_provider()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(oauth_gateway: Any, provider: Provider, resource_server: Client, echo: Any,
       elsewhere: Provider) -> OAuthGateway:
    apis = [introspection_api(api_id, echo.base_url, provider.introspection_url(fault),
                              resource_server.client_id, resource_server.client_secret,
                              cache=cache, timeout=timeout, introspection=extra)
            for api_id, (fault, cache, timeout, extra) in APIS.items()]
    apis.append(introspection_api("badcreds", echo.base_url, provider.introspection_url(),
                                  resource_server.client_id, "not-the-secret"))
    apis.append(introspection_api("header", echo.base_url, provider.introspection_url(),
                                  resource_server.client_id, resource_server.client_secret,
                                  auth_configs={"externalOAuth": {
                                      "auth_header_name": "X-Access-Token"}}))
    stranger = elsewhere.client()
    apis.append(introspection_api("elsewhere", echo.base_url, elsewhere.introspection_url(),
                                  stranger.client_id, stranger.client_secret))
    return oauth_gateway(apis)


def asked(provider: Provider, token: str) -> int:
    """How often the authorization server was asked about ``token``."""
    with provider.lock:
        return sum(1 for _path, form, _auth in provider.received if form.get("token") == token)


def error(resp: Any) -> str:
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    return resp.json()["error"]


# -- tokens from a real OAuth client -----------------------------------------------


def test_a_token_from_the_token_endpoint_passes_and_reaches_the_upstream(gw, provider):
    client = provider.client()
    session = OAuth2Session(client.client_id, client.client_secret)
    token = session.fetch_token(provider.token_url, grant_type="client_credentials")
    resp = session.get(gw.url("/cached/hello"), timeout=15)
    assert resp.status_code == 200, resp.text
    echoed = resp.json()
    assert echoed["path"] == "/hello"
    assert ["Authorization", "Bearer " + token["access_token"]] in echoed["headers"]
    assert asked(provider, token["access_token"]) == 1


def test_the_configured_client_credentials_are_sent_to_the_introspection_endpoint(
        gw, provider, resource_server):
    token = provider.issue(unique("cred"))
    assert gw.get("cached", token).status_code == 200
    with provider.lock:
        [(path, form, authorization)] = [r for r in provider.received
                                         if r[1].get("token") == token]
    assert path == "/introspect"
    assert form == {"token": token, "client_id": resource_server.client_id,
                    "client_secret": resource_server.client_secret}
    assert authorization == ""  # client_secret_post, as Tyk sends them


def test_wrong_client_credentials_are_the_gateways_fault_502(gw, provider):
    token = provider.issue(unique("cred"))
    resp = gw.get("badcreds", token)
    assert resp.status_code == 502
    assert error(resp) == ("access token validation failed: the authorization server "
                           "answered 401")
    assert asked(provider, token) == 1


# -- active, inactive, missing ---------------------------------------------------------


def test_an_unknown_or_revoked_token_is_401_access_token_is_not_valid(gw, provider):
    resp = gw.get("cached", "never-issued-" + unique("t"))
    assert resp.status_code == 401
    assert error(resp) == "access token is not valid"
    token = provider.issue(unique("rev"))
    provider.revoke(token)
    resp = gw.get("uncached", token)
    assert (resp.status_code, error(resp)) == (401, "access token is not valid")


def test_no_token_is_400_authorization_field_missing(gw, provider):
    resp = gw.get("cached", None)
    assert (resp.status_code, error(resp)) == (400, "authorization field missing")
    resp = gw.get("cached", "", scheme="")
    assert (resp.status_code, error(resp)) == (400, "authorization field missing")


def test_the_token_is_read_from_the_configured_header_with_or_without_bearer(gw, provider):
    token = provider.issue(unique("hdr"))
    assert gw.get("header", token).status_code == 400  # not in Authorization
    assert gw.get("header", token, header="X-Access-Token").status_code == 200
    assert gw.get("header", token, header="X-Access-Token", scheme="").status_code == 200


# -- the cache ---------------------------------------------------------------------------


def test_a_cached_answer_is_reused_without_asking_again(gw, provider):
    token = provider.issue(unique("hit"))
    for _ in range(5):
        assert gw.get("cached", token).status_code == 200
    assert asked(provider, token) == 1


def test_concurrent_requests_with_a_new_token_share_one_call(gw, provider):
    token = provider.issue(unique("burst"))
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _n: gw.get("cached", token).status_code, range(16)))
    assert statuses == [200] * 16
    assert asked(provider, token) == 1


def test_without_the_cache_every_request_asks(gw, provider):
    token = provider.issue(unique("nocache"))
    for _ in range(3):
        assert gw.get("uncached", token).status_code == 200
    assert asked(provider, token) == 3
    provider.revoke(token)  # uncached: the revocation counts at once
    assert gw.get("uncached", token).status_code == 401


def test_the_cache_timeout_bounds_a_cached_answer(gw, provider):
    token = provider.issue(unique("timeout"))  # lives 600 s; cache.timeout is 1 s
    assert gw.get("short", token).status_code == 200
    assert gw.get("short", token).status_code == 200
    assert asked(provider, token) == 1
    time.sleep(1.3)
    assert gw.get("short", token).status_code == 200
    assert asked(provider, token) == 2  # asked again after the timeout


def test_timeout_0_keeps_an_answer_until_the_tokens_exp_never_longer(gw, provider):
    token = provider.issue(unique("exp"), lifetime=2)
    assert gw.get("cached", token).status_code == 200
    assert gw.get("cached", token).status_code == 200
    assert asked(provider, token) == 1
    time.sleep(2.2)  # past exp: the cached answer is gone, the server says inactive
    resp = gw.get("cached", token)
    assert (resp.status_code, error(resp)) == (401, "access token is not valid")
    assert asked(provider, token) == 2


def test_an_answer_in_the_store_lives_until_exp_or_the_timeout(gw, provider, resource_server):
    tag = server_tag(IntrospectionConfig(provider.introspection_url(),
                                         resource_server.client_id))

    def lifetime(token: str) -> float:
        left = gw.record_lifetime("introspection", record_key(tag, token.encode()))
        assert left is not None, "no lifetime: kept forever"
        return left

    until_exp = provider.issue(unique("ttl"), lifetime=30)
    assert gw.get("cached", until_exp).status_code == 200
    assert 25 < lifetime(until_exp) <= 30
    bounded = provider.issue(unique("ttl"), lifetime=600)
    assert gw.get("short", bounded).status_code == 200
    assert 0 < lifetime(bounded) <= 1
    no_exp = provider.issue(unique("ttl"), no_exp=True)
    assert gw.get("cached", no_exp).status_code == 200
    assert 55 < lifetime(no_exp) <= 60  # timeout 0, no exp: 60 s, never forever


def test_raw_tokens_never_reach_the_store_only_their_digests(gw, provider):
    tokens = [provider.issue(unique("raw")) for _ in range(3)]
    for token in tokens:
        assert gw.get("cached", token).status_code == 200
    held = gw.stored_text()  # written before the answer (the journal is fsync'd first)
    for token in tokens:
        assert token.encode() not in held
        assert hashlib.sha256(token.encode()).hexdigest().encode() in held  # it is cached


# -- sessions by identity ------------------------------------------------------------------


def test_a_preprovisioned_identity_key_gives_its_rate_limit(gw, provider):
    identity = unique("alice")
    gw.provision(identity, ("cached",), rate=2, per=60, allowance=2)
    statuses = [gw.get("cached", provider.issue(identity)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # every token of the identity shares the key's bucket
    other = provider.issue(unique("bob"))  # no key: Tyk's session, 10000 per 60 s
    assert [gw.get("cached", other).status_code for _ in range(5)] == [200] * 5


def test_a_preprovisioned_key_without_access_to_the_api_is_refused(gw, provider):
    identity = unique("carol")
    gw.provision(identity, ("uncached",))
    resp = gw.get("cached", provider.issue(identity))
    assert resp.status_code == 403, resp.text


def test_the_identity_comes_from_identity_base_field(gw, provider):
    name = unique("dave")
    gw.provision(name, ("byname",), rate=1, per=60, allowance=1)
    token = provider.issue(unique("sub"), extra={"username": name})
    assert gw.get("byname", token).status_code == 200
    assert gw.get("byname", token).status_code == 429  # dave's key, not the sub's session


def test_no_identity_in_the_answer_is_403(gw, provider):
    token = provider.issue("", extra={"username": ""})
    resp = gw.get("byname", token)
    assert (resp.status_code, error(resp)) == (
        403, "found an empty user ID in predefined base claim, claim: username")


def test_identity_keys_are_org_plus_md5():
    assert identity_key("alice") == ORG + "6384e2b2184bcbf58eccf10ca7a6563c"


# -- the authorization server's faults ----------------------------------------------------


@pytest.mark.parametrize(("api_id", "message"), [
    ("http500", "the authorization server answered 500"),
    ("html", "the authorization server's answer is not a JSON object"),
    ("activestr", "the introspection answer has no boolean \"active\" member"),
    ("noactive", "the introspection answer has no boolean \"active\" member"),
])
def test_a_broken_answer_is_502(gw, provider, api_id, message):
    token = provider.issue(unique("broken"))
    resp = gw.get(api_id, token)
    assert resp.status_code == 502
    assert error(resp) == "access token validation failed: " + message
    assert gw.get(api_id, token).status_code == 502  # a fault is never cached
    assert asked(provider, token) == 2
    assert token not in gw.logs()


def test_a_slow_server_is_504_within_the_request_timeout(gw, provider):
    token = provider.issue(unique("slow"))
    started = time.monotonic()
    resp = gw.get("slow", token)
    took = time.monotonic() - started
    assert resp.status_code == 504
    assert error(resp) == ("access token validation failed: the authorization server did "
                           "not answer within 0.5 s")
    assert took < provider.delay
    # the gateway keeps serving its other APIs meanwhile
    assert gw.get("cached", provider.issue(unique("fast"))).status_code == 200


def test_an_answer_of_one_server_is_never_taken_for_another(gw, provider):
    token = provider.issue(unique("theirs"))
    assert gw.get("cached", token).status_code == 200  # stored, under this server's tag
    # The API trusting the other server asks it, which never issued the token.
    resp = gw.get("elsewhere", token)
    assert (resp.status_code, error(resp)) == (401, "access token is not valid")


def test_a_key_provisioned_after_the_identity_was_seen_takes_effect_at_once(gw, provider):
    identity = unique("late")
    token = provider.issue(identity)
    assert [gw.get("cached", token).status_code for _ in range(3)] == [200] * 3
    gw.provision(identity, ("uncached",))  # a key without access to this API
    assert gw.get("cached", token).status_code == 403
    resp = gw.admin("DELETE", f"/tyk/keys/{identity_key(identity)}")
    assert resp.status_code == 200, resp.text
    assert gw.get("cached", token).status_code == 200  # Tyk's session again
