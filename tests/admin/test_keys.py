"""/tyk/keys through AdminApi.handle, on memory, Redis and Redis Cluster.

Expected replies are Tyk's (gateway/api.go: handleAddOrUpdate,
createKeyHandler, handleGetDetail, handleDeleteKey, handleGetAllKeys;
gateway/api_test.go for the status codes).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from fastgate.session.basic import basic_auth_key, check_password

ACCESS = {"access_rights": {"a": {"api_id": "a", "api_name": "A", "versions": ["Default"]}}}
SESSION = {"rate": 100, "per": 1, "quota_max": -1, "org_id": "", **ACCESS}


def _assert_nothing_written(env: Any) -> None:
    assert env.sessions() == {}
    env.settle()
    assert [e for e in env.events if e[0] == "session"] == []


# ----------------------------------------------------------------------------- auth, routes


@pytest.mark.parametrize(("secret", "path"), [
    (None, "/tyk/keys"), ("wrong", "/tyk/keys"), ("", "/tyk/keys/x"),
    ("test-secret-35", "/tyk/policies"), (None, "/tyk/apis"),
])
def test_admin_secret_required(admin_factory: Any, secret: str | None, path: str) -> None:
    env = admin_factory()
    reply = env.call("GET", path, secret=secret)
    assert reply.status == 403
    assert reply.json == {"status": "error",
                          "message": "Attempted administrative access with invalid or missing key!"}


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/tyk/nothing", 404, "Not found"),
    ("GET", "/tyk/keys/a/b", 404, "Not found"),
    ("GET", "/tyk/", 404, "Not found"),
    ("PATCH", "/tyk/keys/abc", 405, "Method not supported"),
    ("HEAD", "/tyk/keys", 405, "Method not supported"),
    ("PATCH", "/tyk/policies/p", 405, "Method not supported"),
    ("OPTIONS", "/tyk/apis", 405, "Method not supported"),
    ("POST", "/tyk/reload", 405, "Method not supported"),
])
def test_unknown_routes_and_methods(admin_factory: Any, method: str, path: str, status: int,
                                    message: str) -> None:
    env = admin_factory()
    reply = env.call(method, path)
    assert (reply.status, reply.json) == (status, {"status": "error", "message": message})


# ----------------------------------------------------------------------------- create


@pytest.mark.parametrize("path", ["/tyk/keys/create", "/tyk/keys", "/tyk/keys/"])
@pytest.mark.parametrize("hash_keys", [True, False])
def test_create_generated_key(admin_factory: Any, path: str, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys)
    reply = env.call("POST", path, SESSION)
    assert reply.status == 200, reply.raw
    body = reply.json
    key = body["key"]
    assert len(key) >= 32
    skey = env.storage_key(key)
    if hash_keys:
        assert body == {"key": key, "status": "ok", "action": "added", "key_hash": skey}
        assert skey != key
    else:
        assert body == {"key": key, "status": "ok", "action": "added"}  # key_hash omitted
        assert skey == key
    stored = env.sessions()
    assert list(stored) == [skey]
    assert stored[skey]["rate"] == 100
    env.settle()
    assert ("session", skey) in env.events
    assert skey in env.invalidated


def test_create_hashed_key_generated_format(admin_factory: Any) -> None:
    env = admin_factory(hash_key_function="murmur64")
    body = env.call("POST", "/tyk/keys/create", {**SESSION, "org_id": "org1"}).json
    token = json.loads(base64.b64decode(body["key"]))
    assert token["org"] == "org1" and token["h"] == "murmur64" and len(token["id"]) == 32
    assert body["key_hash"] == env.storage_key(body["key"])


def test_create_hmac_key_gets_a_secret(admin_factory: Any) -> None:
    env = admin_factory()
    body = env.call("POST", "/tyk/keys/create", {**SESSION, "hmac_enabled": True}).json
    session = env.call("GET", "/tyk/keys/" + body["key"]).json
    secret = base64.b64decode(session["hmac_string"])
    assert len(secret) == 32


@pytest.mark.parametrize("hash_keys", [True, False])
def test_custom_key(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys)
    reply = env.call("POST", "/tyk/keys/my-custom-key", SESSION)
    assert reply.status == 200, reply.raw
    expected = {"key": "my-custom-key", "status": "ok", "action": "added"}
    if hash_keys:
        expected["key_hash"] = env.storage_key("my-custom-key")
    assert reply.json == expected
    assert list(env.sessions()) == [env.storage_key("my-custom-key")]
    # POST on an existing key replaces it, as Tyk (no existence check).
    again = env.call("POST", "/tyk/keys/my-custom-key", {**SESSION, "rate": 7})
    assert again.status == 200 and again.json["action"] == "added"
    assert env.sessions()[env.storage_key("my-custom-key")]["rate"] == 7


def test_custom_key_too_short(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/keys/ab", SESSION)
    assert reply.status == 400
    assert reply.message.startswith("custom key ID length 2 is less than min_token_length (3)")
    _assert_nothing_written(env)


@pytest.mark.parametrize(("path", "raw", "message"), [
    ("/tyk/keys/create", b"{nope", "Unmarshalling failed"),
    ("/tyk/keys/create", b"[1]", "Unmarshalling failed"),
    ("/tyk/keys/create", b"", "Unmarshalling failed"),
    ("/tyk/keys/custom1", b"{nope", "Request malformed"),
    ("/tyk/keys", b"null", "Request malformed"),
    ("/tyk/keys/custom1", b'"text"', "Request malformed"),
])
def test_malformed_body(admin_factory: Any, path: str, raw: bytes, message: str) -> None:
    env = admin_factory()
    reply = env.call("POST", path, raw=raw)
    assert (reply.status, reply.json) == (400, {"status": "error", "message": message})
    _assert_nothing_written(env)


@pytest.mark.parametrize(("field", "value"), [
    ("rate", "fast"),
    ("quota_max", "many"),
    ("expires", "tomorrow"),
    ("access_rights", ["a"]),
    ("is_inactive", "no"),
])
@pytest.mark.parametrize("method_path", [("POST", "/tyk/keys/create"),
                                         ("POST", "/tyk/keys/custom1")])
def test_wrong_field_type_names_the_field(admin_factory: Any, field: str, value: Any,
                                          method_path: tuple[str, str]) -> None:
    env = admin_factory()
    reply = env.call(*method_path, {**SESSION, field: value})
    assert reply.status == 400, reply.raw
    assert reply.json["status"] == "error"
    assert reply.message.startswith(field), reply.message
    _assert_nothing_written(env)


def test_unknown_policy_refused(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/keys/custom1", {**SESSION, "apply_policies": ["nope"]})
    assert reply.status == 400
    assert "apply_policies" in reply.message or "nope" in reply.message
    _assert_nothing_written(env)


def test_known_policy_accepted(admin_factory: Any) -> None:
    env = admin_factory(file_policies={"gold": {"rate": 5, "per": 1, **ACCESS}})
    reply = env.call("POST", "/tyk/keys/custom1", {"apply_policies": ["gold"]})
    assert reply.status == 200, reply.raw


# ----------------------------------------------------------------------------- read


@pytest.mark.parametrize("hash_keys", [True, False])
def test_get_key(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys)
    key = env.call("POST", "/tyk/keys/create", SESSION).json["key"]
    reply = env.call("GET", "/tyk/keys/" + key)
    assert reply.status == 200
    assert reply.json["rate"] == 100
    access = reply.json["access_rights"]["a"]
    assert (access["api_id"], access["api_name"], access["versions"]) == ("a", "A", ["Default"])
    assert reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("path", "message"), [
    ("/tyk/keys/unknown-key", "Key not found"),
    ("/tyk/keys/unknown-key?hashed=1", "Key not found"),
])
def test_get_unknown_key(admin_factory: Any, path: str, message: str) -> None:
    env = admin_factory()
    reply = env.call("GET", path)
    assert (reply.status, reply.json) == (404, {"status": "error", "message": message})


def test_get_by_hash(admin_factory: Any) -> None:
    env = admin_factory()
    body = env.call("POST", "/tyk/keys/create", SESSION).json
    assert env.call("GET", "/tyk/keys/" + body["key_hash"] + "?hashed=1").status == 200
    assert env.call("GET", "/tyk/keys/" + body["key_hash"] + "?hashed=true").status == 200
    # The hash without ?hashed is no key (Tyk: 404).
    assert env.call("GET", "/tyk/keys/" + body["key_hash"]).status == 404


def test_get_by_hash_without_hashing(admin_factory: Any) -> None:
    env = admin_factory(hash_keys=False)
    reply = env.call("GET", "/tyk/keys/whatever?hashed=1")
    assert (reply.status, reply.message) == (
        400, "Key requested by hash but key hashing is not enabled")


@pytest.mark.parametrize("hash_keys", [True, False])
def test_list_keys(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys, enable_hashed_keys_listing=True)
    keys = [env.call("POST", "/tyk/keys/create", SESSION).json["key"] for _ in range(3)]
    env.call("POST", "/tyk/keys/other-key", {"access_rights": {"b": {"api_id": "b"}}})
    reply = env.call("GET", "/tyk/keys")
    assert reply.status == 200
    listed = reply.json["keys"]
    expected = sorted(env.storage_key(k) for k in [*keys, "other-key"])
    assert listed == expected
    if hash_keys:
        assert not set(keys) & set(listed)
    else:
        assert set(keys) <= set(listed)
        by_api = env.call("GET", "/tyk/keys?api_id=a&filter=").status
        assert by_api == 400
        filtered = env.call("GET", "/tyk/keys?filter=other").json["keys"]
        assert filtered == ["other-key"]
    with_api = env.call("GET", "/tyk/keys?api_id=b&filter=o" if not hash_keys
                        else "/tyk/keys?api_id=b").json["keys"]
    assert with_api == [env.storage_key("other-key")]


def test_list_needs_filter_with_api_id_in_legacy_mode(admin_factory: Any) -> None:
    env = admin_factory(hash_keys=False)
    reply = env.call("GET", "/tyk/keys?api_id=a")
    assert (reply.status, reply.message) == (
        400, "The 'filter' parameter (Org ID) is required when filtering by 'api_id' "
             "in legacy mode")


# ----------------------------------------------------------------------------- update


def test_put_unknown_key(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("PUT", "/tyk/keys/unknown-key", SESSION)
    assert (reply.status, reply.json) == (404, {"status": "error", "message": "Key is not found"})
    _assert_nothing_written(env)


@pytest.mark.parametrize("hash_keys", [True, False])
def test_put_key(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys)
    key = env.call("POST", "/tyk/keys/create", SESSION).json["key"]
    skey = env.storage_key(key)
    before = env.sessions()[skey]
    env.events.clear()
    env.invalidated.clear()
    reply = env.call("PUT", "/tyk/keys/" + key, {**SESSION, "rate": 5})
    assert reply.json == {"key": key, "status": "ok", "action": "modified"}  # no key_hash
    after = env.sessions()[skey]
    assert after["rate"] == 5
    assert after["date_created"] == before["date_created"]
    env.settle()
    assert ("session", skey) in env.events and skey in env.invalidated


def test_put_by_hash(admin_factory: Any) -> None:
    env = admin_factory()
    body = env.call("POST", "/tyk/keys/create", SESSION).json
    reply = env.call("PUT", "/tyk/keys/" + body["key_hash"] + "?hashed=true",
                     {**SESSION, "rate": 9})
    assert reply.json == {"key": body["key_hash"], "status": "ok", "action": "modified"}
    assert env.sessions()[body["key_hash"]]["rate"] == 9


def test_put_suppress_reset_keeps_counters(admin_factory: Any) -> None:
    env = admin_factory()
    key = env.call("POST", "/tyk/keys/create",
                   {**SESSION, "quota_max": 10, "quota_renewal_rate": 3600}).json["key"]
    skey = env.storage_key(key)
    before = env.sessions()[skey]
    assert before["quota_renews"] >= before["quota_renewal_rate"]
    stale = {**SESSION, "quota_max": 20, "quota_renewal_rate": 3600, "quota_renews": 1,
             "last_updated": "1"}
    env.call("PUT", "/tyk/keys/" + key + "?suppress_reset=1", stale)
    after = env.sessions()[skey]
    assert after["quota_max"] == 20
    assert (after["quota_renews"], after["last_updated"]) == (
        before["quota_renews"], before["last_updated"])


def test_put_wrong_type_writes_nothing(admin_factory: Any) -> None:
    env = admin_factory()
    key = env.call("POST", "/tyk/keys/custom1", SESSION).json["key"]
    before = env.sessions()
    reply = env.call("PUT", "/tyk/keys/" + key, {**SESSION, "rate": "x"})
    assert reply.status == 400 and reply.message.startswith("rate")
    assert env.sessions() == before


# ----------------------------------------------------------------------------- delete


@pytest.mark.parametrize("hash_keys", [True, False])
def test_delete_key(admin_factory: Any, hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys)
    key = env.call("POST", "/tyk/keys/create", SESSION).json["key"]
    skey = env.storage_key(key)
    env.events.clear()
    reply = env.call("DELETE", "/tyk/keys/" + key)
    assert reply.json == {"key": key, "status": "ok", "action": "deleted"}
    assert env.sessions() == {}
    env.settle()
    assert ("session", skey) in env.events and skey in env.invalidated
    gone = env.call("DELETE", "/tyk/keys/" + key)
    assert (gone.status, gone.json) == (
        404, {"status": "error", "message": "There is no such key found"})
    assert env.call("GET", "/tyk/keys/" + key).status == 404


def test_delete_by_hash(admin_factory: Any) -> None:
    env = admin_factory()
    body = env.call("POST", "/tyk/keys/create", SESSION).json
    reply = env.call("DELETE", "/tyk/keys/" + body["key_hash"] + "?hashed=1&api_id=a")
    assert reply.json == {"key": body["key_hash"], "status": "ok", "action": "deleted"}
    assert env.sessions() == {}


def test_delete_across_all_apis_answers_null(admin_factory: Any) -> None:
    env = admin_factory()
    key = env.call("POST", "/tyk/keys/custom1", SESSION).json["key"]
    reply = env.call("DELETE", "/tyk/keys/" + key + "?api_id=-1")
    assert (reply.status, reply.raw) == (200, b"null")
    assert env.sessions() == {}


# ----------------------------------------------------------------------------- basic auth


BASIC = {**SESSION, "basic_auth_data": {"password": "s3cret:with:colons"}}


@pytest.mark.parametrize(("hash_keys", "function", "org"), [
    (True, "", ""), (False, "", ""), (True, "murmur64", "org1"), (False, "sha256", "org1"),
])
def test_basic_auth_user(admin_factory: Any, hash_keys: bool, function: str, org: str) -> None:
    env = admin_factory(hash_keys=hash_keys, hash_key_function=function)
    reply = env.call("POST", "/tyk/keys/alice", {**BASIC, "org_id": org})
    assert reply.status == 200, reply.raw
    name = basic_auth_key(org, "alice", function)
    skey = env.storage_key(name)
    if hash_keys:
        # Tyk answers a Basic-auth user only by its hash.
        assert reply.json == {"key": "", "status": "ok", "action": "added", "key_hash": skey}
    else:
        assert reply.json == {"key": name, "status": "ok", "action": "added"}
    stored = env.sessions()
    assert list(stored) == [skey]
    data = stored[skey]["basic_auth_data"]
    assert data["hash_type"] == "bcrypt"
    assert data["password"].startswith("$2a$10$")
    assert "s3cret" not in json.dumps(stored)
    assert check_password(b"s3cret:with:colons", stored[skey])
    assert not check_password(b"s3cret", stored[skey])

    # Read by user name (Tyk's SessionDetail tries generateToken(org, name)).
    query = f"?org_id={org}" if org else ""
    got = env.call("GET", "/tyk/keys/alice" + query)
    assert got.status == 200, got.raw
    assert "password" not in got.json["basic_auth_data"]
    assert got.json["basic_auth_data"]["hash_type"] == "bcrypt"
    assert "$2a$" not in got.raw.decode()


def test_basic_auth_update_keeps_or_replaces_password(admin_factory: Any) -> None:
    env = admin_factory()
    env.call("POST", "/tyk/keys/alice", BASIC)
    skey = env.storage_key(basic_auth_key("", "alice", ""))
    first = env.sessions()[skey]["basic_auth_data"]

    # Without a password: the stored hash stays.
    assert env.call("PUT", "/tyk/keys/alice", {**SESSION, "rate": 3}).status == 200
    kept = env.sessions()[skey]
    assert kept["basic_auth_data"] == first and kept["rate"] == 3

    # The stored hash sent back as is (a GET/PUT round trip in Tyk): kept, not re-hashed.
    echo = {**SESSION, "basic_auth_data": dict(first)}
    assert env.call("PUT", "/tyk/keys/alice", echo).status == 200
    assert env.sessions()[skey]["basic_auth_data"] == first

    # A new password: hashed anew; the client's hash_type is not trusted.
    new = {**SESSION, "basic_auth_data": {"password": "other", "hash_type": ""}}
    assert env.call("PUT", "/tyk/keys/alice", new).status == 200
    changed = env.sessions()[skey]
    assert changed["basic_auth_data"]["hash_type"] == "bcrypt"
    assert check_password(b"other", changed)
    assert not check_password(b"s3cret:with:colons", changed)


def test_basic_auth_password_too_long(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/keys/alice",
                     {**SESSION, "basic_auth_data": {"password": "x" * 73}})
    assert reply.status == 400
    assert reply.message.startswith("basic_auth_data.password: ")
    assert "x" * 10 not in reply.message
    _assert_nothing_written(env)


def test_basic_auth_delete_by_user_name(admin_factory: Any) -> None:
    env = admin_factory(hash_key_function="murmur64")
    env.call("POST", "/tyk/keys/alice", {**BASIC, "org_id": "org1"})
    reply = env.call("DELETE", "/tyk/keys/alice?org_id=org1")
    assert reply.status == 200 and reply.json["action"] == "deleted"
    assert env.sessions() == {}


# ----------------------------------------------------------------------------- storage down


@pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
def test_store_unavailable_is_503(admin_factory: Any, redis_server: Any) -> None:
    env = admin_factory(enable_hashed_keys_listing=True)
    redis_server.stop()
    try:
        for method, path in [("GET", "/tyk/keys/abc"), ("POST", "/tyk/keys/create"),
                             ("GET", "/tyk/keys"), ("DELETE", "/tyk/keys/abc"),
                             ("POST", "/tyk/policies/p1")]:
            reply = env.call(method, path, {**SESSION, "id": "p1"})
            assert reply.status == 503, (method, path, reply.raw)
            assert reply.message.startswith("storage unavailable: ")
    finally:
        redis_server.ensure_running()
