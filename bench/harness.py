"""Run the scenarios: fastgate, an nginx baseline and (where a scenario says) HAProxy
under wrk, in alternation.

Layout on a machine with two CPUs (the first two this process may use):

* CPU A (the proxy's core): the proxy under test — nginx as a reverse proxy, HAProxy
  (one thread), or fastgate.  All run all the time, but only one is under load at
  any moment.
* CPU B (the load core): wrk (one thread) and the fixed upstream (nginx returning a
  small body, or ``fastgate echo`` when nginx is missing).

Per scenario: run the prepare hook, start the proxies, run the setup hook, probe each
target (it must answer 2xx), warm each up, then ``rounds`` rounds that run wrk against
each target in turn (order reversed every other round, so drift does not favour one).
Around every wrk run the CPU of the proxy's process tree is read from /proc; CPU
µs/request is that CPU over the requests wrk completed.  Medians over the rounds go
into the table and the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import client, jwt, luagen, procstat, scenarios
from bench.processes import (
    ManagedProcess,
    StartupError,
    Supervisor,
    free_port,
    port_open,
    wait_ready,
)
from bench.report import (
    BASELINE,
    PEER,
    RunMeasurement,
    TargetSummary,
    describe_goal,
    describe_paced_goal,
    format_latency,
    goal_result,
    paced_summary,
    ratios,
    render_paced_table,
    render_table,
)
from bench.spec import (
    CLIENT_CA_ID,
    NGINX_UPSTREAM,
    UPSTREAM_URL,
    PrepareContext,
    Probe,
    RefusalProbe,
    Scenario,
    SetupContext,
    WrkPlan,
)
from bench.wrk_output import WrkOutputError, parse_wrk_output
from fastgate.config import DEFAULT_TLS_CIPHERS

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"
SECRET = "bench-secret"
FASTGATE = "fastgate"
WRK_THREADS = 1
SBIN_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]
)
#: The peer's rules use jwt_verify and jwt_header_query (2.5) and http_auth_bearer (2.6).
HAPROXY_MIN_VERSION = (2, 6)


class BenchError(RuntimeError):
    """A scenario could not be measured (a process failed, a probe was refused, ...)."""


# ---------------------------------------------------------------- settings and tools


@dataclass(frozen=True)
class Settings:
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    scenarios: tuple[str, ...]
    json_path: Path
    keep_tmp: bool
    cache_dir: Path = field(default_factory=jwt.default_cache_dir)
    #: fastgate's ``workers``, nginx's ``worker_processes`` and HAProxy's ``nbthread``.
    workers: int = 1
    #: Pace every run at this many requests/s in all (None: as fast as wrk can).
    rate: float | None = None
    #: After the rounds, one paced run per target at ``latency_load`` x nginx's
    #: measured req/s, with ``latency_connections`` connections.
    latency: bool = False
    latency_load: float = 0.5
    latency_connections: int = 128


def parse_args(argv: Sequence[str] | None) -> Settings | None:
    parser = argparse.ArgumentParser(
        prog="tools/bench",
        description="Benchmark fastgate against nginx as a reverse proxy (see bench/README.md).",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--connections", type=int, default=64,
                        help="wrk connections (default 64)")
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        help="run this scenario (repeatable; default: all)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="write results here (default bench/results/latest.json)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round of 2 s, 1 s warm-up")
    parser.add_argument("--keep-tmp", action="store_true",
                        help="keep the temp dir (configs, logs) for inspection")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="PATH",
                        help="keep minted JWT pools and signing keys here (default "
                             "$FASTGATE_BENCH_CACHE, else bench/results/cache)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="fastgate workers (SO_REUSEPORT processes; on the redis store), "
                             "nginx worker_processes and HAProxy nbthread (default 1); with "
                             "N > 1 the proxies run on the first N CPUs, sharing the load's")
    parser.add_argument("--rate", type=float, default=None, metavar="REQ_PER_S",
                        help="pace every wrk run at this rate in all (wrk Lua delay(); e.g. "
                             "--connections 10000 --rate 2000 to hold 10k idle-ish connections)")
    parser.add_argument("--latency", action="store_true",
                        help="after the rounds, a paced run per target at half nginx's "
                             "measured req/s: p50-p99.99 and fastgate's p99 over nginx's")
    parser.add_argument("--latency-load", type=float, default=0.5, metavar="FRACTION",
                        help="the paced rate as a fraction of nginx's req/s (default 0.5)")
    parser.add_argument("--latency-connections", type=int, default=128, metavar="N",
                        help="connections of the paced latency runs (default 128)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for scenario in scenarios.SCENARIOS:
            print(f"{scenario.name:24} {scenario.description}")
        return None
    quick = args.quick
    settings = Settings(
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        duration_s=args.duration if args.duration is not None else (2 if quick else 10),
        warmup_s=args.warmup if args.warmup is not None else (1 if quick else 2),
        connections=args.connections,
        scenarios=tuple(args.scenario),
        json_path=args.json,
        keep_tmp=args.keep_tmp,
        cache_dir=args.cache_dir if args.cache_dir is not None else jwt.default_cache_dir(),
        workers=args.workers,
        rate=args.rate,
        latency=args.latency,
        latency_load=args.latency_load,
        latency_connections=args.latency_connections,
    )
    if settings.workers < 1:
        parser.error("--workers must be >= 1")
    if settings.rate is not None and settings.rate <= 0:
        parser.error("--rate must be > 0")
    if not 0 < settings.latency_load <= 1 or settings.latency_connections < 1:
        parser.error("--latency-load must be in (0, 1], --latency-connections >= 1")
    if settings.latency and settings.rate is not None:
        parser.error("--latency paces at nginx's measured rate: do not give --rate too")
    if settings.rounds < 1 or settings.duration_s < 1 or settings.warmup_s < 0:
        parser.error("--rounds and --duration must be >= 1, --warmup >= 0")
    if settings.connections < WRK_THREADS:
        parser.error(f"--connections must be >= {WRK_THREADS}")
    try:
        scenarios.by_name(list(settings.scenarios))
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    return settings


@dataclass(frozen=True)
class Tools:
    wrk: str
    nginx: str | None
    taskset: str | None
    fastgate: str
    proxy_cpu: int | None
    load_cpu: int | None
    haproxy: str | None = None
    #: Every CPU the harness may use, in order (the proxy's, the load's, ...).
    cpus: tuple[int, ...] = ()
    #: Why there is no HAProxy peer, when ``haproxy`` is None.
    haproxy_missing: str = "haproxy is not installed (apt-get install -y haproxy)"

    def pinned(self, cpu: int | str | None, argv: Sequence[str]) -> list[str]:
        """``argv`` under ``taskset -c cpu`` (a CPU number or a list such as "0,1")."""
        if cpu is None or self.taskset is None:
            return list(argv)
        return [self.taskset, "-c", str(cpu), *argv]

    def proxy_cpus(self, workers: int) -> int | str | None:
        """Where the proxies run: the proxy's CPU with one worker, the first
        ``workers`` CPUs with more -- the load's core among them on a 2-core box."""
        if workers <= 1 or self.proxy_cpu is None or len(self.cpus) < 2:
            return self.proxy_cpu
        return ",".join(str(cpu) for cpu in self.cpus[:workers])

    def shares_load_core(self, workers: int) -> bool:
        """Whether the proxies' CPUs include the load's (wrk, the upstream, redis)."""
        cpus = self.proxy_cpus(workers)
        return isinstance(cpus, str) and str(self.load_cpu) in cpus.split(",")


