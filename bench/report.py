"""Numbers per run, medians per target, ratios to the baseline, the table and the JSON.

Every ratio is a target's value divided by nginx's (the plain-proxy baseline), or by
HAProxy's where a scenario has HAProxy doing its work as a peer, measured in the same
run: for requests/s higher is better, for latency and CPU per request lower is better.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.wrk_output import WrkResult

BASELINE = "nginx"
#: The second peer: HAProxy doing what the scenario asks (plain proxy, jwt_verify, ...).
PEER = "haproxy"

#: A proxy using less of its core than this was not the bottleneck: the load generator
#: or the upstream was, and its requests/s say little (its CPU µs/request still hold).
SATURATED_UTILISATION = 0.85

#: Other processes (or the hypervisor) taking more than this share of the proxy's core
#: make a run's numbers suspect.
DISTURBANCE = 0.05


@dataclass(frozen=True)
class RunMeasurement:
    """One wrk run against one target, with the CPU each side used meanwhile."""

    target: str
    round: int
    wrk: WrkResult
    wall_s: float
    proxy_cpu_s: float
    proxy_pids: tuple[int, ...] = ()
    vanished_pids: tuple[int, ...] = ()
    upstream_cpu_s: float | None = None
    wrk_cpu_s: float | None = None
    #: Whole-core figures (every process), when the proxy and the load are pinned.
    proxy_core_busy_s: float | None = None
    proxy_core_steal_s: float | None = None
    load_core_busy_s: float | None = None
    #: What the scenario's wrk feed reported (tokens used, reused, ...), if it has one.
    feed: Mapping[str, Any] | None = None
    feed_problems: tuple[str, ...] = ()
    feed_notes: tuple[str, ...] = ()
    #: The feed asks for the run to be measured again (its pool ran out).
    feed_retry: bool = False
    #: The proxy tree's resident set, in kB: the highest sample while wrk ran.
    proxy_rss_kb: int | None = None
    #: The proxies ran on the load's cores too (--workers N on N cores): the
    #: per-core disturbance and saturation notes mean nothing then.
    shared_cores: bool = False
    #: A paced run: the rate asked for in all (requests/s), and the percentiles
    #: the pacing script printed (``{"p50": us, ..., "p99.99": us, "max": us}``).
    target_rate: float | None = None
    paced_latency_us: Mapping[str, float] | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.wrk.requests == 0:
            return None
        return self.proxy_cpu_s * 1e6 / self.wrk.requests

    @property
    def proxy_utilisation(self) -> float | None:
        return self.proxy_cpu_s / self.wall_s if self.wall_s > 0 else None

    def problems(self) -> list[str]:
        """Reasons this run is not a benchmark (errors) — empty when it is sound."""
        found = []
        if self.wrk.non_2xx_3xx:
            found.append(f"{self.wrk.non_2xx_3xx} responses with status >= 400")
        sock = self.wrk.socket_errors
        if sock.total:
            found.append(
                f"socket errors: connect {sock.connect}, read {sock.read}, "
                f"write {sock.write}, timeout {sock.timeout}"
            )
        if self.wrk.requests == 0:
            found.append("no requests completed")
        found += self.feed_problems
        return found

    def notes(self) -> list[str]:
        """Caveats that do not invalidate the run."""
        found = []
        wall = self.wall_s
        if self.target_rate is not None:
            reached = self.wrk.requests_per_sec / self.target_rate
            if not 0.95 <= reached <= 1.05:
                found.append(f"paced at {self.target_rate:,.0f} req/s, reached "
                             f"{self.wrk.requests_per_sec:,.0f} ({reached:.0%})")
            if self.load_core_busy_s is not None and wall > 0 \
                    and self.load_core_busy_s / wall > 0.9:
                found.append(f"the load core was {self.load_core_busy_s / wall:.0%} busy: "
                             "the latency includes wrk's and the upstream's own waits")
            # Paced: the proxy is meant to idle part of the time.
            return found + list(self.feed_notes)
        if self.shared_cores:
            return found + list(self.feed_notes)
        if self.proxy_core_busy_s is not None and wall > 0:
            others = (self.proxy_core_busy_s - self.proxy_cpu_s) / wall
            if others > DISTURBANCE:
                found.append(f"other processes used {others:.0%} of the proxy's core: "
                             "the run was disturbed")
        if self.proxy_core_steal_s is not None and wall > 0:
            steal = self.proxy_core_steal_s / wall
            if steal > DISTURBANCE:
                found.append(f"the hypervisor stole {steal:.0%} of the proxy's core")
        util = self.proxy_utilisation
        if util is not None and util < SATURATED_UTILISATION:
            text = f"proxy used {util:.0%} of its core: not saturated"
            if self.load_core_busy_s is not None and wall > 0:
                load = self.load_core_busy_s / wall
                parts = [f"load core {load:.0%} busy"]
                if self.wrk_cpu_s is not None and self.upstream_cpu_s is not None:
                    others = self.load_core_busy_s - self.wrk_cpu_s - self.upstream_cpu_s
                    parts.append(f"wrk {self.wrk_cpu_s / wall:.0%}, upstream "
                                 f"{self.upstream_cpu_s / wall:.0%}, others {others / wall:.0%}")
                text += " (" + ": ".join(parts) + ")"
                if load > 0.9:
                    text += "; the load core was saturated"
            found.append(text)
        if self.vanished_pids:
            found.append(
                f"processes {list(self.vanished_pids)} exited during the run: "
                "CPU is a lower bound"
            )
        found += self.feed_notes
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "requests": self.wrk.requests,
            "requests_per_sec": self.wrk.requests_per_sec,
            "duration_s": self.wrk.duration_us / 1e6,
            "latency_us": {f"p{p:g}": v for p, v in sorted(self.wrk.percentiles_us.items())},
            "latency_avg_us": self.wrk.latency_avg_us,
            "latency_max_us": self.wrk.latency_max_us,
            "bytes_read": self.wrk.bytes_read,
            "non_2xx_3xx": self.wrk.non_2xx_3xx,
            "socket_errors": {
                "connect": self.wrk.socket_errors.connect,
                "read": self.wrk.socket_errors.read,
                "write": self.wrk.socket_errors.write,
                "timeout": self.wrk.socket_errors.timeout,
            },
            "wall_s": self.wall_s,
            "proxy_cpu_s": self.proxy_cpu_s,
            "proxy_cpu_us_per_request": self.cpu_us_per_request,
            "proxy_utilisation": self.proxy_utilisation,
            "proxy_pids": list(self.proxy_pids),
            "upstream_cpu_s": self.upstream_cpu_s,
            "wrk_cpu_s": self.wrk_cpu_s,
            "proxy_core_busy_s": self.proxy_core_busy_s,
            "proxy_core_steal_s": self.proxy_core_steal_s,
            "load_core_busy_s": self.load_core_busy_s,
            "proxy_rss_kb": self.proxy_rss_kb,
            "shared_cores": self.shared_cores,
            "target_rate": self.target_rate,
            "paced_latency_us": (dict(self.paced_latency_us)
                                 if self.paced_latency_us is not None else None),
            "feed": dict(self.feed) if self.feed is not None else None,
            "problems": self.problems(),
            "notes": self.notes(),
        }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass
class TargetSummary:
    """Medians over a target's rounds (one proxy, one scenario)."""

    target: str
    runs: list[RunMeasurement] = field(default_factory=list)

    def _median_of(self, pick: Callable[[RunMeasurement], float | None]) -> float | None:
        return _median([pick(run) for run in self.runs])

    @property
    def requests_per_sec(self) -> float | None:
        return self._median_of(lambda run: run.wrk.requests_per_sec)

    @property
    def p50_us(self) -> float | None:
        return self._median_of(lambda run: run.wrk.p50_us)

    @property
    def p99_us(self) -> float | None:
        return self._median_of(lambda run: run.wrk.p99_us)

    @property
    def cpu_us_per_request(self) -> float | None:
        return self._median_of(lambda run: run.cpu_us_per_request)

    @property
    def proxy_utilisation(self) -> float | None:
        return self._median_of(lambda run: run.proxy_utilisation)

    @property
    def rss_kb(self) -> float | None:
        return self._median_of(lambda run: run.proxy_rss_kb)

    @property
    def requests(self) -> int:
        return sum(run.wrk.requests for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.wrk.errors for run in self.runs)

    def problems(self) -> list[str]:
        return [f"round {run.round}: {p}" for run in self.runs for p in run.problems()]

    def notes(self) -> list[str]:
        return [f"round {run.round}: {n}" for run in self.runs for n in run.notes()]

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_per_sec": self.requests_per_sec,
            "latency_p50_us": self.p50_us,
            "latency_p99_us": self.p99_us,
            "cpu_us_per_request": self.cpu_us_per_request,
            "proxy_utilisation": self.proxy_utilisation,
            "rss_kb": self.rss_kb,
            "requests": self.requests,
            "errors": self.errors,
            "problems": self.problems(),
            "notes": self.notes(),
            "runs": [run.to_json() for run in self.runs],
        }


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def ratios(target: TargetSummary, baseline: TargetSummary) -> dict[str, float | None]:
    """The target's medians over the baseline's (same scenario, same run)."""
    return {
        "requests_per_sec": ratio(target.requests_per_sec, baseline.requests_per_sec),
        "latency_p50": ratio(target.p50_us, baseline.p50_us),
        "latency_p99": ratio(target.p99_us, baseline.p99_us),
        "cpu_us_per_request": ratio(target.cpu_us_per_request, baseline.cpu_us_per_request),
    }


