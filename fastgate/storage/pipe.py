"""A lean, pipelined RESP connection for the limit scripts (the request path).

redis-py spends on the order of 100 µs of Python per command; a rate-limit and
quota decision is one ``EVALSHA``, made for every request, so the request path
talks RESP itself: the commands issued during one event-loop iteration go out
in one write, hiredis parses the replies, and they are matched to their
callers in order (Redis answers a connection's commands in order).

Failure rules (a decision is never counted twice):

* a command is never re-sent after it may have run; only ``NOSCRIPT`` and
  ``MOVED``/``ASK`` replies — which say the command did not run — are acted on
  by the caller;
* when a reply is overdue (``timeout`` seconds) or the connection breaks, every
  command still waiting fails with :class:`StoreError` and the connection is
  dropped (its replies could no longer be matched); the next command opens a
  new one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

from fastgate.stats import REDIS
from fastgate.storage.base import StoreError


def encode(args: tuple[bytes, ...]) -> bytes:
    """One command in RESP: ``*<n>`` then ``$<len>`` + each argument."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


class ReplyError(Exception):
    """Redis answered the command with an error (its text is the message)."""


class _Connection(asyncio.Protocol):
    def __init__(self, where: str, timeout: float) -> None:
        self.where = where
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        #: Per command sent, in order: the future of its reply, or a callback
        #: called with the reply (or the exception) as soon as it is parsed.
        self.waiting: deque[asyncio.Future[Any] | Callable[[Any], None]] = deque()
        self.out: list[bytes] = []
        self.flushing = False
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False
        # Round trips (fastgate.stats.REDIS): commands queued and answered so
        # far, and per write (time written, commands queued by then).
        self.queued = 0
        self.answered = 0
        self.writes: deque[tuple[float, int]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(f"{self.where}: connection lost" + (f" ({exc})" if exc else ""))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            reply = reader.gets()
            if reply is False:
                break
            if not waiting:
                self._drop(f"{self.where}: a reply nobody asked for")
                return
            waiter = waiting.popleft()
            self.answered += 1
            error = isinstance(reply, hiredis.ReplyError)
            if error:
                REDIS.errors += 1
            if not isinstance(waiter, asyncio.Future):
                waiter(ReplyError(str(reply)) if error else reply)
            elif waiter.done():
                continue
            elif error:
                waiter.set_exception(ReplyError(str(reply)))
            else:
                waiter.set_result(reply)
        writes = self.writes
        if writes and self.answered >= writes[0][1]:
            now = self.loop.time()
            while writes and self.answered >= writes[0][1]:
                REDIS.observe(now - writes.popleft()[0])
        self._arm()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.lost or self.transport is None:
            future.set_exception(StoreError(f"{self.where}: not connected"))
            return future
        self._queue(command, future)
        return future

    def send_with(self, command: bytes, on_reply: Callable[[Any], None]) -> None:
        """Send ``command``; ``on_reply`` gets its reply (a ReplyError for an
        error reply, a StoreError when none will come) from the read itself —
        no future, no extra loop iteration."""
        self._queue(command, on_reply)

    def _queue(self, command: bytes,
               waiter: asyncio.Future[Any] | Callable[[Any], None]) -> None:
        self.out.append(command)
        self.waiting.append(waiter)
        self.queued += 1
        REDIS.decisions += 1
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)
        if self.timer is None:
            self._arm()

    def _flush(self) -> None:
        self.flushing = False
        if self.out and self.transport is not None and not self.lost:
            self.transport.write(b"".join(self.out))
            self.writes.append((self.loop.time(), self.queued))
        self.out.clear()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.waiting:
            self.timer = self.loop.call_later(self.timeout, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.waiting:
            self._drop(f"{self.where}: no reply within {self.timeout:g} s")

    def _drop(self, why: str) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        self._fail(why)

    def _fail(self, why: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiting, self.waiting = self.waiting, deque()
        self.writes.clear()
        REDIS.errors += len(waiting)
        for waiter in waiting:
            if not isinstance(waiter, asyncio.Future):
                waiter(StoreError(why))
            elif not waiter.done():
                waiter.set_exception(StoreError(why))


class Pipe:
    """Commands to one Redis server over one pipelined connection."""

    def __init__(self, host: str, port: int, *, timeout: float, username: str = "",
                 password: str = "", database: int = 0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.where = f"redis {host}:{port}"
        self._hello: list[bytes] = []
        if password:
            auth = (b"AUTH", username.encode(), password.encode()) if username \
                else (b"AUTH", password.encode())
            self._hello.append(encode(auth))
        if database:
            self._hello.append(encode((b"SELECT", str(database).encode())))
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def call(self, *args: bytes) -> Any:
        """Send one command and wait for its reply.

        Raises ReplyError for an error reply and StoreError when the server
        cannot be reached or does not answer in time.
        """
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._connect()
        return await connection.send(encode(args))

    def send_encoded(self, command: bytes, on_reply: Callable[[Any], None]) -> bool:
        """Send an already encoded command without a coroutine or a future,
        when the connection is up (see ``send_with``); False, sending nothing,
        when a connection must be opened first."""
        connection = self._connection
        if connection is None or connection.lost:
            return False
        connection.send_with(command, on_reply)
        return True

    async def _connect(self) -> _Connection:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(self.where, self.timeout),
                                           self.host, self.port),
                    self.timeout)
            except (OSError, TimeoutError) as exc:
                raise StoreError(f"{self.where}: cannot connect: {exc}") from None
            for hello in self._hello:
                try:
                    await connection.send(hello)
                except ReplyError as exc:
                    connection._drop("handshake refused")
                    raise StoreError(f"{self.where}: {exc}") from None
            self._connection = connection
            self._connecting.set_result(connection)
            return connection
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            self._connecting = None

    def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None
