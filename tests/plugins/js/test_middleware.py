"""JS middleware hooks (driver otto) driven directly with real QuickJS workers:
header and URL changes reach the request, ReturnOverrides answer, errors 500."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fastgate.plugins.js.middleware import JS_ERROR, JsMiddleware

from .test_virtual import StepRequest, services, spec

HOOKS = """
var rewrite = new TykJS.TykMiddleware.NewMiddleware({});
rewrite.NewProcessRequest(function(request, session, config) {
    request.SetHeaders["X-Tier"] = config.config_data.tier;
    request.DeleteHeaders.push("X-Secret");
    request.URL = "/api/v2" + request.URL.substring(4);
    request.AddParams["added"] = "1";
    return rewrite.ReturnData(request, {});
});
var refuse = new TykJS.TykMiddleware.NewMiddleware({});
refuse.NewProcessRequest(function(request, session, config) {
    request.ReturnOverrides.ResponseCode = 403;
    request.ReturnOverrides.ResponseError = "go away";
    request.ReturnOverrides.ResponseHeaders = {"X-Why": "js"};
    return refuse.ReturnData(request, {});
});
var broken = new TykJS.TykMiddleware.NewMiddleware({});
broken.NewProcessRequest(function(request, session, config) { return nothing.here; });
"""


class MutableRequest(StepRequest):
    """StepRequest with the changes a hook may make recorded."""

    def remove_header(self, lname: bytes) -> None:
        self.request_headers = [h for h in self.request_headers if h[0] != lname]

    def add_header(self, name: bytes, value: bytes) -> None:
        self.request_headers.append((name.lower(), name, value))

    def set_query(self, query: bytes) -> None:
        self.query = query

    def set_path(self, path: bytes) -> None:
        self.path = path


@pytest.fixture
def hook(tmp_path: Any, run: Any) -> Iterator[Any]:
    (tmp_path / "hooks.js").write_text(HOOKS)
    made: list[JsMiddleware] = []

    def make(name: str) -> JsMiddleware:
        descriptor = types.SimpleNamespace(name=name, path=str(tmp_path / "hooks.js"),
                                           require_session=False, raw_body_only=False)
        step = JsMiddleware(spec({"tier": "gold"}), descriptor, "pre", services())
        made.append(step)
        return step

    yield make
    for step in made:
        run(step.aclose())
        run(step.services.http.close())


def test_pre_hook_changes_headers_url_and_query(hook: Any, run: Any) -> None:
    req = MutableRequest("GET", "/api/items", "a=1", headers=(("X-Secret", "s"), ("Host", "h")))
    assert run(hook("rewrite").process(req)) is None
    names = {lname: value for lname, _name, value in req.request_headers}
    assert names[b"x-tier"] == b"gold" and b"x-secret" not in names
    assert req.path == b"/api/v2/items"
    assert sorted(req.query.split(b"&")) == [b"a=1", b"added=1"]


def test_return_overrides_answer(hook: Any, run: Any) -> None:
    answer = run(hook("refuse").process(MutableRequest("GET", "/api/x")))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ") and b"\r\nX-Why: js" in head
    assert json.loads(body) == {"error": "go away"}


def test_a_failing_hook_answers_500(hook: Any, run: Any) -> None:
    assert run(hook("broken").process(MutableRequest("GET", "/api/x"))) == JS_ERROR
