"""The names keys are stored under and looked up by: ``POST /tyk/keys/{key}``
files a custom key under Tyk's ``generateToken(org, key)``, and GET, PUT and
DELETE find it by the name given -- with ``?org_id=``, or without it through
the orgs of the loaded APIs (fastgate's addition: Tyk answers 404)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .conftest import api_definition

RIGHTS = {"a": {"api_id": "a", "api_name": "A", "versions": ["Default"]}}


def tyk_name(org: str, key: str, function: str) -> str:
    """generateToken(org, key) as Tyk's Go code writes it (written out here anew)."""
    key = key[len(org):] if org and key.startswith(org) else key
    if function:
        return base64.b64encode(
            f'{{"org":"{org}","id":"{key}","h":"{function}"}}'.encode()).decode()
    return org + key


def apis(*orgs: str) -> list[dict[str, Any]]:
    return [api_definition(f"api{i}", f"/api{i}/", "http://127.0.0.1:9", org_id=org)
            for i, org in enumerate(orgs)]


CASES = [("", ""), ("org1", ""), ("", "murmur64"), ("org1", "sha256"),
         ("5e9d9544a1dcd60001d0ed20", "murmur128")]


@pytest.mark.parametrize(("org", "function"), CASES)
@pytest.mark.parametrize("hash_keys", [True, False])
def test_custom_key_is_stored_under_tyks_name(admin_factory: Any, org: str, function: str,
                                             hash_keys: bool) -> None:
    env = admin_factory(hash_keys=hash_keys, hash_key_function=function, apis=apis(org))
    rights = {"api0": {"api_id": "api0", "api_name": "A", "versions": ["Default"]}}
    reply = env.call("POST", "/tyk/keys/my-custom-key", {"org_id": org, "access_rights": rights})
    assert reply.status == 200, reply.raw
    name = tyk_name(org, "my-custom-key", function)
    skey = env.storage_key(name)
    assert reply.json["key"] == name
    assert reply.json.get("key_hash", "") == (skey if hash_keys else "")
    assert list(env.sessions()) == [skey]
    assert (skey != name) is hash_keys

    # Found again by the name given: with its org, and without (the loaded API's org).
    query = f"?org_id={org}" if org else ""
    for path in ["/tyk/keys/my-custom-key" + query, "/tyk/keys/my-custom-key",
                 "/tyk/keys/" + name]:
        got = env.call("GET", path)
        assert got.status == 200, (path, got.raw)
    assert env.call("PUT", "/tyk/keys/my-custom-key",
                    {"org_id": org, "access_rights": rights, "rate": 3}).status == 200
    assert env.sessions()[skey]["rate"] == 3
    assert env.call("DELETE", "/tyk/keys/my-custom-key").status == 200
    assert env.sessions() == {}


def test_get_put_delete_of_a_basic_auth_user_without_org_id(admin_factory: Any) -> None:
    """``GET /tyk/keys/bob`` used to 404 for a user of an org without ``?org_id=``."""
    env = admin_factory(hash_key_function="murmur64", apis=apis("acme"))
    rights = {"api0": {"api_id": "api0", "versions": ["Default"]}}
    user = {"org_id": "acme", "access_rights": rights, "basic_auth_data": {"password": "pw-1"}}
    assert env.call("POST", "/tyk/keys/bob", user).status == 200
    got = env.call("GET", "/tyk/keys/bob")
    assert got.status == 200, got.raw
    assert got.json["basic_auth_data"] == {"hash_type": "bcrypt"}
    assert env.call("PUT", "/tyk/keys/bob", {"access_rights": rights, "rate": 9}).status == 200
    (stored,) = env.sessions().values()
    assert stored["rate"] == 9 and stored["basic_auth_data"]["password"].startswith("$2a$")
    assert env.call("DELETE", "/tyk/keys/bob").status == 200
    assert env.sessions() == {}
    assert env.call("GET", "/tyk/keys/bob").status == 404


def test_a_name_several_orgs_have_needs_org_id(admin_factory: Any) -> None:
    env = admin_factory(apis=apis("o1", "o2", "o3"))
    for org in ("o1", "o2"):
        rights = {"api0": {"api_id": "api0"}}
        assert env.call("POST", "/tyk/keys/bob", {
            "org_id": org, "access_rights": rights,
            "basic_auth_data": {"password": "pw-" + org}}).status == 200
    for method in ("GET", "DELETE"):
        reply = env.call(method, "/tyk/keys/bob")
        assert (reply.status, reply.message) == (
            400, "the key matches keys of several organisations (o1, o2): name one with ?org_id=")
    assert len(env.sessions()) == 2
    assert env.call("GET", "/tyk/keys/bob?org_id=o2").json["org_id"] == "o2"
    assert env.call("DELETE", "/tyk/keys/bob?org_id=o1").status == 200
    assert env.call("GET", "/tyk/keys/bob").json["org_id"] == "o2"


def test_a_key_found_as_given_wins_over_the_org_fallback(admin_factory: Any) -> None:
    env = admin_factory(apis=apis("o1"))
    assert env.call("POST", "/tyk/keys/plain-key", {"access_rights": RIGHTS, "rate": 1}
                    ).status == 200
    assert env.call("POST", "/tyk/keys/plain-key", {"org_id": "o1", "access_rights": RIGHTS,
                                                   "rate": 2}).status == 200
    assert env.call("GET", "/tyk/keys/plain-key").json["rate"] == 1
    assert env.call("GET", "/tyk/keys/plain-key?org_id=o1").json["rate"] == 2
