"""Prometheus metrics: counted in the exchange-finished hook, rendered when scraped.

Per exchange the hook -- :class:`fastgate._core.proxy.ExchangeCounter`,
compiled -- does a few integer increments on the API's :class:`ApiCounters`
(kept here by API id, remembered by the API's route on its first exchange):
the request by method and status class, and three latency histograms (total,
upstream, gateway-added: total minus upstream).
No label dict, no lock, no string work: labels exist only at export.  A
refused request (a chain step answered instead of the upstream) also counts
its refusal by ``(step, status, reason)``, the reason read from the refusal's
``{"error": ...}`` body; that path is the refused one, not the hot one.

Everything else is read when scraped: the caches' and Redis' counters
(:mod:`fastgate.stats`), and what the gateway and the other consumers
register with :meth:`Metrics.add_collector` (connections, upstream pools,
reloads, analytics, spans).

Several workers (``workers > 1``): each writes its samples into a snapshot
file in a directory the supervisor made, every ``merge_interval`` seconds;
the worker that answers a scrape renders its own samples, fresh, plus the
others' latest snapshots: counters and histograms are summed (a worker that
died keeps its last counts, so sums never go back), gauges are summed over
the workers alive (``*_info`` gauges take the largest value).

Exported (labels in braces):

* ``fastgate_requests_total{api_id,method,status_class}`` -- every answer,
  ``api_id=""`` for requests no API served (404, ``/tyk/``...),
  ``status_class`` ``1xx``-``5xx`` or ``none`` (the connection went away
  before an answer, or a status past 599).
* ``fastgate_request_duration_seconds{api_id}``,
  ``fastgate_upstream_duration_seconds{api_id}`` (request sent to response
  head), ``fastgate_gateway_duration_seconds{api_id}`` -- histograms.
* ``fastgate_refused_total{api_id,step}`` -- answers a chain step gave
  instead of the upstream; of them ``fastgate_auth_failures_total{api_id,
  auth_method,reason}`` (authentication and session checks) and
  ``fastgate_limit_refusals_total{api_id,limit}`` (``rate`` or ``quota``).
* ``fastgate_cache_lookups_total{cache,result}`` -- ``session``, ``jwt``,
  ``jwks``, ``introspection``; ``hit`` or ``miss``.
* ``fastgate_redis_decisions_total``, ``fastgate_redis_commands_total``,
  ``fastgate_redis_errors_total``, ``fastgate_redis_roundtrip_seconds``.
* from the gateway: ``fastgate_client_connections``,
  ``fastgate_upstream_connections{upstream,state}``,
  ``fastgate_upstream_{connects,connect_failures,resets,timeouts}_total{upstream}``,
  ``fastgate_reloads_total{result}``, ``fastgate_api_info{api_id,api_name,listen_path}``,
  ``fastgate_workers``, ``fastgate_info{version}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from fastgate import __version__, stats
from fastgate._core.proxy import COUNTED_METHODS, STATUS_CLASSES, ApiCounters, ExchangeCounter
from fastgate.auth import REGISTRY

if TYPE_CHECKING:
    from fastgate.config import MetricsConfig

__all__ = ["Family", "Metrics", "render"]

log = logging.getLogger("fastgate.metrics")

Labels = tuple[tuple[str, str], ...]


class Family(NamedTuple):
    """One metric family: ``kind`` is ``counter``, ``gauge`` or ``histogram``.

    Counter and gauge samples are ``(labels, value)``; a histogram's are
    ``(labels, (counts, sum))`` with ``counts`` per bucket of ``bounds`` (not
    cumulative) and one more past the last bound."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, Any]]
    bounds: tuple[float, ...] = ()


#: Methods counted by name; any other is ``OTHER``.
METHODS: tuple[bytes, ...] = COUNTED_METHODS
_METHOD_NAMES = (*(name.decode() for name in METHODS), "OTHER")
#: ``status // 100``: 0 is "none" (no answer was started).
_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_NCLASSES = len(_CLASSES)
assert _NCLASSES == STATUS_CLASSES

