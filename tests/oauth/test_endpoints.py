"""The OAuth 2.0 provider endpoints' protocol edges over real HTTP, against
real gateways (memory store and real redis-server): methods and trailing
slashes, every refusal of ``/oauth/authorize``,
``/tyk/oauth/authorize-client``, ``/oauth/token``, ``/oauth/revoke``,
``/oauth/revoke_all`` and ``/oauth/introspect`` with its exact body in RFC
mode and in Tyk's (``oauth_error_status_code: 403``), the request-body
limits, and the RFC 8414 metadata document.  The happy flows with real OAuth
clients are in ``test_flows.py``.

After every test the gateways it used still answer (``keeps_serving``).
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import pytest
import requests

from fastgate.auth.oauth2.protocol import pkce_challenge

from .conftest import (
    OAUTH_API,
    OTHER_OAUTH_API,
    POLICIES,
    REDIRECT,
    OAuthAdmin,
    oauth_api,
    policy,
)

LISTEN = "/oauth-api/"
LOGIN = "http://127.0.0.1/login"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = pkce_challenge(VERIFIER)

#: osin's error descriptions (RFC 6749's wording), written out here on purpose.
OSIN = {
    "invalid_request": "The request is missing a required parameter, includes an invalid "
                       "parameter value, includes a parameter more than once, or is "
                       "otherwise malformed.",
    "unauthorized_client": "The client is not authorized to request a token using this "
                           "method.",
    "unsupported_response_type": "The authorization server does not support obtaining a "
                                 "token using this method.",
    "server_error": "The authorization server encountered an unexpected condition that "
                    "prevented it from fulfilling the request.",
    "unsupported_grant_type": "The authorization grant type is not supported by the "
                              "authorization server.",
    "invalid_grant": "The provided authorization grant (e.g., authorization code, resource "
                     "owner credentials) or refresh token is invalid, expired, revoked, does "
                     "not match the redirection URI used in the authorization request, or "
                     "was issued to another client.",
    "invalid_client": "Client authentication failed (e.g., unknown client, no client "
                      "authentication included, or unsupported authentication method).",
}
METHOD_NOT_SUPPORTED = {"status": "error", "message": "Method not supported"}
ADMIN_REFUSED = {"status": "error",
                 "message": "Attempted administrative access with invalid or missing key!"}
TOO_LARGE = {"status": "error", "message": "Request body too large for the OAuth endpoint"}

# The edge gateway: oauth_redirect_uri_separator ";" and APIs with special oauth_meta.
NARROW_API, NARROW = "narrow-api", "/narrow/"      # no password/refresh grant, code only
PKCE_API, PKCE = "pkce-api", "/pkce/"              # oauth_meta.require_pkce
BARE_API, BARE = "bare-api", "/bare/"              # no authorize types at all
EDGE_POLICIES = {"edge-pol": policy("edge-pol", NARROW_API, PKCE_API, BARE_API)}
SECOND = "http://127.0.0.1/other"


@pytest.fixture(scope="module")
def edge_gateway(oauth_store: Any, module_gateway_factory: Any, echo: Any) -> Any:
    def meta(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "allowed_access_types": ["authorization_code", "refresh_token",
                                     "client_credentials", "password"],
            "allowed_authorize_types": ["code", "token"],
            "auth_login_redirect": LOGIN}
        base.update(fields)
        return base

    apis = [
        oauth_api(NARROW_API, NARROW, echo.base_url, oauth_meta=meta(
            allowed_access_types=["authorization_code", "client_credentials"],
            allowed_authorize_types=["code"],
            auth_login_redirect=LOGIN + "?from=gw")),
        oauth_api(PKCE_API, PKCE, echo.base_url, oauth_meta=meta(require_pkce=True)),
        oauth_api(BARE_API, BARE, echo.base_url, oauth_meta=meta(
            allowed_access_types=["client_credentials"], allowed_authorize_types=[])),
    ]
    gateway = module_gateway_factory(apis, start=False, storage=oauth_store.config,
                                     oauth_redirect_uri_separator=";")
    (gateway.root / "policies.json").write_text(json.dumps(EDGE_POLICIES))
    gateway.start()
    return gateway


@pytest.fixture(scope="module")
def tyk_gateway(oauth_store: Any, module_gateway_factory: Any, echo: Any) -> Any:
    """Tyk's error statuses: ``oauth_error_status_code: 403``."""
    gateway = module_gateway_factory([oauth_api(OAUTH_API, LISTEN, echo.base_url)],
                                     start=False, storage=oauth_store.config,
                                     oauth_error_status_code=403)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    return gateway


