"""Header handling: hop-by-hop, X-Forwarded-*, Host, end-to-end headers and duplicates."""

from __future__ import annotations

import pytest

REQUEST_HOP_BY_HOP = [
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-foo",
    "te",
    "trailer",
    "upgrade",
    "x-hop-a",  # listed in Connection
    "x-hop-b",  # listed in Connection (other case)
]


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api):
    return module_gateway_factory(
        apis=[
            make_api("a", "/a/", echo.base_url),
            make_api("keep", "/keep/", echo.base_url, preserve_host_header=True),
        ]
    )


def echoed(data: dict, name: str) -> list[str]:
    """Values of header ``name`` as the echo upstream received them."""
    return [v for k, v in data["headers"] if k.lower() == name.lower()]


def echoed_names(data: dict) -> list[str]:
    return [k.lower() for k, _ in data["headers"]]


def send(raw, gw, head_lines: list[str], path: str = "/a/h") -> dict:
    conn = raw(gw.port)
    request = f"GET {path} HTTP/1.1\r\n" + "".join(line + "\r\n" for line in head_lines) + "\r\n"
    resp = conn.request(request.encode("latin-1"))
    assert resp.status == 200, resp.body
    return resp.json()


def test_request_hop_by_hop_not_forwarded(gw, raw):
    data = send(
        raw,
        gw,
        [
            "Host: client.test",
            "Connection: keep-alive, X-Hop-A, x-HOP-b",
            "X-Hop-A: 1",
            "X-Hop-B: 2",
            "Keep-Alive: timeout=5",
            "Proxy-Connection: keep-alive",
            "Proxy-Authorization: Basic Zm9vOmJhcg==",
            "Proxy-Foo: 1",
            "TE: trailers",
            "Trailer: X-T",
            "Upgrade: h2c",
            "X-End: kept",
        ],
    )
    names = echoed_names(data)
    leaked = [name for name in REQUEST_HOP_BY_HOP if name in names]
    assert not leaked, f"hop-by-hop request headers forwarded: {leaked}"
    # The gateway may send its own Connection header upstream, never the client's list.
    for value in echoed(data, "connection"):
        assert "x-hop" not in value.lower(), value
    assert echoed(data, "x-end") == ["kept"]


def test_request_connection_header_split_over_several_lines(gw, raw):
    data = send(
        raw,
        gw,
        ["Host: c", "Connection: X-One", "Connection: X-Two", "X-One: 1", "X-Two: 2", "X-Three: 3"],
    )
    names = echoed_names(data)
    assert "x-one" not in names
    assert "x-two" not in names
    assert echoed(data, "x-three") == ["3"]


RESPONSE_QUERY = (
    "Connection=foo,%20close-me&Foo=x&Close-Me=y&Keep-Alive=timeout%3D5&Trailer=X-T"
    "&Upgrade=h2c&Proxy-Connection=keep-alive&Proxy-Authenticate=Basic&Te=trailers"
    "&X-Keep=1&X-Keep=2"
)


def test_response_hop_by_hop_not_forwarded(gw, raw, http_get):
    conn = raw(gw.port)
    resp = conn.request(http_get("/a/headers-out?" + RESPONSE_QUERY))
    assert resp.status == 200
    names = resp.header_names()
    leaked = [
        name
        for name in ("foo", "close-me", "keep-alive", "trailer", "upgrade", "proxy-connection",
                     "proxy-authenticate", "te")
        if name in names
    ]
    assert not leaked, f"hop-by-hop response headers forwarded: {leaked}"
    for value in resp.header_all("connection"):
        assert "foo" not in value.lower() and "close-me" not in value.lower(), value
    assert resp.header_all("x-keep") == ["1", "2"]
    # The upstream's "Connection: foo, close-me" does not close the client connection.
    assert conn.request(http_get("/a/after")).status == 200


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ([], "127.0.0.1"),
        (["X-Forwarded-For: 1.2.3.4"], "1.2.3.4, 127.0.0.1"),
        (["X-Forwarded-For: 1.2.3.4, 5.6.7.8"], "1.2.3.4, 5.6.7.8, 127.0.0.1"),
        (["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"], "1.1.1.1, 2.2.2.2, 127.0.0.1"),
    ],
    ids=["none", "one", "list", "two-headers"],
)
def test_x_forwarded_for_appended(gw, raw, sent, expected):
    data = send(raw, gw, ["Host: c.test", *sent])
    assert echoed(data, "x-forwarded-for") == [expected]


def test_x_forwarded_proto_and_host(gw, raw):
    data = send(raw, gw, ["Host: client.example:8443"])
    assert echoed(data, "x-forwarded-proto") == ["http"]
    assert echoed(data, "x-forwarded-host") == ["client.example:8443"]


def test_host_rewritten_to_target(gw, raw, echo):
    data = send(raw, gw, ["Host: client.example"])
    assert echoed(data, "host") == [f"127.0.0.1:{echo.port}"]


def test_host_preserved_when_configured(gw, raw):
    data = send(raw, gw, ["Host: client.example:1234"], path="/keep/h")
    assert echoed(data, "host") == ["client.example:1234"]


def test_end_to_end_headers_kept_with_duplicates(gw, raw):
    data = send(
        raw,
        gw,
        [
            "Host: c",
            "X-Dup: a",
            "X-Other: o",
            "X-Dup: b",
            "Authorization: Bearer abc",
            "Cookie: k=v",
            "User-Agent: test-agent/1.0",
            "Accept: */*",
            "X-Spaces: a  b",
            "X-Empty:",
        ],
    )
    assert echoed(data, "x-dup") == ["a", "b"]
    assert echoed(data, "x-other") == ["o"]
    assert echoed(data, "authorization") == ["Bearer abc"]
    assert echoed(data, "cookie") == ["k=v"]
    assert echoed(data, "user-agent") == ["test-agent/1.0"]
    assert echoed(data, "accept") == ["*/*"]
    assert echoed(data, "x-spaces") == ["a  b"]
    assert echoed(data, "x-empty") == [""]


def test_request_body_framing_rewritten_consistently(gw, raw):
    conn = raw(gw.port)
    resp = conn.request(
        b"POST /a/te HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    data = resp.json()
    assert data["body"] == "abcde"
    te = echoed(data, "transfer-encoding")
    cl = echoed(data, "content-length")
    assert not (te and cl), f"both Transfer-Encoding {te} and Content-Length {cl} sent upstream"
    assert te == ["chunked"] or cl == ["5"]


def test_response_framing_from_chunked_upstream(gw, raw, http_get):
    conn = raw(gw.port)
    resp = conn.request(http_get("/a/chunked/1000"))
    te = resp.header_all("transfer-encoding")
    cl = resp.header_all("content-length")
    assert not (te and cl)
    assert len(resp.body) == 1000
