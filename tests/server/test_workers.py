"""Several worker processes sharing the port (``workers`` > 1, SO_REUSEPORT)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids.update(int(k) for k in text)
    return kids


def _wait_children(pid: int, count: int, timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    kids: set[int] = set()
    while time.monotonic() < deadline:
        kids = _children(pid)
        if len(kids) == count:
            return kids
        time.sleep(0.05)
    pytest.fail(f"expected {count} workers, found {sorted(kids)}")


def _fresh_get(url: str) -> requests.Response:
    # A new connection each time, so SO_REUSEPORT spreads them over workers.
    with requests.Session() as session:
        return session.get(url, timeout=5, headers={"Connection": "close"})


def test_two_workers_share_the_port_and_reload_together(gateway_factory, make_api, echo,
                                                        redis_server):
    gw = gateway_factory(
        [make_api("a", "/a/", echo.base_url)],
        workers=2,
        storage={"type": "redis", "host": redis_server.host, "port": redis_server.port},
    )
    workers = _wait_children(gw.pid, 2)
    assert gw.pid not in workers
    for _ in range(20):
        assert _fresh_get(gw.url("/a/x")).status_code == 200

    # Move the API; a reload through one worker reaches every worker.
    gw.remove_api("a")
    gw.write_api(make_api("b", "/b/", echo.base_url))
    assert gw.reload().status_code == 200
    deadline = time.monotonic() + 5
    while True:
        codes = {_fresh_get(gw.url("/b/x")).status_code for _ in range(20)}
        old = {_fresh_get(gw.url("/a/x")).status_code for _ in range(20)}
        if codes == {200} and old == {404}:
            break
        assert time.monotonic() < deadline, f"new API {codes}, old API {old}"
        time.sleep(0.1)


def test_a_dead_worker_is_replaced(gateway_factory, make_api, echo, redis_server):
    gw = gateway_factory(
        [make_api("a", "/a/", echo.base_url)],
        workers=2,
        storage={"type": "redis", "host": redis_server.host, "port": redis_server.port},
    )
    workers = _wait_children(gw.pid, 2)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        now = _children(gw.pid)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, f"workers now {sorted(now)}"
        time.sleep(0.05)
    for _ in range(20):
        assert _fresh_get(gw.url("/a/x")).status_code == 200


def test_sigterm_stops_every_worker(gateway_factory, make_api, echo, redis_server):
    gw = gateway_factory(
        [make_api("a", "/a/", echo.base_url)],
        workers=2,
        storage={"type": "redis", "host": redis_server.host, "port": redis_server.port},
    )
    workers = _wait_children(gw.pid, 2)
    assert gw.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().split()[2]


def test_two_workers_need_the_redis_store(gateway_factory, make_api, echo):
    gw = gateway_factory([make_api("a", "/a/", echo.base_url)], workers=2, start=False)
    gw.expected_exit = None
    gw.start(wait=False)
    assert gw.proc is not None
    code = gw.proc.wait(15)
    assert code != 0
    assert "workers" in gw.logs() and "redis" in gw.logs()


def test_workers_stop_when_the_supervisor_is_killed(gateway_factory, make_api, echo,
                                                    redis_server):
    """SIGKILL leaves the supervisor no chance to stop its workers: they notice."""
    gw = gateway_factory(
        [make_api("a", "/a/", echo.base_url)],
        workers=2,
        storage={"type": "redis", "host": redis_server.host, "port": redis_server.port},
    )
    gw.expected_exit = None
    workers = _wait_children(gw.pid, 2)
    gw.signal(signal.SIGKILL)
    assert gw.proc is not None
    gw.proc.wait(5)
    deadline = time.monotonic() + 10
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.1)
    assert not alive, f"workers {sorted(alive)} outlived their supervisor"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"