def find_tools() -> Tools:
    """Locate wrk, nginx, taskset and fastgate (``tools/bench`` installs the first two)."""
    wrk = shutil.which("wrk", path=SBIN_PATH)
    if wrk is None:
        raise BenchError("wrk not found: apt-get install -y wrk (tools/bench does it as root)")
    nginx = shutil.which("nginx", path=SBIN_PATH)
    taskset = shutil.which("taskset", path=SBIN_PATH)
    fastgate = Path(sys.prefix) / "bin" / FASTGATE
    if not fastgate.exists():
        found = shutil.which(FASTGATE)
        if found is None:
            raise BenchError(f"{fastgate} not found: run tools/bench, which installs it")
        fastgate = Path(found)
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpu = load_cpu = None
    if len(cpus) >= 2 and taskset is not None:
        proxy_cpu, load_cpu = cpus[0], cpus[1]
    haproxy = shutil.which("haproxy", path=SBIN_PATH)
    tools = Tools(wrk, nginx, taskset, str(fastgate), proxy_cpu, load_cpu, haproxy,
                  cpus=tuple(cpus))
    if haproxy is not None:
        version = haproxy_version(_command_output([haproxy, "-v"]))
        if version is None or version < HAPROXY_MIN_VERSION:
            shown = "of an unknown version" if version is None else f"{version[0]}.{version[1]}"
            tools = replace(tools, haproxy=None, haproxy_missing=(
                f"{haproxy} is {shown}; the HAProxy peer needs "
                f"{'.'.join(map(str, HAPROXY_MIN_VERSION))} or later"))
    return tools


