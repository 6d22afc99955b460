"""Redis killed mid-traffic and restarted: limit decisions answer 503 within
the store's timeout (never hang), keyless APIs keep working, and the gateway
recovers by itself."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import limited_session

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_redis_down_and_back(gateway_factory, make_api, echo, redis_server, admin_for,
                             fail_open):
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port}
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False),
            make_api("open", "/open/", echo.base_url)]
    gw = gateway_factory(apis, storage=storage, limits_fail_open=fail_open)
    admin_for(gw).add_key("faultkey", limited_session(rate=1000, per=1, quota_max=100000,
                                                      quota_renewal_rate=3600))
    headers = {"Authorization": "faultkey"}
    with requests.Session() as client:
        assert client.get(gw.url("/p/x"), headers=headers, timeout=5).status_code == 200
        redis_server.stop()
        try:
            start = time.monotonic()
            resp = client.get(gw.url("/p/x"), headers=headers, timeout=5)
            elapsed = time.monotonic() - start
            assert elapsed < 2.0, elapsed  # the store's timeout is 1 s
            if fail_open:
                assert resp.status_code == 200, resp.text
            else:
                assert resp.status_code == 503, resp.text
                assert resp.headers["Content-Type"] == "application/json"
            # Keyless APIs need no store.
            assert client.get(gw.url("/open/x"), timeout=5).status_code == 200
        finally:
            redis_server.start()
        # This redis-server keeps nothing across a restart: put the key back
        # (the gateway's own connections come back by themselves).
        admin_for(gw).add_key("faultkey", limited_session(rate=1000, per=1, quota_max=100000,
                                                          quota_renewal_rate=3600))
        deadline = time.monotonic() + 10
        while True:
            resp = client.get(gw.url("/p/x"), headers=headers, timeout=5)
            if resp.status_code == 200:
                break
            assert time.monotonic() < deadline, resp.text
            time.sleep(0.1)


def test_a_frozen_redis_answers_503_within_storage_timeout(gateway_factory, make_api, echo,
                                                         redis_server, admin_for):
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port,
               "timeout": 0.3}
    gw = gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False)],
                         storage=storage)
    admin_for(gw).add_key("frozenk1", limited_session(rate=1000, per=1, quota_max=100000,
                                                      quota_renewal_rate=3600))
    headers = {"Authorization": "frozenk1"}
    assert requests.get(gw.url("/p/x"), headers=headers, timeout=5).status_code == 200
    redis_server.pause()
    try:
        start = time.monotonic()
        resp = requests.get(gw.url("/p/x"), headers=headers, timeout=5)
        elapsed = time.monotonic() - start
    finally:
        redis_server.resume()
    assert resp.status_code == 503, resp.text
    assert elapsed < 0.9, elapsed  # the configured 0.3 s, not the 1 s default
