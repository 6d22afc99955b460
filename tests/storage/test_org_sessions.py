"""Organisation sessions (Tyk's org keys): stored apart from keys, once per
backend; on Redis under Tyk's own name so a Tyk gateway reads the same records."""

from __future__ import annotations

from pathlib import Path

from fastgate.storage.memory import MemoryStore

from .conftest import REDIS_ONLY


def test_org_session_lifecycle(store, run):
    async def body() -> None:
        assert await store.get_org_session("org1") is None
        assert await store.list_org_sessions() == []
        await store.set_org_session("org1", b'{"quota_max":10}')
        await store.set_org_session("org*2", b'{"quota_max":20}')
        await store.set_session("org1", b'{"key":true}')  # a key of the same name
        assert await store.get_org_session("org1") == b'{"quota_max":10}'
        assert sorted(await store.list_org_sessions()) == ["org*2", "org1"]
        assert await store.list_sessions() == ["org1"]
        assert await store.delete_org_session("org1") is True
        assert await store.delete_org_session("org1") is False
        assert await store.get_org_session("org1") is None
        assert await store.get_session("org1") == b'{"key":true}'

    run(body())


@REDIS_ONLY
def test_redis_org_sessions_are_stored_as_tyk_names_them(store_backend, store, run,
                                                          redis_server):
    run(store.set_org_session("5e9d9544a1dcd60001d0ed20", b"{}"))
    client = redis_server.client()
    assert client.get("orgkey.5e9d9544a1dcd60001d0ed20") == b"{}"
    client.set("orgkey.written-by-tyk", b'{"rate":1}')
    assert run(store.get_org_session("written-by-tyk")) == b'{"rate":1}'
    assert sorted(run(store.list_org_sessions())) == ["5e9d9544a1dcd60001d0ed20",
                                                      "written-by-tyk"]


def test_org_sessions_survive_a_restart_of_the_journal(tmp_path: Path, run):
    path = str(tmp_path / "journal")
    store = MemoryStore(path)
    run(store.start())
    run(store.set_org_session("org1", b"{}"))
    run(store.set_org_session("org2", b"{}"))
    run(store.delete_org_session("org2"))
    run(store.close())
    again = MemoryStore(path)
    run(again.start())
    assert run(again.list_org_sessions()) == ["org1"]
    run(again.close())