#: Chain steps whose refusals are authentication (or session) failures.
AUTH_STEPS: frozenset[str] = frozenset(
    {method.name for method in REGISTRY}
    | {"auth_token", "basic_auth", "jwt", "hmac", "http_message_signatures", "oauth2",
       "external_oauth", "mutual_tls", "auth_any", "custom", "session_checks"})
#: Chain steps whose refusals are rate limits and quotas.
LIMIT_STEPS: frozenset[str] = frozenset({"session_limits", "global_rate_limit"})
#: Distinct (step, status, reason) refusals kept per API; more are "other".
MAX_REASONS = 64


class Metrics:
    """This worker's counters and the ``/metrics`` answer."""

    def __init__(self, config: MetricsConfig, *, worker_id: int = 0,
                 metrics_dir: str | None = None) -> None:
        self.config = config
        self.bounds = config.latency_buckets
        self.worker_id = worker_id
        self.metrics_dir = metrics_dir
        self.apis: dict[str, ApiCounters] = {}
        #: The exchange-finished hook (compiled): counts into ``apis``.
        self.exchange_finished = ExchangeCounter(self.bounds, self._stats, self._refused)
        self.unrouted = self.exchange_finished.unrouted
        self._collectors: list[Callable[[], Iterable[Family]]] = []
        self._task: asyncio.Task[None] | None = None
        self._snapshot_path = (os.path.join(metrics_dir, f"worker-{os.getpid()}.json")
                               if metrics_dir else None)

    def _stats(self, api_id: str) -> ApiCounters:
        found = self.apis.get(api_id)
        if found is None:
            found = self.apis[api_id] = ApiCounters(api_id, len(self.bounds))
        return found

    def add_collector(self, collect: Callable[[], Iterable[Family]]) -> None:
        """Call ``collect()`` at every export for more families."""
        self._collectors.append(collect)

    # -- the request path ---------------------------------------------------------

    def _refused(self, api: ApiCounters, route: Any, status: int,
                 refused: tuple[str | None, bytes]) -> None:
        step, response = refused
        if step is None:
            steps = getattr(route.chain, "steps", ())
            step = steps[-1].name if steps else "chain"
        refusals = api.refusals
        key = (step, status, refusal_reason(response))
        count = refusals.get(key)
        if count is None and len(refusals) >= MAX_REASONS:
            key = (step, status, "other")
            count = refusals.get(key)
        refusals[key] = (count or 0) + 1

    # -- export ---------------------------------------------------------------------

    def families(self) -> list[Family]:
        """Every family this worker has, fresh."""
        out = self._api_families()
        out.extend(_stats_families())
        for collect in self._collectors:
            try:
                out.extend(collect())
            except Exception:
                log.exception("a metrics collector failed")
        out.append(Family("fastgate_info", "gauge", "The gateway's version.",
                          [((("version", __version__),), 1)]))
        return out

    def _api_families(self) -> list[Family]:
        bounds = self.bounds
        requests: list[tuple[Labels, Any]] = []
        total: list[tuple[Labels, Any]] = []
        upstream: list[tuple[Labels, Any]] = []
        gateway: list[tuple[Labels, Any]] = []
        refused: dict[Labels, int] = {}
        auth: dict[Labels, int] = {}
        limits: dict[Labels, int] = {}
        for api_id, api in list(self.apis.items()):
            by_api = (("api_id", api_id),)
            for index, count in enumerate(api.requests):
                if count:
                    method, status_class = divmod(index, _NCLASSES)
                    requests.append(((("api_id", api_id), ("method", _METHOD_NAMES[method]),
                                      ("status_class", _CLASSES[status_class])), count))
            if any(api.total):
                total.append((by_api, (list(api.total), api.sums[0])))
                gateway.append((by_api, (list(api.gateway), api.sums[2])))
            if any(api.upstream):
                upstream.append((by_api, (list(api.upstream), api.sums[1])))
            for (step, status, reason), count in list(api.refusals.items()):
                labels: Labels = (("api_id", api_id), ("step", step))
                refused[labels] = refused.get(labels, 0) + count
                if step in AUTH_STEPS:
                    labels = (("api_id", api_id), ("auth_method", step), ("reason", reason))
                    auth[labels] = auth.get(labels, 0) + count
                elif step in LIMIT_STEPS and status in (403, 429):
                    limit = "quota" if status == 403 else "rate"
                    labels = (("api_id", api_id), ("limit", limit))
                    limits[labels] = limits.get(labels, 0) + count
        return [
            Family("fastgate_requests_total", "counter",
                   "Requests answered, by API, method and status class.", requests),
            Family("fastgate_request_duration_seconds", "histogram",
                   "Seconds from the complete request head to the end of the answer.",
                   total, bounds),
            Family("fastgate_upstream_duration_seconds", "histogram",
                   "Seconds from sending the request upstream to the response head.",
                   upstream, bounds),
            Family("fastgate_gateway_duration_seconds", "histogram",
                   "Seconds the gateway added: total minus upstream time.", gateway, bounds),
            Family("fastgate_refused_total", "counter",
                   "Requests a chain step answered instead of the upstream.",
                   list(refused.items())),
            Family("fastgate_auth_failures_total", "counter",
                   "Requests refused by authentication or session checks, by reason.",
                   list(auth.items())),
            Family("fastgate_limit_refusals_total", "counter",
                   "Requests refused by a rate limit or a quota.", list(limits.items())),
        ]

    def export(self, accept: bytes | None = None) -> tuple[bytes, bytes]:
        """``(content type, body)`` of a scrape: OpenMetrics when ``accept``
        asks for it, else Prometheus' text format 0.0.4; with several
        workers, everyone's samples merged."""
        families = self.families()
        if self._snapshot_path is not None:
            self._write_snapshot(families)
            families = merge([families, *self._other_snapshots()])
        openmetrics = accept is not None and b"application/openmetrics-text" in accept
        if openmetrics:
            return (b"application/openmetrics-text; version=1.0.0; charset=utf-8",
                    render(families, openmetrics=True))
        return b"text/plain; version=0.0.4; charset=utf-8", render(families)

    # -- several workers --------------------------------------------------------------

    def start(self) -> None:
        """Write snapshots for the other workers (with a metrics directory)."""
        if self._snapshot_path is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._snapshots())

    async def close(self) -> None:
        """Stop writing snapshots; the last one is written (a worker that
        stops keeps its counts in the sums)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._write_snapshot(self.families())

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.config.merge_interval)
            try:
                self._write_snapshot(self.families())
            except Exception:
                log.exception("writing the metrics snapshot failed")

    def _write_snapshot(self, families: list[Family]) -> None:
        path = self._snapshot_path
        assert path is not None
        data = orjson.dumps({"pid": os.getpid(), "families": [list(f) for f in families]})
        temporary = path + ".tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("cannot write the metrics snapshot %s: %s", path, exc)

    def _other_snapshots(self) -> list[list[Family]]:
        directory = self.metrics_dir
        assert directory is not None
        out = []
        own = self._snapshot_path
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        for name in names:
            path = os.path.join(directory, name)
            if not name.endswith(".json") or path == own:
                continue
            try:
                with open(path, "rb") as file:
                    data = orjson.loads(file.read())
            except (OSError, orjson.JSONDecodeError):
                continue  # being replaced, or gone
            alive = _alive(int(data.get("pid", 0)))
            families = []
            for raw in data.get("families", ()):
                family = Family(raw[0], raw[1], raw[2],
                                [(tuple(tuple(pair) for pair in labels), value)
                                 for labels, value in raw[3]], tuple(raw[4]))
                if family.kind == "gauge" and not alive:
                    continue  # a dead worker's connections are gone
                families.append(family)
            out.append(families)
        return out


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def refusal_reason(response: bytes) -> str:
    """The ``error`` message of a refusal's JSON body (Tyk's shape), else the
    status line's reason."""
    head, _, body = response.partition(b"\r\n\r\n")
    if body[:1] == b"{" and len(body) <= 4096:
        try:
            message = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            message = None
        if isinstance(message, str) and message:
            return message[:200]
    status_line = head.partition(b"\r\n")[0]
    return status_line.partition(b" ")[2].partition(b" ")[2].decode("latin-1") or "unknown"


