"""The shared store: standalone Redis or Redis Cluster, through redis-py asyncio.

Key names follow Tyk so that an existing Tyk Redis is readable:

* sessions: ``apikey-<storage key>``, a plain string holding the session JSON,
  with a TTL (``PX``) when the key has a lifetime, as Tyk sets one;
* session deadlines: the sorted set ``fastgate-session-deadlines`` (member:
  storage key, score: unix ms when its record expires), which a sweep on every
  store reads every ``sweep_interval`` seconds to publish a ``"session"``
  event once the record is gone -- Redis drops the record itself, silently,
  and every gateway's cache must forget it too;
* organisation sessions: ``orgkey.<org id>``, as Tyk's org store (not hashed);
* policies managed through the REST API: the hash ``fastgate-policies``
  (field: policy id, value: policy JSON);
* certificates (``/tyk/certs``): the hash ``fastgate-certs`` (field: the
  certificate id, value: its PEM record, the private key encrypted);
* notifications: pub/sub channel ``fastgate-events``, message ``event:payload``;
* rate limits: ``rl-{<key>}``, the GCRA state (``lua/limits.lua``);
* quotas: ``quota-{<key>}``, a hash {used, renews} (``lua/limits.lua``) -- not
  Tyk's ``quota-<key>`` counter, whose INCR-then-check counts refusals;
* live workers: the sorted set ``fastgate-workers`` (``lua/workers_*.lua``).

Limits are decided by Lua scripts (see :mod:`fastgate.storage.scripts`), each
on one key, so they run on Redis Cluster; the braces make every key of one
identity hash to the same slot. Decisions made in the same event-loop
iteration go out together: one pipeline of ``EVALSHA`` calls (one per node on
a cluster), one round trip. A ``NOSCRIPT`` answer (a restarted or flushed
server) is answered by sending that decision again with ``EVAL``; nothing else
is ever sent twice.

Failure model: every operation is bounded by ``timeout`` (default 1 s) and
raises :class:`StoreError` on any failure; nothing waits for Redis to come
back, and nothing is retried: a command that may have run is never sent twice
(rate-limit and quota scripts count on it). A pooled connection that died
while idle (Redis restarted) is noticed and replaced when it is checked out,
so the first command after a restart already succeeds. Error messages name
the command and the server, never a key (a key may be a raw credential when
``hash_keys`` is off).

Notifications: one dedicated connection per store is SUBSCRIBEd to the channel
(on a cluster: to any one node, since classic PUBLISH is broadcast to every
node). A listener task reads it, PINGs it when idle so a silently dead
connection is noticed, and when it drops, reconnects with exponential backoff
(trying the next cluster node each time) and then emits ``("resync", "")`` to
the subscribers, because notifications sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fastgate.config import StorageConfig
from fastgate.stats import REDIS
from fastgate.storage import scripts
from fastgate.storage.base import (
    EVENT_RESYNC,
    EVENT_SESSION,
    Store,
    StoreError,
    check_event,
    check_table,
    check_value,
)
from fastgate.storage.pipe import Pipe, ReplyError, encode
from fastgate.storage.scripts import LuaScript

try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # redis-py < 7: no such feature, nothing to turn off
    _STANDALONE_KWARGS: dict[str, Any] = {}
else:
    # redis-py 8 skips its check for dead pooled connections while this is
    # "auto" (truthy): a connection closed by a restarted server would then
    # fail the first command after the restart.
    _STANDALONE_KWARGS = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}

__all__ = [
    "DEFAULT_TIMEOUT",
    "EVENTS_CHANNEL",
    "ORG_PREFIX",
    "POLICIES_KEY",
    "QUOTA_PREFIX",
    "RATE_LIMIT_PREFIX",
    "RECORD_PREFIX",
    "SESSION_DEADLINES_KEY",
    "SESSION_PREFIX",
    "WORKERS_KEY",
    "RedisStore",
    "parse_addr",
]

log = logging.getLogger("fastgate.storage")

SESSION_PREFIX = "apikey-"
SESSION_DEADLINES_KEY = "fastgate-session-deadlines"
ORG_PREFIX = "orgkey."
POLICIES_KEY = "fastgate-policies"
CERTS_KEY = "fastgate-certs"
EVENTS_CHANNEL = "fastgate-events"
RATE_LIMIT_PREFIX = "rl-"
QUOTA_PREFIX = "quota-"
WORKERS_KEY = "fastgate-workers"
#: Replay guards (Store.claim_once): one key each, with its TTL.
CLAIM_PREFIX = "fastgate-once-"
#: Store.set_record: "fastgate-record-<table>:<key>", one key each.
RECORD_PREFIX = "fastgate-record-"

DEFAULT_TIMEOUT = 1.0
DEFAULT_PING_INTERVAL = 5.0
DEFAULT_MAX_IN_FLIGHT = 64  # below redis-py's 100-connection pools (standalone, per node)
RECONNECT_MIN_DELAY = 0.05
RECONNECT_MAX_DELAY = 1.0
SCAN_COUNT = 1000
MAX_BATCH = 500  # session lookups per MGET / pipeline, script calls per pipeline
DEFAULT_SWEEP_INTERVAL = 1.0  # seconds between two looks for sessions whose lifetime ended

_INF = float("inf")
_UNLIMITED_RATE = (True, -1, 0.0, 0.0)
_UNLIMITED_QUOTA = (True, -1, 0.0)

# One queued script call: (script, key, args, the caller's future).
_Call = tuple[LuaScript, str, tuple[Any, ...], "asyncio.Future[Any]"]

# surrogateescape: a key that is not UTF-8 (written by something else) still
# round-trips through list_sessions -> get_session.
_ENCODING_ERRORS = "surrogateescape"

_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


def parse_addr(addr: str, default_port: int = 6379) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``"host"`` -> (host, port); ValueError if malformed."""
    addr = addr.strip()
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed address {addr!r}")
        port_text = rest[1:]
    elif addr.count(":") == 1:
        host, _, port_text = addr.partition(":")
    else:
        host, port_text = addr, ""
    if not host:
        raise ValueError(f"malformed address {addr!r}: no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"malformed address {addr!r}: bad port")
    return host, int(port_text)


class RedisStore(Store):
    """Sessions, policies and notifications in Redis; see the module docstring.

    ``timeout`` bounds every operation (seconds). ``ping_interval``: how long
    the notification connection may stay silent before it is PINGed.
    ``max_in_flight``: commands sent at once; more wait for a free slot (within
    their timeout) instead of opening ever more connections.
    ``sweep_interval``: seconds between two looks for sessions whose lifetime
    ended (their ``"session"`` events are published that much late at most).
    """

    def __init__(
        self,
        config: StorageConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    ) -> None:
        super().__init__()
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if sweep_interval <= 0:
            raise ValueError("sweep_interval must be positive")
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_failing = False
        self._config = config
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._cluster = config.enable_cluster
        try:
            seeds = [parse_addr(a, config.port) for a in config.addrs]
        except ValueError as exc:
            raise StoreError(f"storage.addrs: {exc}") from None
        if not seeds:
            seeds = [(config.host, config.port)]
        elif not self._cluster and len(seeds) > 1:
            log.warning(
                "storage.addrs lists %d servers but enable_cluster is false: using %s:%d",
                len(seeds),
                *seeds[0],
            )
        if self._cluster and config.database:
            log.warning("storage.database %d is ignored: Redis Cluster has only database 0",
                        config.database)
        self._seeds = seeds if self._cluster else seeds[:1]
        self._where = ("redis cluster " if self._cluster else "redis ") + ",".join(
            f"{h}:{p}" for h, p in self._seeds
        )
        self._client: Redis | RedisCluster | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listen_node = 0  # index into _listen_candidates()
        self._limit = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._closing = False
        self._drained: asyncio.Event | None = None
        self._gets: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._calls: list[_Call] = []
        self._fetches: set[asyncio.Task[None]] = set()
        #: Lean pipelined connections for the request path's scripts, per node.
        self._pipes: dict[tuple[str, int], Pipe] = {}

    @property
    def shared(self) -> bool:
        return True

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client (for later features' scripts); StoreError before start()."""
        if self._client is None:
            raise StoreError(f"{self._where}: the store is not started (or closed)")
        return self._client

    # -- connections --
    def _common_kwargs(self) -> dict[str, Any]:
        cfg = self._config
        return {
            "username": cfg.username or None,
            "password": cfg.password or None,
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
            "encoding_errors": _ENCODING_ERRORS,
            "client_name": "fastgate",
        }

    def _make_client(self) -> Redis | RedisCluster:
        if self._cluster:
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self._seeds],
                retry=Retry(NoBackoff(), 0),
                **self._common_kwargs(),
            )
        host, port = self._seeds[0]
        return Redis(
            host=host,
            port=port,
            db=self._config.database,
            retry=Retry(NoBackoff(), 0),
            **_STANDALONE_KWARGS,
            **self._common_kwargs(),
        )

    def _listen_candidates(self) -> list[tuple[str, int]]:
        candidates = list(self._seeds)
        if isinstance(self._client, RedisCluster):
            for node in self._client.get_nodes():
                addr = (node.host, int(node.port))
                if addr not in candidates:
                    candidates.append(addr)
        return candidates

    async def start(self) -> None:
        """Connect, check the server answers and subscribe; raises StoreError."""
        if self._client is not None:
            return
        if self._closing:
            raise StoreError(f"{self._where}: the store is closed")
        self._client = self._make_client()
        try:
            async with asyncio.timeout(self._timeout):
                if isinstance(self._client, RedisCluster):
                    await self._client.initialize()
                else:
                    await self._client.ping()
                await self._load_scripts()
            sub = await self._subscribe()
        except _FAILURES as exc:
            await self._close_client()
            raise StoreError(f"{self._where}: cannot connect: {_describe(exc)}") from exc
        except BaseException:
            await self._close_client()
            raise
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(*sub), name="fastgate-store-listener")
        self._sweeper = loop.create_task(self._sweep_forever(), name="fastgate-store-sweeper")

    async def close(self) -> None:
        """Stop the listener, let calls in flight finish (each is bounded), disconnect."""
        self._closing = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        while self._gets or self._calls or self._fetches:  # lookups and calls accepted
            if self._gets or self._calls:
                await asyncio.sleep(0)  # their flush runs in this loop iteration
            else:
                await asyncio.wait(set(self._fetches))
        if self._in_flight:
            self._drained = asyncio.Event()
            await self._drained.wait()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            try:
                await listener
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    await self._close_client()
                    raise
        await self._close_client()

    async def _close_client(self) -> None:
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- operations --
    async def execute(
        self, command: str, awaitable: Awaitable[Any], *, timeout: float | None = None
    ) -> Any:
        """Await one redis-py call under the store's rules; its result.

        At most ``max_in_flight`` calls run at once (the others queue), each
        within ``timeout`` seconds including the wait (default: the store's
        timeout); any failure raises StoreError naming ``command`` and the
        server.
        """
        started = False
        self._in_flight += 1
        REDIS.commands += 1
        try:
            async with asyncio.timeout(self._timeout if timeout is None else timeout), self._limit:
                if self._closing:
                    raise StoreError(f"{self._where}: the store is closed")
                started = True
                return await awaitable
        except TimeoutError:
            REDIS.errors += 1
            raise StoreError(
                f"{self._where}: {command} got no answer within {self._timeout:g}s"
            ) from None
        except (RedisError, RedisClusterException, OSError) as exc:
            REDIS.errors += 1
            raise StoreError(f"{self._where}: {command} failed: {_describe(exc)}") from exc
        finally:
            if not started and inspect.iscoroutine(awaitable):
                awaitable.close()  # never ran: don't leave a "never awaited" coroutine
            self._in_flight -= 1
            if not self._in_flight and self._drained is not None:
                self._drained.set()

    async def get_session(self, key: str) -> bytes | None:
        """The session under ``key``; lookups made in the same loop iteration share
        one round trip (MGET, or one pipeline per node on a cluster)."""
        if self._client is None or self._closing:
            raise StoreError(f"{self._where}: the store is not started (or closed)")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes | None] = loop.create_future()
        self._gets.append((SESSION_PREFIX + key, fut))
        if len(self._gets) == 1:
            loop.call_soon(self._flush_gets)
        return await fut

    def _flush_gets(self) -> None:
        batch, self._gets = self._gets, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._fetch(batch[start : start + MAX_BATCH])
            )
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)

    async def _fetch(self, batch: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        keys = [key for key, _ in batch]
        try:
            client = self.client
            values: list[bytes | None]
            if len(keys) == 1:
                values = [await self.execute("GET", client.get(keys[0]))]
            elif isinstance(client, RedisCluster):
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.get(key)
                values = await self.execute("GET (pipeline)", pipe.execute())
            else:
                values = await self.execute("MGET", client.mget(keys))
        except StoreError as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(StoreError(str(exc)))
            return
        for (_, fut), value in zip(batch, values, strict=True):
            if not fut.done():
                fut.set_result(value)

    async def set_session(self, key: str, value: bytes, ttl: float = 0) -> None:
        check_value(value)
        if not ttl > 0:
            # A plain SET also drops a TTL the record had.
            await self.execute("SET", self.client.set(SESSION_PREFIX + key, value))
            return
        ms = max(1, math.ceil(ttl * 1000))
        await self.execute("SET", self.client.set(SESSION_PREFIX + key, value, px=ms))
        # After the SET, so that the deadline filed is never before Redis drops it.
        await self._call(scripts.SESSION_DEADLINE, SESSION_DEADLINES_KEY, (key, ms))

    async def sweep(self) -> list[str]:
        """Publish a ``"session"`` event for every session whose lifetime ended
        (its record is gone); the storage keys.  Raises StoreError.

        Every store sharing the data sweeps; the script hands each deadline
        to one of them.  A record still there when its deadline comes (a
        cluster node's clock ahead of another's, or written again since with
        a new lifetime) is filed again with its remaining TTL; one kept
        without a TTL needs nothing (whoever wrote it published its event).
        """
        gone: list[str] = []
        while True:
            due = await self._call(scripts.SESSIONS_DUE, SESSION_DEADLINES_KEY, (MAX_BATCH,))
            if not due:
                return gone
            keys = [_decode(member) for member in due]
            ttls = await self._pttls([SESSION_PREFIX + key for key in keys])
            for key, ttl_ms in zip(keys, ttls, strict=True):
                if ttl_ms == -2:  # the record is gone
                    await self.publish(EVENT_SESSION, key)
                    gone.append(key)
                elif ttl_ms >= 0:
                    # Still there (0: it expires this very millisecond -- Redis
                    # drops a key only once its time is past): filed again, so
                    # that a later sweep announces it.
                    await self._call(scripts.SESSION_DEADLINE, SESSION_DEADLINES_KEY,
                                     (key, max(ttl_ms, 1)))
            if len(due) < MAX_BATCH:
                return gone

    async def _pttls(self, names: list[str]) -> list[int]:
        client = self.client
        if len(names) == 1:
            return [int(await self.execute("PTTL", client.pttl(names[0])))]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.pttl(name)
        replies: list[Any] = await self.execute("PTTL (pipeline)", pipe.execute())
        return [int(reply) for reply in replies]

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._sweep_interval)
            if self._closing:
                return
            try:
                await self.sweep()
            except StoreError as exc:
                if not self._sweep_failing:  # once per outage, not every second
                    log.warning("%s: looking for sessions whose lifetime ended failed: %s",
                                self._where, exc)
                self._sweep_failing = True
            else:
                self._sweep_failing = False

    async def delete_session(self, key: str) -> bool:
        deleted: int = await self.execute("DEL", self.client.delete(SESSION_PREFIX + key))
        return deleted > 0

    async def list_sessions(self) -> list[str]:
        return await self._scan_prefix(SESSION_PREFIX)

    async def _scan_prefix(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, without it (SCAN, every master of a cluster)."""
        client = self.client
        length = len(prefix)
        # Glob characters in the prefix itself are matched literally.
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        keys: list[str] = []
        if isinstance(client, RedisCluster):
            # Every master holds its own slots: scan each one to the end.
            for node in client.get_primaries():
                cursor = 0
                while True:
                    cursors: dict[str, int]
                    cursors, batch = await self.execute(
                        "SCAN",
                        client.scan(cursor, match=pattern, count=SCAN_COUNT, target_nodes=node),
                    )
                    keys.extend(_decode(k)[length:] for k in batch)
                    cursor = cursors[node.name]
                    if not cursor:
                        break
        else:
            cursor = 0
            while True:
                cursor, batch = await self.execute(
                    "SCAN", client.scan(cursor, match=pattern, count=SCAN_COUNT)
                )
                keys.extend(_decode(k)[length:] for k in batch)
                if not cursor:
                    break
        # SCAN may return a key twice (rehashing while iterating).
        return list(dict.fromkeys(keys))

    async def get_org_session(self, org_id: str) -> bytes | None:
        value: bytes | None = await self.execute("GET", self.client.get(ORG_PREFIX + org_id))
        return value

    async def set_org_session(self, org_id: str, value: bytes) -> None:
        check_value(value)
        await self.execute("SET", self.client.set(ORG_PREFIX + org_id, value))

    async def delete_org_session(self, org_id: str) -> bool:
        deleted: int = await self.execute("DEL", self.client.delete(ORG_PREFIX + org_id))
        return deleted > 0

    async def list_org_sessions(self) -> list[str]:
        return await self._scan_prefix(ORG_PREFIX)

    async def get_policies(self) -> dict[str, bytes]:
        raw: dict[bytes, bytes] = await self.execute("HGETALL", self.client.hgetall(POLICIES_KEY))
        return {_decode(k): v for k, v in raw.items()}

    async def set_policy(self, policy_id: str, value: bytes) -> None:
        check_value(value)
        await self.execute("HSET", self.client.hset(POLICIES_KEY, policy_id, value))

    async def delete_policy(self, policy_id: str) -> bool:
        deleted: int = await self.execute("HDEL", self.client.hdel(POLICIES_KEY, policy_id))
        return deleted > 0

    async def get_certificate(self, cert_id: str) -> bytes | None:
        value: bytes | None = await self.execute("HGET", self.client.hget(CERTS_KEY, cert_id))
        return value

    async def add_certificate(self, cert_id: str, value: bytes) -> bool:
        check_value(value)
        added: int = await self.execute("HSETNX", self.client.hsetnx(CERTS_KEY, cert_id, value))
        return bool(added)

    async def delete_certificate(self, cert_id: str) -> bool:
        deleted: int = await self.execute("HDEL", self.client.hdel(CERTS_KEY, cert_id))
        return deleted > 0

    async def list_certificates(self) -> list[str]:
        raw: list[bytes] = await self.execute("HKEYS", self.client.hkeys(CERTS_KEY))
        return [_decode(k) for k in raw]

    async def publish(self, event: str, payload: str) -> None:
        check_event(event)
        await self.execute("PUBLISH", self.client.publish(EVENTS_CHANNEL, f"{event}:{payload}"))

    # -- limits --
    async def rate_limit(self, key: str, rate: float, per: float) -> tuple[bool, int, float, float]:
        if not (0.0 < rate < _INF and 0.0 < per < _INF):
            return _UNLIMITED_RATE
        allowed, remaining, reset_after, retry_after, *_quota = await self.limits(
            key, rate, per, 0, 0)
        return allowed, remaining, reset_after, retry_after

    async def quota(self, key: str, quota_max: int, renewal_rate: int) -> tuple[bool, int, float]:
        if quota_max <= 0:
            return _UNLIMITED_QUOTA
        *_rate, allowed, remaining, renews_at = await self.limits(key, 0.0, 0.0, quota_max,
                                                                  renewal_rate)
        return allowed, remaining, renews_at

    async def limits(self, key: str, rate: float, per: float, quota_max: int,
                     renewal_rate: int) -> tuple[bool, int, float, float, bool, int, float]:
        """Rate limit and quota in one EVALSHA of ``limits.lua`` over the lean
        pipelined connection (``fastgate.storage.pipe``): this is the request
        path, where redis-py's per-command cost would dominate."""
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        if not rate_on and quota_max <= 0:
            return (True, -1, 0.0, 0.0, True, -1, 0.0)
        tag = "{" + key + "}"
        keys = ((RATE_LIMIT_PREFIX + tag).encode(), (QUOTA_PREFIX + tag).encode())
        args = _limits_args(rate_on, rate, per, quota_max, renewal_rate)
        reply = await self._pipe_script(scripts.LIMITS, keys, args)
        allowed, remaining, reset_after, retry_after, q_allowed, q_remaining, renews_ms = reply
        return (allowed == 1, remaining, float(reset_after), float(retry_after), q_allowed == 1,
                q_remaining, renews_ms / 1e3)

    def limits_command(self, key: str, rate: float, per: float, quota_max: int,
                       renewal_rate: int) -> bytes | None:
        """The encoded ``EVALSHA limits.lua`` for one identity's limits, for
        :meth:`limits_with`; constant per identity, so callers cache it.  None
        where the fast path does not apply (a cluster, nothing limited)."""
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        if self._cluster or (not rate_on and quota_max <= 0):
            return None
        tag = "{" + key + "}"
        return encode((
            b"EVALSHA", scripts.LIMITS.sha.encode(), b"2",
            (RATE_LIMIT_PREFIX + tag).encode(), (QUOTA_PREFIX + tag).encode(),
            *_limits_args(rate_on, rate, per, quota_max, renewal_rate)))

    def limits_with(self, key: str, rate: float, per: float, quota_max: int,
                    renewal_rate: int, done: Callable[[Any], None],
                    command: bytes | None = None) -> None:
        """:meth:`limits` for the request path: ``done`` gets the decision tuple
        (or a StoreError) straight from the read that parsed the reply — no
        coroutine, Task or future on the common path (connection up, script
        loaded).  ``command``: :meth:`limits_command`'s bytes for these
        arguments, when the caller has them.  Anything unusual (connecting,
        NOSCRIPT, MOVED, a cluster) goes through :meth:`limits`, which is
        safe: those answers mean the script did not run."""
        request = (key, rate, per, quota_max, renewal_rate)
        if command is None:
            command = self.limits_command(*request)
        if command is not None and self._client is not None and not self._closing:
            host, port = self._seeds[0]
            if self._pipe_at(host, port).send_encoded(
                    command, functools.partial(self._limits_reply, request, done)):
                return
        self._limits_slowly(request, done)

    def _limits_slowly(self, request: tuple[Any, ...], done: Callable[[Any], None]) -> None:
        task = asyncio.get_running_loop().create_task(self.limits(*request))
        task.add_done_callback(
            lambda t: done(t.exception() if t.exception() is not None else t.result()))

    def _limits_reply(self, request: tuple[Any, ...], done: Callable[[Any], None],
                      reply: Any) -> None:
        if isinstance(reply, list):
            allowed, remaining, reset_after, retry_after, q_allowed, q_remaining, renews = reply
            done((allowed == 1, remaining, float(reset_after), float(retry_after),
                  q_allowed == 1, q_remaining, renews / 1e3))
        elif isinstance(reply, ReplyError) and str(reply).startswith(("NOSCRIPT", "MOVED ")):
            self._limits_slowly(request, done)
        elif isinstance(reply, ReplyError):
            done(StoreError(f"{self._where}: limits: {reply}"))
        else:
            done(reply if isinstance(reply, BaseException) else
                 StoreError(f"{self._where}: limits: unexpected reply {reply!r}"))

    # -- leases (fastgate.limits.leases) --
    async def lease(self, key: str, rate: float, per: float, quota_max: int,
                    renewal_rate: int, want: int, lifetime: float) -> tuple[Any, ...]:
        """A block of up to ``want`` units of ``key``'s rate and quota, to be
        spent within ``lifetime`` seconds, in one EVALSHA of ``lease.lua``:
        ``(granted, rate_allowed, remaining, reset_after, retry_after,
        quota_allowed, quota_remaining, renews_at, now_ms, ps, bound)``
        (see the script)."""
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        tag = "{" + key + "}"
        keys = ((RATE_LIMIT_PREFIX + tag).encode(), (QUOTA_PREFIX + tag).encode())
        reply = await self._pipe_script(
            scripts.LEASE, keys,
            (*_limits_args(rate_on, rate, per, quota_max, renewal_rate),
             b"%d" % max(1, want), repr(max(0.0, lifetime)).encode()))
        return _lease_reply(reply)

    def lease_with(self, key: str, rate: float, per: float, quota_max: int, renewal_rate: int,
                   want: int, lifetime: float, done: Callable[[Any], None]) -> None:
        """:meth:`lease` in the callback form (as :meth:`limits_with`): ``done``
        gets the reply tuple or a StoreError; over the lean connection when it
        is up on a standalone server, else through :meth:`lease`."""
        request = (key, rate, per, quota_max, renewal_rate, want, lifetime)
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        if not self._cluster and self._client is not None and not self._closing:
            tag = "{" + key + "}"
            command = encode((
                b"EVALSHA", scripts.LEASE.sha.encode(), b"2",
                (RATE_LIMIT_PREFIX + tag).encode(), (QUOTA_PREFIX + tag).encode(),
                *_limits_args(rate_on, rate, per, quota_max, renewal_rate),
                b"%d" % max(1, want), repr(max(0.0, lifetime)).encode()))
            host, port = self._seeds[0]
            if self._pipe_at(host, port).send_encoded(
                    command, functools.partial(self._lease_reply, request, done)):
                return
        self._lease_slowly(request, done)

    def _lease_slowly(self, request: tuple[Any, ...], done: Callable[[Any], None]) -> None:
        if self._client is None or self._closing:
            done(StoreError(f"{self._where}: the store is not started (or closed)"))
            return
        task = asyncio.get_running_loop().create_task(self.lease(*request))
        task.add_done_callback(
            lambda t: done(t.exception() if t.exception() is not None else t.result()))

    def _lease_reply(self, request: tuple[Any, ...], done: Callable[[Any], None],
                     reply: Any) -> None:
        if isinstance(reply, list):
            done(_lease_reply(reply))
        elif isinstance(reply, ReplyError) and str(reply).startswith(("NOSCRIPT", "MOVED ")):
            self._lease_slowly(request, done)
        elif isinstance(reply, ReplyError):
            done(StoreError(f"{self._where}: lease: {reply}"))
        else:
            done(reply if isinstance(reply, BaseException) else
                 StoreError(f"{self._where}: lease: unexpected reply {reply!r}"))

    def lease_return(self, key: str, units: int, period: bytes) -> asyncio.Future[Any]:
        """Give back ``units`` unspent quota units of a lease taken in the period
        stamped ``period`` (``lease_return.lua``); the future gets the units
        given back, or a StoreError.  Sent at once over the lean connection
        when it is up (callable from synchronous code, e.g. at shutdown just
        before :meth:`close`: the write goes out before the connection
        closes), else queued like any script call."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieved)
        name = QUOTA_PREFIX + "{" + key + "}"
        if self._client is not None:
            try:
                pipe: Pipe | None = self._pipe_for(name)
            except StoreError:
                pipe = None
            command = encode((b"EVALSHA", scripts.LEASE_RETURN.sha.encode(), b"1",
                              name.encode(), b"%d" % units, period))
            if pipe is not None and pipe.send_encoded(
                    command, functools.partial(self._returned, fut, name, units, period)):
                return fut
        self._return_slowly(fut, name, units, period)
        return fut

    def _return_slowly(self, fut: asyncio.Future[Any], name: str, units: int,
                       period: bytes) -> None:
        try:
            inner = self._call(scripts.LEASE_RETURN, name, (b"%d" % units, period))
        except StoreError as exc:
            fut.set_exception(exc)
            return
        inner.add_done_callback(functools.partial(_chain, fut))

    def _returned(self, fut: asyncio.Future[Any], name: str, units: int, period: bytes,
                  reply: Any) -> None:
        if fut.done():
            return
        if isinstance(reply, ReplyError) and str(reply).startswith(("NOSCRIPT", "MOVED ")):
            self._return_slowly(fut, name, units, period)  # it did not run
        elif isinstance(reply, int):
            fut.set_result(reply)
        elif isinstance(reply, BaseException):
            fut.set_exception(StoreError(f"{self._where}: lease_return: {reply}"))
        else:
            fut.set_exception(StoreError(f"{self._where}: lease_return: unexpected reply "
                                         f"{reply!r}"))

    async def _pipe_script(self, script: LuaScript, keys: tuple[bytes, ...],
                           args: tuple[bytes, ...]) -> Any:
        """EVALSHA on the node owning ``keys[0]``; loads the script on NOSCRIPT and
        follows one MOVED (both mean it did not run, so it runs once)."""
        if self._client is None or self._closing:
            raise StoreError(f"{self._where}: the store is not started (or closed)")
        command = (b"EVALSHA", script.sha.encode(), b"%d" % len(keys), *keys, *args)
        pipe = self._pipe_for(keys[0].decode())
        for _attempt in range(3):
            try:
                return await pipe.call(*command)
            except ReplyError as exc:
                text = str(exc)
                if text.startswith("NOSCRIPT"):
                    try:
                        await pipe.call(b"SCRIPT", b"LOAD", script.source.encode())
                    except ReplyError as load_error:
                        raise StoreError(f"{pipe.where}: SCRIPT LOAD {script.name}: "
                                         f"{load_error}") from None
                    continue
                if text.startswith("MOVED "):
                    host, _, port = text.split()[2].rpartition(":")
                    pipe = self._pipe_at(host, int(port))
                    continue
                raise StoreError(f"{pipe.where}: {script.name}: {text}") from None
        raise StoreError(f"{self._where}: {script.name}: could not be run")

    def _pipe_for(self, key: str) -> Pipe:
        client = self._client
        if isinstance(client, RedisCluster):
            try:
                node = client.get_node_from_key(key)
            except Exception as exc:
                raise StoreError(f"{self._where}: no node for a key: {_describe(exc)}") from None
            if node is None:
                raise StoreError(f"{self._where}: no node for a key")
            return self._pipe_at(node.host, int(node.port))
        host, port = self._seeds[0]
        return self._pipe_at(host, port)

    def _pipe_at(self, host: str, port: int) -> Pipe:
        pipe = self._pipes.get((host, port))
        if pipe is None:
            config = self._config
            pipe = Pipe(host, port, timeout=self._timeout, username=config.username,
                        password=config.password,
                        database=0 if self._cluster else config.database)
            self._pipes[(host, port)] = pipe
        return pipe

    async def quota_state(self, key: str, quota_max: int) -> tuple[int, float] | None:
        if quota_max <= 0:
            return None
        used, renews = await self.execute(
            "HMGET", self.client.hmget(QUOTA_PREFIX + "{" + key + "}", ["used", "renews"])
        )
        if used is None:
            return None
        return max(0, quota_max - int(used)), int(renews or 0) / 1e3

    async def reset_quota(self, key: str) -> None:
        await self.execute("DEL", self.client.delete(QUOTA_PREFIX + "{" + key + "}"))

    # -- records --
    async def get_record(self, table: str, key: str) -> bytes | None:
        check_table(table)
        value: bytes | None = await self.execute(
            "GET", self.client.get(RECORD_PREFIX + table + ":" + key))
        return value

    async def set_record(self, table: str, key: str, value: bytes, ttl: float = 0) -> None:
        check_table(table)
        check_value(value)
        name = RECORD_PREFIX + table + ":" + key
        if ttl > 0:
            await self.execute("SET", self.client.set(name, value,
                                                      px=max(1, math.ceil(ttl * 1000))))
        else:
            await self.execute("SET", self.client.set(name, value))

    async def take_record(self, table: str, key: str) -> bytes | None:
        check_table(table)
        name = RECORD_PREFIX + table + ":" + key
        value: bytes | None = await self._call(scripts.RECORD_TAKE, name, ())
        return value

    async def delete_record(self, table: str, key: str) -> bool:
        check_table(table)
        deleted: int = await self.execute(
            "DEL", self.client.delete(RECORD_PREFIX + table + ":" + key))
        return deleted > 0

    async def list_records(self, table: str, prefix: str = "") -> list[str]:
        check_table(table)
        return [prefix + key
                for key in await self._scan_prefix(RECORD_PREFIX + table + ":" + prefix)]

    async def claim_once(self, key: str, ttl: float) -> bool:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        claimed = await self.execute("SET", self.client.set(
            CLAIM_PREFIX + key, b"1", nx=True, px=max(1, int(ttl * 1000))))
        return bool(claimed)

    async def register_worker(self, worker_id: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        await self._call(scripts.WORKERS_REGISTER, WORKERS_KEY, (worker_id, repr(ttl)))

    async def count_workers(self) -> int:
        count: int = await self._call(scripts.WORKERS_COUNT, WORKERS_KEY, ())
        return max(1, count)

    # -- scripts --
    async def _load_scripts(self) -> None:
        """SCRIPT LOAD every script (on every master of a cluster)."""
        client = self.client
        for script in scripts.ALL:
            sha = _decode(await client.script_load(script.source))  # a cluster: every master
            if sha != script.sha:
                raise StoreError(f"{self._where}: SCRIPT LOAD {script.name} returned {sha!r}")

    def _call(self, script: LuaScript, key: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one script call on ``key``; the future gets its reply or a StoreError.

        Calls queued in the same loop iteration are sent together by
        :meth:`_flush_calls`.
        """
        if self._client is None or self._closing:
            raise StoreError(f"{self._where}: the store is not started (or closed)")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._calls.append((script, key, args, fut))
        if len(self._calls) == 1:
            loop.call_soon(self._flush_calls)
        return fut

    def _flush_calls(self) -> None:
        batch, self._calls = self._calls, []
        client = self._client
        groups: list[list[_Call]]
        if isinstance(client, RedisCluster) and len(batch) > 1:
            # One pipeline per master: a dead node fails only its own calls.
            by_node: dict[str, list[_Call]] = {}
            for call in batch:
                try:
                    found = client.get_node_from_key(call[1])
                    node = found.name if found is not None else ""
                except Exception:
                    node = ""  # slots unknown right now: the send reports why
                by_node.setdefault(node, []).append(call)
            groups = list(by_node.values())
        else:
            groups = [batch]
        loop = asyncio.get_running_loop()
        for group in groups:
            for start in range(0, len(group), MAX_BATCH):
                task = loop.create_task(self._run_calls(group[start : start + MAX_BATCH]))
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)

    async def _run_calls(self, batch: list[_Call]) -> None:
        try:
            await self._run_calls_once(batch)
        except BaseException as exc:  # never leave a caller waiting
            if isinstance(exc, StoreError):
                _fail(batch, exc)
            else:
                _fail(batch, StoreError(f"{self._where}: script call failed: {_describe(exc)}"))
            if not isinstance(exc, Exception):
                raise

    async def _run_calls_once(self, batch: list[_Call]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        again: list[_Call] = []
        try:
            replies = await self._send_calls(batch, by_sha=True, timeout=self._timeout)
        except StoreError as exc:
            _fail(batch, exc)
            return
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                again.append(call)  # NOSCRIPT: the script did not run, so send it again
            else:
                self._settle(call, reply)
        if not again:
            return
        log.info("%s: scripts not loaded (server restarted or flushed?): sending them again",
                 self._where)
        try:
            replies = await self._send_calls(
                again, by_sha=False, timeout=max(deadline - loop.time(), 0.001)
            )
        except StoreError as exc:
            _fail(again, exc)
            return
        for call, reply in zip(again, replies, strict=True):
            self._settle(call, reply)

    def _settle(self, call: _Call, reply: Any) -> None:
        script, _, _, fut = call
        if fut.done():
            return
        if isinstance(reply, BaseException):
            fut.set_exception(
                StoreError(f"{self._where}: script {script.name} failed: {_describe(reply)}")
            )
        else:
            fut.set_result(reply)

    async def _send_calls(
        self, batch: list[_Call], *, by_sha: bool, timeout: float
    ) -> list[Any]:
        """Send ``batch`` once (EVALSHA, or EVAL when ``by_sha`` is false); one reply or
        exception per call. Raises StoreError when the whole round trip failed."""
        client = self.client
        command = "EVALSHA" if by_sha else "EVAL"
        if len(batch) == 1:
            script, key, args, _ = batch[0]
            # Made only once execute() runs it: a call refused before it starts
            # (the store closing) leaves no coroutine that was never awaited.
            def call() -> Awaitable[Any]:
                return (client.evalsha(script.sha, 1, key, *args) if by_sha
                        else client.eval(script.source, 1, key, *args))
            return [await self.execute(command, _reply_or_error(call), timeout=timeout)]
        pipe = client.pipeline(transaction=False)
        for script, key, args, _ in batch:
            # execute_command: a cluster pipeline refuses the evalsha() helper
            pipe.execute_command(command, script.sha if by_sha else script.source, 1, key, *args)
        replies: list[Any] = await self.execute(
            command + " (pipeline)", pipe.execute(raise_on_error=False), timeout=timeout
        )
        return replies

    # -- the notification listener --
    async def _subscribe(self) -> tuple[Redis, PubSub]:
        """A new connection SUBSCRIBEd to the channel (confirmed by the server)."""
        candidates = self._listen_candidates()
        host, port = candidates[self._listen_node % len(candidates)]
        client = Redis(
            host=host,
            port=port,
            db=0 if self._cluster else self._config.database,
            # The listener reconnects by itself (and emits "resync"), so
            # redis-py must not resubscribe silently behind its back.
            retry=Retry(NoBackoff(), 0),
            **self._common_kwargs(),
        )
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.subscribe(EVENTS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=self._timeout)
                    if message is not None and message["type"] == "subscribe":
                        break
        except BaseException:
            await _close_quietly(client, pubsub)
            raise
        return client, pubsub

    async def _listen(self, client: Redis, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    await self._pump(pubsub)
                except _FAILURES as exc:
                    log.warning(
                        "%s: notification listener lost its connection (%s); reconnecting",
                        self._where,
                        _describe(exc),
                    )
                await _close_quietly(client, pubsub)
                client, pubsub = await self._resubscribe()
                log.info("%s: notification listener reconnected", self._where)
                self._dispatch(EVENT_RESYNC, "")
        finally:
            await _close_quietly(client, pubsub)

    async def _resubscribe(self) -> tuple[Redis, PubSub]:
        delay = RECONNECT_MIN_DELAY
        while True:
            self._listen_node += 1  # next cluster node: the last one may be the dead one
            try:
                return await self._subscribe()
            except _FAILURES as exc:
                log.debug("%s: listener reconnect failed: %s", self._where, _describe(exc))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _pump(self, pubsub: PubSub) -> None:
        """Deliver messages until the connection fails (raises)."""
        dispatch = self._dispatch
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            if message is None:
                # Silent for a while: make sure the connection is still alive.
                async with asyncio.timeout(self._timeout):
                    await pubsub.ping()
                message = await pubsub.get_message(timeout=self._timeout)
                if message is None:
                    raise RedisTimeoutError(f"no reply to PING within {self._timeout:g}s")
            if message["type"] == "message":
                event, _, payload = _decode(message["data"]).partition(":")
                dispatch(event, payload)


async def _reply_or_error(call: Callable[[], Awaitable[Any]]) -> Any:
    """The reply of ``call()``, or the NOSCRIPT error it raised (other failures raise)."""
    try:
        return await call()
    except NoScriptError as exc:
        return exc


def _fail(batch: list[_Call], exc: StoreError) -> None:
    for _, _, _, fut in batch:
        if not fut.done():
            fut.set_exception(StoreError(str(exc)))


async def _close_quietly(client: Redis, pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    finally:
        await client.aclose()


def _decode(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", _ENCODING_ERRORS)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _limits_args(rate_on: bool, rate: float, per: float, quota_max: int,
                 renewal_rate: float) -> tuple[bytes, bytes, bytes, bytes]:
    """ARGV of ``limits.lua``: rate and per (0 when there is no rate limit),
    quota_max (0: none) and the renewal in seconds (0: never; NaN too)."""
    if not 0 < renewal_rate < _INF:
        renewal_rate = 0
    return ((repr(rate) if rate_on else "0").encode(), (repr(per) if rate_on else "0").encode(),
            str(max(quota_max, 0)).encode(), repr(renewal_rate).encode())


def _lease_reply(reply: list[Any]) -> tuple[Any, ...]:
    """``lease.lua``'s reply as the tuple :meth:`RedisStore.lease` returns."""
    (granted, rate_allowed, remaining, reset_after, retry_after, q_allowed, q_remaining,
     renews_ms, now_ms, period, bound) = reply
    return (granted, rate_allowed == 1, remaining, float(reset_after), float(retry_after),
            q_allowed == 1, q_remaining, renews_ms / 1e3, now_ms, period, bound)


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed give-back is logged by its caller, if at all


def _chain(fut: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    if fut.done():
        return
    exc = done.exception()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(done.result())
