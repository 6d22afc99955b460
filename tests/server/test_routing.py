"""Routing: longest listen_path prefix, strip_listen_path, target base paths, 404s."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api):
    e = echo.base_url
    return module_gateway_factory(
        apis=[
            make_api("a", "/a/", e),
            make_api("ab", "/a/b/", e + "/ab"),
            make_api("nostrip", "/nostrip/", e, strip_listen_path=False),
            make_api("based", "/based/", e + "/base"),
            make_api("deep", "/x/y/z/", e + "/deep"),
            make_api("inactive", "/inactive/", e, active=False),
            # A Tyk Dashboard export wraps the definition.
            {"api_definition": make_api("wrapped", "/wrapped/", e + "/w")},
        ]
    )


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("/a/x", "/x"),
        ("/a/", "/"),
        ("/a/x/y/", "/x/y/"),
        ("/a/b/x", "/ab/x"),  # longest prefix wins
        ("/a/b/", "/ab/"),
        ("/a/bc", "/bc"),  # "/a/b/" is not a prefix of "/a/bc"
        ("/nostrip/x", "/nostrip/x"),
        ("/nostrip/", "/nostrip/"),
        ("/based/x", "/base/x"),
        ("/based/", "/base/"),
        ("/x/y/z/q", "/deep/q"),
        ("/wrapped/q", "/w/q"),
    ],
)
def test_route(gw, path, upstream_path):
    resp = requests.get(gw.url(path), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == upstream_path


@pytest.mark.parametrize("path", ["/", "/nothing", "/b/a/", "/inactive/x", "/inactive/", "/x/y/"])
def test_no_route_is_404_json(gw, path):
    resp = requests.get(gw.url(path), timeout=10)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str)
    assert body["error"]


def test_404_keeps_connection_usable(gw, raw, http_get):
    conn = raw(gw.port)
    assert conn.request(http_get("/nothing")).status == 404
    assert conn.request(http_get("/a/after")).json()["path"] == "/after"


@pytest.mark.parametrize(
    ("path", "upstream_path", "query"),
    [
        ("/a/x?q=1", "/x", "q=1"),
        ("/a/x?b=2&a=1&b=3", "/x", "b=2&a=1&b=3"),
        ("/a/x?enc=%20%2F%3F&empty=", "/x", "enc=%20%2F%3F&empty="),
        ("/a/?q", "/", "q"),
        ("/based/p?z=9", "/base/p", "z=9"),
        ("/nostrip/p?z=9", "/nostrip/p", "z=9"),
    ],
)
def test_query_string_kept(gw, path, upstream_path, query):
    data = requests.get(gw.url(path), timeout=10).json()
    assert data["path"] == upstream_path
    assert data["query"] == query


def test_path_encoding_kept(gw, raw, http_get):
    conn = raw(gw.port)
    data = conn.request(http_get("/a/sp%20ace/%2Fslash")).json()
    assert data["path"] == "/sp%20ace/%2Fslash"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_forwarded(gw, method):
    resp = requests.request(method, gw.url("/a/m"), data=b"body" if method != "GET" else None,
                            timeout=10)
    assert resp.status_code == 200
    assert resp.json()["method"] == method
