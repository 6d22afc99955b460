"""Auth token (standard auth), expiry, inactive keys and access rights: status
and message pairs Tyk answers with, on the memory store and on
a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from fastgate.session import storage_key

from .conftest import session

MISSING = (401, "Authorization field missing")
DISALLOWED = (403, "Access to this API has been disallowed")
RESOURCE = (403, "Access to this resource has been disallowed")
EXPIRED = (401, "Key has expired, please renew")
INACTIVE = (403, "Key is inactive, please renew")
OK = (200, None)


def protected_api(make_api: Any, echo: Any, api_id: str = "p", listen: str = "/p/",
                  **fields: Any) -> dict[str, Any]:
    return make_api(api_id, listen, echo.base_url, use_keyless=False, **fields)


def check(resp: requests.Response, expected: tuple[int, str | None]) -> None:
    status, message = expected
    assert resp.status_code == status, resp.text
    if message is not None:
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json() == {"error": message}


@pytest.fixture
def gw(gateway_factory, make_api, echo, storage):
    apis = [
        protected_api(make_api, echo),
        protected_api(make_api, echo, "q", "/q/"),
        protected_api(make_api, echo, "param", "/param/",
                      auth={"use_param": True, "param_name": "api_key"}),
        protected_api(make_api, echo, "cookie", "/cookie/",
                      auth_configs={"authToken": {"use_cookie": True, "cookie_name": "sid",
                                                  "use_param": True, "auth_header_name": "X-Key"}}),
        protected_api(make_api, echo, "strip", "/strip/", strip_auth_data=True,
                      auth={"use_param": True, "use_cookie": True}),
        make_api("open", "/open/", echo.base_url),
    ]
    return gateway_factory(apis, storage=storage)


KEYS = {
    "goodkey1": session(("p", "param", "cookie", "strip")),
    "onlyq123": session(("q",)),
    "expired1": session(("p",), expires=int(time.time()) - 60),
    "future01": session(("p",), expires=int(time.time()) + 3600),
    "inactive": session(("p",), is_inactive=True),
    "urls0001": session(("p",), access_rights={"p": {
        "api_id": "p", "api_name": "p", "versions": ["Default"],
        "allowed_urls": [{"url": "^/p/orders(/.*)?$", "methods": ["GET"]}]}}),
}

CASES = [
    # (id, path, headers, expected)
    ("no key", "/p/x", {}, MISSING),
    ("empty header", "/p/x", {"Authorization": ""}, MISSING),
    ("unknown key", "/p/x", {"Authorization": "nosuchkey"}, DISALLOWED),
    ("too short", "/p/x", {"Authorization": "go"}, DISALLOWED),
    ("good key", "/p/x", {"Authorization": "goodkey1"}, OK),
    ("bearer", "/p/x", {"Authorization": "Bearer goodkey1"}, OK),
    ("bearer any case", "/p/x", {"Authorization": "bEaReR goodkey1"}, OK),
    ("expired", "/p/x", {"Authorization": "expired1"}, EXPIRED),
    ("not expired yet", "/p/x", {"Authorization": "future01"}, OK),
    ("inactive", "/p/x", {"Authorization": "inactive"}, INACTIVE),
    ("other API only", "/p/x", {"Authorization": "onlyq123"}, DISALLOWED),
    ("its API", "/q/x", {"Authorization": "onlyq123"}, OK),
    ("allowed url", "/p/orders/7", {"Authorization": "urls0001"}, OK),
    ("url not allowed", "/p/users", {"Authorization": "urls0001"}, RESOURCE),
    ("keyless API needs nothing", "/open/x", {}, OK),
]


@pytest.mark.parametrize(("path", "headers", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_auth_token(gw, admin_for, path, headers, expected):
    admin = admin_for(gw)
    for key, body in KEYS.items():
        admin.add_key(key, body)
    check(requests.get(gw.url(path), headers=headers, timeout=10), expected)


def test_method_not_in_allowed_urls(gw, admin_for):
    admin_for(gw).add_key("urls0001", KEYS["urls0001"])
    resp = requests.post(gw.url("/p/orders/7"), headers={"Authorization": "urls0001"},
                         timeout=10)
    check(resp, RESOURCE)


PRECEDENCE = [
    # cookie > param > header, each only when non-empty
    ("param overrides header", "/param/x?api_key=goodkey1", {"Authorization": "nosuchkey"}, OK),
    ("bad param overrides good header", "/param/x?api_key=nosuchkey",
     {"Authorization": "goodkey1"}, DISALLOWED),
    ("empty param keeps header", "/param/x?api_key=", {"Authorization": "goodkey1"}, OK),
    ("param only", "/param/x?api_key=goodkey1", {}, OK),
    ("custom header", "/cookie/x", {"X-Key": "goodkey1"}, OK),
    ("cookie overrides param", "/cookie/x?X-Key=nosuchkey",
     {"Cookie": "a=b; sid=goodkey1"}, OK),
    ("bad cookie overrides good header", "/cookie/x",
     {"X-Key": "goodkey1", "Cookie": "sid=nosuchkey"}, DISALLOWED),
    ("cookie missing: header", "/cookie/x", {"X-Key": "goodkey1", "Cookie": "other=1"}, OK),
]


@pytest.mark.parametrize(("path", "headers", "expected"), [c[1:] for c in PRECEDENCE],
                         ids=[c[0] for c in PRECEDENCE])
def test_where_the_key_is_read(gw, admin_for, path, headers, expected):
    admin_for(gw).add_key("goodkey1", KEYS["goodkey1"])
    check(requests.get(gw.url(path), headers=headers, timeout=10), expected)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/strip/x", {"Authorization": "Bearer goodkey1"}),
        ("/strip/x?Authorization=goodkey1&keep=1", {}),
        ("/strip/x", {"Cookie": "keep=1; Authorization=goodkey1"}),
    ],
    ids=["header", "param", "cookie"],
)
def test_strip_auth_data(gw, admin_for, path, headers):
    admin_for(gw).add_key("goodkey1", KEYS["goodkey1"])
    resp = requests.get(gw.url(path), headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    echoed = resp.json()
    sent = {name.lower(): value for name, value in echoed["headers"]}
    assert "goodkey1" not in str(echoed), echoed
    assert "authorization" not in sent
    if "keep=1" in path:
        assert echoed["query"] == "keep=1"
    if "Cookie" in headers:
        assert sent.get("cookie") == "keep=1"


def test_deleted_key_is_refused_at_once(gw, admin_for):
    admin = admin_for(gw)
    admin.add_key("goodkey1", KEYS["goodkey1"])
    headers = {"Authorization": "goodkey1"}
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), OK)
    admin.delete_key("goodkey1")
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), DISALLOWED)


def test_changed_key_applies_at_once(gw, admin_for):
    admin = admin_for(gw)
    admin.add_key("goodkey1", KEYS["goodkey1"])
    headers = {"Authorization": "goodkey1"}
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), OK)
    admin.update_key("goodkey1", session(("p",), is_inactive=True))
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), INACTIVE)
    # A key created after a request for it was refused works at once (the
    # refusal is cached as "absent" until the key is created).
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "latekey1"}, timeout=10),
          DISALLOWED)
    admin.add_key("latekey1", session(("p",)))
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "latekey1"}, timeout=10), OK)


def test_repeated_credentials_follow_every_change(gateway_factory, make_api, echo, storage,
                                                  admin_for):
    """The same header value again is served from the auth step's memo (header
    value -> cached session, taken when the key's first name is the stored one:
    no org id here): it must see every change at once, in every spelling the
    header had."""
    gw = gateway_factory([protected_api(make_api, echo, org_id=""),
                          protected_api(make_api, echo, "q", "/q/", org_id="")],
                         storage=storage)
    admin = admin_for(gw)
    admin.add_key("memokey1", session(("p",)))
    spellings = ("memokey1", "Bearer memokey1", "bearer  memokey1 ")
    for _ in range(3):
        for value in spellings:
            check(requests.get(gw.url("/p/x"), headers={"Authorization": value},
                               timeout=10), OK)
    admin.update_key("memokey1", session(("q",)))
    for value in spellings:
        check(requests.get(gw.url("/p/x"), headers={"Authorization": value}, timeout=10),
              DISALLOWED)
        check(requests.get(gw.url("/q/x"), headers={"Authorization": value}, timeout=10), OK)
    admin.update_key("memokey1", session(("q",), is_inactive=True))
    for value in spellings:
        check(requests.get(gw.url("/q/x"), headers={"Authorization": value}, timeout=10),
              INACTIVE)
    admin.delete_key("memokey1")
    for value in spellings:
        check(requests.get(gw.url("/q/x"), headers={"Authorization": value}, timeout=10),
              DISALLOWED)


def test_policy_grants_and_revokes_access_at_once(gw, admin_for):
    admin = admin_for(gw)
    admin.put_policy("pol-q", {"id": "pol-q", "rate": 100, "per": 1, "quota_max": -1,
                               "access_rights": {"q": {"api_id": "q", "api_name": "q",
                                                       "versions": ["Default"]}}})
    admin.add_key("polkey01", session(apply_policies=["pol-q"]))
    headers = {"Authorization": "polkey01"}
    check(requests.get(gw.url("/q/x"), headers=headers, timeout=10), OK)
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), DISALLOWED)
    admin.put_policy("pol-q", {"id": "pol-q", "rate": 100, "per": 1, "quota_max": -1,
                               "access_rights": {"p": {"api_id": "p", "api_name": "p",
                                                       "versions": ["Default"]}}})
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), OK)
    check(requests.get(gw.url("/q/x"), headers=headers, timeout=10), DISALLOWED)


# ----------------------------------------------------------------------------- Tyk's key names


@pytest.mark.parametrize("function", ["", "murmur64"])
def test_custom_key_of_an_org_works_by_its_name(gateway_factory, make_api, echo, storage,
                                                admin_for, function):
    """POST /tyk/keys/{key} files the key under generateToken(org, key), as Tyk;
    the auth-token lookup tries that name first, so the name given works."""
    gw = gateway_factory([protected_api(make_api, echo, org_id="acme")], storage=storage,
                         hash_key_function=function)
    reply = admin_for(gw).add_key("named-key-1", session(("p",), org_id="acme"))
    assert reply["key"] != "named-key-1"  # stored under Tyk's name for it
    for credential in ("named-key-1", reply["key"]):
        check(requests.get(gw.url("/p/x"), headers={"Authorization": credential}, timeout=10),
              OK)
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "named-key-2"}, timeout=10),
          DISALLOWED)


def test_a_basic_auth_users_name_is_not_a_token(gateway_factory, make_api, echo, storage,
                                                admin_for):
    """Tyk finds the Basic-auth user "alice" for the token "alice" and lets it in
    without the password; fastgate refuses."""
    gw = gateway_factory([protected_api(make_api, echo, org_id="acme"),
                          protected_api(make_api, echo, "b", "/b/", org_id="acme",
                                        use_basic_auth=True)],
                         storage=storage, hash_key_function="murmur64")
    admin_for(gw).add_key("alice", session(("p", "b"), org_id="acme",
                                           basic_auth_data={"password": "pw-alice-1"}))
    check(requests.get(gw.url("/b/x"), auth=("alice", "pw-alice-1"), timeout=10), OK)
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "alice"}, timeout=10),
          DISALLOWED)
    # A token key stored under the name as given is still found, after the user.
    skey = storage_key("alice", hash_keys=True, hash_key_function="murmur64")
    stored = admin_for(gw).call("POST", f"/tyk/keys/{skey}?hashed=1", session(("p",)))
    assert stored.status_code == 200, stored.text
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "alice"}, timeout=10), OK)


def test_the_token_name_is_tried_before_the_name_given(gateway_factory, make_api, echo,
                                                       storage, admin_for):
    """Both names stored: Tyk's SessionDetail order, generateToken(org, key) first."""
    gw = gateway_factory([protected_api(make_api, echo, org_id="acme")], storage=storage)
    admin = admin_for(gw)
    admin.add_key("both-key", session(("p",), is_inactive=True))   # stored as "both-key"
    admin.add_key("both-key", session(("p",), org_id="acme"))      # stored as "acmeboth-key"
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "both-key"}, timeout=10), OK)
    admin.delete_key("acmeboth-key")
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "both-key"}, timeout=10),
          INACTIVE)