def goal_result(min_ratio: float, got: float | None, baseline: str = BASELINE
                ) -> dict[str, Any]:
    """A scenario's requests/s goal (at least ``min_ratio`` of the baseline's) against
    the ratio measured (None: not measured, so not met)."""
    return {"metric": "requests_per_sec", "vs": baseline, "min_ratio": min_ratio,
            "ratio": got, "met": got is not None and got >= min_ratio}


def describe_goal(target: str, goal: Mapping[str, Any]) -> str:
    got = "not measured" if goal["ratio"] is None else _fmt_ratio(goal["ratio"])
    verdict = "met" if goal["met"] else "MISSED"
    return (f"goal: {target} req/s >= {goal['min_ratio']:.2f}x {goal['vs']}: "
            f"{got}, {verdict}")


def format_latency(us: float | None) -> str:
    if us is None:
        return "-"
    if us < 1e3:
        return f"{us:.0f}us"
    if us < 1e6:
        return f"{us / 1e3:.2f}ms"
    return f"{us / 1e6:.2f}s"


def format_rss(kb: float | None) -> str:
    """A resident set in kB as MB ("-" when not measured)."""
    return "-" if kb is None else f"{kb / 1024:.0f}MB"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_table(summaries: Sequence[TargetSummary], baseline: str = BASELINE,
                 peer: str = PEER) -> str:
    """The per-scenario table: medians, and each value over the baseline's as a ratio.

    When the peer (HAProxy) is among the targets, requests/s and CPU µs/request get
    a second ratio column, over the peer's: fastgate beside the peer doing the same
    work, not only beside nginx's plain proxy.
    """
    base = next((s for s in summaries if s.target == baseline), None)
    other = next((s for s in summaries if s.target == peer), None)
    if other is None:
        header: tuple[str, ...] = ("target", "req/s", "ratio", "p50", "p99", "ratio",
                                   "CPU us/req", "ratio", "proxy CPU", "RSS", "errors")
    else:
        header = ("target", "req/s", f"x {baseline}", f"x {peer}", "p50", "p99",
                  f"x {baseline}", "CPU us/req", f"x {baseline}", f"x {peer}", "proxy CPU",
                  "RSS", "errors")
    rows = [header]
    for summary in summaries:
        r = ratios(summary, base) if base is not None else {}
        q = ratios(summary, other) if other is not None else {}
        req = [_fmt(summary.requests_per_sec, ",.0f"), _fmt_ratio(r.get("requests_per_sec"))]
        cpu = [_fmt(summary.cpu_us_per_request, ".1f"), _fmt_ratio(r.get("cpu_us_per_request"))]
        if other is not None:
            req.append(_fmt_ratio(q.get("requests_per_sec")))
            cpu.append(_fmt_ratio(q.get("cpu_us_per_request")))
        rows.append((
            summary.target,
            *req,
            format_latency(summary.p50_us),
            format_latency(summary.p99_us),
            _fmt_ratio(r.get("latency_p99")),
            *cpu,
            _fmt(summary.proxy_utilisation, ".0%"),
            format_rss(summary.rss_kb),
            str(summary.errors),
        ))
    return _render_table(rows)


