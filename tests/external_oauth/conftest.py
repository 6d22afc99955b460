"""Fixtures for the external OAuth tests: an authorization server (authlib,
:mod:`tests.auth.oauth_provider`), real gateways on the memory store and on a
real redis-server, and builders for the API definitions.

Reusable for any RFC 7662 endpoint -- e.g. fastgate's own
``{listen_path}oauth/introspect``: :func:`introspection_api` takes a URL and
client credentials, not a :class:`Provider`; :class:`OAuthGateway` serves
any definitions, and :meth:`OAuthGateway.stored_text` shows everything the
store holds (to look for raw tokens).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.auth.oauth_provider import Client, Provider, start_provider
from tests.conftest import Gateway, GatewayFactory, api_definition
from tests.jwt_auth.conftest import ModuleStore, module_store

__all__ = ["ORG", "OAuthGateway", "introspection_api", "jwt_api", "module_store"]

ORG = "test-org"


def b64(data: str | bytes) -> str:
    """Padded standard base64 (how a ``source`` holding a key or URL is written)."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def introspection_api(api_id: str, target: str, url: str, client_id: str, client_secret: str,
                      *, cache: bool = True, timeout: int = 0,
                      introspection: dict[str, Any] | None = None,
                      **fields: Any) -> dict[str, Any]:
    """An API checking tokens by RFC 7662 introspection at ``url``, listening
    on ``/<api_id>/`` and proxying to ``target``."""
    settings: dict[str, Any] = {
        "enabled": True, "url": url, "client_id": client_id, "client_secret": client_secret,
        "cache": {"enabled": cache, "timeout": timeout}, **(introspection or {})}
    return api_definition(api_id, f"/{api_id}/", target, use_keyless=False, org_id=ORG,
                          external_oauth={"enabled": True,
                                          "providers": [{"introspection": settings}]},
                          **fields)


def jwt_api(api_id: str, target: str, source: str, *, signing_method: str = "rsa",
            jwt: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An API checking tokens as JWTs against ``source`` (a JWKS URL, or
    base64 of a URL, secret or public key)."""
    settings: dict[str, Any] = {"enabled": True, "signing_method": signing_method,
                                "source": source, **(jwt or {})}
    return api_definition(api_id, f"/{api_id}/", target, use_keyless=False, org_id=ORG,
                          external_oauth={"enabled": True, "providers": [{"jwt": settings}]},
                          **fields)


def identity_key(identity: str) -> str:
    """The key Tyk looks for an identity under: ``org_id + md5(identity)``."""
    return ORG + hashlib.md5(identity.encode()).hexdigest()


def redis_dump(client: Any) -> bytes:
    """Every key of a Redis and every value under it, as one byte string."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                out += [field, value]
        elif kind == b"zset":
            out += [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"set":
            out += list(client.smembers(key))
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"stream":
            for _id, entry in client.xrange(key):
                for field, value in entry.items():
                    out += [field, value]
    return b"\n".join(out)


@dataclass
class OAuthGateway:
    """A running gateway and the store it is on."""

    gateway: Gateway
    store: ModuleStore
    #: The memory store's journal (None on Redis).
    journal: Path | None

    def url(self, path: str) -> str:
        return self.gateway.url(path)

    def get(self, api_id: str, token: str | None, path: str = "x", *,
            header: str = "Authorization", scheme: str = "Bearer ") -> requests.Response:
        """``GET /<api_id>/<path>`` with the token in ``header`` (None: no token)."""
        headers = {} if token is None else {header: scheme + token}
        return requests.get(self.gateway.url(f"/{api_id}/{path}"), headers=headers, timeout=15)

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.gateway.url(path), json=body, timeout=15,
                                headers={"X-Tyk-Authorization": self.gateway.secret})

    def provision(self, identity: str, api_ids: tuple[str, ...], **fields: Any) -> str:
        """Create the key an identity's requests use (``org_id + md5(identity)``)."""
        key = identity_key(identity)
        rights = {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in api_ids}
        body = {"org_id": ORG, "rate": 1000, "per": 1, "allowance": 1000, "quota_max": -1,
                "access_rights": rights, **fields}
        resp = self.admin("POST", f"/tyk/keys/{key}", body)
        assert resp.status_code == 200, resp.text
        return key

    def stored_text(self) -> bytes:
        """Everything the store holds: every Redis key and value, or the memory
        store's journal file."""
        if self.store.redis is not None:
            return redis_dump(self.store.redis.client())
        assert self.journal is not None
        return self.journal.read_bytes()

    def record_lifetime(self, table: str, key: str) -> float | None:
        """Seconds the store keeps record ``key`` of ``table`` from now (None:
        no such record, or kept until deleted): Redis's PTTL, or the deadline
        the memory store journalled with it."""
        if self.store.redis is not None:
            ms = int(self.store.redis.client().pttl(f"fastgate-record-{table}:{key}"))
            return ms / 1000 if ms >= 0 else None
        assert self.journal is not None
        deadline = None
        for line in self.journal.read_bytes().splitlines():
            entry = json.loads(line)
            if entry.get("t") == "record." + table and entry.get("k") == key:
                deadline = entry.get("x") if entry.get("op") == "set" else None
        return None if deadline is None else deadline - time.time()

    def logs(self) -> str:
        return self.gateway.logs()


def start_gateway(factory: GatewayFactory, store: ModuleStore, apis: list[dict[str, Any]],
                  **config: Any) -> OAuthGateway:
    """A gateway serving ``apis`` on ``store`` (the memory store journalled to a
    file of the gateway's directory, so that tests can read what it holds)."""
    storage = dict(store.config)
    gateway = factory(apis, start=False, storage=storage, **config)
    journal = None
    if store.redis is None:
        journal = gateway.root / "store.journal"
        storage["path"] = str(journal)
        gateway.config["storage"] = storage
    gateway.start()
    return OAuthGateway(gateway, store, journal)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    """An authorization server shared by a module's tests."""
    server = start_provider()
    yield server
    server.stop()


@pytest.fixture
def lone_provider() -> Iterator[Provider]:
    """An authorization server of one test's own (to stop mid-test)."""
    server = start_provider()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def resource_server(provider: Provider) -> Client:
    """The gateway's client credentials at the module's authorization server."""
    return provider.client()


@pytest.fixture(scope="module")
def oauth_gateway(module_gateway_factory: GatewayFactory,
                  module_store: ModuleStore) -> Callable[..., OAuthGateway]:
    """``oauth_gateway(apis, **config)``: a gateway on the module's store,
    stopped at the module's end."""
    def start(apis: list[dict[str, Any]], **config: Any) -> OAuthGateway:
        return start_gateway(module_gateway_factory, module_store, apis, **config)
    return start


@pytest.fixture
def oauth_gateway_now(gateway_factory: GatewayFactory,
                      module_store: ModuleStore) -> Callable[..., OAuthGateway]:
    """``oauth_gateway_now(apis, **config)``: a gateway of one test's own."""
    def start(apis: list[dict[str, Any]], **config: Any) -> OAuthGateway:
        return start_gateway(gateway_factory, module_store, apis, **config)
    return start


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
