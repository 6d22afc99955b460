"""Tyk-Pump-compatible analytics records (``enable_analytics``, ``analytics_config``).

One record per request an API served -- proxied, refused by its chain, or
answered with a gateway error (502...) -- as Tyk's success and error
handlers record them (``RecordHit``, ``HandleError``).  Requests no API
served (404s, ``/tyk/``, ``/hello``) make none, as in Tyk.

How it works
------------
* **The hook** (:meth:`Analytics.exchange_finished`) copies a dozen fields of
  the :class:`~fastgate._core.proxy.Exchange` into a tuple appended to a list:
  no string work, no lock, no I/O.  A client IP in ``ignored_ips`` is counted
  and skipped; a full buffer (``records_buffer_size``) drops the record and
  counts it.  Nothing the hook does can block or fail a request.
* **The flusher**, a loop timer every ``purge_interval`` seconds (sooner when
  a batch is full), swaps the buffer for an empty one, builds the records
  and encodes them in slices (the loop runs requests between slices), then
  writes the batch:

  - Redis store: one ``RPUSH`` of the whole batch onto
    ``analytics-tyk-system-analytics`` (with ``enable_multiple_analytics_keys``
    onto ``analytics-tyk-system-analytics_<0-9>``, one list picked at random
    per batch, as Tyk's workers do), and, when the list has no TTL, an
    ``EXPIRE`` of ``storage_expiration_time`` seconds (Tyk's purger does the
    same every second; -1: never).
  - memory store: JSON lines appended to ``analytics_config.file_path``, one
    write per batch.

  A Redis error loses that batch (counted ``failed``), never retries, and is
  logged at most once per :data:`LOG_INTERVAL`.

The record
----------
Tyk's ``AnalyticsRecord`` (tyk-pump ``analytics/analytics.go``, the version
Tyk's gateway pins) encoded with ``gopkg.in/vmihailenco/msgpack.v2``, the
encoder Tyk's ``MsgpSerializer`` uses: the struct has no msgpack tags, so it
is a map keyed by the Go field names in declaration order, nested structs
(``Geo``, ``Network``, ``Latency``, ``GraphQLStats``, ``MCPStats``) as maps
of their field names, ints in their smallest form, nil slices and maps as
nil.  ``time.Time`` in msgpack.v2 is **not** the msgpack timestamp extension
(that came with vmihailenco/msgpack v4): it is a two-element array
``[unix seconds, nanoseconds]`` (``0x92``...), and that is what Tyk Pump's
decoder requires.  :meth:`Analytics.encode` writes those bytes from pieces
encoded once per API, session, user agent, client address and second
(``encode_record(build(entry))`` is the reference it is tested against).

The values (what Tyk puts there, and where fastgate differs):

* ``Path``/``RawPath``: the request path, percent-decoded, the listen path
  stripped when ``strip_listen_path`` is on; ``Host``: the target URL's host;
  ``ContentLength``: the request's ``Content-Length`` (-1 chunked, 0 none).
* ``APIKey``: with ``hash_keys`` the key's hash, as stored; for a request
  without a key (keyless APIs, refused before a key was found) Tyk's hash of
  the empty token, ``00000000``.  Without ``hash_keys`` Tyk records the raw
  key; **fastgate differs** and records the key's hash (Tyk's ``HashStr``)
  there too, never a credential; a request without a key has ``""``.
* ``Tags``: ``pol-<policy id>`` for each applied policy, ``dev-<id>`` (meta
  data ``tyk_developer_id``), the session's tags, ``<header>-<value>`` for
  the API's ``tag_headers``, the API's ``tags``, then ``key-<APIKey>``,
  ``org-<org id>``, ``api-<api id>``, as Tyk's record worker appends them.
* ``Latency``: ``Total`` and ``Upstream`` milliseconds (truncated, as Go's
  int64 conversion), ``Gateway`` their difference; ``RequestTime`` is
  ``Total``.  ``ResponseCode`` 499 when the client went away before an
  answer (Tyk's "Client closed request").
* ``TimeStamp`` now; ``Day``/``Month``/``Year``/``Hour`` in local time, as
  Go's ``time.Now()``; ``ExpireAt`` now plus the API's
  ``expire_analytics_after`` seconds (0: a hundred years), as Tyk's
  ``SetExpiry`` -- not ``storage_expiration_time``, which is the list's TTL.
* ``IPAddress``: Tyk's ``RealIP`` (``X-Real-IP``, else the first
  ``X-Forwarded-For`` address, else the peer); ``ignored_ips`` is checked
  against the peer in the hook and against this address when the batch is
  built.
* ``RawRequest``/``RawResponse`` (``enable_detailed_recording``, or the
  API's or the session's ``enable_detailed_recording``): base64 of the wire
  format.  The gateway keeps no copy of bodies, so **fastgate differs**: the
  request is its head as forwarded (request line with the recorded path and
  the query, then the header fields), credentials replaced by
  ``[redacted]`` (``Authorization``, ``Proxy-Authorization``, ``Cookie``,
  ``X-Tyk-Authorization``, the API's ``auth_header_name``\\ s, and its auth
  query parameters); the response is its status line only.
* ``Geo`` (``enable_geo_ip``): country ISO code, city geoname id and names,
  location from the MaxMind database at ``geo_ip_db_path``.
* ``Network``, ``ApiSchema``, ``OriginalPath``, ``GraphQLStats``, ``MCPStats``,
  ``CollectionName``, ``TrackPath``: Tyk's zero values (no GraphQL, MCP, URL
  rewrites or ``track_endpoints`` here); ``ListenPath`` the API's.
* The API's ``do_not_track`` suppresses its records (counted ``ignored``).

Counters (``fastgate_analytics_records_total{result}``): ``recorded``
(written to Redis or the file), ``dropped`` (the buffer was full),
``ignored`` (``ignored_ips``, ``do_not_track``), ``failed`` (a write or an
encoding failed).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import msgpack
import orjson

from fastgate.config import ConfigError
from fastgate.observability.access_log import real_ip_of, recorded_key
from fastgate.observability.metrics import Family
from fastgate.responses import STATUS_LINES
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.config import GatewayConfig
    from fastgate.observability.metrics import Metrics
    from fastgate.services import Services

__all__ = [
    "ANALYTICS_KEY",
    "KEYLESS_KEY_HASH",
    "Analytics",
    "encode_record",
    "go_rfc3339",
]

log = logging.getLogger("fastgate.analytics")

#: The Redis list Tyk Pump reads (Tyk's ``analytics-`` prefix + ``tyk-system-analytics``).
ANALYTICS_KEY = "analytics-tyk-system-analytics"
#: ``enable_multiple_analytics_keys``: ``ANALYTICS_KEY + "_<n>"``, n in 0..9.
ANALYTICS_KEY_SHARDS = 10
#: Tyk's ``HashStr("")`` (murmur32 of nothing): the APIKey of a request
#: without a key when ``hash_keys`` is on.
KEYLESS_KEY_HASH = "00000000"
#: Records encoded between two returns to the loop.
ENCODE_SLICE = 256
#: Records in one RPUSH (or one file write) at most.
BATCH_SIZE = 1000
#: Seconds between two log messages about dropped or lost records.
LOG_INTERVAL = 10.0
#: Go's ``SetExpiry(0)``: a hundred years of 365 days.
_HUNDRED_YEARS = 365 * 100 * 86400
_NON_VERSIONED = "Non Versioned"
_REDACTED = b"[redacted]"
_CREDENTIAL_HEADERS = frozenset((b"authorization", b"proxy-authorization", b"cookie",
                                 b"x-tyk-authorization"))
_KEY_CACHE_SIZE = 4096
_now_ns = time.time_ns

# Zero values of the nested structs Tyk leaves empty (fresh dicts per record
# are not needed: the encoder only reads them).
_NETWORK = {"OpenConnections": 0, "ClosedConnection": 0, "BytesIn": 0, "BytesOut": 0}
_GRAPHQL = {"Variables": "", "RootFields": None, "Types": None, "Errors": None,
            "OperationType": 0, "HasErrors": False, "IsGraphQL": False}
_MCP = {"IsMCP": False, "JSONRPCMethod": "", "PrimitiveType": "", "PrimitiveName": ""}
_NO_GEO = {"Country": {"ISOCode": ""}, "City": {"GeoNameID": 0, "Names": None},
           "Location": {"Latitude": 0.0, "Longitude": 0.0, "TimeZone": ""}}

_packer = msgpack.Packer(use_bin_type=True, datetime=False)
_pack = _packer.pack
#: AnalyticsRecord's fields in the Go struct's order (tyk-pump v1.17, which
#: Tyk's gateway pins).
GO_FIELDS = (
    "Method", "Host", "Path", "RawPath", "ContentLength", "UserAgent", "Day", "Month",
    "Year", "Hour", "ResponseCode", "APIKey", "TimeStamp", "APIVersion", "APIName", "APIID",
    "OrgID", "OauthID", "RequestTime", "RawRequest", "RawResponse", "IPAddress", "Geo",
    "Network", "Latency", "Tags", "Alias", "TrackPath", "ExpireAt", "ApiSchema",
    "OriginalPath", "ListenPath", "GraphQLStats", "MCPStats", "CollectionName",
)
_K = {name: _pack(name) for name in (*GO_FIELDS, "Total", "Upstream", "Gateway")}
_MAP_HEADER = b"\xde" + len(GO_FIELDS).to_bytes(2, "big")
_SMALL_INTS = [_pack(i) for i in range(4096)]
_SEG_NETWORK = _K["Network"] + _pack(_NETWORK)
_SEG_NO_GEO = _K["Geo"] + _pack(_NO_GEO)
_SEG_TRACK = _K["TrackPath"] + _pack(False)
_LATENCY = _K["Latency"] + b"\x83" + _K["Total"]
_EMPTY = _pack("")
_ARRAY16 = b"\xdc"
_METHODS = {m: _pack(m.decode()) for m in (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH",
                                            b"HEAD", b"OPTIONS")}
_RAW_NONE = _K["RawRequest"] + _EMPTY + _K["RawResponse"] + _EMPTY
_HEAD_METHOD = _MAP_HEADER + _K["Method"]
_K_RAW_PATH = _K["RawPath"]
_K_CONTENT_LENGTH = _K["ContentLength"]
_K_USER_AGENT = _K["UserAgent"]
_K_UPSTREAM = _K["Upstream"]
_K_GATEWAY = _K["Gateway"]
_K_TAGS = _K["Tags"]
_TAGS_HEADS = [_K_TAGS + bytes((0x90 | n,)) for n in range(16)]



def encode_record(record: dict[str, Any]) -> bytes:
    """One record as Tyk's msgpack.v2 encoder writes it (``record`` holds
    the Go field names in order; times as ``[seconds, nanoseconds]``)."""
    return _packer.pack(record)


#: Seconds -> their RFC 3339 text (the records of one batch share a few).
_RFC3339_SECONDS: dict[int, str] = {}


def go_rfc3339(seconds: int, nanos: int) -> str:
    """A time as Go's ``time.Time`` JSON (RFC 3339, nanoseconds without
    trailing zeros, UTC as ``Z``)."""
    text = _RFC3339_SECONDS.get(seconds)
    if text is None:
        if len(_RFC3339_SECONDS) >= 64:
            _RFC3339_SECONDS.clear()
        text = _RFC3339_SECONDS[seconds] = datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += ("." + "%09d" % nanos).rstrip("0")  # noqa: UP031
    return text + "Z"


class _ApiInfo:
    """What the records of one API share, read once per batch from its definition."""

    __slots__ = ("api_id", "auth_headers", "auth_params", "detailed", "do_not_track",
                 "expire_after", "host", "listen_path", "name", "org_id", "seg_host",
                 "seg_names", "seg_tail", "spec", "strip", "tag_headers", "tags",
                 "tags_packed", "tail_packed", "tail_tags", "version")

    def __init__(self, spec: Any) -> None:
        raw = spec.raw if isinstance(spec.raw, dict) else {}
        self.spec = spec
        self.api_id: str = spec.api_id
        self.name: str = spec.name
        self.org_id: str = spec.org_id
        self.listen_path: str = spec.listen_path
        self.strip: bool = spec.strip_listen_path
        self.host: str = spec.target_host_header
        self.do_not_track = raw.get("do_not_track") is True
        self.detailed = raw.get("enable_detailed_recording") is True
        expire = raw.get("expire_analytics_after")
        self.expire_after = (int(expire) if isinstance(expire, int | float)
                             and not isinstance(expire, bool) else 0)
        self.tags = [t for t in _list(raw.get("tags")) if isinstance(t, str)]
        self.tag_headers = frozenset(h.lower().encode("latin-1", "replace")
                                     for h in _list(raw.get("tag_headers"))
                                     if isinstance(h, str))
        tail = ([f"org-{self.org_id}"] if self.org_id else []) + [f"api-{self.api_id}"]
        self.tail_tags = tail
        version_data = spec.version_data if isinstance(spec.version_data, dict) else {}
        if version_data.get("not_versioned", True) is not False:
            self.version = _NON_VERSIONED
        else:
            default = version_data.get("default_version")
            self.version = default if isinstance(default, str) and default else ""
        headers: set[bytes] = set()
        params: set[bytes] = set()
        for section in [raw.get("auth"), *_dict(raw.get("auth_configs")).values()]:
            if not isinstance(section, dict):
                continue
            name = section.get("auth_header_name")
            if isinstance(name, str) and name:
                headers.add(name.lower().encode("latin-1", "replace"))
            param = section.get("param_name") or (name if section.get("use_param") else "")
            if isinstance(param, str) and param:
                params.add(param.encode("latin-1", "replace"))
        self.auth_headers = frozenset(headers)
        self.auth_params = frozenset(params)
        # The encoded pieces of the record that are the API's (see Analytics.encode).
        self.seg_host = _K["Host"] + _pack(self.host) + _K["Path"]
        self.seg_names = (_K["APIVersion"] + _pack(self.version) + _K["APIName"]
                          + _pack(self.name) + _K["APIID"] + _pack(self.api_id)
                          + _K["OrgID"] + _pack(self.org_id))
        self.seg_tail = (_K["ApiSchema"] + _pack("") + _K["OriginalPath"] + _pack("")
                         + _K["ListenPath"] + _pack(self.listen_path)
                         + _K["GraphQLStats"] + _pack(_GRAPHQL) + _K["MCPStats"] + _pack(_MCP)
                         + _K["CollectionName"] + _pack(""))
        self.tags_packed = [_pack(t) for t in self.tags]
        self.tail_packed = [_pack(t) for t in self.tail_tags]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Analytics:
    """This worker's analytics: the exchange hook, the buffer and its flusher.

    Built by :class:`fastgate.observability.Observability` when
    ``enable_analytics`` is on.  Raises ConfigError when ``enable_geo_ip``
    names a file that is not a MaxMind database.
    """

    def __init__(self, config: GatewayConfig, services: Services, metrics: Metrics) -> None:
        cfg = config.observability.analytics
        self.config = cfg
        self.services = services
        self.hash_keys = config.hash_keys
        self.capacity = max(1, cfg.records_buffer_size)
        self.batch_size = min(self.capacity, BATCH_SIZE)
        self.interval = cfg.purge_interval
        self.detailed = cfg.enable_detailed_recording
        self.expiration = cfg.storage_expiration_time
        self.multiple_keys = cfg.enable_multiple_analytics_keys
        self.file_path = cfg.file_path
        self._ignored = frozenset(ip.encode("latin-1") for ip in cfg.ignored_ips)
        self._ignored_text = frozenset(cfg.ignored_ips)
        self._buffer: list[tuple[Any, ...]] = []
        #: Counters (``fastgate_analytics_records_total``).
        self.recorded = 0
        self.dropped = 0
        self.ignored = 0
        self.failed = 0
        self._logged_dropped = 0
        self._logged_failed = 0
        self._logged_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False
        self._file: Any = None
        self._apis: dict[int, _ApiInfo] = {}
        self._key_hashes: dict[str, str] = {}
        # Pieces of records already encoded (see encode()).
        self._sessions: dict[Any, tuple[Any, ...]] = {}
        self._ips: dict[tuple[Any, ...], tuple[str, bytes]] = {}
        self._agents: dict[bytes, bytes] = {}
        self._second = -1
        self._second_seg = b""
        #: build()'s local time, per second.
        self._local_second = -1
        self._local = time.localtime(0)
        self._second_packed = b""
        self._geo: Any = None
        if cfg.enable_geo_ip:
            self._geo = _open_geo(config.path, cfg.geo_ip_db_path)
        metrics.add_collector(self.collect)

    # -- the request path ---------------------------------------------------------

    def exchange_finished(self, ex: Any) -> None:
        """Keep what the record needs of an ended exchange (the gateway's hook)."""
        route = ex.route
        if route is None:
            return
        client_ip = ex.client_ip
        if self._ignored and client_ip in self._ignored:
            self.ignored += 1
            return
        buffer = self._buffer
        if len(buffer) >= self.capacity:
            self.dropped += 1
            return
        buffer.append((route, ex.method, ex.path, ex.query, ex.request_headers, client_ip,
                       ex.session, ex.session_key, ex.status, ex.total_time,
                       ex.upstream_time, _now_ns()))
        if len(buffer) == self.batch_size and not self._soon and self._loop is not None:
            self._soon = True
            self._loop.call_soon(self._tick)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher on the running loop (and open the file)."""
        self._loop = asyncio.get_running_loop()
        if self.file_path:
            directory = os.path.dirname(self.file_path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._file = open(self.file_path, "ab")  # noqa: SIM115 -- kept open, closed in close()
        self._timer = self._loop.call_later(self.interval, self._tick)

    async def close(self) -> None:
        """Write what is buffered, then stop."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._flushing is not None:
            await self._flushing
        if self._buffer and self._loop is not None:
            self._flushing = self._loop.create_task(self._flush())
            await self._flushing
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._geo is not None:
            self._geo.close()
            self._geo = None

    def collect(self) -> Iterable[Family]:
        """The counters, for ``/metrics``."""
        return [Family("fastgate_analytics_records_total", "counter",
                       "Analytics records by what became of them.",
                       [((("result", "recorded"),), self.recorded),
                        ((("result", "dropped"),), self.dropped),
                        ((("result", "ignored"),), self.ignored),
                        ((("result", "failed"),), self.failed)])]

    # -- the flusher --------------------------------------------------------------

    def _tick(self) -> None:
        self._soon = False
        loop = self._loop
        if loop is None or self._closed:
            return
        if self._buffer and self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(self.interval, self._tick)
        self._report()

    async def _flush(self) -> None:
        try:
            while self._buffer:
                taken, self._buffer = self._buffer, []
                for start in range(0, len(taken), self.batch_size):
                    await self._write(await self._encode(taken[start:start + self.batch_size]))
        finally:
            self._flushing = None

    async def _encode(self, entries: list[tuple[Any, ...]]) -> list[bytes]:
        as_json = self._file is not None
        encoded: list[bytes] = []
        self._apis.clear()
        for start in range(0, len(entries), ENCODE_SLICE):
            if start:
                await asyncio.sleep(0)  # requests run between two slices
            for entry in entries[start:start + ENCODE_SLICE]:
                try:
                    data = _json_line(self.build(entry)) if as_json else self.encode(entry)
                    if data is None:
                        self.ignored += 1
                        continue
                    encoded.append(data)
                except Exception:
                    self.failed += 1
                    log.exception("analytics: a record could not be encoded")
        return encoded

    async def _write(self, records: list[bytes]) -> None:
        if not records:
            return
        if self._file is not None:
            try:
                self._file.write(b"".join(records))
                self._file.flush()
            except OSError as exc:
                self.failed += len(records)
                self._report(f"cannot write to {self.file_path}: {exc}")
                return
            self.recorded += len(records)
            return
        key = ANALYTICS_KEY
        if self.multiple_keys:
            key = f"{key}_{random.randrange(ANALYTICS_KEY_SHARDS)}"
        try:
            await push_list(self.services.store, key, records, self.expiration)
        except StoreError as exc:
            self.failed += len(records)
            self._report(f"cannot push to redis: {exc}")
            return
        self.recorded += len(records)

    def _report(self, error: str = "") -> None:
        """Log drops and failures at most once per LOG_INTERVAL."""
        if (self.dropped == self._logged_dropped and self.failed == self._logged_failed
                and not error):
            return
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL:
            return
        self._logged_at = now
        dropped = self.dropped - self._logged_dropped
        failed = self.failed - self._logged_failed
        self._logged_dropped, self._logged_failed = self.dropped, self.failed
        log.error("analytics: %s%d records dropped (buffer of %d full), %d lost since the "
                  "last message", f"{error}; " if error else "", dropped, self.capacity,
                  failed)

    # -- one record ---------------------------------------------------------------

    def _api(self, spec: Any) -> _ApiInfo:
        info = self._apis.get(id(spec))
        if info is None or info.spec is not spec:
            info = self._apis[id(spec)] = _ApiInfo(spec)
        return info

    def build(self, entry: tuple[Any, ...]) -> dict[str, Any] | None:
        """The record (Go field names, in order) for what the hook kept; None
        when the API is not tracked or the client's real IP is ignored."""
        (route, method, path, query, headers, peer, session, session_key, status, total,
         upstream, at_ns) = entry
        api = self._api(route.spec)
        if api.do_not_track:
            return None
        user_agent = real_ip = forwarded = None
        content_length = 0
        tag_values: list[str] = []
        for lname, _name, value in headers:
            if lname == b"user-agent":
                if user_agent is None:
                    user_agent = value
            elif lname == b"content-length":
                content_length = int(value) if value.isdigit() else 0
            elif lname == b"transfer-encoding":
                content_length = -1
            elif lname == b"x-real-ip":
                real_ip = real_ip or value
            elif lname == b"x-forwarded-for":
                forwarded = forwarded or value
            if lname in api.tag_headers:
                tag_values.append(lname.decode("latin-1") + "-" + value.decode("latin-1"))
        ip = real_ip_of(real_ip, forwarded) or peer.decode("latin-1")
        if self._ignored_text and ip in self._ignored_text:
            return None

        listen = route.listen_path
        raw_path = path[len(listen):] if api.strip and path.startswith(listen) else path
        if not raw_path.startswith(b"/"):
            raw_path = b"/" + raw_path
        record_path = unquote_to_bytes(raw_path).decode("utf-8", "replace")

        effective = getattr(session, "effective", None) if session is not None else None
        if not isinstance(effective, dict):
            effective = {}
        api_key = self._api_key(session_key)
        tags: list[str] = []
        for policy in _list(effective.get("apply_policies")):
            if isinstance(policy, str):
                tags.append("pol-" + policy)
        developer = _dict(effective.get("meta_data")).get("tyk_developer_id")
        if isinstance(developer, str):
            tags.append("dev-" + developer)
        tags.extend(t for t in _list(effective.get("tags")) if isinstance(t, str))
        tags.extend(tag_values)
        tags.extend(api.tags)
        if api_key:
            tags.append("key-" + api_key)
        tags.extend(api.tail_tags)

        total_ms = int(total * 1000.0)
        upstream_ms = int(upstream * 1000.0)
        seconds, nanos = divmod(at_ns, 1_000_000_000)
        if seconds != self._local_second:
            self._local_second = seconds
            self._local = time.localtime(seconds)
        local = self._local
        expire = api.expire_after if api.expire_after > 0 else _HUNDRED_YEARS
        code = status or 499
        raw_request = raw_response = ""
        if (self.detailed or api.detailed
                or effective.get("enable_detailed_recording") is True):
            raw_request = _raw_request(api, method, raw_path, query, headers)
            raw_response = _raw_response(code)
        alias = effective.get("alias")
        oauth_id = effective.get("oauth_client_id")
        return {
            "Method": method.decode("latin-1"),
            "Host": api.host,
            "Path": record_path,
            "RawPath": record_path,
            "ContentLength": content_length,
            "UserAgent": user_agent.decode("latin-1") if user_agent is not None else "",
            "Day": local.tm_mday,
            "Month": local.tm_mon,
            "Year": local.tm_year,
            "Hour": local.tm_hour,
            "ResponseCode": code,
            "APIKey": api_key,
            "TimeStamp": [seconds, nanos],
            "APIVersion": api.version,
            "APIName": api.name,
            "APIID": api.api_id,
            "OrgID": api.org_id,
            "OauthID": oauth_id if isinstance(oauth_id, str) else "",
            "RequestTime": total_ms,
            "RawRequest": raw_request,
            "RawResponse": raw_response,
            "IPAddress": ip,
            "Geo": self._geo_of(ip),
            "Network": _NETWORK,
            "Latency": {"Total": total_ms, "Upstream": upstream_ms,
                        "Gateway": total_ms - upstream_ms},
            "Tags": tags,
            "Alias": alias if isinstance(alias, str) else "",
            "TrackPath": False,
            "ExpireAt": [seconds + expire, nanos],
            "ApiSchema": "",
            "OriginalPath": "",
            "ListenPath": api.listen_path,
            "GraphQLStats": _GRAPHQL,
            "MCPStats": _MCP,
            "CollectionName": "",
        }

    def encode(self, entry: tuple[Any, ...]) -> bytes | None:
        """The msgpack bytes of :meth:`build`'s record, assembled from
        pieces encoded once per API, session, user agent, client address and
        second (the same bytes, a third of the time); None as :meth:`build`."""
        (route, method, path, query, headers, peer, session, session_key, status, total,
         upstream, at_ns) = entry
        spec = route.spec
        api = self._apis.get(id(spec))
        if api is None or api.spec is not spec:
            api = self._api(spec)
        if api.do_not_track:
            return None
        user_agent = real_ip = forwarded = None
        content_length = 0
        tag_values: list[bytes] | None = None
        tag_headers = api.tag_headers
        for lname, _name, value in headers:
            if lname == b"user-agent":
                if user_agent is None:
                    user_agent = value
            elif lname == b"content-length":
                content_length = int(value) if value.isdigit() else 0
            elif lname == b"transfer-encoding":
                content_length = -1
            elif lname == b"x-real-ip":
                real_ip = real_ip or value
            elif lname == b"x-forwarded-for":
                forwarded = forwarded or value
            if tag_headers and lname in tag_headers:
                if tag_values is None:
                    tag_values = []
                tag_values.append(_pack(lname.decode("latin-1") + "-" + value.decode("latin-1")))
        cache = self._ips
        where = (peer, real_ip, forwarded)
        found = cache.get(where)
        if found is None:
            if len(cache) >= _KEY_CACHE_SIZE:
                cache.clear()
            ip = real_ip_of(real_ip, forwarded) or peer.decode("latin-1")
            found = cache[where] = (ip, _K["IPAddress"] + _pack(ip)
                                    + (self._geo_segment(ip) if self._geo is not None
                                       else _SEG_NO_GEO) + _SEG_NETWORK + _LATENCY)
        if self._ignored_text and found[0] in self._ignored_text:
            return None

        listen = route.listen_path
        raw_path = path[len(listen):] if api.strip and path.startswith(listen) else path
        if not raw_path.startswith(b"/"):
            raw_path = b"/" + raw_path
        packed_path = _pack((unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path)
                            .decode("utf-8", "replace"))

        who = self._session_parts(session, session_key)
        tags = who[3] + (tag_values or []) + api.tags_packed
        if who[4] is not None:
            tags.append(who[4])
        tags += api.tail_packed
        count = len(tags)

        if user_agent is None:
            packed_ua = _EMPTY
        else:
            cached = self._agents.get(user_agent)
            if cached is None:
                if len(self._agents) >= _KEY_CACHE_SIZE:
                    self._agents.clear()
                cached = self._agents[user_agent] = _pack(user_agent.decode("latin-1"))
            packed_ua = cached

        seconds, nanos = divmod(at_ns, 1_000_000_000)
        if seconds != self._second:
            local = time.localtime(seconds)
            self._second = seconds
            self._second_seg = (_K["Day"] + _pack(local.tm_mday) + _K["Month"]
                                + _pack(local.tm_mon) + _K["Year"] + _pack(local.tm_year)
                                + _K["Hour"] + _pack(local.tm_hour) + _K["ResponseCode"])
            self._second_packed = _pack(seconds)
        expire = api.expire_after if api.expire_after > 0 else _HUNDRED_YEARS
        code = status or 499
        total_ms = int(total * 1000.0)
        upstream_ms = int(upstream * 1000.0)
        small = _SMALL_INTS
        packed_total = small[total_ms] if total_ms < 4096 else _pack(total_ms)
        packed_nanos = _pack(nanos)
        gateway_ms = total_ms - upstream_ms
        if self.detailed or api.detailed or who[5]:
            raw = (_K["RawRequest"] + _pack(_raw_request(api, method, raw_path, query, headers))
                   + _K["RawResponse"] + _pack(_raw_response(code)))
        else:
            raw = _RAW_NONE
        return b"".join((
            _HEAD_METHOD, _METHODS.get(method) or _pack(method.decode("latin-1")),
            api.seg_host, packed_path, _K_RAW_PATH, packed_path, _K_CONTENT_LENGTH,
            small[content_length] if 0 <= content_length < 4096 else _pack(content_length),
            _K_USER_AGENT, packed_ua, self._second_seg,
            small[code] if code < 4096 else _pack(code),
            who[0], self._second_packed, packed_nanos, api.seg_names, who[1], packed_total,
            raw, found[1], packed_total, _K_UPSTREAM,
            small[upstream_ms] if upstream_ms < 4096 else _pack(upstream_ms), _K_GATEWAY,
            small[gateway_ms] if 0 <= gateway_ms < 4096 else _pack(gateway_ms),
            _TAGS_HEADS[count] if count < 16 else _K_TAGS + _ARRAY16 + count.to_bytes(2, "big"),
            *tags, who[2], _pack(seconds + expire), packed_nanos, api.seg_tail))

    def _session_parts(self, session: Any, session_key: Any) -> tuple[Any, ...]:
        """(APIKey piece, OauthID piece, Alias piece, the session's tags packed,
        the key tag packed or None, detailed recording) for one session."""
        cache = self._sessions
        found = cache.get(session_key)
        if found is not None and found[6] is session:
            return found
        if len(cache) >= _KEY_CACHE_SIZE:
            cache.clear()
        effective = getattr(session, "effective", None) if session is not None else None
        if not isinstance(effective, dict):
            effective = {}
        api_key = self._api_key(session_key)
        tags = [_pack("pol-" + p) for p in _list(effective.get("apply_policies"))
                if isinstance(p, str)]
        developer = _dict(effective.get("meta_data")).get("tyk_developer_id")
        if isinstance(developer, str):
            tags.append(_pack("dev-" + developer))
        tags += [_pack(t) for t in _list(effective.get("tags")) if isinstance(t, str)]
        alias = effective.get("alias")
        oauth_id = effective.get("oauth_client_id")
        found = cache[session_key] = (
            _K["APIKey"] + _pack(api_key) + _K["TimeStamp"] + b"\x92",
            _K["OauthID"] + _pack(oauth_id if isinstance(oauth_id, str) else "")
            + _K["RequestTime"],
            _K["Alias"] + _pack(alias if isinstance(alias, str) else "") + _SEG_TRACK
            + _K["ExpireAt"] + b"\x92",
            tags, _pack("key-" + api_key) if api_key else None,
            effective.get("enable_detailed_recording") is True, session)
        return found

    def _geo_segment(self, ip: str) -> bytes:
        return _K["Geo"] + _pack(self._geo_of(ip))

    def _api_key(self, session_key: Any) -> str:
        if not session_key:
            return KEYLESS_KEY_HASH if self.hash_keys else ""
        # hash_keys off: Tyk records the raw key; fastgate records its hash.
        return recorded_key(session_key, self.hash_keys, self._key_hashes)

    def _geo_of(self, ip: str) -> dict[str, Any]:
        if self._geo is None:
            return _NO_GEO
        try:
            found = self._geo.get(ip)
        except ValueError:
            return _NO_GEO
        if not isinstance(found, dict):
            return _NO_GEO
        country = _dict(found.get("country"))
        city = _dict(found.get("city"))
        location = _dict(found.get("location"))
        names = city.get("names")
        geoname_id = city.get("geoname_id")
        latitude = location.get("latitude")
        longitude = location.get("longitude")
        time_zone = location.get("time_zone")
        iso_code = country.get("iso_code")
        return {
            "Country": {"ISOCode": iso_code if isinstance(iso_code, str) else ""},
            "City": {"GeoNameID": geoname_id if isinstance(geoname_id, int) else 0,
                     "Names": ({str(k): str(v) for k, v in names.items()}
                               if isinstance(names, dict) else None)},
            "Location": {
                "Latitude": float(latitude) if isinstance(latitude, int | float) else 0.0,
                "Longitude": float(longitude) if isinstance(longitude, int | float) else 0.0,
                "TimeZone": time_zone if isinstance(time_zone, str) else "",
            },
        }


async def push_list(store: Any, key: str, values: list[bytes], ttl: int) -> None:
    """``RPUSH`` ``values`` onto the list ``key`` in one command, then, when
    ``ttl > 0`` and the list has no TTL, ``EXPIRE`` it (what Tyk's purger
    does every second).  Through the Redis store's ``client`` and
    ``execute`` (bounded, errors as StoreError); raises StoreError."""
    from redis.asyncio.cluster import RedisCluster

    client = store.client
    pipe = client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(
        transaction=False)
    pipe.rpush(key, *values)
    pipe.ttl(key)
    replies = await store.execute("RPUSH", pipe.execute())
    if ttl > 0 and replies[1] == -1:
        await store.execute("EXPIRE", client.expire(key, ttl))


def _open_geo(config_path: str, db_path: str) -> Any:
    import maxminddb

    try:
        return maxminddb.open_database(db_path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(config_path, "analytics_config.geo_ip_db_path",
                          f"cannot read the MaxMind database {db_path}: {exc}") from None


def _raw_request(api: _ApiInfo, method: bytes, path: bytes, query: bytes,
                 headers: list[tuple[bytes, bytes, bytes]]) -> str:
    """Base64 of the request head, credentials redacted (see the module docstring)."""
    target = path
    if query:
        if api.auth_params:
            query = b"&".join(
                (part.split(b"=", 1)[0] + b"=" + _REDACTED)
                if part.split(b"=", 1)[0] in api.auth_params else part
                for part in query.split(b"&"))
        target += b"?" + query
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for lname, name, value in headers:
        if lname in _CREDENTIAL_HEADERS or lname in api.auth_headers:
            value = _REDACTED
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return base64.b64encode(b"".join(lines)).decode("ascii")


def _raw_response(code: int) -> str:
    """Base64 of the response's status line (see the module docstring)."""
    status_line = STATUS_LINES.get(code) or b"HTTP/1.1 %d Unknown\r\n" % code
    return base64.b64encode(status_line + b"\r\n").decode("ascii")


def _json_line(record: dict[str, Any] | None) -> bytes | None:
    """A record as one JSON line: the same names, times as RFC 3339 text."""
    if record is None:
        return None
    # The record is this line's own (build() made it): changed in place.
    record["TimeStamp"] = go_rfc3339(*record["TimeStamp"])
    record["ExpireAt"] = go_rfc3339(*record["ExpireAt"])
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
