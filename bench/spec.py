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
from typing import Any

from bench import client

#: Written into API definitions and files wherever the upstream's URL belongs
#: (e.g. ``"target_url": UPSTREAM_URL``); replaced when the harness writes them.
UPSTREAM_URL = "{{upstream_url}}"

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
class WrkPlan:
    """What wrk runs: an optional Lua script (with arguments after ``--``) and the probe."""

    script: Path | None = None
    script_args: tuple[str, ...] = ()
    probe: Probe = Probe()


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
class Scenario:
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