@pytest.fixture(autouse=True)
def keeps_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test, each gateway it used is alive and answers its APIs."""
    yield
    for name, listen in (("oauth_gateway", LISTEN), ("edge_gateway", NARROW),
                         ("tyk_gateway", LISTEN)):
        if name not in request.fixturenames:
            continue
        gateway = request.getfixturevalue(name)
        assert gateway.proc.poll() is None, gateway.logs()
        assert requests.get(gateway.url("/hello"), timeout=10).status_code == 200
        doc = requests.get(gateway.url(listen + ".well-known/oauth-authorization-server"),
                           timeout=10)
        assert doc.status_code == 200, doc.text


def new_client(gateway: Any, api_id: str = OAUTH_API, policy_id: str = "oauth-pol",
               **fields: Any) -> dict[str, Any]:
    return OAuthAdmin(gateway).create_client(api_id=api_id, policy_id=policy_id, **fields)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """``Authorization: Basic`` of the raw id and secret."""
    return {"Authorization": "Basic " + base64.b64encode(
        f"{client_id}:{secret}".encode()).decode()}


def creds(client: dict[str, Any]) -> dict[str, str]:
    return basic(client["client_id"], client["secret"])


def token(gateway: Any, form: Any = None, *, headers: dict[str, str] | None = None,
          listen: str = LISTEN, **kwargs: Any) -> requests.Response:
    return requests.post(gateway.url(listen + "oauth/token"), data=form, headers=headers,
                         timeout=10, **kwargs)


def oauth_error(resp: requests.Response) -> tuple[int, Any]:
    return resp.status_code, resp.json()


def authorize_query(client_id: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            **extra}


def authorize(gateway: Any, params: dict[str, str], listen: str = LISTEN
              ) -> requests.Response:
    return requests.get(gateway.url(listen + "oauth/authorize"), params=params,
                        allow_redirects=False, timeout=10)


def approve(gateway: Any, form: dict[str, str], listen: str = LISTEN,
            secret: str | None = None) -> requests.Response:
    headers = {"X-Tyk-Authorization": gateway.secret if secret is None else secret}
    return requests.post(gateway.url(listen + "tyk/oauth/authorize-client/"), data=form,
                         headers=headers, timeout=10)


def client_credentials(gateway: Any, client: dict[str, Any], listen: str = LISTEN
                       ) -> dict[str, Any]:
    resp = token(gateway, {"grant_type": "client_credentials"}, headers=creds(client),
                 listen=listen)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


# -- methods and paths ---------------------------------------------------------------------

ROUTES = [
    ("oauth/authorize", "GET, POST", ["PUT", "DELETE", "PATCH"]),
    ("tyk/oauth/authorize-client", "POST", ["GET", "PUT", "DELETE"]),
    ("oauth/token", "GET, POST", ["PUT", "DELETE"]),
    ("oauth/revoke", "POST", ["GET", "DELETE"]),
    ("oauth/revoke_all", "POST", ["GET", "PUT"]),
    ("oauth/introspect", "POST", ["GET", "PATCH"]),
    (".well-known/oauth-authorization-server", "GET", ["POST", "DELETE"]),
]


@pytest.mark.parametrize("slash", ["", "/"])
@pytest.mark.parametrize(("path", "allow", "methods"), ROUTES)
def test_wrong_method_is_405(oauth_gateway: Any, path: str, allow: str, methods: list[str],
                             slash: str) -> None:
    for method in methods:
        resp = requests.request(method, oauth_gateway.url(LISTEN + path + slash), timeout=10)
        assert resp.status_code == 405, (method, resp.text)
        assert resp.json() == METHOD_NOT_SUPPORTED
        assert resp.headers["Allow"] == allow


def test_tyk_mode_405_is_the_same(tyk_gateway: Any) -> None:
    resp = requests.put(tyk_gateway.url(LISTEN + "oauth/token"), timeout=10)
    assert (resp.status_code, resp.json()) == (405, METHOD_NOT_SUPPORTED)


@pytest.mark.parametrize("slash", ["", "/"])
def test_trailing_slash_variants_answer(oauth_gateway: Any, slash: str) -> None:
    client = new_client(oauth_gateway)
    resp = requests.post(oauth_gateway.url(LISTEN + "oauth/token" + slash),
                         data={"grant_type": "client_credentials"}, headers=creds(client),
                         timeout=10)
    assert resp.status_code == 200, resp.text
    got = requests.get(oauth_gateway.url(LISTEN + "oauth/authorize" + slash),
                       params=authorize_query(client["client_id"]), allow_redirects=False,
                       timeout=10)
    assert got.status_code == 307
    revoke = requests.post(oauth_gateway.url(LISTEN + "oauth/revoke" + slash),
                           data={"token": "x"}, timeout=10)
    assert revoke.status_code == 200
    doc = requests.get(oauth_gateway.url(LISTEN + ".well-known/oauth-authorization-server"
                                         + slash), timeout=10)
    assert doc.status_code == 200 and doc.json()["issuer"].endswith("/oauth-api")


@pytest.mark.parametrize("path", ["oauth/tokens", "oauth/token//", "oauth", "Oauth/token",
                                  "x/oauth/token"])
def test_other_paths_are_not_endpoints(oauth_gateway: Any, path: str) -> None:
    """Paths near the endpoints' go to the bearer check, not the provider."""
    resp = requests.post(oauth_gateway.url(LISTEN + path),
                         data={"grant_type": "client_credentials"}, timeout=10)
    assert resp.status_code in (400, 401, 403), resp.text
    assert "error_description" not in resp.text
    assert "access_token" not in resp.text


# -- /oauth/authorize --------------------------------------------------------------------------


