"""Auth token (standard auth), expiry, inactive keys and access rights: status
and message pairs from reference/tyk-behaviour.md, on the memory store and on
a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

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
    "goodkey1": session(),
    "onlyq123": session(("q",)),
    "expired1": session(expires=int(time.time()) - 60),
    "future01": session(expires=int(time.time()) + 3600),
    "inactive": session(is_inactive=True),
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
    admin.update_key("goodkey1", session(is_inactive=True))
    check(requests.get(gw.url("/p/x"), headers=headers, timeout=10), INACTIVE)
    # A key created after a request for it was refused works at once (the
    # refusal is cached as "absent" until the key is created).
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "latekey1"}, timeout=10),
          DISALLOWED)
    admin.add_key("latekey1", session())
    check(requests.get(gw.url("/p/x"), headers={"Authorization": "latekey1"}, timeout=10), OK)


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
