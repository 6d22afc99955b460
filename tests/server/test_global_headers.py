"""Global request headers (``version_data.versions.<v>.global_headers``,
``global_headers_remove``, ``global_headers_disabled``) with Tyk's
``$tyk_meta.*`` and ``$tyk_context.*`` variables, on a real gateway."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest
import requests

from fastgate.apidef import parse_api_definition
from fastgate.config import ConfigError

ORG = "test-org"
SECRET = b"a-shared-secret-long-enough-for-hs512-which-wants-64-bytes-of-key"


def version(**fields: Any) -> dict[str, Any]:
    return {"not_versioned": True, "versions": {"Default": {"name": "Default", **fields}}}


HEADERS = {
    "X-Static": "fixed value",
    "X-Tier": "$tyk_meta.tier",
    "X-Count": "n=$tyk_meta.count",
    "X-Ratio": "$tyk_meta.ratio",
    "X-Groups": "$tyk_meta.groups",
    "X-Flag": "[$tyk_meta.flag]",
    "X-Evil": "$tyk_meta.evil",
    "X-Path": "$tyk_context.path",
    "X-Client": "$tyk_context.headers_X_Client_Name",
    "X-Q": "$tyk_context.request_data_q",
    "X-Ip": "$tyk_context.remote_addr",
    "X-Unknown": "<$tyk_context.no_such_thing>",
}


@pytest.fixture(scope="module")
def gw(module_gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    apis = [
        make_api("open", "/open/", echo.base_url, version_data=version(
            global_headers={"X-Static": "fixed value", "User-Agent": "fastgate-test",
                            "X-Path": "$tyk_context.path"},
            global_headers_remove=["X-Secret", "cookie"])),
        make_api("ctx", "/ctx/", echo.base_url, enable_context_vars=True,
                 version_data=version(global_headers={
                     k: v for k, v in HEADERS.items() if "context" in v})),
        make_api("off", "/off/", echo.base_url, version_data=version(
            global_headers={"X-Static": "x"}, global_headers_remove=["X-Secret"],
            global_headers_disabled=True)),
        make_api("meta", "/meta/", echo.base_url, use_keyless=False, use_standard_auth=True,
                 enable_context_vars=False, version_data=version(global_headers=HEADERS)),
        make_api("claims", "/claims/", echo.base_url, use_keyless=False, enable_jwt=True,
                 enable_context_vars=True, jwt_signing_method="hmac",
                 jwt_source=base64.b64encode(SECRET).decode(),
                 jwt_default_policies=["p"], version_data=version(global_headers={
                     "X-Sub": "$tyk_context.jwt_claims_sub",
                     "X-Roles": "$tyk_context.jwt_claims_roles"})),
    ]
    gateway = module_gateway_factory(apis, start=False)
    (gateway.root / "policies.json").write_text(__import__("json").dumps({"p": {
        "id": "p", "org_id": ORG, "rate": 100, "per": 1, "quota_max": -1,
        "access_rights": {"claims": {"api_id": "claims", "versions": ["Default"]}}}}))
    gateway.start()
    return gateway


def sent(resp: requests.Response) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.text
    return [(name.lower(), value) for name, value in resp.json()["headers"]]


def values(resp: requests.Response, name: str) -> list[str]:
    return [v for k, v in sent(resp) if k == name.lower()]


def test_set_replace_and_remove(gw):
    resp = requests.get(gw.url("/open/a%20b/c"), timeout=10, headers={
        "X-Secret": "s", "Cookie": "c=1", "X-Static": "client's", "X-Kept": "k"})
    assert values(resp, "x-static") == ["fixed value"]  # replaced, not added
    assert values(resp, "user-agent") == ["fastgate-test"]
    assert values(resp, "x-secret") == [] and values(resp, "cookie") == []
    assert values(resp, "x-kept") == ["k"]
    # Without enable_context_vars, $tyk_context.* is "" (as in Tyk).
    assert values(resp, "x-path") == [""]


def test_disabled_does_nothing(gw):
    resp = requests.get(gw.url("/off/x"), headers={"X-Secret": "s"}, timeout=10)
    assert values(resp, "x-secret") == ["s"]
    assert values(resp, "x-static") == []


def test_context_variables(gw):
    resp = requests.get(gw.url("/ctx/a%20b/c?q=first&q=second"), timeout=10,
                        headers={"X-Client-Name": "mobile"})
    assert values(resp, "x-path") == ["/ctx/a b/c"]
    assert values(resp, "x-client") == ["mobile"]
    assert values(resp, "x-q") == ["first"]
    assert values(resp, "x-ip") == ["127.0.0.1"]
    assert values(resp, "x-unknown") == ["<>"]


def add_key(gw: Any, meta: dict[str, Any]) -> str:
    resp = requests.post(gw.url("/tyk/keys/create"), timeout=10,
                         headers={"X-Tyk-Authorization": gw.secret}, json={
                             "org_id": ORG, "rate": 100, "per": 1, "quota_max": -1,
                             "meta_data": meta,
                             "access_rights": {"meta": {"api_id": "meta",
                                                        "versions": ["Default"]}}})
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


def test_session_metadata_rendered_as_tyk_renders_it(gw):
    key = add_key(gw, {"tier": "gold", "count": 3, "ratio": 0.25, "groups": ["a b", "c"],
                       "flag": True, "evil": "x\r\nInjected: yes"})
    resp = requests.get(gw.url("/meta/x"), headers={"Authorization": key}, timeout=10)
    assert values(resp, "x-static") == ["fixed value"]
    assert values(resp, "x-tier") == ["gold"]
    assert values(resp, "x-count") == ["n=3"]
    assert values(resp, "x-ratio") == ["0.25"]
    assert values(resp, "x-groups") == ["a+b,c"]
    assert values(resp, "x-flag") == ["[]"]
    # A value holding CR/LF is never sent (it would inject a header line).
    assert values(resp, "x-evil") == [] and values(resp, "injected") == []
    # Context variables are off for this API.
    assert values(resp, "x-path") == [""]
    # The headers are only sent for accepted requests: a refusal is a refusal.
    assert requests.get(gw.url("/meta/x"), headers={"Authorization": "nope-nope"},
                        timeout=10).status_code == 403


def test_jwt_claims_as_context_variables(gw):
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "roles": ["r1", "r2"], "iat": now, "exp": now + 60},
                       SECRET, algorithm="HS256")
    resp = requests.get(gw.url("/claims/x"), headers={"Authorization": f"Bearer {token}"},
                        timeout=10)
    assert values(resp, "x-sub") == ["alice"]
    assert values(resp, "x-roles") == ["r1,r2"]


@pytest.mark.parametrize(("headers", "remove", "field", "words"), [
    ({"Bad Name": "v"}, None, "global_headers.Bad Name", "not a header name"),
    ({"Content-Length": "5"}, None, "global_headers.Content-Length", "the proxy sets it"),
    ({"Host": "evil"}, None, "global_headers.Host", "the proxy sets it"),
    ({"X-A": 5}, None, "global_headers.X-A", "expected a string"),
    ({"X-A": "a\nb"}, None, "global_headers.X-A", "CR, LF or NUL"),
    (None, ["Transfer-Encoding"], "global_headers_remove", "the proxy sets it"),
    (None, "X-A", "global_headers_remove", "array of strings"),
    (["X-A"], None, "global_headers", "name: value"),
])
def test_a_bad_header_names_its_field(make_api: Any, headers: Any, remove: Any, field: str,
                                      words: str) -> None:
    fields: dict[str, Any] = {}
    if headers is not None:
        fields["global_headers"] = headers
    if remove is not None:
        fields["global_headers_remove"] = remove
    data = make_api("a", "/a/", "http://127.0.0.1:1", version_data=version(**fields))
    with pytest.raises(ConfigError) as caught:
        parse_api_definition(data, "a.json")
    assert caught.value.field == "version_data.versions.Default." + field
    assert words in str(caught.value)


def test_global_headers_are_not_reported_ignored(make_api: Any) -> None:
    spec = parse_api_definition(make_api("a", "/a/", "http://127.0.0.1:1", version_data=version(
        global_headers={"X-A": "1"}, global_headers_remove=["X-B"])), "a.json")
    assert spec.ignored_fields == ()
    assert [rule.name for rule in spec.global_headers] == [b"X-A"]
    assert spec.global_headers_remove == (b"x-b",)


def test_a_bad_header_on_reload_keeps_the_old_configuration(gateway_factory, make_api, echo):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url, version_data=version(
        global_headers={"X-A": "old"}))])
    gw.write_api(make_api("a", "/a/", echo.base_url, version_data=version(
        global_headers={"Content-Length": "1"})))
    resp = gw.reload()
    assert not 200 <= resp.status_code < 300
    assert "global_headers.Content-Length" in resp.text
    assert values(requests.get(gw.url("/a/x"), timeout=10), "x-a") == ["old"]
