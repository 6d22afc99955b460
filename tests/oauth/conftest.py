"""Shared fixtures of the OAuth tests: a gateway with OAuth 2.0 APIs, a
``/tyk/oauth`` client, and a provider in this process on the gateway's Redis.

* ``oauth_api(api_id, listen_path, target_url, **fields)``: a ``use_oauth2``
  Tyk Classic definition (every grant and response type allowed).
* ``OAuthAdmin(gateway)``: ``.call(method, path, body=None, form=None)``,
  ``.create_client(**fields) -> dict`` (asserts 200), ``.client(api, id)``.
* ``oauth_store`` (module, ``memory`` / ``redis``): the store a module's
  gateways run on (``.config`` for the gateway's ``storage``, ``.redis``).
* ``oauth_gateway`` (module): a gateway on ``oauth_store`` with the APIs of
  :data:`APIS` and the policies of :data:`POLICIES`.
* ``provider(gateway, run)``: an :class:`OAuthStore` in this process on the
  gateway's Redis (with the gateway's key hashing), to mint tokens the
  gateway then serves and lists -- Redis only (a memory store is the
  gateway's own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

ORG = "test-org"
OTHER_ORG = "other-org"
OAUTH_API = "oauth-api"
OTHER_OAUTH_API = "oauth-other"  # in OTHER_ORG
JWT_API = "jwt-api"
TOKEN_API = "token-api"
REDIRECT = "http://127.0.0.1/cb"


def rights(*api_ids: str) -> dict[str, Any]:
    """Tyk access rights to ``api_ids`` (every version)."""
    return {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids}


def policy(policy_id: str, *api_ids: str, org_id: str = ORG) -> dict[str, Any]:
    """A policy granting ``api_ids``."""
    return {"id": policy_id, "org_id": org_id, "rate": 1000, "per": 60, "quota_max": -1,
            "access_rights": rights(*api_ids)}


#: ``oauth-pol``: the OAuth and the JWT API; ``token-pol``: the auth-token API
#: only; ``ghost-pol``: an API not loaded; ``other-pol``: the other org's API.
POLICIES = {
    "oauth-pol": policy("oauth-pol", OAUTH_API, JWT_API, TOKEN_API),
    "oauth-only": policy("oauth-only", OAUTH_API),
    "token-pol": policy("token-pol", TOKEN_API),
    "ghost-pol": policy("ghost-pol", OAUTH_API, "not-loaded"),
    "other-pol": policy("other-pol", OTHER_OAUTH_API, org_id=OTHER_ORG),
}


def oauth_api(api_id: str, listen_path: str, target_url: str, **fields: Any) -> dict[str, Any]:
    """A ``use_oauth2`` API definition of :data:`ORG`; ``fields`` merged on top."""
    api: dict[str, Any] = {
        "api_id": api_id, "name": f"API {api_id}", "org_id": ORG, "active": True,
        "use_keyless": False, "use_oauth2": True,
        "oauth_meta": {
            "allowed_access_types": ["authorization_code", "refresh_token",
                                     "client_credentials", "password"],
            "allowed_authorize_types": ["code", "token"],
            "auth_login_redirect": "http://127.0.0.1/login",
        },
        "proxy": {"listen_path": listen_path, "target_url": target_url,
                  "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    api.update(fields)
    return api


def default_apis(target_url: str) -> list[dict[str, Any]]:
    """The APIs of ``oauth_gateway``: two OAuth 2.0 APIs (two orgs), a JWT
    API and an auth-token API."""
    plain = {"api_id": TOKEN_API, "name": TOKEN_API, "org_id": ORG, "active": True,
             "use_keyless": False,
             "proxy": {"listen_path": "/token-api/", "target_url": target_url,
                       "strip_listen_path": True},
             "version_data": {"not_versioned": True,
                              "versions": {"Default": {"name": "Default"}}}}
    jwt_api = {**plain, "api_id": JWT_API, "name": JWT_API, "enable_jwt": True,
               "jwt_signing_method": "hmac", "jwt_source": "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
               "proxy": {**plain["proxy"], "listen_path": "/jwt-api/"}}
    return [
        oauth_api(OAUTH_API, "/oauth-api/", target_url),
        oauth_api(OTHER_OAUTH_API, "/oauth-other/", target_url, org_id=OTHER_ORG),
        jwt_api,
        plain,
    ]


class OAuthAdmin:
    """The gateway's ``/tyk/oauth`` REST API over real HTTP."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.headers = {"X-Tyk-Authorization": gateway.secret}

    def call(self, method: str, path: str, body: Any = None, *, form: Any = None,
             data: bytes | None = None, **kwargs: Any) -> requests.Response:
        """One request; ``body`` is sent as JSON, ``form`` form-encoded, ``data`` raw."""
        if form is not None:
            return requests.request(method, self.gateway.url(path), data=form,
                                    headers=self.headers, timeout=10, **kwargs)
        if data is not None:
            return requests.request(method, self.gateway.url(path), data=data,
                                    headers=self.headers, timeout=10, **kwargs)
        return requests.request(method, self.gateway.url(path), json=body,
                                headers=self.headers, timeout=10, **kwargs)

    def create_client(self, **fields: Any) -> dict[str, Any]:
        """``POST /tyk/oauth/clients/create`` (``api_id`` :data:`OAUTH_API` and
        ``redirect_uri`` :data:`REDIRECT` unless given); the answer."""
        body: dict[str, Any] = {"redirect_uri": REDIRECT}
        if "policy_id" not in fields or "api_id" in fields:
            body["api_id"] = OAUTH_API
        body.update(fields)
        resp = self.call("POST", "/tyk/oauth/clients/create", body)
        assert resp.status_code == 200, resp.text
        created: dict[str, Any] = resp.json()
        return created

    def client(self, api_id: str, client_id: str) -> requests.Response:
        """``GET /tyk/oauth/clients/{api_id}/{client_id}``."""
        return self.call("GET", f"/tyk/oauth/clients/{api_id}/{client_id}")


