"""An in-process gateway for the REST API tests.

``admin_factory(hash_keys=..., hash_key_function=..., apis=[...],
file_policies={...}) -> AdminEnv`` builds a real :class:`Gateway` (not
listening) on the test's store backend (memory, Redis, Redis Cluster: the
``store_backend`` fixture), loads its app_path and policies, and calls
``AdminApi.handle`` directly.  ``env.call(method, path, body)`` returns a
:class:`Reply` (status, headers, decoded JSON).  ``env.events`` records the
store notifications every node would receive.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SECRET = "test-secret-352"  # the root conftest's gateways use the same


def api_definition(api_id: str, listen_path: str, target_url: str,
                   **fields: Any) -> dict[str, Any]:
    """A keyless Tyk Classic API definition (as the root conftest's ``make_api``)."""
    api: dict[str, Any] = {
        "api_id": api_id, "name": f"API {api_id}", "org_id": "test-org", "active": True,
        "use_keyless": True,
        "proxy": {"listen_path": listen_path, "target_url": target_url,
                  "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    api.update(fields)
    return api


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def message(self) -> str:
        body = self.json
        assert isinstance(body, dict), body
        return str(body.get("message"))


def parse_response(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body)
    return Reply(status, headers, body)


class AdminEnv:
    """A gateway in this process and a way to send it REST API requests."""

    def __init__(self, gateway: Any, run: Any, root: Path) -> None:
        self.gateway = gateway
        self.run = run
        self.root = root
        self.app_path = Path(gateway.config.app_path)
        self.events: list[tuple[str, str]] = []
        self.invalidated: list[str] = []
        gateway.store.subscribe(lambda event, payload: self.events.append((event, payload)))
        original = gateway.sessions.invalidate

        def invalidate(storage_key: str) -> None:
            self.invalidated.append(storage_key)
            original(storage_key)

        gateway.sessions.invalidate = invalidate

    @property
    def store(self) -> Any:
        return self.gateway.store

    def call(self, method: str, path: str, body: Any = None, *,
             secret: str | None = SECRET, raw: bytes | None = None) -> Reply:
        path_part, _, query = path.partition("?")
        if raw is None:
            raw = b"" if body is None else json.dumps(body).encode()
        headers = []
        if secret is not None:
            headers.append((b"x-tyk-authorization", b"X-Tyk-Authorization", secret.encode()))
        result = self.gateway.admin.handle(method.encode(), path_part.encode(),
                                           query.encode(), headers, raw)
        if not isinstance(result, bytes):
            result = self.run(result)
        return parse_response(result)

    def settle(self) -> None:
        """Let notifications published so far reach the subscribers."""
        import asyncio

        self.run(asyncio.sleep(0.05))

    def sessions(self) -> dict[str, dict[str, Any]]:
        """Every stored session: storage key -> decoded JSON."""
        keys = self.run(self.store.list_sessions())
        found = {}
        for key in keys:
            data = self.run(self.store.get_session(key))
            if data is not None:
                found[key] = json.loads(data)
        return found

    def storage_key(self, key: str) -> str:
        from fastgate.session import storage_key

        config = self.gateway.config
        return str(storage_key(key, hash_keys=config.hash_keys,
                               hash_key_function=config.hash_key_function))

    def app_files(self) -> list[str]:
        return sorted(p.name for p in self.app_path.iterdir())


@pytest.fixture
def admin_factory(store_backend: Any, run: Any,
                  tmp_path: Path) -> Iterator[Callable[..., AdminEnv]]:
    from fastgate.config import load_gateway_config
    from fastgate.server.gateway import Gateway

    gateways: list[Any] = []

    def make(*, hash_keys: bool = True, hash_key_function: str = "",
             apis: list[dict[str, Any]] | None = None,
             file_policies: dict[str, Any] | None = None, **config: Any) -> AdminEnv:
        root = tmp_path / f"gw{len(gateways)}"
        (root / "apps").mkdir(parents=True)
        (root / "policies.json").write_text(json.dumps(file_policies or {}))
        for api in apis if apis is not None else [
                api_definition("a", "/a/", "http://127.0.0.1:9")]:
            (root / "apps" / f"{api['api_id']}.json").write_text(json.dumps(api))
        full = {
            "listen_address": "127.0.0.1", "listen_port": 1, "secret": SECRET,
            "app_path": "apps",
            "policies": {"policy_source": "file", "policy_record_name": "policies.json"},
            "hash_keys": hash_keys, "hash_key_function": hash_key_function,
        }
        full.update(config)
        (root / "gateway.json").write_text(json.dumps(full))
        cfg = load_gateway_config(str(root / "gateway.json"))
        cfg = dataclasses.replace(cfg, storage=store_backend.config)
        gateway = Gateway(cfg, run.loop)
        gateways.append(gateway)
        gateway.load()
        run(gateway.store.start())
        run(gateway.refresh_policies())
        return AdminEnv(gateway, run, root)

    yield make
    for gateway in gateways:
        run(gateway.store.close())
        for pool in gateway.pools.values():
            pool.close()


# ----------------------------------------------------------------------------- processes


class RestClient:
    """``requests`` on a gateway process's /tyk/ API."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.headers = {"X-Tyk-Authorization": gateway.secret}

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        import requests

        return requests.request(method, self.gateway.url(path), json=body,
                                headers=self.headers, timeout=10)
