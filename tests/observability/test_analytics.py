"""Analytics records as Tyk Pump reads them: real gateways over real sockets,
records read back from a real redis-server (or the JSON lines file) and
decoded as Tyk Pump's msgpack.v2 decoder would."""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
import requests

from fastgate.config import ConfigError, load_gateway_config
from fastgate.observability.analytics import (
    ANALYTICS_KEY,
    KEYLESS_KEY_HASH,
    encode_record,
    go_rfc3339,
)

pytestmark = pytest.mark.timeout(120)

SECRET_HEADER = "X-Tyk-Authorization"
#: AnalyticsRecord's fields, in the Go struct's order (tyk-pump v1.17).
GO_FIELDS = [
    "Method", "Host", "Path", "RawPath", "ContentLength", "UserAgent", "Day", "Month",
    "Year", "Hour", "ResponseCode", "APIKey", "TimeStamp", "APIVersion", "APIName", "APIID",
    "OrgID", "OauthID", "RequestTime", "RawRequest", "RawResponse", "IPAddress", "Geo",
    "Network", "Latency", "Tags", "Alias", "TrackPath", "ExpireAt", "ApiSchema",
    "OriginalPath", "ListenPath", "GraphQLStats", "MCPStats", "CollectionName",
]


def tyk_pump_decode(data: bytes) -> dict[str, Any]:
    """Decode one record as Tyk Pump does: a map of Go field names whose
    times are msgpack.v2's ``[seconds, nanoseconds]`` arrays."""
    record = msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=True)
    assert isinstance(record, dict)
    for name in ("TimeStamp", "ExpireAt"):
        value = record[name]
        assert isinstance(value, list) and len(value) == 2, (name, value)
        record[name] = value[0] + value[1] / 1e9
    return record


