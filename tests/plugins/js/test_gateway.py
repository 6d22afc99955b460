"""JavaScript plugins (driver otto) inside a real gateway, over real sockets:
virtual endpoints from a file and from a blob, a ``pre`` middleware rewriting
headers, URL and query, a ``post`` middleware with ``require_session``
saving ``SessionMeta`` as the key's ``meta_data``, a script that throws, a
``while(true){}`` stopped by ``jsvm_timeout`` while other requests are
served, pipelined requests through a hook, a reload with a changed script,
the worker processes across reloads, and the seed's split-token ``login``
script as a virtual endpoint of the gateway (a PyJWT IdP, the key stored
with ``TykSetKeyData``, the protected API sending the whole JWT upstream).

The scripts are written as a Tyk user writes them (Tyk's documentation's
shapes), into the gateway's ``middleware/`` directory."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.plugins.js.test_virtual import SEED_LOGIN, _Idp

ORG = "test-org"
ADMIN = "X-Tyk-Authorization"

VIRTUAL_JS = """
function answer(request, session, config) {
    return TykJsResponse({
        Body: JSON.stringify({url: request.URL, params: request.Params,
                              tier: config.config_data.tier,
                              agent: request.Headers["User-Agent"]}),
        Code: 201,
        Headers: {"Content-Type": "application/json", "X-Made-By": "js"}
    }, session.meta_data);
}
function boom(request, session, config) { throw new Error("boom"); }
function spin(request, session, config) { while (true) {} }
"""

BLOB_JS = """
function fromBlob(request, session, config) {
    return TykJsResponse({Body: "made by a blob", Code: 202}, session.meta_data);
}
"""

PRE_JS = """
var rewrite = new TykJS.TykMiddleware.NewMiddleware({});
rewrite.NewProcessRequest(function(request, session, config) {
    request.SetHeaders["X-Js-Pre"] = "yes";
    request.SetHeaders["X-Seen-Url"] = request.URL;
    request.SetHeaders["X-Greeting"] = config.config_data.greeting;
    request.DeleteHeaders.push("X-Remove-Me");
    request.URL = request.URL.replace("/old", "/new");
    request.AddParams["added"] = "1";
    return rewrite.ReturnData(request, {});
});
"""

POST_JS = """
var visits = new TykJS.TykMiddleware.NewMiddleware({});
visits.NewProcessRequest(function(request, session, config) {
    var meta = session.meta_data || {};
    meta.visits = (meta.visits || 0) + 1;
    request.SetHeaders["X-Visits"] = String(meta.visits);
    request.SetHeaders["X-Plan"] = String(meta.plan);
    return visits.ReturnData(request, meta);
});
"""

BROKEN_JS = """
var broken = new TykJS.TykMiddleware.NewMiddleware({});
broken.NewProcessRequest(function(request, session, config) {
    throw new Error("broken on purpose");
});
"""

#: The helper the seed's ``login`` calls, written with Tyk's host function
#: for storing a key: the key named by the JWT's signature, the whole JWT in
#: its meta_data, the split-token policy applied.
CREATE_KEY_JS = """
function createKeyInsideTyk(signature, bodyObj) {
    var session = {
        "apply_policies": ["split"], "org_id": "test-org",
        "expires": Math.floor(Date.now() / 1000) + bodyObj.expires_in,
        "meta_data": {"jwt": bodyObj.access_token}
    };
    TykSetKeyData(signature, JSON.stringify(session), "0");
}
"""

VIRTUAL_ERROR = {"error": "Error during virtual endpoint execution. "
                          "Contact Administrator for more details."}


def virtual(path: str, method: str, function: str, **fields: Any) -> dict[str, Any]:
    entry = {"path": path, "method": method, "response_function_name": function,
             "function_source_type": "file", "function_source_uri": "middleware/virtual.js"}
    entry.update(fields)
    return entry


def with_version(**fields: Any) -> dict[str, Any]:
    return {"not_versioned": True, "versions": {"Default": {"name": "Default", **fields}}}


def otto(**hooks: Any) -> dict[str, Any]:
    return {"driver": "otto", **{kind: [{"name": name, "path": f"middleware/{file}",
                                         **extra} for name, file, extra in entries]
                                 for kind, entries in hooks.items()}}


def access(api_id: str) -> dict[str, Any]:
    return {api_id: {"api_id": api_id, "api_name": api_id, "versions": ["Default"]}}


def apis(make_api: Any, echo: Any, idp_url: str) -> list[dict[str, Any]]:
    return [
        make_api("virt", "/virt/", echo.base_url, config_data={"tier": "gold"},
                 version_data=with_version(extended_paths={"virtual": [
                     virtual("/json/{id}", "GET", "answer"),
                     virtual("/throw", "GET", "boom"),
                     virtual("/spin", "GET", "spin"),
                     {"path": "/blob", "method": "GET", "response_function_name": "fromBlob",
                      "function_source_type": "blob",
                      "function_source_uri": base64.b64encode(BLOB_JS.encode()).decode()},
                 ]})),
        make_api("pre", "/pre/", echo.base_url, config_data={"greeting": "hello"},
                 custom_middleware=otto(pre=[("rewrite", "pre.js", {})])),
        make_api("post", "/post/", echo.base_url, use_keyless=False, use_standard_auth=True,
                 custom_middleware=otto(post=[("visits", "post.js",
                                               {"require_session": True})])),
        make_api("broken", "/broken/", echo.base_url,
                 custom_middleware=otto(pre=[("broken", "broken.js", {})])),
        make_api("plain", "/plain/", echo.base_url),
        make_api("login", "/login/", echo.base_url, version_data=with_version(
            extended_paths={"virtual": [virtual("/token", "POST", "login",
                                                function_source_uri="middleware/login.js")]})),
        make_api("protected", "/protected/", echo.base_url, use_keyless=False,
                 use_standard_auth=True, version_data=with_version(
                     global_headers={"Authorization": "Bearer $tyk_meta.jwt"})),
    ]


def write_scripts(gw: Any, idp_url: str) -> Path:
    directory = gw.root / "middleware"
    directory.mkdir(exist_ok=True)
    for name, text in (("virtual.js", VIRTUAL_JS), ("pre.js", PRE_JS), ("post.js", POST_JS),
                       ("broken.js", BROKEN_JS)):
        (directory / name).write_text(text)
    # The seed's script as is, but for the IdP's address.
    login = SEED_LOGIN.replace("https://keycloak-host", idp_url)
    assert login != SEED_LOGIN
    (directory / "login.js").write_text(login + CREATE_KEY_JS)
    return directory


@pytest.fixture(scope="module")
def idp() -> Iterator[_Idp]:
    server = _Idp()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="module")
def gw(module_gateway_factory: Any, make_api: Any, echo: Any, idp: _Idp) -> Any:
    gateway = module_gateway_factory(apis(make_api, echo, idp.url), start=False,
                                     enable_jsvm=True, jsvm_timeout=1)
    (gateway.root / "policies.json").write_text(json.dumps({"split": {
        "id": "split", "org_id": ORG, "rate": 1000, "per": 1, "quota_max": -1,
        "access_rights": access("protected")}}))
    write_scripts(gateway, idp.url)
    gateway.start()
    return gateway


def upstream(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def sent_headers(seen: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in seen["headers"]}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    return [child for child, _state in children_of(pid)]


def children_of(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is ``pid`` and their states ("Z": a zombie)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            children.append((int(entry), fields[0]))
    return children


# -- virtual endpoints ----------------------------------------------------------------


def test_virtual_endpoint_answers_json_with_code_and_headers(gw: Any) -> None:
    resp = requests.get(gw.url("/virt/json/7?q=1&q=2"), headers={"User-Agent": "tester"},
                        timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Made-By"] == "js"
    assert resp.json() == {"url": "/virt/json/7?q=1&q=2", "params": {"q": ["1", "2"]},
                           "tier": "gold", "agent": ["tester"]}


def test_virtual_endpoint_only_for_its_method_and_path(gw: Any, echo: Any) -> None:
    # Another method or path goes to the upstream.
    seen = upstream(requests.post(gw.url("/virt/json/7"), data=b"x", timeout=10))
    assert seen["method"] == "POST" and seen["path"] == "/json/7"
    assert upstream(requests.get(gw.url("/virt/other"), timeout=10))["path"] == "/other"


def test_blob_virtual_endpoint(gw: Any) -> None:
    resp = requests.get(gw.url("/virt/blob"), timeout=10)
    assert resp.status_code == 202
    assert resp.text == "made by a blob"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_throwing_virtual_endpoint_answers_500_and_the_gateway_serves_on(gw: Any) -> None:
    for _ in range(3):
        resp = requests.get(gw.url("/virt/throw"), timeout=10)
        assert resp.status_code == 500
        assert resp.json() == VIRTUAL_ERROR
    assert requests.get(gw.url("/virt/json/1"), timeout=10).status_code == 201
    assert upstream(requests.get(gw.url("/plain/x"), timeout=10))["path"] == "/x"
    assert "boom" in gw.logs()


def test_runaway_script_is_stopped_by_jsvm_timeout_while_others_are_served(gw: Any) -> None:
    outcome: dict[str, Any] = {}

    def spin() -> None:
        started = time.monotonic()
        resp = requests.get(gw.url("/virt/spin"), timeout=15)
        outcome["status"] = resp.status_code
        outcome["body"] = resp.json()
        outcome["elapsed"] = time.monotonic() - started
        outcome["done"] = time.monotonic()

    spinner = threading.Thread(target=spin)
    spinner.start()
    time.sleep(0.2)
    # While the script spins (in one of the API's two workers), the gateway
    # answers: a proxied request, and the same API's other worker.
    served = []
    for _ in range(3):
        assert upstream(requests.get(gw.url("/plain/meanwhile"), timeout=5))["path"] \
            == "/meanwhile"
        assert requests.get(gw.url("/virt/json/2"), timeout=5).status_code == 201
        served.append(time.monotonic())
    spinner.join(20)
    assert not spinner.is_alive()
    assert outcome["status"] == 500 and outcome["body"] == VIRTUAL_ERROR
    # jsvm_timeout is 1 s.
    assert 0.9 <= outcome["elapsed"] < 5, outcome
    assert max(served) < outcome["done"]
    # The killed worker is replaced: the endpoints still answer.
    assert requests.get(gw.url("/virt/json/3"), timeout=5).status_code == 201
    assert "timed out" in gw.logs()


# -- middleware -------------------------------------------------------------------------


def test_pre_middleware_sets_and_deletes_headers_rewrites_url_and_adds_a_param(gw: Any) -> None:
    seen = upstream(requests.get(gw.url("/pre/old/path?keep=1"), timeout=10,
                                 headers={"X-Remove-Me": "x", "X-Keep": "k"}))
    headers = sent_headers(seen)
    assert headers["x-js-pre"] == "yes"
    assert headers["x-seen-url"] == "/pre/old/path?keep=1"
    assert headers["x-greeting"] == "hello"
    assert headers["x-keep"] == "k"
    assert "x-remove-me" not in headers
    assert seen["path"] == "/new/path"
    assert sorted(seen["query"].split("&")) == ["added=1", "keep=1"]


def test_pipelined_requests_through_a_js_hook_stay_in_order(gw: Any, raw: Any) -> None:
    count = 20
    with raw(gw.port) as conn:
        conn.send(b"".join(
            f"GET /pre/old/{i}?i={i} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode()
            for i in range(count)))
        for i in range(count):
            resp = conn.read_response()
            assert resp.status == 200, resp.body
            seen = resp.json()
            assert seen["path"] == f"/new/{i}"
            assert sorted(seen["query"].split("&")) == ["added=1", f"i={i}"]
            assert sent_headers(seen)["x-seen-url"] == f"/pre/old/{i}?i={i}"


def test_post_middleware_with_session_saves_session_meta(gw: Any) -> None:
    created = requests.post(gw.url("/tyk/keys/create"), headers={ADMIN: gw.secret}, timeout=10,
                            json={"org_id": ORG, "rate": 1000, "per": 1, "quota_max": -1,
                                  "access_rights": access("post"),
                                  "meta_data": {"plan": "gold"}})
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    for visit in (1, 2, 3):
        headers = sent_headers(upstream(requests.get(gw.url("/post/x"), timeout=10,
                                                     headers={"Authorization": key})))
        assert headers["x-visits"] == str(visit)
        assert headers["x-plan"] == "gold"
    stored = requests.get(gw.url(f"/tyk/keys/{key}"), headers={ADMIN: gw.secret}, timeout=10)
    assert stored.status_code == 200, stored.text
    assert stored.json()["meta_data"] == {"plan": "gold", "visits": 3}
    # Without a key the hook never runs.
    assert requests.get(gw.url("/post/x"), timeout=10).status_code == 401


def test_throwing_middleware_answers_500_and_the_gateway_serves_on(gw: Any) -> None:
    for _ in range(3):
        resp = requests.get(gw.url("/broken/x"), timeout=10)
        assert resp.status_code == 500
        assert resp.json() == {"error": "Internal Server Error"}
    assert "broken on purpose" in gw.logs()
    assert sent_headers(upstream(requests.get(gw.url("/pre/y"), timeout=10)))["x-js-pre"] \
        == "yes"


# -- the seed's split token ---------------------------------------------------------------


def test_seed_split_token_login_as_a_gateway_virtual_endpoint(gw: Any, idp: _Idp) -> None:
    form = {"grant_type": "client_credentials", "client_id": "client-a",
            "client_secret": "secret-a"}
    resp = requests.post(gw.url("/login/token"), data=form, timeout=10)
    assert resp.status_code == 200, resp.text
    grant = resp.json()
    opaque = grant["access_token"]
    assert opaque and "." not in opaque
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 600
    assert not {"refresh_token", "refresh_expires_in", "foo"} & set(grant)

    # The key TykSetKeyData stored is named by the signature.
    stored = requests.get(gw.url(f"/tyk/keys/{opaque}"), headers={ADMIN: gw.secret},
                          timeout=10)
    assert stored.status_code == 200, stored.text
    assert stored.json()["apply_policies"] == ["split"]

    proxied = upstream(requests.get(gw.url("/protected/data"), timeout=10,
                                    headers={"Authorization": opaque}))
    sent = [v for k, v in proxied["headers"] if k.lower() == "authorization"]
    assert len(sent) == 1 and sent[0].startswith("Bearer ")
    full = sent[0][len("Bearer "):]
    assert full.rsplit(".", 1)[1] == opaque
    assert jwt.decode(full, idp.key, algorithms=["HS256"])["sub"] == "client-a"

    refused = requests.post(gw.url("/login/token"), timeout=10,
                            data={**form, "client_secret": "wrong"})
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid_client"}
    assert requests.get(gw.url("/protected/data"), headers={"Authorization": "nope"},
                        timeout=10).status_code in (401, 403)


# -- reloads -------------------------------------------------------------------------------

RELOAD_PRE = """
var stamp = new TykJS.TykMiddleware.NewMiddleware({});
stamp.NewProcessRequest(function(request, session, config) {
    request.SetHeaders["X-Script"] = "%s";
    return stamp.ReturnData(request, {});
});
"""

RELOAD_VIRTUAL = """
function version(request, session, config) {
    return TykJsResponse({Body: "%s", Code: 200}, {});
}
"""


def reload_apis(make_api: Any, echo: Any, generation: int) -> list[dict[str, Any]]:
    return [
        make_api("stamp", "/stamp/", echo.base_url, config_data={"generation": generation},
                 custom_middleware=otto(pre=[("stamp", "stamp.js", {})])),
        make_api("ver", "/ver/", echo.base_url, config_data={"generation": generation},
                 version_data=with_version(extended_paths={"virtual": [virtual(
                     "/version", "GET", "version",
                     function_source_uri="middleware/version.js")]})),
    ]


@pytest.fixture
def reloading(gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    gateway = gateway_factory(reload_apis(make_api, echo, 0), start=False, enable_jsvm=True)
    directory = gateway.root / "middleware"
    directory.mkdir()
    (directory / "stamp.js").write_text(RELOAD_PRE % "one")
    (directory / "version.js").write_text(RELOAD_VIRTUAL % "one")
    gateway.start()
    return gateway


def use_both(gw: Any) -> tuple[str, str]:
    """Call the hook and the virtual endpoint, several at once (so that each
    step starts its workers); their answers."""
    results: list[tuple[str, str]] = []

    def call() -> None:
        stamp = sent_headers(upstream(requests.get(gw.url("/stamp/x"), timeout=10)))
        version = requests.get(gw.url("/ver/version"), timeout=10)
        assert version.status_code == 200, version.text
        results.append((stamp["x-script"], version.text))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 4 and len(set(results)) == 1, results
    return results[0]


def settle(pid: int, expected: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    children = child_pids(pid)
    while len(children) > expected and time.monotonic() < deadline:
        time.sleep(0.1)
        children = child_pids(pid)
    return children


def test_workers_do_not_pile_up_across_reloads(reloading: Any, make_api: Any,
                                               echo: Any) -> None:
    gw = reloading
    assert use_both(gw) == ("one", "one")
    before = settle(gw.pid, 0, timeout=0.5)
    assert before, "the JavaScript steps started no worker process"
    for generation in (1, 2, 3):
        # A changed definition rebuilds every API's chain (new JS runtimes).
        for api in reload_apis(make_api, echo, generation):
            gw.write_api(api)
        resp = gw.reload()
        assert resp.status_code == 200, resp.text
        assert use_both(gw) == ("one", "one")
    after = settle(gw.pid, len(before))
    assert len(after) <= len(before), (before, children_of(gw.pid))
    # The first configuration's workers went with it.
    assert not set(before) & set(after), (before, children_of(gw.pid))


def test_reload_with_a_changed_script_changes_the_behaviour(reloading: Any) -> None:
    # Only the scripts change: the reload sees it by the plugin files'
    # fingerprint (hooks' paths and virtual endpoints' files).
    gw = reloading
    assert use_both(gw) == ("one", "one")
    (gw.root / "middleware" / "stamp.js").write_text(RELOAD_PRE % "two")
    (gw.root / "middleware" / "version.js").write_text(RELOAD_VIRTUAL % "two")
    assert gw.reload().status_code == 200
    assert use_both(gw) == ("two", "two")


def test_reload_with_a_changed_definition_reads_the_changed_script(
        reloading: Any, make_api: Any, echo: Any) -> None:
    gw = reloading
    assert use_both(gw) == ("one", "one")
    (gw.root / "middleware" / "stamp.js").write_text(RELOAD_PRE % "two")
    (gw.root / "middleware" / "version.js").write_text(RELOAD_VIRTUAL % "two")
    for api in reload_apis(make_api, echo, 1):
        gw.write_api(api)
    assert gw.reload().status_code == 200
    assert use_both(gw) == ("two", "two")


def test_reload_with_a_broken_script_keeps_the_configuration_in_service(
        reloading: Any, make_api: Any, echo: Any) -> None:
    gw = reloading
    (gw.root / "middleware" / "stamp.js").write_text("var stamp = (;\n")
    for api in reload_apis(make_api, echo, 1):
        gw.write_api(api)
    gw.reload()
    assert use_both(gw) == ("one", "one")
    # The definition is refused with the file and line of the error.
    assert "stamp.js:1: SyntaxError" in gw.logs()
    assert "Traceback" not in gw.logs()


def test_a_script_that_does_not_compile_refuses_the_start(gateway_factory: Any, make_api: Any,
                                                          echo: Any) -> None:
    gw = gateway_factory(reload_apis(make_api, echo, 0), start=False, enable_jsvm=True)
    directory = gw.root / "middleware"
    directory.mkdir()
    (directory / "stamp.js").write_text("var ok = 1;\nvar stamp = (;\n")
    (directory / "version.js").write_text(RELOAD_VIRTUAL % "one")
    gw.start(wait=False)
    assert gw.proc is not None
    assert gw.proc.wait(30) == 2
    gw.expected_exit = None
    logs = gw.logs()
    assert "custom_middleware.pre[0].path" in logs and "stamp.js:2: SyntaxError" in logs
    assert "Traceback" not in logs


def test_js_plugins_need_enable_jsvm(gateway_factory: Any, make_api: Any, echo: Any) -> None:
    gw = gateway_factory(reload_apis(make_api, echo, 0), start=False)
    directory = gw.root / "middleware"
    directory.mkdir()
    (directory / "stamp.js").write_text(RELOAD_PRE % "one")
    (directory / "version.js").write_text(RELOAD_VIRTUAL % "one")
    gw.start(wait=False)
    assert gw.proc is not None
    assert gw.proc.wait(30) == 2
    gw.expected_exit = None
    assert "enable_jsvm: true" in gw.logs()
