"""/tyk/apis through AdminApi.handle: files in app_path, applied by reload.

Replies as Tyk's apiHandler / handleAddApi / handleUpdateApi /
handleDeleteAPI (gateway/api.go); on any error nothing is left written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import api_definition

UPSTREAM = "http://127.0.0.1:9"


def _routes(env: Any) -> set[str]:
    return {spec.api_id for spec in env.gateway.specs if spec.active}


def test_list_and_get(admin_factory: Any) -> None:
    env = admin_factory(apis=[api_definition("a", "/a/", UPSTREAM),
                              api_definition("b", "/b/", UPSTREAM)])
    listing = env.call("GET", "/tyk/apis")
    assert listing.status == 200
    assert sorted(api["api_id"] for api in listing.json) == ["a", "b"]
    one = env.call("GET", "/tyk/apis/b")
    assert one.status == 200 and one.json["proxy"]["listen_path"] == "/b/"
    missing = env.call("GET", "/tyk/apis/zzz")
    assert (missing.status, missing.json) == (404, {"status": "error", "message": "API not found"})


@pytest.mark.parametrize("path", ["/tyk/apis", "/tyk/apis/new-api"])
def test_add_api(admin_factory: Any, path: str) -> None:
    env = admin_factory()
    reply = env.call("POST", path, api_definition("new-api", "/new/", UPSTREAM))
    assert reply.json == {"key": "new-api", "status": "ok", "action": "added"}
    assert env.app_files() == ["a.json", "new-api.json"]
    assert json.loads((env.app_path / "new-api.json").read_text())["api_id"] == "new-api"
    assert _routes(env) == {"a", "new-api"}
    env.settle()
    assert ("apis", "new-api") in env.events


def test_add_api_generates_id(admin_factory: Any) -> None:
    env = admin_factory()
    api = api_definition("x", "/gen/", UPSTREAM)
    del api["api_id"]
    reply = env.call("POST", "/tyk/apis", api)
    api_id = reply.json["key"]
    assert len(api_id) == 32 and reply.json["action"] == "added"
    assert api_id in _routes(env)


def test_add_wrapped_dashboard_export(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("POST", "/tyk/apis",
                     {"api_definition": api_definition("wrapped", "/w/", UPSTREAM)})
    assert reply.json["key"] == "wrapped"
    assert "wrapped" in _routes(env)


def test_update_api(admin_factory: Any) -> None:
    env = admin_factory()
    reply = env.call("PUT", "/tyk/apis/a", api_definition("a", "/renamed/", UPSTREAM))
    assert reply.json == {"key": "a", "status": "ok", "action": "modified"}
    spec = next(s for s in env.gateway.specs if s.api_id == "a")
    assert spec.listen_path == "/renamed/"
    assert env.app_files() == ["a.json"]


def test_update_api_in_its_own_file(admin_factory: Any) -> None:
    env = admin_factory(apis=[])
    (env.app_path / "httpbin.json").write_text(json.dumps(api_definition("hb", "/hb/", UPSTREAM)))
    assert env.gateway.reload() is None
    reply = env.call("PUT", "/tyk/apis/hb", api_definition("hb", "/hb2/", UPSTREAM))
    assert reply.status == 200, reply.raw
    assert env.app_files() == ["httpbin.json"]
    written = json.loads((env.app_path / "httpbin.json").read_text())
    assert written["proxy"]["listen_path"] == "/hb2/"


def test_delete_api(admin_factory: Any) -> None:
    env = admin_factory(apis=[api_definition("a", "/a/", UPSTREAM),
                              api_definition("b", "/b/", UPSTREAM)])
    reply = env.call("DELETE", "/tyk/apis/b")
    assert reply.json == {"key": "b", "status": "ok", "action": "deleted"}
    assert env.app_files() == ["a.json"]
    assert _routes(env) == {"a"}
    gone = env.call("DELETE", "/tyk/apis/b")
    assert (gone.status, gone.message) == (404, "API not found")


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/tyk/apis", {"api_id": "../escape", "proxy": {}}, 400, "Invalid API ID"),
    ("POST", "/tyk/apis", {"api_id": ".hidden", "proxy": {}}, 400, "Invalid API ID"),
    ("POST", "/tyk/apis", {"api_id": "a b", "proxy": {}}, 400, "Invalid API ID"),
    ("POST", "/tyk/apis/..", None, 400, "Request malformed"),
    ("PUT", "/tyk/apis/..", {"api_id": ".."}, 400, "Invalid API ID"),
    ("DELETE", "/tyk/apis/%2E%2E", None, 400, "Invalid API ID"),
    ("PUT", "/tyk/apis/a", api_definition("b", "/b/", UPSTREAM), 400,
     "Request APIID does not match that in Definition! For Update operations these must match."),
    ("PUT", "/tyk/apis/zzz", api_definition("zzz", "/z/", UPSTREAM), 404, "API not found"),
    ("PUT", "/tyk/apis", api_definition("a", "/a/", UPSTREAM), 400,
     "Must specify an apiID to update"),
    ("DELETE", "/tyk/apis", None, 400, "Must specify an apiID to delete"),
    ("POST", "/tyk/apis", [1], 400, "Request malformed"),
    ("POST", "/tyk/apis", {"api_id": "n", "name": "n"}, 400,
     "Validation of API Definition failed. Reason: proxy: "),
    ("POST", "/tyk/apis", {**api_definition("n", "/n/", UPSTREAM), "use_keyless": "yes"}, 400,
     "Validation of API Definition failed. Reason: use_keyless: "),
    ("POST", "/tyk/apis", {**api_definition("n", "/n/", "ftp://x")}, 400,
     "Validation of API Definition failed. Reason: proxy.target_url: "),
    ("POST", "/tyk/apis", {"api_id": 7}, 400,
     "Validation of API Definition failed. Reason: api_id: "),
    # A second API on a listen path already taken: the reload refuses it.
    ("POST", "/tyk/apis", api_definition("dup", "/a/", UPSTREAM), 400, ""),
])
def test_api_errors_write_nothing(admin_factory: Any, method: str, path: str, body: Any,
                                  status: int, message: str) -> None:
    env = admin_factory()
    before = (env.app_path / "a.json").read_bytes()
    reply = env.call(method, path, body, raw=b"" if body is None else None)
    assert reply.status == status, reply.raw
    assert reply.json["status"] == "error"
    assert reply.message.startswith(message), reply.message
    assert env.app_files() == ["a.json"]
    assert (env.app_path / "a.json").read_bytes() == before
    assert _routes(env) == {"a"}
    env.settle()
    assert not [e for e in env.events if e[0] == "apis"]


def test_failed_update_restores_the_previous_file(admin_factory: Any) -> None:
    env = admin_factory(apis=[api_definition("a", "/a/", UPSTREAM),
                              api_definition("b", "/b/", UPSTREAM)])
    before = (env.app_path / "b.json").read_bytes()
    reply = env.call("PUT", "/tyk/apis/b", api_definition("b", "/a/", UPSTREAM))
    assert reply.status == 400
    assert "listen_path" in reply.message
    assert (env.app_path / "b.json").read_bytes() == before
    assert env.app_files() == ["a.json", "b.json"]
    spec = next(s for s in env.gateway.specs if s.api_id == "b")
    assert spec.listen_path == "/b/"


def test_failed_delete_restores_the_file(admin_factory: Any) -> None:
    # A broken file appeared since the last reload: the reload after the
    # delete fails, so a.json must come back (the old set stays in service).
    env = admin_factory()
    (env.app_path / "broken.json").write_text("{not json")
    before = (env.app_path / "a.json").read_bytes()
    reply = env.call("DELETE", "/tyk/apis/a")
    assert reply.status == 400 and "broken.json" in reply.message
    assert (env.app_path / "a.json").read_bytes() == before
    assert _routes(env) == {"a"}
