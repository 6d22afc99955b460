"""Prometheus /metrics: values after known traffic, parsed with prometheus-client.

Real gateway processes, real sockets, the echo upstream; a real redis-server
for the Redis counters and for several workers (whose samples are merged).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

ORG = "test-org"


def scrape(gw: Any, *, port: int | None = None, headers: dict[str, str] | None = None
           ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as {(sample name, sorted labels): value}."""
    url = f"http://127.0.0.1:{port or gw.port}/metrics"
    resp = requests.get(url, headers={"X-Tyk-Authorization": gw.secret}
                        if headers is None else headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(item in ls for item in labels.items()))


def add_key(gw: Any, api_id: str, **fields: Any) -> str:
    body = {"org_id": ORG, "rate": 1000, "per": 1, "quota_max": -1,
            "access_rights": {api_id: {"api_id": api_id, "versions": ["Default"]}}}
    body.update(fields)
    resp = requests.post(gw.url("/tyk/keys/create"), json=body, timeout=10,
                         headers={"X-Tyk-Authorization": gw.secret})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["key"])


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gw(gateway_factory, make_api, echo):
    return gateway_factory(apis=[
        make_api("open", "/open/", echo.base_url),
        make_api("keyed", "/keyed/", echo.base_url, use_keyless=False,
                 use_standard_auth=True),
        make_api("dead", "/dead/", f"http://127.0.0.1:{dead_port()}"),
    ])


def test_requests_latency_and_refusals_after_known_traffic(gw):
    for _ in range(3):
        assert requests.get(gw.url("/open/a"), timeout=10).status_code == 200
    for _ in range(2):
        assert requests.post(gw.url("/open/b"), data=b"x" * 10, timeout=10).status_code == 200
    assert requests.get(gw.url("/keyed/x"), timeout=10).status_code == 401
    assert requests.get(gw.url("/keyed/x"), headers={"Authorization": "no-such-key"},
                        timeout=10).status_code == 403
    key = add_key(gw, "keyed", rate=1, per=60)
    assert requests.get(gw.url("/keyed/x"), headers={"Authorization": key},
                        timeout=10).status_code == 200
    assert requests.get(gw.url("/keyed/x"), headers={"Authorization": key},
                        timeout=10).status_code == 429
    assert requests.get(gw.url("/nowhere"), timeout=10).status_code == 404
    assert requests.get(gw.url("/dead/"), timeout=10).status_code == 502

    samples = scrape(gw)
    req = "fastgate_requests_total"
    assert value(samples, req, api_id="open", method="GET", status_class="2xx") == 3
    assert value(samples, req, api_id="open", method="POST", status_class="2xx") == 2
    assert value(samples, req, api_id="keyed", method="GET", status_class="4xx") == 3
    assert value(samples, req, api_id="keyed", method="GET", status_class="2xx") == 1
    assert value(samples, req, api_id="dead", method="GET", status_class="5xx") == 1
    assert value(samples, req, api_id="", method="GET", status_class="4xx") >= 1  # /nowhere
    # Histograms: one observation per answer; upstream time only when proxied.
    duration = "fastgate_request_duration_seconds"
    assert value(samples, duration + "_count", api_id="open") == 5
    assert value(samples, duration + "_bucket", api_id="open", le="+Inf") == 5
    assert 0 < value(samples, duration + "_sum", api_id="open") < 5
    assert value(samples, "fastgate_upstream_duration_seconds_count", api_id="open") == 5
    assert value(samples, "fastgate_upstream_duration_seconds_count", api_id="keyed") == 1
    assert value(samples, "fastgate_gateway_duration_seconds_count", api_id="keyed") == 4
    # Cumulative buckets never decrease.
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                     if name == duration + "_bucket" and dict(labels)["api_id"] == "open")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    # Refusals, by step and reason (Tyk's messages).
    assert value(samples, "fastgate_refused_total", api_id="keyed", step="auth_token") == 2
    assert value(samples, "fastgate_refused_total", api_id="keyed", step="session_limits") == 1
    assert value(samples, "fastgate_auth_failures_total", api_id="keyed",
                 auth_method="auth_token", reason="Authorization field missing") == 1
    assert value(samples, "fastgate_auth_failures_total", api_id="keyed",
                 auth_method="auth_token", reason="Access to this API has been disallowed"
                 ) + value(samples, "fastgate_auth_failures_total", api_id="keyed",
                           auth_method="auth_token", reason="Key not authorised") == 1
    assert value(samples, "fastgate_limit_refusals_total", api_id="keyed", limit="rate") == 1
    assert total(samples, "fastgate_limit_refusals_total", limit="quota") == 0
    # The session cache was asked; the upstream pools counted.
    assert total(samples, "fastgate_cache_lookups_total", cache="session") >= 3
    failures = total(samples, "fastgate_upstream_connect_failures_total")
    assert failures == 1
    assert total(samples, "fastgate_upstream_connects_total") >= 2
    assert value(samples, "fastgate_api_info", api_id="open", api_name="API open",
                 listen_path="/open/") == 1
    assert value(samples, "fastgate_workers") == 1
    assert value(samples, "fastgate_client_connections") >= 1  # this scrape's own


