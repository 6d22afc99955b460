"""The memory store's journal (storage.path): nothing acknowledged is lost across a
restart or a crash, the file stays compact, and damage is refused loudly unless
it is the torn last line a crash leaves behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from fastgate.config import StorageConfig
from fastgate.storage import StoreError, create_store
from fastgate.storage.journal import Journal
from fastgate.storage.memory import MemoryStore

CHILD = Path(__file__).with_name("journal_child.py")


@pytest.fixture
def journal(tmp_path: Path, run):
    """``journal(**options) -> started MemoryStore`` on one journal file; closed at teardown.

    ``journal.path`` is the file; ``journal.reopen(store)`` closes ``store`` and
    starts a new one on the same file (a restart).
    """
    stores: list[MemoryStore] = []

    class Opener:
        path = tmp_path / "fastgate.journal"

        def __call__(self, **options) -> MemoryStore:
            store = MemoryStore(str(self.path), **options)
            run(store.start())
            stores.append(store)
            return store

        def reopen(self, store: MemoryStore, **options) -> MemoryStore:
            run(store.close())
            return self(**options)

    yield Opener()
    for store in stores:
        run(store.close())


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_sessions_and_policies_survive_a_restart(journal, run):
    store = journal()

    async def fill():
        await store.set_session("k1", b'{"rate":1}')
        await store.set_session("k2", b'{"rate":2}')
        await store.set_session("k1", b'{"rate":10}')
        await store.set_session("bin", bytes(range(256)))
        await store.set_session("gone", b"{}")
        assert await store.delete_session("gone") is True
        await store.set_policy("gold", b'{"rate":100}')
        await store.set_policy("tmp", b"{}")
        assert await store.delete_policy("tmp") is True

    run(fill())
    again = journal.reopen(store)
    assert sorted(run(again.list_sessions())) == ["bin", "k1", "k2"]
    assert run(again.get_session("k1")) == b'{"rate":10}'
    assert run(again.get_session("bin")) == bytes(range(256))
    assert run(again.get_policies()) == {"gold": b'{"rate":100}'}


def test_create_store_journals_when_path_is_set(tmp_path, run):
    config = StorageConfig(type="memory", path=str(tmp_path / "j"))
    store = create_store(config)
    run(store.start())
    run(store.set_session("k", b"{}"))
    run(store.close())
    store = create_store(config)
    run(store.start())
    try:
        assert run(store.get_session("k")) == b"{}"
    finally:
        run(store.close())


def test_the_file_is_readable_json_lines(journal, run):
    store = journal()
    run(store.set_session("k", b'{"a":"\xc3\xbc"}'))
    run(store.set_session("b", b"\xff\x00"))
    run(store.delete_session("k"))
    assert lines(journal.path) == [
        b'{"fastgate-journal":1}',
        b'{"t":"session","op":"set","k":"k","v":"{\\"a\\":\\"\xc3\xbc\\"}"}',
        b'{"t":"session","op":"set","k":"b","b":"/wA="}',
        b'{"t":"session","op":"del","k":"k"}',
    ]


def test_deleting_a_missing_key_writes_nothing(journal, run):
    store = journal()
    size = journal.path.stat().st_size
    assert run(store.delete_session("nope")) is False
    assert run(store.delete_policy("nope")) is False
    assert journal.path.stat().st_size == size


def test_changes_made_together_share_one_fsync(journal, run, monkeypatch):
    writes: list[int] = []
    original = Journal._append_sync

    def counting(self, data: bytes, size_after: int) -> int:
        writes.append(data.count(b"\n"))
        return original(self, data, size_after)

    monkeypatch.setattr(Journal, "_append_sync", counting)
    store = journal()

    async def burst():
        await asyncio.gather(*(store.set_session(f"k{i}", b"{}") for i in range(500)))

    run(burst())
    assert sum(writes) == 500
    assert len(writes) <= 5, writes  # group commit: one write+fsync per batch
    again = journal.reopen(store)
    assert len(run(again.list_sessions())) == 500


def test_a_change_is_acknowledged_only_once_on_disk(journal, run):
    store = journal()

    async def body():
        await store.set_session("k", b"v")
        # Acknowledged: the record is in the file already (and fsync'd).
        assert lines(journal.path)[-1] == b'{"t":"session","op":"set","k":"k","v":"v"}'

    run(body())


def test_compaction_keeps_the_data_and_shrinks_the_file(journal, run):
    # Grow the journal with compaction out of reach...
    store = journal(compact_min_bytes=1 << 40)

    async def churn(store: MemoryStore, rounds: int) -> None:
        for i in range(rounds):
            await store.set_session("hot", b'{"n":%d}' % i)
        await store.set_session("cold", b'{"keep":true}')
        await store.set_policy("gold", b'{"rate":100}')

    run(churn(store, 2000))
    grown = journal.path.stat().st_size
    assert grown > 60_000
    # ...then reopen with the default ratio: the next change compacts.
    store = journal.reopen(store, compact_min_bytes=1024)
    run(store.set_session("hot", b'{"n":"last"}'))
    assert store.journal is not None and store.journal.compactions == 1
    compacted = journal.path.stat().st_size
    assert compacted < 400, compacted
    assert len(lines(journal.path)) == 4  # header, hot, cold, gold
    again = journal.reopen(store)
    assert run(again.get_session("hot")) == b'{"n":"last"}'
    assert run(again.get_session("cold")) == b'{"keep":true}'
    assert run(again.get_policies()) == {"gold": b'{"rate":100}'}


def test_the_journal_stays_within_about_twice_the_live_data(journal, run):
    store = journal(compact_min_bytes=4096)
    sizes = []

    async def churn():
        for i in range(3000):
            await store.set_session(f"k{i % 50}", b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 97)))
            if i % 7 == 0:
                await store.delete_session(f"k{(i * 3) % 50}")
            sizes.append(journal.path.stat().st_size)

    run(churn())
    live = store.journal.live_bytes if store.journal else 0
    assert store.journal is not None and store.journal.compactions > 10
    assert max(sizes) < max(2.2 * live, 4096 + 2000), (max(sizes), live)

    def contents(store: MemoryStore) -> dict[str, bytes | None]:
        return {k: run(store.get_session(k)) for k in run(store.list_sessions())}

    before = contents(store)
    assert contents(journal.reopen(store)) == before


def test_unknown_tables_are_kept_through_compaction(journal, run):
    journal.path.write_bytes(
        b'{"fastgate-journal":1}\n'
        b'{"t":"oauth-client","op":"set","k":"c1","v":"{}"}\n'
    )
    store = journal(compact_min_bytes=0, compact_ratio=0.5)
    run(store.set_session("k", b"{}"))  # compacts at once
    assert store.journal is not None and store.journal.compactions == 1
    assert b'{"t":"oauth-client","op":"set","k":"c1","v":"{}"}' in lines(journal.path)


@pytest.mark.parametrize("tail", [
    b'{"t":"session","op":"set","k":"torn","v":"{\\"ra',
    b'{"t":"session","op":"set","k":"torn","v":"x"}',  # complete JSON, newline missing
    b"\x00\x00\x00",
])
def test_a_torn_last_line_is_ignored_and_cut_off(journal, run, tail, caplog):
    store = journal()
    run(store.set_session("kept", b"{}"))
    run(store.close())
    with journal.path.open("ab") as f:
        f.write(tail)
    store = journal()
    assert run(store.list_sessions()) == ["kept"]
    assert "torn final record" in caplog.text
    # The torn bytes are gone: the next record starts on its own line.
    run(store.set_session("next", b"{}"))
    again = journal.reopen(store)
    assert sorted(run(again.list_sessions())) == ["kept", "next"]
    assert tail not in journal.path.read_bytes()


def test_a_torn_header_starts_an_empty_journal(journal, run):
    journal.path.write_bytes(b'{"fastgate-jour')
    store = journal()
    assert run(store.list_sessions()) == []
    run(store.set_session("k", b"{}"))
    assert run(journal.reopen(store).get_session("k")) == b"{}"


@pytest.mark.parametrize(("bad", "why"), [
    (b'{"t":"session","op":"set","k":"x","v":"{}"', "not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b'{"t":"session","op":"set","v":"{}"}', "'k'"),
    (b'{"op":"set","k":"x","v":"{}"}', "'t'"),
    (b'{"t":"session","op":"upsert","k":"x","v":"{}"}', "unknown op"),
    (b'{"t":"session","op":"set","k":"x","v":"{}","b":"e30="}', "exactly one"),
    (b'{"t":"session","op":"set","k":"x","b":"not base64!"}', "base64"),
    (b"", "not JSON"),
])
def test_a_corrupt_record_in_the_middle_is_refused(journal, run, bad, why):
    store = journal()
    run(store.set_session("a", b"{}"))
    run(store.set_session("b", b"{}"))
    run(store.close())
    content = lines(journal.path)
    content.insert(2, bad)  # line 3, between the two sets
    journal.path.write_bytes(b"\n".join(content) + b"\n")
    with pytest.raises(StoreError) as info:
        journal()
    assert f"{journal.path}:3:" in str(info.value)
    assert why in str(info.value)


def test_a_foreign_file_is_refused(journal):
    journal.path.write_bytes(b"session data\nmore\n")
    with pytest.raises(StoreError, match=r":1: corrupt journal record \(not a fastgate journal"):
        journal()
    assert journal.path.read_bytes() == b"session data\nmore\n"


def test_a_newer_format_is_refused(journal):
    journal.path.write_bytes(b'{"fastgate-journal":2}\n')
    with pytest.raises(StoreError, match="format 2 is not supported"):
        journal()


def test_a_journal_has_one_owner(journal, run):
    journal()
    with pytest.raises(StoreError, match="in use by another process"):
        journal()


def test_a_missing_directory_is_refused(tmp_path, run):
    store = MemoryStore(str(tmp_path / "missing" / "journal"))
    with pytest.raises(StoreError, match="does not exist"):
        run(store.start())


def test_stale_compaction_files_are_removed(journal, run):
    """A crash during a compaction leaves a temporary snapshot: the next owner removes it."""
    stale = journal.path.with_name(journal.path.name + ".compact-99999.tmp")
    other = journal.path.with_name("other.compact-1.tmp")
    stale.write_bytes(b"half a snapshot")
    other.write_bytes(b"not ours")
    journal()
    assert not stale.exists()
    assert other.exists()


def test_a_write_error_is_reported_and_refuses_later_changes(tmp_path):
    """A real failing disk write (RLIMIT_FSIZE -> EFBIG) in a child process."""
    path = tmp_path / "j"
    child = subprocess.run(
        [sys.executable, str(CHILD), "fsize", str(path), "20000"],
        capture_output=True, timeout=30, check=True,
    )
    out = child.stdout.decode().splitlines()
    acked = [line.split()[1] for line in out if line.startswith("set ")]
    assert len(acked) > 10
    failed = [line for line in out if line.startswith("failed ")]
    assert failed and "journal write failed" in failed[0] and str(path) in failed[0]
    assert any(line.startswith("refused ") for line in out), out[-3:]
    assert "read True" in out
    # Everything acknowledged before the failure is there after a restart.
    store = MemoryStore(str(path))

    async def check():
        await store.start()
        try:
            return await store.list_sessions()
        finally:
            await store.close()

    listed = asyncio.run(check())
    assert set(acked) <= set(listed)


@pytest.mark.parametrize("kill_after", [1, 300, 3000])
def test_a_crash_mid_burst_loses_no_acknowledged_change(tmp_path, kill_after):
    """SIGKILL a process creating and deleting sessions as fast as it can (16
    writers, compactions mid-burst): every change it acknowledged -- printed
    once its await returned -- is in the journal, which loads."""
    path = tmp_path / "j"
    proc = subprocess.Popen([sys.executable, str(CHILD), "burst", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    created = 0
    deadline = time.monotonic() + 30
    try:
        while created < kill_after:
            line = proc.stdout.readline()
            assert line, f"child died: {proc.stderr.read().decode()}"
            out.append(line)
            created += line.startswith(b"set ")
            assert time.monotonic() < deadline, "child too slow"
        proc.send_signal(signal.SIGKILL)
        out.extend(proc.stdout.read().splitlines(keepends=True))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if out and not out[-1].endswith(b"\n"):
        out.pop()  # the kill cut this line short: not an acknowledgement
    words = [line.split() for line in out]
    assert words[0] == [b"policy", b"gold"]
    compactions = max([int(w[1]) for w in words if w[0] == b"compactions"], default=0)
    if kill_after >= 3000:
        assert compactions > 0, "the burst never compacted: the test lost its edge"
    created_keys = {w[1].decode() for w in words if w[0] == b"set"}
    deleted_keys = {w[1].decode() for w in words if w[0] == b"del"}
    assert len(created_keys) >= kill_after

    store = MemoryStore(str(path))

    async def load():
        await store.start()
        try:
            found = {k: await store.get_session(k) for k in created_keys | deleted_keys}
            return found, await store.get_policies()
        finally:
            await store.close()

    found, policies = asyncio.run(load())
    assert policies == {"gold": b'{"rate":100}'}
    missing = [k for k in created_keys - deleted_keys if found[k] is None]
    assert not missing, f"{len(missing)} acknowledged sessions lost, e.g. {missing[:5]}"
    for key in created_keys - deleted_keys:
        assert b'"alias": "%s"' % key.encode() in found[key]
    resurrected = [k for k in deleted_keys if found[k] is not None]
    assert not resurrected, f"acknowledged deletions undone: {resurrected[:5]}"


def test_a_forked_child_cannot_write_the_parents_journal(journal, run):
    store = journal()
    run(store.set_session("k", b"{}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: a write must fail at once, not hang
        code = 1
        try:
            asyncio.run(store.set_session("child", b"{}"))
        except StoreError as exc:
            code = 0 if "open the store after forking" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run(store.get_session("child")) is None
    run(store.set_session("parent", b"{}"))  # the parent is unaffected


def test_reads_never_suspend_with_a_journal(journal, run):
    """Only changes wait for the disk; the session cache drives reads with send(None)."""
    store = journal()
    run(store.set_session("k", b"v"))
    run(store.set_policy("p", b"{}"))
    for coro, expected in [(store.get_session("k"), b"v"), (store.list_sessions(), ["k"]),
                           (store.get_policies(), {"p": b"{}"})]:
        with pytest.raises(StopIteration) as stop:
            coro.send(None)
        assert stop.value.value == expected
