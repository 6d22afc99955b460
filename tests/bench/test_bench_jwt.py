"""bench.jwt and the JWT scenarios: keys, minted tokens, the pool, the token feed (its
Lua script under a real wrk), and the HAProxy peer's config (checked by haproxy and
run against real sockets)."""

import base64
import contextlib
import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt as pyjwt
import pytest

from bench import jwt, scenarios
from bench.harness import (
    BENCH_DIR,
    HAPROXY_MIN_VERSION,
    SBIN_PATH,
    Bench,
    find_tools,
    haproxy_version,
    parse_args,
    print_summary,
)
from bench.processes import free_port, port_open
from bench.report import (
    RunMeasurement,
    TargetSummary,
    describe_goal,
    goal_result,
    render_table,
)
from bench.spec import HAPROXY_PLAIN_PROXY, PrepareContext, Probe, SetupContext, WrkPlan
from bench.wrk_output import WrkResult

WRK = shutil.which("wrk", path=SBIN_PATH)
HAPROXY = shutil.which("haproxy", path=SBIN_PATH)
FEED_SCRIPT = BENCH_DIR / "wrk" / "token_feed.lua"
#: A stand-alone Lua to check the feed script's syntax with (wrk embeds LuaJIT).
LUA = next((found for name in ("luajit", "lua5.1", "lua5.4", "lua")
            if (found := shutil.which(name)) is not None), None)
JWT_SCENARIOS = ("jwt-rs256-cached", "jwt-rs256-new", "jwt-es256-new")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def keys(cache: Path) -> dict[str, jwt.SigningKey]:
    return {alg: jwt.signing_key(alg, cache / "jwt") for alg in jwt.ALGORITHMS}


# ---------------------------------------------------------------- keys and tokens


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_minted_tokens_verify_with_pyjwt(keys, alg):
    key = keys[alg]
    tokens = jwt.mint_range(key, 998, 1003)
    assert len(set(tokens)) == 5
    assert len({len(t) for t in tokens}) == 1, "every token of a layout is as long"
    for index, token in zip(range(998, 1003), tokens, strict=True):
        decoded = pyjwt.decode(token, key.public_pem, algorithms=[alg],
                               audience=jwt.AUDIENCE, issuer=jwt.ISSUER)
        assert decoded == jwt.claims(index)
        assert pyjwt.get_unverified_header(token) == {"alg": alg, "typ": "JWT"}
    # 1,000 users: token 1000 is user 0's again, with its own jti.
    assert jwt.claims(1000)["sub"] == jwt.claims(0)["sub"] == "user-000000"
    assert jwt.claims(1000)["jti"] != jwt.claims(0)["jti"]
    tampered = tokens[0][:-2] + ("AA" if not tokens[0].endswith("AA") else "BA")
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(tampered, key.public_pem, algorithms=[alg], audience=jwt.AUDIENCE)


def test_signing_key_is_made_once_and_kept(tmp_path):
    first = jwt.signing_key("ES256", tmp_path)
    again = jwt.signing_key("ES256", tmp_path)
    assert first == again
    assert (tmp_path / "ES256.key.pem").stat().st_mode & 0o077 == 0
    assert first.family == "ecdsa" and jwt.signing_key("RS256", tmp_path).family == "rsa"
    with pytest.raises(ValueError, match="HS256"):
        jwt.signing_key("HS256", tmp_path)