def wait_llen(client: Any, key: str, n: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.llen(key)
        if got >= n:
            time.sleep(0.2)  # and no more
            return int(client.llen(key))
        time.sleep(0.02)
    return int(client.llen(key))


def metric(gw: Any, result: str) -> float:
    text = requests.get(gw.url("/metrics"), headers={SECRET_HEADER: gw.secret}, timeout=5).text
    pattern = r'^fastgate_analytics_records_total\{result="' + result + r'"\} (\S+)$'
    found = re.search(pattern, text, re.M)
    assert found, text
    return float(found.group(1))


def create_key(gw: Any, api_ids: list[str], **fields: Any) -> dict[str, Any]:
    body = {"access_rights": {a: {"api_id": a, "versions": []} for a in api_ids}, **fields}
    resp = requests.post(gw.url("/tyk/keys/create"), headers={SECRET_HEADER: gw.secret},
                         json=body, timeout=5)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def redis_storage(server: Any) -> dict[str, Any]:
    return {"type": "redis", "host": server.host, "port": server.port}


# -- the encoding -----------------------------------------------------------------


def test_time_is_msgpack_v2s_seconds_nanoseconds_array():
    """Tyk's encoder (gopkg.in/vmihailenco/msgpack.v2) writes time.Time as a
    fixarray of two ints, not the timestamp extension -1 of later versions."""
    record = {name: "" for name in GO_FIELDS}
    record["TimeStamp"] = [1700000000, 123456789]
    record["ExpireAt"] = [1700000060, 5]
    data = encode_record(record)
    # map16 of 35 entries, then "Method": "" (fixstr 6, fixstr 0)
    assert data[:3] == b"\xde\x00\x23"
    assert data[3:11] == b"\xa6Method\xa0"
    expected_time = (b"\xa9TimeStamp" + b"\x92"
                     + b"\xce" + struct.pack(">I", 1700000000)
                     + b"\xce" + struct.pack(">I", 123456789))
    assert expected_time in data
    assert b"\xa8ExpireAt\x92\xce" + struct.pack(">I", 1700000060) + b"\x05" in data
    assert b"\xd7\xff" not in data and b"\xc7\x0c\xff" not in data  # no ext -1
    # Keys in the Go struct's order.
    assert list(msgpack.unpackb(data, raw=False)) == GO_FIELDS


def test_ints_strings_and_nil_as_msgpack_v2_writes_them():
    record = {"A": 127, "B": 128, "C": -1, "D": -33, "E": 70000, "F": "x" * 40,
              "G": None, "H": True, "I": 1.5}
    assert encode_record(record) == (
        b"\x89" b"\xa1A\x7f" b"\xa1B\xcc\x80" b"\xa1C\xff" b"\xa1D\xd0\xdf"
        b"\xa1E\xce\x00\x01\x11\x70" b"\xa1F\xd9\x28" + b"x" * 40
        + b"\xa1G\xc0" b"\xa1H\xc3" b"\xa1I\xcb" + struct.pack(">d", 1.5))


def test_go_rfc3339():
    assert go_rfc3339(1700000000, 0) == "2023-11-14T22:13:20Z"
    assert go_rfc3339(1700000000, 120000000) == "2023-11-14T22:13:20.12Z"


# -- records in Redis -------------------------------------------------------------


@pytest.fixture
def redis_gateway(gateway_factory, make_api, echo, redis_flush):
    def start(**analytics: Any) -> Any:
        apis = [make_api("open", "/open/", echo.base_url, tags=["public"],
                         tag_headers=["X-Team"]),
                make_api("k", "/k/", echo.base_url, use_keyless=False,
                         use_standard_auth=True, org_id="org-k"),
                make_api("other", "/other/", echo.base_url, use_keyless=False,
                         use_standard_auth=True)]
        return gateway_factory(apis, storage=redis_storage(redis_flush), enable_analytics=True,
                               analytics_config={"purge_interval": 0.05, **analytics})
    return start


def test_known_traffic_decoded_as_tyk_pump_would(redis_gateway, redis_flush):
    gw = redis_gateway(storage_expiration_time=120)
    client = redis_flush.client()
    key = create_key(gw, ["k"], tags=["gold"], alias="alice")
    other = create_key(gw, ["other"])
    before = time.time()
    for i in range(3):
        resp = requests.get(gw.url(f"/open/item%20{i}?q={i}"),
                            headers={"User-Agent": "ua-test/1", "X-Team": "blue"}, timeout=5)
        assert resp.status_code == 200
    assert requests.get(gw.url("/k/data"), headers={"Authorization": key["key"]},
                        timeout=5).status_code == 200
    assert requests.get(gw.url("/k/data"), headers={"Authorization": other["key"]},
                        timeout=5).status_code == 403
    assert requests.get(gw.url("/k/data"), timeout=5).status_code == 401
    assert requests.get(gw.url("/nowhere"), timeout=5).status_code == 404
    assert requests.get(gw.url("/hello"), timeout=5).status_code == 200

    # Six requests an API served; not the 404, /hello or the REST calls.
    assert wait_llen(client, ANALYTICS_KEY, 6) == 6
    raw = client.lrange(ANALYTICS_KEY, 0, -1)
    records = [tyk_pump_decode(r) for r in raw]
    assert all(list(r) == GO_FIELDS for r in records)
    after = time.time()

    open_records = records[:3]
    for i, rec in enumerate(open_records):
        assert rec["Method"] == "GET"
        assert rec["Path"] == rec["RawPath"] == f"/item {i}"
        assert rec["ResponseCode"] == 200
        assert rec["APIID"] == "open" and rec["APIName"] == "API open"
        assert rec["OrgID"] == "test-org"
        assert rec["APIVersion"] == "Non Versioned"
        assert rec["UserAgent"] == "ua-test/1"
        assert rec["ContentLength"] == 0
        assert rec["APIKey"] == KEYLESS_KEY_HASH
        assert rec["Tags"] == ["x-team-blue", "public", "key-00000000", "org-test-org",
                               "api-open"]
        assert rec["IPAddress"] == "127.0.0.1"
        assert rec["Host"] == echo_host(gw)
        assert rec["ListenPath"] == "/open/"
        assert before - 1 <= rec["TimeStamp"] <= after
        assert rec["ExpireAt"] - rec["TimeStamp"] == pytest.approx(100 * 365 * 86400)
        local = datetime.fromtimestamp(rec["TimeStamp"])
        assert (rec["Year"], rec["Month"], rec["Day"], rec["Hour"]) == (
            local.year, local.month, local.day, local.hour)
        lat = rec["Latency"]
        assert set(lat) == {"Total", "Upstream", "Gateway"}
        assert 0 <= lat["Upstream"] <= lat["Total"] < 5000
        assert lat["Gateway"] == lat["Total"] - lat["Upstream"]
        assert rec["RequestTime"] == lat["Total"]
        assert rec["RawRequest"] == rec["RawResponse"] == ""
        assert rec["Geo"] == {"Country": {"ISOCode": ""}, "City": {"GeoNameID": 0, "Names": None},
                              "Location": {"Latitude": 0.0, "Longitude": 0.0, "TimeZone": ""}}
        assert rec["Network"] == {"OpenConnections": 0, "ClosedConnection": 0, "BytesIn": 0,
                                  "BytesOut": 0}
        assert rec["TrackPath"] is False and rec["Alias"] == "" and rec["OauthID"] == ""
        assert rec["MCPStats"]["IsMCP"] is False and rec["GraphQLStats"]["IsGraphQL"] is False

    allowed, refused, missing = records[3:]
    assert allowed["ResponseCode"] == 200 and allowed["APIID"] == "k"
    assert allowed["APIKey"] == key["key_hash"] != key["key"]
    assert allowed["Alias"] == "alice"
    assert allowed["Tags"] == ["gold", "key-" + key["key_hash"], "org-org-k", "api-k"]
    assert allowed["Path"] == "/data"
    assert refused["ResponseCode"] == 403
    assert refused["Latency"]["Upstream"] == 0
    assert missing["ResponseCode"] == 401 and missing["APIKey"] == KEYLESS_KEY_HASH
    # No raw key anywhere in what was stored.
    blob = b"".join(raw)
    assert key["key"].encode() not in blob and other["key"].encode() not in blob

    # The list expires as Tyk's purger sets it.
    assert 100 < client.ttl(ANALYTICS_KEY) <= 120
    assert metric(gw, "recorded") == 6
    assert metric(gw, "dropped") == 0


def echo_host(gw: Any) -> str:
    target = json.loads((gw.app_dir / "open.json").read_text())["proxy"]["target_url"]
    return str(target.split("://", 1)[1].rstrip("/"))


def test_multiple_analytics_keys(redis_gateway, redis_flush):
    gw = redis_gateway(enable_multiple_analytics_keys=True)
    for _ in range(20):
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    client = redis_flush.client()
    deadline = time.monotonic() + 5
    keys: list[bytes] = []
    while time.monotonic() < deadline:
        keys = client.keys(ANALYTICS_KEY + "_*")
        if sum(client.llen(k) for k in keys) >= 20:
            break
        time.sleep(0.05)
    assert sum(client.llen(k) for k in keys) == 20
    assert all(re.fullmatch(rb"analytics-tyk-system-analytics_[0-9]", k) for k in keys)
    assert not client.exists(ANALYTICS_KEY)
    assert all(0 < client.ttl(k) <= 60 for k in keys)  # Tyk's default expiration


def test_detailed_recording(redis_gateway, redis_flush):
    gw = redis_gateway(enable_detailed_recording=True)
    key = create_key(gw, ["k"])
    assert requests.get(gw.url("/k/d?x=1"), headers={"Authorization": key["key"],
                                                     "Cookie": "session=secret-cookie"},
                        timeout=5).status_code == 200
    client = redis_flush.client()
    assert wait_llen(client, ANALYTICS_KEY, 1) == 1
    rec = tyk_pump_decode(client.lindex(ANALYTICS_KEY, 0))
    request_head = base64.b64decode(rec["RawRequest"])
    assert request_head.startswith(b"GET /d?x=1 HTTP/1.1\r\n")
    assert request_head.endswith(b"\r\n\r\n")
    assert b"Authorization: [redacted]\r\n" in request_head
    assert b"Cookie: [redacted]\r\n" in request_head
    assert key["key"].encode() not in request_head and b"secret-cookie" not in request_head
    assert base64.b64decode(rec["RawResponse"]) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_ignored_ips(redis_gateway, redis_flush):
    gw = redis_gateway(ignored_ips=["127.0.0.1"])
    for _ in range(3):
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    time.sleep(0.5)
    assert redis_flush.client().llen(ANALYTICS_KEY) == 0
    assert metric(gw, "ignored") == 3


def test_ignored_real_ip_from_headers(redis_gateway, redis_flush):
    gw = redis_gateway(ignored_ips=["10.1.2.3"])
    requests.get(gw.url("/open/x"), headers={"X-Real-IP": "10.1.2.3"}, timeout=5)
    requests.get(gw.url("/open/x"), headers={"X-Forwarded-For": "10.9.9.9, 10.1.2.3"},
                 timeout=5)
    client = redis_flush.client()
    assert wait_llen(client, ANALYTICS_KEY, 1) == 1
    assert tyk_pump_decode(client.lindex(ANALYTICS_KEY, 0))["IPAddress"] == "10.9.9.9"
    assert metric(gw, "ignored") == 1


def test_do_not_track_and_expire_analytics_after(gateway_factory, make_api, echo, redis_flush):
    apis = [make_api("quiet", "/quiet/", echo.base_url, do_not_track=True),
            make_api("short", "/short/", echo.base_url, expire_analytics_after=3600)]
    gw = gateway_factory(apis, storage=redis_storage(redis_flush), enable_analytics=True,
                         analytics_config={"purge_interval": 0.05})
    assert requests.get(gw.url("/quiet/x"), timeout=5).status_code == 200
    assert requests.get(gw.url("/short/x"), timeout=5).status_code == 200
    client = redis_flush.client()
    assert wait_llen(client, ANALYTICS_KEY, 1) == 1
    rec = tyk_pump_decode(client.lindex(ANALYTICS_KEY, 0))
    assert rec["APIID"] == "short"
    assert rec["ExpireAt"] - rec["TimeStamp"] == pytest.approx(3600)


def test_redis_down_never_fails_a_request_and_full_buffer_drops(redis_gateway, redis_flush):
    gw = redis_gateway(records_buffer_size=5)
    assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    client = redis_flush.client()
    assert wait_llen(client, ANALYTICS_KEY, 1) == 1
    redis_flush.pause()
    try:
        with requests.Session() as session:
            for _ in range(40):
                assert session.get(gw.url("/open/x"), timeout=5).status_code == 200
        time.sleep(1.5)  # past the store's timeout: the push in flight fails
    finally:
        redis_flush.resume()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and metric(gw, "failed") == 0:
        time.sleep(0.1)
    dropped, failed = metric(gw, "dropped"), metric(gw, "failed")
    assert dropped >= 40 - 2 * 5 and failed >= 1
    recorded = metric(gw, "recorded")
    assert recorded + dropped + failed == 41
    # A push that timed out may still have reached Redis after SIGCONT.
    assert recorded <= client.llen(ANALYTICS_KEY) <= recorded + failed
    recorded = client.llen(ANALYTICS_KEY)
    # Recovered: the next records go out.
    assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    assert wait_llen(client, ANALYTICS_KEY, int(recorded) + 1) == recorded + 1
    assert "analytics:" in gw.logs()


# -- the memory store: JSON lines -------------------------------------------------


def test_memory_store_writes_json_lines(gateway_factory, make_api, echo):
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)], enable_analytics=True,
                         analytics_config={"purge_interval": 0.05,
                                           "file_path": "out/records.jsonl"})
    for _ in range(2):
        assert requests.get(gw.url("/open/j"), timeout=5).status_code == 200
    path = gw.root / "out" / "records.jsonl"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
            not path.exists() or path.read_text().count("\n") < 2):
        time.sleep(0.02)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    assert list(lines[0]) == GO_FIELDS
    rec = lines[0]
    assert rec["Path"] == "/j" and rec["ResponseCode"] == 200
    assert rec["APIKey"] == KEYLESS_KEY_HASH
    stamp = datetime.fromisoformat(rec["TimeStamp"].replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - time.time()) < 30
    assert rec["TimeStamp"].endswith("Z")


