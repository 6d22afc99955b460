"""bench.report: medians over rounds, ratios to nginx, flags, the table."""

import pytest

from bench.report import (
    RunMeasurement,
    TargetSummary,
    format_latency,
    ratio,
    ratios,
    render_table,
)
from bench.wrk_output import SocketErrors, WrkResult


def wrk(rps: float, p99: float, requests: int | None = None, non2xx: int = 0,
        sockets: SocketErrors | None = None) -> WrkResult:
    return WrkResult(
        requests=requests if requests is not None else int(rps * 10),
        duration_us=10e6,
        requests_per_sec=rps,
        bytes_read=0,
        percentiles_us={50.0: p99 / 4, 99.0: p99},
        socket_errors=sockets or SocketErrors(),
        non_2xx_3xx=non2xx,
    )


def run(target: str, rps: float, p99: float, cpu_s: float, round_no: int = 1,
        **kw) -> RunMeasurement:
    return RunMeasurement(target=target, round=round_no, wrk=wrk(rps, p99, **kw),
                          wall_s=10.0, proxy_cpu_s=cpu_s)


def test_cpu_per_request():
    m = run("nginx", 40_000, 2000, cpu_s=8.0)  # 400,000 requests
    assert m.cpu_us_per_request == pytest.approx(20.0)
    assert m.proxy_utilisation == pytest.approx(0.8)


def test_cpu_per_request_without_requests():
    m = run("nginx", 0, 0, cpu_s=1.0, requests=0)
    assert m.cpu_us_per_request is None
    assert "no requests completed" in m.problems()


def test_medians_over_rounds():
    summary = TargetSummary("fastgate", [
        run("fastgate", 30_000, 3000, 9.5, 1),
        run("fastgate", 10_000, 9000, 9.9, 2),  # a disturbed round: the median ignores it
        run("fastgate", 32_000, 2800, 9.6, 3),
    ])
    assert summary.requests_per_sec == 30_000
    assert summary.p99_us == 3000
    # Per-round µs/request are 31.7, 99, 30.0: the median is round 1's.
    assert summary.cpu_us_per_request == pytest.approx(9.5e6 / 300_000)
    assert summary.requests == 720_000


def test_ratios_are_fastgate_over_nginx():
    nginx = TargetSummary("nginx", [run("nginx", 40_000, 2000, 8.0)])
    fastgate = TargetSummary("fastgate", [run("fastgate", 30_000, 3000, 9.0)])
    r = ratios(fastgate, nginx)
    assert r["requests_per_sec"] == pytest.approx(0.75)
    assert r["latency_p99"] == pytest.approx(1.5)
    assert r["latency_p50"] == pytest.approx(1.5)
    # 9 s / 300,000 = 30 µs against 8 s / 400,000 = 20 µs
    assert r["cpu_us_per_request"] == pytest.approx(1.5)
    assert ratios(nginx, nginx)["requests_per_sec"] == 1.0


@pytest.mark.parametrize(("value", "base"), [(None, 1.0), (1.0, None), (1.0, 0.0)])
def test_ratio_undefined(value, base):
    assert ratio(value, base) is None


def test_errors_are_problems():
    bad = run("fastgate", 90_000, 100, 9.0, non2xx=5, sockets=SocketErrors(read=2, timeout=1))
    problems = bad.problems()
    assert any("5 responses with status >= 400" in p for p in problems)
    assert any("read 2" in p and "timeout 1" in p for p in problems)
    summary = TargetSummary("fastgate", [bad])
    assert summary.errors == 8
    assert summary.problems() and all(p.startswith("round 1: ") for p in summary.problems())
    assert run("nginx", 1000, 100, 9.0).problems() == []


def test_unsaturated_proxy_is_a_note_not_a_problem():
    m = run("nginx", 40_000, 2000, cpu_s=5.0)
    assert m.problems() == []
    assert any("not saturated" in n for n in m.notes())
    assert run("nginx", 40_000, 2000, cpu_s=9.9).notes() == []


def test_disturbed_core_and_bottleneck_notes():
    m = RunMeasurement(target="fastgate", round=2, wrk=wrk(30_000, 3000), wall_s=10.0,
                       proxy_cpu_s=7.0, proxy_core_busy_s=9.5, proxy_core_steal_s=0.8,
                       load_core_busy_s=9.8, wrk_cpu_s=4.0, upstream_cpu_s=5.0)
    notes = m.notes()
    assert any("other processes used 25% of the proxy's core" in n for n in notes)
    assert any("hypervisor stole 8%" in n for n in notes)
    assert ("proxy used 70% of its core: not saturated (load core 98% busy: wrk 40%, "
            "upstream 50%, others 8%); the load core was saturated") in notes
    assert m.problems() == []
    quiet = RunMeasurement(target="nginx", round=1, wrk=wrk(30_000, 3000), wall_s=10.0,
                           proxy_cpu_s=9.8, proxy_core_busy_s=9.9, proxy_core_steal_s=0.0,
                           load_core_busy_s=7.0)
    assert quiet.notes() == []


def test_table_shows_ratios():
    nginx = TargetSummary("nginx", [run("nginx", 40_000, 2000, 8.0)])
    fastgate = TargetSummary("fastgate", [run("fastgate", 30_000, 3000, 9.0)])
    table = render_table([nginx, fastgate])
    lines = table.splitlines()
    assert lines[0].split() == ["target", "req/s", "ratio", "p50", "p99", "ratio",
                                "CPU", "us/req", "ratio", "proxy", "CPU", "RSS", "errors"]
    assert lines[2].split() == ["nginx", "40,000", "1.00x", "500us", "2.00ms", "1.00x",
                                "20.0", "1.00x", "80%", "-", "0"]
    assert lines[3].split() == ["fastgate", "30,000", "0.75x", "750us", "3.00ms", "1.50x",
                                "30.0", "1.50x", "90%", "-", "0"]


def test_table_without_baseline():
    fastgate = TargetSummary("fastgate", [run("fastgate", 30_000, 3000, 9.0)])
    row = render_table([fastgate]).splitlines()[2].split()
    assert row[2] == "-" and row[5] == "-" and row[7] == "-"


@pytest.mark.parametrize(
    ("us", "text"), [(None, "-"), (999.4, "999us"), (1500.0, "1.50ms"), (2.5e6, "2.50s")]
)
def test_format_latency(us, text):
    assert format_latency(us) == text


def test_json_shape():
    summary = TargetSummary("nginx", [run("nginx", 40_000, 2000, 8.0)])
    data = summary.to_json()
    assert data["requests_per_sec"] == 40_000
    assert data["latency_p99_us"] == 2000
    assert data["runs"][0]["latency_us"] == {"p50": 500.0, "p99": 2000.0}
    assert data["runs"][0]["proxy_cpu_us_per_request"] == pytest.approx(20.0)
