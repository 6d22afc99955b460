"""The few OTLP protobuf messages the trace exporter sends, written by hand.

The gateway does not depend on the protobuf runtime: an
``ExportTraceServiceRequest`` (``opentelemetry/proto/collector/trace/v1``)
is small enough to write directly.  Wire format (protobuf encoding):

* a field is ``key = (field_number << 3) | wire_type`` as a varint, then
  its value: wire type 0 a varint, 1 eight little-endian bytes (fixed64),
  2 a varint length and that many bytes (strings, bytes, messages,
  repeated messages one field each), 5 four bytes (fixed32);
* default values (0, "", empty) are left out, as proto3 writes them.

Messages and the field numbers used (``opentelemetry-proto`` 1.x)::

    ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    Resource      { repeated KeyValue attributes = 1; }
    ScopeSpans    { InstrumentationScope scope = 1; repeated Span spans = 2; }
    InstrumentationScope { string name = 1; string version = 2; }
    Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
           bytes parent_span_id = 4; string name = 5; SpanKind kind = 6;
           fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
           repeated KeyValue attributes = 9; Status status = 15;
           fixed32 flags = 16; }
    Status   { string message = 2; StatusCode code = 3; }
    KeyValue { string key = 1; AnyValue value = 2; }
    AnyValue { oneof: string string_value = 1; bool bool_value = 2;
               int64 int_value = 3; double double_value = 4;
               ArrayValue array_value = 5; }
    ArrayValue { repeated AnyValue values = 1; }

The tests decode what this writes with the real ``opentelemetry-proto``
package.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "SPAN_KIND_SERVER",
    "STATUS_ERROR",
    "STATUS_UNSET",
    "Attribute",
    "SpanData",
    "encode_attributes",
    "encode_export_request",
    "encode_span",
]

#: ``Span.SpanKind.SPAN_KIND_SERVER``.
SPAN_KIND_SERVER = 2
#: ``Status.StatusCode``.
STATUS_UNSET = 0
STATUS_ERROR = 2

#: An attribute: (key, value) with value a str, bool, int, float or a list of str.
Attribute = tuple[str, object]

_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack
_pack_d = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    """``value`` (non-negative, or an int64 as two's complement) as a varint."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str_field(number: int, value: str) -> bytes:
    return _len_field(number, value.encode("utf-8", "replace")) if value else b""


def _any_value(value: object) -> bytes:
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, (list, tuple)):
        return _len_field(5, b"".join(_len_field(1, _any_value(v)) for v in value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    # string_value, written even when empty (an AnyValue with no value is "unset").
    return _len_field(1, str(value).encode("utf-8", "replace"))


def encode_attributes(number: int, attributes: Iterable[Attribute]) -> bytes:
    """``attributes`` as repeated KeyValue fields numbered ``number``."""
    return b"".join(_len_field(number, _str_field(1, key) + _len_field(2, _any_value(value)))
                    for key, value in attributes)


@dataclass(frozen=True, slots=True)
class SpanData:
    """One finished span, as the exporter encodes it (ids as raw bytes:
    16 for the trace, 8 for the spans; ``parent_span_id`` b"" for a root)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    trace_state: str
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: Sequence[Attribute]
    status_code: int = STATUS_UNSET
    status_message: str = ""
    #: ``Span.flags``: the W3C trace flags in bits 0-7, bit 8 "is_remote
    #: known", bit 9 "the parent is remote".
    flags: int = 0


def encode_span(span: SpanData) -> bytes:
    """One ``Span`` message (without its field key)."""
    parts = [
        _len_field(1, span.trace_id),
        _len_field(2, span.span_id),
        _str_field(3, span.trace_state),
        _len_field(4, span.parent_span_id) if span.parent_span_id else b"",
        _str_field(5, span.name),
        b"\x30" + _varint(span.kind) if span.kind else b"",
        b"\x39" + _pack_q(span.start_time_unix_nano),
        b"\x41" + _pack_q(span.end_time_unix_nano),
        encode_attributes(9, span.attributes),
    ]
    if span.status_code or span.status_message:
        status = _str_field(2, span.status_message) + (
            b"\x18" + _varint(span.status_code) if span.status_code else b"")
        parts.append(_len_field(15, status))
    if span.flags:
        parts.append(b"\x85\x01" + _pack_i(span.flags))  # field 16, wire type 5
    return b"".join(parts)


def encode_export_request(resource: Iterable[Attribute], scope_name: str, scope_version: str,
                          spans: Iterable[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` with one resource and one scope
    holding ``spans`` (each from :func:`encode_span`)."""
    scope = _str_field(1, scope_name) + _str_field(2, scope_version)
    scope_spans = _len_field(1, scope) + b"".join(_len_field(2, s) for s in spans)
    resource_spans = _len_field(1, encode_attributes(1, resource)) + _len_field(2, scope_spans)
    return _len_field(1, resource_spans)
