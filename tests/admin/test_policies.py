"""/tyk/policies through AdminApi.handle, on memory, Redis and Redis Cluster.

Replies as Tyk's polHandler / handleAddOrUpdatePolicy / handleDeletePolicy
(gateway/api.go) and TestPolicyAPI (gateway/api_test.go).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

POLICY = {"rate": 1000, "per": 1, "quota_max": 100, "quota_renewal_rate": 60,
          "access_rights": {"a": {"api_id": "a", "api_name": "A", "versions": ["Default"]}}}
FILE_POLICIES = {"from-file": {"rate": 1, "per": 1}}


def _stored(env: Any) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in env.run(env.store.get_policies()).items()}


def test_policy_lifecycle(admin_factory: Any) -> None:
    env = admin_factory(file_policies=FILE_POLICIES)
    missing = env.call("GET", "/tyk/policies/default-test")
    assert (missing.status, missing.json) == (
        404, {"status": "error", "message": "Policy not found"})

    added = env.call("POST", "/tyk/policies/default-test", {"id": "default-test", **POLICY})
    assert added.json == {"key": "default-test", "status": "ok", "action": "added"}
    # In service on this worker at once (Tyk: only after a reload).
    got = env.call("GET", "/tyk/policies/default-test")
    assert got.status == 200 and got.json["rate"] == 1000 and got.json["id"] == "default-test"
    assert env.gateway.policies["default-test"]["quota_max"] == 100
    env.settle()
    assert ("policies", "default-test") in env.events

    listing = env.call("GET", "/tyk/policies").json
    assert [p["id"] for p in listing] == ["default-test", "from-file"]

    modified = env.call("PUT", "/tyk/policies/default-test", {**POLICY, "rate": 5})
    assert modified.json == {"key": "default-test", "status": "ok", "action": "modified"}
    assert env.gateway.policies["default-test"]["rate"] == 5

    deleted = env.call("DELETE", "/tyk/policies/default-test")
    assert deleted.json == {"key": "default-test", "status": "ok", "action": "deleted"}
    assert "default-test" not in env.gateway.policies
    assert env.call("GET", "/tyk/policies/default-test").status == 404
    again = env.call("DELETE", "/tyk/policies/default-test")
    assert (again.status, again.message) == (404, "Policy not found")
    assert _stored(env) == {}


@pytest.mark.parametrize(("body", "path"), [
    ({"id": "p1", **POLICY}, "/tyk/policies"),
    ({"ID": "p1", **POLICY}, "/tyk/policies"),      # Go decodes field names case-insensitively
    ({"_id": "p1", **POLICY}, "/tyk/policies"),
    (POLICY, "/tyk/policies/p1"),                   # the path names it
    ({"id": "p1", **POLICY}, "/tyk/policies/p1/"),
])
def test_post_policy_id(admin_factory: Any, body: dict[str, Any], path: str) -> None:
    env = admin_factory()
    reply = env.call("POST", path, body)
    assert reply.json == {"key": "p1", "status": "ok", "action": "added"}
    assert _stored(env)["p1"]["id"] == "p1"


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/tyk/policies", POLICY, 400, "Unable to create policy without id."),
    ("POST", "/tyk/policies", {"id": "invalid/id", **POLICY}, 400,
     "Invalid Policy ID: Allowed characters: a-z, A-Z, 0-9, ., _, -, ~"),
    ("POST", "/tyk/policies/bad@id", POLICY, 400,
     "Invalid Policy ID: Allowed characters: a-z, A-Z, 0-9, ., _, -, ~"),
    ("PUT", "/tyk/policies/valid-id", {"id": "other-id", **POLICY}, 400,
     "Request ID does not match that in policy! For Update operations these must match."),
    ("PUT", "/tyk/policies", {"id": "p1", **POLICY}, 400, "Must specify an apiID to update"),
    ("DELETE", "/tyk/policies", None, 400, "Must specify an apiID to delete"),
    ("POST", "/tyk/policies", [1, 2], 400, "Request malformed"),
    ("POST", "/tyk/policies/p1", {"rate": "fast"}, 400, "rate: "),
    ("POST", "/tyk/policies/p1", {"quota_max": 1.5}, 400, "quota_max: "),
    ("POST", "/tyk/policies/p1", {"access_rights": {"a": {"versions": "v1"}}}, 400,
     "access_rights.a.versions: "),
    ("POST", "/tyk/policies/p1", {"id": 5}, 400, "id: "),
])
def test_policy_errors(admin_factory: Any, method: str, path: str, body: Any, status: int,
                       message: str) -> None:
    env = admin_factory()
    reply = env.call(method, path, body)
    assert reply.status == status, reply.raw
    assert reply.json["status"] == "error"
    assert reply.message.startswith(message), reply.message
    assert _stored(env) == {}
    env.settle()
    assert not [e for e in env.events if e[0] == "policies"]


def test_malformed_policy_json(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/policies/p1", raw=b"{not json")
    assert (reply.status, reply.message) == (400, "Request malformed")
    assert _stored(env) == {}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_file_policies_are_read_only(admin_factory: Any, method: str) -> None:
    env = admin_factory(file_policies=FILE_POLICIES)
    reply = env.call(method, "/tyk/policies/from-file",
                     None if method == "DELETE" else {"rate": 5, "per": 1})
    assert reply.status == 409
    assert "from-file" in reply.message and "policy files" in reply.message
    assert env.gateway.policies["from-file"]["rate"] == 1
    assert _stored(env) == {}
    assert env.call("GET", "/tyk/policies/from-file").json["rate"] == 1


def test_put_creates_like_tyk(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("PUT", "/tyk/policies/new-one", POLICY)
    assert reply.json == {"key": "new-one", "status": "ok", "action": "modified"}
    assert "new-one" in env.gateway.policies
