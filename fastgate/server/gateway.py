"""The gateway process: configuration in service, listener, reload, shutdown.

A :class:`Gateway` holds what every connection reads: the router of compiled
API routes (swapped whole on reload, so requests in flight keep the route
they started with), the upstream pools, and the timeouts.  One gateway runs
per worker process; with ``workers > 1`` a small supervisor forks the
workers, which share the port through ``SO_REUSEPORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson

from fastgate import responses
from fastgate._core.proxy import (
    SERVE_ALL,
    SERVE_APIS,
    SERVE_CONTROL,
    ClientProtocol,
    Route,
    Router,
    UpstreamPool,
)
from fastgate.apidef import ApiSpec, load_api_definitions
from fastgate.auth.jwt.jwks import JwksCache
from fastgate.auth.oauth2.model import CLIENT_EVENT, OAuthStore
from fastgate.config import ConfigError, GatewayConfig
from fastgate.limits import Limiter
from fastgate.middleware.chain import build_chain
from fastgate.middleware.mtls import allowed_cas
from fastgate.observability import Observability
from fastgate.observability.metrics import Family
from fastgate.outbound import HttpClient
from fastgate.plugins.bundles import BundleCache, BundleError, wanted_bundle
from fastgate.plugins.runtime import plugin_files
from fastgate.policies import load_policies
from fastgate.server.tls import ServerTls
from fastgate.server.upstream_tls import UpstreamTls
from fastgate.services import Services
from fastgate.session.cache import SessionCache
from fastgate.storage import create_store
from fastgate.storage.base import Store, StoreError
from fastgate.storage.certificates import EVENT_CERTS, CertificateCache

log = logging.getLogger("fastgate")

#: Sweeper period in seconds: timeouts are precise to one tick.
TICK = 0.25
#: The listening sockets' accept queue (the kernel caps it at net.core.somaxconn):
#: a burst of new connections waits there instead of being reset.
LISTEN_BACKLOG = 4096
#: Descriptors kept back from max_connections' default for upstream
#: connections, the store, listeners and files.
RESERVED_DESCRIPTORS = 256
#: Seconds between two "max_connections reached" warnings.
CAPACITY_WARNING_INTERVAL = 10.0
#: Seconds between a worker's checks that its supervisor is alive.
ORPHAN_CHECK_INTERVAL = 1.0

#: Seconds a closing TLS connection waits for the client's close_notify.
TLS_SHUTDOWN_TIMEOUT = 1.0

ExchangeHook = Callable[[Any], None]
#: Tasks of a worker's own that nothing else holds a reference to.
_BACKGROUND: set[asyncio.Task[None]] = set()


class Gateway:
    """Configuration in service and the connections it serves."""

    def __init__(self, config: GatewayConfig, loop: asyncio.AbstractEventLoop, *,
                 worker_id: int = 0, metrics_dir: str | None = None) -> None:
        from fastgate.admin import AdminApi

        self.config = config
        self.loop = loop
        opts = config.http_server_options
        self.max_header_bytes = opts.max_header_bytes
        self.read_ticks = _ticks(opts.read_timeout)
        self.write_ticks = _ticks(opts.write_timeout)
        self.idle_ticks = _ticks(opts.idle_timeout)
        self.header_ticks = _ticks(opts.read_header_timeout)
        self.linger_ticks = _ticks(opts.lingering_time)
        self.linger_idle_ticks = _ticks(opts.lingering_timeout)
        self.linger_max_bytes = opts.lingering_max_bytes
        self.upstream_ticks = _ticks(config.proxy_default_timeout)
        #: The sweeper's tick count (connections measure their deadlines in it).
        self.tick = 0
        self.max_connections = opts.max_connections or default_max_connections()
        self._capacity_warned = -math.inf
        self.connections: set[ClientProtocol] = set()
        #: Called with every Exchange once it has ended (fastgate._core.proxy,
        #: rule 8): the one place metrics and analytics hang off.  Set before
        #: start(); None costs the request path nothing.
        self.exchange_finished: ExchangeHook | None = None
        #: By (scheme, host, port) and, for https, the TLS settings' key.
        self.pools: dict[tuple[Any, ...], UpstreamPool] = {}
        self.router = Router(())
        self.specs: list[ApiSpec] = []
        #: (file, fingerprint) of each definition in service, taken when it was loaded.
        self._fingerprints: list[tuple[str, Any]] = []
        # Policies: from the policy files, and managed through the REST API
        # (kept in the store; they win over a file's policy of the same id).
        self.file_policies: dict[str, dict] = {}
        self.store_policies: dict[str, dict] = {}
        self.policies: dict[str, dict] = {}
        self.file_policy_ids: frozenset[str] = frozenset()
        self.store: Store = create_store(config.storage, timeout=config.storage.timeout)
        self.sessions = SessionCache(self.store, lambda: self.policies)
        self.limiter = Limiter(config, self.store)
        self.http = HttpClient()
        self.jwks = JwksCache(self.http, time.monotonic, ttl=config.jwks.cache_timeout,
                              fetch_timeout=config.jwks.fetch_timeout,
                              refetch_interval=config.jwks.refetch_interval)
        self.certificates = CertificateCache(self.store)
        self.oauth = OAuthStore(self.store, self.sessions, lambda: self.policies,
                                settings=config.oauth, hash_keys=config.hash_keys,
                                hash_key_function=config.hash_key_function)
        #: Plugin bundles under middleware_path (fetched before a load needs them).
        self.bundles = BundleCache(config.plugins)
        #: Allow-listed ids not in the certificate store (each logged once).
        self._missing_certificates: set[str] = set()
        #: What the middleware chains use (never this Gateway itself).
        self.services = Services(config=config, store=self.store, sessions=self.sessions,
                                 limiter=self.limiter, http=self.http,
                                 policies=lambda: self.policies, jwks=self.jwks,
                                 certificates=self.certificates, oauth=self.oauth,
                                 bundles=self.bundles)
        #: Metrics, analytics, access log, traces (the exchange-finished hook's
        #: consumers, :mod:`fastgate.observability`).
        self.observability = Observability(config, self.services, worker_id=worker_id,
                                           metrics_dir=metrics_dir)
        self.metrics = self.observability.metrics
        self.metrics.add_collector(self._collect_metrics)
        #: Reloads put in service and refused, for the metrics.
        self.reloads_ok = 0
        self.reloads_failed = 0
        for hook in self.observability.hooks():
            self.add_exchange_hook(hook)
        obs = config.observability
        #: What the listeners hand the admin API besides /hello (not on the
        #: API-only port when control_api_port is set): /tyk/..., /metrics,
        #: /dashboard/... .
        self.admin_prefixes: tuple[bytes, ...] = (
            (b"/tyk/", b"/dashboard/") if obs.dashboard.enabled else (b"/tyk/",))
        paths = set()
        if obs.metrics.enabled:
            paths.add(obs.metrics.path.encode())
        if obs.dashboard.enabled:
            paths.add(b"/dashboard")
        self.admin_paths: frozenset[bytes] = frozenset(paths)
        self.admin = AdminApi(self)
        self.shutting_down = False
        self.servers: list[asyncio.AbstractServer] = []
        self.on_reload: Callable[[], None] | None = None
        #: The listeners' certificates (``use_ssl``); made by load_tls().
        self.tls: ServerTls | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopped = asyncio.Event()

    # -- configuration -----------------------------------------------------------

    def load(self, definitions: Definitions | None = None) -> list[str]:
        """Read API definitions and policies (or take ``definitions``, from
        :func:`load_definitions`) and put them in service.

        Raises :class:`ConfigError` and leaves the configuration in service
        untouched when anything is wrong.  When the definitions and policies
        are those in service, nothing is rebuilt (``self.specs`` stays the
        same list) and nothing is returned.  Otherwise returns the warnings
        about the definitions that are new or changed since the last load:
        each is said once per change, not on every reload.
        """
        specs, policies = definitions if definitions is not None \
            else load_definitions(self.config)
        in_service = dict(self._fingerprints)
        fingerprints = [definition_fingerprint(spec, self.config.path) for spec in specs]
        if fingerprints == list(in_service.values()) \
                and orjson.dumps(policies) == orjson.dumps(self.file_policies):
            return []
        routes = [self._compile(spec) for spec in specs if spec.active]
        self.router = Router(routes)
        self.specs = specs
        self._fingerprints = [(spec.source, fp) for spec, fp in zip(specs, fingerprints,
                                                                    strict=True)]
        self.file_policies = policies
        self._merge_policies()
        self._close_unused_pools()
        warnings = []
        for spec, fingerprint in zip(specs, fingerprints, strict=True):
            if in_service.get(spec.source) != fingerprint:
                warnings += spec_warnings(spec)
        return warnings

    def bundles_to_fetch(self, specs: list[ApiSpec]) -> list[tuple[ApiSpec, str]]:
        """(API, ``custom_middleware_bundle``) of the active APIs whose bundle
        is not on disk yet, when the bundle downloader is on (off: nothing
        to download; loading them reports the missing bundle)."""
        if not self.config.plugins.enable_bundle_downloader:
            return []
        wanted = []
        for spec in specs:
            name = wanted_bundle(spec.raw) if spec.active else ""
            if name and not self.bundles.is_cached(name):
                wanted.append((spec, name))
        return wanted

    async def fetch_bundles(self, wanted: list[tuple[ApiSpec, str]]) -> None:
        """Download the bundles :meth:`bundles_to_fetch` listed.  Raises
        ConfigError naming the API's file, its ``custom_middleware_bundle``
        and the URL that failed."""
        for spec, name in wanted:
            try:
                await self.bundles.fetch(spec.api_id, name)
            except BundleError as exc:
                raise ConfigError(spec.source or "api", "custom_middleware_bundle",
                                  f"API {spec.api_id!r}: {exc}") from None

    async def load_first(self) -> list[str]:
        """The first load: the missing bundles downloaded, then :meth:`load`
        (nothing is served yet).  Raises ConfigError."""
        definitions = load_definitions(self.config)
        await self.fetch_bundles(self.bundles_to_fetch(definitions[0]))
        return self.load(definitions)

    def load_tls(self) -> None:
        """Load the listeners' certificates (``use_ssl``).  Raises ConfigError
        naming the field and file that fails."""
        options = self.config.http_server_options.tls
        if options.use_ssl:
            self.tls = ServerTls(options)

    async def load_stored_certificates(self) -> None:
        """(Re)read the listeners' ``ssl_certificates`` from the certificate store."""
        if self.tls is None or not self.tls.options.store_ids:
            return
        for problem in await self.tls.load_store(self.store, self.certificate_password()):
            log.error("%s", problem)

    def client_certificate_ids(self) -> list[str] | None:
        """The certificate-store ids of every static-mTLS allow-list in
        service (with ``security.certificates.apis``, and
        ``security.certificates.control_api`` for the REST API); None when
        nothing asks for client certificates (static mTLS, a method's
        ``use_certificate``: dynamic mTLS, ``control_api_use_mutual_tls``)."""
        ids: dict[str, None] = {}
        wanted = static = False
        for spec in self.specs:
            if not spec.active:
                continue
            if spec.client_certificates is not None:
                wanted = static = True
                ids.update(dict.fromkeys(spec.client_certificates))
            if any(getattr(settings, "use_certificate", False) for _, settings in spec.auth):
                wanted = True
        if self.config.control_api_use_mutual_tls:
            wanted = True
            ids.update(dict.fromkeys(self.config.control_api_certificates))
        if not wanted:
            return None
        if static:
            ids.update(dict.fromkeys(self.config.api_client_certificates))
        return list(ids)

    async def load_client_auth(self) -> None:
        """Make the listeners ask for client certificates when an API needs
        them, trusting the CAs of the allow-lists (at start, on reload and
        when a certificate changes)."""
        ids = self.client_certificate_ids()
        if self.tls is None:
            if ids is not None:
                log.warning("APIs with client certificates (use_mutual_tls_auth, "
                            "use_certificate) refuse every request: "
                            "http_server_options.use_ssl is off")
            return
        cas: list[bytes] | None = None
        if ids is not None:
            try:
                records = await self.certificates.get(ids)
            except StoreError as exc:
                log.error("client certificates not reloaded (the store is unavailable, "
                          "those in service stay): %s", exc)
                if self.tls.client_cas is None:
                    # Ask for certificates anyway: the APIs answer 503 until
                    # the store is back, not "certificate required".
                    self.tls.set_client_auth(())
                return
            missing = {cert_id for cert_id, record in zip(ids, records, strict=True)
                       if record is None}
            if missing - self._missing_certificates:
                log.warning("client_certificates not in the certificate store: %s",
                            ", ".join(sorted(missing - self._missing_certificates)))
            self._missing_certificates = missing
            cas = allowed_cas(records)
        problem = self.tls.set_client_auth(cas)
        if problem is not None:
            log.error("client certificate settings not applied, those in service stay: %s",
                      problem)

    def _in_background(self, work: Any) -> None:
        task = self.loop.create_task(work)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def reload(self) -> str | None:
        """Reload the listeners' certificates (files read again), API
        definitions and policies; the error message, or None.

        A reload that finds nothing changed says nothing (at info level): the
        "apis" event a REST API change publishes reaches this worker too,
        after the change was applied here, and SIGHUP or ``/tyk/reload``
        reach every worker of a node.

        When an API needs a plugin bundle that is not on disk yet, the bundle
        is downloaded first, in the background (None is returned at once),
        and the definitions then read again and put in service; a download
        that fails is logged and leaves the configuration in service as it
        was, like any other bad reload.
        """
        tls_error = self.tls.reload() if self.tls is not None else None
        if tls_error is not None:
            log.error("certificates not reloaded, those in service stay: %s", tls_error)
        if self.tls is not None and self.tls.options.store_ids:
            self._in_background(self.load_stored_certificates())
        try:
            definitions = load_definitions(self.config)
        except ConfigError as exc:
            self.reloads_failed += 1
            log.error("reload failed, the previous configuration stays in service: %s", exc)
            return str(exc)
        wanted = self.bundles_to_fetch(definitions[0])
        if wanted:
            self._in_background(self._reload_after_fetch(wanted, frozenset()))
            return tls_error
        return self._put_in_service(definitions) or tls_error

    async def _reload_after_fetch(self, wanted: list[tuple[ApiSpec, str]],
                                  tried: frozenset[str]) -> None:
        log.info("reload: downloading plugin bundles first: %s",
                 ", ".join(sorted({name for _, name in wanted})))
        try:
            await self.fetch_bundles(wanted)
            # Read again: the definitions may have changed during the download.
            definitions = load_definitions(self.config)
        except ConfigError as exc:
            self.reloads_failed += 1
            log.error("reload failed, the previous configuration stays in service: %s", exc)
            return
        tried = tried | {name for _, name in wanted}
        again = [(spec, name) for spec, name in self.bundles_to_fetch(definitions[0])
                 if name not in tried]
        if again:
            await self._reload_after_fetch(again, tried)
            return
        self._put_in_service(definitions)

    def _put_in_service(self, definitions: Definitions) -> str | None:
        """:meth:`load` for a reload, logged; the error message, or None."""
        in_service = self.specs
        try:
            warnings = self.load(definitions)
        except ConfigError as exc:
            self.reloads_failed += 1
            log.error("reload failed, the previous configuration stays in service: %s", exc)
            return str(exc)
        self.reloads_ok += 1
        if self.specs is in_service:  # load() changed nothing
            log.debug("reload: API definitions and policies unchanged")
            return None
        for warning in warnings:
            log.warning("%s", warning)
        self._in_background(self.load_client_auth())
        log.info("reloaded: %d APIs in service", len(self.router.routes))
        return None

    async def refresh_policies(self) -> None:
        """Re-read the policies kept in the store and apply them at once.

        Raises StoreError when the store cannot be read.
        """
        stored = await self.store.get_policies()
        policies: dict[str, dict] = {}
        for policy_id, data in stored.items():
            try:
                policy = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                log.error("stored policy %r is unreadable, ignored: %s", policy_id, exc)
                continue
            if isinstance(policy, dict):
                policies[policy_id] = policy
        self.store_policies = policies
        self._merge_policies()

    def _merge_policies(self) -> None:
        self.policies = {**self.file_policies, **self.store_policies}
        self.file_policy_ids = frozenset(self.file_policies)
        # Every effective session depends on the policies: recompute lazily.
        self.sessions.clear()

    def _on_store_event(self, event: str, payload: str) -> None:
        """A change made on any worker or node sharing the store."""
        if event == "session":
            self.sessions.invalidate(payload)
        elif event == "policies":
            self.loop.create_task(self._refresh_policies_logged())
        elif event == "apis":
            # Also this worker's own change, already applied: that reload
            # finds nothing new and says nothing.
            self.reload()
        elif event == EVENT_CERTS:
            self._certificates_changed()
        elif event == CLIENT_EVENT:
            self.oauth.forget_client(payload)
        elif event == "resync":
            # Notifications may have been lost: trust nothing cached.
            self.sessions.clear()
            self.oauth.forget_client()
            self._certificates_changed()
            self.loop.create_task(self._refresh_policies_logged())

    def _certificates_changed(self) -> None:
        """A certificate was added to or removed from the store: allow-lists
        and the listeners' certificates are read again."""
        self.certificates.clear()
        self._in_background(self.load_client_auth())
        if self.tls is not None and self.tls.options.store_ids:
            self._in_background(self.load_stored_certificates())

    async def _refresh_policies_logged(self) -> None:
        try:
            await self.refresh_policies()
        except StoreError as exc:
            log.error("cannot read policies from the store: %s", exc)

    def certificate_password(self) -> bytes:
        """The password of the certificate store's private keys."""
        config = self.config
        return (config.private_certificate_encoding_secret or config.secret).encode()

    def _compile(self, spec: ApiSpec) -> Route:
        tls = None
        key: tuple[Any, ...] = (spec.target_scheme, spec.target_host, spec.target_port)
        if spec.target_scheme == "https":
            tls = UpstreamTls(self.config.upstream_tls, spec.upstream_tls, spec.target_host,
                              spec.target_port, self.certificates, self.certificate_password())
            # APIs share a pool only when they speak TLS to it alike.
            key += tls.key
        pool = self.pools.get(key)
        if pool is None:
            pool = UpstreamPool(self.loop, spec.target_scheme, spec.target_host,
                                spec.target_port, self.config.max_idle_connections_per_host,
                                tls)
            self.pools[key] = pool
        refusal = None
        if spec.unsupported_auth:
            refusal = responses.error_response(
                501, "This API requires an authentication method or access control "
                     "fastgate does not implement yet: " + ", ".join(spec.unsupported_auth))
        return Route(
            spec,
            spec.listen_path_bytes,
            spec.strip_listen_path,
            spec.target_path.encode(),
            None if spec.preserve_host_header else spec.target_host_header.encode(),
            pool,
            refusal,
            None if refusal is not None else self._chain(spec),
        )

    def _chain(self, spec: ApiSpec) -> Any:
        """The API's chain; a plugin that fails in a way of its own (not a
        ConfigError) is a ConfigError too: the definition is refused, the
        configuration in service stays, and the reload is answered."""
        try:
            return build_chain(spec, self.services)
        except ConfigError:
            raise
        except Exception as exc:
            log.exception("building the chain of %s failed", spec.source or spec.api_id)
            raise ConfigError(spec.source, "", f"the API could not be built: "
                                               f"{type(exc).__name__}: {exc}") from None

    def _close_unused_pools(self) -> None:
        used = {id(route.pool) for route in self.router.routes}
        for key, pool in list(self.pools.items()):
            if id(pool) not in used:
                pool.close()
                del self.pools[key]

    # -- serving ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the store, then listen.  Raises OSError when the port is taken."""
        cfg = self.config
        self.store.subscribe(self._on_store_event)
        try:
            await self.store.start()
            await self.refresh_policies()
        except StoreError as exc:
            # Requests that need the store answer 503 until it is back; the
            # store reconnects by itself.
            log.error("session store unavailable at start: %s", exc)
        self.limiter.start()
        self.observability.start()
        await self.load_stored_certificates()
        await self.load_client_auth()
        listeners = [(cfg.listen_port, SERVE_APIS if cfg.control_api_port else SERVE_ALL)]
        if cfg.control_api_port:
            listeners.append((cfg.control_api_port, SERVE_CONTROL))
        tls = self.tls
        for port, mode in listeners:
            sock = bind_socket(cfg.listen_address, port, reuse_port=cfg.workers > 1)
            if tls is None:
                server = await self.loop.create_server(
                    functools.partial(ClientProtocol, self, mode), sock=sock,
                    backlog=LISTEN_BACKLOG)
            else:
                # A handshake is due as a request head is (read_header_timeout);
                # a closing connection waits for the client's close_notify at
                # most TLS_SHUTDOWN_TIMEOUT (nginx does not wait at all).
                server = await self.loop.create_server(
                    functools.partial(ClientProtocol, self, mode, True), sock=sock,
                    backlog=LISTEN_BACKLOG, ssl=tls.context,
                    ssl_handshake_timeout=cfg.http_server_options.read_header_timeout,
                    ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT)
            self.servers.append(server)
        self._sweeper = self.loop.call_later(TICK, self._sweep)

    def add_exchange_hook(self, hook: ExchangeHook) -> None:
        """Call ``hook(exchange)`` for every exchange that ends, after those
        already added.  Only before :meth:`start` (connections copy the hook)."""
        current = self.exchange_finished
        if current is None:
            self.exchange_finished = hook
            return

        def both(exchange: Any) -> None:
            current(exchange)
            hook(exchange)

        self.exchange_finished = both

    def _collect_metrics(self) -> list[Family]:
        """The gateway's own families: connections, upstream pools, reloads, APIs."""
        pools: list[tuple[Any, Any]] = []
        counters: dict[str, list[tuple[Any, Any]]] = {
            "connects": [], "connect_failures": [], "resets": [], "timeouts": []}
        for pool in self.pools.values():
            upstream = (("upstream", f"{pool.host}:{pool.port}"),)
            pools.append(((*upstream, ("state", "idle")), len(pool.idle)))
            pools.append(((*upstream, ("state", "busy")), len(pool.busy)))
            for name, samples in counters.items():
                samples.append((upstream, getattr(pool, name)))
        apis: list[tuple[Any, Any]] = [((("api_id", spec.api_id), ("api_name", spec.name),
                  ("listen_path", spec.listen_path)), 1) for spec in self.specs if spec.active]
        families = [
            Family("fastgate_client_connections", "gauge", "Client connections open.",
                   [((), len(self.connections))]),
            Family("fastgate_upstream_connections", "gauge",
                   "Upstream keep-alive connections, idle or busy.", pools),
            Family("fastgate_reloads_total", "counter",
                   "Reloads put in service (ok, also when nothing changed) or refused.",
                   [((("result", "ok"),), self.reloads_ok),
                    ((("result", "failed"),), self.reloads_failed)]),
            Family("fastgate_api_info", "gauge", "The APIs in service.", apis),
            Family("fastgate_workers", "gauge", "Worker processes serving.", [((), 1)]),
        ]
        helps = {"connects": "Upstream connections opened.",
                 "connect_failures": "Upstream connections that could not be opened.",
                 "resets": "Upstream connections that broke off under a request.",
                 "timeouts": "Upstream requests that timed out."}
        for name, samples in counters.items():
            families.append(Family(f"fastgate_upstream_{name}_total", "counter", helps[name],
                                   samples))
        return families

    def admit(self, conn: ClientProtocol) -> bool:
        """Count a new client connection in; False when ``max_connections`` are
        open and none of them is an idle keep-alive connection to close."""
        connections = self.connections
        if len(connections) >= self.max_connections and not self._make_room():
            now = time.monotonic()
            if now - self._capacity_warned >= CAPACITY_WARNING_INTERVAL:
                self._capacity_warned = now
                log.warning("max_connections (%d) reached and none is idle: new connections "
                            "get 503 (http_server_options.max_connections)",
                            self.max_connections)
            return False
        connections.add(conn)
        return True

    def _make_room(self) -> bool:
        """Close the longest-idle keep-alive connection, if there is one."""
        victim: ClientProtocol | None = None
        for conn in self.connections:
            if conn.idle() and (victim is None or conn.idle_ticks > victim.idle_ticks):
                victim = conn
        if victim is None:
            return False
        victim.close_idle()
        # Closing is asynchronous: stop counting it now.
        self.connections.discard(victim)
        return True

    def _sweep(self) -> None:
        self.tick += 1
        tick = self.tick
        for conn in list(self.connections):
            conn.check_timeouts(tick)
        upstream = self.upstream_ticks
        for pool in list(self.pools.values()):
            for uconn in list(pool.busy):
                uconn.check_timeout(upstream)
        self._sweeper = self.loop.call_later(TICK, self._sweep)

    async def shutdown(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close."""
        if self.shutting_down:
            return
        self.shutting_down = True
        log.info("shutting down: %d connections open", len(self.connections))
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + self.config.graceful_shutdown_timeout_duration
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for pool in self.pools.values():
            pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.limiter.close()  # leased quota given back before the store closes
        await self.observability.close()
        await self.jwks.close()
        await self.http.close()
        await self.store.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


#: API definitions and policies, as :func:`load_definitions` reads them.
Definitions = tuple[list[ApiSpec], dict[str, dict]]


def load_definitions(config: GatewayConfig) -> Definitions:
    """The API definitions and policies ``config`` points at.

    Raises :class:`ConfigError`; a missing ``app_path`` is blamed on the
    config file's field, not on the directory nobody created.
    """
    if not os.path.isdir(config.app_path):
        raise ConfigError(config.path, "app_path",
                          f"{config.app_path} is not a directory of API definitions")
    specs = load_api_definitions(config.app_path)
    policies = load_policies(config.policies, config.path)
    return specs, policies


def spec_warnings(spec: ApiSpec) -> list[str]:
    """What an operator must hear about an API definition when it goes into
    service: that it is refused (once, naming what it enables: its settings
    are not listed again as ignored), the Tyk fields fastgate ignores, and
    each unknown field with the closest known name."""
    where = spec.source or "api"
    api = f"API {spec.api_id!r}"
    warnings = []
    if spec.unsupported_auth:
        methods = ", ".join(spec.unsupported_auth)
        warnings.append(f"{where}: {api} is refused (its requests get 501): it enables "
                        f"{methods}, which fastgate does not implement yet")
    if spec.ignored_fields:
        ignored = ", ".join(spec.ignored_fields)
        warnings.append(f"{where}: {api}: fields not implemented yet, ignored: {ignored}")
    warnings.extend(f"{where}: {api}: {field}" for field in spec.unknown_fields)
    return warnings


def definition_fingerprint(spec: ApiSpec, config_path: str = "") -> tuple[Any, ...]:
    """What identifies a definition's content: its file and its JSON, exactly
    (``1`` and ``true`` differ), and the stamps (modification time, size) of
    the plugin files it reads outside bundles, so that a reload can tell
    what changed."""
    stamps = []
    for path in plugin_files(spec, config_path):
        try:
            stat = os.stat(path)
            stamps.append((path, stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((path, 0, -1))
    return spec.source, orjson.dumps(spec.raw), tuple(stamps)


def default_max_connections() -> int:
    """Client connections one worker may serve when ``max_connections`` is 0:
    what the descriptor limit leaves (each proxied request may hold an upstream
    connection too), after raising the soft limit to the hard one as Go does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(64, (soft - RESERVED_DESCRIPTORS) // 2)


def _ticks(seconds: float) -> int:
    if seconds <= 0:
        return sys.maxsize  # 0 disables the timeout, as in Go's http.Server
    return max(1, math.ceil(seconds / TICK))


def bind_socket(address: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket.  ``SO_REUSEPORT`` only for several workers, so
    that two unrelated gateways never silently share a port."""
    host = address or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


# -- process entry points --------------------------------------------------------


def run_worker(config: GatewayConfig, *, worker_id: int = 0, supervisor: int = 0,
               metrics_dir: str | None = None) -> int:
    """Run one gateway in this process until SIGTERM/SIGINT; the exit code.
    ``metrics_dir``: where the workers of one supervisor share their metrics."""
    import uvloop

    return uvloop.run(_serve(config, worker_id, supervisor, metrics_dir))


async def _serve(config: GatewayConfig, worker_id: int, supervisor: int = 0,
                 metrics_dir: str | None = None) -> int:
    loop = asyncio.get_running_loop()
    gateway = Gateway(config, loop, worker_id=worker_id, metrics_dir=metrics_dir)
    try:
        gateway.load_tls()
        warnings = await gateway.load_first()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    for warning in warnings:
        log.warning("%s", warning)
    try:
        await gateway.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.listen_address or "0.0.0.0",
                  config.listen_port, exc.strerror or exc)
        return 2
    # Everything loaded so far lives as long as the process: keep it out of
    # the cyclic collector's full passes (a pause on the request path).
    gc.collect()
    gc.freeze()
    if config.workers > 1:
        # Tell the supervisor, which tells every worker: /tyk/reload reloads all.
        # The pid the supervisor had when it forked this worker: if it is
        # already gone, getppid() would name another process.
        parent = supervisor or os.getppid()
        gateway.on_reload = lambda: os.kill(parent, signal.SIGHUP)
        # A supervisor killed outright (SIGKILL) cannot stop its workers: each
        # notices its parent is gone and stops by itself.
        watch = loop.create_task(_stop_when_orphaned(gateway, parent))
        _BACKGROUND.add(watch)
        watch.add_done_callback(_BACKGROUND.discard)
    loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(gateway.shutdown()))
    loop.add_signal_handler(signal.SIGINT, lambda: loop.create_task(gateway.shutdown()))
    loop.add_signal_handler(signal.SIGHUP, gateway.reload)
    log.info("worker %d listening on %s:%d with %d APIs", worker_id,
             config.listen_address or "0.0.0.0", config.listen_port,
             len(gateway.router.routes))
    await gateway.wait_stopped()
    return 0


async def _stop_when_orphaned(gateway: Gateway, parent: int) -> None:
    while not gateway.shutting_down:
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
        if os.getppid() != parent:
            log.error("the supervisor (pid %d) is gone; stopping", parent)
            await gateway.shutdown()
            return


def run_supervisor(config: GatewayConfig) -> int:
    """Fork ``config.workers`` workers sharing the port; restart any that dies;
    forward SIGHUP (reload) and SIGTERM/SIGINT (graceful stop)."""
    children: dict[int, int] = {}
    stopping = False

    supervisor = os.getpid()
    # The workers' metrics snapshots, merged by whichever answers a scrape.
    metrics_dir = tempfile.mkdtemp(prefix="fastgate-metrics-")

    def spawn(worker_id: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            code = 1
            try:
                code = run_worker(config, worker_id=worker_id, supervisor=supervisor,
                                  metrics_dir=metrics_dir)
            except BaseException:
                log.exception("worker %d failed", worker_id)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = worker_id

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for worker_id in range(config.workers):
        spawn(worker_id)
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker_id = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(status)
        if stopping or worker_id < 0:
            # A worker still starting when SIGTERM came dies of it: not a failure.
            if code not in (0, -signal.SIGTERM):
                exit_code = 1
            continue
        if code == 2:  # a configuration or listen error: restarting cannot help
            log.error("worker %d could not start; stopping", worker_id)
            forward(signal.SIGTERM, None)
            exit_code = 2
            continue
        log.error("worker %d exited with %d; restarting it", worker_id, code)
        time.sleep(0.1)
        spawn(worker_id)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code
