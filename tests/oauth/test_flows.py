"""The OAuth 2.0 provider end to end, with real OAuth clients: authlib's and
requests-oauthlib's ``OAuth2Session`` against a real gateway and upstream,
on the memory store and on a real redis-server.

Every grant (authorization code with and without PKCE, refresh with
rotation, client credentials, password), revocation, introspection,
metadata discovery, and the tokens used on the API itself: the bearer check,
the client's policy with its quota (per token, and exact across two nodes
sharing Redis).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError as AuthlibError
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import LegacyApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as OAuthlibSession

from .conftest import ORG, REDIRECT, OAuthAdmin, oauth_api, policy
from .flow_support import approve, approved_redirect, code_of, follow_authorize, token_request

FLOW_API = "flow-api"
LISTEN = "/flow/"
QUOTA = 3
POLICIES = {
    "flow-pol": policy("flow-pol", FLOW_API),
    "quota-pol": {**policy("quota-pol", FLOW_API), "quota_max": QUOTA,
                  "quota_renewal_rate": 3600},
}


def url(gateway: Any, path: str) -> str:
    return gateway.url(LISTEN + path)


@pytest.fixture(scope="module")
def flow_gateway(oauth_store: Any, module_gateway_factory: Any, echo: Any) -> Any:
    gateway = module_gateway_factory([oauth_api(FLOW_API, LISTEN, echo.base_url)],
                                     start=False, storage=oauth_store.config)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    return gateway


@pytest.fixture
def admin(flow_gateway: Any) -> OAuthAdmin:
    return OAuthAdmin(flow_gateway)


def new_client(admin: OAuthAdmin, policy_id: str = "flow-pol", **fields: Any) -> dict[str, Any]:
    return admin.create_client(api_id=FLOW_API, policy_id=policy_id, **fields)


def api_get(gateway: Any, token: str, path: str = "anything") -> requests.Response:
    return requests.get(url(gateway, path), headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


def authlib_session(client: dict[str, Any], **kwargs: Any) -> AuthlibSession:
    return AuthlibSession(client["client_id"], client["secret"], redirect_uri=REDIRECT,
                          **kwargs)


# -- authorization code ---------------------------------------------------------------------


def test_authlib_code_flow_with_pkce(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = authlib_session(client, scope="read write", code_challenge_method="S256")
    verifier = generate_token(48)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"),
                                                  code_verifier=verifier)
    params = follow_authorize(uri)
    assert params["code_challenge_method"] == "S256" and params["state"] == state
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri)
    assert parse_qs(urlsplit(redirect_to).query)["state"] == [state]  # round trip
    assert redirect_to.startswith(REDIRECT + "?")
    token = session.fetch_token(url(flow_gateway, "oauth/token"),
                                authorization_response=redirect_to, state=state,
                                code_verifier=verifier)
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert token["refresh_token"]
    # The token works on the API: authlib sends it as a Bearer token.
    resp = session.get(url(flow_gateway, "hello"), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["url"].startswith("/hello")
    # The code was used: a second exchange is refused, even with the right verifier.
    again = token_request(flow_gateway, LISTEN, {
        "grant_type": "authorization_code", "code": code_of(redirect_to),
        "redirect_uri": REDIRECT, "code_verifier": verifier},
        (client["client_id"], client["secret"]))
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_requests_oauthlib_code_flow_with_pkce(flow_gateway: Any, admin: OAuthAdmin,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test runs on http://
    client = new_client(admin)
    session = OAuthlibSession(client["client_id"], redirect_uri=REDIRECT, scope=["read"],
                              pkce="S256")
    uri, state = session.authorization_url(url(flow_gateway, "oauth/authorize"))
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri)
    # requests-oauthlib sends the secret unencoded in Basic (Tyk's reading):
    # base64 secrets hold '+', '/' and '=', and must still authenticate.
    token = session.fetch_token(url(flow_gateway, "oauth/token"),
                                client_secret=client["secret"],
                                authorization_response=redirect_to)
    assert session._state == state
    assert token["token_type"] == "bearer" and token["scope"] == ["read"]
    assert session.get(url(flow_gateway, "x"), timeout=10).status_code == 200


def test_code_flow_without_pkce(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = authlib_session(client)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"))
    assert "code_challenge" not in uri
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri)
    token = session.fetch_token(url(flow_gateway, "oauth/token"),
                                authorization_response=redirect_to, state=state)
    assert api_get(flow_gateway, token["access_token"]).status_code == 200


def test_tampered_verifier_is_refused(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = authlib_session(client, code_challenge_method="S256")
    verifier = generate_token(48)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"),
                                                  code_verifier=verifier)
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri)
    tampered = ("A" if verifier[0] != "A" else "B") + verifier[1:]
    with pytest.raises(AuthlibError) as refused:
        session.fetch_token(url(flow_gateway, "oauth/token"),
                            authorization_response=redirect_to, state=state,
                            code_verifier=tampered)
    assert refused.value.error == "invalid_grant"
    # The code is spent: the right verifier no longer helps (RFC 6749 §4.1.2).
    with pytest.raises(AuthlibError) as spent:
        session.fetch_token(url(flow_gateway, "oauth/token"),
                            authorization_response=redirect_to, state=state,
                            code_verifier=verifier)
    assert spent.value.error == "invalid_grant"


def test_missing_verifier_and_verifier_without_challenge(flow_gateway: Any,
                                                        admin: OAuthAdmin) -> None:
    client = new_client(admin)
    creds = (client["client_id"], client["secret"])
    session = authlib_session(client, code_challenge_method="S256")
    uri, _ = session.create_authorization_url(url(flow_gateway, "oauth/authorize"),
                                              code_verifier=generate_token(48))
    code = code_of(approved_redirect(flow_gateway, LISTEN, uri))
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "authorization_code",
                                                "code": code, "redirect_uri": REDIRECT}, creds)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    # A verifier for a code made without a challenge: a PKCE downgrade (OAuth 2.1).
    plain_uri, _ = authlib_session(client).create_authorization_url(
        url(flow_gateway, "oauth/authorize"))
    code = code_of(approved_redirect(flow_gateway, LISTEN, plain_uri))
    resp = token_request(flow_gateway, LISTEN, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": generate_token(48)}, creds)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_plain_pkce_is_refused(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    verifier = generate_token(48)
    query = {"response_type": "code", "client_id": client["client_id"],
             "redirect_uri": REDIRECT, "code_challenge": verifier,
             "code_challenge_method": "plain"}
    resp = requests.get(url(flow_gateway, "oauth/authorize"), params=query,
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 400
    assert resp.json() == {"status": "error", "message": "code_challenge_method must be S256 "
                                                         "(plain is not accepted)"}
    # The login service cannot mint such a code either; a missing method means plain.
    for method in ("plain", None):
        form = dict(query)
        if method is None:
            del form["code_challenge_method"]
        answer = approve(flow_gateway, LISTEN, form)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_request"
        assert "code=" not in answer.json()["redirect_to"]
        assert "error=invalid_request" in answer.json()["redirect_to"]


def test_redirect_uri_mismatch(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    creds = (client["client_id"], client["secret"])
    for bad in ("http://127.0.0.1/other", "http://127.0.0.1:8080/cb", "https://127.0.0.1/cb",
                "http://127.0.0.1/cbx", "http://127.0.0.1/cb/../admin"):
        resp = requests.get(url(flow_gateway, "oauth/authorize"), allow_redirects=False,
                            params={"response_type": "code", "client_id": client["client_id"],
                                    "redirect_uri": bad}, timeout=10)
        assert resp.status_code == 400, bad
        assert resp.json()["status"] == "error"
    # A path below the registered one is accepted (osin), and the code is bound to it:
    # the token request must name the same URI.
    below = REDIRECT + "/deeper"
    session = AuthlibSession(client["client_id"], client["secret"], redirect_uri=below)
    uri, _ = session.create_authorization_url(url(flow_gateway, "oauth/authorize"))
    code = code_of(approved_redirect(flow_gateway, LISTEN, uri))
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "authorization_code",
                                                "code": code, "redirect_uri": REDIRECT}, creds)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_another_clients_code_is_refused(flow_gateway: Any, admin: OAuthAdmin) -> None:
    owner, thief = new_client(admin), new_client(admin)
    uri, _ = authlib_session(owner).create_authorization_url(
        url(flow_gateway, "oauth/authorize"))
    code = code_of(approved_redirect(flow_gateway, LISTEN, uri))
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "authorization_code",
                                                "code": code, "redirect_uri": REDIRECT},
                         (thief["client_id"], thief["secret"]))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_key_rules_from_the_login_service(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """The login service's key_rules become the token's session (not the policy)."""
    client = new_client(admin)
    session = authlib_session(client)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"))
    rules = {"org_id": ORG, "rate": 1000, "per": 60, "quota_max": 1,
             "quota_renewal_rate": 3600, "meta_data": {"user": "alice"},
             "access_rights": {FLOW_API: {"api_id": FLOW_API, "api_name": FLOW_API,
                                          "versions": ["Default"]}}}
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri, key_rules=rules)
    token = session.fetch_token(url(flow_gateway, "oauth/token"),
                                authorization_response=redirect_to, state=state)
    assert api_get(flow_gateway, token["access_token"]).status_code == 200
    second = api_get(flow_gateway, token["access_token"])
    assert second.status_code == 403 and "Quota exceeded" in second.text


def test_implicit_grant(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = authlib_session(client)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"),
                                                  response_type="token")
    redirect_to = approved_redirect(flow_gateway, LISTEN, uri)
    assert redirect_to.startswith(REDIRECT + "#")
    token = session.token_from_fragment(redirect_to, state)
    assert token["token_type"] == "bearer" and "refresh_token" not in token
    assert api_get(flow_gateway, token["access_token"]).status_code == 200


# -- refresh ----------------------------------------------------------------------------------


def _code_token(gateway: Any, admin: OAuthAdmin, **client_fields: Any
                ) -> tuple[dict[str, Any], AuthlibSession, dict[str, Any]]:
    client = new_client(admin, **client_fields)
    session = authlib_session(client, scope="read")
    uri, state = session.create_authorization_url(url(gateway, "oauth/authorize"))
    token = session.fetch_token(url(gateway, "oauth/token"),
                                authorization_response=approved_redirect(gateway, LISTEN, uri),
                                state=state)
    return client, session, dict(token)


def test_refresh_rotation(flow_gateway: Any, admin: OAuthAdmin,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    client, session, first = _code_token(flow_gateway, admin)
    second = dict(session.refresh_token(url(flow_gateway, "oauth/token"),
                                        refresh_token=first["refresh_token"]))
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "read"
    assert api_get(flow_gateway, second["access_token"]).status_code == 200
    # The old access token and its session are gone; the old refresh token is used up.
    old = api_get(flow_gateway, first["access_token"])
    assert old.status_code == 403, old.text
    again = token_request(flow_gateway, LISTEN,
                          {"grant_type": "refresh_token",
                           "refresh_token": first["refresh_token"]},
                          (client["client_id"], client["secret"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # requests-oauthlib refreshes the same way.
    oauthlib = OAuthlibSession(client["client_id"], token=second)
    third = oauthlib.refresh_token(url(flow_gateway, "oauth/token"),
                                   auth=HTTPBasicAuth(client["client_id"], client["secret"]))
    assert api_get(flow_gateway, third["access_token"]).status_code == 200
    assert api_get(flow_gateway, second["access_token"]).status_code == 403


def test_refresh_by_another_client(flow_gateway: Any, admin: OAuthAdmin) -> None:
    _client, _session, token = _code_token(flow_gateway, admin)
    other = new_client(admin)
    resp = token_request(flow_gateway, LISTEN,
                         {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                         (other["client_id"], other["secret"]))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # The owner's refresh token still works: the failed attempt did not spend it.
    owner = token_request(flow_gateway, LISTEN,
                          {"grant_type": "refresh_token",
                           "refresh_token": token["refresh_token"]},
                          (_client["client_id"], _client["secret"]))
    assert owner.status_code == 200, owner.text


def test_refresh_cannot_widen_scope(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client, _session, token = _code_token(flow_gateway, admin)
    resp = token_request(flow_gateway, LISTEN,
                         {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                          "scope": "read admin"}, (client["client_id"], client["secret"]))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"


# -- client credentials and password ---------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(flow_gateway: Any, admin: OAuthAdmin, auth_method: str) -> None:
    client = new_client(admin)
    session = authlib_session(client, token_endpoint_auth_method=auth_method)
    token = session.fetch_token(url(flow_gateway, "oauth/token"),
                                grant_type="client_credentials")
    assert token["token_type"] == "bearer"
    assert "refresh_token" not in token  # none for client credentials (Tyk, RFC 6749 §4.4.3)
    assert session.get(url(flow_gateway, "cc"), timeout=10).status_code == 200


def _add_user(flow_gateway: Any, admin_for: Any, user: str, password: str) -> None:
    admin_for(flow_gateway).add_key(user, {
        "org_id": ORG, "rate": 1000, "per": 60, "quota_max": -1, "alias": user,
        "basic_auth_data": {"password": password},
        "access_rights": {FLOW_API: {"api_id": FLOW_API, "api_name": FLOW_API,
                                     "versions": ["Default"]}}})


def test_password_grant(flow_gateway: Any, admin: OAuthAdmin, admin_for: Any,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    user = f"user-{time.monotonic_ns()}"
    _add_user(flow_gateway, admin_for, user, "correct horse")
    client = new_client(admin)
    session = OAuthlibSession(client=LegacyApplicationClient(client_id=client["client_id"]))
    token = session.fetch_token(url(flow_gateway, "oauth/token"), username=user,
                                password="correct horse",
                                auth=HTTPBasicAuth(client["client_id"], client["secret"]))
    assert token["refresh_token"]
    assert api_get(flow_gateway, token["access_token"]).status_code == 200
    # A new password grant for the same user and client revokes the previous token.
    newer = session.fetch_token(url(flow_gateway, "oauth/token"), username=user,
                                password="correct horse",
                                auth=HTTPBasicAuth(client["client_id"], client["secret"]))
    assert api_get(flow_gateway, newer["access_token"]).status_code == 200
    assert api_get(flow_gateway, token["access_token"]).status_code == 403
    # The token's session is the user's, without the password.
    listed = requests.get(flow_gateway.url(f"/tyk/keys/{newer['access_token']}"),
                          headers={"X-Tyk-Authorization": flow_gateway.secret}, timeout=10)
    assert listed.status_code == 200, listed.text
    assert listed.json()["alias"] == user
    assert "correct horse" not in listed.text
    assert listed.json()["oauth_client_id"] == client["client_id"]


@pytest.mark.parametrize(("username", "password"),
                         [("known", "wrong"), ("nobody-at-all", "whatever")])
def test_password_grant_refused(flow_gateway: Any, admin: OAuthAdmin, admin_for: Any,
                                username: str, password: str) -> None:
    user = f"known-{time.monotonic_ns()}"
    _add_user(flow_gateway, admin_for, user, "right")
    client = new_client(admin)
    name = user if username == "known" else username
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "password", "username": name,
                                                "password": password},
                         (client["client_id"], client["secret"]))
    assert resp.status_code == 400
    assert resp.json() == {"error": "access_denied", "error_description":
                           "The resource owner or authorization server denied the request."}


# -- revocation and introspection ---------------------------------------------------------


def test_revoke_access_token(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client, session, token = _code_token(flow_gateway, admin)
    introspect = url(flow_gateway, "oauth/introspect")
    active = session.introspect_token(introspect, token=token["access_token"]).json()
    assert active["active"] is True
    assert active["client_id"] == client["client_id"]
    assert active["token_type"] == "bearer"
    assert active["scope"] == "read"
    assert active["exp"] - active["iat"] == 3600
    assert abs(active["exp"] - 3600 - time.time()) < 60
    resp = session.revoke_token(url(flow_gateway, "oauth/revoke"), token=token["access_token"],
                                token_type_hint="access_token")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "message": "token revoked successfully"}
    assert api_get(flow_gateway, token["access_token"]).status_code == 403
    assert session.introspect_token(introspect, token=token["access_token"]).json() == \
        {"active": False}
    # The hint said access_token: the refresh token lives on.
    refreshed = token_request(flow_gateway, LISTEN,
                              {"grant_type": "refresh_token",
                               "refresh_token": token["refresh_token"]},
                              (client["client_id"], client["secret"]))
    assert refreshed.status_code == 200, refreshed.text


def test_revoke_refresh_token(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client, session, token = _code_token(flow_gateway, admin)
    introspect = url(flow_gateway, "oauth/introspect")
    found = session.introspect_token(introspect, token=token["refresh_token"],
                                     token_type_hint="refresh_token").json()
    assert found == {"active": True, "client_id": client["client_id"],
                     "token_type": "refresh_token", "scope": "read"}
    # Without a hint both kinds are tried (Tyk's listen-path revoke).
    resp = requests.post(url(flow_gateway, "oauth/revoke"),
                         data={"token": token["refresh_token"]}, timeout=10)
    assert resp.status_code == 200, resp.text
    refused = token_request(flow_gateway, LISTEN,
                            {"grant_type": "refresh_token",
                             "refresh_token": token["refresh_token"]},
                            (client["client_id"], client["secret"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert session.introspect_token(introspect, token=token["refresh_token"]).json() == \
        {"active": False}
    # The access token issued with it is not touched (Tyk).
    assert api_get(flow_gateway, token["access_token"]).status_code == 200


def test_introspection_is_per_api(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """Any confidential client of the API (a resource server) may ask about the
    API's tokens; a key that is not an OAuth token, or a token of another API
    (see test_self_introspection), is inactive; a public client may not ask."""
    client, _session, token = _code_token(flow_gateway, admin)
    resource_server = authlib_session(new_client(admin))
    introspect = url(flow_gateway, "oauth/introspect")
    answer = resource_server.introspect_token(introspect, token=token["access_token"])
    assert answer.status_code == 200
    assert answer.json()["active"] is True
    assert answer.json()["client_id"] == client["client_id"]
    plain_key = requests.post(flow_gateway.url("/tyk/keys/create"), timeout=10,
                              headers={"X-Tyk-Authorization": flow_gateway.secret},
                              json={"org_id": ORG, "rate": 10, "per": 1, "quota_max": -1,
                                    "access_rights": {FLOW_API: {
                                        "api_id": FLOW_API, "api_name": FLOW_API,
                                        "versions": ["Default"]}}})
    assert plain_key.status_code == 200, plain_key.text
    answer = resource_server.introspect_token(introspect, token=plain_key.json()["key"])
    assert answer.json() == {"active": False}
    unauthenticated = requests.post(introspect, data={"token": token["access_token"]},
                                    timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "invalid_client"


def test_revoke_all(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client, _session, first = _code_token(flow_gateway, admin)
    second = dict(authlib_session(client).fetch_token(url(flow_gateway, "oauth/token"),
                                                      grant_type="client_credentials"))
    resp = requests.post(url(flow_gateway, "oauth/revoke_all"),
                         data={"client_id": client["client_id"],
                               "client_secret": client["secret"]}, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "message": "tokens revoked successfully"}
    for token in (first["access_token"], second["access_token"]):
        assert api_get(flow_gateway, token).status_code == 403
    refused = token_request(flow_gateway, LISTEN,
                            {"grant_type": "refresh_token",
                             "refresh_token": first["refresh_token"]},
                            (client["client_id"], client["secret"]))
    assert refused.json()["error"] == "invalid_grant"


# -- discovery, errors, quotas ----------------------------------------------------------------


def test_metadata_drives_a_client(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """A client configured from the RFC 8414 document alone gets a working token."""
    meta = requests.get(url(flow_gateway, ".well-known/oauth-authorization-server"),
                        timeout=10)
    assert meta.status_code == 200
    document = meta.json()
    assert document["issuer"] == flow_gateway.url(LISTEN.rstrip("/"))
    assert document["code_challenge_methods_supported"] == ["S256"]
    client = new_client(admin)
    session = authlib_session(client, code_challenge_method="S256")
    verifier = generate_token(64)
    uri, state = session.create_authorization_url(document["authorization_endpoint"],
                                                  code_verifier=verifier)
    token = session.fetch_token(document["token_endpoint"], state=state,
                                authorization_response=approved_redirect(flow_gateway, LISTEN,
                                                                         uri),
                                code_verifier=verifier)
    assert session.get(url(flow_gateway, "m"), timeout=10).status_code == 200
    assert session.introspect_token(document["introspection_endpoint"],
                                    token=token["access_token"]).json()["active"] is True


def test_wrong_secret_is_refused_the_rfc_way(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = AuthlibSession(client["client_id"], client["secret"] + "x")
    with pytest.raises(AuthlibError) as refused:
        session.fetch_token(url(flow_gateway, "oauth/token"), grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "client_credentials"},
                         (client["client_id"], "wrong"))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_tyk_error_status(gateway_factory: Any, echo: Any, oauth_store: Any) -> None:
    """``oauth_error_status_code: 403``: Tyk's status for every error, and Tyk's codes."""
    gateway = gateway_factory([oauth_api(FLOW_API, LISTEN, echo.base_url)], start=False,
                              storage=oauth_store.config, oauth_error_status_code=403)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    client = new_client(OAuthAdmin(gateway))
    creds = (client["client_id"], client["secret"])
    cases = [
        ({"grant_type": "client_credentials"}, (client["client_id"], "wrong"),
         "unauthorized_client"),
        ({"grant_type": "client_credentials"}, ("no-such-client", "x"), "server_error"),
        ({"grant_type": "client_credentials"}, None, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "nope"}, creds, "invalid_grant"),
        ({"grant_type": "jwt-bearer"}, creds, "unsupported_grant_type"),
    ]
    for form, auth, error in cases:
        resp = token_request(gateway, LISTEN, form, auth)
        assert resp.status_code == 403, (form, resp.text)
        assert resp.json()["error"] == error, form
    ok = token_request(gateway, LISTEN, {"grant_type": "client_credentials"}, creds)
    assert ok.status_code == 200


def test_quota_of_the_clients_policy(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin, policy_id="quota-pol")
    session = authlib_session(client)
    session.fetch_token(url(flow_gateway, "oauth/token"), grant_type="client_credentials")
    statuses = [session.get(url(flow_gateway, f"q{i}"), timeout=10).status_code
                for i in range(QUOTA + 2)]
    assert statuses == [200] * QUOTA + [403, 403]


@pytest.mark.redis
def test_quota_exact_across_two_nodes(flow_gateway: Any, admin: OAuthAdmin,
                                      oauth_store: Any, gateway_factory: Any,
                                      echo: Any) -> None:
    """A token from one node, spent on two sharing Redis: the quota holds in sum."""
    if oauth_store.kind != "redis":
        pytest.skip("two nodes share state through Redis")
    second = gateway_factory([oauth_api(FLOW_API, LISTEN, echo.base_url)], start=False,
                             storage=oauth_store.config)
    (second.root / "policies.json").write_text(json.dumps(POLICIES))
    second.start()
    client = new_client(admin, policy_id="quota-pol")
    token = authlib_session(client).fetch_token(url(flow_gateway, "oauth/token"),
                                                grant_type="client_credentials")
    nodes = [flow_gateway, second] * QUOTA
    statuses = [api_get(node, token["access_token"], f"n{i}").status_code
                for i, node in enumerate(nodes)]
    assert statuses.count(200) == QUOTA, statuses
    assert statuses[:QUOTA] == [200] * QUOTA
    # The second node also answers the provider's endpoints from the shared store.
    refreshed = authlib_session(client).introspect_token(url(second, "oauth/introspect"),
                                                         token=token["access_token"])
    assert refreshed.json()["active"] is True


def test_public_client_with_pkce(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """A public client (fastgate's ``"public": true``: no secret) authenticates
    with its client_id alone, must use PKCE, may refresh, and may not use the
    client-credentials grant."""
    created = new_client(admin, public=True)
    assert created["secret"] == "" and created["public"] is True
    assert admin.client(FLOW_API, created["client_id"]).json()["public"] is True
    session = AuthlibSession(created["client_id"], redirect_uri=REDIRECT,
                             token_endpoint_auth_method="none", code_challenge_method="S256")
    # Without a challenge the authorization request is refused.
    plain, _ = session.create_authorization_url(url(flow_gateway, "oauth/authorize"))
    refused = requests.get(plain, allow_redirects=False, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["message"] == "code_challenge is required (PKCE, S256)"
    verifier = generate_token(48)
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"),
                                                  code_verifier=verifier)
    token = session.fetch_token(url(flow_gateway, "oauth/token"), state=state,
                                authorization_response=approved_redirect(flow_gateway, LISTEN,
                                                                         uri),
                                code_verifier=verifier)
    assert session.get(url(flow_gateway, "pub"), timeout=10).status_code == 200
    refreshed = session.refresh_token(url(flow_gateway, "oauth/token"),
                                      refresh_token=token["refresh_token"])
    assert api_get(flow_gateway, refreshed["access_token"]).status_code == 200
    cc = requests.post(url(flow_gateway, "oauth/token"), timeout=10,
                       data={"grant_type": "client_credentials",
                             "client_id": created["client_id"]})
    assert cc.status_code == 401 and cc.json()["error"] == "invalid_client"
    # A public client has no secret to give: a secret alongside is refused at creation.
    bad = admin.call("POST", "/tyk/oauth/clients/create",
                     {"api_id": FLOW_API, "redirect_uri": REDIRECT, "public": True,
                      "secret": "s"})
    assert (bad.status_code, bad.json()) == \
        (400, {"status": "error", "message": "secret: a public client has none"})


def test_revoke_touches_oauth_tokens_only(flow_gateway: Any, admin: OAuthAdmin,
                                          admin_for: Any) -> None:
    """The revoke endpoint needs no key: what it deletes must be an OAuth token
    of this API, never another key (a Basic-auth user, a plain key)."""
    user = f"victim-{time.monotonic_ns()}"
    _add_user(flow_gateway, admin_for, user, "pw")
    headers = {"X-Tyk-Authorization": flow_gateway.secret}
    plain = requests.post(flow_gateway.url("/tyk/keys/create"), headers=headers, timeout=10,
                          json={"org_id": ORG, "rate": 10, "per": 1, "quota_max": -1,
                                "access_rights": {FLOW_API: {"api_id": FLOW_API,
                                                             "api_name": FLOW_API,
                                                             "versions": ["Default"]}}})
    key = plain.json()["key"]
    for token in (ORG + user, user, key):
        resp = requests.post(url(flow_gateway, "oauth/revoke"), data={"token": token},
                             timeout=10)
        assert resp.status_code == 200  # RFC 7009: the same answer, whatever the token
    assert requests.get(flow_gateway.url(f"/tyk/keys/{user}"), headers=headers,
                        timeout=10).status_code == 200
    assert requests.get(flow_gateway.url(f"/tyk/keys/{key}"), headers=headers,
                        timeout=10).status_code == 200


def test_refresh_narrows_scope(flow_gateway: Any, admin: OAuthAdmin) -> None:
    client = new_client(admin)
    session = authlib_session(client, scope="read write")
    uri, state = session.create_authorization_url(url(flow_gateway, "oauth/authorize"))
    token = session.fetch_token(url(flow_gateway, "oauth/token"), state=state,
                                authorization_response=approved_redirect(flow_gateway, LISTEN,
                                                                         uri))
    creds = (client["client_id"], client["secret"])
    narrower = token_request(flow_gateway, LISTEN, {"grant_type": "refresh_token",
                                                    "refresh_token": token["refresh_token"],
                                                    "scope": "read"}, creds)
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "read"
    found = session.introspect_token(url(flow_gateway, "oauth/introspect"),
                                     token=narrower.json()["refresh_token"]).json()
    assert found["scope"] == "read"  # the new refresh token is narrowed too (osin)


def test_password_grant_refuses_an_expired_user(flow_gateway: Any, admin: OAuthAdmin,
                                                admin_for: Any) -> None:
    user = f"expired-{time.monotonic_ns()}"
    admin_for(flow_gateway).add_key(user, {
        "org_id": ORG, "rate": 1000, "per": 60, "quota_max": -1, "expires": 1000,
        "basic_auth_data": {"password": "pw"},
        "access_rights": {FLOW_API: {"api_id": FLOW_API, "api_name": FLOW_API,
                                     "versions": ["Default"]}}})
    client = new_client(admin)
    resp = token_request(flow_gateway, LISTEN, {"grant_type": "password", "username": user,
                                                "password": "pw"},
                         (client["client_id"], client["secret"]))
    assert resp.status_code == 400 and resp.json()["error"] == "access_denied"


def test_introspection_hint_is_only_a_hint(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """RFC 7662 §2.1: a wrong ``token_type_hint`` still finds the token."""
    _client, session, token = _code_token(flow_gateway, admin)
    introspect = url(flow_gateway, "oauth/introspect")
    for value, hint, kind in ((token["access_token"], "refresh_token", "bearer"),
                              (token["refresh_token"], "access_token", "refresh_token")):
        found = session.introspect_token(introspect, token=value, token_type_hint=hint).json()
        assert (found["active"], found["token_type"]) == (True, kind)


def test_revoke_with_client_authentication(flow_gateway: Any, admin: OAuthAdmin) -> None:
    """RFC 7009 §2.1: credentials presented are checked, and the client
    revokes its own tokens only (another client's stays, with the same 200)."""
    owner, session, token = _code_token(flow_gateway, admin)
    other = authlib_session(new_client(admin))
    revoke = url(flow_gateway, "oauth/revoke")
    wrong = requests.post(revoke, data={"token": token["access_token"]}, timeout=10,
                          auth=HTTPBasicAuth(owner["client_id"], "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    for value in (token["access_token"], token["refresh_token"]):
        resp = other.revoke_token(revoke, token=value)
        assert resp.status_code == 200, resp.text
    assert api_get(flow_gateway, token["access_token"]).status_code == 200
    assert session.introspect_token(url(flow_gateway, "oauth/introspect"),
                                    token=token["refresh_token"]).json()["active"] is True
    # authlib's revoke_token authenticates as the owner (client_secret_basic).
    assert session.revoke_token(revoke, token=token["access_token"]).status_code == 200
    assert api_get(flow_gateway, token["access_token"]).status_code == 403


def test_revoke_requiring_client_authentication(gateway_factory: Any, echo: Any,
                                                oauth_store: Any) -> None:
    """``oauth_meta.revoke_requires_client_auth``: a token alone is refused."""
    api = oauth_api(FLOW_API, LISTEN, echo.base_url)
    api["oauth_meta"]["revoke_requires_client_auth"] = True
    gateway = gateway_factory([api], start=False, storage=oauth_store.config)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    client = new_client(OAuthAdmin(gateway))
    session = authlib_session(client)
    token = session.fetch_token(url(gateway, "oauth/token"), grant_type="client_credentials")
    alone = requests.post(url(gateway, "oauth/revoke"), data={"token": token["access_token"]},
                          timeout=10)
    assert alone.status_code == 401 and alone.json()["error"] == "invalid_client"
    assert api_get(gateway, token["access_token"]).status_code == 200
    assert session.revoke_token(url(gateway, "oauth/revoke"),
                                token=token["access_token"]).status_code == 200
    assert api_get(gateway, token["access_token"]).status_code == 403