def test_metrics_needs_the_secret_on_the_gateway_port(gw):
    assert requests.get(gw.url("/metrics"), timeout=10).status_code == 403
    assert requests.get(gw.url("/metrics"), headers={"X-Tyk-Authorization": "wrong"},
                        timeout=10).status_code == 403
    bearer = requests.get(gw.url("/metrics"), timeout=10,
                          headers={"Authorization": f"Bearer {gw.secret}"})
    assert bearer.status_code == 200 and "fastgate_requests_total" in bearer.text
    assert requests.post(gw.url("/metrics"), headers={"X-Tyk-Authorization": gw.secret},
                         timeout=10).status_code == 405


def test_openmetrics_on_request(gw):
    requests.get(gw.url("/open/a"), timeout=10)
    resp = requests.get(gw.url("/metrics"), timeout=10, headers={
        "X-Tyk-Authorization": gw.secret,
        "Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(resp.text)}
    requests_family = families["fastgate_requests"]
    assert requests_family.type == "counter"
    got = {tuple(sorted(s.labels.items())): s.value for s in requests_family.samples
           if s.name == "fastgate_requests_total"}
    assert got[(("api_id", "open"), ("method", "GET"), ("status_class", "2xx"))] == 1
    assert families["fastgate_request_duration_seconds"].type == "histogram"


def test_control_port_serves_metrics_and_the_gateway_port_does_not(gateway_factory,
                                                                    make_api, echo,
                                                                    free_port):
    control = free_port()
    gw = gateway_factory(apis=[make_api("open", "/", echo.base_url)],
                         control_api_port=control)
    requests.get(gw.url("/open"), timeout=10)
    samples = scrape(gw, port=control, headers={})  # no secret needed there
    assert value(samples, "fastgate_requests_total", api_id="open", method="GET",
                 status_class="2xx") == 1
    # On the API port /metrics is an API path like any other (here: the echo).
    resp = requests.get(gw.url("/metrics"), timeout=10)
    assert resp.status_code == 200 and "fastgate_requests_total" not in resp.text


def test_metrics_off(gateway_factory, make_api, echo):
    gw = gateway_factory(apis=[make_api("open", "/open/", echo.base_url)],
                         prometheus={"enabled": False})
    resp = requests.get(gw.url("/metrics"), headers={"X-Tyk-Authorization": gw.secret},
                        timeout=10)
    assert resp.status_code == 404


def test_custom_path_and_buckets(gateway_factory, make_api, echo):
    gw = gateway_factory(apis=[make_api("open", "/open/", echo.base_url)],
                         prometheus={"path": "/stats", "latency_buckets": [0.5, 30]})
    requests.get(gw.url("/open/"), timeout=10)
    resp = requests.get(gw.url("/stats"), headers={"X-Tyk-Authorization": gw.secret},
                        timeout=10)
    assert resp.status_code == 200
    les = {s.labels["le"] for f in text_string_to_metric_families(resp.text)
           for s in f.samples if s.name == "fastgate_request_duration_seconds_bucket"}
    assert les == {"0.5", "30.0", "+Inf"}


def test_reloads_counted(gw):
    assert gw.reload().status_code == 200
    gw.write_api_text("broken.json", "{ not json")
    assert gw.reload().status_code != 200
    samples = scrape(gw)
    assert value(samples, "fastgate_reloads_total", result="ok") >= 1
    assert value(samples, "fastgate_reloads_total", result="failed") == 1


@pytest.mark.redis
def test_redis_counters_and_two_workers_merged(gateway_factory, make_api, echo, redis_flush):
    gw = gateway_factory(
        apis=[make_api("keyed", "/keyed/", echo.base_url, use_keyless=False,
                       use_standard_auth=True)],
        storage={"type": "redis", "host": redis_flush.host, "port": redis_flush.port},
        workers=2, rate_limiter="redis", prometheus={"merge_interval": 0.2})
    key = add_key(gw, "keyed", rate=10000, per=1)
    sent = 40
    for _ in range(sent):
        # A new connection each time: the kernel spreads them over both workers.
        resp = requests.get(gw.url("/keyed/"), headers={"Authorization": key,
                                                         "Connection": "close"}, timeout=10)
        assert resp.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(gw)
        got = value(samples, "fastgate_requests_total", api_id="keyed", method="GET",
                    status_class="2xx")
        if got == sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == sent
    assert value(samples, "fastgate_workers") == 2
    assert value(samples, "fastgate_request_duration_seconds_count", api_id="keyed") == sent
    assert value(samples, "fastgate_redis_decisions_total") >= sent
    assert value(samples, "fastgate_redis_roundtrip_seconds_count") >= 1
    assert value(samples, "fastgate_redis_errors_total") == 0


@pytest.mark.parametrize(("section", "field", "fragment"), [
    ({"prometheus": {"path": "/tyk/metrics"}}, "prometheus.path", "outside /tyk/"),
    ({"prometheus": {"path": "metrics"}}, "prometheus.path", "absolute"),
    ({"prometheus": {"latency_buckets": [1, 0.5]}}, "prometheus.latency_buckets",
     "increasing"),
    ({"prometheus": {"latency_buckets": []}}, "prometheus.latency_buckets", "non-empty"),
    ({"prometheus": {"enabled": "yes"}}, "prometheus.enabled", "true or false"),
])
def test_bad_metrics_settings_name_the_field(tmp_path, section, field, fragment):
    from fastgate.config import ConfigError, parse_gateway_config

    with pytest.raises(ConfigError) as err:
        parse_gateway_config({"secret": "s", **section}, str(tmp_path / "tyk.conf"))
    assert field in str(err.value) and fragment in str(err.value)
    assert str(tmp_path / "tyk.conf") in str(err.value)


def test_merge_sums_counters_and_histograms_and_keeps_the_largest_info():
    from fastgate.observability.metrics import Family, merge, render

    one = [Family("x_total", "counter", "h", [((("a", "1"),), 2)]),
           Family("h_seconds", "histogram", "h", [((), ([1, 0, 2], 0.5))], (0.1, 1.0)),
           Family("fastgate_info", "gauge", "h", [((("version", "v"),), 1)])]
    two = [Family("x_total", "counter", "h", [((("a", "1"),), 3), ((("a", "2"),), 1)]),
           Family("h_seconds", "histogram", "h", [((), ([0, 4, 1], 1.5))], (0.1, 1.0)),
           Family("fastgate_info", "gauge", "h", [((("version", "v"),), 1)])]
    text = render(merge([one, two])).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("x_total", (("a", "1"),))] == 5
    assert samples[("x_total", (("a", "2"),))] == 1
    assert samples[("h_seconds_bucket", (("le", "0.1"),))] == 1
    assert samples[("h_seconds_bucket", (("le", "1.0"),))] == 5
    assert samples[("h_seconds_bucket", (("le", "+Inf"),))] == 8
    assert samples[("h_seconds_count", ())] == 8
    assert samples[("h_seconds_sum", ())] == 2.0
    assert samples[("fastgate_info", (("version", "v"),))] == 1


def test_label_values_are_escaped():
    from fastgate.observability.metrics import Family, render

    text = render([Family("r_total", "counter", "h",
                          [((("reason", 'a "b"\\\nc'),), 1)])]).decode()
    [family] = text_string_to_metric_families(text)
    assert family.samples[0].labels["reason"] == 'a "b"\\\nc'
