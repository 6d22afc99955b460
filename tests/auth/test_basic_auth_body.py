"""Basic auth ``extract_from_body``: credentials read from the request body
with the two regexes when the header gives none (Tyk's order), the body still
forwarded intact."""

from __future__ import annotations

import hashlib
import socket

import pytest
import requests

from .conftest import session
from .test_basic_auth import basic


@pytest.fixture
def gw(gateway_factory, make_api, echo, storage, admin_for):
    api = make_api("b", "/b/", echo.base_url, name="Body API", use_keyless=False,
                   use_basic_auth=True, org_id="",
                   basic_auth={"extract_from_body": True,
                               "body_user_regexp": "user=([^&]+)",
                               "body_password_regexp": "pass=([^&]+)"})
    gateway = gateway_factory([api], storage=storage)
    admin_for(gateway).add_key("alice", session(("b",), basic_auth_data={"password": "s3cret"}))
    return gateway


CASES = [
    # (id, body, headers, status, message)
    ("credentials in body", b"user=alice&pass=s3cret&x=1", {}, 200, None),
    ("wrong password in body", b"user=alice&pass=nope", {}, 401, "User not authorised"),
    ("no user in body", b"pass=s3cret", {}, 400, "Body do not contain username"),
    ("no password in body", b"user=alice", {}, 400, "Body do not contain password"),
    ("header wins", b"user=alice&pass=nope", basic("alice", "s3cret"), 200, None),
]


@pytest.mark.parametrize(("body", "headers", "status", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_extract_from_body(gw, body, headers, status, message):
    resp = requests.post(gw.url("/b/login"), data=body, headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    if message is not None:
        assert resp.json() == {"error": message}
    else:
        echoed = resp.json()
        assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_extract_from_body_with_expect_continue(gw):
    body = b"user=alice&pass=s3cret"
    head = (b"POST /b/login HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
            b"Expect: 100-continue\r\n\r\n" % len(body))
    with socket.create_connection((gw.host, gw.port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(body)
        data = b""
        while b"body_sha256" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
    assert hashlib.sha256(body).hexdigest().encode() in data
