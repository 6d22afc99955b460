"""Body integrity: ``Content-Digest`` (RFC 9530) and ``Digest`` (RFC 3230) checked
against the body received, as it streams (:mod:`fastgate.auth.hmac.digest`,
``Exchange.check_body`` in :mod:`fastgate._core.proxy`).

The header parsing is tested as units (RFC 9530's own examples among them).  The
proxy's part runs in a real gateway: it runs in this process (its own uvloop in a
thread) because a test step is added to the chain of its APIs -- the signature
methods that call ``watch_body`` in the product are not needed for that -- and
clients and upstreams talk to it over real sockets.  The upstreams are the echo
server (it reports the sha-256 of the body it got) and a raw recording upstream
that shows exactly which bytes of a refused request reached it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httptools
import pytest

from fastgate.auth.hmac.digest import (
    DigestError,
    digest_check,
    parse_content_digest,
    parse_digest,
    watch_body,
)
from fastgate.config import load_gateway_config

SECRET = "digest-secret-1"
HELLO = b'{"hello": "world"}'  # RFC 9530's example content
HELLO_SHA256 = b"X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
HELLO_SHA512 = (b"WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyeal"
                b"dVLvRwEmTHWXvJwew==")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def content_digest(body: bytes, *algorithms: str) -> str:
    """``sha-256=:...:`` (and/or ``sha-512``) for ``body``."""
    return ", ".join(f"{alg}=:{b64(hashlib.new(alg.replace('-', ''), body).digest())}:"
                     for alg in algorithms or ("sha-256",))


def status_of(response: bytes) -> int:
    return int(response[9:12])


def error_of(response: bytes) -> str:
    message: str = json.loads(response.partition(b"\r\n\r\n")[2])["error"]
    return message


# ---------------------------------------------------------------- parsing (units)


def test_rfc9530_examples() -> None:
    assert parse_content_digest(b"sha-256=:" + HELLO_SHA256 + b":") == [
        ("sha-256", hashlib.sha256(HELLO).digest())]
    both = parse_content_digest(b"sha-512=:" + HELLO_SHA512 + b":, sha-256=:"
                                + HELLO_SHA256 + b":")
    assert both == [("sha-512", hashlib.sha512(HELLO).digest()),
                    ("sha-256", hashlib.sha256(HELLO).digest())]
    for header, value in ((b"content-digest", b"sha-256=:" + HELLO_SHA256 + b":"),
                          (b"content-digest", b"sha-512=:" + HELLO_SHA512 + b":"),
                          (b"digest", b"SHA-256=" + HELLO_SHA256),
                          (b"digest", b"sha-512=" + HELLO_SHA512)):
        check = digest_check(header, value)
        assert not isinstance(check, bytes)
        check.update(HELLO[:5])
        check.update(HELLO[5:])
        assert check.finish() is None


@pytest.mark.parametrize("value, expected", [
    (b"sha-256=:AAAA:", [("sha-256", b"\0\0\0")]),
    (b"  sha-256=:AAAA:  ", [("sha-256", b"\0\0\0")]),
    (b"sha-256=:AAA:", [("sha-256", b"\0\0")]),  # '=' padding optional (RFC 8941 §4.2.7)
    (b"sha-256=::", [("sha-256", b"")]),
    (b"sha-256=:AAAA:;a=1;b;c=?0;d=\"x\";e=tok/en;f=:AA==:;g=-1.5", [("sha-256", b"\0\0\0")]),
    (b"sha-256=:AAAA:,sha-512=:AA==:\t,  x.y*_-1=:AQ==:",
     [("sha-256", b"\0\0\0"), ("sha-512", b"\0"), ("x.y*_-1", b"\1")]),
    (b"sha-256=:AAAA:, sha-256=:AQID:", [("sha-256", b"\0\0\0"), ("sha-256", b"\1\2\3")]),
])
def test_content_digest_parses(value: bytes, expected: list[tuple[str, bytes]]) -> None:
    assert parse_content_digest(value) == expected


@pytest.mark.parametrize("value", [
    b"", b"   ", b"sha-256", b"sha-256=", b"sha-256=AAAA", b"sha-256=:AAAA", b"sha-256=AAAA:",
    b"sha-256=\"AAAA\"", b"sha-256=1", b"sha-256=?1", b"sha-256=(:AAAA:)",
    b"SHA-256=:AAAA:", b"1sha=:AAAA:", b"sha-256=:AA-A:", b"sha-256=:A===:", b"sha-256=:A=AA:",
    b"sha-256=:AAAA:,", b"sha-256=:AAAA:, ", b",sha-256=:AAAA:", b"sha-256=:AAAA: sha-512=:AA:",
    b"sha-256=:AAAA:;", b"sha-256=:AAAA:;A=1", b"sha-256=:AAAA:;a=", b"sha-256=:AAAA:;a=\"x",
    b"sha-256=:AAAA:x", b"sha-256 =:AAAA:", b"sha-256= :AAAA:",
    b"unknown=1, sha-256=:AAAA:",  # every member's value must be a Byte Sequence
])
def test_content_digest_malformed(value: bytes) -> None:
    with pytest.raises(DigestError):
        parse_content_digest(value)


def test_legacy_digest_parses() -> None:
    assert parse_digest(b"SHA-256=abc=, sha-512=de/+==,, MD5=HUXZ") == [
        ("sha-256", b"abc="), ("sha-512", b"de/+=="), ("md5", b"HUXZ")]
    for value in (b"", b" , ", b"SHA-256", b"SHA-256=", b"=abc", b"SHA 256=abc", b"S(=x"):
        with pytest.raises(DigestError):
            parse_digest(value)


SHA256_OF_HELLO = b"sha-256=:" + HELLO_SHA256 + b":"


@pytest.mark.parametrize("name, value, error", [
    (b"content-digest", b"md5=:HUXZLQLMuI/KZ5KDcJPcOA==:",
     "Content-Digest header names no supported algorithm (sha-256, sha-512); md5 is insecure"),
    (b"content-digest", b"sha=:thvDyvhfIqlvFe+A9MYgxAfm1q5=:, unixsum=:MDYz:",
     "Content-Digest header names no supported algorithm (sha-256, sha-512); "
     "sha, unixsum are insecure"),
    (b"content-digest", b"sha3-256=:AAAA:",
     "Content-Digest header names no supported algorithm (sha-256, sha-512)"),
    (b"content-digest", b"sha-256=:AAAA:", "Malformed Content-Digest header: "
     "sha-256 digest is not 32 bytes"),
    (b"content-digest", b"sha-256", "Malformed Content-Digest header: "
     "sha-256 has no byte sequence value"),
    (b"digest", b"MD5=HUXZLQLMuI/KZ5KDcJPcOA==, SHA=thvDyvhfIqlvFe+A9MYgxAfm1q5=",
     "Digest header names no supported algorithm (sha-256, sha-512); md5, sha are insecure"),
    (b"digest", b"SHA-256=not base64!", "Malformed Digest header: bad base64"),
    (b"digest", b"SHA-512=" + HELLO_SHA256, "Malformed Digest header: "
     "sha-512 digest is not 64 bytes"),
])
def test_refused_headers(name: bytes, value: bytes, error: str) -> None:
    refusal = digest_check(name, value)
    assert isinstance(refusal, bytes)
    assert status_of(refusal) == 400 and error_of(refusal) == error


def test_unknown_and_insecure_members_are_ignored_beside_a_supported_one() -> None:
    check = digest_check(b"content-digest", b"md5=:AAAA:, " + SHA256_OF_HELLO + b", x=:AA==:")
    assert not isinstance(check, bytes)
    check.update(HELLO)
    assert check.finish() is None


@pytest.mark.parametrize("value", [
    SHA256_OF_HELLO + b", sha-512=:" + b64(hashlib.sha512(b"other").digest()).encode() + b":",
    b"sha-512=:" + HELLO_SHA512 + b":, sha-256=:" + b64(hashlib.sha256(b"x").digest()).encode()
    + b":",
    SHA256_OF_HELLO + b", sha-256=:" + b64(hashlib.sha256(b"x").digest()).encode() + b":",
])
def test_every_stated_digest_must_match(value: bytes) -> None:
    check = digest_check(b"content-digest", value)
    assert not isinstance(check, bytes)
    check.update(HELLO)
    refusal = check.finish()
    assert refusal is not None and error_of(refusal) == "Body does not match its Content-Digest"


def test_not_a_digest_header() -> None:
    with pytest.raises(ValueError):
        digest_check(b"x-digest", b"sha-256=:AAAA:")


# ---------------------------------------------------------------- a recording upstream


class Recorded:
    """What one upstream connection received (httptools parser callbacks)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.body = bytearray()
        self.complete = False
        self.closed = False

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.complete = True