def test_default_file_beside_the_config(gateway_factory, make_api, echo):
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)], enable_analytics=True,
                         analytics_config={"purge_interval": 0.05})
    assert requests.get(gw.url("/open/j"), timeout=5).status_code == 200
    path = gw.root / "analytics.jsonl"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (path.exists() and path.read_text()):
        time.sleep(0.02)
    assert json.loads(path.read_text().splitlines()[0])["APIID"] == "open"


def test_records_buffered_at_shutdown_are_written(gateway_factory, make_api, echo):
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)], enable_analytics=True,
                         analytics_config={"purge_interval": 30})
    assert requests.get(gw.url("/open/j"), timeout=5).status_code == 200
    assert gw.stop() == 0
    lines = (gw.root / "analytics.jsonl").read_text().splitlines()
    assert len(lines) == 1


# -- GeoIP ------------------------------------------------------------------------


def _mmdb_value(value: Any) -> bytes:
    """MaxMind DB data-section encoding of a value (the subset used here)."""
    def head(kind: int, size: int) -> bytes:
        assert size < 29
        if kind <= 7:
            return bytes([(kind << 5) | size])
        return bytes([size, kind - 7])

    if isinstance(value, tuple):  # (type number, int): a sized unsigned int
        kind, number = value
        data = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
        return head(kind, len(data)) + data
    if isinstance(value, str):
        data = value.encode()
        return head(2, len(data)) + data
    if isinstance(value, float):
        return head(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        data = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        return head(6 if value < 2**32 else 9, len(data)) + data
    if isinstance(value, dict):
        return head(7, len(value)) + b"".join(
            _mmdb_value(k) + _mmdb_value(v) for k, v in value.items())
    if isinstance(value, list):
        return head(11, len(value)) + b"".join(_mmdb_value(v) for v in value)
    raise TypeError(value)


def write_mmdb(path: Path, prefix: int, prefix_len: int, data: dict[str, Any]) -> None:
    """An IPv4 MaxMind DB (record size 24) where ``prefix/prefix_len`` maps to ``data``."""
    node_count = prefix_len
    data_record = node_count + 16  # offset 0 in the data section
    tree = b""
    for depth in range(prefix_len):
        bit = (prefix >> (31 - depth)) & 1
        follow = depth + 1 if depth + 1 < prefix_len else data_record
        records = (follow, node_count) if bit == 0 else (node_count, follow)
        tree += records[0].to_bytes(3, "big") + records[1].to_bytes(3, "big")
    uint16, uint32, uint64 = 5, 6, 9
    metadata = {"node_count": (uint32, node_count), "record_size": (uint16, 24),
                "ip_version": (uint16, 4), "database_type": "fastgate-test",
                "languages": ["en"], "binary_format_major_version": (uint16, 2),
                "binary_format_minor_version": (uint16, 0),
                "build_epoch": (uint64, 1700000000), "description": {"en": "test"}}
    path.write_bytes(tree + b"\x00" * 16 + _mmdb_value(data)
                     + b"\xab\xcd\xefMaxMind.com" + _mmdb_value(metadata))


GEO = {"country": {"iso_code": "ZZ"},
       "city": {"geoname_id": 4242, "names": {"en": "Loopback"}},
       "location": {"latitude": 1.5, "longitude": -2.25, "time_zone": "Etc/UTC"}}


def test_test_database_reads_with_maxminddb(tmp_path):
    import maxminddb

    write_mmdb(tmp_path / "geo.mmdb", 127 << 24, 8, GEO)
    with maxminddb.open_database(str(tmp_path / "geo.mmdb")) as reader:
        assert reader.get("127.0.0.1") == GEO
        assert reader.get("10.0.0.1") is None


def test_geo_ip(gateway_factory, make_api, echo, redis_flush, tmp_path):
    write_mmdb(tmp_path / "geo.mmdb", 127 << 24, 8, GEO)
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)],
                         storage=redis_storage(redis_flush), enable_analytics=True,
                         analytics_config={"purge_interval": 0.05, "enable_geo_ip": True,
                                           "geo_ip_db_path": str(tmp_path / "geo.mmdb")})
    assert requests.get(gw.url("/open/g"), timeout=5).status_code == 200
    assert requests.get(gw.url("/open/g"), headers={"X-Real-IP": "10.0.0.1"},
                        timeout=5).status_code == 200
    client = redis_flush.client()
    assert wait_llen(client, ANALYTICS_KEY, 2) == 2
    found, unknown = (tyk_pump_decode(r) for r in client.lrange(ANALYTICS_KEY, 0, -1))
    assert found["Geo"] == {"Country": {"ISOCode": "ZZ"},
                            "City": {"GeoNameID": 4242, "Names": {"en": "Loopback"}},
                            "Location": {"Latitude": 1.5, "Longitude": -2.25,
                                         "TimeZone": "Etc/UTC"}}
    assert unknown["Geo"]["Country"]["ISOCode"] == ""


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"), (b"not a database", "is not a MaxMind database")])
def test_geo_ip_database_checked_at_load(tmp_path, content, message):
    db = tmp_path / "geo.mmdb"
    if content is not None:
        db.write_bytes(content)
    (tmp_path / "gateway.json").write_text(json.dumps({
        "listen_port": 8080, "secret": "s", "storage": {"type": "memory"},
        "enable_analytics": True,
        "analytics_config": {"enable_geo_ip": True, "geo_ip_db_path": str(db)}}))
    with pytest.raises(ConfigError, match=message) as info:
        load_gateway_config(str(tmp_path / "gateway.json"))
    assert "analytics_config.geo_ip_db_path" in str(info.value)


