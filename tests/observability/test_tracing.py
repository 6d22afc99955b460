"""Traces: W3C trace context and the request id on real gateways over real
sockets (the echo upstream shows what it received), and OTLP/HTTP export to a
receiver built here that decodes with the real ``opentelemetry-proto``
messages.  The Trace Context rules are also checked as tables on the parser."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from fastgate.config import ConfigError, parse_gateway_config
from fastgate.observability.otlp import SpanData, encode_export_request, encode_span
from fastgate.observability.tracing import (
    otlp_url,
    parse_traceparent,
    ratio_sampled,
    trim_tracestate,
)

ADMIN = "X-Tyk-Authorization"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEX32 = re.compile(r"[0-9a-f]{32}\Z")


# -- the parser's tables -------------------------------------------------------------

@pytest.mark.parametrize("value", [
    f"00-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-00",
    f"00-{TRACE}-{PARENT}-09",
    f"01-{TRACE}-{PARENT}-01",              # a later version: its first 55 characters
    f"cc-{TRACE}-{PARENT}-01-what-comes-next",
])
def test_valid_traceparent(value: str) -> None:
    parsed = parse_traceparent(value.encode())
    assert parsed is not None
    assert parsed[0] == TRACE.encode() and parsed[1] == PARENT.encode()
    assert parsed[2] == int(value[53:55], 16)


INVALID = [
    "",
    "garbage",
    f"00-{TRACE.upper()}-{PARENT}-01",        # upper-case hex
    f"00-{'0' * 32}-{PARENT}-01",             # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",              # all-zero parent id
    f"ff-{TRACE}-{PARENT}-01",                # version ff
    f"00-{TRACE}-{PARENT}-01-extra",          # version 00 is exactly 55 characters
    f"00-{TRACE}-{PARENT}-1",                 # short flags
    f"00-{TRACE[:-1]}-{PARENT}-01",           # short trace id
    f"00_{TRACE}_{PARENT}_01",                # separators
    f"01-{TRACE}-{PARENT}-01x",               # a later version must go on with "-"
    f"00-{TRACE}-{PARENT}-0g",
]


@pytest.mark.parametrize("value", INVALID)
def test_invalid_traceparent(value: str) -> None:
    assert parse_traceparent(value.encode()) is None


def test_tracestate_limits() -> None:
    assert trim_tracestate([b"congo=t61rcWkgMzE", b"rojo=00f067aa0ba902b7"]) == \
        b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert trim_tracestate([b" , "]) is None
    members = [b"k%d=v" % i for i in range(32)]
    assert trim_tracestate([b",".join(members)]) == b",".join(members)
    assert trim_tracestate([b",".join([*members, b"one=more"])]) is None  # 33 members
    big = b"big=" + b"x" * 200
    fill = [b"m%02d=" % i + b"y" * 40 for i in range(12)]  # 12 * 44 + 11 = 539
    trimmed = trim_tracestate([b",".join([fill[0], big, *fill[1:]])])
    assert trimmed is not None and len(trimmed) <= 512
    assert big not in trimmed                       # entries over 128 chars go first
    assert trimmed == b",".join(fill[:11])          # then from the end


def test_ratio_rule_is_opentelemetrys() -> None:
    # The last 8 bytes, big-endian, shifted right by one, below rate * 2**63.
    low = "0" * 16 + "0000000000000001"
    high = "0" * 16 + "ffffffffffffffff"
    half = int(0.5 * (1 << 63))
    assert ratio_sampled(low.encode(), half)
    assert not ratio_sampled(high.encode(), half)
    assert ratio_sampled(("f" * 16 + "7fffffffffffffff").encode(), half)
    assert not ratio_sampled(("0" * 16 + "8000000000000000").encode(), half)


def test_otlp_url() -> None:
    assert otlp_url("collector:4318") == "http://collector:4318/v1/traces"
    assert otlp_url("https://c.example/") == "https://c.example/v1/traces"
    assert otlp_url("http://c.example:4318/custom/path") == "http://c.example:4318/custom/path"


def test_encoding_decodes_with_opentelemetry_proto() -> None:
    span = SpanData(bytes(range(16)), bytes(range(8)), b"\x07" * 8, "a=b", "GET /x", 2,
                    1_700_000_000_000_000_001, 1_700_000_000_500_000_000,
                    [("s", "v"), ("i", 503), ("b", True), ("d", 0.25), ("l", ["p", "q"])],
                    2, "", 0x301)
    raw = encode_export_request([("service.name", "svc")], "fastgate", "9", [encode_span(span)])
    (rs,) = ExportTraceServiceRequest.FromString(raw).resource_spans
    assert rs.resource.attributes[0].key == "service.name"
    (got,) = rs.scope_spans[0].spans
    assert got.trace_id == bytes(range(16)) and got.parent_span_id == b"\x07" * 8
    assert (got.start_time_unix_nano, got.end_time_unix_nano) == (
        1_700_000_000_000_000_001, 1_700_000_000_500_000_000)
    assert got.trace_state == "a=b" and got.kind == 2 and got.status.code == 2
    assert got.flags == 0x301
    values = {a.key: a.value for a in got.attributes}
    assert values["i"].int_value == 503 and values["b"].bool_value
    assert values["d"].double_value == 0.25 and values["s"].string_value == "v"
    assert [v.string_value for v in values["l"].array_value.values] == ["p", "q"]


def test_config_refuses_grpc_and_b3(tmp_path: Any) -> None:
    base = {"listen_port": 8080, "secret": "s", "storage": {"type": "memory"}}
    with pytest.raises(ConfigError, match="exporter"):
        parse_gateway_config({**base, "opentelemetry": {"enabled": True, "exporter": "grpc",
                                                        "endpoint": "c:4317"}},
                             str(tmp_path / "g.json"))
    ratio = parse_gateway_config({**base, "opentelemetry": {
        "enabled": True, "exporter": "http", "endpoint": "c:4318",
        "sampling": {"type": "TraceIDRatioBased"}}}, str(tmp_path / "g.json"))
    assert ratio.observability.tracing.sampling_rate == 0.5  # Tyk's default rate


# -- an OTLP/HTTP receiver -----------------------------------------------------------

class Receiver:
    """An OTLP/HTTP collector in a thread: decodes every POST /v1/traces."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], ExportTraceServiceRequest]] = []
        self.lock = threading.Lock()
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), message))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[Any, Any]]:
        """(resource, span) of everything received so far."""
        with self.lock:
            return [(rs.resource, span) for _, _, m in self.requests
                    for rs in m.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def wait_spans(self, n: int, timeout: float = 10.0) -> list[tuple[Any, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.spans()) >= n:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # and no more than n
        got = self.spans()
        assert len(got) == n, [s.name for _, s in got]
        return got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.close()


def apis(make_api: Any, echo: Any) -> list[dict[str, Any]]:
    return [
        make_api("open", "/open/", echo.base_url, name="Open API", org_id="org-1",
                 tags=["edge", "public"]),
        make_api("keyed", "/keyed/", echo.base_url, name="Keyed API", org_id="org-1",
                 use_keyless=False, use_standard_auth=True, auth={"auth_header_name": "X-Key"}),
    ]


def upstream_headers(resp: requests.Response) -> dict[str, list[str]]:
    """What the echo upstream received: lower-cased name -> values."""
    assert resp.status_code == 200, resp.text
    out: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def otel(receiver: Receiver, **fields: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "enabled": True, "exporter": "http", "endpoint": f"127.0.0.1:{receiver.port}",
        "resource_name": "edge-gw", "headers": {"X-Collector-Token": "t0k"},
        "span_batch_config": {"batch_timeout": 0.2}}
    settings.update(fields)
    return settings


def spans_total(gw: Any) -> dict[str, float]:
    resp = requests.get(gw.url("/metrics"), headers={ADMIN: gw.secret}, timeout=10)
    assert resp.status_code == 200, resp.text
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == "fastgate_spans_total":
                out[sample.labels["result"]] = sample.value
    return out


# -- propagation -------------------------------------------------------------------

def test_trace_continued_tracestate_kept_request_id_made(gateway_factory: Any, make_api: Any,
                                                          echo: Any) -> None:
    gw = gateway_factory(apis(make_api, echo), request_tracing={"enabled": True})
    state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    resp = requests.get(gw.url("/open/x"), timeout=5, headers={
        "traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": state})
    got = upstream_headers(resp)
    (sent,) = got["traceparent"]
    version, trace_id, span_id, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert span_id != PARENT and re.fullmatch(r"[0-9a-f]{16}", span_id)
    assert got["tracestate"] == [state]
    (request_id,) = got["x-request-id"]
    assert HEX32.match(request_id) and request_id != TRACE  # a request's own id
    assert resp.headers["X-Request-Id"] == request_id
    assert "X-Tyk-Trace-Id" not in resp.headers  # only with OpenTelemetry on
    # A client's unsampled trace stays unsampled: nothing exports here.
    resp = requests.get(gw.url("/open/x"), timeout=5,
                        headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert upstream_headers(resp)["traceparent"][0].endswith("-00")


@pytest.mark.parametrize("value", INVALID[1:4] + INVALID[5:7])
def test_invalid_traceparent_starts_a_trace(gateway_factory: Any, make_api: Any, echo: Any,
                                            value: str) -> None:
    gw = gateway_factory(apis(make_api, echo), request_tracing={"enabled": True})
    resp = requests.get(gw.url("/open/x"), timeout=5,
                        headers={"traceparent": value, "tracestate": "rojo=1"})
    got = upstream_headers(resp)
    (sent,) = got["traceparent"]
    assert parse_traceparent(sent.encode()) is not None
    assert sent.split("-")[1] not in (TRACE, TRACE.upper())
    assert "tracestate" not in got  # it belonged to the trace not continued
    # The gateway started this trace: the request id is its trace id.
    assert got["x-request-id"] == [sent.split("-")[1]] == [resp.headers["X-Request-Id"]]


def test_absent_and_start_traces_off(gateway_factory: Any, make_api: Any, echo: Any) -> None:
    gw = gateway_factory(apis(make_api, echo), request_tracing={"enabled": True})
    ids = set()
    for _ in range(3):
        got = upstream_headers(requests.get(gw.url("/open/x"), timeout=5))
        (sent,) = got["traceparent"]
        assert parse_traceparent(sent.encode()) is not None and sent.endswith("-01")
        ids.add(sent.split("-")[1])
    assert len(ids) == 3

    off = gateway_factory(apis(make_api, echo), request_tracing={
        "enabled": True, "start_traces": False, "request_id_header": "X-Correlation-Id"})
    resp = requests.get(off.url("/open/x"), timeout=5,
                        headers={"traceparent": INVALID[2], "X-Request-Id": "not-ours"})
    got = upstream_headers(resp)
    assert "traceparent" not in got  # invalid, and no trace is started
    assert got["x-request-id"] == ["not-ours"]  # another header: untouched
    (correlation,) = got["x-correlation-id"]
    assert HEX32.match(correlation) and resp.headers["X-Correlation-Id"] == correlation
    # A client's valid trace is still continued.
    got = upstream_headers(requests.get(off.url("/open/x"), timeout=5, headers={
        "traceparent": f"00-{TRACE}-{PARENT}-01"}))
    assert got["traceparent"][0].startswith(f"00-{TRACE}-")


def test_client_request_id_kept_or_replaced(gateway_factory: Any, make_api: Any,
                                            echo: Any) -> None:
    gw = gateway_factory(apis(make_api, echo), request_tracing={"enabled": True})
    resp = requests.get(gw.url("/open/x"), timeout=5, headers={"X-Request-Id": "req 42/abc"})
    assert upstream_headers(resp)["x-request-id"] == ["req 42/abc"]
    assert resp.headers["X-Request-Id"] == "req 42/abc"
    for bad in ("x" * 201, "tab\there", "caf\u00e9".encode().decode("latin-1")):
        resp = requests.get(gw.url("/open/x"), timeout=5, headers={"X-Request-Id": bad})
        (made,) = upstream_headers(resp)["x-request-id"]
        assert HEX32.match(made) and resp.headers["X-Request-Id"] == made
    # None at all with request_id_header "".
    none = gateway_factory(apis(make_api, echo), request_tracing={"enabled": True,
                                                                  "request_id_header": ""})
    resp = requests.get(none.url("/open/x"), timeout=5)
    assert "x-request-id" not in upstream_headers(resp)
    assert "X-Request-Id" not in resp.headers


# -- export --------------------------------------------------------------------------

def test_spans_exported_after_known_traffic(gateway_factory: Any, make_api: Any, echo: Any,
                                            receiver: Receiver) -> None:
    gw = gateway_factory(apis(make_api, echo), hash_keys=True, opentelemetry=otel(receiver))
    key = requests.post(gw.url("/tyk/keys/create"), headers={ADMIN: gw.secret}, timeout=5,
                        json={"alias": "the-alias", "access_rights": {
                            "keyed": {"api_id": "keyed", "versions": []}}}).json()
    continued = requests.get(gw.url("/open/a/b?token=SECRET-IN-QUERY"), timeout=5, headers={
        "traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "rojo=1",
        "User-Agent": "probe/1"})
    assert continued.headers["X-Tyk-Trace-Id"] == TRACE
    gateway_span = upstream_headers(continued)["traceparent"][0].split("-")[2]
    failing = requests.get(gw.url("/open/status/503"), timeout=5)
    assert failing.status_code == 503
    new_trace = failing.headers["X-Tyk-Trace-Id"]
    assert requests.get(gw.url("/keyed/x"), timeout=5).status_code == 401
    assert requests.get(gw.url("/keyed/y"), headers={"X-Key": key["key"]},
                        timeout=5).status_code == 200
    got = receiver.wait_spans(4)
    path, headers, _ = receiver.requests[0]
    assert path == "/v1/traces"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Collector-Token"] == "t0k"
    spans = {span.name: (resource, span) for resource, span in got}
    assert set(spans) == {"GET /open/a/b", "GET /open/status/503", "GET /keyed/x",
                          "GET /keyed/y"}
    resource, span = spans["GET /open/a/b"]
    res = {a.key: a.value for a in resource.attributes}
    assert res["service.name"].string_value == "edge-gw"
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == PARENT
    assert span.span_id.hex() == gateway_span  # the span the upstream was told about
    assert span.trace_state == "rojo=1" and span.kind == 2 and span.status.code == 0
    assert span.flags == 0x301
    assert 0 < span.end_time_unix_nano - span.start_time_unix_nano < 5e9
    assert abs(span.end_time_unix_nano / 1e9 - time.time()) < 30
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["http.request.method"].string_value == "GET"
    assert attrs["url.path"].string_value == "/open/a/b"
    assert attrs["url.scheme"].string_value == "http"
    assert attrs["http.response.status_code"].int_value == 200
    assert attrs["server.address"].string_value == "127.0.0.1"
    assert attrs["server.port"].int_value == gw.port
    assert attrs["client.address"].string_value == "127.0.0.1"
    assert attrs["user_agent.original"].string_value == "probe/1"
    assert attrs["tyk.api.id"].string_value == "open"
    assert attrs["tyk.api.name"].string_value == "Open API"
    assert attrs["tyk.api.orgid"].string_value == "org-1"
    assert attrs["tyk.api.path"].string_value == "/open/"
    assert [v.string_value for v in attrs["tyk.api.tags"].array_value.values] == \
        ["edge", "public"]
    encoded = b"".join(s.SerializeToString() for _, s in got)
    assert b"SECRET-IN-QUERY" not in encoded and key["key"].encode() not in encoded

    _, span = spans["GET /open/status/503"]
    assert span.trace_id.hex() == new_trace and span.parent_span_id == b""
    assert span.status.code == 2 and span.flags == 0x101
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["http.response.status_code"].int_value == 503
    assert attrs["error.type"].string_value == "503"

    _, span = spans["GET /keyed/x"]  # refused by the authentication: traced too
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["http.response.status_code"].int_value == 401 and span.status.code == 0
    _, span = spans["GET /keyed/y"]
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["tyk.api.apikey.alias"].string_value == "the-alias"
    assert attrs["tyk.api.apikey"].string_value == key["key_hash"]
    assert spans_total(gw) == {"exported": 4, "dropped": 0, "failed": 0}


def test_sampling_always_off(gateway_factory: Any, make_api: Any, echo: Any,
                             receiver: Receiver) -> None:
    gw = gateway_factory(apis(make_api, echo), opentelemetry=otel(
        receiver, sampling={"type": "AlwaysOff"}))
    for headers in ({}, {"traceparent": f"00-{TRACE}-{PARENT}-01"}):
        sent = upstream_headers(requests.get(gw.url("/open/x"), headers=headers,
                                             timeout=5))["traceparent"][0]
        assert sent.endswith("-00")
    time.sleep(0.8)
    assert receiver.spans() == []
    assert spans_total(gw) == {"exported": 0, "dropped": 0, "failed": 0}

    # parent_based: the client's sampled trace is recorded, a new one is not.
    based = gateway_factory(apis(make_api, echo), opentelemetry=otel(
        receiver, sampling={"type": "AlwaysOff", "parent_based": True}))
    sent = upstream_headers(requests.get(based.url("/open/x"), timeout=5, headers={
        "traceparent": f"00-{TRACE}-{PARENT}-01"}))["traceparent"][0]
    assert sent.endswith("-01")
    assert upstream_headers(requests.get(based.url("/open/y"),
                                         timeout=5))["traceparent"][0].endswith("-00")
    ((_, span),) = receiver.wait_spans(1)
    assert span.trace_id.hex() == TRACE and span.name == "GET /open/x"


def test_collector_down_or_refusing(gateway_factory: Any, make_api: Any, echo: Any,
                                    receiver: Receiver, free_port: Any) -> None:
    dead = free_port()
    gw = gateway_factory(apis(make_api, echo), opentelemetry={
        "enabled": True, "exporter": "http", "endpoint": f"127.0.0.1:{dead}",
        "connection_timeout": 1, "span_batch_config": {"batch_timeout": 0.2}})
    started = time.monotonic()
    for _ in range(5):
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 10
    while spans_total(gw).get("failed") != 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spans_total(gw) == {"exported": 0, "dropped": 0, "failed": 5}
    assert f"OTLP export to http://127.0.0.1:{dead}/v1/traces failed" in gw.logs()

    receiver.status = 400  # a collector that refuses the batch
    refusing = gateway_factory(apis(make_api, echo), opentelemetry=otel(receiver))
    assert requests.get(refusing.url("/open/x"), timeout=5).status_code == 200
    receiver.wait_spans(1)
    deadline = time.monotonic() + 5
    while spans_total(refusing).get("failed") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spans_total(refusing)["failed"] == 1


def test_queue_bound_and_simple_processor(gateway_factory: Any, make_api: Any, echo: Any,
                                          receiver: Receiver) -> None:
    # A long batch timeout and a big batch: the queue of 2 fills, the rest drop.
    gw = gateway_factory(apis(make_api, echo), opentelemetry=otel(
        receiver, span_batch_config={"max_queue_size": 2, "batch_timeout": 60}))
    for _ in range(5):
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    assert spans_total(gw) == {"exported": 0, "dropped": 3, "failed": 0}
    gw.stop()  # the shutdown flushes the queue
    assert len(receiver.wait_spans(2)) == 2

    # simple: each span goes out at once (no batch timeout to wait for).
    simple = gateway_factory(apis(make_api, echo), opentelemetry=otel(
        receiver, span_processor_type="simple", span_batch_config={"batch_timeout": 60}))
    assert requests.get(simple.url("/open/x"), timeout=5).status_code == 200
    receiver.wait_spans(3, timeout=3)
