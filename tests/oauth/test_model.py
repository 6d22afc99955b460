"""The provider's state (:class:`fastgate.auth.oauth2.model.OAuthStore`) on
the memory store, a real redis-server and a Redis Cluster: clients and their
cache across nodes, single-use expiring codes, refresh rotation, revoke-all,
hashed secrets and the purge of lapsed listings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from fastgate.auth.oauth2 import model
from fastgate.auth.oauth2.model import (
    CLIENT_EVENT,
    Authorization,
    OAuthClient,
    OAuthStore,
    hash_secret,
)
from fastgate.config import OAuthConfig
from fastgate.session.cache import SessionCache

API = "api-1"
POLICIES = {"pol": {"id": "pol", "org_id": "org", "rate": 100, "per": 60, "quota_max": -1,
                    "access_rights": {API: {"api_id": API, "versions": ["Default"]}}}}


def provider(store: Any, *, clock: Callable[[], float] = time.time, **settings: Any
             ) -> OAuthStore:
    """An OAuthStore on ``store``, listening to its client events as a gateway does."""
    oauth = OAuthStore(store, SessionCache(store, lambda: POLICIES), lambda: POLICIES,
                       settings=OAuthConfig(**settings), hash_keys=True,
                       hash_key_function="", clock=clock)
    store.subscribe(lambda event, payload: oauth.forget_client(payload)
                    if event == CLIENT_EVENT else None)
    return oauth


def client(client_id: str = "c1", secret: str = "s3cret-value", **fields: Any) -> OAuthClient:
    return OAuthClient(client_id=client_id, api_id=API, secret_hash=hash_secret(secret),
                       redirect_uri="http://127.0.0.1/cb", policy_id="pol", org_id="org",
                       **fields)


def eventually(run: Any, check: Callable[[], Any], timeout: float = 5.0) -> None:
    async def wait() -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)
    run(wait())


def test_clients_saved_loaded_listed_and_deleted(store: Any, run: Any) -> None:
    oauth = provider(store)
    saved = client(meta_data={"tier": "gold"}, description="d")
    run(oauth.save_client(saved))
    loaded = run(oauth.load_client(API, "c1"))
    assert loaded == saved
    assert loaded.secret_matches("s3cret-value") and not loaded.secret_matches("s3cret-valuE")
    run(oauth.save_client(client("c2")))
    assert sorted(c.client_id for c in run(oauth.clients(API))) == ["c1", "c2"]
    assert run(oauth.clients("other-api")) == []
    assert run(oauth.delete_client(API, "c1")) is True
    assert run(oauth.load_client(API, "c1")) is None
    assert run(oauth.delete_client(API, "c1")) is False


def test_deleting_a_client_drops_its_listing_not_its_sessions(store: Any, run: Any) -> None:
    oauth = provider(store)
    run(oauth.save_client(client()))
    issued = run(oauth.issue(client(), key_rules=None, refresh=False))
    assert [key for key, _ in run(oauth.tokens(API, "c1"))] == [issued.access_key]
    run(oauth.delete_client(API, "c1"))
    assert run(oauth.tokens(API, "c1", include_expired=True)) == []
    assert run(store.get_session(issued.access_key)) is not None


@pytest.mark.redis
def test_client_cache_follows_changes_on_another_node(redis_flush: Any, run: Any) -> None:
    from fastgate.config import StorageConfig
    from fastgate.storage import create_store

    stores = []
    for _ in range(2):
        one = create_store(StorageConfig(type="redis", host=redis_flush.host,
                                         port=redis_flush.port))
        run(one.start())
        stores.append(one)
    try:
        node_a, node_b = provider(stores[0]), provider(stores[1])
        run(node_a.save_client(client(description="v1")))
        assert run(node_b.load_client(API, "c1")).description == "v1"
        # Now cached on node B: answered without the store.
        cached = node_b.client(API, "c1")
        assert isinstance(cached, OAuthClient) and cached.description == "v1"
        run(node_a.save_client(client(description="v2")))

        async def updated() -> bool:
            # Node B answers from its cache until the event makes it forget.
            found = await node_b.load_client(API, "c1")
            return found is not None and found.description == "v2"
        eventually(run, updated)
        run(node_a.delete_client(API, "c1"))

        async def gone() -> bool:
            return await node_b.load_client(API, "c1") is None
        eventually(run, gone)
    finally:
        for one in stores:
            run(one.close())


def test_codes_are_single_use(store: Any, run: Any) -> None:
    oauth = provider(store)
    grant = Authorization(client_id="c1", redirect_uri="http://127.0.0.1/cb", scope="read")
    code = run(oauth.new_code(API, grant))
    assert run(oauth.take_code("other-api", code)) is None  # another API's provider
    assert run(oauth.take_code(API, code)) == grant
    assert run(oauth.take_code(API, code)) is None


def test_codes_expire(store: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "CODE_LIFETIME", 1)
    oauth = provider(store)
    code = run(oauth.new_code(API, Authorization(client_id="c1", redirect_uri="x")))
    run(asyncio.sleep(1.3))
    assert run(oauth.take_code(API, code)) is None


def test_refresh_rotation(store: Any, run: Any) -> None:
    oauth = provider(store)
    mine, theirs = client(), client("c2")
    first = run(oauth.issue(mine, key_rules=None, refresh=True))
    assert first.session["oauth_client_id"] == "c1"
    assert run(store.get_session(first.access_key)) is not None
    # Another client's rotation is refused, and the token stays usable by its owner.
    assert run(oauth.rotate(theirs, first.refresh_token)) is None
    second = run(oauth.rotate(mine, first.refresh_token))
    assert second is not None and second.refresh_token != first.refresh_token
    assert run(store.get_session(first.access_key)) is None  # the old session went
    assert run(store.get_session(second.access_key)) is not None
    assert run(oauth.rotate(mine, first.refresh_token)) is None  # used up
    listed = [key for key, _ in run(oauth.tokens(API, "c1"))]
    assert listed == [second.access_key]


def test_revoke_all(store: Any, run: Any) -> None:
    oauth = provider(store)
    mine = [run(oauth.issue(client(), key_rules=None, refresh=True)) for _ in range(3)]
    theirs = run(oauth.issue(client("c2"), key_rules=None, refresh=True))
    assert run(oauth.revoke_all(API, "c1")) == 6
    for token in mine:
        assert run(store.get_session(token.access_key)) is None
        assert run(oauth.refresh_grant(API, token.refresh_token)) is None
    assert run(store.get_session(theirs.access_key)) is not None
    assert run(oauth.refresh_grant(API, theirs.refresh_token)) is not None


def test_secrets_and_tokens_never_reach_the_store(store: Any, store_backend: Any, run: Any,
                                                  request: pytest.FixtureRequest) -> None:
    oauth = provider(store)
    secret = "the-raw-client-secret-4711"
    run(oauth.save_client(client(secret=secret)))
    code = run(oauth.new_code(API, Authorization(client_id="c1", redirect_uri="x")))
    issued = run(oauth.issue(client(secret=secret), key_rules=None, refresh=True))
    record = run(store.get_record(model.CLIENT_TABLE, f"{API}/c1"))
    assert secret.encode() not in record
    assert orjson.loads(record)["secret"].startswith("sha256$")
    raws = [secret, code, issued.refresh_token, issued.access_token]
    for table in (model.CLIENT_TABLE, model.CODE_TABLE, model.REFRESH_TABLE, model.TOKEN_TABLE):
        for name in run(store.list_records(table)):
            data = run(store.get_record(table, name)) or b""
            for raw in raws:
                assert raw not in name and raw.encode() not in data, table
    if store_backend.kind == "redis":
        redis = request.getfixturevalue("redis_flush").client()
        for key in redis.scan_iter("*"):
            dumped = key + (redis.dump(key) or b"")
            for raw in raws:
                assert raw.encode() not in dumped, key


def test_purge_lapsed_with_a_retain_period(store: Any, run: Any) -> None:
    now = [time.time()]
    oauth = provider(store, clock=lambda: now[0], expired_retain_period=60)
    real = now[0]
    now[0] = real - 3600 - 600
    lapsed = run(oauth.issue(client(), key_rules=None, refresh=False))
    now[0] = real - 3600 - 10
    retained = run(oauth.issue(client(), key_rules=None, refresh=False))
    now[0] = real
    live = run(oauth.issue(client(), key_rules=None, refresh=False))
    assert run(oauth.purge_lapsed()) == 1
    left = {key for key, _ in run(oauth.tokens(API, "c1", include_expired=True))}
    assert left == {retained.access_key, live.access_key}
    assert lapsed.access_key not in left
    assert [key for key, _ in run(oauth.tokens(API, "c1"))] == [live.access_key]


def test_purge_lapsed_without_a_retain_period_purges_nothing(store: Any, run: Any) -> None:
    """Tyk's ``purgeLapsedOAuthTokens`` returns at once when the period is 0."""
    now = [time.time() - 86400]
    oauth = provider(store, clock=lambda: now[0])
    old = run(oauth.issue(client(), key_rules=None, refresh=False))
    now[0] = time.time()
    assert run(oauth.purge_lapsed()) == 0
    assert [key for key, _ in run(oauth.tokens(API, "c1", include_expired=True))] == \
        [old.access_key]
