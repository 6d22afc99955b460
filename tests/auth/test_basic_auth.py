"""Basic auth: Tyk's status/message pairs, RFC 7617 colon handling, and the
bcrypt result cache; on the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
import requests

from .conftest import session

REALM = 'Basic realm="Basic API"'


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def gw(gateway_factory, make_api, echo, storage):
    api = make_api("b", "/b/", echo.base_url, name="Basic API", use_keyless=False,
                   use_basic_auth=True)
    gateway = gateway_factory([api], storage=storage)
    return gateway


def add_user(admin: Any, user: str, password: str, **fields: Any) -> None:
    admin.add_key(user, session(("b",), basic_auth_data={"password": password}, **fields))


CASES = [
    # (id, headers, status, message, challenge)
    ("no header", {}, 401, "Authorization field missing", True),
    ("right password", basic("alice", "s3cret"), 200, None, False),
    ("wrong password", basic("alice", "nope"), 401, "User not authorised", True),
    ("unknown user", basic("mallory", "s3cret"), 401, "User not authorised", True),
    ("not two parts", {"Authorization": "Basic"}, 400,
     "Attempted access with malformed header, header not in basic auth format", False),
    ("three parts", {"Authorization": "Basic YWxpY2U6czNjcmV0 x"}, 400,
     "Attempted access with malformed header, header not in basic auth format", False),
    ("bad base64", {"Authorization": "Basic !!!notbase64"}, 400,
     "Attempted access with malformed header, auth data not encoded correctly", False),
    ("no colon", {"Authorization": "Basic " + base64.b64encode(b"alice").decode()}, 400,
     "Attempted access with malformed header, values not in basic auth format", False),
    # fastgate differs from Tyk: RFC 7617 splits at the first colon only.
    ("colon in password", basic("carol", "pa:ss:word"), 200, None, False),
]


@pytest.mark.parametrize(("headers", "status", "message", "challenge"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_basic_auth(gw, admin_for, headers, status, message, challenge):
    admin = admin_for(gw)
    add_user(admin, "alice", "s3cret")
    add_user(admin, "carol", "pa:ss:word")
    resp = requests.get(gw.url("/b/x"), headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    if message is not None:
        assert resp.json() == {"error": message}
    if challenge:
        assert resp.headers.get("WWW-Authenticate") == REALM
    else:
        assert "WWW-Authenticate" not in resp.headers


def test_password_change_applies_at_once(gw, admin_for):
    admin = admin_for(gw)
    add_user(admin, "alice", "s3cret")
    assert requests.get(gw.url("/b/x"), headers=basic("alice", "s3cret"),
                        timeout=10).status_code == 200
    admin.update_key("alice", session(("b",), basic_auth_data={"password": "n3w"}))
    assert requests.get(gw.url("/b/x"), headers=basic("alice", "s3cret"),
                        timeout=10).status_code == 401
    assert requests.get(gw.url("/b/x"), headers=basic("alice", "n3w"),
                        timeout=10).status_code == 200


def test_password_never_returned(gw, admin_for):
    admin = admin_for(gw)
    add_user(admin, "alice", "s3cret")
    resp = admin.call("GET", "/tyk/keys/alice")
    assert resp.status_code == 200, resp.text
    assert "s3cret" not in resp.text
    assert "password" not in (resp.json().get("basic_auth_data") or {})


# -- the bcrypt cache, in process ---------------------------------------------


class FakeExchange:
    def __init__(self, headers: dict[bytes, bytes]) -> None:
        self.headers = headers
        self.session = None
        self.session_key = None

    def header(self, lname: bytes) -> bytes | None:
        return self.headers.get(lname)


def test_bcrypt_runs_once_for_repeated_requests(monkeypatch):
    """A successful check is remembered: repeated requests never pay bcrypt."""
    import bcrypt

    import fastgate.auth.basic_auth as basic_auth_module
    from fastgate.apidef import parse_api_definition
    from fastgate.auth.jwt.jwks import JwksCache
    from fastgate.config import parse_gateway_config
    from fastgate.limits import Limiter
    from fastgate.outbound import HttpClient
    from fastgate.plugins.bundles import BundleCache
    from fastgate.services import Services
    from fastgate.session.basic import hash_password
    from fastgate.session.cache import SessionCache
    from fastgate.storage.certificates import CertificateCache
    from fastgate.storage.memory import MemoryStore

    calls = []
    real_check = basic_auth_module.check_password

    def counting_check(password: bytes, stored_session: dict[str, Any]) -> bool:
        calls.append(1)
        return real_check(password, stored_session)

    monkeypatch.setattr(basic_auth_module, "check_password", counting_check)
    from fastgate.auth.oauth2.model import OAuthStore

    spec = parse_api_definition({"api_id": "b", "name": "B", "use_basic_auth": True,
                                 "proxy": {"listen_path": "/b/",
                                           "target_url": "http://127.0.0.1:1"}}, "")
    config = parse_gateway_config({"secret": "s", "app_path": "."}, "/tmp/gw.json")
    store = MemoryStore(None)

    http = HttpClient()
    sessions = SessionCache(store, lambda: {})
    services = Services(config=config, store=store, sessions=sessions,
                        limiter=Limiter(config, store), http=http, policies=dict,
                        jwks=JwksCache(http), certificates=CertificateCache(store),
                        oauth=OAuthStore(store, sessions, dict, settings=config.oauth,
                                         hash_keys=True, hash_key_function=""),
                        bundles=BundleCache(config.plugins))

    async def scenario() -> list[Any]:
        await store.start()
        from fastgate.session import storage_key
        from fastgate.session.basic import basic_auth_key

        skey = storage_key(basic_auth_key("", "alice", config.hash_key_function),
                           hash_keys=config.hash_keys,
                           hash_key_function=config.hash_key_function)
        await store.set_session(skey, (
            b'{"basic_auth_data": {"password": "%s", "hash_type": "bcrypt"}}'
            % hash_password("s3cret").encode()))
        middleware = basic_auth_module.BasicAuth(spec, spec.auth_settings("basic_auth"),
                                                 services)
        outcomes = []
        for password in ["s3cret"] * 20 + ["wrong"]:
            token = base64.b64encode(b"alice:" + password.encode())
            ex = FakeExchange({b"authorization": b"Basic " + token})
            outcome = middleware.process(ex)
            if outcome is not None and not isinstance(outcome, bytes):
                outcome = await outcome
            outcomes.append((outcome, ex.session is not None))
        await store.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert all(o == (None, True) for o in outcomes[:20])
    assert outcomes[20][0] is not None and b"User not authorised" in outcomes[20][0]
    # One bcrypt for the twenty good requests, one for the wrong password.
    assert len(calls) == 2
    assert bcrypt  # the real bcrypt did the checks
