"""Parse what ``wrk --latency`` prints.

wrk 4.x prints (lines in brackets only when non-zero)::

    Running 10s test @ http://127.0.0.1:8080/
      1 threads and 64 connections
      Thread Stats   Avg      Stdev     Max   +/- Stdev
        Latency   635.91us    0.89ms  12.92ms   93.69%
        Req/Sec    56.20k     8.07k   62.00k    86.54%
      Latency Distribution
         50%  250.00us
         75%  491.00us
         90%    1.14ms
         99%    4.42ms
      559315 requests in 10.01s, 64.01MB read
      [Socket errors: connect 0, read 0, write 0, timeout 0]
      [Non-2xx or 3xx responses: 12]
    Requests/sec:  55884.67
    Transfer/sec:      6.40MB

Times use wrk's units (us, ms, s, m, h); everything here is converted to microseconds.
wrk counts only statuses >= 400 as "Non-2xx or 3xx".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TIME_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_BYTE_UNIT = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "PB": 1 << 50}

_TIME = r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)"
_SUMMARY_RE = re.compile(
    r"^\s*([0-9]+) requests in " + _TIME + r", ([0-9]+(?:\.[0-9]+)?)([KMGTP]?B) read\s*$",
    re.MULTILINE,
)
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9]+(?:\.[0-9]+)?)\s*$", re.MULTILINE)
_SOCKET_RE = re.compile(
    r"^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)\s*$",
    re.MULTILINE,
)
_NON2XX_RE = re.compile(r"^\s*Non-2xx or 3xx responses: ([0-9]+)\s*$", re.MULTILINE)
_PERCENTILE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)%\s+" + _TIME + r"\s*$")
_LATENCY_STATS_RE = re.compile(
    r"^\s*Latency\s+" + _TIME + r"\s+\S+\s+" + _TIME + r"\s", re.MULTILINE
)


class WrkOutputError(ValueError):
    """wrk's output lacks a line the benchmark needs (wrk failed, or its format changed)."""


@dataclass(frozen=True)
class SocketErrors:
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.timeout


@dataclass(frozen=True)
class WrkResult:
    """One wrk run.  Latencies are in microseconds; ``percentiles_us`` maps 50.0 → p50."""

    requests: int
    duration_us: float
    requests_per_sec: float
    bytes_read: int
    percentiles_us: dict[float, float] = field(default_factory=dict)
    latency_avg_us: float | None = None
    latency_max_us: float | None = None
    socket_errors: SocketErrors = SocketErrors()
    non_2xx_3xx: int = 0

    @property
    def p50_us(self) -> float | None:
        return self.percentiles_us.get(50.0)

    @property
    def p99_us(self) -> float | None:
        return self.percentiles_us.get(99.0)

    @property
    def errors(self) -> int:
        """Socket errors plus error statuses: any of them makes the run no benchmark."""
        return self.socket_errors.total + self.non_2xx_3xx


def time_to_us(value: str, unit: str) -> float:
    """``time_to_us("1.5", "ms") == 1500.0``; raises KeyError on a unit wrk never prints."""
    return float(value) * _TIME_UNIT_US[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Read one run's numbers from wrk's stdout; raises WrkOutputError if they are missing."""
    summary = _SUMMARY_RE.search(text)
    rps = _RPS_RE.search(text)
    if summary is None or rps is None:
        raise WrkOutputError("no request summary in wrk output:\n" + text.strip())
    requests = int(summary.group(1))
    duration_us = time_to_us(summary.group(2), summary.group(3))
    bytes_read = round(float(summary.group(4)) * _BYTE_UNIT[summary.group(5)])

    percentiles: dict[float, float] = {}
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Latency Distribution")
    except StopIteration:
        start = len(lines)
    for line in lines[start + 1 :]:
        match = _PERCENTILE_RE.match(line)
        if match is None:
            break
        percentiles[float(match.group(1))] = time_to_us(match.group(2), match.group(3))

    avg_us = max_us = None
    stats = _LATENCY_STATS_RE.search(text)
    if stats is not None:
        avg_us = time_to_us(stats.group(1), stats.group(2))
        max_us = time_to_us(stats.group(3), stats.group(4))

    socket = _SOCKET_RE.search(text)
    socket_errors = (
        SocketErrors(*(int(socket.group(i)) for i in range(1, 5))) if socket else SocketErrors()
    )
    non2xx = _NON2XX_RE.search(text)
    return WrkResult(
        requests=requests,
        duration_us=duration_us,
        requests_per_sec=float(rps.group(1)),
        bytes_read=bytes_read,
        percentiles_us=percentiles,
        latency_avg_us=avg_us,
        latency_max_us=max_us,
        socket_errors=socket_errors,
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
    )
