"""Trace context sent upstream, a request id, and spans exported over OTLP/HTTP.

Two halves, joined by the exchange's ``context``:

* :class:`TraceStep` -- the first step of every API's chain while
  ``request_tracing.enabled`` (or ``opentelemetry.enabled``) is on, before
  any authentication, so refused requests are traced too.  It reads the
  client's W3C ``traceparent`` / ``tracestate`` (Trace Context Level 1),
  continues that trace or starts one, and sends the upstream
  ``traceparent: 00-<trace id>-<the gateway's span id>-<flags>`` in place of
  the client's; ``tracestate`` goes on as sent.  It keeps or makes the
  request id (``request_id_header``), sends it upstream and back to the
  client, and with OpenTelemetry on answers ``X-Tyk-Trace-Id`` as Tyk does.
* :class:`Tracing` -- the exchange-finished hook: a sampled exchange
  becomes a SERVER span, queued (bounded), and exported in batches as an
  OTLP ``ExportTraceServiceRequest`` (protobuf, :mod:`.otlp`) through the
  gateway's outbound client, off the request path.  Export failures are
  counted and logged once per interval; they never touch a request.

Trace Context rules applied (https://www.w3.org/TR/trace-context/):

    traceparent = version "-" trace-id "-" parent-id "-" trace-flags
    version     = 2HEXDIGLC   ; "ff" is invalid
    trace-id    = 32HEXDIGLC  ; all zeros is invalid
    parent-id   = 16HEXDIGLC  ; all zeros is invalid
    trace-flags = 2HEXDIGLC   ; bit 0: sampled

Version 00 is exactly 55 characters; a higher version is read the same way
for its first 55, and must then end or go on with "-".  An invalid
``traceparent`` is treated as absent (a new trace, its ``tracestate``
dropped).  ``tracestate`` (several fields are one list) is kept as sent; a
list of more than 32 members is dropped, and one longer than 512 characters
is cut as the spec says: members over 128 characters first, then from the end.

Sampling (the flag sent upstream, and whether a span is exported) is
OpenTelemetry's: ``AlwaysOn``, ``AlwaysOff``, ``TraceIDRatioBased`` (sampled
when the trace id's last 8 bytes, as a big-endian number shifted right by
one, are below ``rate * 2**63``), and with ``parent_based`` a client's
trace keeps its own decision.  Without OpenTelemetry export the gateway
records nothing itself, so a client's flag is passed on unchanged and only
the traces it starts follow the sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from binascii import unhexlify
from collections import deque
from random import getrandbits
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from fastgate import __version__
from fastgate.observability.metrics import Family
from fastgate.observability.otlp import (
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    STATUS_UNSET,
    Attribute,
    SpanData,
    encode_export_request,
    encode_span,
)
from fastgate.outbound import OutboundError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fastgate.config import GatewayConfig, TracingConfig
    from fastgate.observability.metrics import Metrics
    from fastgate.services import Request, Services

__all__ = ["TRACE_KEY", "TraceStep", "Tracing", "otlp_url", "parse_traceparent",
           "ratio_sampled", "trim_tracestate"]

log = logging.getLogger("fastgate.tracing")

#: The exchange context's entry the hook reads: (trace id, gateway span id,
#: parent span id or None, tracestate or None), ids as lower-case hex bytes;
#: present only for a sampled trace while OTLP export is on.  A name no
#: ``$tyk_context.*`` variable can have.
TRACE_KEY = "fastgate:trace"
#: How often an export failure is logged (seconds): once per interval.
LOG_INTERVAL = 60.0
MAX_TRACESTATE = 512
MAX_TRACESTATE_MEMBERS = 32
MAX_REQUEST_ID = 200

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
_SANE_ID = re.compile(rb"[\x21-\x7e](?:[\x20-\x7e]{0,%d}[\x21-\x7e])?" % (MAX_REQUEST_ID - 2))
_TRACE_ID_HEADER = b"X-Tyk-Trace-Id: "


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, int] | None:
    """(trace id, parent id, flags) of a ``traceparent`` value, or None when
    it is invalid (see the module docstring)."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == b"ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if len(value) != 55 and (version == b"00" or value[55:56] != b"-"):
        return None
    return trace_id, parent_id, int(flags, 16)