def test_storage_expiration_time_minus_one_means_never(tmp_path):
    (tmp_path / "gateway.json").write_text(json.dumps({
        "listen_port": 8080, "secret": "s", "enable_analytics": True,
        "analytics_config": {"storage_expiration_time": -1}}))
    cfg = load_gateway_config(str(tmp_path / "gateway.json"))
    assert cfg.observability.analytics.storage_expiration_time == -1


# -- the fast encoder against the reference record --------------------------------


class _Route:
    """What a record reads of a Route: its spec, listen path and strip flag."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.listen_path = spec.listen_path.encode()
        self.strip = spec.strip_listen_path


@pytest.mark.parametrize("hash_keys", [True, False])
def test_assembled_bytes_equal_the_reference_encoding(tmp_path, hash_keys):
    """Analytics.encode (pieces cached per API, session, agent, address,
    second) gives byte for byte what encoding Analytics.build's record gives."""
    from fastgate.apidef.parse import parse_api_definition
    from fastgate.observability.analytics import Analytics
    from fastgate.observability.metrics import Metrics
    from fastgate.session.cache import CachedSession

    write_mmdb(tmp_path / "geo.mmdb", 127 << 24, 8, GEO)
    (tmp_path / "gateway.json").write_text(json.dumps({
        "secret": "s", "hash_keys": hash_keys, "storage": {"type": "redis"},
        "enable_analytics": True,
        "analytics_config": {"enable_geo_ip": True, "geo_ip_db_path": str(tmp_path / "geo.mmdb"),
                             "ignored_ips": ["10.0.0.9"]}}))
    cfg = load_gateway_config(str(tmp_path / "gateway.json"))
    analytics = Analytics(cfg, None, Metrics(cfg.observability.metrics))  # type: ignore[arg-type]
    plain = parse_api_definition({
        "api_id": "p", "name": "P", "org_id": "o", "use_keyless": True,
        "proxy": {"listen_path": "/p/", "target_url": "http://127.0.0.1:9/base",
                  "strip_listen_path": True},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}}},
        "p.json")
    rich = parse_api_definition({
        "api_id": "r", "name": "Rich API", "org_id": "", "use_keyless": True,
        "tags": [f"t{i}" for i in range(20)], "tag_headers": ["X-Team"],
        "enable_detailed_recording": True, "expire_analytics_after": 60,
        "proxy": {"listen_path": "/r/", "target_url": "http://upstream.test:8080",
                  "strip_listen_path": False},
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}}},
        "r.json")
    session = CachedSession("abcdef0123", {
        "apply_policies": ["pol1"], "tags": ["gold", "é"], "alias": "al",
        "oauth_client_id": "client-1", "meta_data": {"tyk_developer_id": "dev9"},
        "enable_detailed_recording": True}, {})
    base = 1_700_000_000_123_456_789
    headers = [(b"host", b"Host", b"h"), (b"user-agent", b"User-Agent", b"agent/1")]
    entries = [
        (_Route(plain), b"GET", b"/p/a%20b", b"", headers, b"127.0.0.1", None, None, 200,
         0.0123, 0.01, base),
        (_Route(plain), b"POST", b"/p/x", b"q=1",
         [*headers, (b"content-length", b"Content-Length", b"12")], b"10.0.0.1", session,
         "abcdef0123", 201, 5.5, 4.9, base + 10**9),
        (_Route(rich), b"GET", b"/r/y", b"k=v",
         [(b"x-team", b"X-Team", b"blue"), (b"x-team", b"X-Team", b"red"),
          (b"transfer-encoding", b"Transfer-Encoding", b"chunked"),
          (b"authorization", b"Authorization", b"secret")], b"::1", session, "abcdef0123",
         0, 0.5, 0.0, base + 3600 * 10**9),
        (_Route(plain), b"GET", b"/p/", b"", [(b"x-real-ip", b"X-Real-IP", b"10.0.0.9")],
         b"127.0.0.1", None, None, 200, 0.001, 0.0, base),
    ]
    for _ in range(2):  # the second time from the caches
        for entry in entries:
            record = analytics.build(entry)
            data = analytics.encode(entry)
            if record is None:
                assert data is None
                continue
            assert data == encode_record(record)
            decoded = tyk_pump_decode(data)
            assert list(decoded) == GO_FIELDS
    rich_record = tyk_pump_decode(analytics.encode(entries[2]) or b"")
    assert rich_record["ResponseCode"] == 499
    assert rich_record["Path"] == "/r/y" and rich_record["ContentLength"] == -1
    assert rich_record["Tags"][:5] == ["pol-pol1", "dev-dev9", "gold", "é", "x-team-blue"]
    assert rich_record["Tags"][-2:] == [rich_record["Tags"][-2], "api-r"]
    assert rich_record["Tags"][-2].startswith("key-")
    assert b"secret" not in base64.b64decode(rich_record["RawRequest"])
    assert tyk_pump_decode(analytics.encode(entries[0]) or b"")["Geo"]["Country"] == {
        "ISOCode": "ZZ"}
