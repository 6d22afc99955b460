"""JavaScript custom authentication (``auth_check`` with driver otto,
``ReturnAuthData``) on a real gateway: the session the script gives is the
request's, stored under the key and counted against its quota."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import requests

FILES = Path(__file__).parent / "files"


def test_js_auth_check_gives_the_session(gateway_factory: Any, make_api: Any,
                                         echo: Any) -> None:
    api = make_api("js", "/js/", echo.base_url, use_keyless=False,
                   custom_plugin_auth_enabled=True,
                   custom_middleware={"driver": "otto", "auth_check": {
                       "name": "jsAuth", "path": "middleware/jsauth.js"}},
                   version_data={"not_versioned": True, "versions": {"Default": {
                       "name": "Default", "global_headers": {"X-Who": "$tyk_meta.who"}}}})
    gw = gateway_factory([api], start=False, enable_jsvm=True)
    (gw.root / "middleware").mkdir()
    shutil.copy(FILES / "jsauth.js", gw.root / "middleware" / "jsauth.js")
    gw.start()
    resp = requests.get(gw.url("/js/x"), timeout=10)
    assert resp.status_code == 403
    assert resp.json() == {"error": "bad token"}
    resp = requests.get(gw.url("/js/x"), headers={"Authorization": "js-secret"}, timeout=10)
    assert resp.status_code == 200, resp.text
    headers = {name.lower(): value for name, value in resp.json()["headers"]}
    assert headers["x-who"] == "js"
    # quota_max 2: the session is the same stored key on every request.
    statuses = [requests.get(gw.url("/js/x"), headers={"Authorization": "js-secret"},
                             timeout=10).status_code for _ in range(2)]
    assert statuses == [200, 403]
    stored = requests.get(gw.url("/tyk/keys/js-secret"),
                          headers={"X-Tyk-Authorization": gw.secret}, timeout=10)
    assert stored.status_code == 200
    assert stored.json()["meta_data"] == {"who": "js"}
