"""allowed_urls matching modes on a real gateway: http_server_options'
enable_path_prefix_matching and enable_path_suffix_matching (Tyk 5.5+)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

KEY = "matchkey1"
SESSION = {
    "allowance": 1000, "rate": 1000, "per": 1, "quota_max": -1, "org_id": "",
    "access_rights": {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"],
                            "allowed_urls": [{"url": "/users", "methods": ["GET"]}]}},
}
OK, DENIED = 200, 403

# request path -> status by mode; the API listens on /p/.
PATHS: dict[str, dict[str, int]] = {
    "/p/users": {"default": OK, "prefix": OK, "suffix": OK, "both": OK},
    "/p/users/42": {"default": OK, "prefix": OK, "suffix": DENIED, "both": DENIED},
    "/p/admin/users": {"default": OK, "prefix": DENIED, "suffix": OK, "both": DENIED},
    "/p/x/users/42": {"default": OK, "prefix": DENIED, "suffix": DENIED, "both": DENIED},
}
MODES = {
    "default": {},
    "prefix": {"enable_path_prefix_matching": True},
    "suffix": {"enable_path_suffix_matching": True},
    "both": {"enable_path_prefix_matching": True, "enable_path_suffix_matching": True},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_allowed_urls_match_as_the_mode_says(gateway_factory, make_api, echo, admin_for,
                                             mode: str) -> None:
    api: dict[str, Any] = make_api("p", "/p/", echo.base_url, use_keyless=False)
    gw = gateway_factory(apis=[api], http_server_options=MODES[mode])
    admin_for(gw).add_key(KEY, SESSION)
    headers = {"Authorization": KEY}
    got = {path: requests.get(gw.url(path), headers=headers, timeout=10).status_code
           for path in PATHS}
    assert got == {path: by_mode[mode] for path, by_mode in PATHS.items()}
    if mode != "default":
        refused = requests.get(gw.url("/p/x/users/42"), headers=headers, timeout=10)
        assert refused.json() == {"error": "Access to this resource has been disallowed"}
    # The method is checked in every mode.
    assert requests.post(gw.url("/p/users"), headers=headers, timeout=10).status_code == DENIED