def haproxy_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) from ``haproxy -v``'s output ("HAProxy version 2.6.12-1 ...")."""
    match = re.search(r"HA-?Proxy version (\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


# ---------------------------------------------------------------- config rendering


def write_self_signed(cert_path: Path, key_path: Path) -> None:
    """A self-signed RSA-2048 certificate for localhost / 127.0.0.1 (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o644)  # nginx's workers read it as an unprivileged user


def write_client_pki(ca_path: Path, client_path: Path) -> str:
    """A client CA (PEM at ``ca_path``) and a client certificate it issued,
    with its key (one PEM at ``client_path``); the CA's certificate-store id
    (no org: the sha256 hex of its DER)."""
    import datetime
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastgate bench client CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-client")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca_key, hashes.SHA256()))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    client_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    client_path.chmod(0o644)
    return hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()


def render_template(text: str, values: Mapping[str, object]) -> str:
    """Replace ``{{name}}`` placeholders; KeyError when one has no value."""

    def sub(match: re.Match[str]) -> str:
        return str(values[match.group(1)])

    return re.sub(r"\{\{([a-z_]+)\}\}", sub, text)


def substitute(value: Any, placeholder: str, replacement: str) -> Any:
    """``value`` with ``placeholder`` replaced in every string it holds (JSON-like data)."""
    if isinstance(value, str):
        return value.replace(placeholder, replacement)
    if isinstance(value, Mapping):
        return {k: substitute(v, placeholder, replacement) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, placeholder, replacement) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``; nested mappings merge rather than replace."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def connection_limits(connections: int, nofile: int | None = None) -> dict[str, int]:
    """The peers' limits for ``connections`` client connections: nginx's
    ``worker_connections`` (client and upstream connections both count) and
    ``worker_rlimit_nofile`` (at most ``nofile``, the file limit it inherits, when
    given), HAProxy's ``maxconn``; at least the 4096 of a normal run."""
    worker_connections = max(4096, connections + 1024)
    rlimit = 2 * worker_connections
    if nofile is not None:
        rlimit = min(rlimit, nofile)
    return {"worker_connections": worker_connections, "rlimit_nofile": rlimit,
            "maxconn": max(4096, connections + 256)}


def haproxy_fds(maxconn: int) -> int:
    """The file limit HAProxy insists on for ``maxconn`` (two sockets a connection,
    a client's and a server's, plus a few of its own); it refuses to start below."""
    return 2 * maxconn + 64


def open_file_limit() -> int:
    """This process's soft open-file limit (what the processes it starts inherit)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_file_limit(connections: int) -> tuple[int, int]:
    """Raise this process's open-file limit (inherited by everything it starts) so
    that wrk and each proxy can hold ``connections`` sockets, and a proxy twice that
    (a client and an upstream socket each); root raises the hard limit too.  The
    limits now; BenchError when they are too low and cannot be raised."""
    want = 2 * connection_limits(connections)["rlimit_nofile"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            soft, hard = want, want
        except (ValueError, OSError):
            pass  # not root: the hard limit stays
    target = hard if hard == resource.RLIM_INFINITY or hard < want else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < connections + 1024:
        raise BenchError(f"the open-file limit is {soft} and cannot be raised (hard limit "
                         f"{hard}): too low for --connections {connections}; run as root or "
                         f"raise it (ulimit -n)")
    return soft, hard


# ---------------------------------------------------------------- the running bench


@dataclass
class Target:
    """A proxy under test, reachable at ``url``; CPU is read from ``proc``'s tree."""

    name: str
    url: str
    proc: ManagedProcess
    pinned: dict[int, list[int]] = field(default_factory=dict)


class Bench:
    def __init__(self, settings: Settings, tools: Tools, tmp: Path, sup: Supervisor) -> None:
        self.settings = settings
        self.tools = tools
        self.tmp = tmp
        self.sup = sup
        self.upstream: ManagedProcess | None = None
        self.upstream_url = ""
        self.upstream_kind = ""
        self.redis_port = 0
        self._client_ca_id: str | None = None
        #: Client-certificate relays of the scenario running (stopped with it).
        self.relays: list[ManagedProcess] = []
        self._paced_scripts = 0

    @property
    def proxy_cpus(self) -> int | str | None:
        """The CPU (or CPU list) every proxy under test is pinned to."""
        return self.tools.proxy_cpus(self.settings.workers)

    @property
    def shared_cores(self) -> bool:
        """The proxies share their cores with wrk and the upstream (--workers N on a
        box with no more than N cores): the per-core accounting means nothing."""
        return self.tools.shares_load_core(self.settings.workers)

    # -- processes

    def _start_nginx(self, name: str, template: str, cpu: int | str | None,
                     values: Mapping[str, object]) -> ManagedProcess:
        assert self.tools.nginx is not None
        prefix = self.tmp / name
        prefix.mkdir(parents=True)
        # nginx's workers drop to an unprivileged user when started as root.
        prefix.chmod(0o755)
        conf = prefix / "nginx.conf"
        text = (BENCH_DIR / "nginx" / template).read_text()
        conf.write_text(render_template(text, {"prefix": prefix, **values}))
        argv = [self.tools.nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"]
        return self.sup.start(name, self.tools.pinned(cpu, argv), prefix / "process.log")

    def start_upstream(self) -> None:
        port = free_port()
        self.upstream_url = f"http://127.0.0.1:{port}"
        if self.tools.nginx is not None:
            self.upstream_kind = "nginx"
            proc = self._start_nginx("upstream-nginx", "upstream.conf", self.tools.load_cpu,
                                     {"port": port})
        else:
            self.upstream_kind = "fastgate echo"
            log_dir = self.tmp / "upstream-echo"
            log_dir.mkdir()
            argv = [self.tools.fastgate, "echo", "--port", str(port)]
            proc = self.sup.start("upstream-echo", self.tools.pinned(self.tools.load_cpu, argv),
                                  log_dir / "process.log")
        wait_ready(proc, lambda: 200 <= client.request(self.upstream_url).status < 300,
                   "the upstream answered GET / with 2xx")
        self.upstream = proc

    def start_redis(self) -> int:
        """A redis-server for scenarios on the redis store (started once, pinned
        with the load: it is the gateway's infrastructure, like the upstream)."""
        if self.redis_port:
            return self.redis_port
        server = shutil.which("redis-server", path=SBIN_PATH)
        if server is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        port = free_port()
        log_dir = self.tmp / "redis"
        log_dir.mkdir()
        argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(log_dir)]
        proc = self.sup.start("redis", self.tools.pinned(self.tools.load_cpu, argv),
                              log_dir / "process.log")
        wait_ready(proc, lambda: port_open(port), f"redis-server listened on {port}")
        self.redis_port = port
        return port

    def tls_files(self) -> tuple[Path, Path]:
        """The benchmark's self-signed certificate and key (made once per run)."""
        cert, key = self.tmp / "tls" / "cert.pem", self.tmp / "tls" / "key.pem"
        if not cert.exists():
            cert.parent.mkdir(exist_ok=True)
            write_self_signed(cert, key)
        return cert, key

    def client_pki(self) -> tuple[Path, Path, str]:
        """The bench's client CA file, client certificate+key file and the CA's
        certificate-store id (made once per run)."""
        ca, leaf = self.tmp / "tls" / "client-ca.pem", self.tmp / "tls" / "client.pem"
        if self._client_ca_id is None:
            ca.parent.mkdir(exist_ok=True)
            self._client_ca_id = write_client_pki(ca, leaf)
        return ca, leaf, self._client_ca_id

    def start_relay(self, target: Target, work: Path) -> Target:
        """``target`` reached through the client-certificate relay (the
        target's own process stays the one measured)."""
        assert self.tools.haproxy is not None
        _, client_pem, _ = self.client_pki()
        port = free_port()
        directory = work / f"relay-{target.name}"
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "haproxy.cfg"
        conf.write_text(render_template((BENCH_DIR / "haproxy" / "relay.cfg").read_text(), {
            "port": port, "target_port": target.url.rsplit(":", 1)[1],
            "client_pem": client_pem}))
        argv = [self.tools.haproxy, "-db", "-f", str(conf)]
        proc = self.sup.start(f"{work.name}-relay-{target.name}",
                              self.tools.pinned(self.tools.load_cpu, argv),
                              directory / "process.log")
        wait_ready(proc, lambda: port_open(port), f"the relay listened on {port}")
        self.relays.append(proc)
        return Target(target.name, f"http://127.0.0.1:{port}", target.proc)

    def start_nginx_proxy(self, scenario: Scenario, work: Path) -> Target:
        port = free_port()
        upstream_port = self.upstream_url.rsplit(":", 1)[1]
        listen_ssl, ssl_block, scheme = "", "", "http"
        if scenario.tls:
            cert, key = self.tls_files()
            listen_ssl, scheme = " ssl", "https"
            ssl_block = (f"        ssl_certificate {cert};\n"
                         f"        ssl_certificate_key {key};\n"
                         f"        ssl_protocols TLSv1.2 TLSv1.3;\n"
                         f"        ssl_ciphers {DEFAULT_TLS_CIPHERS};\n"
                         f"        ssl_prefer_server_ciphers on;\n")
            if scenario.client_certificates:
                client_ca, _, _ = self.client_pki()
                ssl_block += (f"        ssl_client_certificate {client_ca};\n"
                              f"        ssl_verify_client on;\n")
        proc = self._start_nginx(
            f"{work.name}-nginx-proxy", "proxy.conf", self.proxy_cpus,
            {"port": port, "upstream_port": upstream_port, "upstream_name": NGINX_UPSTREAM,
             "locations": scenario.nginx_locations, "listen_ssl": listen_ssl,
             "ssl": ssl_block, "workers": self.settings.workers,
             **connection_limits(self.settings.connections, open_file_limit())},
        )
        wait_ready(proc, lambda: port_open(port), f"nginx listened on {port}")
        return Target(BASELINE, f"{scheme}://127.0.0.1:{port}", proc)

    def write_haproxy_config(self, scenario: Scenario, directory: Path, port: int) -> Path:
        """The HAProxy peer's config for ``scenario`` (which must have one)."""
        assert scenario.haproxy is not None
        upstream_port = self.upstream_url.rsplit(":", 1)[1]
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "haproxy.cfg"
        text = (BENCH_DIR / "haproxy" / "proxy.cfg").read_text()
        conf.write_text(render_template(text, {
            "port": port, "upstream_port": upstream_port, "rules": scenario.haproxy.rules,
            "threads": self.settings.workers,
            "maxconn": connection_limits(self.settings.connections)["maxconn"]}))
        return conf

    def start_haproxy(self, scenario: Scenario, work: Path) -> Target:
        assert self.tools.haproxy is not None
        port = free_port()
        directory = work / "haproxy"
        conf = self.write_haproxy_config(scenario, directory, port)
        # -db: stay in the foreground, one process (nbthread 1 is in the config).
        argv = [self.tools.haproxy, "-db", "-f", str(conf)]
        proc = self.sup.start(f"{work.name}-haproxy", self.tools.pinned(self.proxy_cpus, argv),
                              directory / "process.log")
        wait_ready(proc, lambda: port_open(port), f"haproxy listened on {port}")
        return Target(PEER, f"http://127.0.0.1:{port}", proc)

    def write_gateway_config(self, scenario: Scenario, gw_dir: Path, port: int) -> Path:
        apps = gw_dir / "apps"
        apps.mkdir(parents=True)
        base: dict[str, Any] = {
            "listen_address": "127.0.0.1",
            "listen_port": port,
            "secret": SECRET,
            "app_path": str(apps),
            "storage": {"type": "memory"},
        }
        workers = self.settings.workers
        if scenario.needs_redis or workers > 1:
            # Several workers need a shared store (fastgate refuses the memory
            # store with workers > 1).
            base["storage"] = {"type": "redis", "host": "127.0.0.1", "port": self.start_redis()}
        if workers > 1:
            base["workers"] = workers
        if self.settings.connections > 4096:
            # fastgate's default (half the file limit, for an upstream socket per
            # client) would refuse past 9,872 under a hard limit of 20,000; set as
            # HAProxy's maxconn is (the idle-ish connections share a few upstream ones).
            base["http_server_options"] = {
                "max_connections": connection_limits(self.settings.connections)["maxconn"]}
        if scenario.tls:
            cert, key = self.tls_files()
            base["http_server_options"] = {**base.get("http_server_options", {}),
                                           "use_ssl": True, "certificates": [
                {"domain_name": "localhost", "cert_file": str(cert), "key_file": str(key)}]}
        extra = dict(scenario.gateway_config)
        if workers > 1 and extra.get("storage", {}).get("type") == "memory":
            extra.pop("storage")
        config = substitute(deep_merge(base, extra), UPSTREAM_URL, self.upstream_url)
        for n, api in enumerate(scenario.api_definitions):
            api = substitute(api, UPSTREAM_URL, self.upstream_url)
            if scenario.client_certificates:
                api = substitute(api, CLIENT_CA_ID, self.client_pki()[2])
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(api.get("api_id") or n))
            (apps / f"{n:03d}-{name}.json").write_text(json.dumps(api, indent=2) + "\n")
        for rel, text in scenario.files.items():
            path = gw_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace(UPSTREAM_URL, self.upstream_url))
        config_path = gw_dir / "gateway.json"
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        return config_path

    def start_fastgate(self, scenario: Scenario, work: Path) -> tuple[Target, str]:
        port = free_port()
        gw_dir = work / "fastgate"
        config_path = self.write_gateway_config(scenario, gw_dir, port)
        secret = json.loads(config_path.read_text()).get("secret", SECRET)
        argv = [self.tools.fastgate, "run", "--config", str(config_path)]
        proc = self.sup.start(f"{work.name}-fastgate",
                              self.tools.pinned(self.proxy_cpus, argv),
                              gw_dir / "process.log", cwd=gw_dir)
        url = f"{'https' if scenario.tls else 'http'}://127.0.0.1:{port}"
        wait_ready(proc, lambda: client.request(url, path="/hello").status == 200,
                   "GET /hello answered 200")
        if scenario.client_certificates:
            client_ca, _, ca_id = self.client_pki()
            resp = client.request(url, "POST", "/tyk/certs", {"X-Tyk-Authorization": secret},
                                  client_ca.read_bytes())
            if resp.status != 200 or resp.json().get("id") != ca_id:
                raise BenchError(f"fastgate did not store the client CA: {resp.status} "
                                 f"{resp.body[:300]!r}")
        return Target(FASTGATE, url, proc), secret

    # -- load

    def paced_script(self, plan: WrkPlan, rate: float) -> Path:
        """The plan's script (or plain GETs) paced at ``rate`` requests/s in all."""
        self._paced_scripts += 1
        directory = self.tmp / "paced"
        directory.mkdir(exist_ok=True)
        return luagen.write_paced_script(directory / f"paced-{self._paced_scripts}.lua",
                                         luagen.interval_ms(rate, WRK_THREADS), plan.script)

    def run_wrk(self, target: Target, scenario: Scenario, plan: WrkPlan, duration_s: int,
                round_no: int, *, rate: float | None = None,
                connections: int | None = None) -> RunMeasurement:
        """One wrk run against ``target``: as fast as wrk goes, or paced at ``rate``
        (default ``--rate``) over ``connections`` (default ``--connections``)."""
        connections = connections if connections is not None else self.settings.connections
        rate = rate if rate is not None else self.settings.rate
        script = plan.script
        if rate is not None:
            script = self.paced_script(plan, rate)
        argv = [self.tools.wrk, f"-t{WRK_THREADS}", f"-c{connections}",
                f"-d{duration_s}s", "--latency"]
        if script is not None:
            argv += ["-s", str(script)]
        for header in scenario.wrk_headers:
            argv += ["-H", header]
        argv.append(target.url + scenario.path)
        script_args = plan.script_args
        if plan.feed is not None:
            # Before the CPU samples: a feed may mint tokens here (everything is idle).
            script_args = plan.feed.script_args(target.name, round_no, duration_s)
        if script_args:
            argv += ["--", *script_args]
        argv = self.tools.pinned(self.tools.load_cpu, argv)

        assert self.upstream is not None
        self.check_alive(target.proc, f"before round {round_no}")
        self.check_alive(self.upstream, f"before round {round_no}")
        proxy_before = procstat.sample_tree(target.proc.pid)
        upstream_before = procstat.sample_tree(self.upstream.pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cores_before = procstat.read_core_times()
        started = time.monotonic()
        done, rss_peak = self._wrk_sampling_rss(argv, target, duration_s + 60)
        wall = time.monotonic() - started
        cores_after = procstat.read_core_times()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        proxy_after = procstat.sample_tree(target.proc.pid)
        upstream_after = procstat.sample_tree(self.upstream.pid)

        if done.returncode != 0:
            raise BenchError(f"wrk exited {done.returncode}: {argv}\n{done.stderr}{done.stdout}")
        if done.stderr.strip():
            # wrk reports a broken Lua script on stderr and then runs plain GETs anyway:
            # that would measure a workload other than the scenario's.
            raise BenchError(f"wrk complained: {argv}\n{done.stderr.strip()}")
        try:
            result = parse_wrk_output(done.stdout)
        except WrkOutputError as exc:
            raise BenchError(str(exc)) from exc
        self.check_alive(target.proc, f"in round {round_no}")
        feed = None
        if plan.feed is not None:
            feed = plan.feed.after_run(target.name, round_no, done.stdout,
                                       result.requests_per_sec)
        proxy = procstat.cpu_delta(proxy_before, proxy_after)
        upstream = procstat.cpu_delta(upstream_before, upstream_after)
        wrk_cpu = (children_after.ru_utime - children_before.ru_utime
                   + children_after.ru_stime - children_before.ru_stime)
        proxy_core_busy = proxy_core_steal = load_core_busy = None
        proxy_cpu, load_cpu = self.tools.proxy_cpu, self.tools.load_cpu
        shared = self.shared_cores
        if proxy_cpu is not None and load_cpu is not None and not shared:
            tick = procstat.CLOCK_TICKS_PER_SEC
            proxy_core_busy = (cores_after[proxy_cpu].busy - cores_before[proxy_cpu].busy) / tick
            proxy_core_steal = (cores_after[proxy_cpu].steal
                                - cores_before[proxy_cpu].steal) / tick
            load_core_busy = (cores_after[load_cpu].busy - cores_before[load_cpu].busy) / tick
        return RunMeasurement(
            target=target.name,
            round=round_no,
            wrk=result,
            wall_s=wall,
            proxy_cpu_s=proxy.seconds,
            proxy_pids=proxy.pids,
            vanished_pids=proxy.vanished,
            upstream_cpu_s=upstream.seconds,
            wrk_cpu_s=wrk_cpu,
            proxy_core_busy_s=proxy_core_busy,
            proxy_core_steal_s=proxy_core_steal,
            load_core_busy_s=load_core_busy,
            feed=dict(feed.info) if feed is not None else None,
            feed_problems=feed.problems if feed is not None else (),
            feed_notes=feed.notes if feed is not None else (),
            feed_retry=feed.retry if feed is not None else False,
            proxy_rss_kb=rss_peak,
            shared_cores=shared,
            target_rate=rate,
            paced_latency_us=(luagen.parse_paced_latency(done.stdout)
                              if rate is not None else None),
        )

    @staticmethod
    def _wrk_sampling_rss(argv: list[str], target: Target, timeout: float
                          ) -> tuple[subprocess.CompletedProcess[str], int | None]:
        """Run wrk to its end, sampling the target tree's resident set meanwhile
        (every 0.5 s, from the load core); wrk's result and the highest sample."""
        peak: int | None = None
        deadline = time.monotonic() + timeout
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as wrk:
            while True:
                try:
                    out, err = wrk.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    rss = procstat.tree_rss_kb(target.proc.pid)
                    if rss is not None:
                        peak = rss if peak is None else max(peak, rss)
                    if time.monotonic() > deadline:
                        wrk.kill()
                        wrk.communicate()
                        raise
        return subprocess.CompletedProcess(argv, wrk.returncode, out, err), peak

    def measure_round(self, target: Target, scenario: Scenario, plan: WrkPlan,
                      round_no: int) -> RunMeasurement:
        """One round's run of ``target``; run again once when the plan's feed asks
        (its pool ran out: the target ran faster than its earlier runs said)."""
        run = self.run_wrk(target, scenario, plan, self.settings.duration_s, round_no)
        if run.feed_retry:
            print("  " + progress_line(run, self.settings.rounds)
                  + "  -> the token pool ran out; grown, the round runs again", flush=True)
            run = self.run_wrk(target, scenario, plan, self.settings.duration_s, round_no)
        return run

    @staticmethod
    def check_alive(proc: ManagedProcess, when: str) -> None:
        if not proc.alive():
            status = proc.popen.returncode
            how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            raise BenchError(f"{proc.name} {how} {when}:\n{proc.log_tail()}")

    def probe(self, target: Target, probe: Probe) -> None:
        try:
            resp = client.request(target.url, probe.method, probe.path, dict(probe.headers),
                                  probe.body)
        except OSError as exc:
            raise BenchError(f"probe {probe.method} {probe.path} to {target.name}: {exc}") from exc
        if not 200 <= resp.status < 300:
            raise BenchError(
                f"probe {probe.method} {probe.path} to {target.name} answered {resp.status} "
                f"(must be 2xx: a proxy answering errors fast is no benchmark): "
                f"{resp.body[:300]!r}"
            )

    # -- one scenario

    def run_scenario(self, scenario: Scenario) -> dict[str, Any]:
        settings = self.settings
        work = self.tmp / f"scenario-{scenario.name}"
        work.mkdir()
        if scenario.prepare is not None:
            prepare_dir = work / "prepare"
            prepare_dir.mkdir()
            scenario = scenario.prepare(PrepareContext(
                work_dir=prepare_dir, cache_dir=settings.cache_dir, rounds=settings.rounds,
                duration_s=settings.duration_s, warmup_s=settings.warmup_s,
                connections=settings.connections, wrk_threads=WRK_THREADS,
            ), scenario)
        targets: list[Target] = []
        peer_notes: list[str] = []
        if scenario.client_certificates and self.tools.haproxy is None:
            raise BenchError(f"{scenario.name} needs HAProxy, the client-certificate relay "
                             f"(wrk cannot present one): {self.tools.haproxy_missing}")
        try:
            if self.tools.nginx is not None:
                targets.append(self.start_nginx_proxy(scenario, work))
            fastgate, secret = self.start_fastgate(scenario, work)
            targets.append(fastgate)

            plan = WrkPlan(
                script=BENCH_DIR / "wrk" / scenario.wrk_script if scenario.wrk_script else None,
                probe=scenario.probe,
            )
            if scenario.setup is not None:
                setup_dir = work / "setup"
                setup_dir.mkdir()
                plan = scenario.setup(SetupContext(
                    scenario=scenario, gateway_url=fastgate.url, secret=secret,
                    upstream_url=self.upstream_url, work_dir=setup_dir, plan=plan,
                ))
            # After the setup hook: its files (a key map, say) are complete now.
            maxconn = connection_limits(self.settings.connections)["maxconn"]
            if scenario.haproxy is not None:
                if self.tools.haproxy is None:
                    peer_notes.append(f"no HAProxy row: {self.tools.haproxy_missing}")
                elif haproxy_fds(maxconn) > open_file_limit():
                    peer_notes.append(
                        f"no HAProxy row: maxconn {maxconn} needs a file limit of "
                        f"{haproxy_fds(maxconn)} (two sockets a connection), this one is "
                        f"{open_file_limit()} and cannot be raised")
                else:
                    targets.insert(len(targets) - 1, self.start_haproxy(scenario, work))
            if self.settings.workers > 1:
                peer_notes.append(self.workers_note())
            if scenario.client_certificates:
                # Every target through the same kind of relay, which presents
                # the client certificate wrk cannot.
                targets = [self.start_relay(target, work) for target in targets]
                # fastgate trusts the CA once its "certs" event is handled.
                wait_ready(targets[-1].proc,
                           lambda: client.request(targets[-1].url, path=scenario.path).status
                           == 200, "fastgate admitted the client certificate")
            for target in targets:
                self.probe(target, plan.probe)
            for refusal in scenario.refusals:
                for target in targets:
                    if target.name in refusal.statuses:
                        self.probe_refused(target, refusal)

            warmup_problems: list[str] = []
            warmup_notes: list[str] = []
            if settings.warmup_s:
                for target in targets:
                    warm = self.run_wrk(target, scenario, plan, settings.warmup_s, 0)
                    warmup_problems += [f"{target.name} warm-up: {p}" for p in warm.problems()]
                    warmup_notes += [f"{target.name} {n}" for n in warm.feed_notes]
            for target in targets:
                target.pinned = {pid: procstat.cpus_allowed(pid)
                                 for pid in procstat.sample_tree(target.proc.pid)}

            summaries = {target.name: TargetSummary(target.name) for target in targets}
            for round_no in range(1, settings.rounds + 1):
                order = targets if round_no % 2 else list(reversed(targets))
                for target in order:
                    run = self.measure_round(target, scenario, plan, round_no)
                    summaries[target.name].runs.append(run)
                    print("  " + progress_line(run, settings.rounds), flush=True)
            paced_runs = self.measure_latency(targets, scenario, plan, summaries)
        finally:
            for target in targets:
                self.sup.stop(target.proc)
            for relay in self.relays:
                self.sup.stop(relay)
            self.relays.clear()

        ordered = [summaries[t.name] for t in targets]
        result: dict[str, Any] = {
            "name": scenario.name,
            "description": scenario.description,
            "wrk_script": str(plan.script) if plan.script else None,
            "targets": {s.target: s.to_json() for s in ordered},
            "pinned_cpus": {t.name: {str(pid): cpus for pid, cpus in t.pinned.items()}
                            for t in targets},
            "table": render_table(ordered),
            "problems": warmup_problems + [f"{s.target} {p}" for s in ordered
                                           for p in s.problems()],
            "notes": peer_notes + warmup_notes + [f"{s.target} {n}" for s in ordered
                                                  for n in s.notes()],
            "peers": {BASELINE: "plain proxy"} if BASELINE in summaries else {},
        }
        if BASELINE in summaries:
            result["ratios_to_nginx"] = {
                s.target: ratios(s, summaries[BASELINE]) for s in ordered if s.target != BASELINE
            }
            if scenario.rps_goal_vs_nginx is not None:
                result["goal"] = goal_result(
                    scenario.rps_goal_vs_nginx,
                    result["ratios_to_nginx"][FASTGATE]["requests_per_sec"])
        if PEER in summaries and scenario.haproxy is not None:
            result["peers"][PEER] = scenario.haproxy.description
            result["ratios_to_haproxy"] = {
                s.target: ratios(s, summaries[PEER]) for s in ordered if s.target != PEER
            }
        if self.settings.workers > 1:
            result["workers"] = {"count": self.settings.workers,
                                 "proxy_cpus": str(self.proxy_cpus),
                                 "shared_cores": self.shared_cores}
        if paced_runs:
            paced = paced_summary(paced_runs, BASELINE, FASTGATE)
            paced["connections"] = self.settings.latency_connections
            paced["load_fraction"] = self.settings.latency_load
            paced["table"] = render_paced_table(paced)
            result["paced"] = paced
            result["problems"] += [f"paced {run.target}: {p}" for run in paced_runs
                                   for p in run.problems()]
            result["notes"] += [f"paced {run.target}: {n}" for run in paced_runs
                                for n in run.notes()]
        return result

    def workers_note(self) -> str:
        """What the cores do with --workers N (printed under the table)."""
        n = self.settings.workers
        where = f"CPUs {self.proxy_cpus}"
        text = (f"--workers {n}: fastgate workers={n} (SO_REUSEPORT, redis store), nginx "
                f"worker_processes {n}, HAProxy nbthread {n}, all on {where}")
        if self.shared_cores:
            text += (f"; {n} workers sharing the {len(self.tools.cpus)} cores with the load "
                     "(wrk, the upstream, redis): req/s is what the box gives, not a per-core "
                     "figure; compare with nginx's row of the same run")
        return text

    def measure_latency(self, targets: list[Target], scenario: Scenario, plan: WrkPlan,
                        summaries: Mapping[str, TargetSummary]) -> list[RunMeasurement]:
        """With ``--latency``: one run per target paced at ``latency_load`` x nginx's
        median req/s of the rounds just measured (nothing without nginx)."""
        settings = self.settings
        base = summaries.get(BASELINE)
        if not settings.latency or base is None or not base.requests_per_sec:
            return []
        rate = settings.latency_load * base.requests_per_sec
        runs = []
        for target in targets:
            run = self.run_wrk(target, scenario, plan, settings.duration_s, settings.rounds + 1,
                               rate=rate, connections=settings.latency_connections)
            runs.append(run)
            lat = run.paced_latency_us or {}
            print(f"  paced {rate:,.0f} req/s  {target.name:9} "
                  f"{run.wrk.requests_per_sec:>10,.0f} req/s  p50 "
                  f"{format_latency(lat.get('p50'))}  p99 {format_latency(lat.get('p99'))}  "
                  f"p99.9 {format_latency(lat.get('p99.9'))}", flush=True)
        return runs

    def probe_refused(self, target: Target, refusal: RefusalProbe) -> None:
        """``refusal``'s request must get its status from ``target``: a peer that
        lets a wrong key through would make the comparison false."""
        probe, want = refusal.probe, refusal.statuses[target.name]
        try:
            resp = client.request(target.url, probe.method, probe.path, dict(probe.headers),
                                  probe.body)
        except OSError as exc:
            raise BenchError(f"refusal probe to {target.name}: {exc}") from exc
        if resp.status != want:
            raise BenchError(
                f"refusal probe {probe.method} {probe.path} with headers "
                f"{sorted(probe.headers)} to {target.name} answered {resp.status}, not {want}: "
                f"it does not do the scenario's checks")


def progress_line(run: RunMeasurement, rounds: int) -> str:
    cpu = run.cpu_us_per_request
    util = run.proxy_utilisation
    p99 = run.wrk.p99_us
    text = (f"round {run.round}/{rounds}  {run.target:9} {run.wrk.requests_per_sec:>10,.0f} req/s"
            f"  p99 {p99 / 1e3 if p99 is not None else float('nan'):6.2f}ms"
            f"  {cpu if cpu is not None else float('nan'):6.1f} us/req"
            f"  proxy CPU {util if util is not None else 0:4.0%}")
    problems = run.problems()
    if problems:
        text += "  !!! " + "; ".join(problems)
    return text


# ---------------------------------------------------------------- machine info


def stale_extensions() -> list[str]:
    """``_core`` Cython sources with no compiled module, or newer than it."""
    stale = []
    for pyx in sorted((REPO / "fastgate" / "_core").glob("*.pyx")):
        built = list(pyx.parent.glob(pyx.stem + ".*.so"))
        if not built or max(so.stat().st_mtime for so in built) < pyx.stat().st_mtime:
            stale.append(str(pyx.relative_to(REPO)))
    return stale


def _command_output(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout + done.stderr).strip() or None


def _first_line(text: str | None) -> str | None:
    return text.splitlines()[0] if text else None


def machine_info(tools: Tools, upstream_kind: str) -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = _command_output([tools.wrk, "-v"])
    commit = _command_output(["git", "rev-parse", "--verify", "-q", "HEAD"])
    status = _command_output(["git", "status", "--porcelain"])
    try:
        fastgate_version: str | None = importlib.metadata.version("fastgate")
    except importlib.metadata.PackageNotFoundError:
        fastgate_version = None
    core = REPO / "fastgate" / "_core"
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _command_output([tools.nginx, "-v"]) if tools.nginx else None,
        "haproxy": _first_line(_command_output([tools.haproxy, "-v"])) if tools.haproxy else None,
        "wrk": wrk_version.splitlines()[0] if wrk_version else None,
        "git_commit": commit if commit and re.fullmatch(r"[0-9a-f]{40}", commit) else None,
        "git_dirty": bool(status) if status is not None else None,
        "fastgate_version": fastgate_version,
        "fastgate_no_extensions": os.environ.get("FASTGATE_NO_EXTENSIONS", ""),
        "compiled_core_modules": sorted(p.name.split(".")[0] for p in core.glob("*.so")),
        "stale_core_modules": stale_extensions(),
        "upstream": upstream_kind,
        "proxy_cpu": tools.proxy_cpu,
        "load_cpu": tools.load_cpu,
    }


