"""fastgate on both sides of RFC 7662: one API is the OAuth provider, another
protects a resource with external OAuth introspecting at the first one's
``/oauth/introspect`` -- on the memory store and on Redis."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.external_oauth.conftest import identity_key, introspection_api

from .conftest import ORG, POLICIES, OAuthAdmin, oauth_api
from .flow_support import token_request

RS_CLIENT = "resource-server"
RS_SECRET = "rs-secret+/="  # characters Basic auth must carry either way


def test_resource_api_introspects_fastgates_own_tokens(gateway_factory: Any, echo: Any,
                                                      oauth_store: Any) -> None:
    gateway = gateway_factory([oauth_api("oauth-api", "/oauth-api/", echo.base_url),
                               oauth_api("oauth-only", "/second/", echo.base_url)],
                              start=False, storage=oauth_store.config)
    resource = introspection_api(
        "resource", echo.base_url, gateway.url("/oauth-api/oauth/introspect"),
        RS_CLIENT, RS_SECRET, cache=False, introspection={"identity_base_field": "username"})
    gateway.write_api(resource)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    admin = OAuthAdmin(gateway)
    admin.create_client(api_id="oauth-api", client_id=RS_CLIENT, secret=RS_SECRET)
    app = admin.create_client(api_id="oauth-api", policy_id="oauth-pol")
    creds = (app["client_id"], app["secret"])
    # The resource owner: a Basic-auth user of the provider API's org.
    headers = {"X-Tyk-Authorization": gateway.secret}
    user_session = {"org_id": ORG, "rate": 1000, "per": 60, "quota_max": -1,
                    "basic_auth_data": {"password": "pw"},
                    "access_rights": {"oauth-api": {"api_id": "oauth-api",
                                                    "api_name": "oauth-api",
                                                    "versions": ["Default"]}}}
    assert requests.post(gateway.url("/tyk/keys/alice"), json=user_session, headers=headers,
                         timeout=10).status_code == 200
    # The resource API's key for the identity (Tyk's org_id + md5(identity)).
    key = identity_key("alice")
    rights = {"resource": {"api_id": "resource", "api_name": "resource",
                           "versions": ["Default"]}}
    assert requests.post(gateway.url(f"/tyk/keys/{key}"), headers=headers, timeout=10,
                         json={"org_id": ORG, "rate": 1000, "per": 60, "quota_max": -1,
                               "access_rights": rights}).status_code == 200

    grant = token_request(gateway, "/oauth-api/", {"grant_type": "password",
                                                   "username": "alice", "password": "pw"},
                          creds)
    assert grant.status_code == 200, grant.text
    token = grant.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    resp = requests.get(gateway.url("/resource/data"), headers=bearer, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["url"] == "/data"
    # A token of another API's provider is inactive at this one.
    second = admin.create_client(api_id="oauth-only", policy_id="oauth-only")
    other = token_request(gateway, "/second/", {"grant_type": "client_credentials"},
                          (second["client_id"], second["secret"]))
    assert other.status_code == 200, other.text
    elsewhere = requests.get(gateway.url("/resource/data"), timeout=10, headers={
        "Authorization": f"Bearer {other.json()['access_token']}"})
    assert (elsewhere.status_code, elsewhere.json()) == \
        (401, {"error": "access token is not valid"})
    # A token the provider never issued is inactive there, so refused here.
    forged = requests.get(gateway.url("/resource/data"),
                          headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert forged.status_code in (401, 403), forged.text
    # Revoked at the provider: refused by the resource API at once (no cache).
    revoked = requests.post(gateway.url("/oauth-api/oauth/revoke"), data={"token": token},
                            timeout=10)
    assert revoked.status_code == 200
    after = requests.get(gateway.url("/resource/data"), headers=bearer, timeout=10)
    assert after.status_code in (401, 403), after.text
