"""The JWKS cache (:mod:`fastgate.auth.jwt.jwks`) against a real local HTTP
server, on the real (uvloop) event loop.

``KeyServer`` is a threading ``http.server`` serving JWK Sets of keys made
with ``cryptography`` and OpenID discovery documents; it counts the requests
per path and can rotate its keys, go down (connection refused), answer
slowly, serve a broken JWK or a document that is not a JWK Set.  The cache's
clock is a :class:`FakeClock` the tests move, so TTLs and the refetch
interval are exact; the fetch timeout is real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from fastgate.auth.jwt.jwks import DISCOVERY_PATH, JwksCache
from fastgate.config import ConfigError, parse_gateway_config
from fastgate.outbound import HttpClient

SIGNING_INPUT = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0"
TTL = 240.0
INTERVAL = 5.0


# ----------------------------------------------------------------------------- keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int, size: int | None = None) -> str:
    size = size or (value.bit_length() + 7) // 8
    return _b64(value.to_bytes(size, "big"))


class Signer:
    """A private key, its public JWK and a signature of SIGNING_INPUT."""

    def __init__(self, private: Any, kid: str) -> None:
        self.private = private
        self.kid = kid
        public = private.public_key()
        if isinstance(private, rsa.RSAPrivateKey):
            numbers = public.public_numbers()
            self.alg = "RS256"
            self.jwk: dict[str, Any] = {"kty": "RSA", "kid": kid, "n": _int(numbers.n),
                                        "e": _int(numbers.e)}
            self.signature = private.sign(SIGNING_INPUT, padding.PKCS1v15(), hashes.SHA256())
        else:
            numbers = public.public_numbers()
            self.alg = "ES256"
            self.jwk = {"kty": "EC", "kid": kid, "crv": "P-256", "x": _int(numbers.x, 32),
                        "y": _int(numbers.y, 32)}
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

            r, s = decode_dss_signature(private.sign(SIGNING_INPUT, ec.ECDSA(hashes.SHA256())))
            self.signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verifies(self, key: Any) -> bool:
        """Whether ``key`` (a VerifyKey from the cache) is this signer's."""
        return bool(key is not None and key.verify(self.alg, SIGNING_INPUT, self.signature))


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    rsa_keys = {kid: Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid)
                for kid in ("k1", "k2", "k3")}
    rsa_keys["e1"] = Signer(ec.generate_private_key(ec.SECP256R1()), "e1")
    return rsa_keys


BROKEN_JWK = {"kty": "RSA", "kid": "broken", "e": "AQAB"}  # no modulus


# ----------------------------------------------------------------------------- the server


class KeyServer:
    """A real HTTP server of JWK Sets and discovery documents (see the module docstring)."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, bytes]] = {}
        self.hits: Counter[str] = Counter()
        self.delay = 0.0
        self.released = threading.Event()  # ends every delay at teardown
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with owner.lock:
                    owner.hits[path] += 1
                    status, body = owner.documents.get(path, (404, b"not found"))
                    delay = owner.delay
                if delay:
                    owner.released.wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its timeout)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        """Go down: the port refuses connections until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.released.set()
        self.stop()

    def serve(self, path: str, document: object, status: int = 200) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        with self.lock:
            self.documents[path] = (status, body)

    def serve_keys(self, path: str, *keys: Signer | dict[str, Any]) -> str:
        """Serve a JWK Set at ``path``; its URL."""
        jwks = [k.jwk if isinstance(k, Signer) else k for k in keys]
        self.serve(path, {"keys": jwks})
        return self.url(path)

    def serve_discovery(self, issuer_path: str, jwks_path: str, *,
                        issuer: str | None = None) -> str:
        """Serve the discovery document of the issuer at ``issuer_path``; the issuer."""
        name = self.url(issuer_path)
        document = {"issuer": name if issuer is None else issuer,
                    "jwks_uri": self.url(jwks_path),
                    "authorization_endpoint": name + "/auth"}
        self.serve(issuer_path.rstrip("/") + DISCOVERY_PATH, document)
        return name


