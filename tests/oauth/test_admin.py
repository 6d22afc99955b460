"""The OAuth clients admin API (:mod:`fastgate.admin.oauth`) over real HTTP
against a running gateway, on the memory store and a real redis-server.

Tokens for the listing, revocation and policy-change tests are minted by an
:class:`OAuthStore` in this process on the gateway's Redis (``provider``),
so those tests run on Redis only; the gateway then serves and lists them.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from typing import Any

import pytest
import requests

from .conftest import (
    JWT_API,
    OAUTH_API,
    ORG,
    OTHER_OAUTH_API,
    OTHER_ORG,
    REDIRECT,
    TOKEN_API,
    OAuthAdmin,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def error(resp: requests.Response) -> tuple[int, Any]:
    return resp.status_code, resp.json()


def err(status: int, message: str) -> tuple[int, dict[str, str]]:
    return status, {"status": "error", "message": message}


def mint(provider: Any, run: Any, api_id: str, client_id: str, *, refresh: bool = False) -> Any:
    client = run(provider.load_client(api_id, client_id))
    assert client is not None
    return run(provider.issue(client, key_rules=None, refresh=refresh))


# -- create -----------------------------------------------------------------------------


def test_create_defaults_and_shows_the_secret_once(oauth_admin: OAuthAdmin) -> None:
    created = oauth_admin.create_client(meta_data={"tier": "gold"}, description="d")
    assert list(created) == ["client_id", "redirect_uri", "secret", "meta_data", "description"]
    assert re.fullmatch(r"[0-9a-f]{32}", created["client_id"])
    assert uuid.UUID(base64.b64decode(created["secret"]).decode())  # base64 of a UUID
    assert (created["redirect_uri"], created["meta_data"], created["description"]) == \
        (REDIRECT, {"tier": "gold"}, "d")
    got = oauth_admin.client(OAUTH_API, created["client_id"])
    assert got.status_code == 200
    assert got.json() == {**created, "secret": ""}  # the secret is not kept


def test_create_keeps_a_given_id_and_secret(oauth_admin: OAuthAdmin, oauth_gateway: Any) -> None:
    client_id, secret = unique(), "given-secret-" + uuid.uuid4().hex
    created = oauth_admin.create_client(client_id=client_id, secret=secret,
                                        policy_id="oauth-only", api_id=OAUTH_API)
    assert (created["client_id"], created["secret"], created["policy_id"]) == \
        (client_id, secret, "oauth-only")
    # The given secret is the client's: revoke_all takes it, and no other.
    wrong = oauth_admin.call("POST", "/tyk/oauth/revoke_all",
                             form={"client_id": client_id, "client_secret": secret + "x"})
    assert error(wrong) == err(401, "client secret is wrong")
    right = oauth_admin.call("POST", "/tyk/oauth/revoke_all",
                             form={"client_id": client_id, "client_secret": secret})
    assert right.json() == {"status": "ok", "message": "tokens revoked successfully"}


def test_create_refuses_bad_requests_and_writes_nothing(oauth_admin: OAuthAdmin) -> None:
    before = oauth_admin.call("GET", f"/tyk/oauth/clients/{OAUTH_API}").json()
    client_id = unique()
    cases: list[tuple[Any, tuple[int, dict[str, str]]]] = [
        (b"{not json", err(400, "Unmarshalling failed")),
        (b"[1, 2]", err(400, "Unmarshalling failed")),
        ({"client_id": 5, "api_id": OAUTH_API},
         err(400, "Unmarshalling failed: client_id: expected a string")),
        ({"client_id": client_id, "api_id": OAUTH_API, "meta_data": "x"},
         err(400, "Unmarshalling failed: meta_data: expected an object")),
        ({"client_id": client_id, "api_id": OAUTH_API, "redirect_uri": ["a"]},
         err(400, "Unmarshalling failed: redirect_uri: expected a string")),
        ({"client_id": "a/b", "api_id": OAUTH_API}, err(400, "client_id: must not contain '/'")),
        ({"client_id": client_id, "api_id": "nope"}, err(400, "API doesn't exist")),
        ({"client_id": client_id, "api_id": TOKEN_API}, err(400, "API is not OAuth2")),
        ({"client_id": client_id}, err(400, "Policy doesn't exist")),
        ({"client_id": client_id, "policy_id": "nope"}, err(400, "Policy doesn't exist")),
        ({"client_id": client_id, "policy_id": "token-pol"}, err(400, "API is not OAuth2")),
        # ghost-pol grants the OAuth API too: nothing may be written there first.
        ({"client_id": client_id, "policy_id": "ghost-pol"}, err(400, "API doesn't exist")),
    ]
    for body, expected in cases:
        if isinstance(body, bytes):
            resp = oauth_admin.call("POST", "/tyk/oauth/clients/create", data=body)
        else:
            resp = oauth_admin.call("POST", "/tyk/oauth/clients/create", body)
        assert error(resp) == expected, body
    assert oauth_admin.call("GET", f"/tyk/oauth/clients/{OAUTH_API}").json() == before
    assert oauth_admin.client(OAUTH_API, client_id).status_code == 404


def test_create_by_policy_puts_the_client_on_its_oauth_and_jwt_apis(
        oauth_admin: OAuthAdmin) -> None:
    created = oauth_admin.create_client(policy_id="oauth-pol")
    client_id = created["client_id"]
    assert created["policy_id"] == "oauth-pol"
    assert oauth_admin.client(OAUTH_API, client_id).status_code == 200
    assert oauth_admin.client(JWT_API, client_id).status_code == 200
    assert error(oauth_admin.client(TOKEN_API, client_id)) == \
        err(404, "OAuth Client ID not found")
    # Tyk lists (and finds by id) the clients of use_oauth2 APIs only.
    assert oauth_admin.call("GET", f"/tyk/oauth/clients/{JWT_API}").json() == []
    assert oauth_admin.call("GET", f"/tyk/oauth/clients/apis/{client_id}?orgID={ORG}"
                            ).json() == [OAUTH_API]


# -- list, get ---------------------------------------------------------------------------


def test_list_and_get(oauth_admin: OAuthAdmin) -> None:
    ids = sorted(oauth_admin.create_client(client_id=unique())["client_id"] for _ in range(3))
    listed = oauth_admin.call("GET", f"/tyk/oauth/clients/{OAUTH_API}")
    assert listed.status_code == 200
    mine = [c for c in listed.json() if c["client_id"] in ids]
    assert [c["client_id"] for c in mine] == ids
    assert all(c["secret"] == "" and c["redirect_uri"] == REDIRECT for c in mine)
    assert error(oauth_admin.call("GET", "/tyk/oauth/clients/nope")) == \
        err(404, "OAuth client not found")
    assert error(oauth_admin.client(OAUTH_API, "nope")) == err(404, "OAuth Client ID not found")
    assert error(oauth_admin.client("nope", ids[0])) == err(404, "OAuth Client ID not found")


# -- update, rotate, delete ------------------------------------------------------------


def test_update_replaces_the_fields_and_keeps_the_secret(oauth_admin: OAuthAdmin) -> None:
    created = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API,
                                        meta_data={"a": 1}, description="old")
    client_id, secret = created["client_id"], created["secret"]
    path = f"/tyk/oauth/clients/{OAUTH_API}/{client_id}"
    resp = oauth_admin.call("PUT", path, {"redirect_uri": "http://127.0.0.1/new",
                                          "client_id": "ignored", "secret": "ignored"})
    assert resp.status_code == 200, resp.text
    expected = {"client_id": client_id, "redirect_uri": "http://127.0.0.1/new",
                "secret": "", "meta_data": {}, "description": ""}
    assert resp.json() == expected  # omitted fields cleared, policy_id too
    assert oauth_admin.client(OAUTH_API, client_id).json() == expected
    kept = oauth_admin.call("POST", "/tyk/oauth/revoke_all",
                            form={"client_id": client_id, "client_secret": secret})
    assert kept.status_code == 200, kept.text


def test_update_refusals_change_nothing(oauth_admin: OAuthAdmin) -> None:
    created = oauth_admin.create_client(description="keep")
    path = f"/tyk/oauth/clients/{OAUTH_API}/{created['client_id']}"
    cases = [
        (f"/tyk/oauth/clients/{OAUTH_API}/{created['client_id']}", b"{",
         err(400, "Unmarshalling failed")),
        (path, {"description": 3},
         err(400, "Unmarshalling failed: description: expected a string")),
        (f"/tyk/oauth/clients/nope/{created['client_id']}", {}, err(404, "API doesn't exist")),
        (path, {"policy_id": "nope"}, err(404, "Policy doesn't exist")),
        (path, {"policy_id": "token-pol"},
         err(400, "Policy access rights doesn't contain API this OAuth client belongs to")),
        (f"/tyk/oauth/clients/{OAUTH_API}/nope", {}, err(404, "OAuth Client ID not found")),
    ]
    for where, body, expected in cases:
        if isinstance(body, bytes):
            resp = oauth_admin.call("PUT", where, data=body)
        else:
            resp = oauth_admin.call("PUT", where, body)
        assert error(resp) == expected, body
    assert oauth_admin.client(OAUTH_API, created["client_id"]).json()["description"] == "keep"


def test_rotate_shows_a_new_secret_once(oauth_admin: OAuthAdmin) -> None:
    created = oauth_admin.create_client(description="r")
    client_id, old = created["client_id"], created["secret"]
    resp = oauth_admin.call("PUT", f"/tyk/oauth/clients/{OAUTH_API}/{client_id}/rotate")
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated == {**created, "secret": rotated["secret"]}
    assert rotated["secret"] not in ("", old)
    assert oauth_admin.client(OAUTH_API, client_id).json()["secret"] == ""
    for secret, status in ((old, 401), (rotated["secret"], 200)):
        resp = oauth_admin.call("POST", "/tyk/oauth/revoke_all",
                                form={"client_id": client_id, "client_secret": secret})
        assert resp.status_code == status, resp.text
    assert error(oauth_admin.call("PUT", f"/tyk/oauth/clients/nope/{client_id}/rotate")) == \
        err(404, "API doesn't exist")
    assert error(oauth_admin.call("PUT", f"/tyk/oauth/clients/{OAUTH_API}/nope/rotate")) == \
        err(404, "OAuth Client ID not found")


def test_delete(oauth_admin: OAuthAdmin) -> None:
    client_id = oauth_admin.create_client()["client_id"]
    path = f"/tyk/oauth/clients/{OAUTH_API}/{client_id}"
    resp = oauth_admin.call("DELETE", path)
    assert resp.json() == {"key": client_id, "status": "ok", "action": "deleted"}
    assert error(oauth_admin.client(OAUTH_API, client_id)) == err(404, "OAuth Client ID not found")
    assert error(oauth_admin.call("DELETE", path)) == err(404, "OAuth Client ID not found")
    assert error(oauth_admin.call("DELETE", f"/tyk/oauth/clients/nope/{client_id}")) == \
        err(404, "OAuth Client ID not found")


def test_deleted_clients_tokens_stay_and_are_refused(oauth_admin: OAuthAdmin, oauth_gateway: Any,
                                                     provider: Any, run: Any) -> None:
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    issued = mint(provider, run, OAUTH_API, client_id)
    bearer = {"Authorization": f"Bearer {issued.access_token}"}
    assert requests.get(oauth_gateway.url("/oauth-api/x"), headers=bearer,
                        timeout=5).status_code == 200
    assert oauth_admin.call("DELETE", f"/tyk/oauth/clients/{OAUTH_API}/{client_id}"
                            ).status_code == 200
    assert run(provider.store.get_session(issued.access_key)) is not None
    deadline = time.monotonic() + 5
    while True:
        resp = requests.get(oauth_gateway.url("/oauth-api/x"), headers=bearer, timeout=5)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (resp.status_code, resp.json()) == \
        (403, {"error": "Key not authorised. OAuth client access was revoked"})


def test_a_policy_change_deletes_the_access_tokens(oauth_admin: OAuthAdmin, provider: Any,
                                                    run: Any) -> None:
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    path = f"/tyk/oauth/clients/{OAUTH_API}/{client_id}"
    kept = mint(provider, run, OAUTH_API, client_id, refresh=True)
    # The same policy (other fields changed): the tokens stay.
    assert oauth_admin.call("PUT", path, {"policy_id": "oauth-only", "description": "x"}
                            ).status_code == 200
    assert run(provider.store.get_session(kept.access_key)) is not None
    resp = oauth_admin.call("PUT", path, {"policy_id": "oauth-pol"})
    assert resp.status_code == 200, resp.text
    assert run(provider.store.get_session(kept.access_key)) is None
    assert oauth_admin.call("GET", f"{path}/tokens").json() == []
    # Its refresh token stays (Tyk's invalidateTokens removes access tokens only).
    assert run(provider.refresh_grant(OAUTH_API, kept.refresh_token)) is not None


# -- tokens ---------------------------------------------------------------------------------


def test_tokens_listing_and_pages(oauth_admin: OAuthAdmin, provider: Any, run: Any) -> None:
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    path = f"/tyk/oauth/clients/{OAUTH_API}/{client_id}/tokens"
    assert oauth_admin.call("GET", path).json() == []
    real_clock = provider.clock
    provider.clock = lambda: real_clock() - 7200  # expired an hour ago
    expired = mint(provider, run, OAUTH_API, client_id)
    provider.clock = real_clock
    issued = [mint(provider, run, OAUTH_API, client_id) for _ in range(150)]
    listed = oauth_admin.call("GET", path).json()
    assert {item["code"] for item in listed} == {token.access_key for token in issued}
    assert expired.access_key not in {item["code"] for item in listed}
    assert all(set(item) == {"code", "expires"} for item in listed)
    assert [item["expires"] for item in listed] == sorted(item["expires"] for item in listed)
    assert not {token.access_token for token in issued} & {item["code"] for item in listed}
    pages = {page: oauth_admin.call("GET", f"{path}?page={page}").json()
             for page in ("1", "2", "3", "0", "x")}
    assert list(pages["1"]) == ["Pagination", "Tokens"]
    assert pages["1"]["Pagination"] == {"page_num": 1, "page_total": 2, "page_size": 100}
    assert pages["1"]["Tokens"] == listed[:100]
    assert pages["2"] == {"Pagination": {"page_num": 2, "page_total": 2, "page_size": 100},
                          "Tokens": listed[100:]}
    assert pages["3"]["Tokens"] == []
    assert pages["0"] == pages["x"] == pages["1"]
    assert error(oauth_admin.call("GET", f"/tyk/oauth/clients/nope/{client_id}/tokens")) == \
        err(404, "OAuth Client ID not found")


def test_purge_lapsed(oauth_admin: OAuthAdmin, provider: Any, run: Any) -> None:
    assert error(oauth_admin.call("DELETE", "/tyk/oauth/tokens")) == \
        err(422, "scope parameter is required")
    assert error(oauth_admin.call("DELETE", "/tyk/oauth/tokens?scope=all")) == \
        err(400, "unknown scope")
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    real_clock = provider.clock
    # The gateway keeps expired tokens listed 60 s (oauth_token_expired_retain_period).
    provider.clock = lambda: real_clock() - 3600 - 3  # expired 3 s ago: retained
    retained = mint(provider, run, OAUTH_API, client_id)
    provider.clock = lambda: real_clock() - 3600 - 600  # expired 10 min ago: lapsed
    lapsed = mint(provider, run, OAUTH_API, client_id)
    provider.clock = real_clock
    live = mint(provider, run, OAUTH_API, client_id)
    resp = oauth_admin.call("DELETE", "/tyk/oauth/tokens?scope=lapsed")
    assert resp.json() == {"status": "ok", "message": "lapsed tokens purged"}
    left = {key for key, _ in run(provider.tokens(OAUTH_API, client_id, include_expired=True))}
    assert left == {retained.access_key, live.access_key}
    assert lapsed.access_key not in left


# -- refresh, revoke, revoke_all ------------------------------------------------------------


def test_delete_refresh_token(oauth_admin: OAuthAdmin, provider: Any, run: Any) -> None:
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    issued = mint(provider, run, OAUTH_API, client_id, refresh=True)
    quoted = requests.utils.quote(issued.refresh_token, safe="")
    assert error(oauth_admin.call("DELETE", f"/tyk/oauth/refresh/{quoted}")) == \
        err(400, "Missing parameter api_id")
    assert error(oauth_admin.call("DELETE", f"/tyk/oauth/refresh/{quoted}?api_id=nope")) == \
        err(404, "API for this refresh token not found")
    assert error(oauth_admin.call("DELETE", f"/tyk/oauth/refresh/{quoted}?api_id={TOKEN_API}")
                 ) == err(400, "OAuth is not enabled on this API")
    assert run(provider.refresh_grant(OAUTH_API, issued.refresh_token)) is not None
    resp = oauth_admin.call("DELETE", f"/tyk/oauth/refresh/{quoted}?api_id={OAUTH_API}")
    assert resp.json() == {"key": issued.refresh_token, "status": "ok", "action": "deleted"}
    assert run(provider.refresh_grant(OAUTH_API, issued.refresh_token)) is None
    assert run(provider.store.get_session(issued.access_key)) is not None  # the access token stays


def test_revoke(oauth_admin: OAuthAdmin, provider: Any, run: Any) -> None:
    client_id = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)["client_id"]
    cases = [
        ({"client_id": client_id}, err(400, "token is required")),
        ({"token": "t"}, err(400, "client_id is required")),
        ({"token": "t", "client_id": "nope"}, err(400, "oauth client doesn't exist")),
        ({"token": "t", "client_id": client_id, "org_id": OTHER_ORG},
         err(400, "oauth client doesn't exist")),
    ]
    for form, expected in cases:
        assert error(oauth_admin.call("POST", "/tyk/oauth/revoke", form=form)) == expected, form
    assert error(oauth_admin.call("POST", "/tyk/oauth/revoke", data=b"token=%zz&client_id=a")) \
        == err(400, "cannot parse form. Form malformed")
    one = mint(provider, run, OAUTH_API, client_id, refresh=True)
    two = mint(provider, run, OAUTH_API, client_id, refresh=True)
    ok = {"status": "ok", "message": "token revoked successfully"}
    # The access token, by hint: its refresh token stays.
    resp = oauth_admin.call("POST", "/tyk/oauth/revoke", form={
        "token": one.access_token, "token_type_hint": "access_token", "client_id": client_id,
        "org_id": ORG})
    assert resp.json() == ok
    assert run(provider.store.get_session(one.access_key)) is None
    assert run(provider.refresh_grant(OAUTH_API, one.refresh_token)) is not None
    # A refresh token without a hint.
    resp = oauth_admin.call("POST", "/tyk/oauth/revoke",
                            form={"token": two.refresh_token, "client_id": client_id})
    assert resp.json() == ok
    assert run(provider.refresh_grant(OAUTH_API, two.refresh_token)) is None
    assert run(provider.store.get_session(two.access_key)) is not None


def test_revoke_all(oauth_admin: OAuthAdmin, provider: Any, run: Any) -> None:
    created = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)
    client_id, secret = created["client_id"], created["secret"]
    other = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)
    cases = [
        ({"client_secret": secret}, err(401, "client_id is required")),
        ({"client_id": client_id}, err(401, "client_secret is required")),
        ({"client_id": "nope", "client_secret": secret}, err(404, "oauth client doesn't exist")),
        ({"client_id": client_id, "client_secret": "wrong"}, err(401, "client secret is wrong")),
    ]
    mine = [mint(provider, run, OAUTH_API, client_id, refresh=True) for _ in range(3)]
    theirs = mint(provider, run, OAUTH_API, other["client_id"], refresh=True)
    for form, expected in cases:
        assert error(oauth_admin.call("POST", "/tyk/oauth/revoke_all", form=form)) == expected
    assert all(run(provider.store.get_session(t.access_key)) is not None for t in mine)
    resp = oauth_admin.call("POST", "/tyk/oauth/revoke_all", form={
        "client_id": client_id, "client_secret": secret, "org_id": ORG})
    assert resp.json() == {"status": "ok", "message": "tokens revoked successfully"}
    for token in mine:
        assert run(provider.store.get_session(token.access_key)) is None
        assert run(provider.refresh_grant(OAUTH_API, token.refresh_token)) is None
    assert run(provider.store.get_session(theirs.access_key)) is not None


# -- apis of a client, routing --------------------------------------------------------------


def test_apis_of_a_client(oauth_admin: OAuthAdmin) -> None:
    client_id = unique()
    oauth_admin.create_client(client_id=client_id, api_id=OAUTH_API)
    oauth_admin.create_client(client_id=client_id, api_id=OTHER_OAUTH_API)
    path = f"/tyk/oauth/clients/apis/{client_id}"
    assert oauth_admin.call("GET", f"{path}?orgID={ORG}").json() == [OAUTH_API]
    assert oauth_admin.call("GET", f"{path}?orgID={OTHER_ORG}").json() == [OTHER_OAUTH_API]
    assert sorted(oauth_admin.call("GET", f"{path}?orgID=").json()) == \
        sorted([OAUTH_API, OTHER_OAUTH_API])
    assert oauth_admin.call("GET", "/tyk/oauth/clients/apis/nope?orgID=").json() == []


def test_routing(oauth_admin: OAuthAdmin, oauth_gateway: Any) -> None:
    not_allowed = err(405, "Method not supported")
    for method, path in [("GET", "/tyk/oauth/tokens"), ("GET", "/tyk/oauth/revoke"),
                         ("PUT", "/tyk/oauth/revoke_all"), ("GET", "/tyk/oauth/refresh/x"),
                         ("POST", f"/tyk/oauth/clients/{OAUTH_API}/x"),
                         ("GET", f"/tyk/oauth/clients/{OAUTH_API}/x/rotate"),
                         ("DELETE", f"/tyk/oauth/clients/{OAUTH_API}/x/tokens")]:
        assert error(oauth_admin.call(method, path)) == not_allowed, (method, path)
    for path in ("/tyk/oauth", "/tyk/oauth/nothing", "/tyk/oauth/clients",
                 f"/tyk/oauth/clients/{OAUTH_API}/x/y", "/tyk/oauth/clients//x"):
        assert error(oauth_admin.call("GET", path)) == err(404, "Not found"), path
    # Trailing slashes are ignored, as everywhere under /tyk/.
    assert oauth_admin.call("GET", f"/tyk/oauth/clients/{OAUTH_API}/").status_code == 200
    refused = requests.get(oauth_gateway.url(f"/tyk/oauth/clients/{OAUTH_API}"), timeout=5)
    assert refused.status_code == 403


# -- the routes on tokens issued by /oauth/token (memory store and Redis) ------------------


def test_routes_on_tokens_from_the_token_endpoint(oauth_admin: OAuthAdmin,
                                                  oauth_gateway: Any) -> None:
    """Listing, revoke, refresh deletion, policy change, revoke_all and client
    deletion on tokens the gateway itself issued -- the memory store included,
    where no other process can mint tokens."""
    from .flow_support import approve, code_of, token_request

    created = oauth_admin.create_client(policy_id="oauth-only", api_id=OAUTH_API)
    client_id, secret = created["client_id"], created["secret"]
    creds = (client_id, secret)
    path = f"/tyk/oauth/clients/{OAUTH_API}/{client_id}"

    def cc_token() -> str:
        resp = token_request(oauth_gateway, "/oauth-api/", {"grant_type": "client_credentials"},
                             creds)
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    def status(token: str) -> int:
        return requests.get(oauth_gateway.url("/oauth-api/x"), timeout=5,
                            headers={"Authorization": f"Bearer {token}"}).status_code

    one, two = cc_token(), cc_token()
    approved = approve(oauth_gateway, "/oauth-api/", {"response_type": "code",
                                                      "client_id": client_id,
                                                      "redirect_uri": REDIRECT})
    grant = token_request(oauth_gateway, "/oauth-api/", {
        "grant_type": "authorization_code", "code": code_of(approved.json()["redirect_to"]),
        "redirect_uri": REDIRECT}, creds).json()
    three, refresh = grant["access_token"], grant["refresh_token"]
    listed = oauth_admin.call("GET", f"{path}/tokens").json()
    assert len(listed) == 3
    assert all(set(item) == {"code", "expires"} for item in listed)
    assert not {one, two, three} & {item["code"] for item in listed}  # hashed, never raw
    # /tyk/oauth/revoke: one access token
    resp = oauth_admin.call("POST", "/tyk/oauth/revoke", form={
        "token": one, "token_type_hint": "access_token", "client_id": client_id})
    assert resp.json() == {"status": "ok", "message": "token revoked successfully"}
    assert [status(t) for t in (one, two, three)] == [403, 200, 200]
    # DELETE /tyk/oauth/refresh/{token}: the refresh token only
    quoted = requests.utils.quote(refresh, safe="")
    assert oauth_admin.call("DELETE", f"/tyk/oauth/refresh/{quoted}?api_id={OAUTH_API}"
                            ).status_code == 200
    refused = token_request(oauth_gateway, "/oauth-api/",
                            {"grant_type": "refresh_token", "refresh_token": refresh}, creds)
    assert refused.json()["error"] == "invalid_grant"
    assert status(three) == 200
    # A policy change deletes the client's access tokens.
    assert oauth_admin.call("PUT", path, {"policy_id": "oauth-pol",
                                          "redirect_uri": REDIRECT}).status_code == 200
    assert [status(t) for t in (two, three)] == [403, 403]
    assert oauth_admin.call("GET", f"{path}/tokens").json() == []
    # revoke_all, then deleting the client: its tokens are refused.
    four = cc_token()
    assert status(four) == 200
    assert oauth_admin.call("POST", "/tyk/oauth/revoke_all", form={
        "client_id": client_id, "client_secret": secret}).status_code == 200
    assert status(four) == 403
    five = cc_token()
    assert oauth_admin.call("DELETE", path).status_code == 200
    deadline = time.monotonic() + 5
    while status(five) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    resp = requests.get(oauth_gateway.url("/oauth-api/x"), timeout=5,
                        headers={"Authorization": f"Bearer {five}"})
    assert (resp.status_code, resp.json()) == \
        (403, {"error": "Key not authorised. OAuth client access was revoked"})
