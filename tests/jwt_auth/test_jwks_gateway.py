"""JWKS on a real gateway: a local issuer (real HTTP server) whose keys rotate,
go down and publish a key nobody can parse; a plain URL and a base64 URL in
``jwt_source`` (TykTechnologies/tyk#7461), an OpenID issuer URL, the kid-miss
refetch (TykTechnologies/tyk#6378), ``DELETE /tyk/cache/jwks``, and two
gateways on one Redis."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from .idp import b64, start_issuer

ORG = "test-org"


def policies(*api_ids: str, quota: int = -1) -> dict[str, Any]:
    rights = {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids}
    return {"default": {"id": "default", "org_id": ORG, "rate": 1000, "per": 1,
                        "quota_max": quota, "quota_renewal_rate": 3600,
                        "access_rights": rights}}


@pytest.fixture
def issuer():
    server = start_issuer()
    server.add_key("k1")
    yield server
    server.close()


def start(factory: Any, apis: list[dict[str, Any]], pols: dict[str, Any],
          **config: Any) -> Any:
    gateway = factory(apis, start=False, **config)
    (gateway.root / "policies.json").write_text(json.dumps(pols))
    gateway.start()
    return gateway


def api(make_api: Any, echo: Any, api_id: str, source: str, **fields: Any) -> dict[str, Any]:
    return make_api(api_id, f"/{api_id}/", echo.base_url, use_keyless=False, enable_jwt=True,
                    jwt_signing_method="rsa", jwt_source=source,
                    jwt_default_policies=["default"], **fields)


def get(gw: Any, api_id: str, token: str) -> requests.Response:
    return requests.get(gw.url(f"/{api_id}/x"), headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


def admin(gw: Any, method: str, path: str) -> requests.Response:
    return requests.request(method, gw.url(path), headers={"X-Tyk-Authorization": gw.secret},
                            timeout=10)


def test_plain_and_base64_jwks_urls_work_on_every_request(gateway_factory, make_api, echo,
                                                         issuer):
    gw = start(gateway_factory, [api(make_api, echo, "plain", issuer.jwks_url),
                                 api(make_api, echo, "b64", b64(issuer.jwks_url))],
               policies("plain", "b64"))
    for _ in range(5):  # Tyk #7461: the raw URL failed on every request after the first
        for api_id in ("plain", "b64"):
            token = issuer.mint(sub="u-" + uuid.uuid4().hex[:6])
            assert get(gw, api_id, token).status_code == 200
    assert issuer.hits == 1  # one fetch, shared by both APIs naming the URL


def test_an_openid_issuer_url_finds_its_jwks(gateway_factory, make_api, echo, issuer):
    gw = start(gateway_factory, [api(make_api, echo, "oidc", issuer.url,
                                     jwt_issuer=issuer.url)], policies("oidc"))
    assert get(gw, "oidc", issuer.mint(sub="someone")).status_code == 200
    assert issuer.hits == 1


def test_a_rotated_key_works_on_its_first_token_and_the_old_one_stops(
        gateway_factory, make_api, echo, issuer):
    gw = start(gateway_factory, [api(make_api, echo, "rot", issuer.jwks_url)], policies("rot"),
               jwks={"refetch_interval": 1})
    old = issuer.mint(sub="alice")
    assert get(gw, "rot", old).status_code == 200
    time.sleep(1.1)  # kid-miss refetches are spaced by jwks.refetch_interval
    new_kid = issuer.rotate()
    # Tyk #6378: the unknown kid refetches at once instead of failing until the TTL.
    resp = get(gw, "rot", issuer.mint(new_kid, sub="alice"))
    assert resp.status_code == 200, resp.text
    assert issuer.hits == 2
    # The old key left the set: its token is refused although it was cached.
    assert get(gw, "rot", old).status_code == 403


def test_a_burst_of_made_up_kids_costs_at_most_two_fetches(gateway_factory, make_api, echo,
                                                          issuer):
    gw = start(gateway_factory, [api(make_api, echo, "burst", issuer.jwks_url)],
               policies("burst"))
    assert get(gw, "burst", issuer.mint(sub="warm")).status_code == 200
    hits = issuer.hits
    made_up = []
    for n in range(20):
        issuer.add_key(f"fake-{n}")
        made_up.append(issuer.mint(f"fake-{n}", sub=f"x{n}"))
        del issuer.keys[f"fake-{n}"]  # signed by a key the JWKS never publishes
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda t: get(gw, "burst", t).status_code, made_up))
    assert statuses == [403] * 20
    assert issuer.hits - hits <= 2
    # The known key kept working all along.
    assert get(gw, "burst", issuer.mint(sub="warm")).status_code == 200


def test_a_down_or_slow_endpoint_never_stalls_known_keys(gateway_factory, make_api, echo,
                                                        issuer):
    gw = start(gateway_factory, [api(make_api, echo, "down", issuer.jwks_url)],
               policies("down"), jwks={"cache": {"timeout": 1}})
    assert get(gw, "down", issuer.mint(sub="bob")).status_code == 200
    issuer.down = True
    time.sleep(1.5)  # past the TTL: the set is stale, the refresh fails
    for _ in range(3):
        assert get(gw, "down", issuer.mint(sub="bob")).status_code == 200
    issuer.down = False
    issuer.delay = 3.0
    time.sleep(1.2)
    started = time.monotonic()
    assert get(gw, "down", issuer.mint(sub="bob")).status_code == 200
    assert time.monotonic() - started < 1.0  # served from the stale set, not the slow fetch
    issuer.add_key("unknown-yet")
    started = time.monotonic()
    resp = get(gw, "down", issuer.mint("unknown-yet", sub="bob"))
    assert resp.status_code in (200, 403)
    assert time.monotonic() - started < 7.0  # bounded by the fetch timeout


def test_one_unparsable_jwk_does_not_break_the_set(gateway_factory, make_api, echo, issuer):
    issuer.extra_jwks.append({"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"})
    gw = start(gateway_factory, [api(make_api, echo, "bad", issuer.jwks_url)], policies("bad"))
    assert get(gw, "bad", issuer.mint(sub="carol")).status_code == 200


def test_flushing_the_jwks_cache_refetches(gateway_factory, make_api, echo, issuer):
    gw = start(gateway_factory, [api(make_api, echo, "fl", issuer.jwks_url)], policies("fl"))
    assert get(gw, "fl", issuer.mint(sub="dave")).status_code == 200
    assert issuer.hits == 1
    for path in ("/tyk/cache/jwks/fl", "/tyk/cache/jwks"):
        resp = admin(gw, "DELETE", path)
        assert resp.status_code == 200, resp.text
        assert get(gw, "fl", issuer.mint(sub="dave")).status_code == 200
    assert issuer.hits == 3


@pytest.mark.redis
def test_two_gateways_on_one_redis_share_quota_and_see_rotation(gateway_factory, make_api,
                                                                echo, issuer, redis_server):
    redis_server.ensure_running()
    redis_server.client().flushall()
    storage = {"type": "redis", "host": redis_server.host, "port": redis_server.port}
    apis = [api(make_api, echo, "two", issuer.jwks_url)]
    one = start(gateway_factory, apis, policies("two", quota=5), storage=storage,
                jwks={"refetch_interval": 1})
    other = start(gateway_factory, apis, policies("two", quota=5), storage=storage,
                  jwks={"refetch_interval": 1})
    identity = "erin-" + uuid.uuid4().hex[:6]
    statuses = []
    for n in range(8):  # a fresh token each time, alternating nodes
        gw = (one, other)[n % 2]
        statuses.append(get(gw, "two", issuer.mint(sub=identity, jti=str(n))).status_code)
    assert statuses == [200] * 5 + [403] * 3
    # Rotation: both nodes accept the new key's first token, and refuse the old key.
    old = issuer.mint(sub="frank")
    assert get(one, "two", old).status_code == 200
    assert get(other, "two", old).status_code == 200
    time.sleep(1.1)
    new_kid = issuer.rotate()
    for gw in (one, other):
        assert get(gw, "two", issuer.mint(new_kid, sub="frank")).status_code == 200
        assert get(gw, "two", old).status_code == 403
