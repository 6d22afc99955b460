"""Request bodies of every size through the gateway to real upstreams: the matrix a
black-box run needed (uploads hung on a fresh upstream connection).

Sizes 0 B .. 8 MiB; Content-Length and chunked; with and without ``Expect:
100-continue`` (the client waits for the 100 as curl does); a fresh upstream
connection (the upstream closes after every answer, so none is ever pooled) and
a pooled one (warmed up first); upstreams ``fastgate echo``, a stdlib
``http.server`` and one that starts late and reads slowly.  Each case checks the
sha256 the upstream received.  Real clients too: requests (no ``Expect``) and
curl (``-H 'Expect:'``), on a freshly started gateway.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from .clients import upload
from .test_bodies import RssSampler
from .upstreams import UploadUpstream

KiB = 1024
MiB = 1024 * KiB
SIZES = [0, 1, 64 * KiB - 1, 64 * KiB + 1, MiB, 8 * MiB]


@pytest.fixture(scope="module")
def bodies() -> dict[int, bytes]:
    return {size: os.urandom(size) for size in SIZES}


@pytest.fixture(scope="module")
def upstreams(echo) -> Iterator[dict[str, str]]:
    std = UploadUpstream()
    slow = UploadUpstream(delay=0.3, piece=64 * KiB, interval=0.005)
    yield {"echo": echo.base_url, "std": std.base_url, "slow": slow.base_url}
    std.stop()
    slow.stop()


@pytest.fixture(scope="module")
def gateways(module_gateway_factory, make_api, upstreams):
    """One gateway per upstream-connection mode, each proxying to the three upstreams."""
    def start():
        return module_gateway_factory(
            apis=[make_api(name, f"/{name}/", url) for name, url in upstreams.items()])
    return {"fresh": start(), "pooled": start()}


def target(upstream: str, pooling: str) -> str:
    """The path to upload to: for a fresh connection, one the upstream closes after."""
    if pooling == "pooled":
        return f"/{upstream}/up"
    if upstream == "echo":
        return "/echo/headers-out?Connection=close"
    return f"/{upstream}/up?close=1"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("pooling", ["fresh", "pooled"])
@pytest.mark.parametrize("upstream", ["echo", "std", "slow"])
@pytest.mark.parametrize("expect", [False, True], ids=["no-expect", "expect"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("size", SIZES)
def test_upload_matrix(gateways, bodies, raw, upstream, pooling, chunked, expect, size):
    gw = gateways[pooling]
    if pooling == "pooled":
        warm = requests.get(gw.url(f"/{upstream}/warm"), timeout=10)
        assert warm.status_code == 200
    body = bodies[size]
    resp = upload(raw, gw.port, target(upstream, pooling), body, chunked=chunked, expect=expect)
    assert resp.status == 200, resp.body[:300]
    got = resp.json()
    assert got["body_length"] == size
    assert got["body_sha256"] == sha(body)


@pytest.mark.parametrize("upstream", ["echo", "std", "slow"])
def test_memory_stays_bounded(gateways, bodies, raw, upstream):
    """8 MiB uploads do not grow the gateway by anything near the body's size, even
    to an upstream that reads slowly (reading from the client pauses instead)."""
    gw = gateways["fresh"]
    body = bodies[8 * MiB]
    upload(raw, gw.port, target(upstream, "fresh"), body, chunked=False, expect=False)
    with RssSampler(gw.rss_kib) as rss:
        for chunked in (False, True):
            resp = upload(raw, gw.port, target(upstream, "fresh"), body, chunked=chunked,
                          expect=False)
            assert resp.status == 200
            assert resp.json()["body_sha256"] == sha(body)
    assert rss.peak - rss.base < 3 * 1024, (
        f"gateway RSS grew by {rss.peak - rss.base} KiB during 8 MiB uploads")


# -- real clients on a freshly started gateway (the black-box report) -------------------


@pytest.mark.parametrize("upstream", ["echo", "std"])
def test_requests_upload_fresh_gateway(gateway_factory, make_api, upstreams, upstream):
    gw = gateway_factory(apis=[make_api("u", "/u/", upstreams[upstream])])
    body = os.urandom(5 * MiB)
    resp = requests.post(gw.url("/u/up"), data=body, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["body_sha256"] == sha(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("size", [MiB, 5 * MiB])
def test_curl_upload_fresh_gateway(gateway_factory, make_api, echo, tmp_path, size):
    gw = gateway_factory(apis=[make_api("open", "/open/", echo.base_url)])
    body = os.urandom(size)
    path = tmp_path / "b.bin"
    path.write_bytes(body)
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-m", "5", "-H", "Expect:", "--data-binary", f"@{path}",
         gw.url("/open/up")], capture_output=True, timeout=15)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 5
    assert json.loads(done.stdout)["body_sha256"] == sha(body)
