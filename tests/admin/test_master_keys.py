"""Master keys (empty effective access rights: every API) are refused unless
``allow_master_keys``; rights naming an API that is not loaded are stored with
a warning, as Tyk ("Can't find active API, storing anyway")."""

from __future__ import annotations

from typing import Any

import pytest

REFUSED = (400, {"status": "error", "message": "Failed to create key, keys must have at least "
                                               "one Access Rights record set."})
RIGHTS_A = {"a": {"api_id": "a", "api_name": "A", "versions": ["Default"]}}
MASTER = {"rate": 10, "per": 1, "quota_max": -1, "access_rights": {}}


def _nothing_written(env: Any) -> None:
    assert env.sessions() == {}
    env.settle()
    assert [e for e in env.events if e[0] == "session"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/tyk/keys/create"), ("POST", "/tyk/keys"), ("POST", "/tyk/keys/master-key"),
])
@pytest.mark.parametrize("body", [MASTER, {"rate": 1, "per": 1}], ids=["empty", "absent"])
def test_master_key_refused_on_every_create_path(admin_factory: Any, method: str, path: str,
                                                 body: dict[str, Any]) -> None:
    env = admin_factory()
    reply = env.call(method, path, body)
    assert (reply.status, reply.json) == REFUSED
    _nothing_written(env)


def test_basic_auth_user_without_rights_refused(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/keys/alice",
                     {**MASTER, "basic_auth_data": {"password": "pw-1234"}})
    assert (reply.status, reply.json) == REFUSED
    _nothing_written(env)


def test_put_cannot_turn_a_key_into_a_master_key(admin_factory: Any) -> None:
    env = admin_factory()
    assert env.call("POST", "/tyk/keys/normal-key", {**MASTER, "access_rights": RIGHTS_A}
                    ).status == 200
    before = env.sessions()
    env.events.clear()
    reply = env.call("PUT", "/tyk/keys/normal-key", MASTER)
    assert (reply.status, reply.json) == REFUSED
    assert env.sessions() == before
    env.settle()
    assert [e for e in env.events if e[0] == "session"] == []


def test_keys_with_rights_from_policies_are_fine(admin_factory: Any) -> None:
    env = admin_factory(file_policies={"gold": {"rate": 5, "per": 1, "access_rights": RIGHTS_A}})
    for method, path in [("POST", "/tyk/keys/create"), ("POST", "/tyk/keys/pol-key-1")]:
        reply = env.call(method, path, {"apply_policies": ["gold"]})
        assert reply.status == 200, reply.raw
        assert "warnings" not in reply.json
    assert env.call("PUT", "/tyk/keys/pol-key-1", {"apply_policies": ["gold"]}).status == 200


def test_allow_master_keys(admin_factory: Any) -> None:
    env = admin_factory(allow_master_keys=True)
    for method, path in [("POST", "/tyk/keys/create"), ("POST", "/tyk/keys/master-key")]:
        assert env.call(method, path, MASTER).status == 200
    assert env.call("PUT", "/tyk/keys/master-key", MASTER).status == 200


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/tyk/keys/create"), ("POST", "/tyk/keys"), ("POST", "/tyk/keys/later-key"),
])
def test_rights_to_an_api_not_loaded_are_stored_with_a_warning(admin_factory: Any, method: str,
                                                               path: str) -> None:
    env = admin_factory()
    rights = {**RIGHTS_A, "not-yet": {"api_id": "not-yet", "api_name": "Later"}}
    reply = env.call(method, path, {**MASTER, "access_rights": rights})
    assert reply.status == 200, reply.raw
    body = reply.json
    assert body["status"] == "ok" and body["action"] == "added"
    assert body["warnings"] == ["access_rights.not-yet: Can't find active API, storing anyway"]
    (stored,) = env.sessions().values()
    assert set(stored["access_rights"]) == {"a", "not-yet"}


def test_warning_on_put_and_none_when_every_api_is_loaded(admin_factory: Any) -> None:
    env = admin_factory()
    created = env.call("POST", "/tyk/keys/some-key", {**MASTER, "access_rights": RIGHTS_A})
    assert created.status == 200 and "warnings" not in created.json
    updated = env.call("PUT", "/tyk/keys/some-key",
                       {**MASTER, "access_rights": {"gone": {"api_id": "gone"}}})
    assert updated.json == {"key": "some-key", "status": "ok", "action": "modified",
                            "warnings": ["access_rights.gone: Can't find active API, "
                                         "storing anyway"]}
