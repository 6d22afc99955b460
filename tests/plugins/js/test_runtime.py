"""The JSVM runtime with real QuickJS workers: Tyk's TykJS API, host functions
against a real upstream, and the time and memory limits."""

from __future__ import annotations

import asyncio
import json
import time
import types
from typing import Any

import pytest

from fastgate.outbound import HttpClient
from fastgate.plugins.js.runtime import JsError, JsLimits, JsLoadError, JsRuntime, JsTimeout

MIDDLEWARE = """
var addHeader = new TykJS.TykMiddleware.NewMiddleware({});
addHeader.NewProcessRequest(function(request, session, config) {
    request.SetHeaders["X-Tier"] = config.config_data.tier;
    request.DeleteHeaders.push("X-Secret");
    request.URL = "/rewritten" + request.URL;
    request.Body = request.Body.toUpperCase();
    return addHeader.ReturnData(request, {seen: "yes"});
});
function spin() { while (true) {} }
function hog() { var a = []; while (true) { a.push(new Array(10000).join("x") + a.length); } }
function callEcho(domain) {
    var answer = JSON.parse(TykMakeHttpRequest(JSON.stringify({
        "Method": "POST", "Domain": domain, "resource": "/anything?q=1",
        "Headers": {"x-from-js": "1"}, "FormData": {"b": "2", "a": "1 2"}})));
    return JSON.stringify({code: answer.Code, lower: answer.code,
                           body: JSON.parse(answer.Body), type: answer.Headers["Content-Type"]});
}
function callNowhere() {
    return String(TykMakeHttpRequest(JSON.stringify({Method: "GET", Domain: "http://127.0.0.1:1",
                                                     Resource: "/"})));
}
function batch(domain) {
    return TykBatchRequest(JSON.stringify({requests: [
        {method: "GET", relative_url: domain + "/one", headers: {}},
        {method: "GET", relative_url: domain + "/two", headers: {}}]}));
}
function codec() { return b64enc("héllo") + "|" + b64dec(b64enc("héllo")) + "|" + b64dec("aGk"); }
"""

REQUEST = {"Headers": {"X-Secret": ["s"]}, "SetHeaders": {}, "DeleteHeaders": [],
           "Body": "aGVsbG8=", "URL": "/path?a=1", "Params": {"a": ["1"]}, "AddParams": {},
           "ExtendedParams": {}, "DeleteParams": [],
           "ReturnOverrides": {"ResponseCode": 0}, "IgnoreBody": False, "Method": "GET",
           "RequestURI": "/path?a=1", "Scheme": "http"}


@pytest.fixture
def runtime(run: Any) -> Any:
    services = types.SimpleNamespace(http=HttpClient(), config=None)
    rt = JsRuntime(api_id="api1", org_id="org", config_data={"tier": "gold"},
                   services=services,  # type: ignore[arg-type]
                   limits=JsLimits(timeout=1.0, memory_mib=16, workers=2))
    rt.add_script("mw.js", MIDDLEWARE)
    yield rt
    run(rt.aclose())
    run(services.http.close())


def test_middleware_object_gets_tyk_arguments_and_returns_data(runtime: Any, run: Any) -> None:
    expr = (f"addHeader.DoProcessRequest({json.dumps(REQUEST)}, {{}}, {runtime.spec_json})")
    out = json.loads(run(runtime.run(expr)))
    request = out["Request"]
    assert request["SetHeaders"] == {"X-Tier": "gold"}
    assert request["DeleteHeaders"] == ["X-Secret"]
    assert request["URL"] == "/rewritten/path?a=1"
    assert request["Body"] == "SEVMTE8="  # base64 of HELLO: decoded, changed, encoded
    assert request["Headers"] == {}  # Tyk resets them
    assert out["SessionMeta"] == {"seen": "yes"}
    assert json.loads(runtime.spec_json) == {"OrgID": "org", "APIID": "api1",
                                             "config_data": {"tier": "gold"}}


def test_make_http_request_reaches_the_upstream_synchronously(runtime: Any, run: Any,
                                                              echo: Any) -> None:
    out = json.loads(run(runtime.run(f"callEcho({json.dumps(echo.base_url)})")))
    assert out["code"] == 200 and out["lower"] == 200
    assert out["type"] == ["application/json"]
    seen = out["body"]
    assert seen["method"] == "POST"
    assert seen["path"] == "/anything?q=1" or seen.get("url", "").endswith("/anything?q=1")
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert sent["x-from-js"] == "1"
    assert seen["body"] == "a=1+2&b=2"  # FormData url-encoded in key order, as Go does


def test_failed_request_gives_undefined(runtime: Any, run: Any) -> None:
    assert run(runtime.run("callNowhere()")) == "undefined"


def test_batch_request(runtime: Any, run: Any, echo: Any) -> None:
    replies = json.loads(run(runtime.run(f"batch({json.dumps(echo.base_url)})")))
    assert [r["code"] for r in replies] == [200, 200]
    assert sorted(r["relative_url"] for r in replies) == [echo.base_url + "/one",
                                                          echo.base_url + "/two"]


def test_base64_helpers(runtime: Any, run: Any) -> None:
    assert run(runtime.run("codec()")) == "aMOpbGxv|héllo|hi"


def test_runaway_script_is_stopped_and_the_loop_keeps_serving(runtime: Any, run: Any) -> None:
    async def scenario() -> tuple[float, int, str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        start = time.monotonic()
        with pytest.raises(JsTimeout, match="timed out after 1s"):
            await runtime.run("spin()")
        elapsed = time.monotonic() - start
        after = await runtime.run("'alive:' + typeof addHeader")
        task.cancel()
        return elapsed, ticks, after

    elapsed, ticks, after = run(scenario())
    assert 0.9 <= elapsed < 3.0
    assert ticks >= 50  # the event loop was never blocked
    assert after == "alive:object"  # a fresh worker has the scripts


def test_other_calls_are_served_while_one_spins(runtime: Any, run: Any) -> None:
    async def scenario() -> float:
        spinning = asyncio.create_task(runtime.run("spin()"))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        assert await runtime.run("codec()") == "aMOpbGxv|héllo|hi"
        took = time.monotonic() - start
        with pytest.raises(JsTimeout):
            await spinning
        return took

    assert run(scenario()) < 0.8


def test_memory_limit(runtime: Any, run: Any) -> None:
    with pytest.raises(JsError, match="out of memory"):
        run(runtime.run("hog()"))
    assert run(runtime.run("codec()")) == "aMOpbGxv|héllo|hi"


def test_a_script_that_throws_is_an_error(runtime: Any, run: Any) -> None:
    with pytest.raises(JsError, match="ReferenceError"):
        run(runtime.run("noSuchFunction()"))
    with pytest.raises(JsError, match="not a JSON string"):
        run(runtime.run("42"))


def test_syntax_error_names_file_and_line(runtime: Any) -> None:
    with pytest.raises(JsLoadError) as caught:
        runtime.add_script("broken.js", "var a = 1;\nvar b = {;\n")
    assert caught.value.file == "broken.js" and caught.value.line == 2
    assert str(caught.value).startswith("broken.js:2: SyntaxError")


def test_missing_file_is_a_load_error(runtime: Any, tmp_path: Any) -> None:
    with pytest.raises(JsLoadError, match="cannot read the script"):
        runtime.add_file(str(tmp_path / "absent.js"))