@dataclass(frozen=True)
class OAuthModuleStore:
    """The store of a module's gateways: the ``storage`` config, and the
    redis-server behind it (None for the memory store)."""

    kind: str
    config: dict[str, Any]
    redis: Any = None


@pytest.fixture(scope="module",
                params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def oauth_store(request: pytest.FixtureRequest) -> OAuthModuleStore:
    if request.param == "memory":
        return OAuthModuleStore("memory", {"type": "memory"})
    server = request.getfixturevalue("redis_server")
    server.ensure_running()
    server.client().flushall()
    return OAuthModuleStore("redis", {"type": "redis", "host": server.host,
                                      "port": server.port}, server)


@pytest.fixture(scope="module")
def oauth_gateway(oauth_store: OAuthModuleStore, module_gateway_factory: Any,
                  echo: Any) -> Any:
    """A gateway with :func:`default_apis` and :data:`POLICIES` (policy file)."""
    gateway = module_gateway_factory(default_apis(echo.base_url), start=False,
                                     storage=oauth_store.config,
                                     oauth_token_expired_retain_period=60)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    return gateway


@pytest.fixture
def oauth_admin(oauth_gateway: Any) -> OAuthAdmin:
    return OAuthAdmin(oauth_gateway)


def in_process_provider(gateway: Any, run: Any, **settings: Any) -> Any:
    """An :class:`OAuthStore` on the Redis of ``gateway`` (its key hashing,
    the gateway's policy file); ``settings`` override :class:`OAuthConfig`'s.
    Close its store with ``run(provider.store.close())``."""
    from fastgate.auth.oauth2.model import OAuthStore
    from fastgate.config import OAuthConfig, StorageConfig
    from fastgate.session.cache import SessionCache
    from fastgate.storage import create_store

    storage = gateway.config["storage"]
    assert storage["type"] == "redis", "an in-process provider needs the gateway's Redis"
    store = create_store(StorageConfig(type="redis", host=storage["host"],
                                       port=storage["port"]))
    run(store.start())
    policies = json.loads((gateway.root / "policies.json").read_text())
    config = {"expired_retain_period": int(gateway.config.get(
        "oauth_token_expired_retain_period", 0))}
    config.update(settings)
    return OAuthStore(store, SessionCache(store, lambda: policies),
                      lambda: policies, settings=OAuthConfig(**config),
                      hash_keys=bool(gateway.config.get("hash_keys", True)),
                      hash_key_function=str(gateway.config.get("hash_key_function", "")))


@pytest.fixture
def provider(oauth_gateway: Any, oauth_store: OAuthModuleStore, run: Any) -> Iterator[Any]:
    """:func:`in_process_provider` on ``oauth_gateway`` (skipped on the memory store,
    whose data only the gateway process holds)."""
    if oauth_store.kind != "redis":
        pytest.skip("minting tokens in this process needs the gateway's Redis")
    made = in_process_provider(oauth_gateway, run)
    yield made
    run(made.store.close())
