"""The authorization server goes away mid-test: cached answers keep serving
(in the worker, and from the store on another node), new tokens get 502;
a server that was never there is 502 too -- never 500."""

from __future__ import annotations

from typing import Any

from tests.auth.oauth_provider import Provider

from .conftest import introspection_api, jwt_api, unique


def apis(provider: Provider, echo: Any) -> list[dict[str, Any]]:
    client = provider.client()
    return [introspection_api("io", echo.base_url, provider.introspection_url(),
                              client.client_id, client.client_secret, cache=True, timeout=0)]


def test_a_killed_server_cached_tokens_still_pass_new_ones_are_502(
        oauth_gateway_now, lone_provider, echo):
    definitions = apis(lone_provider, echo)
    gw = oauth_gateway_now(definitions)
    known = lone_provider.issue(unique("known"))
    assert gw.get("io", known).status_code == 200  # asked once, cached
    assert gw.get("io", known).status_code == 200  # the connection to it is kept alive
    fresh = lone_provider.issue(unique("fresh"))
    lone_provider.stop()  # its socket and every connection closed

    for _ in range(3):
        assert gw.get("io", known).status_code == 200
    resp = gw.get("io", fresh)
    assert resp.status_code == 502
    assert resp.json() == {"error": "access token validation failed: the authorization "
                                    "server cannot be reached"}
    assert fresh not in gw.logs() and "cannot connect" in gw.logs()

    if gw.store.redis is not None:
        # Another node on the same Redis (the same definition): the answer
        # the first one stored serves it too, with the server still down.
        other = oauth_gateway_now(definitions)
        assert other.get("io", known).status_code == 200
        assert other.get("io", fresh).status_code == 502


def test_two_nodes_share_the_answers_in_the_store(oauth_gateway_now, lone_provider, echo):
    definitions = apis(lone_provider, echo)
    first = oauth_gateway_now(definitions)
    second = oauth_gateway_now(definitions)
    token = lone_provider.issue(unique("shared"))
    assert first.get("io", token).status_code == 200
    assert second.get("io", token).status_code == 200
    # On Redis the second node reads the first one's answer; the memory
    # store is each node's own.
    expected = 1 if first.store.redis is not None else 2
    assert lone_provider.calls["/introspect"] == expected


def test_a_server_that_never_answered_is_502(oauth_gateway_now, echo, free_port):
    gone = f"http://127.0.0.1:{free_port()}/introspect"
    gw = oauth_gateway_now([introspection_api("io", echo.base_url, gone, "rs", "secret")])
    resp = gw.get("io", "some-token")
    assert resp.status_code == 502
    assert "cannot be reached" in resp.json()["error"]


def test_jwts_keep_passing_with_the_jwks_endpoint_gone(oauth_gateway_now, lone_provider, echo):
    gw = oauth_gateway_now([jwt_api("jw", echo.base_url, lone_provider.jwks_url)])
    assert gw.get("jw", lone_provider.issue(unique("before"), jwt=True)).status_code == 200
    lone_provider.stop()
    # New tokens signed by the key fetched before: verified locally.
    for _ in range(3):
        assert gw.get("jw", lone_provider.issue(unique("after"), jwt=True)).status_code == 200
