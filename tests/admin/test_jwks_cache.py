"""``DELETE /tyk/cache/jwks[/{api_id}]``: Tyk's routes and reply; the flush
travels through the store (an event every worker and node receives), so it
runs on the memory store, Redis and a Redis Cluster; and the gateway builds its
JWKS cache from ``jwks.*`` of its config.

The JWK Sets come from a real local HTTP server (a threading ``http.server``
serving a key made with ``cryptography``, counting its hits).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import api_definition

OK = {"status": "ok", "message": "cache invalidated"}


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def jwk() -> dict[str, Any]:
    numbers = rsa.generate_private_key(public_exponent=65537,
                                       key_size=2048).public_key().public_numbers()
    return {"kty": "RSA", "kid": "k1", "n": _b64(numbers.n), "e": _b64(numbers.e)}


class JwksServer:
    """Serves the same JWK Set at every path; counts hits per path."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        body = json.dumps({"keys": [jwk]}).encode()
        hits: Counter[str] = Counter()
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server(jwk: dict[str, Any]) -> Iterator[JwksServer]:
    server = JwksServer(jwk)
    yield server
    server.close()


def fetch_key(env: Any, url: str, api_id: str) -> Any:
    """The key k1 of ``url`` through the gateway's cache, as API ``api_id`` asks."""

    async def ask() -> Any:
        found = env.gateway.jwks.key(url, "k1", api_id)
        return await found if hasattr(found, "__await__") else found

    key = env.run(ask())
    assert key is not None
    return key


def test_delete_jwks_flushes_one_apis_sets_or_all_with_tyks_reply(
        admin_factory, jwks_server, store_backend):
    env = admin_factory(apis=[api_definition("a", "/a/", "http://127.0.0.1:9"),
                              api_definition("b", "/b/", "http://127.0.0.1:9")])
    cache = env.gateway.jwks
    url_a, url_b = jwks_server.url("/a"), jwks_server.url("/b")
    key_a, key_b = fetch_key(env, url_a, "a"), fetch_key(env, url_b, "b")
    assert sorted(cache.urls()) == sorted([url_a, url_b])

    reply = env.call("DELETE", "/tyk/cache/jwks/a")
    assert (reply.status, reply.json) == (200, OK)
    env.settle()
    assert ("jwks-cache", "a") in env.events  # what every other worker receives
    assert cache.urls() == [url_b]
    assert key_a.retired and not key_b.retired
    # The next token of API a fetches its set again.
    again = fetch_key(env, url_a, "a")
    assert again is not key_a and jwks_server.hits["/a"] == 2

    # An API that is not loaded, or used no JWKS: 200, nothing dropped (Tyk does not look).
    assert (env.call("DELETE", "/tyk/cache/jwks/nope").json, sorted(cache.urls())) \
        == (OK, sorted([url_a, url_b]))
    # /tyk/cache/{api_id} is the session cache: it leaves the JWK Sets alone.
    assert env.call("DELETE", "/tyk/cache/a").json == OK
    env.settle()
    assert ("api-cache", "a") in env.events and len(cache.urls()) == 2

    reply = env.call("DELETE", "/tyk/cache/jwks")
    assert (reply.status, reply.json) == (200, OK)
    env.settle()
    assert ("jwks-cache", "") in env.events
    assert cache.urls() == [] and again.retired and key_b.retired


def test_jwks_flush_routes_as_tyks(admin_factory, jwks_server, store_backend):
    env = admin_factory()
    cache = env.gateway.jwks
    fetch_key(env, jwks_server.url("/x"), "a")
    assert env.call("GET", "/tyk/cache/jwks").status == 405
    assert env.call("POST", "/tyk/cache/jwks/a").status == 405
    assert env.call("DELETE", "/tyk/cache/jwks/a/b").status == 404
    assert env.call("DELETE", "/tyk/cache/jwks", secret=None).status == 403
    assert env.call("DELETE", "/tyk/cache/jwks/a", secret="wrong").status == 403
    env.settle()
    assert len(cache.urls()) == 1  # none of those flushed anything
    assert not any(event == "jwks-cache" for event, _ in env.events)
    # Trailing slashes are ignored, and the path is matched decoded, as Tyk's router.
    assert env.call("DELETE", "/tyk/cache/jwks/").json == OK
    env.settle()
    assert cache.urls() == []
    fetch_key(env, jwks_server.url("/x"), "a")
    assert env.call("DELETE", "/tyk/cache/%6Awks/%61").json == OK
    env.settle()
    assert ("jwks-cache", "a") in env.events and cache.urls() == []


def test_a_flush_reaches_every_gateway_sharing_the_store(admin_factory, jwks_server,
                                                         store_backend):
    if store_backend.kind == "memory":
        pytest.skip("each memory store is a world of its own: no second node to reach")
    first, second = admin_factory(), admin_factory()
    url = jwks_server.url("/shared")
    fetch_key(first, url, "a")
    on_second = fetch_key(second, url, "a")
    assert first.call("DELETE", "/tyk/cache/jwks/a").json == OK
    first.settle()
    second.settle()
    assert second.gateway.jwks.urls() == [] and on_second.retired


def test_the_gateway_builds_its_jwks_cache_from_its_config(admin_factory, store_backend):
    env = admin_factory(jwks={"cache": {"timeout": 60}, "fetch_timeout": 1.5,
                              "refetch_interval": 2})
    cache = env.gateway.jwks
    assert (cache.ttl, cache.fetch_timeout, cache.refetch_interval) == (60.0, 1.5, 2.0)
    assert env.gateway.services.jwks is cache  # what the JWT method gets
    default = admin_factory(jwks={"cache": {"timeout": 0}}).gateway.jwks
    assert (default.ttl, default.fetch_timeout, default.refetch_interval) == (240.0, 5.0, 5.0)


def test_jwks_flush_over_a_real_socket(gateway_factory):
    """The routes as a client reaches them (the process exits 0 at SIGTERM,
    closing its JWKS cache)."""
    gw = gateway_factory(apis=[])
    headers = {"X-Tyk-Authorization": gw.secret}
    for path in ("/tyk/cache/jwks", "/tyk/cache/jwks/some-api"):
        resp = requests.delete(gw.url(path), headers=headers, timeout=10)
        assert (resp.status_code, resp.json()) == (200, OK), path
    assert requests.get(gw.url("/tyk/cache/jwks"), headers=headers,
                        timeout=10).status_code == 405
    assert requests.delete(gw.url("/tyk/cache/jwks"), timeout=10).status_code == 403
