"""Updating a key resets its live quota (Tyk's doAddOrUpdate calls ResetQuota)
unless ``?suppress_reset=1``: spent through a real gateway, on the memory store
and on Redis."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import RestClient

RIGHTS = {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"]}}
SESSION = {"rate": 0, "per": 0, "quota_max": 3, "quota_remaining": 3,
           "quota_renewal_rate": 3600, "access_rights": RIGHTS}
# A per-API quota: counted under the key's storage key + "-p" (allowance_scope).
PER_API = {"quota_max": -1, "access_rights": {"p": {
    **RIGHTS["p"], "limit": {"quota_max": 2, "quota_remaining": 2,
                             "quota_renewal_rate": 3600}}}}


@pytest.fixture
def gw(gateway_factory: Any, make_api: Any, echo: Any, storage: dict[str, Any]) -> Any:
    return gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False, org_id="")],
                           storage=storage)


def spend(gw: Any, key: str, count: int) -> list[int]:
    with requests.Session() as client:
        return [client.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=10
                           ).status_code for _ in range(count)]


@pytest.mark.parametrize("session", [SESSION, PER_API], ids=["session", "per-api"])
def test_put_resets_a_spent_quota(gw: Any, session: dict[str, Any]) -> None:
    rest = RestClient(gw)
    assert rest("POST", "/tyk/keys/quota-key-1", session).status_code == 200
    allowed = session["quota_max"] if session["quota_max"] > 0 else 2
    assert spend(gw, "quota-key-1", allowed + 1) == [200] * allowed + [403]

    assert rest("PUT", "/tyk/keys/quota-key-1", session).status_code == 200
    assert spend(gw, "quota-key-1", allowed + 1) == [200] * allowed + [403]

    # suppress_reset=1: the spent quota stays spent.
    assert rest("PUT", "/tyk/keys/quota-key-1?suppress_reset=1", session).status_code == 200
    assert spend(gw, "quota-key-1", 2) == [403, 403]
    if session is SESSION:
        live = rest("GET", "/tyk/keys/quota-key-1").json()
        assert live["quota_remaining"] == 0


def test_post_replacing_a_custom_key_resets_its_quota(gw: Any) -> None:
    rest = RestClient(gw)
    assert rest("POST", "/tyk/keys/quota-key-2", SESSION).status_code == 200
    assert spend(gw, "quota-key-2", 4) == [200, 200, 200, 403]
    assert rest("POST", "/tyk/keys/quota-key-2?suppress_reset=1", SESSION).status_code == 200
    assert spend(gw, "quota-key-2", 1) == [403]
    assert rest("POST", "/tyk/keys/quota-key-2", SESSION).status_code == 200
    assert spend(gw, "quota-key-2", 4) == [200, 200, 200, 403]


def test_a_deleted_key_made_again_starts_afresh_even_with_suppress_reset(gw: Any) -> None:
    rest = RestClient(gw)
    assert rest("POST", "/tyk/keys/quota-key-3", SESSION).status_code == 200
    assert spend(gw, "quota-key-3", 4) == [200, 200, 200, 403]
    assert rest("DELETE", "/tyk/keys/quota-key-3").status_code == 200
    assert rest("POST", "/tyk/keys/quota-key-3?suppress_reset=1", SESSION).status_code == 200
    assert spend(gw, "quota-key-3", 4) == [200, 200, 200, 403]
