"""Seeing the traffic: the consumers of the exchange-finished hook.

Every exchange -- proxied, refused by a middleware, answered by the gateway
itself, or dropped when the connection went away -- ends in one place
(:meth:`fastgate._core.proxy.ClientProtocol._finished`), which calls the
gateway's hook with the :class:`~fastgate._core.proxy.Exchange`.  The
consumers hang off it:

* :mod:`.metrics` -- Prometheus ``/metrics`` (``prometheus`` section):
  counters and histograms by API, merged across workers at export.
* :mod:`.analytics` -- Tyk-Pump-compatible analytics records
  (``enable_analytics``, ``analytics_config``).
* :mod:`.access_log` -- JSON access lines (``access_logs``).
* :mod:`.tracing` -- W3C trace context sent upstream (a chain step) and
  spans exported over OTLP (``request_tracing``, ``opentelemetry``).
* :mod:`.dashboard` -- the live page at ``/dashboard/``.

What a consumer does per request is small (counter increments, a tuple
appended to a buffer); the expensive part (encoding, writing, exporting)
runs in batches off the request path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastgate.observability.metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastgate.config import GatewayConfig
    from fastgate.services import Services

__all__ = ["Observability"]

log = logging.getLogger("fastgate")


class Observability:
    """The consumers the configuration enables, built once per worker."""

    def __init__(self, config: GatewayConfig, services: Services, *,
                 worker_id: int = 0, metrics_dir: str | None = None) -> None:
        obs = config.observability
        self.config = config
        #: Always built (the counters other parts increment live here); the
        #: exchange hook and /metrics only with prometheus.enabled.
        self.metrics = Metrics(obs.metrics, worker_id=worker_id, metrics_dir=metrics_dir)
        self.analytics: Any = None
        if obs.analytics.enabled:
            from fastgate.observability.analytics import Analytics
            self.analytics = Analytics(config, services, self.metrics)
        self.access_log: Any = None
        if obs.access_logs.enabled:
            from fastgate.observability.access_log import AccessLog
            self.access_log = AccessLog(config, services)
            self.metrics.add_collector(self.access_log.collect)
        self.tracing: Any = None
        if obs.tracing.enabled:
            from fastgate.observability.tracing import Tracing
            self.tracing = Tracing(config, services, self.metrics)

    def hooks(self) -> list[Callable[[Any], None]]:
        """The exchange-finished hooks, in the order they run."""
        hooks: list[Callable[[Any], None]] = []
        if self.config.observability.metrics.enabled:
            hooks.append(self.metrics.exchange_finished)
        for consumer in (self.analytics, self.access_log, self.tracing):
            hook = getattr(consumer, "exchange_finished", None)
            if hook is not None:
                hooks.append(hook)
        return hooks

    def start(self) -> None:
        """Start the consumers' background work (on the running loop)."""
        self.metrics.start()
        for consumer in (self.analytics, self.access_log, self.tracing):
            if consumer is not None:
                consumer.start()

    async def close(self) -> None:
        """Flush what is buffered and stop (at shutdown)."""
        for consumer in (self.tracing, self.access_log, self.analytics, self.metrics):
            if consumer is None:
                continue
            try:
                await consumer.close()
            except Exception:
                # Never in the way of the shutdown itself.
                log.exception("closing %s failed", type(consumer).__name__)