# ---------------------------------------------------------------- entry point


def _interrupt(signum: int, frame: object) -> None:
    # Further signals are ignored so they cannot cut the cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    if settings is None:
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        tools = find_tools()
        nofile = raise_file_limit(max(settings.connections, settings.latency_connections
                                      if settings.latency else 0))
    except BenchError as exc:
        print(f"tools/bench: {exc}", file=sys.stderr)
        return 2
    if tools.nginx is None:
        print("!!! nginx not found: upstream is `fastgate echo` and there is NO baseline "
              "(apt-get install -y nginx-light)", file=sys.stderr)
    if tools.proxy_cpu is None:
        print("!!! fewer than 2 CPUs (or no taskset): nothing is pinned, numbers are noisy",
              file=sys.stderr)
    else:
        # The harness itself (probes, /proc sampling) stays off the proxy's core.
        assert tools.load_cpu is not None
        os.sched_setaffinity(0, {tools.load_cpu})

    stale = stale_extensions()
    if stale and not os.environ.get("FASTGATE_NO_EXTENSIONS"):
        print(f"!!! not built, or changed since the build: {', '.join(stale)} — fastgate runs "
              "old code or the pure-Python twins; rebuild (tools/test does)", file=sys.stderr)
    if os.environ.get("FASTGATE_NO_EXTENSIONS"):
        print("note: FASTGATE_NO_EXTENSIONS is set: fastgate runs its pure-Python twins",
              file=sys.stderr)

    selected = scenarios.by_name(list(settings.scenarios))
    proxy_cpus = tools.proxy_cpus(settings.workers)
    paced = f", paced at {settings.rate:,.0f} req/s" if settings.rate is not None else ""
    print(f"fastgate bench: {len(selected)} scenario(s), {settings.rounds} round(s) x "
          f"{settings.duration_s}s, warm-up {settings.warmup_s}s, wrk -t{WRK_THREADS} "
          f"-c{settings.connections}{paced}; proxy on CPU {proxy_cpus}, wrk + upstream on CPU "
          f"{tools.load_cpu}; open files {nofile[0]}", flush=True)
    if tools.shares_load_core(settings.workers):
        print(f"note: --workers {settings.workers}: the proxies' workers share the "
              f"{len(tools.cpus)} cores with wrk and the upstream; per-core figures "
              "(proxy CPU, disturbance notes) do not apply", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="fastgate-bench-"))
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    upstream_kind = ""
    try:
        with Supervisor() as sup:
            bench = Bench(settings, tools, tmp, sup)
            bench.start_upstream()
            upstream_kind = bench.upstream_kind
            for scenario in selected:
                print(f"\n== {scenario.name}: {scenario.description}", flush=True)
                try:
                    results.append(bench.run_scenario(scenario))
                except (BenchError, StartupError, OSError,
                        subprocess.TimeoutExpired) as exc:
                    failures.append(f"{scenario.name}: {exc}")
                    print(f"!!! scenario {scenario.name} failed (details below)", file=sys.stderr)
    except StartupError as exc:
        failures.append(str(exc))
        print(f"!!! {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted: all benchmark processes stopped", file=sys.stderr)
        return 130
    finally:
        if settings.keep_tmp:
            print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "machine": machine_info(tools, upstream_kind),
        "settings": {
            "rounds": settings.rounds,
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "connections": settings.connections,
            "wrk_threads": WRK_THREADS,
            "workers": settings.workers,
            "proxy_cpus": str(proxy_cpus),
            "rate": settings.rate,
            "latency": ({"load": settings.latency_load,
                         "connections": settings.latency_connections}
                        if settings.latency else None),
            "open_files": nofile[0],
        },
        "scenarios": results,
        "failures": failures,
    }
    print_summary(results, failures, settings)
    settings.json_path.parent.mkdir(parents=True, exist_ok=True)
    settings.json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {settings.json_path}")
    flagged = failures or any(r["problems"] for r in results)
    return 1 if flagged else 0


