"""An append-only, fsync'd journal of named tables of bytes (the memory store's disk).

Theory of operation
-------------------
* **Format.** JSON lines (UTF-8). Line 1 is the header ``{"fastgate-journal":1}``.
  Every other line is one change to one table::

      {"t":"session","op":"set","k":"<key>","v":"<value as UTF-8 text>"}
      {"t":"session","op":"set","k":"<key>","b":"<value as base64>"}   (value not UTF-8)
      {"t":"session","op":"del","k":"<key>"}

  A ``set`` may carry ``"x": <unix time>``, the record's deadline: the record
  is dropped when it passes (a key's lifetime).  Replaying the lines in order
  rebuilds every table; records whose deadline has passed are dropped at
  replay, so a restart never brings an expired record back.  A record without
  ``"x"`` lives until it is deleted: journals written before deadlines existed
  load unchanged (and a reader that does not know ``"x"`` keeps the record).
  Table names are free-form (``session``, ``policy``, ``orgkey``, later
  ``oauth-client``…): the journal keeps tables it does not know, so an older
  reader never drops a newer writer's data.
* **Durability.** The owner applies a change to its in-memory tables at once and
  hands the record to :meth:`Journal.append`, whose future resolves only after
  the record is written *and* fsync'd: a change is acknowledged to the caller
  only when it is on disk. Records appended during one event-loop iteration,
  and those arriving while a write is in progress, go out as one write and one
  fsync (group commit). The write and fsync run in one dedicated thread so a
  slow disk never stalls the event loop; batches are strictly ordered.
* **Compaction.** When the file would grow past ``compact_ratio`` times the live
  data (and past ``compact_min_bytes``), the next batch is written as a full
  snapshot instead of an append: a temporary file in the same directory,
  fsync, atomic ``rename`` over the journal, fsync of the directory. A crash at
  any point leaves either the old journal or the new one, never a mix.
* **Crash safety.** A process killed mid-write can only tear the *last* line,
  which then lacks its trailing newline: loading ignores it (it was never
  acknowledged) and truncates it away before appending. A complete line that
  does not parse is corruption, not a crash: loading refuses it with
  :class:`StoreError` naming the file and the line.
* **Failure.** If a write or fsync fails, what reached the disk is unknown
  (after a failed fsync the kernel may have dropped the dirty pages), so the
  journal refuses every later change with :class:`StoreError` until the
  process restarts; the failed change itself is reported to its caller and
  never acknowledged.
* **One owner.** The journal holds an exclusive ``flock`` on its file; a second
  process opening it gets :class:`StoreError` instead of interleaving records.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Mapping

import orjson

from fastgate.storage.base import StoreError

__all__ = ["Deadlines", "Journal", "Tables"]

log = logging.getLogger("fastgate.storage")

Tables = dict[str, dict[str, bytes]]
#: table -> key -> unix time after which the record is gone (only records that have one).
Deadlines = dict[str, dict[str, float]]

HEADER = b'{"fastgate-journal":1}\n'
FORMAT_VERSION = 1
DEFAULT_COMPACT_RATIO = 2.0
DEFAULT_COMPACT_MIN_BYTES = 1 << 20


def encode_set(table: str, key: str, value: bytes, deadline: float = 0.0) -> bytes:
    """One ``set`` record line, newline included; ``deadline`` > 0 is written as ``"x"``."""
    record: dict[str, object]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        record = {"t": table, "op": "set", "k": key, "b": base64.b64encode(value).decode("ascii")}
    else:
        record = {"t": table, "op": "set", "k": key, "v": text}
    if deadline > 0:
        record["x"] = deadline
    return orjson.dumps(record) + b"\n"


def encode_delete(table: str, key: str) -> bytes:
    """One ``del`` record line, newline included."""
    return orjson.dumps({"t": table, "op": "del", "k": key}) + b"\n"


def _corrupt(path: str, lineno: int, why: str) -> StoreError:
    return StoreError(f"{path}:{lineno}: corrupt journal record ({why}); refusing to load it")


def _apply_line(tables: Tables, deadlines: Deadlines, line: bytes, path: str,
                lineno: int) -> None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _corrupt(path, lineno, f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise _corrupt(path, lineno, "not a JSON object")
    table, op, key = record.get("t"), record.get("op"), record.get("k")
    if not isinstance(table, str) or not table:
        raise _corrupt(path, lineno, "'t' is not a table name")
    if not isinstance(key, str):
        raise _corrupt(path, lineno, "'k' is not a string")
    if op == "del":
        tables.get(table, {}).pop(key, None)
        deadlines.get(table, {}).pop(key, None)
        return
    if op != "set":
        raise _corrupt(path, lineno, f"unknown op {op!r}")
    text, b64 = record.get("v"), record.get("b")
    if isinstance(text, str) and b64 is None:
        value = text.encode("utf-8")
    elif isinstance(b64, str) and text is None:
        try:
            value = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _corrupt(path, lineno, "'b' is not base64") from None
    else:
        raise _corrupt(path, lineno, "a set needs exactly one of 'v' (text) or 'b' (base64)")
    deadline = record.get("x")
    if deadline is not None and (isinstance(deadline, bool)
                                 or not isinstance(deadline, int | float) or deadline <= 0):
        raise _corrupt(path, lineno, "'x' is not a positive unix time")
    tables.setdefault(table, {})[key] = value
    if deadline is None:
        deadlines.get(table, {}).pop(key, None)  # a plain set lives until deleted
    else:
        deadlines.setdefault(table, {})[key] = float(deadline)


def load(path: str, now: float | None = None) -> tuple[Tables, Deadlines, int, int]:
    """Replay the journal at ``path``.

    Returns ``(tables, deadlines, good_length, torn_lines)``: the live records
    and the deadlines of those that have one (records whose deadline is not
    after ``now``, default the current time, are dropped), the file's bytes up
    to the end of its last complete line, and 1 if a torn final line was
    ignored.  Raises StoreError for a corrupt complete line or a foreign file.
    """
    with open(path, "rb") as f:
        data = f.read()
    tables: Tables = {}
    deadlines: Deadlines = {}
    if not data:
        return tables, deadlines, 0, 0
    end = data.rfind(b"\n") + 1  # 0 when not even the header is complete
    torn = 1 if end < len(data) else 0
    if end == 0:
        # Not even one complete line: a crash while the file was being created
        # cannot produce this (journals are created by rename), so only accept
        # a torn header.
        if not HEADER.startswith(data):
            raise _corrupt(path, 1, "not a fastgate journal")
        return tables, deadlines, 0, torn
    lines = data[:end].split(b"\n")
    lines.pop()  # the empty string after the final newline
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or "fastgate-journal" not in header:
        raise _corrupt(path, 1, "not a fastgate journal (no header)")
    if header["fastgate-journal"] != FORMAT_VERSION:
        raise StoreError(
            f"{path}:1: journal format {header['fastgate-journal']!r} is not supported "
            f"(this fastgate reads format {FORMAT_VERSION})"
        )
    for lineno, line in enumerate(lines[1:], start=2):
        _apply_line(tables, deadlines, line, path, lineno)
    drop_expired(tables, deadlines, time.time() if now is None else now)
    return tables, deadlines, end, torn


def drop_expired(tables: Tables, deadlines: Deadlines, now: float) -> list[tuple[str, str]]:
    """Remove from ``tables`` (and ``deadlines``) every record whose deadline is
    not after ``now``; the (table, key) pairs removed."""
    gone = []
    for name, table_deadlines in deadlines.items():
        expired = [key for key, deadline in table_deadlines.items() if deadline <= now]
        for key in expired:
            del table_deadlines[key]
            tables.get(name, {}).pop(key, None)
            gone.append((name, key))
    return gone


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Journal:
    """The on-disk log of a set of tables; see the module docstring.

    Use: ``tables = journal.open()`` (once, synchronously), then for every
    change already applied to ``tables`` (and to :attr:`deadlines`, the
    records' deadlines, which the owner keeps up to date the same way):
    ``await journal.append(line, delta)`` where ``delta`` is how the size of
    the live data changed. Finally ``await journal.close()``.
    """

    def __init__(
        self,
        path: str,
        *,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    ) -> None:
        self.path = path
        self.compact_ratio = compact_ratio
        self.compact_min_bytes = compact_min_bytes
        self.compactions = 0
        self._fd = -1
        self._tables: Tables = {}
        self._deadlines: Deadlines = {}
        self._file_size = 0  # bytes on disk once the write in progress completes
        self._live_bytes = 0  # size a snapshot of the tables would have
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._busy = False
        self._idle: asyncio.Event | None = None
        self._failed: str | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = 0

    # -- opening --
    def open(self) -> Tables:
        """Load (or create) the journal, lock it and prepare to append.

        Returns the live tables, which the owner then mutates in place before
        each :meth:`append` (records already past their deadline are not in
        them; see :attr:`deadlines`). Raises StoreError.
        """
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise StoreError(f"storage.path: directory {directory} does not exist")
        try:
            tables, deadlines, good, torn = self._open_locked()
            if good == 0:
                # New (or only a torn header): start from an empty snapshot.
                old = self._fd
                self._fd, self._file_size = self._write_snapshot_sync({})
                os.close(old)
            else:
                if torn:
                    log.warning(
                        "%s: ignored a torn final record after byte %d "
                        "(a write cut short by a crash; it was never acknowledged)",
                        self.path,
                        good,
                    )
                    os.ftruncate(self._fd, good)
                    os.fsync(self._fd)
                self._file_size = good
        except OSError as exc:
            self._close_fd()
            raise StoreError(f"storage.path {self.path}: {exc.strerror or exc}") from exc
        except StoreError:
            self._close_fd()
            raise
        self._tables = tables
        self._deadlines = deadlines
        self._live_bytes = len(HEADER) + sum(
            len(encode_set(name, key, value, deadlines.get(name, {}).get(key, 0.0)))
            for name, table in tables.items()
            for key, value in table.items()
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fastgate-journal"
        )
        self._pid = os.getpid()
        return tables

    @property
    def deadlines(self) -> Deadlines:
        """The deadlines of the records that have one, as loaded by :meth:`open`
        (the owner keeps them up to date, as it does the tables)."""
        return self._deadlines

    def _open_locked(self) -> tuple[Tables, Deadlines, int, int]:
        """Open and lock the file at ``self.path`` (created empty if missing), then load it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                self._lock(fd)
                # A compaction by the previous owner may have renamed a new file
                # over the path between our open and our lock: lock that one.
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except BaseException:
                os.close(fd)
                raise
            if same:
                self._fd = fd
                self._remove_stale_snapshots()
                return load(self.path)
            os.close(fd)

    def _remove_stale_snapshots(self) -> None:
        """Delete snapshots a crash left half-written (we hold the lock: none is ours)."""
        directory = os.path.dirname(self.path) or "."
        prefix = os.path.basename(self.path) + ".compact-"
        for name in os.listdir(directory):
            if name.startswith(prefix) and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"storage.path {self.path} is in use by another process "
                "(the memory store serves one process; use redis to share sessions)"
            ) from None

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- appending --
    def append(self, line: bytes, live_delta: int) -> asyncio.Future[None]:
        """Queue one record; the future resolves once it is on disk.

        ``live_delta``: the change in the live data's snapshot size (new record
        length minus the replaced one's). Raises StoreError at once when the
        journal has failed or is closed.
        """
        if self._failed is not None:
            raise StoreError(self._failed)
        if self._executor is None:
            raise StoreError(f"storage.path {self.path}: the journal is not open")
        if os.getpid() != self._pid:
            # A forked child shares the file but not the writer thread: its
            # writes would never complete (and would interleave with ours).
            raise StoreError(
                f"storage.path {self.path}: the journal belongs to process {self._pid}; "
                "open the store after forking"
            )
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._waiters.append(fut)
        self._live_bytes += live_delta
        if not self._busy and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending or self._executor is None:
            return
        waiters = self._waiters
        growth = self._pending_bytes
        data = b"".join(self._pending)
        self._pending, self._waiters, self._pending_bytes = [], [], 0
        self._busy = True
        loop = asyncio.get_running_loop()
        size_after = self._file_size + growth
        if size_after > self.compact_min_bytes and size_after > self.compact_ratio * max(
            self._live_bytes, 1
        ):
            # The snapshot already contains this batch's changes (they are in
            # the tables); copying the dicts is cheap and lets the thread encode.
            tables = {name: dict(table) for name, table in self._tables.items() if table}
            deadlines = {name: dict(d) for name, d in self._deadlines.items() if d}
            done = loop.run_in_executor(self._executor, self._compact_sync, tables, deadlines)
        else:
            done = loop.run_in_executor(self._executor, self._append_sync, data, size_after)
        done.add_done_callback(lambda f: self._flushed(f, waiters))

    def _flushed(self, done: asyncio.Future[int], waiters: list[asyncio.Future[None]]) -> None:
        self._busy = False
        exc = None if done.cancelled() else done.exception()
        if done.cancelled() or exc is not None:
            why = "cancelled" if exc is None else (getattr(exc, "strerror", None) or str(exc))
            self._failed = (
                f"storage.path {self.path}: journal write failed ({why}); "
                "refusing further changes until restart"
            )
            log.error("%s", self._failed)
            for fut in waiters + self._waiters:
                if not fut.done():
                    fut.set_exception(StoreError(self._failed))
            self._pending, self._waiters, self._pending_bytes = [], [], 0
        else:
            self._file_size = done.result()
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        if not self._busy and not self._scheduled and self._idle is not None:
            self._idle.set()

    # -- the writer thread --
    def _append_sync(self, data: bytes, size_after: int) -> int:
        _write_all(self._fd, data)
        os.fsync(self._fd)
        return size_after

    def _compact_sync(self, tables: Mapping[str, Mapping[str, bytes]],
                      deadlines: Mapping[str, Mapping[str, float]]) -> int:
        fd, size = self._write_snapshot_sync(tables, deadlines)
        old, self._fd = self._fd, fd
        os.close(old)
        self.compactions += 1
        log.info("%s: compacted the journal to %d bytes", self.path, size)
        return size

    def _write_snapshot_sync(
        self,
        tables: Mapping[str, Mapping[str, bytes]],
        deadlines: Mapping[str, Mapping[str, float]] | None = None,
    ) -> tuple[int, int]:
        """Write ``tables`` (with their ``deadlines``) as a new journal replacing the file.

        Returns the new file's descriptor (locked, in append mode) and its size.
        """
        tmp = f"{self.path}.compact-{os.getpid()}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        try:
            # Lock before the rename: whoever opens the path afterwards finds
            # the new file already locked.
            self._lock(fd)
            chunk: list[bytes] = [HEADER]
            size = len(HEADER)
            for name, table in tables.items():
                table_deadlines = (deadlines or {}).get(name, {})
                for key, value in table.items():
                    line = encode_set(name, key, value, table_deadlines.get(key, 0.0))
                    chunk.append(line)
                    size += len(line)
                    if len(chunk) >= 4096:
                        _write_all(fd, b"".join(chunk))
                        chunk.clear()
            _write_all(fd, b"".join(chunk))
            os.fsync(fd)
            os.rename(tmp, self.path)
            _fsync_dir(self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return fd, size

    # -- closing --
    async def close(self) -> None:
        """Wait until every queued record is on disk, then release the file."""
        if self._executor is None:
            return
        if self._busy or self._scheduled:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._executor.shutdown(wait=True)
        self._executor = None
        self._close_fd()

    @property
    def file_size(self) -> int:
        return self._file_size

    @property
    def live_bytes(self) -> int:
        return self._live_bytes
