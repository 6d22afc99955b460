"""Rate limits and quotas through a real gateway, on the memory store and on
Redis: exact counts, refusals that cost nothing, Retry-After and the
X-RateLimit-* headers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import limited_session


@pytest.fixture
def gw(gateway_factory, make_api, echo, storage):
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False),
            make_api("open", "/open/", echo.base_url,
                     global_rate_limit={"rate": 3, "per": 1})]
    return gateway_factory(apis, storage=storage)


def get(gw, key: str, path: str = "/p/x") -> requests.Response:
    return requests.get(gw.url(path), headers={"Authorization": key}, timeout=10)


def test_burst_gets_exactly_the_rate_then_429_and_recovers(gw, admin_for):
    admin_for(gw).add_key("ratekey1", limited_session(rate=5, per=1))
    with requests.Session() as client:
        replies = [client.get(gw.url("/p/x"), headers={"Authorization": "ratekey1"},
                              timeout=10) for _ in range(8)]
    codes = [r.status_code for r in replies]
    assert codes == [200] * 5 + [429] * 3, codes
    refused = replies[5]
    assert refused.json() == {"error": "Rate Limit Exceeded"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 1
    assert refused.headers["X-RateLimit-Limit"] == "5"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    time.sleep(1.05)
    assert [get(gw, "ratekey1").status_code for _ in range(5)] == [200] * 5


def test_refusals_cost_nothing(gw, admin_for):
    """A client hammering over its limit for 3 s still gets its full share."""
    admin_for(gw).add_key("hammer01", limited_session(rate=10, per=1))
    admitted = 0
    deadline = time.monotonic() + 3.0
    with requests.Session() as client:
        while time.monotonic() < deadline:
            resp = client.get(gw.url("/p/x"), headers={"Authorization": "hammer01"}, timeout=10)
            assert resp.status_code in (200, 429)
            admitted += resp.status_code == 200
    # A burst of 10, then one every 0.1 s: 40 in 3 s (one more at the edge).
    assert 38 <= admitted <= 41, admitted


def test_quota_exact_and_renewal(gw, admin_for):
    admin_for(gw).add_key("quotakey", limited_session(quota_max=10, quota_renewal_rate=2))
    with requests.Session() as client:
        replies = [client.get(gw.url("/p/x"), headers={"Authorization": "quotakey"},
                              timeout=10) for _ in range(11)]
    assert [r.status_code for r in replies] == [200] * 10 + [403]
    assert replies[10].json() == {"error": "Quota exceeded"}
    assert 1 <= int(replies[10].headers["Retry-After"]) <= 2
    assert replies[9].headers["X-RateLimit-Limit"] == "10"
    assert replies[9].headers["X-RateLimit-Remaining"] == "0"
    assert replies[0].headers["X-RateLimit-Remaining"] == "9"
    # The live quota in the REST API.
    state = admin_for(gw).call("GET", "/tyk/keys/quotakey").json()
    assert state["quota_remaining"] == 0
    assert state["quota_renews"] > time.time()
    time.sleep(2.1)
    assert get(gw, "quotakey").status_code == 200


def test_unlimited_quota_and_rate(gw, admin_for):
    admin_for(gw).add_key("freekey1", limited_session(rate=0, per=0, quota_max=-1))
    assert all(get(gw, "freekey1").status_code == 200 for _ in range(30))


def test_global_rate_limit_on_a_keyless_api(gw):
    with requests.Session() as client:
        replies = [client.get(gw.url("/open/x"), timeout=10) for _ in range(5)]
    assert [r.status_code for r in replies] == [200] * 3 + [429] * 2
    assert replies[3].json() == {"error": "API Rate Limit Exceeded"}
    assert "Retry-After" in replies[3].headers


def test_rate_limit_headers_mode(gateway_factory, make_api, echo, storage, admin_for):
    gw = gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False)],
                         storage=storage, rate_limit_response_headers="rate_limits")
    admin_for(gw).add_key("hdrkey01", limited_session(rate=7, per=1, quota_max=100,
                                                  quota_renewal_rate=60))
    resp = get(gw, "hdrkey01")
    assert resp.status_code == 200
    assert resp.headers["X-RateLimit-Limit"] == "7"
    assert resp.headers["X-RateLimit-Remaining"] == "6"


def test_per_api_limits_from_a_policy(gw, admin_for):
    a = admin_for(gw)
    a.put_policy("per-api", {
        "id": "per-api", "partitions": {"per_api": True},
        "access_rights": {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"],
                                "limit": {"rate": 2, "per": 1, "quota_max": -1}}}})
    a.add_key("perapi01", limited_session(rate=100, per=1, apply_policies=["per-api"]))
    codes = [get(gw, "perapi01").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429], codes


def admitted_within(gw, key: str, seconds: float) -> int:
    """Requests a client sending as fast as it can gets through in ``seconds``."""
    admitted = 0
    deadline = time.monotonic() + seconds
    with requests.Session() as client:
        while time.monotonic() < deadline:
            resp = client.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10)
            admitted += resp.status_code == 200
    return admitted


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_storage(request: pytest.FixtureRequest) -> dict[str, object]:
    """A redis storage section two gateways share: one server, or a 3-master cluster."""
    if request.param == "redis":
        redis = request.getfixturevalue("redis_server")
        redis.client().flushall()
        return {"type": "redis", "host": redis.host, "port": redis.port}
    cluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return {"type": "redis", "enable_cluster": True, "addrs": list(cluster.addrs)}


def test_quota_exact_across_two_gateways(gateway_factory, make_api, echo, shared_storage,
                                         admin_for):
    """Two gateway processes on one Redis (or a 3-master cluster), hammered
    concurrently, admit exactly quota_max."""
    storage = shared_storage
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False)]
    one = gateway_factory(apis, storage=storage)
    two = gateway_factory(apis, storage=storage)
    admin_for(one).add_key("sharedq1", limited_session(quota_max=100, quota_renewal_rate=3600))

    def hammer(gw) -> list[int]:
        with requests.Session() as client:
            return [client.get(gw.url("/p/x"), headers={"Authorization": "sharedq1"},
                               timeout=10).status_code for _ in range(40)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hammer, [one, two] * 4))
    codes = [c for batch in results for c in batch]
    assert codes.count(200) == 100, (codes.count(200), codes.count(403))
    assert codes.count(403) == 220


def test_rate_exact_across_two_gateways(gateway_factory, make_api, echo, redis_server,
                                        admin_for):
    """redis mode: a rate limit over two nodes lands within 10% of the configured rate."""
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port}
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False)]
    one = gateway_factory(apis, storage=storage)
    two = gateway_factory(apis, storage=storage)
    admin_for(one).add_key("sharedr1", limited_session(rate=20, per=1))
    seconds = 3.0

    def hammer(gw) -> int:
        return admitted_within(gw, "sharedr1", seconds)

    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(hammer, [one, two, one, two]))
    expected = 20 + 20 * seconds  # the burst, then the rate
    assert abs(total - expected) <= 0.1 * expected, total


@pytest.mark.slow
def test_local_mode_splits_the_rate_across_gateways(gateway_factory, make_api, echo,
                                                    redis_server, admin_for):
    """rate_limiter "local": each of two gateways takes half a key's rate once
    their heartbeats have met (about 5 s), so the total stays near the rate."""
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port}
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False)]
    one = gateway_factory(apis, storage=storage, rate_limiter="local")
    two = gateway_factory(apis, storage=storage, rate_limiter="local")
    admin_for(one).add_key("localkey", limited_session(rate=20, per=1))
    time.sleep(5.5)  # both workers have counted each other
    seconds = 2.0

    def hammer(gw) -> int:
        return admitted_within(gw, "localkey", seconds)

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(hammer, [one, two]))
    # Each: a burst of 10 (half of 20), then 10 a second.
    for count in counts:
        assert 26 <= count <= 32, counts
