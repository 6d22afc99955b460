"""The REST API of a real gateway process, on the memory store and on Redis:
changes take effect on the proxy, raw keys and passwords never reach Redis
(nor the logs) with hash_keys, and nothing is half-written on errors."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import requests

from fastgate.session import storage_key
from fastgate.session.basic import basic_auth_key

from .conftest import RestClient

RIGHTS = {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"]}}
SESSION = {"rate": 1000, "per": 1, "quota_max": -1, "access_rights": RIGHTS}


@pytest.fixture
def gw(gateway_factory: Any, make_api: Any, echo: Any, storage: dict[str, Any]) -> Any:
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False, org_id=""),
            make_api("b", "/b/", echo.base_url, use_keyless=False, use_basic_auth=True,
                     org_id="")]
    return gateway_factory(apis, storage=storage, enable_hashed_keys_listing=True)


def test_key_lifecycle_through_the_proxy(gw: Any) -> None:
    rest = RestClient(gw)
    created = rest("POST", "/tyk/keys/create", SESSION)
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    assert created.json()["key_hash"] == storage_key(key, hash_keys=True, hash_key_function="")
    assert requests.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10
                        ).status_code == 200

    inactive = rest("PUT", "/tyk/keys/" + key, {**SESSION, "is_inactive": True})
    assert inactive.json() == {"key": key, "status": "ok", "action": "modified"}
    resp = requests.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10)
    assert (resp.status_code, resp.json()) == (403, {"error": "Key is inactive, please renew"})

    assert rest("DELETE", "/tyk/keys/" + key).json()["action"] == "deleted"
    resp = requests.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10)
    assert resp.status_code == 403
    assert rest("GET", "/tyk/keys/" + key).status_code == 404


def test_apis_applied_at_once(gw: Any, make_api: Any, echo: Any) -> None:
    rest = RestClient(gw)
    assert requests.get(gw.url("/new/x"), timeout=10).status_code == 404
    added = rest("POST", "/tyk/apis", make_api("new", "/new/", echo.base_url))
    assert added.json() == {"key": "new", "status": "ok", "action": "added"}
    assert requests.get(gw.url("/new/x"), timeout=10).status_code == 200
    assert (gw.app_dir / "new.json").is_file()

    clash = rest("POST", "/tyk/apis", make_api("clash", "/new/", echo.base_url))
    assert clash.status_code == 400 and "listen_path" in clash.json()["message"]
    assert sorted(p.name for p in gw.app_dir.iterdir()) == ["b.json", "new.json", "p.json"]

    assert rest("DELETE", "/tyk/apis/new").json()["action"] == "deleted"
    assert requests.get(gw.url("/new/x"), timeout=10).status_code == 404
    assert sorted(p.name for p in gw.app_dir.iterdir()) == ["b.json", "p.json"]


def test_policy_applies_to_keys_at_once(gw: Any) -> None:
    rest = RestClient(gw)
    assert rest("POST", "/tyk/policies", {"id": "gold", "rate": 1000, "per": 1,
                                          "access_rights": RIGHTS}).status_code == 200
    key = rest("POST", "/tyk/keys/create", {"apply_policies": ["gold"]}).json()["key"]
    assert requests.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10
                        ).status_code == 200
    # The policy now grants another API only: the key loses /p/ at once.
    other = {"q": {"api_id": "q", "api_name": "q", "versions": ["Default"]}}
    assert rest("PUT", "/tyk/policies/gold", {"rate": 1000, "per": 1,
                                              "access_rights": other}).status_code == 200
    resp = requests.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10)
    assert resp.status_code == 403
    assert rest("GET", "/tyk/policies/gold").json()["access_rights"] == other


def test_basic_auth_password_never_returned(gw: Any) -> None:
    rest = RestClient(gw)
    user = {**SESSION, "basic_auth_data": {"password": "pw-never-shown"}}
    created = rest("POST", "/tyk/keys/alice", user)
    assert created.json()["key"] == ""  # hash_keys (the default): Tyk answers by hash only
    replies = [rest("GET", "/tyk/keys/alice"),
               rest("GET", "/tyk/keys/" + created.json()["key_hash"] + "?hashed=1"),
               rest("GET", "/tyk/keys"),
               rest("PUT", "/tyk/keys/alice", {**SESSION, "rate": 5})]
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert "pw-never-shown" not in reply.text
        assert "$2a$" not in reply.text
        assert '"password"' not in reply.text
    assert replies[0].json()["basic_auth_data"] == {"hash_type": "bcrypt"}
    # The stored hash is the one the Basic-auth middleware checks.
    rights = {"b": {"api_id": "b", "api_name": "b", "versions": ["Default"]}}
    assert rest("PUT", "/tyk/keys/alice", {**SESSION, "access_rights": rights}).status_code == 200
    ok = requests.get(gw.url("/b/x"), auth=("alice", "pw-never-shown"), timeout=10)
    assert ok.status_code == 200, ok.text
    bad = requests.get(gw.url("/b/x"), auth=("alice", "pw-never"), timeout=10)
    assert bad.status_code == 401


# ----------------------------------------------------------------------------- hash_keys and Redis


def _redis_dump(client: Any) -> list[tuple[bytes, bytes]]:
    """Every key in Redis with a rendering of its value, whatever its type."""
    dump = []
    for name in client.scan_iter(count=1000):
        kind = client.type(name)
        if kind == b"string":
            value = client.get(name) or b""
        elif kind == b"hash":
            value = b" ".join(k + b"=" + v for k, v in client.hgetall(name).items())
        elif kind == b"list":
            value = b" ".join(client.lrange(name, 0, -1))
        elif kind == b"set":
            value = b" ".join(sorted(client.smembers(name)))
        elif kind == b"zset":
            value = b" ".join(m for m, _ in client.zrange(name, 0, -1, withscores=True))
        elif kind == b"stream":
            value = repr(client.xrange(name)).encode()
        else:
            value = b""
        dump.append((name, value))
    return dump


@pytest.mark.redis
@pytest.mark.parametrize("function", ["", "murmur64", "sha256"])
def test_no_raw_key_reaches_redis(gateway_factory: Any, make_api: Any, echo: Any,
                                  redis_flush: Any, function: str) -> None:
    gw = gateway_factory(
        [make_api("p", "/p/", echo.base_url, use_keyless=False, org_id="")],
        storage={"type": "redis", "host": redis_flush.host, "port": redis_flush.port},
        hash_keys=True, hash_key_function=function)
    rest = RestClient(gw)
    published: list[bytes] = []
    pubsub = redis_flush.client().pubsub()
    pubsub.psubscribe("*")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.05)
            if message and message["type"] == "pmessage":
                published.append(message["channel"] + b" " + message["data"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        secrets_: list[str] = []
        for _ in range(3):
            secrets_.append(rest("POST", "/tyk/keys/create", SESSION).json()["key"])
            secrets_.append(rest("POST", "/tyk/keys", SESSION).json()["key"])
        custom = "my-custom-secret-key-1234"
        assert rest("POST", "/tyk/keys/" + custom, SESSION).status_code == 200
        assert rest("PUT", "/tyk/keys/" + custom, {**SESSION, "rate": 5}).status_code == 200
        secrets_.append(custom)
        user = {**SESSION, "basic_auth_data": {"password": "pw-9f8e7d6c"}}
        assert rest("POST", "/tyk/keys/alice", user).status_code == 200
        secrets_ += [basic_auth_key("", "alice", function), "pw-9f8e7d6c"]
        doomed = rest("POST", "/tyk/keys/create", SESSION).json()["key"]
        assert rest("DELETE", "/tyk/keys/" + doomed).status_code == 200
        secrets_.append(doomed)
        for key in secrets_[:6]:  # the proxy reads them too
            assert requests.get(gw.url("/p/x"), headers={"Authorization": key},
                                timeout=10).status_code == 200
        time.sleep(0.2)
    finally:
        stop.set()
        listener.join(5)
        pubsub.close()

    # What could identify a key: the key itself and, for base64 keys, its id.
    needles = set()
    for secret in secrets_:
        needles.add(secret.encode())
        if secret.startswith("ey"):
            needles.add(json.loads(base64.b64decode(secret))["id"].encode())
    dump = _redis_dump(redis_flush.client())
    assert dump, "nothing stored?"
    sessions = [name for name, _ in dump if name.startswith(b"apikey-")]
    assert len(sessions) == 8  # 6 generated + custom + alice
    for name, value in dump:
        for needle in needles:
            assert needle not in name, (needle, name)
            assert needle not in value, (needle, name)
    assert published, "no notifications seen"
    for message in published:
        for needle in needles:
            assert needle not in message, (needle, message)
    logs = gw.logs().encode()
    for needle in needles:
        assert needle not in logs