def ratio_sampled(trace_id: bytes, bound: int) -> bool:
    """OpenTelemetry's TraceIDRatioBased decision for a hex ``trace_id``:
    its last 8 bytes (big-endian) shifted right by one, below ``bound``
    (``int(rate * 2**63)``)."""
    return int(trace_id[16:32], 16) >> 1 < bound


def trim_tracestate(values: list[bytes]) -> bytes | None:
    """The ``tracestate`` to forward from the fields received: None for
    none (empty, or more than 32 members); the members joined, cut to 512
    characters the spec's way."""
    members = [m.strip() for m in b",".join(values).split(b",")]
    members = [m for m in members if m]
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    joined = b",".join(members)
    if len(joined) <= MAX_TRACESTATE:
        return joined
    members = [m for m in members if len(m) <= 128]
    while members and len(b",".join(members)) > MAX_TRACESTATE:
        members.pop()
    return b",".join(members) or None


class _Sampler:
    """The root decision for a new (or not parent-based) trace."""

    __slots__ = ("bound", "mode")

    def __init__(self, kind: str, rate: float) -> None:
        self.mode = {"AlwaysOn": 1, "AlwaysOff": 0}.get(kind, 2)
        if self.mode == 2 and rate >= 1:
            self.mode = 1
        self.bound = int(rate * (1 << 63)) if self.mode == 2 else 0

    def sampled(self, trace_id: bytes) -> bool:
        if self.mode != 2:
            return self.mode == 1
        return int(trace_id[16:32], 16) >> 1 < self.bound


class TraceStep:
    """The chain step: trace context and request id (see the module docstring)."""

    name: ClassVar[str] = "tracing"
    __slots__ = ("export", "follow_parent", "request_id", "request_id_line", "sampler",
                 "start_traces")

    def __init__(self, config: TracingConfig) -> None:
        self.start_traces = config.start_traces
        #: Spans are exported: the sampler decides, and the hook needs the ids.
        self.export = config.otel_enabled
        #: A client's sampled flag is the decision (parent_based, or no export).
        self.follow_parent = config.parent_based or not config.otel_enabled
        self.sampler = _Sampler(config.sampling_type, config.sampling_rate)
        name = config.request_id_header.encode("latin-1")
        self.request_id: tuple[bytes, bytes] | None = (name.lower(), name) if name else None
        self.request_id_line = name + b": "

    def process(self, req: Request) -> None:
        """Rewrite the trace headers; never refuses."""
        sent = req.header(b"traceparent")
        parent = parse_traceparent(sent) if sent is not None else None
        state: bytes | None = None
        trace_id: bytes | None = None
        parent_id: bytes | None = None
        started = False
        sampled = False
        has_state = req.header(b"tracestate") is not None
        if parent is not None:
            trace_id, parent_id, flags = parent
            sampled = flags & 1 == 1 if self.follow_parent else self.sampler.sampled(trace_id)
            if has_state:
                values = [h[2] for h in req.request_headers if h[0] == b"tracestate"]
                state = trim_tracestate(values)
                if len(values) != 1 or state != values[0]:
                    req.remove_header(b"tracestate")
                    if state is not None:
                        req.add_header(b"tracestate", state)
        else:
            if has_state:
                req.remove_header(b"tracestate")  # it belongs to the trace not continued
            if self.start_traces:
                trace_id = b"%032x" % (getrandbits(128) or 1)
                started = True
                sampled = self.sampler.sampled(trace_id)
        if sent is not None:
            req.remove_header(b"traceparent")
        response = b""
        if trace_id is not None:
            span_id = b"%016x" % (getrandbits(64) or 1)
            req.add_header(b"traceparent", b"".join(
                (b"00-", trace_id, b"-", span_id, b"-01" if sampled else b"-00")))
        request_id = self.request_id
        rid: bytes | None = None
        if request_id is not None:
            rid = req.header(request_id[0])
            if rid is None or _SANE_ID.fullmatch(rid) is None:
                if rid is not None:
                    req.remove_header(request_id[0])
                rid = trace_id if started else b"%032x" % getrandbits(128)
                assert rid is not None
                req.add_header(request_id[1], rid)
            response = self.request_id_line + rid + b"\r\n"
        if self.export and trace_id is not None:
            response += _TRACE_ID_HEADER + trace_id + b"\r\n"
        if response:
            req.response_headers += response
        context = req.context
        if context is None:
            context = req.context = {}
        if rid is not None:
            context["request_id"] = rid.decode("latin-1")
        if self.export and trace_id is not None:
            context["tyk_trace_id"] = trace_id.decode("latin-1")
            if sampled:
                context[TRACE_KEY] = (trace_id, span_id, parent_id, state)


