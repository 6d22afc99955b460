"""Python plugins written as a Tyk user writes them (``files/``), on a real
gateway over real sockets: custom authentication, request hooks rewriting
headers, URL, query and body, response hooks, answers from
``return_overrides``, a hook that raises, one that blocks (in the thread
pool), an ``async`` hook asking another service, plugin data in the store,
the ``id_extractor`` cache, and plugins that fail to load."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

FILES = Path(__file__).parent / "files"
TOKEN = "47a0c79c427728b3df4af62b9228c8ae"


def plugin_dir(gw: Any) -> Path:
    directory = gw.root / "middleware"
    directory.mkdir(exist_ok=True)
    for file in FILES.glob("*.py"):
        shutil.copy(file, directory / file.name)
    return directory


def hook(name: str, file: str = "hooks.py", **fields: Any) -> dict[str, Any]:
    return {"name": name, "path": f"middleware/{file}", **fields}


def auth_api(make_api: Any, echo: Any, **fields: Any) -> dict[str, Any]:
    return make_api(
        "auth", "/auth/", echo.base_url, use_keyless=False, custom_plugin_auth_enabled=True,
        custom_middleware={"driver": "python",
                           "auth_check": hook("MyAuthMiddleware", "auth.py")},
        version_data={"not_versioned": True, "versions": {"Default": {
            "name": "Default", "global_headers": {"X-Plan": "$tyk_meta.plan"}}}},
        **fields)


def apis(make_api: Any, echo: Any) -> list[dict[str, Any]]:
    lookup = {"host": "127.0.0.1", "port": echo.port, "greeting": "hello"}
    return [
        auth_api(make_api, echo),
        make_api("pre", "/pre/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("MyPreMiddleware")],
            "post": [hook("MyPostMiddleware")], "response": [hook("ResponseHook")]},
            config_data={"greeting": "hello"}),
        make_api("refuse", "/refuse/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Refuse")]}),
        make_api("broken", "/broken/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Broken")]}),
        make_api("broken-auth", "/broken-auth/", echo.base_url, use_keyless=False,
                 custom_plugin_auth_enabled=True, custom_middleware={
                     "driver": "python", "auth_check": {"name": "BrokenAuth", "path":
                                                        "middleware/hooks.py"}}),
        make_api("threaded", "/threaded/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Blocking", run_in_thread=True)]}),
        make_api("onloop", "/onloop/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Blocking")]}),
        make_api("async", "/async/", echo.base_url, config_data=lookup, custom_middleware={
            "driver": "python", "pre": [hook("AsyncLookup")]}),
        make_api("counter", "/counter/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Counter")]}),
        make_api("disabled", "/disabled/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Broken", disabled=True)]}),
        make_api("extract", "/extract/", echo.base_url, use_keyless=False,
                 custom_plugin_auth_enabled=True, custom_middleware={
                     "driver": "python", "auth_check": hook("ExtractedAuth", "extractor.py"),
                     "id_extractor": {"extract_from": "header", "extract_with": "value",
                                      "extractor_config": {"header_name": "X-User"}}},
                 version_data={"not_versioned": True, "versions": {"Default": {
                     "name": "Default", "global_headers": {"X-Calls": "$tyk_meta.calls"}}}}),
    ]


@pytest.fixture(scope="module")
def gw(module_gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    gateway = module_gateway_factory(apis(make_api, echo), start=False,
                                     coprocess_options={"enable_coprocess": True,
                                                        "hook_time_budget": 0.1})
    plugin_dir(gateway)
    gateway.start()
    return gateway


def upstream(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def sent_headers(seen: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in seen["headers"]}


def test_auth_check_admits_the_token_the_plugin_accepts(gw: Any) -> None:
    resp = requests.get(gw.url("/auth/get"), timeout=10)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Forbidden"}
    resp = requests.get(gw.url("/auth/get"), headers={"Authorization": "wrong"}, timeout=10)
    assert resp.status_code == 403
    seen = upstream(requests.get(gw.url("/auth/get"), headers={"Authorization": TOKEN},
                                 timeout=10))
    # The session the plugin built is the request's: its metadata reaches
    # the global headers.
    assert sent_headers(seen)["x-plan"] == "gold"


def test_auth_check_session_is_persisted_with_its_quota(gw: Any) -> None:
    # quota_max 3 per hour, counted across requests: the session is the
    # same stored key every time (under the token, hashed).
    statuses = [requests.get(gw.url("/auth/q"), params={"auth": TOKEN}, timeout=10).status_code
                for _ in range(5)]
    # The first test used one or more of the three requests already.
    assert statuses.count(403) >= 2, statuses
    assert statuses[-1] == 403
    # Stored hashed (hash_keys is on by default): the raw token names no key.
    stored = requests.get(gw.url(f"/tyk/keys/{TOKEN}"),
                          headers={"X-Tyk-Authorization": gw.secret}, timeout=10)
    assert stored.status_code == 200, stored.text
    assert stored.json()["quota_max"] == 3


def test_pre_hook_rewrites_headers_url_and_query(gw: Any) -> None:
    seen = upstream(requests.get(
        gw.url("/pre/old/path?keep=1&secret=s"), timeout=10,
        headers={"X-Remove-Me": "x", "X-Keep": "k"}))
    headers = sent_headers(seen)
    assert headers["x-plugin-pre"] == "yes"
    assert "x-remove-me" not in headers
    assert headers["x-keep"] == "k"
    assert seen["path"] == "/new/path"
    assert sorted(seen["query"].split("&")) == ["added=1", "keep=1"]


def test_post_hook_sees_spec_and_config_and_changes_the_body(gw: Any) -> None:
    seen = upstream(requests.post(gw.url("/pre/echo"), data=b"quiet words", timeout=10))
    headers = sent_headers(seen)
    assert headers["x-api-id"] == "pre"
    assert headers["x-config"] == "hello"
    assert seen["body"] == "QUIET WORDS"
    assert headers["content-length"] == str(len("QUIET WORDS"))


def test_post_hook_changes_a_chunked_body(gw: Any) -> None:
    def chunks() -> Any:
        yield b"chunked "
        yield b"words"

    seen = upstream(requests.post(gw.url("/pre/echo"), data=chunks(), timeout=10))
    assert seen["body"] == "CHUNKED WORDS"


def test_a_body_larger_than_the_buffers_passes_through_unchanged(gw: Any, raw: Any) -> None:
    """1 MiB sent at once, without Expect: the hook sees no body, the body
    reaches the upstream as sent, and the connection serves on."""
    body = b"x" * (1 << 20)
    conn = raw(gw.port)
    conn.send(b"POST /pre/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body)
    resp = conn.read_response()
    assert resp.status == 200
    seen = resp.json()
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert conn.request(b"GET /pre/again HTTP/1.1\r\nHost: x\r\n\r\n").status == 200


def test_response_hook_adds_a_header_and_may_change_the_answer(gw: Any) -> None:
    resp = requests.get(gw.url("/pre/anything"), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["injectedkey"] == "injectedvalue"
    resp = requests.get(gw.url("/pre/status/418"), timeout=10)
    assert resp.status_code == 200
    assert resp.content == b"teapot no more"
    assert resp.headers["injectedkey"] == "injectedvalue"


def test_return_overrides_answer_the_request(gw: Any) -> None:
    resp = requests.get(gw.url("/refuse/x"), headers={"X-Deny": "1"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json() == {"error": "denied by plugin"}
    assert resp.headers["X-Why"] == "plugin"
    resp = requests.get(gw.url("/refuse/x"), headers={"X-Answer": "1"}, timeout=10)
    assert resp.status_code == 200
    assert resp.text == "answered by plugin"
    assert resp.headers["Content-Type"] == "text/plain"
    upstream(requests.get(gw.url("/refuse/x"), timeout=10))


def test_a_hook_that_raises_answers_500_and_the_gateway_serves_on(gw: Any) -> None:
    for _ in range(3):
        resp = requests.get(gw.url("/broken/x"), headers={"X-Break": "1"}, timeout=10)
        assert resp.status_code == 500
        assert resp.json() == {"error": "Middleware error"}
    upstream(requests.get(gw.url("/broken/x"), timeout=10))
    resp = requests.get(gw.url("/broken-auth/x"), headers={"X-Break": "1"}, timeout=10)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Key not authorised"}
    time.sleep(0.2)
    logs = gw.logs()
    assert "the plugin broke" in logs
    # Once per burst: three failures, one traceback.
    assert logs.count("ValueError: the plugin broke") == 2  # the pre hook's and auth_check's


def test_a_disabled_hook_does_not_run(gw: Any) -> None:
    upstream(requests.get(gw.url("/disabled/x"), headers={"X-Break": "1"}, timeout=10))


def test_a_blocking_hook_in_the_thread_pool_does_not_stall_others(gw: Any) -> None:
    done: list[float] = []

    def slow() -> None:
        started = time.monotonic()
        resp = requests.get(gw.url("/threaded/x"), headers={"X-Sleep": "1.5"}, timeout=10)
        assert sent_headers(upstream(resp))["x-slept"] == "yes"
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    upstream(requests.get(gw.url("/counter/x"), timeout=10))
    quick = time.monotonic() - started
    thread.join()
    assert done and done[0] >= 1.5
    assert quick < 1.0, f"a request waited {quick:.2f}s behind a blocking hook in the pool"


def test_a_slow_hook_on_the_loop_is_reported(gw: Any) -> None:
    upstream(requests.get(gw.url("/onloop/x"), headers={"X-Sleep": "0.3"}, timeout=10))
    time.sleep(0.2)
    assert "ran 3" in gw.logs() and "run_in_thread" in gw.logs()


def test_an_async_hook_calls_another_service(gw: Any) -> None:
    seen = upstream(requests.get(gw.url("/async/x"), timeout=10))
    assert sent_headers(seen)["x-lookup-status"] == "201"


def test_plugin_data_is_kept_in_the_store(gw: Any) -> None:
    first = int(sent_headers(upstream(requests.get(gw.url("/counter/x"), timeout=10)))["x-count"])
    second = int(sent_headers(upstream(requests.get(gw.url("/counter/x"),
                                                    timeout=10)))["x-count"])
    assert second == first + 1


def test_id_extractor_skips_the_plugin_for_a_known_identity(gw: Any) -> None:
    resp = requests.get(gw.url("/extract/x"), timeout=10)
    assert resp.status_code == 400
    assert resp.json() == {"error": "Authorization field missing"}
    calls = [sent_headers(upstream(requests.get(gw.url("/extract/x"), headers={"X-User": "alice"},
                                                timeout=10)))["x-calls"] for _ in range(3)]
    # Called once: later requests use the stored session until its deadline.
    assert calls == ["1", "1", "1"]
    resp = requests.get(gw.url("/extract/x"), headers={"X-User": "bob"}, timeout=10)
    assert resp.status_code == 403


def test_pipelined_requests_through_hooks_stay_in_order(gw: Any, raw: Any) -> None:
    conn = raw(gw.port)
    conn.send(b"".join(
        f"GET /async/{i} HTTP/1.1\r\nHost: x\r\n\r\nGET /pre/old/{i} HTTP/1.1\r\nHost: x\r\n\r\n"
        .encode() for i in range(3)))
    for i in range(3):
        first = conn.read_response()
        second = conn.read_response()
        assert first.status == 200 and second.status == 200
        assert first.json()["path"] == f"/{i}"
        assert second.json()["path"] == f"/new/{i}"


# -- loading --------------------------------------------------------------------------------


def test_a_plugin_with_a_syntax_error_is_refused_naming_file_and_line(
        gateway_factory: Any, make_api: Any, echo: Any) -> None:
    gw = gateway_factory([make_api("ok", "/ok/", echo.base_url)],
                         coprocess_options={"enable_coprocess": True})
    directory = plugin_dir(gw)
    (directory / "bad.py").write_text("from tyk.decorators import *\n\n@Hook\ndef f(a, b, c)\n")
    gw.write_api(make_api("bad", "/bad/", echo.base_url, custom_middleware={
        "driver": "python", "pre": [hook("f", "bad.py")]}))
    resp = gw.reload()
    assert resp.status_code == 500
    message = resp.json()["message"]
    assert "bad.py:4: SyntaxError" in message, message
    assert "custom_middleware.pre[0].name" in message
    # The configuration in service stays.
    assert requests.get(gw.url("/ok/x"), timeout=10).status_code == 200
    assert requests.get(gw.url("/bad/x"), timeout=10).status_code == 404


def test_a_plugin_that_raises_on_import_or_lacks_the_hook_is_refused(
        gateway_factory: Any, make_api: Any, echo: Any) -> None:
    gw = gateway_factory([make_api("ok", "/ok/", echo.base_url)],
                         coprocess_options={"enable_coprocess": True})
    directory = plugin_dir(gw)
    (directory / "raises.py").write_text("import os\n\nos.environ['NOPE_NOT_SET_X']\n")
    gw.write_api(make_api("bad", "/bad/", echo.base_url, custom_middleware={
        "driver": "python", "pre": [hook("f", "raises.py")]}))
    resp = gw.reload()
    assert resp.status_code == 500
    assert "raises.py:3: KeyError" in resp.json()["message"]
    gw.write_api(make_api("bad", "/bad/", echo.base_url, custom_middleware={
        "driver": "python", "pre": [hook("Missing")]}))
    resp = gw.reload()
    assert resp.status_code == 500
    assert "no hook named 'Missing'" in resp.json()["message"]
    assert requests.get(gw.url("/ok/x"), timeout=10).status_code == 200


def test_python_plugins_need_enable_coprocess(gateway_factory: Any, make_api: Any,
                                              echo: Any) -> None:
    gw = gateway_factory([make_api("ok", "/ok/", echo.base_url)])
    plugin_dir(gw)
    gw.write_api(make_api("p", "/p/", echo.base_url, custom_middleware={
        "driver": "python", "pre": [hook("MyPreMiddleware")]}))
    resp = gw.reload()
    assert resp.status_code == 500
    assert "coprocess_options.enable_coprocess" in resp.json()["message"]
    assert requests.get(gw.url("/p/x"), timeout=10).status_code == 404


def test_reload_picks_up_a_changed_plugin(gateway_factory: Any, make_api: Any,
                                          echo: Any) -> None:
    gw = gateway_factory([], start=False, coprocess_options={"enable_coprocess": True})
    directory = plugin_dir(gw)
    source = ("from tyk.decorators import *\n\n@Hook\ndef Tag(request, session, spec):\n"
              "    request.add_header('X-Version', '{v}')\n    return request, session\n")
    (directory / "tag.py").write_text(source.format(v="one"))
    gw.write_api(make_api("tag", "/tag/", echo.base_url, custom_middleware={
        "driver": "python", "pre": [hook("Tag", "tag.py")]}))
    gw.start()
    assert sent_headers(upstream(requests.get(gw.url("/tag/x"), timeout=10)))["x-version"] == "one"
    (directory / "tag.py").write_text(source.format(v="two"))
    assert gw.reload().status_code == 200
    assert sent_headers(upstream(requests.get(gw.url("/tag/x"), timeout=10)))["x-version"] == "two"


def test_other_drivers_are_refused_with_501(gateway_factory: Any, make_api: Any,
                                            echo: Any) -> None:
    gw = gateway_factory([make_api("g", "/g/", echo.base_url, custom_middleware={
        "driver": "grpc", "pre": [{"name": "x"}]})])
    resp = requests.get(gw.url("/g/x"), timeout=10)
    assert resp.status_code == 501
    assert "custom_middleware.driver=grpc" in resp.json()["error"]


def test_custom_auth_and_plugin_data_on_each_store(gateway_factory: Any, make_api: Any,
                                                   echo: Any, storage: Any) -> None:
    """The session the plugin gives is stored (quota counted across requests)
    and plugin data kept, on the memory store and on Redis (a synchronous
    hook reaching Redis runs in the thread pool)."""
    gw = gateway_factory([
        auth_api(make_api, echo),
        make_api("counter", "/counter/", echo.base_url, custom_middleware={
            "driver": "python", "pre": [hook("Counter", run_in_thread=True)]}),
    ], start=False, storage=storage, coprocess_options={"enable_coprocess": True})
    plugin_dir(gw)
    gw.start()
    statuses = [requests.get(gw.url("/auth/q"), headers={"Authorization": TOKEN},
                             timeout=10).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 403, 403]
    counts = [int(sent_headers(upstream(requests.get(gw.url("/counter/x"), timeout=10)))
                  ["x-count"]) for _ in range(3)]
    assert counts == [1, 2, 3]


def test_hooks_from_a_downloaded_bundle(gateway_factory: Any, make_api: Any, echo: Any) -> None:
    """A bundle as ``tyk bundle build`` makes it: ``middleware.py`` importing
    a module of its own, the hooks named by the manifest (which replaces the
    definition's ``custom_middleware``)."""
    from tests.plugins.test_bundles import BundleServer, build_bundle

    middleware = (b"from tyk.decorators import *\nfrom helpers import TAG\n\n"
                  b"@Hook\ndef Tag(request, session, spec):\n"
                  b"    request.add_header('X-Bundle', TAG)\n    return request, session\n\n"
                  b"@Hook\ndef Auth(request, session, metadata, spec):\n"
                  b"    if request.get_header('Authorization') == 'bundle-token':\n"
                  b"        session.rate = 10.0\n        session.per = 1.0\n"
                  b"        metadata['token'] = 'bundle-token'\n"
                  b"    return request, session, metadata\n")
    bundle = build_bundle({"middleware.py": middleware, "helpers.py": b"TAG = 'from-bundle'\n"},
                          {"driver": "python", "pre": [{"name": "Tag"}],
                           "auth_check": {"name": "Auth"}})
    server = BundleServer()
    try:
        server.put("tagged.zip", bundle)
        gw = gateway_factory(
            [make_api("b", "/b/", echo.base_url, use_keyless=False,
                      custom_plugin_auth_enabled=True, custom_middleware_bundle="tagged.zip",
                      custom_middleware={"driver": "python", "pre": [{"name": "Ignored"}]})],
            enable_bundle_downloader=True, bundle_base_url=server.base_url,
            coprocess_options={"enable_coprocess": True})
        assert requests.get(gw.url("/b/x"), timeout=10).status_code == 403
        seen = upstream(requests.get(gw.url("/b/x"), headers={"Authorization": "bundle-token"},
                                     timeout=10))
        assert sent_headers(seen)["x-bundle"] == "from-bundle"
    finally:
        server.stop()


def test_custom_auth_chained_with_an_auth_token(gateway_factory: Any, make_api: Any,
                                                echo: Any) -> None:
    """Multi-auth: the plugin's ``auth_check`` and an auth token must both
    pass; ``base_identity_provided_by: custom_auth`` makes the plugin's
    session the request's (its metadata reaches the upstream)."""
    api = auth_api(make_api, echo, use_standard_auth=True,
                   base_identity_provided_by="custom_auth",
                   auth_configs={"authToken": {"auth_header_name": "X-Key"}})
    gw = gateway_factory([api], start=False, coprocess_options={"enable_coprocess": True})
    plugin_dir(gw)
    gw.start()
    created = requests.post(gw.url("/tyk/keys/create"), headers={"X-Tyk-Authorization": gw.secret},
                            json={"org_id": "test-org", "rate": 100, "per": 1,
                                  "meta_data": {"plan": "from-key"},
                                  "access_rights": {"auth": {"api_id": "auth", "api_name": "auth",
                                                             "versions": ["Default"]}}},
                            timeout=10)
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    assert requests.get(gw.url("/auth/x"), headers={"X-Key": key}, timeout=10).status_code == 403
    assert requests.get(gw.url("/auth/x"), headers={"Authorization": TOKEN},
                        timeout=10).status_code == 401
    seen = upstream(requests.get(gw.url("/auth/x"), headers={"Authorization": TOKEN,
                                                             "X-Key": key}, timeout=10))
    assert sent_headers(seen)["x-plan"] == "gold"
