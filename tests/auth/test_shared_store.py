"""Two gateway processes sharing one Redis: a change made through one takes
effect on the other within 100 ms (Tyk's 10 s session cache is the standing
complaint this answers)."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import session

pytestmark = pytest.mark.redis


@pytest.fixture
def pair(gateway_factory, make_api, echo, redis_server):
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port}
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False),
            make_api("q", "/q/", echo.base_url, use_keyless=False)]
    return gateway_factory(apis, storage=storage), gateway_factory(apis, storage=storage)


def refused_within(url: str, headers: dict[str, str], seconds: float) -> float:
    """Seconds until ``url`` answers 403; fails after ``seconds``."""
    start = time.monotonic()
    with requests.Session() as client:
        while True:
            resp = client.get(url, headers=headers, timeout=5)
            elapsed = time.monotonic() - start
            if resp.status_code == 403:
                return elapsed
            assert resp.status_code == 200, resp.text
            assert elapsed < seconds, f"still served after {elapsed * 1000:.0f} ms"


def test_key_deleted_on_one_is_refused_by_the_other(pair, admin_for):
    one, other = pair
    admin_for(one).add_key("sharedkey", session(("p",)))
    headers = {"Authorization": "sharedkey"}
    # The other gateway has the session cached before the delete.
    for _ in range(3):
        assert requests.get(other.url("/p/x"), headers=headers, timeout=5).status_code == 200
    admin_for(one).delete_key("sharedkey")
    refused_within(other.url("/p/x"), headers, 0.1)


def test_key_changed_on_one_applies_on_the_other(pair, admin_for):
    one, other = pair
    admin_for(one).add_key("sharedkey", session(("p", "q")))
    headers = {"Authorization": "sharedkey"}
    assert requests.get(other.url("/q/x"), headers=headers, timeout=5).status_code == 200
    admin_for(one).update_key("sharedkey", session(("p",)))
    refused_within(other.url("/q/x"), headers, 0.1)


def test_policy_change_is_seen_by_both(pair, admin_for):
    one, other = pair
    rights_p = {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"]}}
    rights_q = {"q": {"api_id": "q", "api_name": "q", "versions": ["Default"]}}
    admin_for(one).put_policy("shared", {"id": "shared", "rate": 10, "per": 1,
                                         "quota_max": -1, "access_rights": rights_p})
    admin_for(one).add_key("polkey01", session(apply_policies=["shared"]))
    headers = {"Authorization": "polkey01"}
    for gw in (one, other):
        assert requests.get(gw.url("/p/x"), headers=headers, timeout=5).status_code == 200
    admin_for(other).put_policy("shared", {"id": "shared", "rate": 10, "per": 1,
                                           "quota_max": -1, "access_rights": rights_q})
    for gw in (one, other):
        refused_within(gw.url("/p/x"), headers, 0.1)
        assert requests.get(gw.url("/q/x"), headers=headers, timeout=5).status_code == 200
