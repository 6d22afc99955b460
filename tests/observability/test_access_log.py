"""The access log (``access_logs``) on real gateways over real sockets: the
fields after known traffic, the key only as its hash, the template, standard
output, batches that survive write errors and log rotation, the flush at
shutdown; and the buffer bound."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from fastgate.config import ACCESS_LOG_FIELDS, ConfigError, parse_gateway_config
from fastgate.observability.access_log import AccessLog
from fastgate.session.keys import hash_key

ADMIN = "X-Tyk-Authorization"


def lines_of(path: Path) -> list[dict[str, Any]]:
    """The lines of ``path`` but the test fixture's readiness checks (/hello)."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["path"] != "/hello"]


def read_lines(path: Path, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """``n`` lines of ``path`` once they are there (and no more appear)."""
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = lines_of(path)
        if len(lines) >= n:
            time.sleep(0.4)  # two more batches: nothing else should come
            lines = lines_of(path)
            break
        time.sleep(0.02)
    assert len(lines) == n, lines
    return lines


def apis(make_api: Any, echo: Any) -> list[dict[str, Any]]:
    return [
        make_api("open", "/open/", echo.base_url, name="Open API", org_id="org-1"),
        make_api("keyed", "/keyed/", echo.base_url + "/base", name="Keyed API",
                 use_keyless=False, use_standard_auth=True, auth={"auth_header_name": "X-Key"}),
    ]


def create_key(gw: Any) -> dict[str, Any]:
    resp = requests.post(gw.url("/tyk/keys/create"), headers={ADMIN: gw.secret}, timeout=5,
                         json={"access_rights": {"keyed": {"api_id": "keyed", "versions": []}}})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.mark.parametrize("hash_keys", [True, False], ids=["hashed", "plain"])
def test_fields_after_known_traffic(gateway_factory: Any, make_api: Any, echo: Any,
                                    tmp_path: Path, hash_keys: bool) -> None:
    log_file = tmp_path / "access.log"
    gw = gateway_factory(apis(make_api, echo), hash_keys=hash_keys,
                         access_logs={"enabled": True, "file": str(log_file)})
    created = create_key(gw)
    key = created["key"]
    before = time.time()
    assert requests.get(gw.url("/open/a/b?token=SECRET-IN-QUERY"), timeout=5,
                        headers={"User-Agent": "probe/1", "X-Request-Id": "req-42",
                                 "X-Forwarded-For": "203.0.113.7, 10.0.0.1"}).status_code == 200
    assert requests.get(gw.url("/keyed/x"), headers={"X-Key": key}, timeout=5).status_code == 200
    assert requests.get(gw.url("/keyed/x"), headers={"X-Key": key + "-wrong"},
                        timeout=5).status_code == 403
    assert requests.get(gw.url("/nowhere"), timeout=5).status_code == 404
    after = time.time()
    create, opened, keyed, wrong, nowhere = read_lines(log_file, 5)

    # Every line has every field the template allows (all of them here) but
    # those written only when they apply, and Tyk's prefix.
    for line in (opened, keyed, wrong, nowhere):
        assert line["prefix"] == "access-log"
        assert set(line) - {"prefix"} <= set(ACCESS_LOG_FIELDS)
    assert set(opened) == set(ACCESS_LOG_FIELDS) - {"trace_id", "original_path"} | {"prefix"}

    assert opened["api_id"] == "open" and opened["api_name"] == "Open API"
    assert opened["org_id"] == "org-1"
    assert opened["method"] == "GET" and opened["status"] == 200
    assert opened["path"] == "/open/a/b"  # no query: what it carries stays out of the log
    assert opened["host"] == f"127.0.0.1:{gw.port}"
    assert opened["protocol"] == "HTTP/1.1"
    assert opened["client_ip"] == "203.0.113.7"   # Tyk's RealIP: the first X-Forwarded-For
    assert opened["remote_addr"] == "127.0.0.1"
    assert opened["user_agent"] == "probe/1"
    assert opened["request_id"] == "req-42"
    assert opened["api_key"] == ""
    assert opened["upstream_addr"] == echo.base_url + "/a/b"
    assert 0 < opened["upstream_latency"] <= opened["latency_total"] < 5000
    assert opened["latency_gateway"] == pytest.approx(
        opened["latency_total"] - opened["upstream_latency"], abs=0.002)
    assert opened["bytes_in"] > 100 and opened["bytes_out"] > 100
    stamp = opened["timestamp"]
    assert stamp.endswith("Z") and len(stamp) == len("2024-01-02T03:04:05.678Z")
    from datetime import datetime
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert before - 0.002 <= at <= after + 0.002

    assert keyed["api_id"] == "keyed" and keyed["status"] == 200
    assert keyed["upstream_addr"] == echo.base_url + "/base/x"
    assert keyed["client_ip"] == "127.0.0.1"
    # The key as its hash: the storage key with hash_keys, else hashed the same way.
    assert keyed["api_key"] == hash_key(key, "")
    if hash_keys:
        assert keyed["api_key"] == created["key_hash"]
    assert wrong["status"] == 403 and wrong["api_key"] == ""
    assert wrong["upstream_addr"] == "" and wrong["upstream_latency"] == 0
    assert nowhere["status"] == 404 and "api_id" not in nowhere and "api_name" not in nowhere
    assert create["path"] == "/tyk/keys/create" and create["status"] == 200

    text = log_file.read_text()
    assert key not in text  # never the credential (nor a part of it: its hash only)
    assert key[-8:] not in text
    assert "SECRET-IN-QUERY" not in text
    assert gw.secret not in text


def test_template_and_standard_output(gateway_factory: Any, make_api: Any,
                                      echo: Any) -> None:
    template = ["status", "api_id", "client_ip", "response_flag"]  # the last: Tyk's, never set
    gw = gateway_factory(apis(make_api, echo), access_logs={"enabled": True,
                                                              "template": template})
    for _ in range(3):
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(lines) < 3:
        lines = [json.loads(line) for line in gw.stdout_path.read_text().splitlines()
                 if line.startswith("{") and "access-log" in line][-3:]
        time.sleep(0.02)
    assert lines == [{"status": 200, "api_id": "open", "client_ip": "127.0.0.1",
                      "prefix": "access-log"}] * 3
    assert list(lines[0]) == ["status", "api_id", "client_ip", "prefix"]  # the template's order


def test_off_by_default(gateway_factory: Any, make_api: Any, echo: Any) -> None:
    gw = gateway_factory(apis(make_api, echo))
    assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
    time.sleep(0.5)
    assert "access-log" not in gw.stdout_path.read_text()


def test_a_write_error_is_logged_once_and_the_log_recovers(
        gateway_factory: Any, make_api: Any, echo: Any, tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    log_file = folder / "access.log"
    gw = gateway_factory(apis(make_api, echo), access_logs={"enabled": True,
                                                              "file": str(log_file)})
    for _ in range(6):  # over several batches
        assert requests.get(gw.url("/open/x"), timeout=5).status_code == 200
        time.sleep(0.25)
    errors = [line for line in gw.stderr_path.read_text().splitlines()
              if "access log: cannot write to" in line]
    assert len(errors) == 1, errors
    assert str(log_file) in errors[0] and "No such file or directory" in errors[0]
    folder.mkdir()
    assert requests.get(gw.url("/open/after"), timeout=5).status_code == 200
    (line,) = read_lines(log_file, 1)
    assert line["path"] == "/open/after"


def test_a_rotated_file_is_followed(gateway_factory: Any, make_api: Any, echo: Any,
                                    tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    gw = gateway_factory(apis(make_api, echo), access_logs={"enabled": True,
                                                              "file": str(log_file)})
    assert requests.get(gw.url("/open/one"), timeout=5).status_code == 200
    read_lines(log_file, 1)
    rotated = tmp_path / "access.log.1"
    log_file.rename(rotated)
    time.sleep(1.1)  # the file at the path is checked once a second
    assert requests.get(gw.url("/open/two"), timeout=5).status_code == 200
    (line,) = read_lines(log_file, 1)
    assert line["path"] == "/open/two"
    assert [x["path"] for x in lines_of(rotated)] == ["/open/one"]


def test_buffered_lines_are_written_at_shutdown(gateway_factory: Any, make_api: Any,
                                                echo: Any, tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    gw = gateway_factory(apis(make_api, echo), access_logs={"enabled": True,
                                                              "file": str(log_file)})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /open/last HTTP/1.0\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        assert gw.stop() == 0  # at once: well within one batch interval
    lines = lines_of(log_file)
    assert [x["path"] for x in lines] == ["/open/last"]
    assert lines[0]["protocol"] == "HTTP/1.0"


def test_a_tyk_template_name_is_accepted_and_a_wrong_one_refused() -> None:
    config = parse_gateway_config({"secret": "s", "access_logs": {
        "enabled": True, "template": ["api_type", "status"]}}, "/etc/tyk.conf")
    assert config.observability.access_logs.template == ("api_type", "status")
    with pytest.raises(ConfigError, match=r"access_logs.template\[1\].*'statsu'"):
        parse_gateway_config({"secret": "s", "access_logs": {
            "enabled": True, "template": ["status", "statsu"]}}, "/etc/tyk.conf")


class FinishedExchange:
    """What the hook reads of a finished exchange (the unit test below)."""

    route = None
    method = b"GET"
    path = b"/x"
    request_headers: list[tuple[bytes, bytes, bytes]] = []
    client_ip = b"127.0.0.1"
    session_key = None
    status = 200
    total_time = 0.001
    upstream_time = 0.0
    bytes_in = 10
    bytes_out = 20
    http11 = True


def test_past_the_buffer_bound_lines_are_dropped_and_counted(tmp_path: Path) -> None:
    log_file = tmp_path / "a.log"
    config = parse_gateway_config({"secret": "s", "access_logs": {
        "enabled": True, "file": str(log_file)}}, str(tmp_path / "tyk.conf"))
    access_log = AccessLog(config, None)
    access_log._limit = 3
    for _ in range(5):
        access_log.exchange_finished(FinishedExchange())
    assert access_log.dropped == 2
    access_log.flush()
    assert access_log.lines == 3
    counters = {family.name: family.samples for family in access_log.collect()}
    assert counters["fastgate_access_log_lines_total"] == [((), 3)]
    assert counters["fastgate_access_log_dropped_total"] == [((), 2)]
    assert counters["fastgate_access_log_write_errors_total"] == [((), 0)]
    assert len(log_file.read_text().splitlines()) == 3
    os.close(access_log._fd or os.open(os.devnull, os.O_RDONLY))