def _stats_families() -> list[Family]:
    caches: list[tuple[Labels, Any]] = []
    for name, cache in list(stats.CACHES.items()):
        caches.append(((("cache", name), ("result", "hit")), cache.hits))
        caches.append(((("cache", name), ("result", "miss")), cache.misses))
    redis = stats.REDIS
    out = [Family("fastgate_cache_lookups_total", "counter",
                  "Lookups of the gateway's caches, by cache and result.", caches)]
    if redis.decisions or redis.commands or redis.errors:
        out += [
            Family("fastgate_redis_decisions_total", "counter",
                   "Rate-limit and quota decisions sent to Redis.", [((), redis.decisions)]),
            Family("fastgate_redis_commands_total", "counter",
                   "Other calls to the Redis store.", [((), redis.commands)]),
            Family("fastgate_redis_errors_total", "counter",
                   "Redis calls that failed (error reply, timeout, lost connection).",
                   [((), redis.errors)]),
            Family("fastgate_redis_roundtrip_seconds", "histogram",
                   "Seconds from a write of pipelined decisions to its last reply.",
                   [((), (list(redis.rtt_counts), redis.rtt_sum))], stats.REDIS_BUCKETS),
        ]
    return out


def merge(sources: list[list[Family]]) -> list[Family]:
    """Families of several workers as one: samples with the same labels
    summed (histograms bucket by bucket), ``*_info`` gauges by their largest."""
    merged: dict[str, Family] = {}
    values: dict[str, dict[Labels, Any]] = {}
    for families in sources:
        for family in families:
            if family.name not in merged:
                merged[family.name] = family
                values[family.name] = {}
            into = values[family.name]
            for labels, value in family.samples:
                have = into.get(labels)
                if have is None:
                    into[labels] = (list(value[0]), value[1]) if family.kind == "histogram" \
                        else value
                elif family.kind == "histogram":
                    counts = have[0]
                    for index, count in enumerate(value[0]):
                        counts[index] += count
                    into[labels] = (counts, have[1] + value[1])
                elif family.name.endswith("_info"):
                    into[labels] = max(have, value)
                else:
                    into[labels] = have + value
    return [family._replace(samples=list(values[name].items()))
            for name, family in merged.items()]


def render(families: Iterable[Family], *, openmetrics: bool = False) -> bytes:
    """Families in Prometheus' text format (0.0.4), or OpenMetrics 1.0."""
    lines: list[str] = []
    for family in families:
        name = family.name
        base = name
        if openmetrics and family.kind == "counter" and name.endswith("_total"):
            base = name[:-6]  # OpenMetrics names the family without _total
        lines.append(f"# HELP {base} {_escape_help(family.help)}")
        lines.append(f"# TYPE {base} {family.kind}")
        if family.kind == "histogram":
            for labels, (counts, total) in family.samples:
                running = 0
                for bound, count in zip(family.bounds, counts, strict=False):
                    running += count
                    lines.append(f"{name}_bucket{_labels(labels, ('le', _number(bound)))} "
                                 f"{running}")
                running += counts[-1]
                lines.append(f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {running}")
                lines.append(f"{name}_sum{_labels(labels)} {_number(total)}")
                lines.append(f"{name}_count{_labels(labels)} {running}")
        else:
            for labels, value in family.samples:
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
    if openmetrics:
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode()


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, extra] if extra is not None else labels
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))