#: The latency target of issue 14: fastgate's p99 at most this much over nginx's,
#: both paced at the same rate.
P99_ADDED_GOAL_US = 1000.0


def paced_summary(runs: Sequence[RunMeasurement], baseline: str = BASELINE,
                  target: str = "fastgate") -> dict[str, Any]:
    """The paced latency runs of one scenario (one per target, same rate): each
    target's rate and percentiles, and ``target``'s p99 over ``baseline``'s, against
    ``P99_ADDED_GOAL_US``."""
    by_target = {run.target: run for run in runs}
    result: dict[str, Any] = {
        "rate": runs[0].target_rate if runs else None,
        "targets": {run.target: {"requests_per_sec": run.wrk.requests_per_sec,
                                 "latency_us": dict(run.paced_latency_us or {}),
                                 "cpu_us_per_request": run.cpu_us_per_request,
                                 "proxy_rss_kb": run.proxy_rss_kb,
                                 "errors": run.wrk.errors}
                    for run in runs},
    }
    ours, base = by_target.get(target), by_target.get(baseline)
    if ours is not None and base is not None:
        p99 = (ours.paced_latency_us or {}).get("p99")
        p99_base = (base.paced_latency_us or {}).get("p99")
        added = p99 - p99_base if p99 is not None and p99_base is not None else None
        result["p99_added_us"] = added
        result["goal"] = {"metric": "p99_added_us", "vs": baseline,
                          "max_us": P99_ADDED_GOAL_US, "added_us": added,
                          "met": added is not None and added <= P99_ADDED_GOAL_US}
    return result


