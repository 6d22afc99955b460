"""``fastgate top``: the Prometheus text parser, the quantile, the per-API
rates on fixed text (values computed by hand), and the command against a
real gateway and a real metrics server over sockets."""

from __future__ import annotations

import hmac
import http.server
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fastgate.cli_top import (
    Reading,
    figures,
    histogram_quantile,
    parse_metrics,
    render,
)

# -- the parser -------------------------------------------------------------------------


def test_parser_reads_names_labels_escapes_and_special_values() -> None:
    text = (
        "# HELP fastgate_requests_total Requests.\n"
        "# TYPE fastgate_requests_total counter\n"
        'fastgate_requests_total{api_id="a",method="GET",status_class="2xx"} 12\n'
        'fastgate_api_info{api_name="B \\"beta\\", v2\\\\x\\nnext",api_id="b"} 1\n'
        'x_bucket{le="+Inf"} 3 1700000000000\n'
        "plain_gauge -1.5e3\n"
        "nan_gauge NaN\n"
        'spaced { a = "1" , b="2", } +Inf\n'
        "\n"
        "# EOF\n"
    )
    samples = parse_metrics(text)
    assert [s.name for s in samples] == [
        "fastgate_requests_total", "fastgate_api_info", "x_bucket", "plain_gauge",
        "nan_gauge", "spaced"]
    first = samples[0]
    assert first.labels == (("api_id", "a"), ("method", "GET"), ("status_class", "2xx"))
    assert first.value == 12.0
    assert samples[1].label("api_name") == 'B "beta", v2\\x\nnext'
    assert samples[1].label("api_id") == "b"
    assert samples[1].label("missing") == ""
    assert samples[2].label("le") == "+Inf" and samples[2].value == 3.0
    assert samples[3].value == -1500.0
    assert math.isnan(samples[4].value)
    assert samples[5].labels == (("a", "1"), ("b", "2")) and samples[5].value == math.inf


@pytest.mark.parametrize("line", [
    '{api_id="a"} 1',            # no name
    'm{api_id="a" 1',            # unterminated labels
    'm{api_id=a} 1',             # value not quoted
    'm{api_id "a"} 1',           # no =
    'm{api_id="a} 1',            # unterminated value
    "m",                         # no value
    "m one",                     # not a number
    "m 1 2 3",                   # too many fields
])
def test_parser_refuses_a_bad_line_naming_it(line: str) -> None:
    with pytest.raises(ValueError, match=r"^line 2: "):
        parse_metrics("ok 1\n" + line + "\n")


# -- the quantile -----------------------------------------------------------------------

INF = math.inf
BUCKETS = [(0.001, 10.0), (0.005, 50.0), (0.01, 90.0), (0.05, 99.0), (0.1, 100.0),
           (INF, 100.0)]


@pytest.mark.parametrize(("q", "expected"), [
    (0.3, 0.003),              # rank 30 in (0.001, 0.005]: 0.001 + 0.004 * 20/40
    (0.5, 0.005),              # rank 50: the top of (0.001, 0.005]
    (0.95, 0.01 + 0.04 * 5 / 9),
    (0.99, 0.05),              # rank 99: the top of (0.01, 0.05]
    (0.05, 0.0005),            # rank 5 in the first bucket, from 0
])
def test_quantile_interpolates_linearly_in_the_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)
    assert histogram_quantile(q, list(reversed(BUCKETS))) == pytest.approx(expected)


def test_quantile_edge_cases_as_prometheus() -> None:
    # The rank in the +Inf bucket: the last finite upper bound.
    assert histogram_quantile(0.99, [(0.1, 5.0), (INF, 10.0)]) == 0.1
    assert math.isnan(histogram_quantile(0.99, [(0.1, 0.0), (INF, 0.0)]))   # no observations
    assert math.isnan(histogram_quantile(0.99, [(0.1, 1.0), (0.2, 2.0)]))   # no +Inf
    assert math.isnan(histogram_quantile(0.99, [(INF, 2.0)]))               # one bucket
    assert histogram_quantile(1.5, BUCKETS) == INF
    assert histogram_quantile(-1, BUCKETS) == -INF
    # A decreasing count (a scrape racing an increment) is carried forward.
    assert histogram_quantile(0.5, [(0.1, 10.0), (0.2, 8.0), (INF, 10.0)]) == pytest.approx(0.05)


# -- rates over an interval -------------------------------------------------------------

