"""``fastgate top``: live per-API figures of a running gateway, in a terminal.

For operators on a server without a browser (the dashboard's figures, as
text).  Every ``--interval`` seconds it reads the gateway's Prometheus
``/metrics`` (with the gateway secret in ``X-Tyk-Authorization``) and, from
the difference with the previous reading, shows per API:

* ``REQ/S`` -- requests per second (``fastgate_requests_total``);
* ``REFUSED/S`` -- refusals per second, whatever the step that refused
  (authentication, rate limit, quota...: ``fastgate_refused_total``);
* ``5XX%`` -- the share of those requests answered with a 5xx status;
* ``P99 MS`` -- the 99th percentile of the total latency over the interval,
  from the ``fastgate_request_duration_seconds`` histogram as Prometheus'
  ``histogram_quantile`` computes it (linear interpolation in the bucket
  the rank falls in);

sorted by requests per second.  On a terminal the table is redrawn in place;
otherwise each reading is printed as plain lines.  ``--once`` prints one
reading (taken over one interval) and exits: 0, or 1 when the gateway could
not be read.  Without it a gateway that cannot be reached is reported and
asked again every interval.

The Prometheus text format is parsed here (a small parser, no dependency):
``name{label="value",...} value [timestamp]`` lines, ``#`` comments, the
escapes ``\\\\``, ``\\"`` and ``\\n`` in label values, ``+Inf``/``-Inf``/``NaN``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, TextIO

from fastgate.cli_keys import DEFAULT_URL, SECRET_ENV, CliError, url_for

__all__ = [
    "ApiFigures",
    "Reading",
    "Sample",
    "add_top_parser",
    "figures",
    "histogram_quantile",
    "parse_metrics",
    "render",
    "run_top",
]

REQUESTS = "fastgate_requests_total"
REFUSED = "fastgate_refused_total"
DURATION_BUCKET = "fastgate_request_duration_seconds_bucket"
CONNECTIONS = "fastgate_client_connections"
INFO = "fastgate_info"
API_INFO = "fastgate_api_info"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_CLEAR = "\x1b[H\x1b[2J"


# -- the Prometheus text format --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: the metric name, its labels (sorted), its value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str:
        """The value of label ``name`` ("" when absent, as Prometheus reads it)."""
        for key, value in self.labels:
            if key == name:
                return value
        return ""


def _is_name_char(ch: str, first: bool) -> bool:
    return ch == "_" or ch == ":" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or (
        not first and "0" <= ch <= "9")


def parse_metrics(text: str) -> list[Sample]:
    """The samples of a Prometheus (or OpenMetrics) text exposition.

    Raises ValueError naming the line for a line that is not one.
    """
    samples: list[Sample] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_parse_line(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}: {raw[:200]!r}") from None
    return samples


def _parse_line(line: str) -> Sample:
    n = len(line)
    i = 0
    while i < n and _is_name_char(line[i], i == 0):
        i += 1
    if i == 0:
        raise ValueError("expected a metric name")
    name = line[:i]
    labels: list[tuple[str, str]] = []
    while i < n and line[i] in " \t":
        i += 1
    if i < n and line[i] == "{":
        i += 1
        while True:
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] == "}":
                i += 1
                break
            start = i
            while i < n and _is_name_char(line[i], i == start):
                i += 1
            if i == start:
                raise ValueError("expected a label name")
            key = line[start:i]
            while i < n and line[i] in " \t":
                i += 1
            if i >= n or line[i] != "=":
                raise ValueError(f'expected ="..." after label {key}')
            i += 1
            while i < n and line[i] in " \t":
                i += 1
            if i >= n or line[i] != '"':
                raise ValueError(f'expected ="..." after label {key}')
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ValueError("unterminated label value")
                ch = line[i]
                if ch == "\\":
                    if i + 1 >= n:
                        raise ValueError("unterminated label value")
                    esc = line[i + 1]
                    chars.append("\n" if esc == "n" else esc)
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                chars.append(ch)
                i += 1
            labels.append((key, "".join(chars)))
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] == ",":
                i += 1
                continue
            if i < n and line[i] == "}":
                i += 1
                break
            raise ValueError("expected , or } in the labels")
    rest = line[i:].split()
    if not rest or len(rest) > 2:
        raise ValueError("expected a value (and at most a timestamp)")
    try:
        value = float(rest[0])
    except ValueError:
        raise ValueError(f"not a number: {rest[0]!r}") from None
    return Sample(name, tuple(sorted(labels)), value)


# -- figures -------------------------------------------------------------------------


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The ``q`` quantile of a histogram given as cumulative ``(le, count)``
    buckets (any order), as Prometheus' ``histogram_quantile``: NaN with no
    observations, fewer than two buckets or no ``+Inf`` bucket; the upper
    bound of the last finite bucket when the rank falls in ``+Inf``'s."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return math.nan
    # Cumulative counts must not decrease (a scrape racing an increment can
    # make them): carry the maximum forward, as Prometheus does.
    bounds = [le for le, _ in ordered]
    counts: list[float] = []
    high = 0.0
    for _, count in ordered:
        high = max(high, count)
        counts.append(high)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = len(counts) - 1
    for i, count in enumerate(counts[:-1]):
        if count >= rank:
            index = i
            break
    if index == len(counts) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, below = (bounds[index - 1], counts[index - 1]) if index > 0 else (0.0, 0.0)
    in_bucket = counts[index] - below
    return start + (bounds[index] - start) * ((rank - below) / in_bucket)


@dataclass
class Reading:
    """One scrape, indexed for the figures."""

    at: float
    samples: list[Sample]
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(init=False)

    def __post_init__(self) -> None:
        self.values = {(s.name, s.labels): s.value for s in self.samples}

    def named(self, name: str) -> list[Sample]:
        """The samples of one metric name."""
        return [s for s in self.samples if s.name == name]


@dataclass
class ApiFigures:
    """One API's figures over an interval."""

    api_id: str
    name: str
    rps: float = 0.0
    refused_ps: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    p99: float = math.nan  # seconds

    @property
    def error_ratio(self) -> float:
        """5xx answers / requests (NaN with no requests)."""
        return self.errors / self.requests if self.requests else math.nan