def render_paced_table(summary: Mapping[str, Any]) -> str:
    """The paced runs' table: rate reached and p50 to p99.99 per target."""
    names = ("p50", "p90", "p99", "p99.9", "p99.99")
    rows: list[tuple[str, ...]] = [("target", "req/s", *names, "CPU us/req", "RSS", "errors")]
    for name, data in summary["targets"].items():
        lat = data["latency_us"]
        rows.append((name, _fmt(data["requests_per_sec"], ",.0f"),
                     *(format_latency(lat.get(p)) for p in names),
                     _fmt(data["cpu_us_per_request"], ".1f"),
                     format_rss(data["proxy_rss_kb"]), str(data["errors"])))
    return _render_table(rows)


def describe_paced_goal(summary: Mapping[str, Any], target: str = "fastgate") -> str | None:
    """``goal: fastgate p99 - nginx p99 <= 1.00ms at N req/s: ..., met``, or None."""
    goal = summary.get("goal")
    if goal is None:
        return None
    added = goal["added_us"]
    got = "not measured" if added is None else f"{added / 1e3:+.2f}ms"
    return (f"goal: {target} p99 - {goal['vs']} p99 <= {goal['max_us'] / 1e3:.2f}ms at "
            f"{summary['rate']:,.0f} req/s: {got}, {'met' if goal['met'] else 'MISSED'}")


def _render_table(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (the header first) as aligned text: the first column left,
    the others right, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