@pytest.fixture
def server() -> Iterator[KeyServer]:
    srv = KeyServer()
    yield srv
    srv.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_cache(run: Any, clock: FakeClock) -> Iterator[Callable[..., JwksCache]]:
    made: list[tuple[JwksCache, HttpClient]] = []

    def make(**options: Any) -> JwksCache:
        http = HttpClient()
        settings: dict[str, Any] = {"ttl": TTL, "fetch_timeout": 2.0,
                                    "refetch_interval": INTERVAL}
        settings.update(options)
        cache = JwksCache(http, clock, **settings)
        made.append((cache, http))
        return cache

    yield make
    for cache, http in made:
        run(cache.close())
        run(http.close())


def is_awaitable(value: object) -> bool:
    return hasattr(value, "__await__")


async def resolve(value: Any) -> Any:
    """The key a ``JwksCache.key`` answer gives, awaited when it must be."""
    if is_awaitable(value):
        return await value
    return value


async def settle(cache: JwksCache, url: str, discovery: bool | None = None) -> None:
    """Wait until no fetch of ``url`` is in flight."""
    for _ in range(400):
        entry = cache._entries.get((url, discovery))
        if entry is None or entry.task is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the fetch never ended")


# ----------------------------------------------------------------------------- caching


def test_first_use_fetches_once_for_every_waiter_then_answers_synchronously(
        run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"], signers["k2"], signers["e1"])
    cache = make_cache()

    async def body() -> None:
        pending = [cache.key(url, "k1", "api") for _ in range(10)]
        assert all(is_awaitable(p) for p in pending)  # nothing fetched yet
        found = await asyncio.gather(*pending)  # type: ignore[arg-type]
        assert server.hits["/jwks"] == 1  # one fetch shared by the ten
        assert all(k is found[0] for k in found)
        assert signers["k1"].verifies(found[0])
        assert not signers["k2"].verifies(found[0])
        # Cached: synchronous, the same object, no fetch.
        again = cache.key(url, "k1", "api")
        assert again is found[0]
        ec_key = cache.key(url, "e1", "api")
        assert not is_awaitable(ec_key) and signers["e1"].verifies(ec_key)
        assert server.hits["/jwks"] == 1
        status = cache.status(url)
        assert status is not None
        assert (status.kind, status.jwks_uri, status.kids) == ("jwks", url, ("k1", "k2", "e1"))
        assert status.apis == {"api"}

    run(body())


def test_a_token_without_kid_is_none_and_fetches_nothing(run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache()

    async def body() -> None:
        assert cache.key(url, None, "api") is None
        assert server.hits["/jwks"] == 0

    run(body())


def test_prefetch_warms_the_cache_for_the_first_token(run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache()
    cache.prefetch(url, "api")  # outside the loop: does nothing
    assert server.hits["/jwks"] == 0

    async def body() -> None:
        cache.prefetch(url, "api")
        cache.prefetch(url, "api")  # one fetch in flight is enough
        await settle(cache, url)
        found = cache.key(url, "k1", "api")
        assert not is_awaitable(found) and signers["k1"].verifies(found)
        assert server.hits["/jwks"] == 1

    run(body())


# ----------------------------------------------------------------------------- TTL


def test_a_stale_set_is_served_while_one_background_refresh_runs(
        run, server, make_cache, clock, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache(fetch_timeout=5.0)

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api"))
        clock.advance(TTL - 1)
        assert cache.key(url, "k1", "api") is k1
        await asyncio.sleep(0.05)
        assert server.hits["/jwks"] == 1  # still fresh: no refresh
        server.serve_keys("/jwks", signers["k1"], signers["k2"])
        server.delay = 0.5
        clock.advance(2)  # past the TTL
        started = time.monotonic()
        for _ in range(50):
            assert cache.key(url, "k1", "api") is k1  # at once, while refreshing
        assert time.monotonic() - started < 0.1
        await asyncio.sleep(0.1)
        assert server.hits["/jwks"] == 2  # one refresh for the fifty requests
        await settle(cache, url)
        # The refreshed set is in service; k1's JWK did not change: same object.
        assert cache.key(url, "k1", "api") is k1 and not k1.retired
        k2 = cache.key(url, "k2", "api")
        assert not is_awaitable(k2) and signers["k2"].verifies(k2)
        assert server.hits["/jwks"] == 2
        status = cache.status(url)
        assert status is not None and status.fetched_at == clock.now

    run(body())


def test_the_ttl_comes_from_tyks_jwks_cache_timeout(tmp_path):
    def load(section: object) -> Any:
        return parse_gateway_config({"secret": "s", "jwks": section}, str(tmp_path / "g.json"))

    assert load({"cache": {"timeout": 0}}).jwks.cache_timeout == 240  # Tyk's 0
    assert load({}).jwks.cache_timeout == 240
    cfg = load({"cache": {"timeout": 30}, "fetch_timeout": 1.5, "refetch_interval": 2})
    assert (cfg.jwks.cache_timeout, cfg.jwks.fetch_timeout, cfg.jwks.refetch_interval) \
        == (30, 1.5, 2.0)
    assert cfg.ignored_fields == () and cfg.unknown_fields == ()
    assert parse_gateway_config({"secret": "s"}, str(tmp_path / "g.json")).jwks.fetch_timeout \
        == 5.0
    for bad, field in (({"cache": {"timeout": 1.5}}, "jwks.cache.timeout"),  # Tyk: int64
                       ({"cache": {"timeout": -1}}, "jwks.cache.timeout"),
                       ({"cache": {"timeout": True}}, "jwks.cache.timeout"),
                       ({"cache": 5}, "jwks.cache"),
                       ({"fetch_timeout": "5"}, "jwks.fetch_timeout"),
                       ({"cache": {"Timeout": 5}}, "jwks.cache.Timeout")):
        with pytest.raises(ConfigError) as caught:
            load(bad)
        assert caught.value.field == field, bad
    odd = load({"cache": {"timout": 5}, "refetch_intervall": 1})
    assert [(u.path, u.suggestion) for u in odd.unknown_fields] == [
        ("jwks.cache.timout", "timeout"), ("jwks.refetch_intervall", "refetch_interval")]


def test_the_cache_refuses_nonsense_settings():
    for name in ("ttl", "fetch_timeout", "refetch_interval"):
        with pytest.raises(ValueError, match=name):
            JwksCache(HttpClient(), **{name: 0})


# ----------------------------------------------------------------------------- rotation


def test_an_unknown_kid_refetches_at_once_and_a_rotated_key_works_on_its_first_token(
        run, server, make_cache, clock, signers):
    url = server.serve_keys("/jwks", signers["k1"], signers["k2"])
    cache = make_cache()

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api"))
        k2 = await resolve(cache.key(url, "k2", "api"))
        clock.advance(INTERVAL)  # well within the TTL
        # The issuer rotates: k3 is new, k2 is gone, k1 stays.
        server.serve_keys("/jwks", signers["k1"], signers["k3"])
        pending = cache.key(url, "k3", "api")
        assert is_awaitable(pending)
        k3 = await resolve(pending)
        assert signers["k3"].verifies(k3)
        assert server.hits["/jwks"] == 2
        # A dropped key is retired (the verified-token cache stops honouring
        # its tokens); an unchanged one keeps its object.
        assert k2.retired and not k1.retired
        assert cache.key(url, "k1", "api") is k1
        assert cache.key(url, "k2", "api") is None  # fetched a moment ago
        # The same kid with another key under it: the old object is retired.
        clock.advance(INTERVAL)
        server.serve_keys("/jwks", {**signers["k2"].jwk, "kid": "k1"}, signers["k3"])
        clock.advance(TTL)
        assert cache.key(url, "k1", "api") is k1  # stale, served
        await settle(cache, url)
        replaced = cache.key(url, "k1", "api")
        assert k1.retired and replaced is not k1
        assert signers["k2"].verifies(replaced) and not signers["k1"].verifies(replaced)
        assert cache.key(url, "k3", "api") is k3 and not k3.retired

    run(body())


def test_unknown_kids_within_the_refetch_interval_are_unknown_at_once(
        run, server, make_cache, clock, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache()

    async def body() -> None:
        await resolve(cache.key(url, "k1", "api"))
        clock.advance(INTERVAL - 0.5)
        assert cache.key(url, "made-up", "api") is None  # synchronous, no fetch
        assert server.hits["/jwks"] == 1
        clock.advance(0.5)
        assert is_awaitable(pending := cache.key(url, "made-up", "api"))
        assert await resolve(pending) is None
        assert server.hits["/jwks"] == 2

    run(body())


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_twenty_tokens_with_made_up_kids_in_a_burst_cause_at_most_two_fetches(
        run, server, make_cache, clock, signers, warm):
    url = server.serve_keys("/jwks", signers["k1"])
    server.delay = 0.2  # the burst arrives while the fetch is in flight
    cache = make_cache()

    async def body() -> None:
        if warm:
            await resolve(cache.key(url, "k1", "api"))
            clock.advance(TTL + 1)  # stale, and long past the interval
        before = server.hits["/jwks"]
        answers = [cache.key(url, f"made-up-{i}", "api") for i in range(10)]
        await asyncio.sleep(0.05)
        answers += [cache.key(url, f"made-up-{i}", "api") for i in range(10, 20)]
        found = await asyncio.gather(*(resolve(a) for a in answers))
        assert found == [None] * 20
        # Then the set is known again, and more made-up kids cost nothing.
        for i in range(20):
            assert cache.key(url, f"again-{i}", "api") is None
        fetches = server.hits["/jwks"] - before
        assert fetches <= 2  # the bound
        assert fetches == 1  # this cache's rule: one fetch in flight, shared
        assert signers["k1"].verifies(cache.key(url, "k1", "api"))

    run(body())


# ----------------------------------------------------------------------------- failures


def test_a_down_endpoint_keeps_the_known_keys_working_and_logs_once_per_attempt(
        run, server, make_cache, clock, signers, caplog):
    caplog.set_level(logging.WARNING, logger="fastgate.jwks")
    url = server.serve_keys("/jwks", signers["k1"]) + "?client_secret=hush"
    cache = make_cache()

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api"))
        server.stop()
        clock.advance(TTL + 1)
        for _ in range(100):
            assert cache.key(url, "k1", "api") is k1
        await settle(cache, url)
        for _ in range(100):
            assert cache.key(url, "k1", "api") is k1  # the failed refresh kept it
        failures = [r for r in caplog.records if "fetch failed" in r.getMessage()]
        assert len(failures) == 1  # one attempt, one line: not one per request
        assert "the 1 keys fetched before stay in service" in failures[0].getMessage()
        status = cache.status(url)
        assert status is not None and "cannot connect" in status.failure
        # An unknown kid while down: an answer at once (the attempt is too recent) ...
        assert cache.key(url, "k9", "api") is None
        # ... and after the interval, one more attempt, answered within the bound.
        clock.advance(INTERVAL)
        started = time.monotonic()
        assert await resolve(cache.key(url, "k9", "api")) is None
        assert time.monotonic() - started < 1.0
        assert cache.key(url, "k1", "api") is k1 and not k1.retired
        await settle(cache, url)
        assert len([r for r in caplog.records if "fetch failed" in r.getMessage()]) == 2
        # The query of the URL may hold a secret: never in a message.
        assert all("hush" not in r.getMessage() for r in caplog.records)
        # Back up: the next attempt puts the new set in service.
        server.start()
        server.serve_keys("/jwks", signers["k1"], signers["k2"])
        clock.advance(INTERVAL)
        assert signers["k2"].verifies(await resolve(cache.key(url, "k2", "api")))
        status = cache.status(url)
        assert status is not None and status.failure == ""

    run(body())


def test_a_slow_endpoint_never_stalls_known_keys_and_an_unknown_kid_answers_in_time(
        run, server, make_cache, clock, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache(fetch_timeout=0.5)

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api"))
        server.delay = 3.0
        clock.advance(INTERVAL)
        started = time.monotonic()
        unknown = asyncio.ensure_future(resolve(cache.key(url, "k-new", "api")))
        # While that fetch hangs, requests whose key is known are answered
        # at once, and the loop is free: a timer fires on time.
        for _ in range(20):
            tick = time.monotonic()
            assert cache.key(url, "k1", "api") is k1
            await asyncio.sleep(0.01)
            assert time.monotonic() - tick < 0.2
        assert not unknown.done()
        assert await unknown is None
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 1.0  # fetch_timeout, not the server's 3 s
        status = cache.status(url)
        assert status is not None and "no answer within 0.5 s" in status.failure
        assert cache.key(url, "k1", "api") is k1 and not k1.retired

    run(body())


def test_a_slow_endpoint_on_first_use_answers_none_in_time(run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    server.delay = 3.0
    cache = make_cache(fetch_timeout=0.3)

    async def body() -> None:
        started = time.monotonic()
        found = await asyncio.gather(*(resolve(cache.key(url, "k1", "api")) for _ in range(5)))
        assert found == [None] * 5
        assert time.monotonic() - started < 0.8
        assert server.hits["/jwks"] == 1
        # Right after a failed first fetch: None at once, the endpoint is spared.
        assert cache.key(url, "k1", "api") is None

    run(body())


def test_a_broken_jwk_is_skipped_and_reported_and_the_others_work(
        run, server, make_cache, clock, signers, caplog):
    caplog.set_level(logging.WARNING, logger="fastgate.jwks")
    url = server.serve_keys("/jwks", signers["k1"], BROKEN_JWK, {"kty": "nope", "kid": "odd"},
                            signers["k2"])
    cache = make_cache()

    async def body() -> None:
        assert signers["k1"].verifies(await resolve(cache.key(url, "k1", "api")))
        assert signers["k2"].verifies(cache.key(url, "k2", "api"))
        assert cache.key(url, "broken", "api") is None
        status = cache.status(url)
        assert status is not None
        assert status.kids == ("k1", "k2") and len(status.skipped) == 2
        reports = [r for r in caplog.records if "keys skipped" in r.getMessage()]
        assert len(reports) == 1 and "2 keys skipped" in reports[0].getMessage()
        # The same broken set again: reported once, not on every refresh.
        clock.advance(TTL + 1)
        cache.key(url, "k1", "api")
        await settle(cache, url)
        assert server.hits["/jwks"] == 2
        assert len([r for r in caplog.records if "keys skipped" in r.getMessage()]) == 1

    run(body())


@pytest.mark.parametrize(("status", "document", "reason"), [
    (200, {"not": "a jwks"}, 'not a JWK Set (no "keys" array)'),
    (200, {"keys": {"k1": {}}}, 'not a JWK Set (no "keys" array)'),
    (200, b"<html>maintenance</html>", "not JSON"),
    (200, [1, 2], 'not a JWK Set (no "keys" array)'),
    (500, {"keys": []}, "answered 500"),
    (302, b"", "answered 302"),
    (200, {"keys": [BROKEN_JWK]}, "none of its 1 keys can be used"),
], ids=["object", "keys-not-array", "html", "array", "500", "redirect", "all-broken"])
def test_an_answer_that_is_not_a_usable_jwks_is_a_failed_fetch_and_keeps_the_old_keys(
        run, server, make_cache, clock, signers, status, document, reason):
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache(fetch_timeout=1.0)

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api", discovery=False))
        server.serve("/jwks", document, status)
        clock.advance(TTL + 1)
        assert cache.key(url, "k1", "api", discovery=False) is k1
        await settle(cache, url, False)
        assert cache.key(url, "k1", "api", discovery=False) is k1 and not k1.retired
        state = cache.status(url, discovery=False)
        assert state is not None and reason in state.failure

    run(body())


def test_an_empty_jwks_is_a_set_with_no_keys(run, server, make_cache, clock, signers):
    """The issuer published no keys: what it says goes (only a set whose keys
    are all unusable is taken for a failure)."""
    url = server.serve_keys("/jwks", signers["k1"])
    cache = make_cache()

    async def body() -> None:
        k1 = await resolve(cache.key(url, "k1", "api"))
        server.serve_keys("/jwks")
        clock.advance(TTL + 1)
        cache.key(url, "k1", "api")
        await settle(cache, url)
        assert k1.retired
        assert cache.key(url, "k1", "api") is None

    run(body())


# ----------------------------------------------------------------------------- discovery


def test_an_issuer_url_names_its_jwks_through_openid_discovery(
        run, server, make_cache, clock, signers):
    server.serve_keys("/realms/acme/certs", signers["k1"])
    issuer = server.serve_discovery("/realms/acme", "/realms/acme/certs")
    cache = make_cache()

    async def body() -> None:
        found = await resolve(cache.key(issuer, "k1", "api", discovery=True))
        assert signers["k1"].verifies(found)
        status = cache.status(issuer, discovery=True)
        assert status is not None
        assert (status.kind, status.issuer, status.jwks_uri) == (
            "issuer", issuer, server.url("/realms/acme/certs"))
        assert server.hits[f"/realms/acme{DISCOVERY_PATH}"] == 1
        assert server.hits["/realms/acme/certs"] == 1
        # A kid miss refetches through discovery too.
        server.serve_keys("/realms/acme/certs", signers["k1"], signers["k2"])
        clock.advance(INTERVAL)
        assert signers["k2"].verifies(
            await resolve(cache.key(issuer, "k2", "api", discovery=True)))

    run(body())


def test_by_default_a_url_that_is_not_a_jwks_is_tried_as_an_issuer(
        run, server, make_cache, clock, signers):
    """What ``jwt_source`` gets (``discovery=None``): a Keycloak realm URL
    (answering its realm JSON) and an Auth0-style issuer with a trailing slash
    (answering 404) both find their keys; a JWKS URL is a JWKS; and the kind,
    once known, is kept."""
    server.serve("/realms/acme", {"realm": "acme", "public_key": "MIIB..."})
    server.serve_keys("/realms/acme/certs", signers["k1"])
    realm = server.serve_discovery("/realms/acme", "/realms/acme/certs")
    server.serve_keys("/auth0/jwks.json", signers["k2"])
    auth0 = server.serve_discovery("/auth0/", "/auth0/jwks.json")
    assert auth0.endswith("/auth0/")
    plain = server.serve_keys("/plain/jwks", signers["k3"])
    document = server.url(f"/realms/acme{DISCOVERY_PATH}")
    cache = make_cache()

    async def body() -> None:
        assert signers["k1"].verifies(await resolve(cache.key(realm, "k1", "a")))
        assert signers["k2"].verifies(await resolve(cache.key(auth0, "k2", "a")))
        assert signers["k3"].verifies(await resolve(cache.key(plain, "k3", "a")))
        assert signers["k1"].verifies(await resolve(cache.key(document, "k1", "a")))
        kinds = {url: cache.status(url).kind for url in (realm, auth0, plain, document)}
        assert kinds == {realm: "issuer", auth0: "issuer", plain: "jwks", document: "issuer"}
        assert server.hits[f"/plain{DISCOVERY_PATH}"] == 0
        # Known to be an issuer: the realm URL itself is not asked again.
        realm_hits = server.hits["/realms/acme"]
        clock.advance(TTL + 1)
        cache.key(realm, "k1", "a")
        await settle(cache, realm)
        assert server.hits["/realms/acme"] == realm_hits
        assert server.hits["/realms/acme/certs"] == 3  # realm, document, refresh

    run(body())


@pytest.mark.parametrize(("issuer", "jwks_uri", "reason"), [
    ("http://evil.example", None, "not the issuer"),
    (None, None, "not the issuer"),  # the right issuer plus a trailing slash
    ("", "file:///etc/passwd", "jwks_uri is not an http(s) URL"),
    ("", "/relative/certs", "jwks_uri is not an http(s) URL"),
], ids=["other-issuer", "slash-added", "file-url", "relative"])
def test_a_discovery_document_must_name_the_issuer_and_an_http_jwks_uri(
        run, server, make_cache, signers, issuer, jwks_uri, reason):
    server.serve_keys("/certs", signers["k1"])
    configured = server.url("/idp")
    named = {None: configured + "/", "": configured}.get(issuer, issuer)
    server.serve(f"/idp{DISCOVERY_PATH}",
                 {"issuer": named, "jwks_uri": jwks_uri or server.url("/certs")})
    cache = make_cache()

    async def body() -> None:
        assert await resolve(cache.key(configured, "k1", "api", discovery=True)) is None
        status = cache.status(configured, discovery=True)
        assert status is not None and reason in status.failure
        assert server.hits["/certs"] == 0  # keys from an unverified issuer are never read

    run(body())


def test_a_discovery_url_given_directly_accepts_its_issuer_with_or_without_slash(
        run, server, make_cache, signers):
    server.serve_keys("/certs", signers["k1"])
    cache = make_cache()
    server.serve(f"/a{DISCOVERY_PATH}", {"issuer": server.url("/a/"),
                                         "jwks_uri": server.url("/certs")})
    server.serve(f"/b{DISCOVERY_PATH}", {"issuer": server.url("/b"),
                                         "jwks_uri": server.url("/certs")})
    server.serve(f"/c{DISCOVERY_PATH}", {"issuer": server.url("/other"),
                                         "jwks_uri": server.url("/certs")})

    async def body() -> None:
        for path in ("/a", "/b"):
            url = server.url(path + DISCOVERY_PATH)
            assert signers["k1"].verifies(await resolve(cache.key(url, "k1", "api")))
        bad = server.url("/c" + DISCOVERY_PATH)
        assert await resolve(cache.key(bad, "k1", "api")) is None
        assert "not the issuer" in cache.status(bad).failure

    run(body())


# ----------------------------------------------------------------------------- flush


def test_flush_drops_the_sets_an_api_used_retires_their_keys_and_refetches(
        run, server, make_cache, signers):
    url_a = server.serve_keys("/a", signers["k1"])
    url_b = server.serve_keys("/b", signers["k2"])
    url_shared = server.serve_keys("/shared", signers["k3"])
    cache = make_cache()

    async def body() -> None:
        ka = await resolve(cache.key(url_a, "k1", "api-a"))
        kb = await resolve(cache.key(url_b, "k2", "api-b"))
        ks = await resolve(cache.key(url_shared, "k3", "api-a"))
        assert await resolve(cache.key(url_shared, "k3", "api-b")) is ks
        assert cache.flush("api-unknown") == 0
        assert cache.flush("api-a") == 2  # its own URL and the shared one
        assert ka.retired and ks.retired and not kb.retired
        assert sorted(cache.urls()) == [url_b]
        assert cache.urls("api-b") == [url_b]
        assert cache.key(url_b, "k2", "api-b") is kb  # untouched
        # The next token fetches again, at once (no refetch interval after a flush).
        again = cache.key(url_a, "k1", "api-a")
        assert is_awaitable(again)
        fresh = await resolve(again)
        assert fresh is not ka and signers["k1"].verifies(fresh) and not fresh.retired
        assert server.hits["/a"] == 2
        assert cache.flush() == 2
        assert cache.urls() == [] and kb.retired and fresh.retired

    run(body())


def test_a_flush_during_a_fetch_answers_its_waiters_but_keeps_nothing(
        run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    server.delay = 0.3
    cache = make_cache()

    async def body() -> None:
        waiting = asyncio.ensure_future(resolve(cache.key(url, "k1", "api")))
        await asyncio.sleep(0.1)
        assert cache.flush() == 1
        got = await waiting
        assert signers["k1"].verifies(got)  # the request waiting is answered ...
        assert got.retired  # ... but nothing it verifies outlives the flush
        assert cache.urls() == []

    run(body())


def test_close_cancels_the_fetches_in_flight(run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    server.delay = 3.0
    cache = make_cache()

    async def body() -> None:
        waiting = asyncio.ensure_future(resolve(cache.key(url, "k1", "api")))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await cache.close()
        assert await waiting is None
        assert time.monotonic() - started < 0.5
        assert cache.key(url, "k2", "api") is None  # closed: no new fetch

    run(body())


def test_a_request_that_goes_away_does_not_cancel_the_shared_fetch(
        run, server, make_cache, signers):
    url = server.serve_keys("/jwks", signers["k1"])
    server.delay = 0.2
    cache = make_cache()

    async def body() -> None:
        first = asyncio.ensure_future(resolve(cache.key(url, "k1", "api")))
        second = asyncio.ensure_future(resolve(cache.key(url, "k1", "api")))
        await asyncio.sleep(0.05)
        first.cancel()
        assert signers["k1"].verifies(await second)
        assert first.cancelled()
        assert server.hits["/jwks"] == 1

    run(body())