def test_pool_grows_in_parallel_and_is_reused(keys, tmp_path):
    key = keys["RS256"]
    pool = jwt.TokenPool(key, tmp_path)
    assert len(pool) == 0
    assert pool.grow_to(2 * jwt.MINT_CHUNK + 3, log=False) == 2 * jwt.MINT_CHUNK + 3
    # PKCS#1 v1.5 is deterministic: the pool holds exactly token i at line i.
    for index in (0, jwt.MINT_CHUNK, 2 * jwt.MINT_CHUNK + 2):
        assert pool.token(index) == jwt.mint_range(key, index, index + 1)[0]
    lines = pool.path.read_bytes().split(b"\n")
    assert len(lines) == 2 * jwt.MINT_CHUNK + 4 and lines[-1] == b""
    assert {len(line) for line in lines[:-1]} == {pool.record_len - 1}
    assert len(set(lines)) == len(lines)

    # A run interrupted mid-line: the partial line is dropped, the rest reused.
    with pool.path.open("ab") as handle:
        handle.write(b"eyJhbGciOi")
    again = jwt.TokenPool(key, tmp_path)
    assert again.path == pool.path
    assert len(again) == 2 * jwt.MINT_CHUNK + 3
    assert again.grow_to(10, log=False) == 0
    # Another key never shares a pool.
    assert jwt.TokenPool(keys["ES256"], tmp_path).path != pool.path


# ---------------------------------------------------------------- the feed's bookkeeping


class FakePool:
    """A TokenPool's interface without minting: grow_to only counts."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.path = Path("/pool/tokens.txt")
        self.record_len = 100
        self.grown: list[int] = []

    def __len__(self) -> int:
        return self.size

    def grow_to(self, count: int, log: bool = True) -> int:
        self.grown.append(count)
        added = max(0, count - self.size)
        self.size = max(self.size, count)
        return added


def report(*threads: tuple[int, int]) -> str:
    return "".join(f"token-feed thread={n} used={u} repeats={r}\n"
                   for n, (u, r) in enumerate(threads))


def test_feed_gives_caching_targets_only_unused_tokens():
    pool = FakePool(1_000_000)
    feed = jwt.TokenFeed(pool, threads=1, connections=64)  # type: ignore[arg-type]
    args = feed.script_args("fastgate", 0, 2)
    assert args == ("/pool/tokens.txt", "100", "0", "1000000", "1")
    run = feed.after_run("fastgate", 0, "Requests/sec: 1\n" + report((30_001, 0)), 15_000.0)
    assert run.problems == () and run.notes == ()
    assert run.info["first_token"] == 0 and run.info["tokens_used"] == 30_001
    assert feed.script_args("fastgate", 1, 10)[2:4] == ("30001", str(1_000_000 - 30_001))
    feed.after_run("fastgate", 1, report((150_000, 0)), 15_000.0)
    # Peers without a cache start at the beginning every run.
    assert feed.script_args("nginx", 1, 10)[2:4] == ("0", "1000000")
    run = feed.after_run("nginx", 1, report((2_000_000, 1_000_000)), 60_000.0)
    assert run.problems == () and run.info["tokens_reused"] == 1_000_000
    assert feed.cursor == 180_001


def test_feed_grows_the_pool_for_the_rate_it_measured():
    pool = FakePool(0)
    feed = jwt.TokenFeed(pool, threads=1, connections=64, first_rate=10_000,  # type: ignore[arg-type]
                         margin=1.5)
    feed.script_args("fastgate", 0, 2)
    assert pool.grown[-1] == 10_000 * 1.5 * 2 + 2 * 64 + 100
    feed.after_run("fastgate", 0, report((20_000, 0)), 20_000.0)
    feed.script_args("fastgate", 1, 10)
    assert pool.grown[-1] == 20_000 + 20_000 * 1.5 * 10 + 2 * 64 + 100
    # A peer's run (nginx's warm-up comes first) grows it for fastgate's next run too.
    fresh = jwt.TokenFeed(FakePool(0), threads=1, connections=64,  # type: ignore[arg-type]
                          first_rate=10_000, margin=1.5)
    assert fresh.script_args("nginx", 0, 2)[2:4] == ("0", str(10_000 * 3 + 2 * 64 + 100))


def test_feed_flags_reused_tokens_in_a_round_and_notes_them_in_the_warmup():
    pool = FakePool(1_000)
    feed = jwt.TokenFeed(pool, threads=1, connections=8, first_rate=1)  # type: ignore[arg-type]
    feed.script_args("fastgate", 0, 1)
    warm = feed.after_run("fastgate", 0, report((1_500, 500)), 1_500.0)
    assert warm.problems == () and "500 requests carried a token" in warm.notes[0]
    assert feed.cursor == 1_000  # never past the pool: the next run mints beyond it
    feed.script_args("fastgate", 1, 1)
    assert pool.size > 1_000
    run = feed.after_run("fastgate", 1, report((10_000, 7)), 9_000.0)
    assert len(run.problems) == 1 and "7 requests carried a token" in run.problems[0]
    # The round is run again once (the pool is grown for 9,000/s by then) ...
    assert run.retry
    feed.script_args("fastgate", 1, 1)
    assert pool.grown[-1] >= feed.cursor + 9_000
    # ... and a second shortfall in the same round stands as a problem.
    again = feed.after_run("fastgate", 1, report((10_000, 3)), 9_000.0)
    assert again.problems and not again.retry
    assert not warm.retry


def test_feed_with_threads_strides_and_needs_every_report():
    pool = FakePool(100_000)
    feed = jwt.TokenFeed(pool, threads=2, connections=8)  # type: ignore[arg-type]
    feed.script_args("fastgate", 1, 1)
    feed.after_run("fastgate", 1, report((100, 0), (140, 0)), 1.0)
    # Thread 1 went to token 1 + 139 * 2 = 279: the next run starts at 280.
    assert feed.cursor == 280
    feed.script_args("fastgate", 2, 1)
    broken = feed.after_run("fastgate", 2, report((100, 0)), 1.0)
    assert broken.problems and "reported 1 thread(s), expected 2" in broken.problems[0]


def test_feed_problems_reach_the_measurement():
    m = RunMeasurement(target="fastgate", round=1,
                       wrk=WrkResult(requests=10, duration_us=1e6, requests_per_sec=10,
                                     bytes_read=0),
                       wall_s=1.0, proxy_cpu_s=1.0, feed={"tokens_used": 12},
                       feed_problems=("reused",), feed_notes=("warm",))
    assert "reused" in m.problems() and "warm" in m.notes()
    assert m.to_json()["feed"] == {"tokens_used": 12}


# ---------------------------------------------------------------- the Lua feed under wrk


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, no Nagle: otherwise delayed ACKs cap it at ~25 req/s.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization", ""))  # type: ignore[attr-defined]
        self.server.requests.append(  # type: ignore[attr-defined]
            [(name.lower(), value) for name, value in self.headers.items()])
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


class RecorderServer(ThreadingHTTPServer):
    """Keeps every request's Authorization (``seen``) and headers (``requests``, names
    lower-cased: HAProxy sends them so)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Recorder)
        self.seen: list[str] = []
        self.requests: list[list[tuple[str, str]]] = []

    def handle_error(self, request: object, client_address: object) -> None:
        # wrk resets its connections when its run ends: not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionResetError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def recorder():
    server = RecorderServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fake_pool(path: Path, count: int) -> list[str]:
    tokens = [f"tok-{i:07d}" for i in range(count)]
    path.write_text("".join(t + "\n" for t in tokens))
    return tokens


