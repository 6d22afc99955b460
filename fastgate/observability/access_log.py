"""The access log (Tyk's ``access_logs``): one JSON object per line and exchange.

Theory of operation
-------------------
* **On the request path** :meth:`AccessLog.exchange_finished` copies the few
  fields it needs from the finished :class:`~fastgate._core.proxy.Exchange`
  into a tuple and appends it to a bounded list: no encoding, no hashing, no
  I/O.  Past ``MAX_BUFFERED`` waiting lines, new ones are dropped and counted
  (``dropped``) rather than grow without bound.
* **Every** ``FLUSH_INTERVAL`` **seconds** (and at :meth:`AccessLog.close`) a
  loop callback takes the whole list, encodes each line with orjson and
  writes the batch with one ``write`` (``O_APPEND``: several worker processes
  can share the file, each batch lands whole).  A write error drops the
  batch, is logged once per ``ERROR_INTERVAL`` and is never fatal: the file is
  opened again at the next batch.  A file moved or removed (log rotation) is
  noticed within a second and a new one created at the configured path.

The line
--------
Tyk's field names (``access_logs.template``; empty: all of them) with its
meanings, plus ``prefix: "access-log"`` on every line as Tyk's logger writes
it:

* ``api_key`` is the hash of the key, never the key: the storage key when
  ``hash_keys`` is on (what Tyk writes), and the key hashed the same way for
  the log when it is off (Tyk writes ``****`` and the key's last four
  characters there; fastgate reveals none of it).  "" for a request without a
  key.
* ``latency_total``, ``upstream_latency``, ``latency_gateway``
  (= total - upstream): milliseconds, as Tyk, with microsecond fractions
  (Tyk truncates to whole milliseconds, which makes a gateway's own answers 0).
* ``client_ip``: Tyk's ``RealIP`` (a valid ``X-Real-IP``, else the first
  ``X-Forwarded-For`` entry, else the peer); ``remote_addr``: the peer's
  address (without the port Go adds).
* ``path``: the request path as sent upstream, before the listen path is
  stripped, without the query (credentials sent in the query never reach the
  log); ``upstream_addr``: ``scheme://host[:port]/path`` of the upstream
  request ("" when no upstream answered).
* ``status``: the status sent to the client (0: the client went away before
  any answer was started).
* ``api_id``, ``api_name``, ``org_id`` (left out for a request no API served,
  as Tyk leaves out empty ones), ``host``, ``method``, ``protocol``
  (``HTTP/1.1``), ``user_agent``.
* ``trace_id`` (with request tracing on, from the ``traceparent`` sent
  upstream), ``request_id`` (the request id header's value), fastgate's
  ``timestamp`` (RFC 3339, UTC, milliseconds), ``bytes_in``, ``bytes_out``.

Tyk's names for what fastgate does not produce (``original_path``,
``response_flag``, ``circuit_breaker_state``...) are accepted in the template
and left out of the line, as Tyk leaves them out when they do not apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.config import ACCESS_LOG_FIELDS
from fastgate.observability.metrics import Family
from fastgate.session.keys import hash_key

if TYPE_CHECKING:
    from fastgate.config import GatewayConfig
    from fastgate.services import Services

__all__ = ["ERROR_INTERVAL", "FLUSH_INTERVAL", "MAX_BUFFERED", "AccessLog"]

log = logging.getLogger("fastgate.access_log")

#: Seconds between two batches.
FLUSH_INTERVAL = 0.2
#: Lines waiting for a batch past which new ones are dropped (and counted).
MAX_BUFFERED = 100_000
#: Seconds between two log messages about failed writes.
ERROR_INTERVAL = 10.0
#: Seconds between two checks that the file is still the one at the path.
_REOPEN_CHECK = 1.0
#: Hashes of keys kept for hash_keys off (the same keys come back).
_KEY_CACHE_SIZE = 4096


_time = time.time
_METHODS = {m.encode(): m for m in (
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}


class AccessLog:
    """Writes one JSON line per finished exchange, in batches, to
    ``access_logs.file`` (appended to) or standard output ("").

    Counters (plain ints, for the metrics): ``lines`` written, ``dropped``
    (buffer full), ``lost`` (in batches a write failed for), ``write_errors``.
    """

    def __init__(self, config: GatewayConfig, services: Services | None = None) -> None:
        settings = config.observability.access_logs
        self.path = settings.file
        #: The fields of a line, in order; Tyk's names.
        self.fields: tuple[str, ...] = settings.template or ACCESS_LOG_FIELDS
        self._all = not settings.template
        self.hash_keys = config.hash_keys
        tracing = config.observability.tracing
        self._trace = tracing.enabled
        self._request_id = tracing.request_id_header.lower().encode("latin-1")
        self._buffer: list[tuple[Any, ...]] = []
        self._limit = MAX_BUFFERED
        self._key_hashes: dict[str, str] = {}
        self._fd: int | None = None
        self._checked_at = 0.0
        self._error_at = -ERROR_INTERVAL
        self._errors_unlogged = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._second = -1
        self._second_text = ""
        self._millis = -1
        self._millis_text = ""
        self.lines = 0
        self.dropped = 0
        self.lost = 0
        self.write_errors = 0

    # -- the request path --------------------------------------------------------------

    def exchange_finished(self, ex: Any) -> None:
        """The exchange-finished hook: keep what the line needs (no encoding here)."""
        buffer = self._buffer
        if len(buffer) < self._limit:
            buffer.append((
                _time(), ex.route, ex.method, ex.path, ex.request_headers, ex.client_ip,
                ex.session_key, ex.status, ex.total_time, ex.upstream_time, ex.bytes_in,
                ex.bytes_out, ex.http11))
        else:
            self.dropped += 1

    def collect(self) -> list[Family]:
        """The access log's counters as metric families
        (:meth:`fastgate.observability.metrics.Metrics.add_collector`)."""
        return [
            Family("fastgate_access_log_lines_total", "counter",
                   "Access log lines written.", [((), self.lines)]),
            Family("fastgate_access_log_dropped_total", "counter",
                   "Access log lines dropped: the buffer was full.", [((), self.dropped)]),
            Family("fastgate_access_log_lost_total", "counter",
                   "Access log lines lost in batches that could not be written.",
                   [((), self.lost)]),
            Family("fastgate_access_log_write_errors_total", "counter",
                   "Access log batches that could not be written.", [((), self.write_errors)]),
        ]

    # -- batches -----------------------------------------------------------------------

    def start(self) -> None:
        """Start writing batches (called on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    async def close(self) -> None:
        """Write what is buffered and stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if self._fd is not None and self.path:
            os.close(self._fd)
        self._fd = None

    def _tick(self) -> None:
        try:
            self.flush()
        finally:
            if self._loop is not None and self._timer is not None:
                self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def flush(self) -> None:
        """Encode and write the buffered lines now (one write)."""
        batch = self._buffer
        if not batch:
            return
        self._buffer = []
        encode = self.encode
        data = bytearray()
        try:
            for record in batch:
                data += encode(record)
        except Exception:  # a bug must not stop the log: say so, drop the batch
            log.exception("access log: cannot encode a batch of %d lines", len(batch))
            self.lost += len(batch)
            return
        try:
            self._write(data)
        except OSError as exc:
            self.write_errors += 1
            self.lost += len(batch)
            self._close_fd()
            self._report(exc)
            return
        self.lines += len(batch)

    def _write(self, data: bytes | bytearray) -> None:
        fd = self._open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _open(self) -> int:
        if not self.path:
            if self._fd is None:
                self._fd = sys.stdout.fileno()
            return self._fd
        now = time.monotonic()
        if self._fd is not None and now - self._checked_at >= _REOPEN_CHECK:
            self._checked_at = now
            try:
                current = os.stat(self.path)
                mine = os.fstat(self._fd)
                moved = (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev)
            except OSError:
                moved = True
            if moved:
                self._close_fd()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o640)
            self._checked_at = now
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None and self.path:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def _report(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._error_at < ERROR_INTERVAL:
            self._errors_unlogged += 1
            return
        self._error_at = now
        more = self._errors_unlogged
        self._errors_unlogged = 0
        log.error("access log: cannot write to %s: %s (%d lines lost so far%s)",
                  self.path or "standard output", exc, self.lost,
                  f"; {more} more failed writes since the last message" if more else "")

    # -- one line ----------------------------------------------------------------------

    def encode(self, record: tuple[Any, ...]) -> bytes:
        """One JSON line (with its newline) for a record the hook kept."""
        (at, route, method, path, headers, peer, session_key, status, total, upstream,
         bytes_in, bytes_out, http11) = record
        host = user_agent = real_ip = forwarded = traceparent = request_id = None
        request_id_name = self._request_id
        for lname, _name, value in headers:
            if lname == b"host":
                host = value
            elif lname == b"user-agent":
                user_agent = value
            elif lname == b"x-real-ip":
                real_ip = value
            elif lname == b"x-forwarded-for":
                forwarded = forwarded or value
            elif lname == b"traceparent":
                traceparent = value
            elif lname == request_id_name:
                request_id = value
        peer_ip = peer.decode("latin-1")
        line: dict[str, Any] = {"timestamp": self._timestamp(at)}
        if route is not None:
            spec = route.spec
            if spec.api_id:
                line["api_id"] = spec.api_id
            if spec.name:
                line["api_name"] = spec.name
            if spec.org_id:
                line["org_id"] = spec.org_id
        line["api_key"] = self._key(session_key)
        line["client_ip"] = ((real_ip_of(real_ip, forwarded) or peer_ip)
                             if real_ip is not None or forwarded is not None else peer_ip)
        line["host"] = host.decode("latin-1") if host is not None else ""
        # Milliseconds with microseconds (int() then / is 3x round(x, 3)).
        line["latency_total"] = int(total * 1e6) / 1000
        line["latency_gateway"] = int((total - upstream) * 1e6) / 1000
        line["upstream_latency"] = int(upstream * 1e6) / 1000
        line["method"] = _METHODS.get(method) or method.decode("latin-1")
        line["path"] = path.decode("latin-1")
        line["protocol"] = "HTTP/1.1" if http11 else "HTTP/1.0"
        line["remote_addr"] = peer_ip
        line["status"] = status
        if self._trace and traceparent is not None and len(traceparent) >= 35:
            line["trace_id"] = traceparent[3:35].decode("latin-1")
        if request_id is not None:
            line["request_id"] = request_id.decode("latin-1")
        line["upstream_addr"] = (_upstream_addr(route, path)
                                 if route is not None and upstream > 0.0 else "")
        line["user_agent"] = user_agent.decode("latin-1") if user_agent is not None else ""
        line["bytes_in"] = bytes_in
        line["bytes_out"] = bytes_out
        if not self._all:
            line = {name: line[name] for name in self.fields if name in line}
        line["prefix"] = "access-log"
        return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)

    def _timestamp(self, at: float) -> str:
        millis = int(at * 1000)
        if millis == self._millis:  # a busy gateway ends many exchanges per ms
            return self._millis_text
        second = millis // 1000
        if second != self._second:
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.")
        self._millis = millis
        self._millis_text = text = f"{self._second_text}{millis % 1000:03d}Z"
        return text

    def _key(self, session_key: Any) -> str:
        return recorded_key(session_key, self.hash_keys, self._key_hashes)


def recorded_key(session_key: Any, hash_keys: bool, cache: dict[str, str]) -> str:
    """What a log line or an analytics record says of the caller's key: the
    storage key (a hash) with ``hash_keys``, else the key hashed here (never
    the credential itself); "" for none.  ``cache`` keeps the hashes made."""
    if not session_key:
        return ""
    if hash_keys:
        return str(session_key)
    hashed = cache.get(session_key)
    if hashed is None:
        if len(cache) >= _KEY_CACHE_SIZE:
            cache.clear()
        hashed = cache[session_key] = hash_key(str(session_key), "")
    return hashed


def real_ip_of(real_ip: bytes | None, forwarded: bytes | None) -> str | None:
    """Tyk's ``RealIP`` from the ``X-Real-IP`` and ``X-Forwarded-For`` values
    (None: use the peer's address); the analytics records use it too."""
    for value in (real_ip, (forwarded or b"").split(b",", 1)[0]):
        if value:
            try:
                return str(ipaddress.ip_address(value.strip().decode("latin-1")))
            except ValueError:
                continue
    return None


def _upstream_addr(route: Any, path: bytes) -> str:
    """``scheme://host[:port]`` of the API's target and the path sent there."""
    spec = route.spec
    listen: bytes = route.listen_path
    target: bytes = route.target_path
    if route.strip and path.startswith(listen):
        rest = path[len(listen):]
        sent = target + (rest if rest.startswith(b"/") else b"/" + rest)
    else:
        sent = target + path if target else path
    origin = "/".join(spec.target_url.split("/", 3)[:3])
    return origin + sent.decode("latin-1")
