"""Fixtures shared by the JWT gateway tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class ModuleStore:
    """The store a module's gateway runs on: the config's ``storage``, and the
    (flushed) redis-server behind it, or None for the memory store."""

    kind: str
    config: dict[str, Any]
    redis: Any = None


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def module_store(request: pytest.FixtureRequest) -> ModuleStore:
    if request.param == "memory":
        return ModuleStore("memory", {"type": "memory"})
    server = request.getfixturevalue("redis_server")
    server.ensure_running()
    server.client().flushall()
    return ModuleStore("redis", {"type": "redis", "host": server.host, "port": server.port},
                       server)
