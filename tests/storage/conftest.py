"""Helpers for the store tests (the fixtures live in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

# Tests that need a store shared by several instances: ``store_backend`` on Redis only.
SHARED_KINDS = pytest.mark.parametrize(
    "store_backend",
    [
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", id="redis-cluster", marks=pytest.mark.redis),
    ],
    indirect=True,
)
CLUSTER_ONLY = pytest.mark.parametrize(
    "store_backend",
    [pytest.param("redis-cluster", id="redis-cluster", marks=pytest.mark.redis)],
    indirect=True,
)
REDIS_ONLY = pytest.mark.parametrize(
    "store_backend", [pytest.param("redis", id="redis", marks=pytest.mark.redis)], indirect=True
)


class Recorder:
    """A store event handler that remembers what it got and when (time.monotonic())."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.times: list[float] = []
        self._waiters: list[tuple[tuple[str, str], asyncio.Future[float]]] = []

    def __call__(self, event: str, payload: str) -> None:
        now = time.monotonic()
        self.events.append((event, payload))
        self.times.append(now)
        for item, fut in self._waiters:
            if item == (event, payload) and not fut.done():
                fut.set_result(now)

    async def wait(self, event: str, payload: str, timeout: float = 2.0) -> float:
        """When ``(event, payload)`` arrived (waiting for it up to ``timeout``)."""
        for item, when in zip(self.events, self.times, strict=True):
            if item == (event, payload):
                return when
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(((event, payload), fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(
                f"{(event, payload)} not received within {timeout}s; got {self.events}"
            ) from None
        finally:
            self._waiters.remove(((event, payload), fut))
