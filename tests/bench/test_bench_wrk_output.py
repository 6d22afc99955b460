"""bench.wrk_output: wrk --latency output as numbers (samples are real wrk 4.1 output)."""

from pathlib import Path

import pytest

from bench.wrk_output import SocketErrors, WrkOutputError, parse_wrk_output, time_to_us

SAMPLES = Path(__file__).parent / "wrk_samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_clean_run():
    result = parse_wrk_output(sample("ok.txt"))
    assert result.requests == 85819
    assert result.requests_per_sec == 77998.62
    assert result.duration_us == pytest.approx(1.10e6)
    assert result.bytes_read == round(12.28 * 2**20)
    assert result.percentiles_us == {50.0: 72.0, 75.0: 95.0, 90.0: 136.0, 99.0: 960.0}
    assert result.p50_us == 72.0
    assert result.p99_us == pytest.approx(960.0)
    assert result.latency_avg_us == pytest.approx(102.46)
    assert result.latency_max_us == pytest.approx(3340.0)
    assert result.socket_errors == SocketErrors()
    assert result.non_2xx_3xx == 0
    assert result.errors == 0


def test_error_statuses_are_counted():
    result = parse_wrk_output(sample("non2xx.txt"))
    assert result.requests == 46390
    assert result.non_2xx_3xx == 23332
    assert result.errors == 23332


def test_socket_errors_are_counted():
    result = parse_wrk_output(sample("socket_errors.txt"))
    assert result.socket_errors == SocketErrors(connect=0, read=31, write=0, timeout=8)
    assert result.socket_errors.total == 39
    assert result.errors == 39
    assert result.bytes_read == round(60.58 * 1024)
    assert result.p99_us == pytest.approx(2770.0)


def test_without_latency_distribution():
    text = "\n".join(
        line for line in sample("ok.txt").splitlines()
        if "%" not in line or "Stdev" in line or "Latency" in line or "Req/Sec" in line
    ).replace("  Latency Distribution\n", "")
    result = parse_wrk_output(text)
    assert result.percentiles_us == {}
    assert result.p99_us is None
    assert result.requests == 85819


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [("250.00", "us", 250.0), ("1.14", "ms", 1140.0), ("2.00", "s", 2e6), ("1.50", "m", 90e6)],
)
def test_time_units(value, unit, expected):
    assert time_to_us(value, unit) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unable to connect to 127.0.0.1:1 Connection refused\n",
        # A run cut short before the summary: no "Requests/sec".
        "\n".join(sample("ok.txt").splitlines()[:-2]),
    ],
)
def test_missing_summary_is_an_error(text):
    with pytest.raises(WrkOutputError):
        parse_wrk_output(text)
