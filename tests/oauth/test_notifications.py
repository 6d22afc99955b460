"""OAuth notifications (:mod:`fastgate.auth.oauth2.notifications`): Tyk's
request, three attempts, and a dead receiver that costs nothing but a log line.

The delivery tests run the real outbound client against a real HTTP receiver
(a thread of the test process); the end-to-end tests issue tokens through a
gateway's ``/oauth/token`` and look at what the receiver got.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from fastgate.auth.oauth2 import notifications
from fastgate.auth.oauth2.config import NotificationsConfig
from fastgate.outbound import HttpClient


@dataclass
class Receiver:
    """A notification endpoint: records every request; answers ``statuses`` in
    turn (the last one from then on)."""

    server: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/notify?token=in-the-url"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"{len(self.received)} notifications, expected {count}")


def start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.received.append({
                    "path": self.path, "headers": dict(self.headers.items()),
                    "body": json.loads(body), "at": time.monotonic()})
                index = min(len(receiver.received), len(receiver.statuses)) - 1
                status = receiver.statuses[index]
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


NOTE = notifications.message(new_token="tok-new", refresh_token="ref-new", auth_code="code-1")


def deliver(config: NotificationsConfig) -> tuple[bool, float]:
    async def go() -> tuple[bool, float]:
        http = HttpClient()
        start = time.monotonic()
        try:
            ok = await notifications.deliver(http, config, json.dumps(NOTE).encode())
        finally:
            await http.close()
        return ok, time.monotonic() - start
    return asyncio.run(go())


def test_message_is_tyks() -> None:
    assert NOTE == {"auth_code": "code-1", "new_oauth_token": "tok-new",
                    "refresh_token": "ref-new", "old_refresh_token": "",
                    "notification_type": "new"}
    refreshed = notifications.message(new_token="a", refresh_token="b", old_refresh_token="c")
    assert refreshed["notification_type"] == "refresh"
    assert refreshed["old_refresh_token"] == "c"


def test_delivered_as_tyk_sends_it(receiver: Receiver) -> None:
    ok, _ = deliver(NotificationsConfig(url=receiver.url, shared_secret="s3cret"))
    assert ok
    [got] = receiver.received
    assert got["path"] == "/notify?token=in-the-url"
    assert got["headers"]["User-Agent"] == "Tyk-Gatewy-Notifications"
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["X-Tyk-Shared-Secret"] == "s3cret"
    assert got["body"] == NOTE


def test_non_200_is_retried_then_stops(receiver: Receiver) -> None:
    receiver.statuses = [500, 201, 200]
    ok, _ = deliver(NotificationsConfig(url=receiver.url, retry_interval=0.2))
    assert ok
    got = receiver.wait_for(3)
    assert len(got) == 3
    assert got[1]["at"] - got[0]["at"] >= 0.19
    assert got[2]["at"] - got[1]["at"] >= 0.19


def test_three_attempts_in_all(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [503]
    with caplog.at_level("DEBUG", logger="fastgate.oauth.notifications"):
        ok, _ = deliver(NotificationsConfig(url=receiver.url, retry_interval=0.05))
    assert not ok
    time.sleep(0.2)
    assert len(receiver.received) == 3
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "answered 503" in warnings[0].getMessage()
    # The URL's query (which may hold a credential) is never logged.
    assert all("in-the-url" not in r.getMessage() for r in caplog.records)


def test_dead_receiver_costs_a_log_line(caplog: pytest.LogCaptureFixture, free_port: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/gone"
    with caplog.at_level("WARNING", logger="fastgate.oauth.notifications"):
        ok, took = deliver(NotificationsConfig(url=url, retry_interval=0.05))
    assert not ok
    assert took < 2.0
    [warning] = caplog.records
    assert "given up after 3 attempts" in warning.getMessage()


def test_send_returns_at_once_and_delivers_later(receiver: Receiver) -> None:
    receiver.statuses = [500, 200]

    async def go() -> tuple[float, int]:
        http = HttpClient()

        class Services:  # the one attribute send() uses
            pass

        services: Any = Services()
        services.http = http
        start = time.monotonic()
        notifications.send(services, NotificationsConfig(url=receiver.url,
                                                         retry_interval=0.3), NOTE)
        returned = time.monotonic() - start
        pending = notifications.in_flight()
        while notifications.in_flight():
            await asyncio.sleep(0.02)
        await http.close()
        return returned, pending

    returned, pending = asyncio.run(go())
    assert returned < 0.05
    assert pending == 1
    assert len(receiver.received) == 2


def test_no_url_no_delivery() -> None:
    async def go() -> int:
        notifications.send(Any, NotificationsConfig(), NOTE)  # type: ignore[arg-type]
        return notifications.in_flight()
    assert asyncio.run(go()) == 0


# -- end to end: tokens issued through a gateway's /oauth/token ------------------------------


def _notifying_gateway(gateway_factory: Any, echo: Any, url: str) -> Any:
    from .conftest import POLICIES, oauth_api

    api = oauth_api("oauth-api", "/oauth-api/", echo.base_url,
                    notifications={"shared_secret": "owner-secret",
                                   "oauth_on_keychange_url": url, "retry_interval": 0.2})
    gateway = gateway_factory([api], start=False)
    (gateway.root / "policies.json").write_text(json.dumps(POLICIES))
    gateway.start()
    return gateway


def test_tokens_are_announced(receiver: Receiver, gateway_factory: Any, echo: Any) -> None:
    from .conftest import REDIRECT, OAuthAdmin
    from .flow_support import approve, code_of, token_request

    gateway = _notifying_gateway(gateway_factory, echo, receiver.url)
    client = OAuthAdmin(gateway).create_client(api_id="oauth-api", policy_id="oauth-pol")
    creds = (client["client_id"], client["secret"])
    # client credentials: a new token
    first = token_request(gateway, "/oauth-api/", {"grant_type": "client_credentials"}, creds)
    assert first.status_code == 200, first.text
    [note] = receiver.wait_for(1)
    assert note["headers"]["X-Tyk-Shared-Secret"] == "owner-secret"
    assert note["headers"]["User-Agent"] == "Tyk-Gatewy-Notifications"
    assert note["body"] == {"auth_code": "", "new_oauth_token": first.json()["access_token"],
                            "refresh_token": "", "old_refresh_token": "",
                            "notification_type": "new"}
    # authorization code: the code and the refresh token too
    approved = approve(gateway, "/oauth-api/", {"response_type": "code",
                                                "client_id": client["client_id"],
                                                "redirect_uri": REDIRECT})
    code = code_of(approved.json()["redirect_to"])
    second = token_request(gateway, "/oauth-api/", {"grant_type": "authorization_code",
                                                    "code": code, "redirect_uri": REDIRECT},
                           creds).json()
    note = receiver.wait_for(2)[1]["body"]
    assert note == {"auth_code": code, "new_oauth_token": second["access_token"],
                    "refresh_token": second["refresh_token"], "old_refresh_token": "",
                    "notification_type": "new"}
    # refresh: the old refresh token named, type "refresh"
    third = token_request(gateway, "/oauth-api/", {"grant_type": "refresh_token",
                                                   "refresh_token": second["refresh_token"]},
                          creds).json()
    note = receiver.wait_for(3)[2]["body"]
    assert note == {"auth_code": "", "new_oauth_token": third["access_token"],
                    "refresh_token": third["refresh_token"],
                    "old_refresh_token": second["refresh_token"],
                    "notification_type": "refresh"}
    # a refused request announces nothing
    token_request(gateway, "/oauth-api/", {"grant_type": "client_credentials"},
                  (client["client_id"], "wrong"))
    time.sleep(0.3)
    assert len(receiver.received) == 3


def test_silent_receiver_never_delays_the_token(gateway_factory: Any, echo: Any) -> None:
    """A receiver that accepts and never answers: the token answer is immediate."""
    import socket

    from .conftest import OAuthAdmin
    from .flow_support import token_request

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the backlog; nothing is ever read
    try:
        port = silent.getsockname()[1]
        gateway = _notifying_gateway(gateway_factory, echo, f"http://127.0.0.1:{port}/n")
        client = OAuthAdmin(gateway).create_client(api_id="oauth-api", policy_id="oauth-pol")
        creds = (client["client_id"], client["secret"])
        for _ in range(5):
            start = time.monotonic()
            resp = token_request(gateway, "/oauth-api/", {"grant_type": "client_credentials"},
                                 creds)
            assert resp.status_code == 200, resp.text
            assert time.monotonic() - start < 1.0
        # The gateway keeps serving everything else meanwhile.
        assert requests.get(gateway.url("/oauth-api/x"), timeout=5).status_code in (400, 401)
    finally:
        silent.close()
