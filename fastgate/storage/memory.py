"""The embedded store: dicts in this process, optionally journalled to disk.

Without a journal every operation completes inside its coroutine without
yielding to the event loop (a caller may drive it with ``coro.send(None)``).
With ``path`` set, reads still never yield; a change is applied to memory at
once but its coroutine returns only after the change is fsync'd to the journal
(see :mod:`fastgate.storage.journal`), so an acknowledged change survives a
crash.

Notifications stay in the process: :meth:`MemoryStore.publish` schedules the
subscribers with ``loop.call_soon``, so they run on a later loop iteration, in
publication order.
"""

from __future__ import annotations

import asyncio

from fastgate.storage.base import Store, check_event, check_value
from fastgate.storage.journal import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COMPACT_RATIO,
    Journal,
    Tables,
    encode_delete,
    encode_set,
)

__all__ = ["POLICY_TABLE", "SESSION_TABLE", "MemoryStore"]

SESSION_TABLE = "session"
POLICY_TABLE = "policy"


class MemoryStore(Store):
    """Sessions and policies in process memory; see the module docstring.

    ``path``: the journal file (absolute; its directory must exist). The
    journal is generic over named tables; later features add their own table
    through :meth:`_table_set` / :meth:`_table_delete` / :meth:`_table`.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    ) -> None:
        super().__init__()
        self._tables: Tables = {}
        self._journal = (
            Journal(path, compact_ratio=compact_ratio, compact_min_bytes=compact_min_bytes)
            if path
            else None
        )
        self._sessions = self._table(SESSION_TABLE)
        self._policies = self._table(POLICY_TABLE)

    @property
    def shared(self) -> bool:
        return False

    @property
    def journal(self) -> Journal | None:
        return self._journal

    # -- lifecycle --
    async def start(self) -> None:
        if self._journal is not None:
            self._tables = self._journal.open()
            self._sessions = self._table(SESSION_TABLE)
            self._policies = self._table(POLICY_TABLE)

    async def close(self) -> None:
        if self._journal is not None:
            await self._journal.close()

    # -- generic tables --
    def _table(self, name: str) -> dict[str, bytes]:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = {}
        return table

    def _table_set(self, name: str, key: str, value: bytes) -> asyncio.Future[None] | None:
        """Store ``value``; returns the journal's acknowledgement to await, if any."""
        check_value(value)
        table = self._table(name)
        journal = self._journal
        if journal is None:
            table[key] = value
            return None
        line = encode_set(name, key, value)
        old = table.get(key)
        delta = len(line) - (len(encode_set(name, key, old)) if old is not None else 0)
        ack = journal.append(line, delta)  # raises before the change when the journal failed
        table[key] = value
        return ack

    def _table_delete(self, name: str, key: str) -> tuple[bool, asyncio.Future[None] | None]:
        """Delete ``key``; returns (it existed, the journal's acknowledgement or None)."""
        table = self._table(name)
        journal = self._journal
        if journal is None or key not in table:
            return table.pop(key, None) is not None, None
        delta = -len(encode_set(name, key, table[key]))
        ack = journal.append(encode_delete(name, key), delta)
        del table[key]
        return True, ack

    # -- sessions --
    async def get_session(self, key: str) -> bytes | None:
        return self._sessions.get(key)

    async def set_session(self, key: str, value: bytes) -> None:
        ack = self._table_set(SESSION_TABLE, key, value)
        if ack is not None:
            await ack

    async def delete_session(self, key: str) -> bool:
        existed, ack = self._table_delete(SESSION_TABLE, key)
        if ack is not None:
            await ack
        return existed

    async def list_sessions(self) -> list[str]:
        return list(self._sessions)

    # -- policies --
    async def get_policies(self) -> dict[str, bytes]:
        return dict(self._policies)

    async def set_policy(self, policy_id: str, value: bytes) -> None:
        ack = self._table_set(POLICY_TABLE, policy_id, value)
        if ack is not None:
            await ack

    async def delete_policy(self, policy_id: str) -> bool:
        existed, ack = self._table_delete(POLICY_TABLE, policy_id)
        if ack is not None:
            await ack
        return existed

    # -- notifications --
    async def publish(self, event: str, payload: str) -> None:
        check_event(event)
        asyncio.get_running_loop().call_soon(self._dispatch, event, payload)