def _delta(before: Reading, sample: Sample) -> float:
    previous = before.values.get((sample.name, sample.labels))
    if previous is None:
        return sample.value  # a series born in the interval
    if sample.value < previous:
        return sample.value  # the counter was reset (a restart)
    return sample.value - previous


def figures(before: Reading, after: Reading) -> list[ApiFigures]:
    """Per-API figures between two readings, the busiest first."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        raise ValueError("the readings are not in order")
    apis: dict[str, ApiFigures] = {}

    def api(api_id: str) -> ApiFigures:
        found = apis.get(api_id)
        if found is None:
            found = apis[api_id] = ApiFigures(api_id, "")
        return found

    for sample in after.named(API_INFO):
        api(sample.label("api_id")).name = sample.label("api_name")
    for sample in after.named(REQUESTS):
        entry = api(sample.label("api_id"))
        delta = _delta(before, sample)
        entry.requests += delta
        if sample.label("status_class") in ("5xx", "5"):
            entry.errors += delta
    for sample in after.named(REFUSED):
        api(sample.label("api_id")).refused_ps += _delta(before, sample)
    buckets: dict[str, dict[float, float]] = {}
    for sample in after.named(DURATION_BUCKET):
        try:
            le = float(sample.label("le"))
        except ValueError:
            continue
        per_api = buckets.setdefault(sample.label("api_id"), {})
        per_api[le] = per_api.get(le, 0.0) + _delta(before, sample)
    for api_id, per_le in buckets.items():
        api(api_id).p99 = histogram_quantile(0.99, list(per_le.items()))
    for entry in apis.values():
        entry.rps = entry.requests / elapsed
        entry.refused_ps /= elapsed
    return sorted(apis.values(), key=lambda a: (-a.rps, -a.refused_ps, a.name or a.api_id))


def _gauge(reading: Reading, name: str) -> float | None:
    values = [s.value for s in reading.named(name)]
    return sum(values) if values else None


def render(before: Reading, after: Reading, url: str, width: int = 100) -> str:
    """The table for two readings (plain text, one line per API)."""
    rows = figures(before, after)
    versions = sorted({s.label("version") for s in after.named(INFO)} - {""})
    connections = _gauge(after, CONNECTIONS)
    total_rps = sum(r.rps for r in rows)
    total_refused = sum(r.refused_ps for r in rows)
    requests = sum(r.requests for r in rows)
    errors = sum(r.errors for r in rows)
    head = [f"fastgate {'/'.join(versions) or '?'}", url,
            time.strftime("%H:%M:%S", time.localtime(time.time())),
            f"interval {after.at - before.at:.1f}s"]
    if connections is not None:
        head.append(f"{connections:.0f} client connections")
    lines = ["  ".join(head),
             f"total {total_rps:.1f} req/s, refused {total_refused:.1f}/s, "
             f"5xx {_percent(errors / requests if requests else math.nan)}",
             ""]
    name_width = max(12, min(40, width - 62))
    lines.append(f"{'API':<{name_width}}  {'API ID':<20}  {'REQ/S':>10}  {'REFUSED/S':>10}  "
                 f"{'5XX%':>7}  {'P99 MS':>9}")
    for row in rows:
        label = row.name or ("(no API)" if not row.api_id else row.api_id)
        lines.append(f"{_cut(label, name_width):<{name_width}}  {_cut(row.api_id, 20):<20}  "
                     f"{row.rps:>10.1f}  {row.refused_ps:>10.1f}  "
                     f"{_percent(row.error_ratio):>7}  {_millis(row.p99):>9}")
    if not rows:
        lines.append("(no APIs in the metrics)")
    return "\n".join(lines) + "\n"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _percent(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio * 100:.1f}%"


def _millis(seconds: float) -> str:
    return "-" if math.isnan(seconds) or math.isinf(seconds) else f"{seconds * 1000:.2f}"


# -- the command ---------------------------------------------------------------------


def add_top_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``top`` to a ``fastgate`` argument parser's subparsers; the parsed
    namespace's ``func(args) -> int`` runs it."""
    top = subparsers.add_parser(
        "top", help="live per-API requests/s, refusals, 5xx and p99 of a running gateway",
        description="Poll a running gateway's /metrics and show per-API figures.")
    top.add_argument("--url", help=f"the gateway's base URL (default {DEFAULT_URL}, "
                                   "or from --config)")
    top.add_argument("--secret", help=f"the gateway secret (default ${SECRET_ENV}, "
                                      "or from --config)")
    top.add_argument("--config", metavar="FILE",
                     help="read the URL, the secret and the metrics path from this "
                          "gateway config")
    top.add_argument("--metrics-path", metavar="PATH",
                     help="the metrics path (default /metrics, or from --config)")
    top.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                     help="seconds between two readings (default 1)")
    top.add_argument("--once", action="store_true",
                     help="print one reading (over one interval) and exit")
    top.add_argument("--count", type=int, default=0, metavar="N",
                     help="exit after N readings (default: run until interrupted)")
    top.set_defaults(func=run_top)
    return top


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _where(args: argparse.Namespace) -> tuple[str, str, str]:
    """(base URL, metrics URL, secret) from the options, ``--config`` and the
    environment.  Raises CliError."""
    url, secret, path = args.url, args.secret, args.metrics_path
    if args.config and (url is None or secret is None or path is None):
        from fastgate.config import ConfigError, load_gateway_config

        try:
            config = load_gateway_config(args.config)
        except ConfigError as exc:
            raise CliError(f"--config: {exc}") from None
        if url is None:
            url = url_for(config.listen_address, config.control_api_port or config.listen_port)
        if secret is None:
            secret = config.secret
        if path is None:
            path = config.observability.metrics.path
    url = (url or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must be an http:// or https:// URL: {url!r}")
    if secret is None:
        secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise CliError(f"no gateway secret: pass --secret, set {SECRET_ENV} or use --config")
    path = path or "/metrics"
    if not path.startswith("/"):
        raise CliError(f"--metrics-path must start with /: {path!r}")
    return url, url + path, secret


class ReadError(Exception):
    """The metrics could not be read (the message says why)."""


def read_metrics(url: str, secret: str, timeout: float) -> Reading:
    """One reading of ``url``. Raises ReadError."""
    request = urllib.request.Request(url, headers={  # noqa: S310 (http(s) only: _where)
        "X-Tyk-Authorization": secret, "Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ReadError(f"{url}: the gateway refused the secret ({exc.code})") from None
        if exc.code == 404:
            raise ReadError(f"{url}: not found (404): is prometheus.enabled on, and is this "
                            "the gateway's control port?") from None
        raise ReadError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReadError(f"cannot reach {url}: {reason}") from None
    at = time.monotonic()
    try:
        return Reading(at, parse_metrics(body.decode("utf-8", "replace")))
    except ValueError as exc:
        raise ReadError(f"{url}: not Prometheus text ({exc})") from None


def run_top(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``fastgate top`` with parsed arguments; the exit status."""
    out = out if out is not None else sys.stdout
    try:
        base, url, secret = _where(args)
    except CliError as exc:
        print(f"fastgate top: {exc}", file=sys.stderr)
        return exc.code
    if args.count < 0:
        print("fastgate top: --count must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    wanted = 1 if args.once else args.count
    tty = out.isatty()
    timeout = max(2.0, args.interval)
    shown = 0
    before: Reading | None = None
    try:
        while True:
            try:
                reading = read_metrics(url, secret, timeout)
            except ReadError as exc:
                if args.once:
                    print(f"fastgate top: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                message = f"fastgate top: {exc} (trying again every {args.interval:g}s)"
                if tty:
                    out.write(_CLEAR + message + "\n")
                    out.flush()
                else:
                    print(message, file=sys.stderr)
                before = None
                time.sleep(args.interval)
                continue
            if before is not None and reading.at > before.at:
                width = shutil.get_terminal_size((100, 24)).columns
                table = render(before, reading, base, width)
                out.write((_CLEAR if tty else "") + table + ("" if tty else "\n"))
                out.flush()
                shown += 1
                if wanted and shown >= wanted:
                    return EXIT_OK
            before = reading
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
