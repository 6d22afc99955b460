"""Helpers of the OAuth flow tests: the login service's part of the
authorization-code flow, and raw token-endpoint calls.

A real deployment's login service receives the user at
``oauth_meta.auth_login_redirect`` (the gateway's 307 from
``/oauth/authorize``), logs them in, and POSTs the approval to
``{listen}/tyk/oauth/authorize-client/`` with the gateway secret; the user's
browser then follows ``redirect_to``.  :func:`approve` plays that service.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import orjson
import requests

LOGIN = "http://127.0.0.1/login"


def follow_authorize(url: str) -> dict[str, str]:
    """GET the client's authorization URL; assert the 307 to the login page
    and return the query the login page receives (the original one)."""
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 307, resp.text
    location = resp.headers["Location"]
    assert location.startswith(LOGIN + "?"), location
    assert urlsplit(location).query == urlsplit(url).query
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


def approve(gateway: Any, listen: str, params: dict[str, str],
            key_rules: dict[str, Any] | None = None) -> requests.Response:
    """The login service's ``POST {listen}tyk/oauth/authorize-client/``."""
    form = {name: params[name] for name in
            ("response_type", "client_id", "redirect_uri", "state", "scope",
             "code_challenge", "code_challenge_method") if name in params}
    if key_rules is not None:
        form["key_rules"] = orjson.dumps(key_rules).decode()
    return requests.post(gateway.url(listen + "tyk/oauth/authorize-client/"), data=form,
                         headers={"X-Tyk-Authorization": gateway.secret}, timeout=10)


def approved_redirect(gateway: Any, listen: str, url: str,
                      key_rules: dict[str, Any] | None = None) -> str:
    """The whole user-agent part: authorize, log in, approve; ``redirect_to``."""
    resp = approve(gateway, listen, follow_authorize(url), key_rules)
    assert resp.status_code == 200, resp.text
    redirect: str = resp.json()["redirect_to"]
    return redirect


def code_of(redirect_to: str) -> str:
    """The ``code`` parameter of a redirect."""
    return parse_qs(urlsplit(redirect_to).query)["code"][0]


def basic(client_id: str, secret: str) -> dict[str, str]:
    """``Authorization: Basic`` for a client (the raw id and secret)."""
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def token_request(gateway: Any, listen: str, form: dict[str, str],
                  client: tuple[str, str] | None = None) -> requests.Response:
    """A raw ``POST {listen}oauth/token`` (Basic auth when ``client``)."""
    headers = basic(*client) if client else {}
    return requests.post(gateway.url(listen + "oauth/token"), data=form, headers=headers,
                         timeout=10)
