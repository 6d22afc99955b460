"""Physical key expiry: the lifetime computed as Tyk's ``SessionState.Lifetime``
and ``ApplyLifetime``, the store told to keep the record that long, and a real
gateway answering 403 once the record is gone -- 401 "Key has expired" while
an expired key's record is still kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import requests

from fastgate.session import key_lifetime

from .conftest import RestClient, api_definition

NOW = 1_800_000_000.0


def lifetime(session: dict[str, Any], api: int = 0, *, respect: bool = False,
             force: bool = False, global_lifetime: int = 0) -> int:
    return key_lifetime(session, NOW, api_lifetime=api, respects_expiration=respect,
                        force_global=force, global_lifetime=global_lifetime)


IN_5S = int(NOW) + 5
# Tyk's user/session_test.go (TestSessionState_Lifetime, _PostExpiry, calculateLifetime).
TABLE = [
    # (session, api lifetime, respect, force, global, expected)
    ({"session_lifetime": 1, "expires": IN_5S}, 2, False, False, 3, 1),
    ({"expires": IN_5S}, 2, False, False, 3, 2),
    ({"expires": IN_5S}, 0, False, False, 3, 0),
    ({"expires": IN_5S}, -1, False, False, 3, 0),
    ({"session_lifetime": 1, "expires": IN_5S}, 2, True, False, 3, 5),
    ({"expires": IN_5S}, 2, True, False, 3, 5),
    ({"expires": IN_5S}, 0, True, False, 3, 0),
    ({"expires": IN_5S}, 6, True, False, 7, 6),
    ({"expires": IN_5S}, 1, True, False, 0, 5),
    ({"expires": 0}, 2, True, False, 3, 0),
    ({"expires": -1}, 2, True, False, 3, -1),
    ({"session_lifetime": 1}, 2, False, True, 3, 3),
    ({}, 0, True, True, 3, 3),
    ({}, 1, False, True, 0, 0),
    ({"post_expiry_action": "delete", "expires": int(NOW) + 100}, 0, False, False, 0, 100),
    ({"post_expiry_action": "delete", "expires": int(NOW) - 50}, 0, False, False, 0, 1),
    ({"post_expiry_action": "delete", "expires": 0}, 0, False, False, 0, 0),
    ({"post_expiry_action": "retain", "post_expiry_grace_period": -1,
      "expires": int(NOW) + 100}, 0, False, False, 0, -1),
    ({"post_expiry_action": "retain", "post_expiry_grace_period": 200,
      "expires": int(NOW) + 100}, 0, False, False, 0, 300),
    ({"post_expiry_action": "retain", "post_expiry_grace_period": 10,
      "expires": int(NOW) - 50}, 0, False, False, 0, 1),
    ({"post_expiry_action": "retain", "post_expiry_grace_period": 0,
      "expires": int(NOW) + 100, "session_lifetime": 60}, 0, False, False, 0, 60),
    ({"post_expiry_action": "delete", "expires": int(NOW) + 100}, 0, False, True, 42, 42),
    # post_expiry_action bypasses respect_key_expiration.
    ({"post_expiry_action": "delete", "expires": int(NOW) + 100}, 500, True, False, 0, 100),
]


@pytest.mark.parametrize(("session", "api", "respect", "force", "global_lifetime", "expected"),
                         TABLE)
def test_key_lifetime_as_tyk(session: dict[str, Any], api: int, respect: bool, force: bool,
                             global_lifetime: int, expected: int) -> None:
    assert lifetime(session, api, respect=respect, force=force,
                    global_lifetime=global_lifetime) == expected


# ----------------------------------------------------------------------------- what the store gets


def apis_with_lifetimes() -> list[dict[str, Any]]:
    return [api_definition("none", "/none/", "http://127.0.0.1:9"),
            api_definition("l1000", "/l1000/", "http://127.0.0.1:9", session_lifetime=1000),
            api_definition("l999", "/l999/", "http://127.0.0.1:9", session_lifetime=999),
            api_definition("respect", "/respect/", "http://127.0.0.1:9", session_lifetime=10,
                           session_lifetime_respects_key_expiration=True)]


def recording(env: Any) -> list[float]:
    """The ttl of every set_session the gateway makes from now on."""
    ttls: list[float] = []
    store = env.gateway.store
    original = store.set_session

    async def set_session(key: str, value: bytes, ttl: float = 0) -> None:
        ttls.append(ttl)
        await original(key, value, ttl)

    store.set_session = set_session
    return ttls


def rights(*api_ids: str) -> dict[str, Any]:
    return {"access_rights": {a: {"api_id": a, "versions": ["Default"]} for a in api_ids}}


@pytest.mark.parametrize(("body", "expected"), [
    (rights("none"), 0),
    (rights("none", "l1000"), 1000),
    (rights("l999", "l1000"), 1000),
    (rights("l999", "not-loaded"), 999),
    (rights("not-loaded"), 0),
    ({**rights("l999"), "session_lifetime": 5}, 5),  # the key's own wins over the API's
    ({**rights("respect"), "expires": "in 3600"}, 3600),
    ({**rights("respect"), "expires": -1}, 0),  # -1: never delete
    ({**rights("l1000"), "post_expiry_action": "delete", "expires": "in 50"}, 50),
])
def test_the_store_keeps_the_record_for_the_largest_lifetime(admin_factory: Any,
                                                            body: dict[str, Any],
                                                            expected: int) -> None:
    if str(body.get("expires", "")).startswith("in "):
        body = {**body, "expires": int(time.time()) + int(body["expires"][3:])}
    env = admin_factory(apis=apis_with_lifetimes())
    ttls = recording(env)
    for method, path in [("POST", "/tyk/keys/create"), ("POST", "/tyk/keys/life-key"),
                         ("PUT", "/tyk/keys/life-key")]:
        assert env.call(method, path, body).status == 200
    # (a second of slack: "expires" is a whole unix second)
    assert len(ttls) == 3 and all(abs(t - expected) <= 1 for t in ttls), ttls


def test_master_keys_and_forced_global_lifetime(admin_factory: Any) -> None:
    env = admin_factory(apis=apis_with_lifetimes(), allow_master_keys=True)
    ttls = recording(env)
    assert env.call("POST", "/tyk/keys/create", {"access_rights": {}}).status == 200
    assert ttls == [1000.0]  # every loaded API: the largest

    forced = admin_factory(apis=apis_with_lifetimes(), global_session_lifetime=7,
                           force_global_session_lifetime=True)
    ttls = recording(forced)
    assert forced.call("POST", "/tyk/keys/create", rights("l1000", "none")).status == 200
    assert ttls == [7.0]

    not_forced = admin_factory(apis=apis_with_lifetimes(), global_session_lifetime=7)
    ttls = recording(not_forced)
    assert not_forced.call("POST", "/tyk/keys/create", rights("none")).status == 200
    assert ttls == [0.0]  # Tyk reads global_session_lifetime only when forced


def test_policy_update_keeps_the_lifetime(admin_factory: Any) -> None:
    env = admin_factory(apis=apis_with_lifetimes(),
                        file_policies={"p1": rights("l999"), "p2": rights("l1000")})
    key_hash = env.call("POST", "/tyk/keys/create", {"apply_policies": ["p1"]}).json["key_hash"]
    ttls = recording(env)
    assert env.call("POST", "/tyk/keys/policy/" + key_hash, {"apply_policies": ["p2"]}
                    ).status == 200
    assert ttls == [1000.0]  # from the policies' rights


def test_the_record_is_gone_when_the_lifetime_ends(admin_factory: Any) -> None:
    env = admin_factory(apis=[api_definition("a", "/a/", "http://127.0.0.1:9",
                                             session_lifetime=1)])
    created = env.call("POST", "/tyk/keys/create", rights("a")).json
    assert env.call("GET", "/tyk/keys/" + created["key"]).status == 200
    env.run(asyncio.sleep(1.3))
    assert env.call("GET", "/tyk/keys/" + created["key"]).status == 404
    assert env.sessions() == {}


# ----------------------------------------------------------------------------- a real gateway


def test_gateway_refuses_a_key_once_its_lifetime_ended(gateway_factory: Any, make_api: Any,
                                                       echo: Any, storage: dict[str, Any]
                                                       ) -> None:
    gw = gateway_factory([
        make_api("p", "/p/", echo.base_url, use_keyless=False, org_id="", session_lifetime=1),
        make_api("q", "/q/", echo.base_url, use_keyless=False, org_id="", session_lifetime=3),
    ], storage=storage)
    rest = RestClient(gw)
    created = time.monotonic()
    assert rest("POST", "/tyk/keys/short-lived", rights("p")).status_code == 200
    # Expires within 1-2 s, but its record is kept for 3.
    assert rest("POST", "/tyk/keys/expiring-1", {**rights("q"),
                                                 "expires": int(time.time()) + 2}
                ).status_code == 200

    def answer(path: str, key: str) -> tuple[int, str]:
        resp = requests.get(gw.url(path), headers={"Authorization": key}, timeout=10)
        return resp.status_code, resp.json().get("error", "") if resp.status_code != 200 else ""

    assert answer("/p/x", "short-lived") == (200, "")
    assert answer("/q/x", "expiring-1") == (200, "")
    seen: dict[str, list[tuple[int, str]]] = {"short-lived": [], "expiring-1": []}
    gone_at = {}
    while time.monotonic() - created < 8 and len(gone_at) < 2:
        for key, path in (("short-lived", "/p/x"), ("expiring-1", "/q/x")):
            if key in gone_at:
                continue
            got = answer(path, key)
            if not seen[key] or seen[key][-1] != got:
                seen[key].append(got)
            if got[0] == 403:
                gone_at[key] = time.monotonic() - created
        time.sleep(0.05)
    disallowed = (403, "Access to this API has been disallowed")
    assert seen["short-lived"] == [(200, ""), disallowed], seen
    assert seen["expiring-1"] == [(200, ""), (401, "Key has expired, please renew"),
                                  disallowed], seen
    assert 0.9 <= gone_at["short-lived"] < 3.0, gone_at
    assert 2.9 <= gone_at["expiring-1"] < 5.0, gone_at
    assert rest("GET", "/tyk/keys/short-lived").status_code == 404
    assert rest("GET", "/tyk/keys/expiring-1").status_code == 404
