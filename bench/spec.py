"""What a benchmark scenario is.  The scenarios themselves are data in ``scenarios.py``.

A scenario says what fastgate is configured with (API definitions, extra gateway config,
extra files such as a policies file), what the nginx baseline does instead (its
``location`` blocks), and what wrk sends (a URL path, optionally a Lua script).  A setup
hook runs once fastgate is up and may prepare state through the gateway's REST API —
create 10,000 keys, say — and hand back a generated wrk script that uses them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import client

#: Written into API definitions and files wherever the upstream's URL belongs
#: (e.g. ``"target_url": UPSTREAM_URL``); replaced when the harness writes them.
UPSTREAM_URL = "{{upstream_url}}"

#: Written into API definitions wherever the bench client CA's certificate-store
#: id belongs (``client_certificates: [CLIENT_CA_ID]``).
CLIENT_CA_ID = "{{client_ca_id}}"

#: The nginx baseline's upstream block name (``proxy_pass http://bench_upstream;``).
NGINX_UPSTREAM = "bench_upstream"

#: nginx doing what fastgate does for a keyless API: proxy with keep-alive to the
#: upstream, Host rewritten to the target, X-Forwarded-* set.
PLAIN_PROXY_LOCATION = f"""
location / {{
    proxy_pass http://{NGINX_UPSTREAM};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
}}
"""


@dataclass(frozen=True)
class Probe:
    """One request sent to every target before the load: it must answer 2xx."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class RefusalProbe:
    """A request the named targets must refuse with the given status before the load
    (a peer that accepts everything would be a false comparison): e.g. a wrong key,
    ``{"haproxy": 403, "fastgate": 403}``.  Targets not named are not asked."""

    probe: Probe
    statuses: Mapping[str, int]


@dataclass(frozen=True)
class FeedRun:
    """What a ``WrkFeed`` made of one wrk run: facts for the JSON, and problems
    (reasons the run is no benchmark, e.g. a token the gateway had already seen)."""

    info: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Measure this run again (once): e.g. the pool ran out and has been grown since
    #: (the harness asks ``script_args`` anew).  A retried run's problems still count
    #: if the harness does not retry it.
    retry: bool = False


class WrkFeed(Protocol):
    """Per-run arguments for a wrk script that consumes a pool (of tokens, say).

    The harness asks ``script_args`` before every wrk run of a target (the warm-up
    is ``round_no`` 0) -- the proxies are all idle then, so a feed may grow its pool
    there -- and hands ``after_run`` wrk's stdout and requests/s when the run ends.
    A round's run whose ``FeedRun.retry`` is set is run once more.
    """

    def script_args(self, target: str, round_no: int, duration_s: int) -> tuple[str, ...]: ...

    def after_run(self, target: str, round_no: int, stdout: str,
                  requests_per_sec: float) -> FeedRun: ...


@dataclass(frozen=True)
class WrkPlan:
    """What wrk runs: an optional Lua script (with arguments after ``--``) and the probe.

    With a ``feed``, the script's arguments come from it, run by run, instead of
    ``script_args``.
    """

    script: Path | None = None
    script_args: tuple[str, ...] = ()
    probe: Probe = Probe()
    feed: WrkFeed | None = None


@dataclass
class SetupContext:
    """Handed to a scenario's setup hook once fastgate answers ``/hello``."""

    scenario: Scenario
    gateway_url: str
    secret: str
    upstream_url: str
    #: A private directory for generated files (Lua scripts, key lists); removed afterwards.
    work_dir: Path
    #: The plan the scenario's static fields give; a hook usually returns a modified copy.
    plan: WrkPlan

    def admin(self, method: str, path: str, body: Any = None) -> client.Response:
        """Call the gateway's REST API (``/tyk/...``) with the admin secret."""
        headers = {"X-Tyk-Authorization": self.secret}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return client.request(self.gateway_url, method, path, headers, data, timeout=30.0)


SetupHook = Callable[[SetupContext], WrkPlan]


@dataclass(frozen=True)
class PrepareContext:
    """Handed to a scenario's prepare hook before any proxy starts."""

    #: A private directory for generated files (keys, configs); removed afterwards.
    work_dir: Path
    #: A directory kept across runs for expensive artefacts (minted token pools).
    cache_dir: Path
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    wrk_threads: int


PrepareHook = Callable[["PrepareContext", "Scenario"], "Scenario"]


@dataclass(frozen=True)
class HaproxyPeer:
    """HAProxy doing the scenario's work as a second peer beside nginx.

    ``rules`` go into the frontend before the request is proxied (``""``: plain
    proxying, the same work as nginx's baseline); ``description`` says in the table
    and the JSON what HAProxy does.
    """

    description: str
    rules: str = ""


#: HAProxy as a plain reverse proxy (what nginx's PLAIN_PROXY_LOCATION does).
HAPROXY_PLAIN_PROXY = HaproxyPeer("plain proxy")


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario: what fastgate, nginx and HAProxy are given, what wrk sends."""

    name: str
    description: str
    #: Tyk Classic API definitions written to the gateway's ``app_path``, one file each.
    api_definitions: tuple[Mapping[str, Any], ...]
    #: Merged (recursively) over the harness's base gateway config.
    gateway_config: Mapping[str, Any] = field(default_factory=dict)
    #: Extra files, path relative to the gateway config's directory → text.
    files: Mapping[str, str] = field(default_factory=dict)
    #: The path wrk requests (a script may override it per request).
    path: str = "/"
    #: A Lua script under ``bench/wrk/`` (name only), or None for plain GETs.
    wrk_script: str | None = None
    probe: Probe = Probe()
    #: The baseline's ``location`` blocks inside nginx's ``server {}``.
    nginx_locations: str = PLAIN_PROXY_LOCATION
    setup: SetupHook | None = None
    #: Run fastgate on the redis store: the harness starts a redis-server
    #: (pinned with the load) and points storage at it.
    needs_redis: bool = False
    #: HAProxy as a second peer (None: no HAProxy row).  Its figures are printed
    #: beside fastgate's and fastgate's ratios to it are in the table and the JSON.
    haproxy: HaproxyPeer | None = None
    #: fastgate's requests/s should be at least this ratio of nginx's plain proxy in
    #: the same run (None: no goal).  Reported beside the table and in the JSON; a
    #: missed goal is not an error.
    rps_goal_vs_nginx: float | None = None
    #: Runs before the proxies start and returns the scenario to run (with its
    #: API definitions, files and HAProxy rules filled in): for material made at
    #: run time, such as signing keys and tokens.
    prepare: PrepareHook | None = None
    #: Clients speak TLS to the proxies: fastgate (``use_ssl``) and nginx terminate
    #: it with the same self-signed RSA-2048 certificate, TLS 1.2-1.3 and the same
    #: TLS 1.2 suites; the upstream stays plain HTTP.
    tls: bool = False
    #: Extra request headers wrk sends (``-H``), e.g. ``Connection: close``.
    wrk_headers: tuple[str, ...] = ()
    #: Static mTLS (needs ``tls``): the proxies require a client certificate
    #: issued by the bench's client CA -- nginx with ``ssl_verify_client on``,
    #: fastgate with ``use_mutual_tls_auth`` allowing that CA (its store id is
    #: ``CLIENT_CA_ID`` in the API definitions).  wrk cannot present one, so it
    #: reaches every target through the same HAProxy relay
    #: (``bench/haproxy/relay.cfg``),
    #: pinned with the load, which does.
    client_certificates: bool = False
    #: Requests that must be refused (by the targets each names) before the load.
    refusals: tuple[RefusalProbe, ...] = ()
