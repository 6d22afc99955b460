"""Back-pressure: a slow client downloading 200 MiB must not grow the gateway's memory."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from fastgate.echo import pattern

MiB = 1024 * 1024
SIZE = 200 * MiB
PAUSE = 2.0
MAX_GROWTH_KIB = 10 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bytes", "chunked"])
def test_slow_client_download(gateway_factory, echo, make_api, kind):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    base = gw.rss_kib()
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.request("GET", f"/a/{kind}/{SIZE}")
        resp = conn.getresponse()
        assert resp.status == 200
        first = resp.read(MiB)
        assert first == pattern(MiB)
        got = len(first)

        peak = base
        deadline = time.monotonic() + PAUSE
        while time.monotonic() < deadline:
            peak = max(peak, gw.rss_kib())
            time.sleep(0.05)
        assert peak - base <= MAX_GROWTH_KIB, (
            f"gateway RSS grew by {(peak - base) // 1024} MiB while the client paused "
            f"({base} KiB -> {peak} KiB): no back-pressure from client to upstream"
        )

        while True:
            block = resp.read(4 * MiB)
            if not block:
                break
            if block != pattern(len(block), got):
                pytest.fail(f"body corrupted between bytes {got} and {got + len(block)}")
            got += len(block)
        assert got == SIZE
    finally:
        conn.close()