def run_wrk(url: str, threads: int, args: list[str]) -> str:
    done = subprocess.run(
        [WRK, f"-t{threads}", f"-c{threads}", "-d1s", "-s", str(FEED_SCRIPT), url, "--", *args],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def lua_compiles(path: Path) -> subprocess.CompletedProcess[str]:
    assert LUA is not None
    return subprocess.run([LUA, "-e", f"assert(loadfile({json.dumps(str(path))}))"],
                          capture_output=True, text=True, timeout=10)


@pytest.mark.skipif(LUA is None, reason="no luajit/lua to check the syntax with")
def test_lua_feed_script_compiles(tmp_path):
    assert lua_compiles(FEED_SCRIPT).returncode == 0, lua_compiles(FEED_SCRIPT).stderr
    # The check can fail: the script cut off in the middle of request() does not compile.
    text = FEED_SCRIPT.read_text()
    broken = tmp_path / "broken.lua"
    broken.write_text(text[:text.index("function request()") + len("function request()")])
    assert lua_compiles(broken).returncode != 0


@pytest.mark.skipif(WRK is None, reason="wrk is not installed")
def test_lua_feed_sends_the_pool_in_order_and_counts_what_it_used(recorder, tmp_path):
    tokens = fake_pool(tmp_path / "pool.txt", 100_000)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    out = run_wrk(url, 1, [str(tmp_path / "pool.txt"), "12", "500", "99500", "1"])
    seen = list(recorder.seen)
    assert len(seen) > 100
    (used, repeats), = [(int(u), int(r)) for _, u, r in jwt.FEED_LINE.findall(out)]
    assert repeats == 0
    # wrk calls request() once before the run to check the script (that token is
    # never sent), then once per request; one request may be in flight at the end.
    assert len(seen) + 1 <= used <= len(seen) + 2
    assert seen == [f"Bearer {t}" for t in tokens[501:501 + len(seen)]]


@pytest.mark.skipif(WRK is None, reason="wrk is not installed")
def test_lua_feed_wraps_round_and_counts_repeats(recorder, tmp_path):
    tokens = fake_pool(tmp_path / "pool.txt", 60)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    out = run_wrk(url, 1, [str(tmp_path / "pool.txt"), "12", "10", "50", "1"])
    (used, repeats), = [(int(u), int(r)) for _, u, r in jwt.FEED_LINE.findall(out)]
    assert used > 100 and repeats == used - 50
    seen = list(recorder.seen)
    assert seen[:60] == [f"Bearer {tokens[10 + (i + 1) % 50]}" for i in range(60)]


@pytest.mark.skipif(WRK is None, reason="wrk is not installed")
def test_lua_feed_threads_never_share_a_token(recorder, tmp_path):
    tokens = fake_pool(tmp_path / "pool.txt", 100_000)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    out = run_wrk(url, 2, [str(tmp_path / "pool.txt"), "12", "0", "100000", "2"])
    reports = {int(t): (int(u), int(r)) for t, u, r in jwt.FEED_LINE.findall(out)}
    assert set(reports) == {0, 1} and all(r == 0 for _, r in reports.values())
    seen = [s.removeprefix("Bearer ") for s in recorder.seen]
    assert len(seen) == len(set(seen)) > 100
    index = {t: i for i, t in enumerate(tokens)}
    for thread, (used, _) in reports.items():
        # Thread t sends tokens t, t + 2, t + 4, ... and no further than it counted.
        mine = [index[s] for s in seen if index[s] % 2 == thread]
        assert mine and max(mine) < thread + 2 * used


# ---------------------------------------------------------------- scenarios and HAProxy


def prepared(name: str, cache: Path, work: Path):
    scenario = scenarios.by_name([name])[0]
    work.mkdir(parents=True, exist_ok=True)
    ctx = PrepareContext(work_dir=work, cache_dir=cache, rounds=1, duration_s=1, warmup_s=0,
                         connections=4, wrk_threads=1)
    assert scenario.prepare is not None
    return scenario.prepare(ctx, scenario)


def setup_plan(scenario, work: Path) -> WrkPlan:
    plan = WrkPlan(script=BENCH_DIR / "wrk" / scenario.wrk_script if scenario.wrk_script
                   else None, probe=scenario.probe)
    ctx = SetupContext(scenario=scenario, gateway_url="http://127.0.0.1:9", secret="s",
                       upstream_url="http://127.0.0.1:9", work_dir=work, plan=plan)
    assert scenario.setup is not None
    return scenario.setup(ctx)


def test_jwt_api_definition_carries_the_public_key(cache, tmp_path, keys):
    scenario = prepared("jwt-es256-new", cache, tmp_path)
    (api,) = scenario.api_definitions
    assert api["enable_jwt"] is True and api["use_keyless"] is False
    assert api["jwt_signing_method"] == "ecdsa"
    assert base64.b64decode(api["jwt_source"]) == keys["ES256"].public_pem
    assert api["jwt_identity_base_field"] == "sub"
    assert api["jwt_default_policies"] == [scenarios.JWT_POLICY]
    policies = json.loads(scenario.files["policies.json"])
    assert policies[scenarios.JWT_POLICY]["access_rights"]["bench"]["api_id"] == api["api_id"]
    assert scenario.gateway_config["policies"]["policy_record_name"] == "policies.json"


def test_new_token_scenario_plan(cache, tmp_path, keys):
    scenario = prepared("jwt-rs256-new", cache, tmp_path / "prep")
    plan = setup_plan(scenario, tmp_path)
    assert plan.script == BENCH_DIR / "wrk" / "token_feed.lua"
    assert isinstance(plan.feed, jwt.TokenFeed)
    assert plan.feed.fresh_targets == {"fastgate"} and plan.feed.cursor == 0
    token = plan.probe.headers["Authorization"].removeprefix("Bearer ")
    claims = pyjwt.decode(token, keys["RS256"].public_pem, algorithms=["RS256"],
                          audience=jwt.AUDIENCE)
    # The probe's token is outside the pool: it cannot turn a pool token into a hit.
    assert claims["jti"].startswith("p")


def test_cached_scenario_rotates_a_thousand_tokens(cache, tmp_path, keys):
    scenario = prepared("jwt-rs256-cached", cache, tmp_path / "prep")
    plan = setup_plan(scenario, tmp_path)
    assert plan.feed is None and plan.script is not None
    tokens = [line.split('"Bearer ', 1)[1].split('"', 1)[0]
              for line in plan.script.read_text().splitlines() if '"Bearer ' in line]
    assert len(tokens) == len(set(tokens)) == scenarios.JWT_CACHED_TOKENS
    subs = {pyjwt.decode(t, keys["RS256"].public_pem, algorithms=["RS256"],
                         audience=jwt.AUDIENCE)["sub"] for t in tokens[::97]}
    assert len(subs) == len(tokens[::97])
    assert plan.probe == Probe(headers={"Authorization": f"Bearer {tokens[0]}"})


def haproxy_config(scenario, tmp_path: Path, upstream_port: int) -> tuple[Path, int]:
    bench = Bench.__new__(Bench)
    bench.settings = parse_args([])
    bench.upstream_url = f"http://127.0.0.1:{upstream_port}"
    port = free_port()
    return bench.write_haproxy_config(scenario, tmp_path / "haproxy", port), port


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
@pytest.mark.parametrize("name", ["keyless", "jwt-rs256-cached", "jwt-rs256-new",
                                  "jwt-es256-new"])
def test_haproxy_configs_are_valid(cache, tmp_path, name):
    scenario = scenarios.by_name([name])[0]
    if scenario.prepare is not None:
        scenario = prepared(name, cache, tmp_path / "prep")
    assert scenario.haproxy is not None
    conf, _ = haproxy_config(scenario, tmp_path, 9)
    text = conf.read_text()
    assert "{{" not in text and "nbthread 1" in text
    if name == "keyless":
        assert scenario.haproxy == HAPROXY_PLAIN_PROXY and "jwt_verify(" not in text
    else:
        assert "jwt_verify(txn.jwt_alg," in text
    done = subprocess.run([HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def get(port: int, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@contextlib.contextmanager
def running_haproxy(conf: Path, port: int, log: Path) -> Iterator[None]:
    assert HAPROXY is not None
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(conf)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
@pytest.mark.parametrize(("name", "alg", "other"), [("jwt-rs256-new", "RS256", "ES256"),
                                                    ("jwt-es256-new", "ES256", "RS256")])
def test_haproxy_peer_verifies_every_token(cache, tmp_path, keys, recorder, name, alg, other):
    scenario = prepared(name, cache, tmp_path / "prep")
    conf, port = haproxy_config(scenario, tmp_path, recorder.server_address[1])
    with running_haproxy(conf, port, tmp_path / "haproxy.log"):
        good = jwt.mint_range(keys[alg], 5, 6)[0]
        assert get(port, {"Authorization": f"Bearer {good}"}) == 200
        assert recorder.seen == [f"Bearer {good}"]  # proxied as it came
        head, _body, sig = good.split(".")
        forged = jwt.b64url(json.dumps({**jwt.claims(5), "sub": "admin"}).encode())
        assert get(port, {"Authorization": f"Bearer {head}.{forged}.{sig}"}) == 403
        wrong_key = jwt.mint_range(jwt.signing_key(alg, tmp_path / "other"), 5, 6)[0]
        assert get(port, {"Authorization": f"Bearer {wrong_key}"}) == 403
        assert get(port, {"Authorization": f"Bearer {jwt.mint_range(keys[other], 5, 6)[0]}"}) \
            == 403
        assert get(port, {}) == 403
        assert len(recorder.seen) == 1


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
def test_haproxy_plain_proxy_does_the_baselines_header_work(tmp_path, recorder):
    # What nginx's proxy.conf and fastgate do on every request: X-Forwarded-* set,
    # Host rewritten to the upstream, over a kept-alive upstream connection.
    scenario = scenarios.by_name(["keyless"])[0]
    upstream_port = recorder.server_address[1]
    conf, port = haproxy_config(scenario, tmp_path, upstream_port)
    with running_haproxy(conf, port, tmp_path / "haproxy.log"):
        assert get(port, {"Host": "gw.example:8080"}) == 200
    (seen,) = recorder.requests
    forwarded = {name: [v for n, v in seen if n == name] for name in (
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")}
    assert forwarded == {"host": [f"127.0.0.1:{upstream_port}"],
                         "x-forwarded-for": ["127.0.0.1"], "x-forwarded-proto": ["http"],
                         "x-forwarded-host": ["gw.example:8080"]}


def test_table_puts_fastgate_beside_haproxy():
    def summary(target: str, rps: float, cpu_s: float) -> TargetSummary:
        wrk = WrkResult(requests=int(rps * 10), duration_us=10e6, requests_per_sec=rps,
                        bytes_read=0, percentiles_us={50.0: 100.0, 99.0: 1000.0})
        return TargetSummary(target, [RunMeasurement(target=target, round=1, wrk=wrk,
                                                     wall_s=10.0, proxy_cpu_s=cpu_s)])

    table = render_table([summary("nginx", 60_000, 9.0), summary("haproxy", 20_000, 9.0),
                          summary("fastgate", 16_000, 9.6)])
    lines = table.splitlines()
    assert lines[0].split() == ["target", "req/s", "x", "nginx", "x", "haproxy", "p50", "p99",
                                "x", "nginx", "CPU", "us/req", "x", "nginx", "x", "haproxy",
                                "proxy", "CPU", "RSS", "errors"]
    # fastgate: 16,000 req/s = 0.27x nginx, 0.80x haproxy; 60 us/req = 4.00x nginx's
    # 15, 1.33x haproxy's 45.
    assert lines[4].split() == ["fastgate", "16,000", "0.27x", "0.80x", "100us", "1.00ms",
                                "1.00x", "60.0", "4.00x", "1.33x", "96%", "-", "0"]
    assert lines[3].split()[3] == "1.00x"


def test_a_round_the_feed_asks_to_retry_is_measured_again(capsys):
    def measurement(retry: bool, requests: int) -> RunMeasurement:
        wrk = WrkResult(requests=requests, duration_us=1e6, requests_per_sec=requests,
                        bytes_read=0)
        return RunMeasurement(target="fastgate", round=1, wrk=wrk, wall_s=1.0, proxy_cpu_s=1.0,
                              feed_retry=retry, feed_problems=("reused",) if retry else ())

    calls: list[int] = []
    outcomes = [measurement(True, 1), measurement(False, 2)]

    class Stub(Bench):
        def run_wrk(self, target, scenario, plan, duration_s, round_no):  # type: ignore[override]
            calls.append(round_no)
            return outcomes[len(calls) - 1]

    bench = Stub.__new__(Stub)
    bench.settings = parse_args(["--quick"])  # type: ignore[assignment]
    run = bench.measure_round(None, None, WrkPlan(), 1)  # type: ignore[arg-type]
    assert calls == [1, 1] and run.wrk.requests == 2 and run.problems() == []
    assert "the round runs again" in capsys.readouterr().out
    # A run that does not ask is measured once, problems and all.
    calls.clear()
    outcomes[:] = [measurement(False, 3)]
    assert bench.measure_round(None, None, WrkPlan(), 2).wrk.requests == 3  # type: ignore[arg-type]
    assert calls == [2]


# ---------------------------------------------------------------- registry, tools, goal


def test_list_shows_the_jwt_scenarios_with_their_peers(capsys):
    assert parse_args(["--list"]) is None
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line]
    assert set(JWT_SCENARIOS) <= set(listed)
    cached, rs_new, es_new = scenarios.by_name(list(JWT_SCENARIOS))
    for scenario in (cached, rs_new, es_new):
        assert scenario.prepare is not None and scenario.haproxy is not None
        assert "jwt_verify" in scenario.haproxy.description
        assert scenario.gateway_config == scenarios.JWT_GATEWAY_CONFIG
        assert set(scenario.files) == {"policies.json"}
    assert cached.wrk_script is None and cached.rps_goal_vs_nginx == 0.6
    assert rs_new.wrk_script == es_new.wrk_script == FEED_SCRIPT.name
    assert rs_new.rps_goal_vs_nginx is es_new.rps_goal_vs_nginx is None
    for name in ("keyless", "keyless-post-1k"):
        assert scenarios.by_name([name])[0].haproxy == HAPROXY_PLAIN_PROXY


def test_pools_are_kept_under_bench_results_unless_told(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTGATE_BENCH_CACHE", raising=False)
    assert jwt.default_cache_dir() == BENCH_DIR / "results" / "cache"
    assert "bench/results/" in (BENCH_DIR.parent / ".gitignore").read_text().split()
    monkeypatch.setenv("FASTGATE_BENCH_CACHE", str(tmp_path))
    settings = parse_args(["--quick"])
    assert settings is not None and settings.cache_dir == tmp_path
    settings = parse_args(["--quick", "--cache-dir", str(tmp_path / "x")])
    assert settings is not None and settings.cache_dir == tmp_path / "x"


def test_haproxy_version_gates_the_peer():
    assert haproxy_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - "
                           "https://haproxy.org/\nStatus: long-term") == (2, 6)
    assert haproxy_version("HA-Proxy version 1.8.19-1+deb10u3 2020/08/01") == (1, 8)
    assert haproxy_version("HAProxy version 2.10.1 2024/05/01") == (2, 10) > HAPROXY_MIN_VERSION
    assert haproxy_version(None) is None and haproxy_version("nginx/1.22.1") is None
    if HAPROXY is not None and WRK is not None:
        installed = haproxy_version(subprocess.run([HAPROXY, "-v"], capture_output=True,
                                                   text=True).stdout)
        assert installed is not None
        assert (find_tools().haproxy == HAPROXY) == (installed >= HAPROXY_MIN_VERSION)


def test_goal_is_reported_beside_the_table_and_never_an_error(capsys):
    met, missed, unmeasured = goal_result(0.6, 0.61), goal_result(0.6, 0.52), \
        goal_result(0.6, None)
    assert met["met"] and not missed["met"] and not unmeasured["met"]
    assert describe_goal("fastgate", met) == "goal: fastgate req/s >= 0.60x nginx: 0.61x, met"
    assert describe_goal("fastgate", missed).endswith("0.52x, MISSED")
    assert "not measured, MISSED" in describe_goal("fastgate", unmeasured)
    settings = parse_args(["--quick"])
    assert settings is not None
    print_summary([{"name": "s", "description": "d", "peers": {"haproxy": "jwt_verify RS256"},
                    "table": "TABLE", "notes": [], "problems": [], "goal": missed}], [],
                  settings)
    out = capsys.readouterr().out
    assert "peer: haproxy = jwt_verify RS256" in out
    assert "TABLE\n  goal: fastgate req/s >= 0.60x nginx: 0.52x, MISSED" in out
    assert "ERRORS" not in out
