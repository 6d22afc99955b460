"""API definitions on a real gateway process: plugins refused with 501, and
what the gateway says about definitions and its config -- once per change,
not on every reload."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import requests

HOOK = {"name": "check_access", "path": "middleware.py", "require_session": False}


def stderr_of(gw: Any) -> str:
    return str(gw.stderr_path.read_text(errors="replace"))


def count(gw: Any, text: str) -> int:
    return stderr_of(gw).count(text)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def stays(check: Callable[[], bool], seconds: float = 1.0) -> bool:
    """Whether ``check`` holds all along ``seconds`` (for what must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.05)
    return check()


# ----------------------------------------------------------------------------- plugins


def test_api_with_plugins_of_another_driver_is_refused_with_501(gateway_factory, make_api,
                                                               echo):
    gw = gateway_factory(apis=[
        make_api("hooked", "/hooked/", echo.base_url,
                 custom_middleware={"driver": "grpc", "pre": [HOOK]}),
        # All disabled, or the Dashboard's empty sections: nothing runs, served.
        make_api("off", "/off/", echo.base_url,
                 custom_middleware={"pre": [{**HOOK, "disabled": True}],
                                    "auth_check": {"name": "", "path": ""}}),
    ])
    before = echo.count()["requests"]
    resp = requests.get(gw.url("/hooked/x"), timeout=10)
    assert resp.status_code == 501
    assert resp.headers["content-type"] == "application/json"
    assert "custom_middleware.driver=grpc" in resp.json()["error"]
    assert echo.count()["requests"] == before, "a refused request reached the upstream"
    assert requests.get(gw.url("/off/x"), timeout=10).status_code == 200

    # Said once, as a refusal: not also as an ignored field.
    assert count(gw, "'hooked' is refused") == 1
    assert "ignored: custom_middleware" not in stderr_of(gw)
    assert "'off'" not in stderr_of(gw)


# ----------------------------------------------------------------------------- warnings


def test_warnings_are_said_once_per_change(gateway_factory, make_api, echo):
    noisy = make_api("noisy", "/noisy/", echo.base_url, enable_batch_request_support=True,
                     use_standard_auht=True)
    gw = gateway_factory(apis=[noisy])
    ignored = "'noisy': fields not implemented yet, ignored: enable_batch_request_support"
    unknown = "'noisy': use_standard_auht: unknown field (did you mean use_standard_auth?)"
    assert (count(gw, ignored), count(gw, unknown)) == (1, 1)

    # Reloads that change nothing say nothing, whatever asks for them.
    assert gw.reload().status_code == 200
    gw.signal(signal.SIGHUP)
    assert gw.reload().status_code == 200
    assert stays(lambda: (count(gw, ignored), count(gw, unknown)) == (1, 1), 0.5)
    assert count(gw, "reloaded") == 0

    # A new definition: only it is reported.
    gw.write_api(make_api("other", "/other/", echo.base_url, proxi={}))
    assert gw.reload().status_code == 200
    assert count(gw, "'other': proxi: unknown field (did you mean proxy?)") == 1
    assert (count(gw, ignored), count(gw, unknown)) == (1, 1)
    assert count(gw, "reloaded: 2 APIs in service") == 1

    # A changed definition is reported again, the unchanged one is not.
    gw.write_api({**noisy, "name": "Noisy, renamed"})
    assert gw.reload().status_code == 200
    assert (count(gw, ignored), count(gw, unknown)) == (2, 2)
    assert count(gw, "'other': proxi") == 1


def test_refused_api_is_said_once_without_its_settings(gateway_factory, make_api, echo):
    gw = gateway_factory(apis=[make_api(
        "oidc", "/oidc/", echo.base_url, use_keyless=False, use_openid=True,
        openid_options={"segregate_by_client": True})])
    assert requests.get(gw.url("/oidc/x"), timeout=10).status_code == 501
    text = stderr_of(gw)
    assert text.count(
        "'oidc' is refused (its requests get 501): it enables use_openid") == 1
    assert "segregate" not in text
    assert "ignored" not in text


def test_config_unknown_and_ignored_fields_are_logged_once(gateway_factory):
    gw = gateway_factory(worker=2, enable_custom_domains=True)
    text = stderr_of(gw)
    assert text.count("worker: unknown field (did you mean workers?)") == 1
    assert text.count("fields not implemented by fastgate, ignored: enable_custom_domains") == 1
    assert gw.reload().status_code == 200
    assert stays(lambda: count(gw, "worker: unknown field") == 1, 0.3)


def test_check_prints_unknown_fields(gateway_factory, gateway_cmd, make_api, echo):
    import subprocess

    gw = gateway_factory(start=False, storage={"type": "memory", "hots": "x"})
    gw.write_api(make_api("u", "/u/", echo.base_url, use_standard_auht=True))
    result = subprocess.run(gateway_cmd("check", "--config", str(gw.config_path)),
                            capture_output=True, text=True, timeout=10, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "storage.hots: unknown field (did you mean hosts?)" in result.stderr
    assert "'u': use_standard_auht: unknown field (did you mean use_standard_auth?)" \
        in result.stderr


# ----------------------------------------------------------------------------- /tyk/apis


def test_rest_api_change_reloads_once(gateway_factory, make_api, echo, admin_for, storage):
    # The worker reloads for its own change, then its own "apis" event
    # reaches it (through the store): that one must find nothing new.
    gw = gateway_factory(storage=storage)
    admin = admin_for(gw)
    resp = admin.call("POST", "/tyk/apis", make_api("new", "/new/", echo.base_url,
                                                     enable_batch_request_support=True))
    assert resp.status_code == 200, resp.text
    assert requests.get(gw.url("/new/x"), timeout=10).status_code == 200
    assert stays(lambda: count(gw, "reloaded") == 1)
    assert count(gw, "'new': fields not implemented yet") == 1

    assert admin.call("DELETE", "/tyk/apis/new").status_code == 200
    assert wait_until(lambda: requests.get(gw.url("/new/x"), timeout=10).status_code == 404)
    assert stays(lambda: count(gw, "reloaded") == 2)


def test_rest_api_refuses_a_case_variant_and_accepts_unknown_fields(gateway_factory, make_api,
                                                                     echo, admin_for):
    gw = gateway_factory()
    admin = admin_for(gw)
    bad = make_api("bad", "/bad/", echo.base_url, Use_Keyless=False)
    resp = admin.call("POST", "/tyk/apis", bad)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(
        "Validation of API Definition failed. Reason: Use_Keyless: Tyk reads this as use_keyless")
    assert not (gw.app_dir / "bad.json").exists()
    odd = make_api("odd", "/odd/", echo.base_url, x_team="payments")
    assert admin.call("POST", "/tyk/apis", odd).status_code == 200
    assert requests.get(gw.url("/odd/x"), timeout=10).status_code == 200
    assert wait_until(lambda: count(gw, "'odd': x_team: unknown field") == 1)
