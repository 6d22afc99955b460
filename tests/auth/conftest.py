"""Fixtures for the authentication tests: a gateway on each store kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The gateway's ``storage`` section: the memory store, or a real redis-server."""
    if request.param == "memory":
        return {"type": "memory"}
    redis = request.getfixturevalue("redis_server")
    redis.client().flushall()
    return {"type": "redis", "host": redis.host, "port": redis.port}


class Admin:
    """The gateway's /tyk/ REST API."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url
        self.headers = {"X-Tyk-Authorization": secret}

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base_url + path, json=body, headers=self.headers,
                                timeout=10, **kwargs)

    def add_key(self, key: str, session: dict[str, Any]) -> dict[str, Any]:
        resp = self.call("POST", f"/tyk/keys/{key}", session)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def update_key(self, key: str, session: dict[str, Any]) -> None:
        resp = self.call("PUT", f"/tyk/keys/{key}", session)
        assert resp.status_code == 200, resp.text

    def delete_key(self, key: str) -> None:
        resp = self.call("DELETE", f"/tyk/keys/{key}")
        assert resp.status_code == 200, resp.text

    def put_policy(self, policy_id: str, policy: dict[str, Any]) -> None:
        resp = self.call("PUT", f"/tyk/policies/{policy_id}", policy)
        if resp.status_code == 404:
            resp = self.call("POST", "/tyk/policies", {**policy, "id": policy_id})
        assert resp.status_code == 200, resp.text


@pytest.fixture
def admin_for() -> Callable[[Any], Admin]:
    def make(gateway: Any) -> Admin:
        return Admin(gateway.base_url, gateway.secret)

    return make


def session(api_ids: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A Tyk session object granting ``api_ids`` (all APIs when empty)."""
    rights = {
        api_id: {"api_id": api_id, "api_name": api_id, "versions": ["Default"]}
        for api_id in api_ids
    }
    body: dict[str, Any] = {
        "allowance": 1000, "rate": 1000, "per": 1, "quota_max": -1,
        "org_id": "", "access_rights": rights,
    }
    body.update(fields)
    return body
