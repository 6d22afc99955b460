"""The exchange-finished hook: one call per exchange, for every kind of answer.

A gateway runs in this process (its own uvloop in a thread) so that the test can
register a hook; clients talk to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fastgate.config import load_gateway_config

SECRET = "hook-secret-1"


class InProcessGateway:
    def __init__(self, root: Path, port: int) -> None:
        import uvloop

        from fastgate.server.gateway import Gateway

        self.port = port
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.loop = uvloop.new_event_loop()
        self.gateway = Gateway(load_gateway_config(str(root / "gateway.json")), self.loop)
        self.gateway.add_exchange_hook(self._record)
        self.gateway.load_tls()
        self.gateway.load()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(10)

    def _record(self, ex: Any) -> None:
        route = ex.route
        with self.lock:
            self.records.append({
                "api_id": route.spec.api_id if route is not None else None,
                "path": ex.path, "status": ex.status, "complete": ex.complete,
                "session_key": ex.session_key, "bytes_in": ex.bytes_in,
                "bytes_out": ex.bytes_out, "total": ex.total_time,
                "upstream": ex.upstream_time, "certificate_id": ex.certificate_id,
                "client_certificate": ex.client_certificate,
            })

    def url(self, path: str) -> str:
        scheme = "https" if self.gateway.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def wait_records(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= n:
                    time.sleep(0.05)  # and no more than n
                    return list(self.records)
            time.sleep(0.01)
        with self.lock:
            return list(self.records)

    def take(self, n: int) -> list[dict[str, Any]]:
        got = self.wait_records(n)
        with self.lock:
            self.records.clear()
        assert len(got) == n, got
        return got

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.shutdown(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def gw(tmp_path_factory, echo, make_api, free_port) -> Iterator[InProcessGateway]:
    root = tmp_path_factory.mktemp("hook")
    (root / "apps").mkdir()
    dead = free_port()
    apis = [make_api("a", "/a/", echo.base_url),
            make_api("k", "/k/", echo.base_url, use_keyless=False, use_standard_auth=True),
            make_api("dead", "/dead/", f"http://127.0.0.1:{dead}")]
    for api in apis:
        (root / "apps" / f"{api['api_id']}.json").write_text(json.dumps(api))
    port = free_port()
    (root / "gateway.json").write_text(json.dumps({
        "listen_address": "127.0.0.1", "listen_port": port, "secret": SECRET,
        "app_path": "apps", "storage": {"type": "memory"},
        "graceful_shutdown_timeout_duration": 1}))
    gateway = InProcessGateway(root, port)
    yield gateway
    gateway.stop()


def test_proxied(gw):
    assert requests.post(gw.url("/a/x"), data=b"y" * 1000, timeout=5).status_code == 200
    (rec,) = gw.take(1)
    assert rec["api_id"] == "a" and rec["status"] == 200 and rec["complete"]
    assert rec["bytes_in"] > 1000
    assert rec["bytes_out"] > 200
    assert 0 < rec["upstream"] <= rec["total"] < 5


def test_refused_by_auth_then_allowed(gw):
    assert requests.get(gw.url("/k/x"), timeout=5).status_code == 401
    (refused,) = gw.take(1)
    assert (refused["api_id"], refused["status"], refused["upstream"]) == ("k", 401, 0.0)
    assert refused["session_key"] is None
    created = requests.post(gw.url("/tyk/keys/create"), headers={"X-Tyk-Authorization": SECRET},
                            json={"access_rights": {"k": {"api_id": "k", "versions": []}}},
                            timeout=5).json()
    gw.take(1)  # the REST call
    assert requests.get(gw.url("/k/x"), headers={"Authorization": created["key"]},
                        timeout=5).status_code == 200
    (allowed,) = gw.take(1)
    assert allowed["status"] == 200 and allowed["session_key"] == created["key_hash"]


def test_the_gateways_own_answers(gw):
    assert requests.get(gw.url("/hello"), timeout=5).status_code == 200
    assert requests.get(gw.url("/nowhere"), timeout=5).status_code == 404
    assert requests.get(gw.url("/tyk/keys"), timeout=5).status_code == 403
    assert requests.get(gw.url("/dead/x"), timeout=5).status_code == 502
    got = gw.take(4)
    assert [(r["api_id"], r["status"]) for r in got] == [
        (None, 200), (None, 404), (None, 403), ("dead", 502)]
    assert all(r["complete"] and r["bytes_out"] > 0 for r in got)


def test_malformed_request(gw, raw):
    conn = raw(gw.port)
    assert conn.request(b"GET /a/x HTTP/1.1\r\nHost h\r\n\r\n").status == 400
    (rec,) = gw.take(1)
    assert rec["status"] == 400 and rec["complete"]


def test_pipelined_requests_each_once(gw, raw):
    conn = raw(gw.port)
    conn.send(b"GET /a/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n"
              b"GET /a/3 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [conn.read_response().status for _ in range(3)] == [200, 404, 200]
    assert [(r["path"], r["status"]) for r in gw.take(3)] == [
        (b"/a/1", 200), (b"/nowhere", 404), (b"/a/3", 200)]


def test_client_gone_mid_answer(gw):
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.sendall(b"GET /a/delay/1 HTTP/1.1\r\nHost: h\r\n\r\n")
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset: the client is gone, not just done sending
    (rec,) = gw.take(1)
    assert rec["api_id"] == "a" and not rec["complete"] and rec["status"] == 0