def print_summary(results: list[dict[str, Any]], failures: list[str],
                  settings: Settings) -> None:
    print(f"\n==== results: median of {settings.rounds} round(s) x {settings.duration_s}s, "
          f"{settings.connections} connections; ratio = target / nginx (plain proxy); "
          f"x {PEER} = target / HAProxy doing the scenario's work, same run")
    for result in results:
        print(f"\n{result['name']}: {result['description']}")
        if PEER in result.get("peers", {}):
            print(f"  peer: {PEER} = {result['peers'][PEER]}")
        print(result["table"])
        if "goal" in result:
            print(f"  {describe_goal(FASTGATE, result['goal'])}")
        if "paced" in result:
            paced = result["paced"]
            print(f"  paced at {paced['rate']:,.0f} req/s ({paced['load_fraction']:.0%} of "
                  f"nginx's req/s), {paced['connections']} connections; latency from send "
                  "(wrk delay(): no coordinated-omission correction):")
            print("  " + paced["table"].replace("\n", "\n  "))
            line = describe_paced_goal(paced, FASTGATE)
            if line:
                print(f"  {line}")
        for note in result["notes"]:
            print(f"  note: {note}")
        if result["problems"]:
            print("  " + "!" * 70)
            print("  !!! ERRORS — these numbers are NOT a benchmark:")
            for problem in result["problems"]:
                print(f"  !!!   {problem}")
            print("  " + "!" * 70)
    for failure in failures:
        print(f"\n!!! FAILED {failure}")
