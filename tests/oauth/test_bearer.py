"""Using an OAuth token (:mod:`fastgate.auth.oauth2.bearer`): Tyk's answers,
the client check, and the session's limits -- over real sockets, on the
memory store and a real redis-server.

The tokens here are keys carrying ``oauth_client_id`` made through
``/tyk/keys`` (what the provider's ``/oauth/token`` stores, without running
a grant), so these tests pin the middleware alone; the flows' tests issue
real tokens.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RIGHTS = {"o": {"api_id": "o", "api_name": "o", "versions": ["Default"]}}


def oauth_api(make_api: Any, echo: Any, **fields: Any) -> dict[str, Any]:
    return make_api("o", "/o/", echo.base_url, use_keyless=False, use_oauth2=True,
                    oauth_meta={"allowed_access_types": ["client_credentials"],
                                "allowed_authorize_types": ["code"],
                                "auth_login_redirect": "http://127.0.0.1/login"},
                    **fields)


def new_client(admin: Any) -> str:
    resp = admin.call("POST", "/tyk/oauth/clients/create",
                      {"api_id": "o", "redirect_uri": "http://127.0.0.1/cb"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["client_id"])


def token_for(admin: Any, client_id: str | None, **session: Any) -> str:
    body: dict[str, Any] = {"access_rights": RIGHTS, "rate": 0, "per": 0, "quota_max": -1,
                            "org_id": "test-org", **session}
    if client_id is not None:
        body["oauth_client_id"] = client_id
    resp = admin.call("POST", "/tyk/keys/create", body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["key"])


@pytest.fixture
def gw(gateway_factory: Any, make_api: Any, echo: Any, storage: Any) -> Any:
    return gateway_factory([oauth_api(make_api, echo)], storage=storage)


def upstream_headers(resp: requests.Response) -> dict[str, str]:
    """The headers the echo upstream received (lower-cased names)."""
    return {name.lower(): value for name, value in resp.json()["headers"]}


def get(gw: Any, headers: dict[str, str] | None = None, path: str = "/o/x") -> requests.Response:
    return requests.get(gw.url(path), headers=headers or {}, timeout=5)


def test_tyks_answers(gw: Any) -> None:
    cases = [
        ({}, 400, "Authorization field missing"),
        ({"Authorization": "justatoken"}, 400, "Authorization field missing"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 400, "Bearer token malformed"),
        ({"Authorization": "Bearer nosuchtoken"}, 403, "Key not authorised"),
    ]
    for headers, status, message in cases:
        resp = get(gw, headers)
        assert (resp.status_code, resp.json()) == (status, {"error": message}), headers


def test_a_token_of_a_client_is_served(gw: Any, admin_for: Any) -> None:
    admin = admin_for(gw)
    token = token_for(admin, new_client(admin))
    for scheme in ("Bearer", "bearer", "BEARER"):
        resp = get(gw, {"Authorization": f"{scheme} {token}"})
        assert resp.status_code == 200, resp.text
        # The credential goes upstream unless strip_auth_data says otherwise.
        assert upstream_headers(resp)["authorization"] == f"{scheme} {token}"


def test_a_key_of_no_client_is_refused(gw: Any, admin_for: Any) -> None:
    token = token_for(admin_for(gw), None)
    resp = get(gw, {"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorised. OAuth client access was revoked"}


def test_a_deleted_clients_tokens_are_refused(gw: Any, admin_for: Any) -> None:
    admin = admin_for(gw)
    client_id = new_client(admin)
    token = token_for(admin, client_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert get(gw, headers).status_code == 200  # the client is cached now
    assert admin.call("DELETE", f"/tyk/oauth/clients/o/{client_id}").status_code == 200
    resp = get(gw, headers)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorised. OAuth client access was revoked"}
    # The session itself is still there (Tyk keeps the tokens).
    assert admin.call("GET", f"/tyk/keys/{token}").status_code == 200


def test_the_tokens_session_limits_apply(gw: Any, admin_for: Any) -> None:
    admin = admin_for(gw)
    client_id = new_client(admin)
    limited = token_for(admin, client_id, rate=2, per=60)
    other = token_for(admin, client_id, rate=2, per=60)
    statuses = [get(gw, {"Authorization": f"Bearer {limited}"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # Per token: another token of the same client has its own bucket.
    assert get(gw, {"Authorization": f"Bearer {other}"}).status_code == 200


def test_access_rights_of_the_session(gateway_factory: Any, make_api: Any, echo: Any,
                                      admin_for: Any) -> None:
    apis = [oauth_api(make_api, echo),
            make_api("p", "/p/", echo.base_url, use_keyless=False, use_oauth2=True)]
    gw = gateway_factory(apis)
    admin = admin_for(gw)
    token = token_for(admin, new_client(admin))
    headers = {"Authorization": f"Bearer {token}"}
    assert get(gw, headers).status_code == 200
    resp = get(gw, headers, "/p/x")
    assert resp.status_code == 403  # no access to p (and no client there either)


def test_param_and_cookie_and_strip(gateway_factory: Any, make_api: Any, echo: Any,
                                    admin_for: Any) -> None:
    api = oauth_api(make_api, echo, strip_auth_data=True,
                    auth_configs={"oauth": {"use_param": True, "param_name": "access_token",
                                            "use_cookie": True, "cookie_name": "tok"}})
    gw = gateway_factory([api])
    admin = admin_for(gw)
    token = token_for(admin, new_client(admin))
    resp = requests.get(gw.url(f"/o/x?access_token={token}&a=1"), timeout=5)
    assert resp.status_code == 200, resp.text
    assert resp.json()["url"] == "/x?a=1"  # stripped before going upstream
    resp = requests.get(gw.url("/o/x"), cookies={"tok": token}, timeout=5)
    assert resp.status_code == 200, resp.text
    resp = get(gw, {"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert "authorization" not in upstream_headers(resp)


@pytest.mark.redis
def test_a_client_deleted_on_one_node_is_refused_on_the_other(
        gateway_factory: Any, make_api: Any, echo: Any, admin_for: Any,
        redis_flush: Any) -> None:
    storage = {"type": "redis", "host": redis_flush.host, "port": redis_flush.port}
    apis = [oauth_api(make_api, echo)]
    one, other = gateway_factory(apis, storage=storage), gateway_factory(apis, storage=storage)
    admin = admin_for(one)
    client_id = new_client(admin)
    headers = {"Authorization": f"Bearer {token_for(admin, client_id)}"}
    assert get(other, headers).status_code == 200
    assert admin.call("DELETE", f"/tyk/oauth/clients/o/{client_id}").status_code == 200
    deadline = time.monotonic() + 1.0
    while get(other, headers).status_code == 200:
        assert time.monotonic() < deadline, "the other node still serves the deleted client"
        time.sleep(0.01)
    assert get(other, headers).json() == {
        "error": "Key not authorised. OAuth client access was revoked"}