BEFORE = """\
fastgate_info{version="9.9.9"} 1
fastgate_client_connections 3
fastgate_api_info{api_id="a",api_name="Alpha API"} 1
fastgate_api_info{api_id="b",api_name="B \\"beta\\", v2"} 1
fastgate_requests_total{api_id="a",method="GET",status_class="2xx"} 100
fastgate_requests_total{api_id="a",method="GET",status_class="5xx"} 10
fastgate_requests_total{api_id="b",method="POST",status_class="2xx"} 5
fastgate_requests_total{api_id="c",method="GET",status_class="4xx"} 1000
fastgate_refused_total{api_id="a",step="rate_limit"} 3
fastgate_request_duration_seconds_bucket{api_id="a",le="0.001"} 50
fastgate_request_duration_seconds_bucket{api_id="a",le="0.01"} 100
fastgate_request_duration_seconds_bucket{api_id="a",le="0.1"} 110
fastgate_request_duration_seconds_bucket{api_id="a",le="+Inf"} 110
fastgate_request_duration_seconds_sum{api_id="a"} 1.5
fastgate_request_duration_seconds_count{api_id="a"} 110
"""

AFTER = """\
fastgate_info{version="9.9.9"} 1
fastgate_client_connections 7
fastgate_api_info{api_id="a",api_name="Alpha API"} 1
fastgate_api_info{api_id="b",api_name="B \\"beta\\", v2"} 1
fastgate_api_info{api_id="idle",api_name="Idle"} 1
fastgate_requests_total{api_id="a",method="GET",status_class="2xx"} 180
fastgate_requests_total{api_id="a",method="GET",status_class="5xx"} 30
fastgate_requests_total{api_id="b",method="POST",status_class="2xx"} 45
fastgate_requests_total{api_id="b",method="DELETE",status_class="2xx"} 4
fastgate_requests_total{api_id="c",method="GET",status_class="4xx"} 30
fastgate_refused_total{api_id="a",step="rate_limit"} 13
fastgate_refused_total{api_id="a",step="auth"} 2
fastgate_request_duration_seconds_bucket{api_id="a",le="0.001"} 60
fastgate_request_duration_seconds_bucket{api_id="a",le="0.01"} 190
fastgate_request_duration_seconds_bucket{api_id="a",le="0.1"} 210
fastgate_request_duration_seconds_bucket{api_id="a",le="+Inf"} 210
fastgate_request_duration_seconds_sum{api_id="a"} 2.5
fastgate_request_duration_seconds_count{api_id="a"} 210
"""


def readings() -> tuple[Reading, Reading]:
    return Reading(10.0, parse_metrics(BEFORE)), Reading(12.0, parse_metrics(AFTER))


def test_rates_per_api_from_counter_deltas() -> None:
    rows = figures(*readings())
    by_id = {row.api_id: row for row in rows}
    assert [row.api_id for row in rows] == ["a", "b", "c", "idle"]  # by requests/s
    a = by_id["a"]
    assert a.name == "Alpha API"
    assert a.rps == pytest.approx(50.0)            # (80 + 20) / 2 s
    assert a.error_ratio == pytest.approx(0.2)     # 20 of 100 were 5xx
    assert a.refused_ps == pytest.approx(6.0)      # (10 + 2, a new series) / 2 s
    # p99 of the interval's 100 observations (10, 90, 100 cumulative): rank 99
    # in (0.01, 0.1], 9 of its 10: 0.01 + 0.09 * 9/10.
    assert a.p99 == pytest.approx(0.091)
    b = by_id["b"]
    assert b.name == 'B "beta", v2'
    assert b.rps == pytest.approx(22.0)            # (40 + 4, a new series) / 2 s
    assert b.error_ratio == 0.0 and math.isnan(b.p99)
    assert by_id["c"].rps == pytest.approx(15.0)   # reset 1000 -> 30: 30 in the interval
    idle = by_id["idle"]
    assert idle.rps == 0.0 and math.isnan(idle.error_ratio)


def test_render_shows_the_table() -> None:
    text = render(*readings(), url="http://gw:8080")
    lines = text.splitlines()
    assert lines[0].startswith("fastgate 9.9.9  http://gw:8080  ")
    assert "interval 2.0s" in lines[0] and "7 client connections" in lines[0]
    assert lines[1] == "total 87.0 req/s, refused 6.0/s, 5xx 11.5%"  # 20 of 174 requests
    assert lines[3].split() == ["API", "API", "ID", "REQ/S", "REFUSED/S", "5XX%", "P99", "MS"]
    alpha = lines[4].split()
    assert alpha[:2] == ["Alpha", "API"] and alpha[2:] == ["a", "50.0", "6.0", "20.0%", "91.00"]
    assert lines[5].split()[-5:] == ["b", "22.0", "0.0", "0.0%", "-"]
    assert lines[7].split() == ["Idle", "idle", "0.0", "0.0", "-", "-"]