class RecordingUpstream:
    """A raw HTTP/1.1 upstream: records every byte each connection receives and
    answers a complete request ``200`` (``Connection: close``, so each request
    has a connection of its own).  Past 1 MiB of a body it reads slowly, so that
    a large body meets the gateway's flow control."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[Recorded] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        rec = Recorded()
        with self.lock:
            self.connections.append(rec)
        parser = httptools.HttpRequestParser(rec)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                rec.received += data
                parser.feed_data(data)
                if rec.complete:
                    body = json.dumps({"length": len(rec.body),
                                       "sha256": hashlib.sha256(rec.body).hexdigest()}).encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    break
                if len(rec.body) > 1 << 20:
                    time.sleep(0.001)
        except (OSError, httptools.HttpParserError):
            pass
        finally:
            rec.closed = True
            sock.close()

    def take(self) -> list[Recorded]:
        """The connections so far (forgotten after)."""
        with self.lock:
            taken = self.connections
            self.connections = []
        return taken

    def wait(self, predicate: Callable[[list[Recorded]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.connections)):
                    return
            time.sleep(0.01)
        with self.lock:
            state = [(bytes(c.received[:300]), len(c.body), c.complete, c.closed)
                     for c in self.connections]
        raise AssertionError(f"upstream never reached the expected state: {state}")

    def close(self) -> None:
        self.listener.close()


# ---------------------------------------------------------------- the gateway


class DigestStep:
    """A chain step calling watch_body for the request's digest header, as the
    signature methods do when it is signed.  Under ``.../async/``: after waiting
    (``X-Test-Delay`` seconds, default 0.3), as a method waiting for the store."""

    name = "test-digest"

    def process(self, req: Any) -> Any:
        if b"/async/" in req.path:
            return self._later(req)
        return self._check(req)

    @staticmethod
    def _check(req: Any) -> bytes | None:
        for name in (b"content-digest", b"digest"):
            value = req.header(name)
            if value is not None:
                return watch_body(req, name, value)
        return None

    async def _later(self, req: Any) -> bytes | None:
        await asyncio.sleep(float(req.header(b"x-test-delay") or b"0.3"))
        return self._check(req)


class InProcessGateway:
    def __init__(self, root: Path, port: int) -> None:
        import uvloop

        from fastgate.server.gateway import Gateway

        self.port = port
        self.loop = uvloop.new_event_loop()
        self.gateway = Gateway(load_gateway_config(str(root / "gateway.json")), self.loop)
        self.gateway.load_tls()
        self.gateway.load()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.shutdown(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, echo: Any, upstream: RecordingUpstream,
       make_api: Any, free_port: Any) -> Iterator[InProcessGateway]:
    import fastgate.server.gateway as gateway_module
    from fastgate.middleware.chain import Chain

    original = gateway_module.build_chain

    def with_digest_step(spec: Any, services: Any) -> Chain:
        chain = original(spec, services)
        return Chain([DigestStep(), *(chain.steps if chain is not None else ())])

    root = tmp_path_factory.mktemp("digest")
    (root / "apps").mkdir()
    for api in (make_api("echo", "/e/", echo.base_url),
                make_api("raw", "/r/", f"http://127.0.0.1:{upstream.port}")):
        (root / "apps" / f"{api['api_id']}.json").write_text(json.dumps(api))
    port = free_port()
    (root / "gateway.json").write_text(json.dumps({
        "listen_address": "127.0.0.1", "listen_port": port, "secret": SECRET,
        "app_path": "apps", "storage": {"type": "memory"},
        "graceful_shutdown_timeout_duration": 1}))
    with pytest.MonkeyPatch.context() as patch:
        # Only this in-process gateway's chains; compiled at load.
        patch.setattr(gateway_module, "build_chain", with_digest_step)
        gateway = InProcessGateway(root, port)
    yield gateway
    gateway.stop()


def post(path: str, body: bytes, headers: str = "", *, chunked: bool = False) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\n{framing}\r\n{headers}\r\n".encode()
    return head + ((chunk(body) if body else b"") + b"0\r\n\r\n" if chunked else body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def digest_line(body: bytes, *algorithms: str) -> str:
    return f"Content-Digest: {content_digest(body, *algorithms)}\r\n"


def echoed(resp: Any) -> tuple[int, str]:
    data = resp.json()
    return data["body_length"], data["body_sha256"]


BODY = b"0123456789abcdef" * 4096  # 64 KiB
TAMPERED = BODY[:-1] + b"!"


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_matching_body_is_forwarded(gw: InProcessGateway, raw: Any, chunked: bool) -> None:
    conn = raw(gw.port)
    resp = conn.request(post("/e/x", BODY, digest_line(BODY), chunked=chunked))
    assert resp.status == 200, resp.body
    assert echoed(resp) == (len(BODY), hashlib.sha256(BODY).hexdigest())
    # The connection goes on.
    again = conn.request(post("/e/y", HELLO, digest_line(HELLO, "sha-512")))
    assert again.status == 200 and echoed(again)[0] == len(HELLO)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_tampered_body_never_completes_upstream(gw: InProcessGateway, raw: Any,
                                                upstream: RecordingUpstream,
                                                chunked: bool) -> None:
    upstream.take()
    conn = raw(gw.port)
    whole = post("/r/x", TAMPERED, digest_line(BODY), chunked=chunked)
    head, _, _ = whole.partition(b"\r\n\r\n")
    pieces = [TAMPERED[:20000], TAMPERED[20000:40000], TAMPERED[40000:]]
    conn.send(head + b"\r\n\r\n" + (chunk(pieces[0]) if chunked else pieces[0]))
    upstream.wait(lambda cs: len(cs) == 1 and b"\r\n\r\n" in cs[0].received)
    conn.send(chunk(pieces[1]) if chunked else pieces[1])
    # The first piece goes on when the second arrives; the second is held back.
    upstream.wait(lambda cs: len(cs[0].body) == 20000)
    time.sleep(0.1)
    conn.send(chunk(pieces[2]) + b"0\r\n\r\n" if chunked else pieces[2])
    resp = conn.read_response()
    assert resp.status == 400
    assert resp.json() == {"error": "Body does not match its Content-Digest"}
    upstream.wait(lambda cs: cs[0].closed)
    (rec,) = upstream.take()
    assert not rec.complete and bytes(rec.body) == TAMPERED[:20000]
    assert not rec.received.endswith(b"0\r\n\r\n")
    # The client's connection is still good: its framing was sound.
    assert resp.header("connection") is None
    assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200


def test_tampered_body_in_one_read_never_reaches_upstream(gw: InProcessGateway, raw: Any,
                                                          upstream: RecordingUpstream) -> None:
    upstream.take()
    resp = raw(gw.port).request(post("/r/x", HELLO + b" ", digest_line(HELLO)))
    assert resp.status == 400
    time.sleep(0.1)
    assert all(not c.complete for c in upstream.take())


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_large_body(gw: InProcessGateway, raw: Any, upstream: RecordingUpstream,
                    chunked: bool) -> None:
    body = bytes(range(256)) * (6 * 4096)  # 6 MiB, no Expect
    conn = raw(gw.port, timeout=30)
    resp = conn.request(post("/e/big", body, digest_line(body, "sha-512"), chunked=chunked))
    assert resp.status == 200 and echoed(resp) == (len(body), hashlib.sha256(body).hexdigest())
    # Through the slow upstream (its flow control pauses the client).
    upstream.take()
    resp = conn.request(post("/r/big", body, digest_line(body), chunked=chunked))
    assert resp.status == 200
    assert resp.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    # Tampered: most of it went upstream, never its end.
    upstream.take()
    tampered = body[:-10] + b"0123456789"
    resp = conn.request(post("/r/big", tampered, digest_line(body), chunked=chunked))
    assert resp.status == 400
    upstream.wait(lambda cs: len(cs) == 1 and cs[0].closed)
    (rec,) = upstream.take()
    assert not rec.complete and len(body) // 2 < len(rec.body) < len(body)
    assert bytes(rec.body) == tampered[:len(rec.body)]
    assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200


def test_expect_continue(gw: InProcessGateway, raw: Any, upstream: RecordingUpstream) -> None:
    for target, body, expected in (("/e/x", BODY, 200), ("/r/x", TAMPERED, 400)):
        upstream.take()
        conn = raw(gw.port)
        conn.send(f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
                  f"Expect: 100-continue\r\n{digest_line(BODY)}\r\n".encode())
        assert conn.read_response().status == 100
        conn.send(body)
        resp = conn.read_response()
        assert resp.status == expected
        if expected == 200:
            assert echoed(resp) == (len(BODY), hashlib.sha256(BODY).hexdigest())
        else:
            time.sleep(0.1)
            assert all(not c.complete for c in upstream.take())
        assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200


def test_empty_body(gw: InProcessGateway, raw: Any, echo: Any) -> None:
    conn = raw(gw.port)
    empty = digest_line(b"") + "Digest: SHA-512=" + b64(hashlib.sha512().digest()) + "\r\n"
    assert conn.request(post("/e/x", b"", empty)).status == 200
    get = f"GET /e/x HTTP/1.1\r\nHost: t\r\n{digest_line(b'')}\r\n".encode()
    assert conn.request(get).status == 200
    before = echo.count()["requests"]
    for request in (post("/e/x", b"", digest_line(b"x")),
                    f"GET /e/x HTTP/1.1\r\nHost: t\r\n{digest_line(b'x')}\r\n".encode(),
                    f"GET /e/x HTTP/1.1\r\nHost: t\r\nDigest: SHA-256={b64(b'0' * 32)}\r\n\r\n"
                    .encode()):
        resp = conn.request(request)
        assert resp.status == 400 and "does not match" in resp.json()["error"]
    assert echo.count()["requests"] == before


def test_pipelined(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    get = b"GET /e/after HTTP/1.1\r\nHost: t\r\n\r\n"
    conn.send(post("/e/x", BODY, digest_line(BODY)) + get
              + post("/e/y", TAMPERED, digest_line(BODY), chunked=True) + get
              + post("/e/z", HELLO, digest_line(HELLO)))
    first, second, third, fourth, fifth = (conn.read_response() for _ in range(5))
    assert first.status == 200 and echoed(first)[0] == len(BODY)
    assert second.status == 200 and second.json()["path"].endswith("/after")
    assert third.status == 400
    assert fourth.status == 200 and fourth.json()["path"].endswith("/after")
    assert fifth.status == 200 and echoed(fifth)[0] == len(HELLO)


@pytest.mark.parametrize("header, expected", [
    (digest_line(BODY, "sha-512"), 200),
    (digest_line(BODY, "sha-256", "sha-512"), 200),
    (f"Content-Digest: {content_digest(BODY)}, {content_digest(TAMPERED, 'sha-512')}\r\n", 400),
    (f"Content-Digest: {content_digest(TAMPERED, 'sha-512')}, {content_digest(BODY)}\r\n", 400),
    (f"Content-Digest: md5=:{b64(hashlib.md5(BODY).digest())}:, {content_digest(BODY)}\r\n",
     200),
    (f"Digest: SHA-256={b64(hashlib.sha256(BODY).digest())}\r\n", 200),
    (f"digest: sha-512={b64(hashlib.sha512(BODY).digest())},"
     f"SHA-256={b64(hashlib.sha256(BODY).digest())}\r\n", 200),
    (f"Digest: SHA-256={b64(hashlib.sha256(TAMPERED).digest())}\r\n", 400),
])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_algorithms(gw: InProcessGateway, raw: Any, header: str, expected: int,
                    chunked: bool) -> None:
    resp = raw(gw.port).request(post("/e/x", BODY, header, chunked=chunked))
    assert resp.status == expected, resp.body
    if expected == 400:
        assert resp.json()["error"].startswith("Body does not match its ")


@pytest.mark.parametrize("header, error", [
    ("Content-Digest: sha-256=AAAA", "Malformed Content-Digest header"),
    ("Content-Digest: sha-256=:AAAA:", "Malformed Content-Digest header"),
    ("Content-Digest: md5=:" + b64(hashlib.md5(BODY).digest()) + ":",
     "Content-Digest header names no supported algorithm"),
    ("Content-Digest: sha=:" + b64(hashlib.sha1(BODY).digest()) + ":",
     "Content-Digest header names no supported algorithm"),
    ("Digest: MD5=" + b64(hashlib.md5(BODY).digest()), "Digest header names no supported"),
    ("Digest: SHA=" + b64(hashlib.sha1(BODY).digest()), "Digest header names no supported"),
    ("Digest: SHA-256", "Malformed Digest header"),
])
def test_refused_headers_at_the_gateway(gw: InProcessGateway, raw: Any, echo: Any,
                                        header: str, error: str) -> None:
    before = echo.count()["requests"]
    conn = raw(gw.port)
    resp = conn.request(post("/e/x", BODY, header + "\r\n"))
    assert resp.status == 400 and resp.json()["error"].startswith(error)
    assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200
    assert echo.count()["requests"] == before + 1


@pytest.mark.parametrize("body, sent", [
    (BODY, BODY), (TAMPERED, BODY),
], ids=["match", "tampered"])
@pytest.mark.parametrize("when", ["all-while-waiting", "part-while-waiting", "after-waiting"])
def test_chain_waiting_for_io(gw: InProcessGateway, raw: Any, upstream: RecordingUpstream,
                              body: bytes, sent: bytes, when: str) -> None:
    """The chain awaits (a store read) while the body arrives and buffers; the
    check is installed afterwards and is fed what arrived meanwhile."""
    upstream.take()
    conn = raw(gw.port)
    request = post("/r/async/x", body, digest_line(sent))
    head_end = request.index(b"\r\n\r\n") + 4
    if when == "all-while-waiting":
        conn.send(request)
    elif when == "part-while-waiting":
        conn.send(request[: head_end + 30000])
        time.sleep(0.5)
        conn.send(request[head_end + 30000:])
    else:
        conn.send(request[:head_end])
        time.sleep(0.5)
        conn.send(request[head_end:head_end + 30000])
        time.sleep(0.1)
        conn.send(request[head_end + 30000:])
    resp = conn.read_response()
    if body is sent:
        assert resp.status == 200
        assert resp.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    else:
        assert resp.status == 400
        time.sleep(0.1)
        assert all(not c.complete for c in upstream.take())
    assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200


@pytest.mark.parametrize("tampered", [False, True], ids=["match", "tampered"])
def test_chain_waiting_for_io_large_body(gw: InProcessGateway, raw: Any,
                                         upstream: RecordingUpstream, tampered: bool) -> None:
    """Several MiB arrive while the chain waits: reading pauses at MAX_BUFFERED and
    resumes once the check is installed and the request streams."""
    body = bytes(range(256)) * (4 * 4096)
    sent = body[:-1] + b"?" if tampered else body
    upstream.take()
    conn = raw(gw.port, timeout=30)
    resp = conn.request(post("/r/async/big", sent, digest_line(body) + "X-Test-Delay: 0.5\r\n"))
    if tampered:
        assert resp.status == 400
        upstream.wait(lambda cs: len(cs) == 1 and cs[0].closed)
        (rec,) = upstream.take()
        assert not rec.complete and len(rec.body) < len(body)
    else:
        assert resp.status == 200 and resp.json()["length"] == len(body)
    assert conn.request(post("/e/z", HELLO, digest_line(HELLO))).status == 200


def test_waiting_chain_with_an_empty_body(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    assert conn.request(post("/e/async/x", b"", digest_line(b""))).status == 200
    assert conn.request(post("/e/async/x", b"", digest_line(b"x"))).status == 400
    assert conn.request(post("/e/async/x", b"", digest_line(b"x"), chunked=True)).status == 400
