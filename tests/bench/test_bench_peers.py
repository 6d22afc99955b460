"""The auth-token scenarios' HAProxy peer (a key map of the keys the setup made, a
stick-table rate limit), ``--workers`` in every generated config, the connection limits,
and the pacing script under a real wrk.

HAProxy and wrk run for real against a recording upstream; the setup hook creates its
keys through a real gateway's REST API.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The HAProxy helpers and the recording upstream of the JWT tests.
from test_bench_jwt import get, recorder, running_haproxy  # noqa: F401

from bench import keyauth, luagen, scenarios
from bench.harness import (
    BENCH_DIR,
    SBIN_PATH,
    Bench,
    Tools,
    connection_limits,
    parse_args,
    render_template,
)
from bench.processes import free_port
from bench.report import RunMeasurement, paced_summary, render_paced_table
from bench.spec import PrepareContext, SetupContext, WrkPlan
from bench.wrk_output import WrkResult

WRK = shutil.which("wrk", path=SBIN_PATH)
HAPROXY = shutil.which("haproxy", path=SBIN_PATH)
KEY_SCENARIOS = ("auth-token-10k", "auth-token-10k-ratelimit",
                 "auth-token-10k-observability-off", "auth-token-10k-observability-on",
                 "auth-token-limits-redis")


def prepared(name: str, work: Path):
    scenario = scenarios.by_name([name])[0]
    work.mkdir(parents=True, exist_ok=True)
    ctx = PrepareContext(work_dir=work, cache_dir=work, rounds=1, duration_s=1, warmup_s=0,
                         connections=4, wrk_threads=1)
    assert scenario.prepare is not None
    return scenario.prepare(ctx, scenario)


def bench_for(tmp_path: Path, upstream_port: int, *argv: str) -> Bench:
    bench = Bench.__new__(Bench)
    bench.settings = parse_args(list(argv))
    bench.upstream_url = f"http://127.0.0.1:{upstream_port}"
    bench.tmp = tmp_path
    bench.tools = Tools("wrk", "nginx", "taskset", "fastgate", 0, 1, cpus=(0, 1))
    bench.redis_port = 6399  # start_redis() answers this without starting one
    return bench


# ---------------------------------------------------------------- the key map peer


@pytest.mark.parametrize("name", KEY_SCENARIOS)
def test_key_scenarios_give_haproxy_the_map_and_their_limit(tmp_path, name):
    scenario = prepared(name, tmp_path / "prep")
    assert scenario.haproxy is not None and scenario.setup is not None
    map_path = tmp_path / "prep" / "keys.map"
    rules = scenario.haproxy.rules
    assert f"req.hdr(authorization),map({map_path}) -m found" in rules
    assert "deny_status 403" in rules
    limited = {"auth-token-10k-ratelimit": scenarios.LOCAL_RATE,
               "auth-token-limits-redis": scenarios.REDIS_RATE}.get(name)
    if limited is None:
        assert "stick-table" not in rules and "no hashing" in scenario.haproxy.description
    else:
        assert f"gt {limited} }}" in rules and "http_req_rate(1s)" in rules
        assert "track-sc0 req.hdr(authorization)" in rules
        assert f"{limited:,} per 1s" in scenario.haproxy.description
    # The keys' own limits match the peer's (fastgate must never refuse either).
    assert scenario.refusals == scenarios.KEY_REFUSALS


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
@pytest.mark.parametrize("name", ["auth-token-10k", "auth-token-10k-ratelimit"])
def test_key_peer_configs_are_valid(tmp_path, name):
    scenario = prepared(name, tmp_path / "prep")
    keyauth.write_key_map(tmp_path / "prep" / "keys.map", ["k1", "k2"])
    bench = bench_for(tmp_path, 9)
    conf = bench.write_haproxy_config(scenario, tmp_path / "haproxy", free_port())
    text = conf.read_text()
    assert "{{" not in text
    done = subprocess.run([HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
def test_key_map_peer_refuses_what_is_not_in_the_map(tmp_path, recorder):  # noqa: F811
    scenario = prepared("auth-token-10k", tmp_path / "prep")
    keys = [f"{n:032x}" for n in range(1, 4)]
    keyauth.write_key_map(tmp_path / "prep" / "keys.map", keys)
    port = free_port()
    conf = bench_for(tmp_path, recorder.server_address[1]).write_haproxy_config(
        scenario, tmp_path / "haproxy", port)
    with running_haproxy(conf, port, tmp_path / "haproxy.log"):
        assert [get(port, {"Authorization": key}) for key in keys] == [200, 200, 200]
        assert get(port, {"Authorization": scenarios.WRONG_KEY}) == 403
        assert get(port, {"Authorization": keys[0] + "x"}) == 403
        assert get(port, {"Authorization": keys[0][:-1]}) == 403
        assert get(port, {}) == 403
    assert recorder.seen == keys


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
def test_stick_table_peer_refuses_a_key_above_its_rate(tmp_path, recorder):  # noqa: F811
    keys = ["key-a", "key-b"]
    map_path = tmp_path / "keys.map"
    keyauth.write_key_map(map_path, keys)
    scenario = replace_peer(scenarios.by_name(["auth-token-10k"])[0], map_path, limit=3)
    port = free_port()
    conf = bench_for(tmp_path, recorder.server_address[1]).write_haproxy_config(
        scenario, tmp_path / "haproxy", port)
    with running_haproxy(conf, port, tmp_path / "haproxy.log"):
        statuses = [get(port, {"Authorization": "key-a"}) for _ in range(5)]
        other = get(port, {"Authorization": "key-b"})
        wrong = get(port, {"Authorization": "key-c"})
    assert statuses == [200, 200, 200, 429, 429]
    assert other == 200 and wrong == 403


def replace_peer(scenario, map_path: Path, limit: int):
    from dataclasses import replace

    from bench.spec import HaproxyPeer
    return replace(scenario, haproxy=HaproxyPeer(
        "t", keyauth.key_map_rules(map_path) + keyauth.rate_limit_rules(limit)))


def test_key_map_rejects_keys_haproxy_could_not_read(tmp_path):
    with pytest.raises(ValueError):
        keyauth.write_key_map(tmp_path / "m", ["a b"])
    with pytest.raises(ValueError):
        keyauth.write_key_map(tmp_path / "m", [""])
    with pytest.raises(ValueError):
        keyauth.rate_limit_rules(0)
    assert keyauth.write_key_map(tmp_path / "m", ["a", "b"]) == 2
    assert (tmp_path / "m").read_text() == "a 1\nb 1\n"


def test_setup_writes_the_keys_it_created_to_the_map(tmp_path, gateway_factory, echo,
                                                     monkeypatch):
    """The map holds exactly the raw keys wrk sends, and fastgate accepts them."""
    import http.client

    monkeypatch.setattr(scenarios, "AUTH_TOKEN_KEYS", 25)
    scenario = prepared("auth-token-10k-ratelimit", tmp_path / "prep")
    api = json.loads(json.dumps(scenario.api_definitions[0]).replace(
        "{{upstream_url}}", echo.base_url))
    gw = gateway_factory([api], **scenario.gateway_config)
    setup_dir = tmp_path / "setup"
    setup_dir.mkdir()
    assert scenario.setup is not None
    plan = scenario.setup(SetupContext(
        scenario=scenario, gateway_url=gw.url("").rstrip("/"), secret=gw.secret,
        upstream_url=echo.base_url, work_dir=setup_dir, plan=WrkPlan()))
    mapped = [line.split()[0] for line in
              (tmp_path / "prep" / "keys.map").read_text().splitlines()]
    assert plan.script is not None
    sent = [line.split('] = "', 1)[1].split('"', 1)[0]
            for line in plan.script.read_text().splitlines() if '["Authorization"]' in line]
    assert len(mapped) == 25 and mapped == sent
    assert plan.probe.headers == {"Authorization": mapped[0]}

    def status(headers: dict[str, str]) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        try:
            conn.request("GET", "/", headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    assert status({"Authorization": mapped[-1]}) == 200
    # The refusals the harness probes before the load, as fastgate answers them.
    for refusal in scenario.refusals:
        assert status(dict(refusal.probe.headers)) == refusal.statuses["fastgate"]


# ---------------------------------------------------------------- --workers


@pytest.mark.parametrize("workers", [1, 2])
def test_generated_configs_carry_the_worker_count(tmp_path, workers):
    bench = bench_for(tmp_path, 9, "--workers", str(workers))
    scenario = prepared("auth-token-10k-ratelimit", tmp_path / "prep")
    config = json.loads(bench.write_gateway_config(scenario, tmp_path / "gw", 8000).read_text())
    if workers == 1:
        assert "workers" not in config and config["storage"] == {"type": "memory"}
    else:
        assert config["workers"] == 2
        # fastgate refuses workers > 1 on the memory store.
        assert config["storage"] == {"type": "redis", "host": "127.0.0.1", "port": 6399}
    assert config["rate_limiter"] == "local"
    haproxy = bench.write_haproxy_config(scenario, tmp_path / "haproxy", 1).read_text()
    assert f"    nbthread {workers}\n" in haproxy
    nginx = render_template((BENCH_DIR / "nginx" / "proxy.conf").read_text(), {
        "prefix": "/p", "port": 1, "upstream_port": 2, "upstream_name": "u", "locations": "",
        "listen_ssl": "", "ssl": "", "workers": bench.settings.workers,
        **connection_limits(bench.settings.connections)})
    assert f"worker_processes {workers};" in nginx
    if workers == 2:
        assert bench.proxy_cpus == "0,1" and bench.shared_cores
        assert "sharing the 2 cores with the load" in bench.workers_note()
    else:
        assert bench.proxy_cpus == 0 and not bench.shared_cores
    assert bench.tools.pinned(bench.proxy_cpus, ["x"]) == ["taskset", "-c", str(
        bench.proxy_cpus), "x"]


def test_shared_cores_drop_the_per_core_notes():
    wrk = WrkResult(requests=100_000, duration_us=4e6, requests_per_sec=25_000, bytes_read=0)
    alone = RunMeasurement(target="fastgate", round=1, wrk=wrk, wall_s=4.0, proxy_cpu_s=2.0,
                           proxy_core_busy_s=3.9, load_core_busy_s=3.9)
    shared = RunMeasurement(target="fastgate", round=1, wrk=wrk, wall_s=4.0, proxy_cpu_s=2.0,
                            shared_cores=True)
    assert any("not saturated" in n for n in alone.notes())
    assert shared.notes() == [] and shared.to_json()["shared_cores"] is True


# ---------------------------------------------------------------- connections


def test_connection_limits_follow_connections(tmp_path):
    assert connection_limits(64) == {"worker_connections": 4096, "rlimit_nofile": 8192,
                                     "maxconn": 4096}
    limits = connection_limits(10_000)
    assert limits["worker_connections"] >= 10_000 + 1000 and limits["maxconn"] >= 10_000
    assert limits["rlimit_nofile"] >= 2 * limits["worker_connections"]
    bench = bench_for(tmp_path, 9, "--connections", "10000")
    conf = bench.write_haproxy_config(scenarios.by_name(["keyless"])[0],
                                      tmp_path / "haproxy", 1).read_text()
    assert conf.count(f"maxconn {limits['maxconn']}\n") == 2  # global and defaults


def test_the_harness_raises_its_file_limit_for_its_children():
    """raise_file_limit in a child interpreter (it changes the caller's limit): the
    processes it starts inherit a limit that holds 10,000 connections."""
    code = ("import resource, subprocess; from bench.harness import raise_file_limit; "
            "soft, _ = raise_file_limit(10000); "
            "out = subprocess.run(['sh', '-c', 'ulimit -n'], capture_output=True, text=True); "
            "print(soft, out.stdout.strip())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=BENCH_DIR.parent, timeout=30)
    if done.returncode != 0 and "cannot be raised" in done.stderr:
        pytest.skip("not allowed to raise the file limit here")
    assert done.returncode == 0, done.stderr
    soft, child = (int(v) for v in done.stdout.split())
    assert soft >= 11_024 and child == soft


# ---------------------------------------------------------------- pacing


def test_interval_and_paced_script():
    assert luagen.interval_ms(1000) == 1.0
    assert luagen.interval_ms(20_000, threads=2) == 0.1
    with pytest.raises(ValueError):
        luagen.interval_ms(0)
    text = luagen.paced_script(0.5, Path("/x/keys.lua"))
    assert text.index('dofile("/x/keys.lua")') < text.index("local inner_done = done")
    assert "local interval_ms = 0.5" in text and "function delay()" in text
    assert "clock_gettime(1, now_ts)" in text
    assert "latency:percentile(99.9)" in text and luagen.PACED_MARKER in text
    assert "dofile" not in luagen.paced_script(1.0)
    line = "paced-latency-us p50=120 p90=200 p99=900 p99.9=2100 p99.99=4000 max=5000"
    assert luagen.parse_paced_latency(f"Running 1s\n{line}\nRequests/sec: 1\n") == {
        "p50": 120, "p90": 200, "p99": 900, "p99.9": 2100, "p99.99": 4000, "max": 5000}
    assert luagen.parse_paced_latency("no line") is None


@pytest.mark.skipif(WRK is None, reason="wrk is not installed")
def test_paced_script_holds_the_rate_under_a_real_wrk(tmp_path, recorder):  # noqa: F811
    """300 req/s over 20 connections for 2 s: 600 requests (not thousands, as
    unpaced), the rotating keys still sent in turn, the percentiles printed."""
    inner = luagen.write_rotating_requests_script(
        tmp_path / "keys.lua", [{"Authorization": f"k{n}"} for n in range(7)])
    script = luagen.write_paced_script(tmp_path / "paced.lua", luagen.interval_ms(300), inner)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    started = time.monotonic()
    done = subprocess.run([WRK, "-t1", "-c20", "-d2s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert time.monotonic() - started < 10
    count = len(recorder.seen)
    # The schedule holds the rate (wrk's clock starts a little before the first slot).
    assert 540 <= count <= 610, (count, done.stdout)
    assert set(recorder.seen) <= {f"k{n}" for n in range(7)} and len(set(recorder.seen)) == 7
    latency = luagen.parse_paced_latency(done.stdout)
    assert latency is not None and 0 < latency["p50"] <= latency["p99"] <= latency["max"]


def test_paced_summary_reports_the_p99_fastgate_adds():
    def run(target: str, p99: float) -> RunMeasurement:
        wrk = WrkResult(requests=40_000, duration_us=4e6, requests_per_sec=10_000,
                        bytes_read=0)
        return RunMeasurement(target=target, round=2, wrk=wrk, wall_s=4.0, proxy_cpu_s=1.0,
                              target_rate=10_000, paced_latency_us={
                                  "p50": 100, "p90": 150, "p99": p99, "p99.9": 2 * p99,
                                  "p99.99": 3 * p99, "max": 4 * p99})

    summary = paced_summary([run("nginx", 400), run("haproxy", 450), run("fastgate", 1700)])
    assert summary["rate"] == 10_000
    assert summary["p99_added_us"] == 1300
    assert summary["goal"]["met"] is False and summary["goal"]["max_us"] == 1000
    assert paced_summary([run("nginx", 400), run("fastgate", 1300)])["goal"]["met"] is True
    table = render_paced_table(summary).splitlines()
    assert table[0].split()[:7] == ["target", "req/s", "p50", "p90", "p99", "p99.9", "p99.99"]
    assert table[4].split()[:5] == ["fastgate", "10,000", "100us", "150us", "1.70ms"]
    # Off the asked rate by more than 5%: said in a note.
    slow = RunMeasurement(target="fastgate", round=2, wrk=WrkResult(
        requests=8000, duration_us=1e6, requests_per_sec=8000, bytes_read=0), wall_s=1.0,
        proxy_cpu_s=0.2, target_rate=10_000)
    assert slow.notes() == ["paced at 10,000 req/s, reached 8,000 (80%)"]
    busy = RunMeasurement(target="nginx", round=2, wrk=WrkResult(
        requests=10_000, duration_us=1e6, requests_per_sec=10_000, bytes_read=0), wall_s=1.0,
        proxy_cpu_s=0.2, target_rate=10_000, load_core_busy_s=0.97)
    assert busy.notes() == ["the load core was 97% busy: the latency includes wrk's and the "
                            "upstream's own waits"]


def test_latency_options():
    settings = parse_args(["--latency", "--latency-connections", "500"])
    assert settings is not None and settings.latency and settings.latency_load == 0.5
    assert settings.latency_connections == 500
    for bad in (["--latency", "--rate", "10"], ["--rate", "0"], ["--workers", "0"],
                ["--latency-load", "1.5"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