def test_render_with_no_apis() -> None:
    empty = render(Reading(1.0, []), Reading(2.0, []), url="http://gw")
    assert "(no APIs in the metrics)" in empty
    with pytest.raises(ValueError):
        figures(Reading(2.0, []), Reading(2.0, []))


# -- the command ------------------------------------------------------------------------


def top(*args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "FASTGATE_SECRET"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "fastgate", "top", *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


class CountingMetrics(http.server.BaseHTTPRequestHandler):
    """/metrics whose counter grows by 10 per scrape; 403 without the secret."""

    scrapes = 0
    secret = "top-secret"

    def do_GET(self) -> None:
        if not hmac.compare_digest(self.headers.get("X-Tyk-Authorization") or "", self.secret):
            self.send_response(403)
            self.end_headers()
            return
        if self.path != "/custom-metrics":
            self.send_response(404)
            self.end_headers()
            return
        cls = type(self)
        cls.scrapes += 1
        body = ('fastgate_api_info{api_id="x",api_name="Counted"} 1\n'
                f'fastgate_requests_total{{api_id="x",method="GET",status_class="2xx"}} '
                f"{cls.scrapes * 10}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingMetrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_count_readings_with_the_secret_from_the_environment(metrics_server: str) -> None:
    result = top("--url", metrics_server, "--metrics-path", "/custom-metrics",
                 "--interval", "0.2", "--count", "3", env={"FASTGATE_SECRET": "top-secret"})
    assert result.returncode == 0, result.stderr
    tables = ["fastgate " + t for t in result.stdout.split("fastgate ")[1:]]
    assert len(tables) == 3, result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: plain lines
    for table in tables:
        row = [line for line in table.splitlines() if line.startswith("Counted")]
        assert len(row) == 1
        rps = float(row[0].split()[2])
        assert 10 < rps < 100  # 10 requests per ~0.2 s interval


def test_a_refused_secret_and_a_wrong_path_are_explained(metrics_server: str) -> None:
    result = top("--url", metrics_server, "--secret", "wrong", "--once", "--interval", "0.1")
    assert result.returncode == 1
    assert "refused the secret (403)" in result.stderr
    result = top("--url", metrics_server, "--secret", "top-secret", "--once")
    assert result.returncode == 1
    assert "not found (404)" in result.stderr


def test_no_gateway_once_exits_1_and_without_once_keeps_trying(free_port: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = top("--url", url, "--secret", "s", "--once")
    assert result.returncode == 1
    assert result.stderr.startswith(f"fastgate top: cannot reach {url}/metrics")
    proc = subprocess.Popen([sys.executable, "-m", "fastgate", "top", "--url", url,
                             "--secret", "s", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        assert proc.poll() is None  # still trying
    finally:
        proc.terminate()
        _out, err = proc.communicate(10)
    assert err.count("cannot reach") >= 3, err
    assert "trying again every 0.2s" in err


def test_usage_errors() -> None:
    result = top("--url", "http://127.0.0.1:1", "--once")
    assert result.returncode == 2
    assert "no gateway secret" in result.stderr
    result = top("--secret", "s", "--interval", "0")
    assert result.returncode == 2
    assert "positive" in result.stderr
    result = top("--secret", "s", "--url", "file:///etc/passwd", "--once")
    assert result.returncode == 2
    assert "must be an http:// or https:// URL" in result.stderr


# -- against a real gateway ---------------------------------------------------------------


def test_top_once_against_a_gateway_under_traffic(gateway_factory: Any, make_api: Any,
                                                  echo: Any) -> None:
    gw = gateway_factory([make_api("busy", "/busy/", echo.base_url, name="Busy API"),
                          make_api("quiet", "/quiet/", echo.base_url, name="Quiet API")])
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                assert session.get(gw.url("/busy/x"), timeout=5).status_code == 200
                sent[0] += 1

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        result = top("--config", str(gw.config_path), "--once", "--interval", "1")
    finally:
        stop.set()
        thread.join(10)
    assert result.returncode == 0, result.stderr
    assert sent[0] > 10
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fastgate ") and gw.base_url in lines[0]
    rows = {line.split()[2]: line.split() for line in lines[4:] if line.strip()}
    busy, quiet = rows["busy"], rows["quiet"]
    assert busy[:2] == ["Busy", "API"] and quiet[:2] == ["Quiet", "API"]
    assert float(busy[3]) > 5.0
    assert float(quiet[3]) == 0.0
    assert busy[5] == "0.0%"
    assert busy[6] != "-" and 0 < float(busy[6]) < 1000  # p99 in ms
    print(result.stdout)
    assert lines[4].startswith("Busy API")  # the busiest first