def _split_host(host: str) -> tuple[str, int | None]:
    """A Host value as (address, port or None); IPv6 literals without brackets."""
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        address, sep, port = host.rpartition(":")
        if not sep:
            address, port = host, ""
    return address, int(port) if port.isdigit() and len(port) <= 5 else None


def otlp_url(endpoint: str) -> str:
    """Where spans are POSTed: ``host:port`` means ``http://host:port``; a
    URL without a path gets ``/v1/traces``."""
    url = endpoint if "://" in endpoint else "http://" + endpoint
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        url = url.rstrip("/") + "/v1/traces"
    return url


class Tracing:
    """The exchange-finished consumer: spans queued, exported over OTLP/HTTP.

    Counters (plain ints, exported as ``fastgate_spans_total{result}``):
    ``exported`` (the collector accepted them), ``dropped`` (the queue was
    full) and ``failed`` (in an export that failed)."""

    def __init__(self, config: GatewayConfig, services: Services,
                 metrics: Metrics | None = None) -> None:
        settings = config.observability.tracing
        self.settings = settings
        self.services = services
        self.enabled = settings.otel_enabled
        self.url = otlp_url(settings.endpoint) if settings.otel_enabled else ""
        self.headers = {"Content-Type": "application/x-protobuf", **dict(settings.headers)}
        self.timeout = settings.connection_timeout
        #: At most this many spans per export request.
        self.batch_size = max(1, settings.max_export_batch_size)
        #: An export starts once this many wait (``simple``: each span at once).
        self.wake_at = 1 if settings.span_processor_type == "simple" else self.batch_size
        self.batch_timeout = settings.batch_timeout
        self.max_queue = max(1, settings.max_queue_size)
        self.hash_keys = config.hash_keys
        self.resource: list[Attribute] = [
            ("service.name", settings.resource_name),
            ("service.version", __version__),
            ("host.name", socket.gethostname()),
            ("process.pid", os.getpid()),
        ]
        self.queue: deque[tuple[Any, ...]] = deque()
        self.exported = 0
        self.dropped = 0
        self.failed = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged_at = -LOG_INTERVAL
        self._unlogged = 0
        if metrics is not None:
            metrics.add_collector(self.collect)

    # -- the request path -------------------------------------------------------------

    def exchange_finished(self, ex: Any) -> None:
        """Queue the span of a sampled exchange (references only; encoded later)."""
        context = ex.context
        if context is None:
            return
        trace = context.get(TRACE_KEY)
        if trace is None:
            return
        queue = self.queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append((trace, time.time_ns(), ex.total_time, ex.route, ex.method, ex.path,
                      ex.status, ex.client_ip, ex.request_headers, ex.session,
                      ex.session_key, ex.tls))
        if len(queue) >= self.wake_at:
            wake = self._wake
            if wake is not None and not wake.is_set():
                wake.set()

    # -- background -------------------------------------------------------------------

    def start(self) -> None:
        """Start the exporter (on the running loop); nothing without OTLP export."""
        if not self.enabled or self._task is not None:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Export what is queued (within ``connection_timeout``) and stop."""
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self.enabled and self.queue:
            await self._export(self._take())

    def collect(self) -> Iterable[Family]:
        """``fastgate_spans_total{result}`` for the metrics."""
        return [Family("fastgate_spans_total", "counter",
                       "Spans of sampled exchanges, by what became of them.",
                       [((("result", "exported"),), self.exported),
                        ((("result", "dropped"),), self.dropped),
                        ((("result", "failed"),), self.failed)])]

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.batch_timeout):
                    await wake.wait()
            wake.clear()
            while self.queue and not self._closing:
                await self._export(self._take())
                if len(self.queue) < self.wake_at:
                    break  # the rest waits for the next batch or the timer

    def _take(self) -> list[tuple[Any, ...]]:
        queue = self.queue
        return [queue.popleft() for _ in range(min(len(queue), self.batch_size))]

    async def _export(self, batch: list[tuple[Any, ...]]) -> None:
        try:
            body = self.encode(batch)
            answer = await self.services.http.request(
                "POST", self.url, headers=self.headers, body=body, timeout=self.timeout,
                max_body=65536)
            if 200 <= answer.status < 300:
                self.exported += len(batch)
                return
            reason = f"answered {answer.status}"
        except OutboundError as exc:
            reason = str(exc)
        except Exception as exc:  # a bug here must not stop the exporter
            log.exception("encoding or exporting spans failed")
            reason = type(exc).__name__
        self.failed += len(batch)
        self._failure(reason, len(batch))

    def _failure(self, reason: str, count: int) -> None:
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL:
            self._unlogged += 1
            return
        also = f" ({self._unlogged} more failures since the last report)" if self._unlogged else ""
        log.warning("OTLP export to %s failed: %s; %d spans lost%s", self.url, reason, count,
                    also)
        self._logged_at = now
        self._unlogged = 0

    # -- encoding ---------------------------------------------------------------------

    def encode(self, batch: list[tuple[Any, ...]]) -> bytes:
        """The ExportTraceServiceRequest for queued exchanges."""
        return encode_export_request(self.resource, "fastgate", __version__,
                                     [encode_span(self.span(item)) for item in batch])

    def span(self, item: tuple[Any, ...]) -> SpanData:
        """One queued exchange as a span (OpenTelemetry HTTP server conventions
        plus Tyk's ``tyk.api.*`` attributes)."""
        (trace, end_ns, total, route, method_b, path_b, status, client_ip, headers, session,
         session_key, tls) = item
        trace_id, span_id, parent_id, state = trace
        method = method_b.decode("latin-1")
        path = path_b.decode("latin-1")
        host = user_agent = None
        for lname, _, value in headers:
            if lname == b"host" and host is None:
                host = value.decode("latin-1")
            elif lname == b"user-agent" and user_agent is None:
                user_agent = value.decode("latin-1")
        attrs: list[Attribute] = [
            ("http.request.method", method),
            ("url.scheme", "https" if tls else "http"),
            ("url.path", path),
        ]
        if host:
            address, port = _split_host(host)
            attrs.append(("server.address", address))
            if port is not None:
                attrs.append(("server.port", port))
        attrs.append(("client.address", client_ip.decode("latin-1")))
        if user_agent:
            attrs.append(("user_agent.original", user_agent))
        code = STATUS_UNSET
        if status:
            attrs.append(("http.response.status_code", status))
            if status >= 500:
                code = STATUS_ERROR
                attrs.append(("error.type", str(status)))
        if route is not None:
            spec = route.spec
            attrs += [("tyk.api.name", spec.name), ("tyk.api.orgid", spec.org_id),
                      ("tyk.api.id", spec.api_id), ("tyk.api.path", spec.listen_path)]
            raw = getattr(spec, "raw", None)
            if isinstance(raw, dict) and not raw.get("tags_disabled"):
                tags = [t for t in (raw.get("tags") or []) + (raw.get("tag_headers") or [])
                        if isinstance(t, str)]
                if tags:
                    attrs.append(("tyk.api.tags", tags))
        if session is not None:
            alias = session.session.get("alias")
            attrs.append(("tyk.api.apikey.alias", alias if isinstance(alias, str) else ""))
            if self.hash_keys and session_key:
                attrs.append(("tyk.api.apikey", session_key))  # a hash, never the key
        start_ns = end_ns - int(total * 1e9)
        return SpanData(
            trace_id=unhexlify(trace_id), span_id=unhexlify(span_id),
            parent_span_id=unhexlify(parent_id) if parent_id is not None else b"",
            trace_state=state.decode("latin-1") if state else "",
            name=f"{method} {path}", kind=SPAN_KIND_SERVER,
            start_time_unix_nano=start_ns, end_time_unix_nano=end_ns, attributes=attrs,
            status_code=code, flags=0x101 | (0x200 if parent_id is not None else 0))
