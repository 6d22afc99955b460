"""Tyk REST endpoints client libraries call: ``POST /tyk/keys/policy/{key}``,
``DELETE /tyk/cache/{api_id}`` and ``/tyk/org/keys[/{org}]``, with Tyk's
shapes and messages (gateway/api.go: policyUpdateHandler,
invalidateCacheHandler, orgHandler); and ``enforce_org_quotas`` refused at
start, since fastgate does not enforce organisation sessions."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
import requests

from .conftest import RestClient, api_definition

RIGHTS_A = {"a": {"api_id": "a", "api_name": "A", "versions": ["Default"]}}
RIGHTS_B = {"b": {"api_id": "b", "api_name": "B", "versions": ["Default"]}}
POLICIES = {"gold": {"rate": 5, "per": 1, "access_rights": RIGHTS_A},
            "silver": {"rate": 1, "per": 1, "access_rights": RIGHTS_A}}


# ----------------------------------------------------------------------------- keys/policy


@pytest.mark.parametrize("hash_keys", [True, False])
def test_policy_update_replaces_the_keys_policies(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys, file_policies=POLICIES)
    created = env.call("POST", "/tyk/keys/create", {"apply_policies": ["gold"]}).json
    skey = env.storage_key(created["key"])  # what Tyk addresses the key by: its hash
    env.events.clear()
    env.invalidated.clear()
    reply = env.call("POST", "/tyk/keys/policy/" + skey, {"apply_policies": ["silver"]})
    assert (reply.status, reply.json) == (200, {"key": skey, "status": "ok",
                                                "action": "updated"})
    stored = env.sessions()[skey]
    assert stored["apply_policies"] == ["silver"]
    assert int(stored["last_updated"]) >= int(time.time()) - 5
    env.settle()
    assert ("session", skey) in env.events and skey in env.invalidated
    # "policy" is appended to "apply_policies".
    reply = env.call("POST", "/tyk/keys/policy/" + skey,
                     {"apply_policies": ["silver"], "policy": "gold"})
    assert reply.status == 200
    assert env.sessions()[skey]["apply_policies"] == ["silver", "gold"]


@pytest.mark.parametrize(("raw", "status", "message"), [
    (b"{nope", 400, "Couldn't decode instruction"),
    (b'{"apply_policies": "gold"}', 400, "Couldn't decode instruction"),
    (b'{"policy": 7}', 400, "Couldn't decode instruction"),
    (b'{"apply_policies": ["nope"]}', 400, 'apply_policies: policy not found: "nope"'),
    (b'{"apply_policies": []}', 400, "Failed to create key, keys must have at least one Access "
                                     "Rights record set."),
])
def test_policy_update_refusals_change_nothing(admin_factory: Any, raw: bytes, status: int,
                                               message: str) -> None:
    env = admin_factory(file_policies=POLICIES)
    key_hash = env.call("POST", "/tyk/keys/create", {"apply_policies": ["gold"]}).json["key_hash"]
    before = env.sessions()
    reply = env.call("POST", "/tyk/keys/policy/" + key_hash, raw=raw)
    assert (reply.status, reply.message) == (status, message)
    assert env.sessions() == before


def test_policy_update_of_an_unknown_key_and_other_methods(admin_factory: Any) -> None:
    env = admin_factory(file_policies=POLICIES)
    reply = env.call("POST", "/tyk/keys/policy/0123abcd", {"apply_policies": ["gold"]})
    assert (reply.status, reply.json) == (404, {"status": "error", "message": "Key not found"})
    assert env.call("GET", "/tyk/keys/policy/0123abcd").status == 405
    assert env.call("POST", "/tyk/keys/policy/a/b", {}).status == 404
    assert env.sessions() == {}


# ----------------------------------------------------------------------------- cache


def test_cache_invalidation_drops_the_apis_cached_sessions_on_every_worker(
        admin_factory: Any) -> None:
    env = admin_factory(apis=[api_definition("a", "/a/", "http://127.0.0.1:9"),
                              api_definition("b", "/b/", "http://127.0.0.1:9")],
                        allow_master_keys=True)
    names = {"on-a": RIGHTS_A, "on-b": RIGHTS_B, "on-ab": {**RIGHTS_A, **RIGHTS_B},
             "master": {}}
    sessions = env.gateway.sessions
    for name, rights in names.items():
        assert env.call("POST", "/tyk/keys/" + name, {"access_rights": rights}).status == 200
    env.settle()
    for name in names:
        found = sessions.lookup(env.storage_key(name))
        if not hasattr(found, "session"):
            found = env.run(found)
        assert found is not None
    assert {env.storage_key(n) for n in names} <= set(sessions.entries)
    env.events.clear()
    reply = env.call("DELETE", "/tyk/cache/a")
    assert (reply.status, reply.json) == (200, {"status": "ok", "message": "cache invalidated"})
    env.settle()
    assert ("api-cache", "a") in env.events  # what every other worker receives
    cached = set(sessions.entries)
    assert env.storage_key("on-b") in cached
    for name in ("on-a", "on-ab", "master"):
        assert env.storage_key(name) not in cached, name
    assert env.call("DELETE", "/tyk/cache/not-loaded").status == 200  # Tyk does not check
    assert env.call("GET", "/tyk/cache/a").status == 405
    assert env.call("DELETE", "/tyk/cache").status == 404


@pytest.mark.redis
def test_cache_invalidation_through_a_real_gateway(gateway_factory: Any, make_api: Any,
                                                   echo: Any, redis_flush: Any) -> None:
    """A record changed behind the gateway's back (by a Tyk sharing the Redis,
    say) is served from cache until ``DELETE /tyk/cache/{api}`` flushes it."""
    gw = gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False, org_id=""),
                          make_api("q", "/q/", echo.base_url, use_keyless=False, org_id="")],
                         storage={"type": "redis", "host": redis_flush.host,
                                  "port": redis_flush.port})
    rest = RestClient(gw)
    rights = {"p": {"api_id": "p", "versions": ["Default"]}}
    created = rest("POST", "/tyk/keys/cached-key", {"access_rights": rights}).json()

    def status() -> int:
        return requests.get(gw.url("/p/x"), headers={"Authorization": "cached-key"},
                            timeout=10).status_code

    assert status() == 200
    client = redis_flush.client()
    name = "apikey-" + created["key_hash"]
    record = json.loads(client.get(name))
    client.set(name, json.dumps({**record, "is_inactive": True}))  # no event published
    assert status() == 200  # still cached
    assert rest("DELETE", "/tyk/cache/q").status_code == 200
    assert status() == 200  # another API: kept
    assert rest("DELETE", "/tyk/cache/p").json() == {"status": "ok",
                                                     "message": "cache invalidated"}
    deadline = time.monotonic() + 2
    while status() == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert status() == 403


# ----------------------------------------------------------------------------- org keys


ORG_SESSION = {"rate": 100, "per": 1, "quota_max": 1000, "quota_renewal_rate": 3600}


def test_org_keys_crud(admin_factory: Any) -> None:
    env = admin_factory()
    assert env.call("GET", "/tyk/org/keys").json == {"keys": []}
    created = env.call("POST", "/tyk/org/keys/org1", ORG_SESSION)
    assert (created.status, created.json) == (200, {"key": "org1", "status": "ok",
                                                    "action": "added"})
    replaced = env.call("PUT", "/tyk/org/keys/org2?reset_quota=1", ORG_SESSION)
    assert replaced.json == {"key": "org2", "status": "ok", "action": "modified"}
    got = env.call("GET", "/tyk/org/keys/org2").json
    assert got["quota_max"] == 1000 and got["rate"] == 100
    assert got["quota_renews"] >= int(time.time()) + 3600 - 5
    assert int(got["last_updated"]) >= int(time.time()) - 5
    assert env.call("GET", "/tyk/org/keys").json == {"keys": ["org1", "org2"]}
    assert env.call("GET", "/tyk/org/keys?filter=org2").json == {"keys": ["org2"]}
    assert env.call("GET", "/tyk/org/keys/").json == {"keys": ["org1", "org2"]}
    # Organisation sessions are not keys.
    assert env.sessions() == {}
    assert env.call("GET", "/tyk/keys/org1").status == 404

    deleted = env.call("DELETE", "/tyk/org/keys/org1")
    assert deleted.json == {"key": "org1", "status": "ok", "action": "deleted"}
    assert (env.call("GET", "/tyk/org/keys/org1").status,
            env.call("GET", "/tyk/org/keys/org1").message) == (404, "Org not found")
    again = env.call("DELETE", "/tyk/org/keys/org1")
    assert (again.status, again.message) == (400, "Failed to remove the key")


@pytest.mark.parametrize(("raw", "message"), [
    (b"{nope", "Request malformed"), (b"[]", "Request malformed"),
    (b'{"rate": "fast"}', "rate: expected a number, got a string"),
])
def test_org_key_bad_body_changes_nothing(admin_factory: Any, raw: bytes, message: str) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/org/keys/org1", raw=raw)
    assert (reply.status, reply.message) == (400, message)
    assert env.call("GET", "/tyk/org/keys").json == {"keys": []}


def test_org_keys_without_any_api_loaded(admin_factory: Any) -> None:
    env = admin_factory(apis=[])
    assert (env.call("GET", "/tyk/org/keys").status,
            env.call("GET", "/tyk/org/keys").message) == (404, "ORG not found")
    assert env.call("POST", "/tyk/org/keys/org1", ORG_SESSION).status == 200  # stored anyway
    assert env.call("GET", "/tyk/org/keys/org1").message == "Org not found"
    assert env.call("DELETE", "/tyk/org/keys/org1").message == "Org not found"


def test_org_keys_routes(admin_factory: Any) -> None:
    env = admin_factory()
    assert env.call("POST", "/tyk/org/keys", ORG_SESSION).status == 405
    assert env.call("PATCH", "/tyk/org/keys/org1", ORG_SESSION).status == 405
    assert env.call("GET", "/tyk/org").status == 404
    assert env.call("GET", "/tyk/org/other").status == 404
    assert env.call("GET", "/tyk/org/keys/a/b").status == 404


@pytest.mark.parametrize(("value", "code"), [(True, 2), (False, 0)])
def test_enforce_org_quotas_is_refused_at_start(tmp_path: Any, gateway_cmd: Any, value: bool,
                                                code: int) -> None:
    (tmp_path / "apps").mkdir()
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"secret": "s", "app_path": "apps",
                                  "enforce_org_quotas": value}))
    result = subprocess.run(gateway_cmd("check", "--config", str(config)),
                            capture_output=True, timeout=30, text=True)
    assert result.returncode == code, result.stderr
    if value:
        assert "enforce_org_quotas" in result.stderr
        assert "does not enforce organisation quotas" in result.stderr