def test_authorize_unsupported_response_type(oauth_gateway: Any, edge_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    for value in ("bogus", "", "CODE", "code token"):
        resp = authorize(oauth_gateway, authorize_query(client["client_id"],
                                                        response_type=value))
        assert oauth_error(resp) == (400, {"status": "error",
                                           "message": OSIN["unsupported_response_type"]})
    # response_type=token on an API whose allowed_authorize_types is ["code"].
    narrow = new_client(edge_gateway, NARROW_API, "edge-pol")
    resp = authorize(edge_gateway, authorize_query(narrow["client_id"], response_type="token"),
                     NARROW)
    assert oauth_error(resp) == (400, {"status": "error",
                                       "message": OSIN["unsupported_response_type"]})


def test_authorize_unknown_client(oauth_gateway: Any, tyk_gateway: Any) -> None:
    resp = authorize(oauth_gateway, authorize_query("no-such-client"))
    assert oauth_error(resp) == (400, {"status": "error",
                                       "message": OSIN["unauthorized_client"]})
    assert resp.headers["Cache-Control"] == "no-store"
    resp = authorize(tyk_gateway, authorize_query("no-such-client"))
    assert oauth_error(resp) == (403, {"status": "error", "message": OSIN["server_error"]})
    missing = authorize(oauth_gateway, {"response_type": "code", "redirect_uri": REDIRECT})
    assert oauth_error(missing) == (400, {"status": "error",
                                          "message": "client_id is required"})


def test_authorize_client_of_another_api(oauth_gateway: Any) -> None:
    other = new_client(oauth_gateway, OTHER_OAUTH_API, "other-pol")
    resp = authorize(oauth_gateway, authorize_query(other["client_id"]))
    assert oauth_error(resp) == (400, {"status": "error",
                                       "message": OSIN["unauthorized_client"]})


@pytest.mark.parametrize("redirect", ["http://127.0.0.1/cbx", "http://evil/cb",
                                      "http://127.0.0.1@evil/cb", REDIRECT + "/../admin",
                                      REDIRECT + "#x", "/cb", "https://127.0.0.1/cb"])
def test_authorize_redirect_mismatch(oauth_gateway: Any, redirect: str) -> None:
    client = new_client(oauth_gateway)
    resp = authorize(oauth_gateway, authorize_query(client["client_id"],
                                                    redirect_uri=redirect))
    assert oauth_error(resp) == (400, {"status": "error", "message": OSIN["invalid_request"]})
    assert "Location" not in resp.headers


def test_authorize_redirect_default_and_sub_path(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    query = authorize_query(client["client_id"])
    del query["redirect_uri"]
    assert authorize(oauth_gateway, query).status_code == 307  # the only URI: the default
    below = authorize(oauth_gateway, authorize_query(client["client_id"],
                                                     redirect_uri=REDIRECT + "/deeper?x=1"))
    assert below.status_code == 307


def test_several_registered_uris_with_separator(edge_gateway: Any,
                                                oauth_gateway: Any) -> None:
    """``oauth_redirect_uri_separator: ";"``: each URI is allowed; with several,
    the request must name one."""
    both = f"{REDIRECT};{SECOND}"
    client = new_client(edge_gateway, NARROW_API, "edge-pol", redirect_uri=both)
    cid = client["client_id"]
    for uri in (REDIRECT, SECOND, SECOND + "/below"):
        assert authorize(edge_gateway, authorize_query(cid, redirect_uri=uri),
                         NARROW).status_code == 307, uri
    bare = {"response_type": "code", "client_id": cid}
    assert oauth_error(authorize(edge_gateway, bare, NARROW)) == (
        400, {"status": "error", "message": "redirect_uri is required: the client has several"})
    wrong = authorize(edge_gateway, authorize_query(cid, redirect_uri=both), NARROW)
    assert wrong.status_code == 400
    # The code is bound to the URI the request named.
    approved = approve(edge_gateway, authorize_query(cid, redirect_uri=SECOND), NARROW)
    assert approved.status_code == 200, approved.text
    assert approved.json()["redirect_to"].startswith(SECOND + "?code=")
    code = approved.json()["code"]
    resp = token(edge_gateway, {"grant_type": "authorization_code", "code": code,
                                "redirect_uri": REDIRECT}, headers=creds(client),
                 listen=NARROW)
    assert oauth_error(resp) == (400, {"error": "invalid_request", "error_description":
                                       "redirect_uri differs from the authorization "
                                       "request's"})
    # Without a separator the same text is one (odd) URI: the second is not allowed.
    single = new_client(oauth_gateway, redirect_uri=both)
    resp = authorize(oauth_gateway, authorize_query(single["client_id"], redirect_uri=SECOND))
    assert resp.status_code == 400


def _raw_get(gateway: Any, target: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_authorize_307_keeps_the_query_byte_for_byte(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    query = (f"response_type=code&client_id={client['client_id']}"
             f"&redirect_uri=http%3a%2F%2F127.0.0.1%2fcb&state=a%20b+c%7E%2B"
             f"&scope=read%20write&code_challenge={CHALLENGE}&code_challenge_method=S256"
             f"&extra=")
    resp = _raw_get(oauth_gateway, LISTEN + "oauth/authorize?" + query)
    assert resp.status == 307
    assert resp.getheader("Location") == LOGIN + "?" + query
    assert resp.getheader("Cache-Control") == "no-store"
    assert resp.getheader("Content-Length") == "0"


def test_authorize_307_joins_an_existing_query(edge_gateway: Any) -> None:
    client = new_client(edge_gateway, NARROW_API, "edge-pol")
    query = urlencode(authorize_query(client["client_id"], state="s"))
    resp = _raw_get(edge_gateway, NARROW + "oauth/authorize?" + query)
    assert resp.status == 307
    assert resp.getheader("Location") == LOGIN + "?from=gw&" + query


def test_authorize_post_redirects_bare(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    resp = requests.post(oauth_gateway.url(LISTEN + "oauth/authorize"),
                         data=authorize_query(client["client_id"], state="s"),
                         allow_redirects=False, timeout=10)
    assert resp.status_code == 307
    assert resp.headers["Location"] == LOGIN
    # A POST's query is not carried either (only a GET's is).
    resp = requests.post(oauth_gateway.url(LISTEN + "oauth/authorize"),
                         params=authorize_query(client["client_id"]), allow_redirects=False,
                         timeout=10)
    assert (resp.status_code, resp.headers["Location"]) == (307, LOGIN)
    # The POST's form is checked like a GET's query.
    bad = requests.post(oauth_gateway.url(LISTEN + "oauth/authorize"),
                        data=authorize_query("nobody"), allow_redirects=False, timeout=10)
    assert bad.status_code == 400 and "Location" not in bad.headers


def test_authorize_pkce_refusals(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    cases = [
        ({"code_challenge": VERIFIER, "code_challenge_method": "plain"},
         "code_challenge_method must be S256 (plain is not accepted)"),
        ({"code_challenge": CHALLENGE}, "code_challenge_method must be S256 (plain is not "
                                        "accepted)"),  # absent means plain (RFC 7636 §4.3)
        ({"code_challenge_method": "S256"},
         "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]"),
        ({"code_challenge": "short", "code_challenge_method": "S256"},
         "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]"),
        ({"code_challenge": CHALLENGE + "=", "code_challenge_method": "S256"},
         "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]"),
        ({"code_challenge": CHALLENGE, "code_challenge_method": "s256"},
         "code_challenge_method must be S256 (plain is not accepted)"),
    ]
    for extra, message in cases:
        resp = authorize(oauth_gateway, authorize_query(cid, **extra))
        assert oauth_error(resp) == (400, {"status": "error", "message": message}), extra
    ok = authorize(oauth_gateway, authorize_query(cid, code_challenge=CHALLENGE,
                                                  code_challenge_method="S256"))
    assert ok.status_code == 307


def test_require_pkce(edge_gateway: Any) -> None:
    """``oauth_meta.require_pkce``: a confidential client's code request needs
    a challenge too; the implicit grant is not concerned."""
    cid = new_client(edge_gateway, PKCE_API, "edge-pol")["client_id"]
    resp = authorize(edge_gateway, authorize_query(cid), PKCE)
    assert oauth_error(resp) == (400, {"status": "error",
                                       "message": "code_challenge is required (PKCE, S256)"})
    refused = approve(edge_gateway, authorize_query(cid, state="st"), PKCE)
    assert refused.status_code == 400 and "code" not in refused.json()
    with_pkce = authorize(edge_gateway, authorize_query(
        cid, code_challenge=CHALLENGE, code_challenge_method="S256"), PKCE)
    assert with_pkce.status_code == 307
    implicit = authorize(edge_gateway, authorize_query(cid, response_type="token"), PKCE)
    assert implicit.status_code == 307


def test_authorize_bad_parameters(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    dup = requests.get(oauth_gateway.url(LISTEN + "oauth/authorize") +
                       f"?response_type=code&client_id={cid}&client_id={cid}",
                       allow_redirects=False, timeout=10)
    assert oauth_error(dup) == (400, {"status": "error", "message":
                                      "invalid_request: client_id is given more than once"})
    bad = _raw_get(oauth_gateway, LISTEN + f"oauth/authorize?response_type=code&client_id={cid}"
                   "&state=%zz")
    assert bad.status == 400


# -- /tyk/oauth/authorize-client ---------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "wrong", "test-secret-353", "x" * 200])
def test_authorize_client_needs_the_gateway_secret(oauth_gateway: Any, secret: str) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    headers = {"X-Tyk-Authorization": secret} if secret else {}
    resp = requests.post(oauth_gateway.url(LISTEN + "tyk/oauth/authorize-client/"),
                         data=authorize_query(cid), headers=headers, timeout=10)
    assert (resp.status_code, resp.json()) == (403, ADMIN_REFUSED)
    assert "code" not in resp.text


def test_authorize_client_refusal_is_403_in_both_modes(tyk_gateway: Any) -> None:
    cid = new_client(tyk_gateway)["client_id"]
    resp = approve(tyk_gateway, authorize_query(cid), secret="nope")
    assert (resp.status_code, resp.json()) == (403, ADMIN_REFUSED)


def test_authorize_client_refuses_before_reading_the_form(oauth_gateway: Any) -> None:
    """Without the secret the answer is the 403, whatever the form holds (the
    endpoint says nothing else to someone who is not the login service)."""
    for body in ("client_id=%zz", "client_id=a&client_id=b", "state=x;y"):
        resp = requests.post(oauth_gateway.url(LISTEN + "tyk/oauth/authorize-client/"),
                             data=body, timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (resp.status_code, resp.json()) == (403, ADMIN_REFUSED), body
    # With the secret, the malformed form is the login service's error to see.
    resp = requests.post(oauth_gateway.url(LISTEN + "tyk/oauth/authorize-client/"),
                         data="client_id=%zz", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Tyk-Authorization": oauth_gateway.secret})
    assert oauth_error(resp) == (400, {"error": "invalid_request",
                                       "error_description": "the form is malformed"})


def _code_records(oauth_store: Any) -> int:
    return len(oauth_store.redis.client().keys("*oauth-code*"))


@pytest.mark.parametrize(("rules", "message"), [
    ("not json", "key_rules is not JSON"),
    ("[1, 2]", "key_rules must be a session object"),
    ('"text"', "key_rules must be a session object"),
])
def test_bad_key_rules_issue_no_code(oauth_gateway: Any, oauth_store: Any, rules: str,
                                     message: str) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    before = _code_records(oauth_store) if oauth_store.redis else 0
    resp = approve(oauth_gateway, {**authorize_query(cid, state="st"), "key_rules": rules})
    assert oauth_error(resp) == (400, {"error": "invalid_request", "error_description": message,
                                       "state": "st"})
    if oauth_store.redis:
        assert _code_records(oauth_store) == before
        # (and a good approval does write one: the count is a real measure)
        assert approve(oauth_gateway, authorize_query(cid)).status_code == 200
        assert _code_records(oauth_store) == before + 1


def test_key_rules_that_are_not_a_session(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    resp = approve(oauth_gateway, {**authorize_query(cid),
                                   "key_rules": json.dumps({"rate": "fast"})})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith("key_rules is not a valid session: ")
    assert "code" not in body and "redirect_to" not in body


def test_authorize_client_errors_carry_redirect_once_known(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    # The redirect URI is good: the user can be sent back with the error and the state.
    resp = approve(oauth_gateway, authorize_query(cid, state="st-1", code_challenge=VERIFIER,
                                                  code_challenge_method="plain"))
    assert resp.status_code == 400
    body = resp.json()
    description = "code_challenge_method must be S256 (plain is not accepted)"
    redirect_to = body.pop("redirect_to")
    assert body == {"error": "invalid_request", "error_description": description,
                    "state": "st-1"}
    parts = urlsplit(redirect_to)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    assert dict(parse_qsl(parts.query)) == {"error": "invalid_request",
                                            "error_description": description,
                                            "state": "st-1"}
    assert not parts.fragment
    # Before the redirect is known to be the client's, never a redirect_to.
    for form in (authorize_query("nobody", state="st-2"),
                 authorize_query(cid, state="st-2", redirect_uri="http://evil/cb"),
                 authorize_query(cid, state="st-2", response_type="bogus")):
        resp = approve(oauth_gateway, form)
        assert resp.status_code == 400, form
        assert "redirect_to" not in resp.json(), form
        assert resp.json()["state"] == "st-2"


def test_authorize_client_code_answer_joins_a_registered_query(oauth_gateway: Any) -> None:
    with_query = REDIRECT + "?tenant=a%20b"
    cid = new_client(oauth_gateway, redirect_uri=with_query)["client_id"]
    resp = approve(oauth_gateway, authorize_query(cid, redirect_uri=with_query, state="s t"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"code", "state", "redirect_to"} and body["state"] == "s t"
    parts = urlsplit(body["redirect_to"])
    assert parse_qs(parts.query) == {"tenant": ["a b"], "code": [body["code"]],
                                     "state": ["s t"]}
    assert resp.headers["Cache-Control"] == "no-store"


def test_authorize_client_token_answer(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway)["client_id"]
    resp = approve(oauth_gateway, authorize_query(cid, response_type="token", state="xyz"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "state", "redirect_to"}
    assert body["token_type"] == "bearer" and body["state"] == "xyz"
    assert body["expires_in"] == 3600
    parts = urlsplit(body["redirect_to"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    assert not parts.query  # the token is in the fragment only, never the query
    assert dict(parse_qsl(parts.fragment)) == {
        "access_token": body["access_token"], "token_type": "bearer", "expires_in": "3600",
        "state": "xyz"}
    used = requests.get(oauth_gateway.url(LISTEN + "implicit"), timeout=10,
                        headers={"Authorization": "Bearer " + body["access_token"]})
    assert used.status_code == 200


# -- /oauth/token ------------------------------------------------------------------------------


def test_token_get_is_invalid_request(oauth_gateway: Any, tyk_gateway: Any) -> None:
    expected = {"error": "invalid_request", "error_description": "the token endpoint takes POST"}
    for gateway, status in ((oauth_gateway, 400), (tyk_gateway, 403)):
        resp = requests.get(gateway.url(LISTEN + "oauth/token"),
                            params={"grant_type": "client_credentials"}, timeout=10)
        assert oauth_error(resp) == (status, expected)
        assert resp.headers["Cache-Control"] == "no-store"


def test_disallowed_grant(edge_gateway: Any, oauth_gateway: Any) -> None:
    narrow = new_client(edge_gateway, NARROW_API, "edge-pol")
    expected = {"error": "unsupported_grant_type",
                "error_description": OSIN["unsupported_grant_type"]}
    for form in ({"grant_type": "password", "username": "u", "password": "p"},
                 {"grant_type": "refresh_token", "refresh_token": "r"}):
        resp = token(edge_gateway, form, headers=creds(narrow), listen=NARROW)
        assert oauth_error(resp) == (400, expected), form
    assert client_credentials(edge_gateway, narrow, NARROW)["token_type"] == "bearer"
    client = new_client(oauth_gateway)
    for form in ({}, {"grant_type": ""}, {"grant_type": "implicit"},
                 {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                 {"grant_type": "CLIENT_CREDENTIALS"}):
        resp = token(oauth_gateway, form, headers=creds(client))
        assert oauth_error(resp) == (400, expected), form


@pytest.fixture(params=["rfc", "tyk"])
def mode(request: pytest.FixtureRequest, oauth_store: Any) -> tuple[str, Any]:
    """``(kind, gateway)``: RFC 6749's error statuses, then Tyk's (403)."""
    name = "oauth_gateway" if request.param == "rfc" else "tyk_gateway"
    return request.param, request.getfixturevalue(name)


def test_client_authentication_failures(mode: tuple[str, Any]) -> None:
    kind, gateway = mode
    client = new_client(gateway)
    grant = {"grant_type": "client_credentials"}
    rfc = kind == "rfc"
    cases = [
        ("no credentials", grant, {}, "invalid_client" if rfc else "invalid_request"),
        ("wrong secret", grant, basic(client["client_id"], client["secret"] + "x"),
         "invalid_client" if rfc else "unauthorized_client"),
        ("empty secret", grant, basic(client["client_id"], ""),
         "invalid_client" if rfc else "unauthorized_client"),
        ("wrong secret in the body", {**grant, "client_id": client["client_id"],
                                      "client_secret": "nope"}, {},
         "invalid_client" if rfc else "unauthorized_client"),
        ("unknown client", grant, basic("no-such-client", "x"),
         "invalid_client" if rfc else "server_error"),
        ("unknown client in the body", {**grant, "client_id": "no-such-client",
                                        "client_secret": "x"}, {},
         "invalid_client" if rfc else "server_error"),
    ]
    for label, form, headers, error in cases:
        resp = token(gateway, form, headers=headers)
        assert oauth_error(resp) == (401 if rfc else 403,
                                     {"error": error, "error_description": OSIN[error]}), label
        assert resp.headers["Cache-Control"] == "no-store", label
        if rfc:
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="oauth"', label
        else:
            assert "WWW-Authenticate" not in resp.headers, label
    assert client_credentials(gateway, client)["token_type"] == "bearer"


def test_client_of_another_api_is_unknown(oauth_gateway: Any) -> None:
    other = new_client(oauth_gateway, OTHER_OAUTH_API, "other-pol")
    resp = token(oauth_gateway, {"grant_type": "client_credentials"}, headers=creds(other))
    assert oauth_error(resp) == (401, {"error": "invalid_client",
                                       "error_description": OSIN["invalid_client"]})
    assert client_credentials(oauth_gateway, other, "/oauth-other/")["access_token"]


def test_basic_and_body_secret_together(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    resp = token(oauth_gateway, {"grant_type": "client_credentials",
                                 "client_secret": client["secret"]}, headers=creds(client))
    assert oauth_error(resp) == (400, {
        "error": "invalid_request", "error_description": "the client authenticates once: "
        "Authorization: Basic or client_secret in the body, not both"})
    assert "WWW-Authenticate" not in resp.headers


def test_body_client_id_must_match_basic(oauth_gateway: Any) -> None:
    client, other = new_client(oauth_gateway), new_client(oauth_gateway)
    resp = token(oauth_gateway, {"grant_type": "client_credentials",
                                 "client_id": other["client_id"]}, headers=creds(client))
    assert oauth_error(resp) == (400, {"error": "invalid_request", "error_description":
                                       "client_id differs from the Basic credentials"})
    same = token(oauth_gateway, {"grant_type": "client_credentials",
                                 "client_id": client["client_id"]}, headers=creds(client))
    assert same.status_code == 200, same.text


def test_malformed_basic_header(oauth_gateway: Any) -> None:
    for header, problem in (("Basic !!!", "the Basic credentials are not base64 of UTF-8 text"),
                            ("Basic " + base64.b64encode(b"no-colon").decode(),
                             "the Basic credentials have no ':'")):
        resp = token(oauth_gateway, {"grant_type": "client_credentials"},
                     headers={"Authorization": header})
        assert oauth_error(resp) == (400, {"error": "invalid_request",
                                           "error_description": problem})


def test_secret_with_reserved_characters(oauth_gateway: Any) -> None:
    """RFC 6749 §2.3.1 encodes id and secret before base64; Tyk and
    requests-oauthlib send them raw.  Both readings authenticate."""
    secret = "p+q:r%3As t"
    client = new_client(oauth_gateway, secret=secret)
    cid = client["client_id"]
    encoded = quote(cid, safe="") + ":" + quote(secret, safe="").replace("%20", "+")
    for header in ("Basic " + base64.b64encode(encoded.encode()).decode(),
                   basic(cid, secret)["Authorization"]):
        resp = token(oauth_gateway, {"grant_type": "client_credentials"},
                     headers={"Authorization": header})
        assert resp.status_code == 200, (header, resp.text)
    post = token(oauth_gateway, {"grant_type": "client_credentials", "client_id": cid,
                                 "client_secret": secret})
    assert post.status_code == 200
    near = token(oauth_gateway, {"grant_type": "client_credentials"},
                 headers=basic(cid, "p q:r:s t"))
    assert near.status_code == 401


def test_public_client_grants(oauth_gateway: Any) -> None:
    public = new_client(oauth_gateway, public=True)
    cid = public["client_id"]
    expected = (401, {"error": "invalid_client", "error_description": OSIN["invalid_client"]})
    for form in ({"grant_type": "client_credentials", "client_id": cid},
                 {"grant_type": "password", "client_id": cid, "username": "u",
                  "password": "p"}):
        assert oauth_error(token(oauth_gateway, form)) == expected, form
    # A public client has no secret: one given is wrong, whatever it is.
    for form, headers in (({"grant_type": "authorization_code", "code": "c", "client_id": cid,
                            "client_secret": "x"}, {}),
                          ({"grant_type": "authorization_code", "code": "c"},
                           basic(cid, "x"))):
        assert oauth_error(token(oauth_gateway, form, headers=headers)) == expected
    # Introspection is for confidential clients.
    resp = requests.post(oauth_gateway.url(LISTEN + "oauth/introspect"),
                         data={"token": "t", "client_id": cid}, timeout=10)
    assert oauth_error(resp) == expected


@pytest.mark.redis
def test_public_clients_code_without_pkce_is_refused(oauth_gateway: Any, provider: Any,
                                                     run: Any) -> None:
    """Belt and braces: a public client's code minted without a challenge (the
    authorize endpoints refuse to) is not exchanged."""
    from fastgate.auth.oauth2.model import Authorization

    cid = new_client(oauth_gateway, public=True)["client_id"]
    code = run(provider.new_code(OAUTH_API, Authorization(client_id=cid,
                                                          redirect_uri=REDIRECT)))
    resp = token(oauth_gateway, {"grant_type": "authorization_code", "code": code,
                                 "client_id": cid, "redirect_uri": REDIRECT})
    assert oauth_error(resp) == (400, {"error": "invalid_grant",
                                       "error_description": "a public client's code needs "
                                                            "PKCE"})
    # ...and the code is spent: no second try.
    again = token(oauth_gateway, {"grant_type": "authorization_code", "code": code,
                                  "client_id": cid, "code_verifier": VERIFIER})
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, VERIFIER[:-1] + "+",
                                      VERIFIER + "=", VERIFIER[:-1] + "%2B"])
def test_code_verifier_of_the_wrong_shape(oauth_gateway: Any, verifier: str) -> None:
    """RFC 7636 §4.1: 43-128 unreserved characters; anything else is a
    malformed request (not a mismatch), and the code is spent."""
    client = new_client(oauth_gateway)
    approved = approve(oauth_gateway, authorize_query(
        client["client_id"], code_challenge=CHALLENGE, code_challenge_method="S256"))
    code = approved.json()["code"]
    resp = token(oauth_gateway, {"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": REDIRECT, "code_verifier": verifier},
                 headers=creds(client))
    assert oauth_error(resp) == (400, {"error": "invalid_request", "error_description":
                                       "code_verifier must be 43 to 128 characters of "
                                       "[A-Za-z0-9-._~]"})
    again = token(oauth_gateway, {"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": REDIRECT, "code_verifier": VERIFIER},
                  headers=creds(client))
    assert oauth_error(again) == (400, {"error": "invalid_grant",
                                        "error_description": OSIN["invalid_grant"]})


def test_client_credentials_answer(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    resp = token(oauth_gateway, {"grant_type": "client_credentials"}, headers=creds(client))
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}  # no refresh_token
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    scoped = token(oauth_gateway, {"grant_type": "client_credentials", "scope": "read write"},
                   headers=creds(client)).json()
    assert set(scoped) == {"access_token", "token_type", "expires_in", "scope"}
    assert scoped["scope"] == "read write"
    refused = token(oauth_gateway, {"grant_type": "client_credentials"},
                    headers=basic(client["client_id"], "x"))
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.headers["Pragma"] == "no-cache"


def test_json_body(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    resp = token(oauth_gateway, json={"grant_type": "client_credentials",
                                      "client_id": client["client_id"],
                                      "client_secret": client["secret"]})
    assert resp.status_code == 200, resp.text
    basic_auth = token(oauth_gateway, json={"grant_type": "client_credentials"},
                       headers=creds(client))
    assert basic_auth.status_code == 200
    for body in (b'["grant_type"]', b'{"grant_type": ["client_credentials"]}', b"{bad"):
        bad = token(oauth_gateway, body, headers={**creds(client),
                                                  "Content-Type": "application/json"})
        assert bad.status_code == 400, body
        assert bad.json()["error"] == "invalid_request"


def test_duplicated_parameter(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    expected = (400, {"error": "invalid_request",
                      "error_description": "grant_type is given more than once"})
    body = "grant_type=client_credentials&grant_type=client_credentials"
    assert oauth_error(token(oauth_gateway, body, headers={
        **creds(client), "Content-Type": "application/x-www-form-urlencoded"})) == expected
    in_query = requests.post(oauth_gateway.url(LISTEN + "oauth/token") +
                             "?grant_type=password&grant_type=password",
                             data={"scope": "x"}, headers=creds(client), timeout=10)
    assert oauth_error(in_query) == expected


def test_malformed_form(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    for body in ("grant_type=%zz", "grant_type=client_credentials;scope=x", "a=%ff"):
        resp = token(oauth_gateway, body, headers={
            **creds(client), "Content-Type": "application/x-www-form-urlencoded"})
        assert oauth_error(resp) == (400, {"error": "invalid_request",
                                           "error_description": "the form is malformed"})


def _padded(client: dict[str, Any], size: int) -> bytes:
    head = b"grant_type=client_credentials&pad="
    return head + b"x" * (size - len(head))


def test_body_limit(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    headers = {**creds(client), "Content-Type": "application/x-www-form-urlencoded"}
    at_limit = token(oauth_gateway, _padded(client, 64 * 1024), headers=headers)
    assert at_limit.status_code == 200, at_limit.text
    over = token(oauth_gateway, _padded(client, 64 * 1024 + 1), headers=headers)
    assert (over.status_code, over.json()) == (413, TOO_LARGE)
    for path in ("oauth/revoke", "tyk/oauth/authorize-client/", "oauth/introspect",
                 "oauth/authorize"):
        resp = requests.post(oauth_gateway.url(LISTEN + path), timeout=10, headers=headers,
                             data=_padded(client, 100 * 1024))
        assert (resp.status_code, resp.json()) == (413, TOO_LARGE), path


def test_chunked_body_over_the_limit(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    headers = {**creds(client), "Content-Type": "application/x-www-form-urlencoded"}
    body = _padded(client, 64 * 1024 + 10)
    pieces = iter([body[:40000], body[40000:]])  # no length: sent chunked
    resp = token(oauth_gateway, pieces, headers=headers)
    assert (resp.status_code, resp.json()) == (413, TOO_LARGE)
    small = iter([b"grant_type=client_", b"credentials"])
    assert token(oauth_gateway, small, headers=headers).status_code == 200


def test_same_connection_after_refusals(oauth_gateway: Any, raw: Any) -> None:
    """A refused request (an unread body over the limit, a malformed form)
    leaves the connection usable: the next request on it is answered."""
    conn = raw(oauth_gateway.port)
    head = ("POST " + LISTEN + "oauth/token HTTP/1.1\r\nHost: h\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ")
    big = b"grant_type=x&pad=" + b"G" * 70000
    hello = b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"
    conn.send(head.encode() + str(len(big)).encode() + b"\r\n\r\n" + big + hello)
    first = conn.read_response()
    assert (first.status, first.json()) == (413, TOO_LARGE)
    assert conn.read_response().status == 200
    bad = b"grant_type=%zz"
    conn.send(head.encode() + str(len(bad)).encode() + b"\r\n\r\n" + bad + hello)
    refused = conn.read_response()
    assert (refused.status, refused.json()["error"]) == (400, "invalid_request")
    assert conn.read_response().status == 200


def test_head_answer_has_no_body(oauth_gateway: Any, raw: Any) -> None:
    """A HEAD answer the gateway makes itself (this 405, the bearer check's
    401/400, the 404 of no API) has no body: the next response on the
    connection is read right (RFC 9110 §9.3.2)."""
    conn = raw(oauth_gateway.port)
    conn.settimeout(3)
    conn.send(b"HEAD " + LISTEN.encode() + b".well-known/oauth-authorization-server"
              b" HTTP/1.1\r\nHost: h\r\n\r\n"
              b"HEAD " + LISTEN.encode() + b"x HTTP/1.1\r\nHost: h\r\n\r\n"
              b"HEAD /nothing-listens-here HTTP/1.1\r\nHost: h\r\n\r\n"
              b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n")
    first = conn.read_response(head=True)
    assert (first.status, first.header("Allow")) == (405, "GET")
    assert conn.read_response(head=True).status in (400, 401)
    assert conn.read_response(head=True).status == 404
    assert conn.read_response().status == 200


# -- /oauth/revoke and /oauth/revoke_all ------------------------------------------------------


def _revoke(gateway: Any, path: str, form: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(gateway.url(LISTEN + path), data=form, timeout=10, **kwargs)


def test_revoke(oauth_gateway: Any, tyk_gateway: Any) -> None:
    for gateway in (oauth_gateway, tyk_gateway):  # oauth_error_status_code does not apply
        assert oauth_error(_revoke(gateway, "oauth/revoke", {"token_type_hint": "x"})) == \
            (400, {"status": "error", "message": "token is required"})
        assert oauth_error(_revoke(gateway, "oauth/revoke", {"token": ""})) == \
            (400, {"status": "error", "message": "token is required"})
        malformed = _revoke(gateway, "oauth/revoke", "token=%zz",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert oauth_error(malformed) == (400, {"status": "error", "message":
                                                "error parsing form. Form malformed"})
        dup = _revoke(gateway, "oauth/revoke", "token=a&token=b",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert dup.status_code == 400
        for hint in ("", "access_token", "refresh_token"):
            unknown = _revoke(gateway, "oauth/revoke", {"token": "no-such-token",
                                                        "token_type_hint": hint})
            assert oauth_error(unknown) == (200, {"status": "ok",
                                                  "message": "token revoked successfully"})


def test_revoke_with_the_wrong_hint_keeps_the_token(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    access = client_credentials(oauth_gateway, client)["access_token"]
    _revoke(oauth_gateway, "oauth/revoke", {"token": access, "token_type_hint":
                                            "refresh_token"})
    bearer = {"Authorization": "Bearer " + access}
    assert requests.get(oauth_gateway.url(LISTEN + "r"), headers=bearer,
                        timeout=10).status_code == 200
    _revoke(oauth_gateway, "oauth/revoke", {"token": access})
    assert requests.get(oauth_gateway.url(LISTEN + "r"), headers=bearer,
                        timeout=10).status_code != 200


def test_revoke_all_answers(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    cid, secret = client["client_id"], client["secret"]
    cases = [
        ({}, 401, "error", "client_id is required"),
        ({"client_secret": secret}, 401, "error", "client_id is required"),
        ({"client_id": cid}, 401, "error", "client_secret is required"),
        ({"client_id": cid, "client_secret": ""}, 401, "error", "client_secret is required"),
        ({"client_id": "no-such-client", "client_secret": secret}, 404, "error",
         "error getting oauth client"),
        ({"client_id": cid, "client_secret": secret + "x"}, 401, "error",
         "client secret is wrong"),
    ]
    access = client_credentials(oauth_gateway, client)["access_token"]
    bearer = {"Authorization": "Bearer " + access}
    for form, status, state, message in cases:
        resp = _revoke(oauth_gateway, "oauth/revoke_all", form)
        assert oauth_error(resp) == (status, {"status": state, "message": message}), form
    # None of the refusals revoked anything.
    assert requests.get(oauth_gateway.url(LISTEN + "r"), headers=bearer,
                        timeout=10).status_code == 200
    malformed = _revoke(oauth_gateway, "oauth/revoke_all", "client_id=%zz",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert oauth_error(malformed) == (400, {"status": "error",
                                            "message": "error parsing form. Form malformed"})
    ok = _revoke(oauth_gateway, "oauth/revoke_all", {"client_id": cid, "client_secret": secret})
    assert oauth_error(ok) == (200, {"status": "ok", "message": "tokens revoked successfully"})
    assert requests.get(oauth_gateway.url(LISTEN + "r"), headers=bearer,
                        timeout=10).status_code != 200


def test_revoke_all_of_a_public_client(oauth_gateway: Any) -> None:
    cid = new_client(oauth_gateway, public=True)["client_id"]
    resp = _revoke(oauth_gateway, "oauth/revoke_all", {"client_id": cid, "client_secret": "x"})
    assert oauth_error(resp) == (401, {"status": "error", "message": "client secret is wrong"})


# -- /oauth/introspect ---------------------------------------------------------------------------


def _introspect(gateway: Any, form: dict[str, str], headers: dict[str, str] | None = None,
                listen: str = LISTEN) -> requests.Response:
    return requests.post(gateway.url(listen + "oauth/introspect"), data=form,
                         headers=headers, timeout=10)


def test_introspect_needs_client_authentication(oauth_gateway: Any) -> None:
    client = new_client(oauth_gateway)
    access = client_credentials(oauth_gateway, client)["access_token"]
    expected = (401, {"error": "invalid_client", "error_description": OSIN["invalid_client"]})
    for headers in ({}, basic(client["client_id"], "wrong"), basic("nobody", "x")):
        resp = _introspect(oauth_gateway, {"token": access}, headers)
        assert oauth_error(resp) == expected
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="oauth"'
        assert access not in resp.text


def test_introspect_another_apis_token_is_inactive(oauth_gateway: Any) -> None:
    mine = new_client(oauth_gateway)
    other = new_client(oauth_gateway, OTHER_OAUTH_API, "other-pol")
    foreign = client_credentials(oauth_gateway, other, "/oauth-other/")["access_token"]
    resp = _introspect(oauth_gateway, {"token": foreign}, creds(mine))
    assert (resp.status_code, resp.json()) == (200, {"active": False})
    assert resp.headers["Cache-Control"] == "no-store"
    # On its own API the same token is active.
    there = _introspect(oauth_gateway, {"token": foreign}, creds(other), "/oauth-other/")
    assert there.json()["active"] is True
    for form in ({"token": "no-such-token"},
                 {"token": foreign, "token_type_hint": "refresh_token"}):
        resp = _introspect(oauth_gateway, form, creds(mine))
        assert resp.json() == {"active": False}, form


def test_introspect_missing_token(oauth_gateway: Any, tyk_gateway: Any) -> None:
    for gateway, status in ((oauth_gateway, 400), (tyk_gateway, 403)):
        client = new_client(gateway)
        resp = _introspect(gateway, {}, creds(client))
        assert oauth_error(resp) == (status, {"error": "invalid_request",
                                              "error_description": "token is required"})


# -- RFC 8414 metadata -----------------------------------------------------------------------


def _metadata(gateway: Any, listen: str, host: str) -> requests.Response:
    return requests.get(gateway.url(listen + ".well-known/oauth-authorization-server"),
                        headers={"Host": host}, timeout=10)


def test_metadata_document(oauth_gateway: Any) -> None:
    resp = _metadata(oauth_gateway, LISTEN, "gw.example:8443")
    assert resp.status_code == 200
    issuer = "http://gw.example:8443/oauth-api"
    assert resp.json() == {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/oauth/authorize",
        "token_endpoint": issuer + "/oauth/token",
        "revocation_endpoint": issuer + "/oauth/revoke",
        "introspection_endpoint": issuer + "/oauth/introspect",
        "grant_types_supported": ["authorization_code", "refresh_token",
                                  "client_credentials", "password", "implicit"],
        "response_types_supported": ["code", "token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                  "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                       "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }
    own = requests.get(oauth_gateway.url(LISTEN + ".well-known/oauth-authorization-server"),
                       timeout=10).json()
    assert own["issuer"] == f"http://127.0.0.1:{oauth_gateway.port}/oauth-api"


def test_metadata_follows_oauth_meta(edge_gateway: Any) -> None:
    narrow = _metadata(edge_gateway, NARROW, "h").json()
    assert narrow["issuer"] == "http://h/narrow"
    assert narrow["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert narrow["response_types_supported"] == ["code"]
    assert narrow["authorization_endpoint"] == "http://h/narrow/oauth/authorize"
    assert narrow["code_challenge_methods_supported"] == ["S256"]
    bare = _metadata(edge_gateway, BARE, "h").json()
    assert "authorization_endpoint" not in bare
    assert bare["grant_types_supported"] == ["client_credentials"]
    assert bare["response_types_supported"] == []
    assert bare["token_endpoint"] == "http://h/bare/oauth/token"


