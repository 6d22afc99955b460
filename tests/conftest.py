"""Shared fixtures: the echo upstream, gateway processes and raw HTTP/1.1 connections.

Everything here runs real processes over real sockets:

* ``echo`` (session): ``python -m fastgate.echo`` on a free port; ``echo.url(path)``,
  ``echo.count()`` (the ``/__count`` counters), ``echo.rss_kib()``.
* ``gateway_factory`` (per test) and ``module_gateway_factory`` (per module):
  ``factory(apis=[...], http_server_options={...}, **config) -> Gateway``
  writes a gateway config and API definitions into a temporary directory,
  starts ``python -m fastgate run --config FILE``, waits for ``GET /hello``
  and, at teardown, sends SIGTERM and checks that the gateway exited 0.
  Its stdout/stderr go to files that are attached to the report of a
  failing test.
* ``make_api(api_id, listen_path, target_url=None, **fields) -> dict``: a
  keyless Tyk Classic definition (target defaults to the echo server).
* ``raw(port, host=...) -> RawConnection``: a plain socket speaking bytes,
  with a strict HTTP/1.1 response reader (closed at teardown).
* ``free_port() -> int``.
* ``storage``: a gateway config's ``storage`` section, once for the memory
  store and once for a real, flushed ``redis-server``.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

HOST = "127.0.0.1"
SECRET = "test-secret-352"
READY_TIMEOUT = 10.0


# --------------------------------------------------------------------------- ports


def find_free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    return find_free_port


def read_rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    """One HTTP response as read off the wire."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    head: bytes  # status line and header block, CRLFs included
    chunk_sizes: list[int] = field(default_factory=list)  # when chunked

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}

    def json(self) -> Any:
        return json.loads(self.body)


_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([1-5][0-9][0-9]) ?([^\r\n]*)")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class RawConnection:
    """A client socket that sends exact bytes and parses responses strictly."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def _fill(self) -> bool:
        """Read more into the buffer; False at EOF."""
        if self.eof:
            return False
        data = self.sock.recv(256 * 1024)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self, limit: int = 1 << 20) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return line
            if len(self.buf) > limit:
                raise AssertionError("line too long")
            if not self._fill():
                raise EOFError(f"connection closed inside a line: {bytes(self.buf)[:200]!r}")

    def read_head(self) -> tuple[bytes, list[tuple[str, str]], str, int, str]:
        status_line = self._line()
        match = _STATUS_LINE.fullmatch(status_line)
        assert match, f"bad status line {status_line!r}"
        head = [status_line]
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            head.append(line)
            if not line:
                break
            assert b"\n" not in line and b"\r" not in line, f"bare CR/LF in {line!r}"
            name, sep, value = line.partition(b":")
            assert sep and _TOKEN.fullmatch(name), f"bad header line {line!r}"
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        return (
            b"\r\n".join(head) + b"\r\n",
            headers,
            match.group(1).decode(),
            int(match.group(2)),
            match.group(3).decode("latin-1"),
        )

    def read_response(self, *, head: bool = False) -> RawResponse:
        """Read one response (a 1xx interim response is returned as is).

        ``head``: the request was HEAD, so no body follows whatever the headers say.
        """
        raw_head, headers, version, status, reason = self.read_head()
        resp = RawResponse(version, status, reason, headers, b"", raw_head)
        if head or status < 200 or status in (204, 304):
            return resp
        te = [v.strip().lower() for v in resp.header_all("transfer-encoding")]
        lengths = resp.header_all("content-length")
        if te:
            assert not lengths, "response with both Transfer-Encoding and Content-Length"
            assert te[-1] == "chunked", f"unexpected Transfer-Encoding {te}"
            body = bytearray()
            while True:
                size_line = self._line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line():  # trailers
                        pass
                    break
                resp.chunk_sizes.append(size)
                body += self._take(size)
                assert self._take(2) == b"\r\n", "chunk not followed by CRLF"
            resp.body = bytes(body)
        elif lengths:
            assert len(set(lengths)) == 1, f"several Content-Lengths {lengths}"
            resp.body = self._take(int(lengths[0]))
        else:
            while self._fill():
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def request(self, data: bytes, *, head: bool = False) -> RawResponse:
        self.send(data)
        return self.read_response(head=head)

    def wait_closed(self, timeout: float) -> bool:
        """True when the peer closes (FIN or RST) within ``timeout``; data is discarded."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


@pytest.fixture
def raw() -> Iterator[Callable[..., RawConnection]]:
    conns: list[RawConnection] = []

    def connect(port: int, host: str = HOST, timeout: float = 10.0) -> RawConnection:
        conn = RawConnection(port, host, timeout)
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def get_request(path: str, host: str = "example.test", extra: str = "") -> bytes:
    """A minimal keep-alive GET as bytes."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


@pytest.fixture(scope="session")
def http_get() -> Callable[..., bytes]:
    return get_request


# --------------------------------------------------------------------------- processes


def _wait_for_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """First stdout line of ``proc`` (empty on EOF or timeout)."""
    result: list[bytes] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


@dataclass
class EchoServer:
    """A running ``fastgate.echo`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    host: str = HOST

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def count(self) -> dict[str, int]:
        resp = requests.get(self.url("/__count"), timeout=5)
        resp.raise_for_status()
        counts: dict[str, int] = resp.json()
        return counts

    def rss_kib(self) -> int:
        return read_rss_kib(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def start_echo(port: int = 0, host: str = HOST) -> EchoServer:
    """Start ``python -m fastgate.echo`` and wait until it prints its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastgate.echo", "--host", host, "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    line = _wait_for_line(proc, READY_TIMEOUT)
    match = re.search(rb"listening on http://[^:]+:(\d+)", line)
    if not match:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        pytest.fail(f"echo server did not start (first line {line!r})")
    return EchoServer(proc, int(match.group(1)), host)


@pytest.fixture(scope="session")
def echo() -> Iterator[EchoServer]:
    server = start_echo()
    yield server
    assert server.stop() == 0


@pytest.fixture
def echo_factory() -> Iterator[Callable[[], EchoServer]]:
    """Fresh echo servers (for tests that stop or measure one)."""
    servers: list[EchoServer] = []

    def start() -> EchoServer:
        server = start_echo()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------- gateway


def api_definition(
    api_id: str,
    listen_path: str,
    target_url: str,
    *,
    strip_listen_path: bool = True,
    preserve_host_header: bool = False,
    active: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A keyless Tyk Classic API definition; ``fields`` are merged on top."""
    api: dict[str, Any] = {
        "api_id": api_id,
        "name": f"API {api_id}",
        "org_id": "test-org",
        "active": active,
        "use_keyless": True,
        "proxy": {
            "listen_path": listen_path,
            "target_url": target_url,
            "strip_listen_path": strip_listen_path,
            "preserve_host_header": preserve_host_header,
        },
        "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
    }
    api.update(fields)
    return api


def gateway_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastgate", *args]


@dataclass
class Gateway:
    """A gateway process and the directory holding its configuration."""

    root: Path
    port: int
    secret: str
    config: dict[str, Any]
    config_path: Path
    app_dir: Path
    stdout_path: Path
    stderr_path: Path
    proc: subprocess.Popen[bytes] | None = None
    host: str = HOST
    expected_exit: int | None = 0  # None: the test checked the exit itself
    #: "https" for a gateway with use_ssl; ``verify`` is then the CA file
    #: requests checks its certificate with.
    scheme: str = "http"
    verify: Any = True

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    # -- configuration files --
    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def write_api(self, api: dict[str, Any], filename: str | None = None) -> Path:
        """Write (or replace) an API definition file; named ``<api_id>.json`` by default."""
        api_id = api["api_definition"]["api_id"] if "api_definition" in api else api["api_id"]
        path = self.app_dir / (filename or f"{api_id}.json")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(api, indent=2))
        tmp.replace(path)
        return path

    def write_api_text(self, filename: str, text: str) -> Path:
        path = self.app_dir / filename
        path.write_text(text)
        return path

    def remove_api(self, filename_or_id: str) -> None:
        name = filename_or_id if filename_or_id.endswith(".json") else filename_or_id + ".json"
        (self.app_dir / name).unlink()

    def reload(self, *, block: bool = True, secret: str | None = None) -> requests.Response:
        """``GET /tyk/reload[?block=true]`` with the admin secret."""
        url = self.url("/tyk/reload" + ("?block=true" if block else ""))
        headers = {"X-Tyk-Authorization": self.secret if secret is None else secret}
        return requests.get(url, headers=headers, timeout=15, verify=self.verify)

    # -- process --
    def start(self, *, wait: bool = True) -> None:
        self.write_config()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                gateway_command("run", "--config", str(self.config_path)),
                stdout=out,
                stderr=err,
                cwd="/",  # relative paths in the config must not depend on the cwd
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"gateway exited with {self.proc.returncode} before it was ready\n"
                    + self.logs()
                )
            try:
                resp = requests.get(self.url("/hello"), timeout=1, verify=self.verify)
                if resp.status_code == 200:
                    return
                last = resp.status_code
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.05)
        pytest.fail(f"gateway not ready after {timeout}s (last: {last})\n" + self.logs())

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM (if still running) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if timeout is None:
            timeout = float(self.config.get("graceful_shutdown_timeout_duration", 5)) + 10
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def logs(self) -> str:
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = path.read_text(errors="replace") if path.exists() else ""
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            parts.append(f"--- gateway {label} ({path}) ---\n{text}")
        return "\n".join(parts)


class GatewayFactory:
    """Creates gateways in fresh directories and stops them all at teardown."""

    def __init__(self, tmp_dir: Callable[[], Path], echo: EchoServer) -> None:
        self._tmp_dir = tmp_dir
        self._echo = echo
        self.gateways: list[Gateway] = []

    def __call__(
        self,
        apis: list[dict[str, Any]] | None = None,
        *,
        http_server_options: dict[str, Any] | None = None,
        start: bool = True,
        tls_verify: Any = True,
        **config: Any,
    ) -> Gateway:
        root = self._tmp_dir()
        app_dir = root / "apps"
        app_dir.mkdir()
        (root / "policies.json").write_text("{}")
        options = {
            "read_timeout": 30,
            "write_timeout": 30,
            "idle_timeout": 30,
            "max_header_bytes": 16384,
        }
        options.update(http_server_options or {})
        port = find_free_port()
        full: dict[str, Any] = {
            "listen_address": HOST,
            "listen_port": port,
            "secret": SECRET,
            "app_path": "apps",
            "policies": {"policy_source": "file", "policy_record_name": "policies.json"},
            "storage": {"type": "memory"},
            "http_server_options": options,
            "proxy_default_timeout": 30,
            "graceful_shutdown_timeout_duration": 5,
        }
        full.update(config)
        gw = Gateway(
            root=root,
            port=port,
            secret=full["secret"],
            config=full,
            config_path=root / "gateway.json",
            app_dir=app_dir,
            stdout_path=root / "gateway.stdout",
            stderr_path=root / "gateway.stderr",
            scheme="https" if options.get("use_ssl") else "http",
            verify=tls_verify,
        )
        if apis is None:
            apis = [api_definition("a", "/a/", self._echo.base_url)]
        for api in apis:
            gw.write_api(api)
        gw.write_config()
        self.gateways.append(gw)
        if start:
            gw.start()
        return gw

    def close(self) -> None:
        problems = []
        for gw in self.gateways:
            if gw.proc is None:
                continue
            try:
                code = gw.stop()
            except subprocess.TimeoutExpired:
                problems.append(f"gateway on port {gw.port} ignored SIGTERM\n{gw.logs()}")
                continue
            if gw.expected_exit is not None and code != gw.expected_exit:
                problems.append(
                    f"gateway on port {gw.port} exited {code} after SIGTERM "
                    f"(expected {gw.expected_exit})\n{gw.logs()}"
                )
        if problems:
            pytest.fail("\n\n".join(problems))


@pytest.fixture
def gateway_factory(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoServer
) -> Iterator[GatewayFactory]:
    """Per-test gateways: ``gateway_factory(apis=[...], **config) -> Gateway``."""
    factory = GatewayFactory(lambda: tmp_path_factory.mktemp("gw"), echo)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_gateway_factory(
    tmp_path_factory: pytest.TempPathFactory, echo: EchoServer
) -> Iterator[GatewayFactory]:
    """Gateways shared by the tests of one module (start them in a module fixture)."""
    factory = GatewayFactory(lambda: tmp_path_factory.mktemp("gw"), echo)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def make_api() -> Callable[..., dict[str, Any]]:
    """``make_api(api_id, listen_path, target_url, **fields)``; see :func:`api_definition`."""
    return api_definition


@pytest.fixture(scope="session")
def gateway_cmd() -> Callable[..., list[str]]:
    """``gateway_cmd("check", "--config", path)``: argv running the fastgate CLI."""
    return gateway_command


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the logs of the gateways a failing test used to its report."""
    report = yield
    if report.failed:
        seen: set[int] = set()
        gateways: list[Gateway] = []
        for fixture_value in getattr(item, "funcargs", {}).values():
            if isinstance(fixture_value, Gateway):
                gateways.append(fixture_value)
            elif isinstance(fixture_value, GatewayFactory):
                gateways.extend(fixture_value.gateways)
        for gw in gateways:
            if id(gw) in seen or gw.proc is None:
                continue
            seen.add(id(gw))
            with contextlib.suppress(OSError):
                report.sections.append((f"gateway :{gw.port} logs", gw.logs()))
    return report


# --------------------------------------------------------------------------- redis
#
# * ``redis_server`` (session): a real ``redis-server`` on a free port (no
#   persistence, a temporary dir): ``.host``, ``.port``, ``.url``, ``.client()``
#   (one shared sync ``redis.Redis``), ``.stop()`` (SIGKILL, like a crash),
#   ``.start()``, ``.restart()`` (same port), ``.pause()``/``.resume()``
#   (SIGSTOP/SIGCONT: a server that accepts connections but never answers),
#   ``.flush()``.
# * ``redis_flush`` (per test): ``redis_server`` running, resumed and FLUSHALLed.
# * ``redis_cluster`` (session): a real 3-master Redis Cluster: ``.addrs``
#   (["127.0.0.1:P", ...]), ``.nodes`` (RedisServer each), ``.client()`` (one
#   shared sync ``RedisCluster``), ``.flush()``; ``redis_cluster_flush`` per test.
# * ``run`` (per test): a fresh uvloop event loop; ``run(awaitable, timeout=30)``
#   runs it to completion, ``run.loop`` is the loop. Closed (tasks cancelled,
#   executor shut down) at teardown.
# * ``store_backend`` (per test, parametrised ``memory`` / ``redis`` /
#   ``redis-cluster``): ``.kind``, ``.config`` (StorageConfig), ``.new(**kw)``
#   -> another started store on the same data (closed at teardown).
# * ``store``: ``store_backend.new()`` -- a started, empty store. Tests run once
#   per backend: ``def test_x(store, run): run(store.set_session("k", b"{}"))``.

REDIS_READY_TIMEOUT = 5.0


def _redis_binary(name: str) -> str:
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install redis-server), "
                    "or deselect these tests with -m 'not redis'")
    return path


def _redis_ping(host: str, port: int) -> bool:
    """True when a server answers PING on (host, port)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` process on a fixed port, restartable."""

    def __init__(self, root: Path, port: int, extra_args: tuple[str, ...] = (),
                 host: str = HOST) -> None:
        self.root = root
        self.host = host
        self.port = port
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._client: Any = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the server (no-op when running) and wait until it answers PING."""
        if self.running:
            return
        argv = [
            _redis_binary("redis-server"),
            "--port", str(self.port), "--bind", self.host,
            "--save", "", "--appendonly", "no",
            "--dir", str(self.root), "--logfile", str(self.log_path),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.paused = False
        deadline = time.monotonic() + REDIS_READY_TIMEOUT
        while not _redis_ping(self.host, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start\n{text[-4000:]}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the server (SIGKILL: no shutdown, like a crash) and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        self.paused = False

    def restart(self) -> None:
        """Kill and start again on the same port (the data is lost: no persistence)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def ensure_running(self) -> None:
        self.resume()
        self.start()

    def client(self) -> Any:
        """A sync ``redis.Redis`` on this server (one shared instance; closed at teardown)."""
        if self._client is None:
            import redis

            self._client = redis.Redis(host=self.host, port=self.port, socket_timeout=5)
        return self._client

    def flush(self) -> None:
        self.client().flushall()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.resume()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def start_redis_server(root: Path, extra_args: tuple[str, ...] = ()) -> RedisServer:
    """A started RedisServer on a free port (retries if the port gets taken meanwhile)."""
    error: Exception | None = None
    for attempt in range(5):
        server = RedisServer(root / f"try{attempt}", find_free_port(), extra_args)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"could not start redis-server: {error}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A gateway config's ``storage``: the memory store, or a real (flushed) redis-server."""
    if request.param == "memory":
        return {"type": "memory"}
    server = request.getfixturevalue("redis_flush")
    return {"type": "redis", "host": server.host, "port": server.port}


@pytest.fixture
def redis_flush(redis_server: RedisServer) -> RedisServer:
    """``redis_server``, running (restarted/resumed if a test left it down) and empty."""
    redis_server.ensure_running()
    redis_server.flush()
    return redis_server


class RedisClusterServers:
    """A Redis Cluster of masters only, each a RedisServer."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes
        self._client: Any = None

    @property
    def addrs(self) -> list[str]:
        return [node.addr for node in self.nodes]

    def client(self) -> Any:
        """A sync ``redis.cluster.RedisCluster`` (one shared instance; closed at teardown)."""
        if self._client is None:
            from redis.cluster import ClusterNode, RedisCluster

            self._client = RedisCluster(
                startup_nodes=[ClusterNode(node.host, node.port) for node in self.nodes],
                socket_timeout=5,
            )
        return self._client

    def state_ok(self) -> bool:
        for node in self.nodes:
            try:
                info = node.client().cluster("info")  # parsed into a dict by redis-py
            except Exception:
                return False
            if info.get("cluster_state") != "ok":
                return False
        return True

    def wait_ok(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.state_ok():
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.02)

    def ensure_running(self) -> None:
        restarted = False
        for node in self.nodes:
            restarted |= not node.running
            node.ensure_running()
        if restarted:
            self.wait_ok()

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for node in self.nodes:
            node.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    root = tmp_path_factory.mktemp("redis-cluster")
    nodes: list[RedisServer] = []
    cluster = RedisClusterServers(nodes)
    try:
        for i in range(3):
            nodes.append(start_redis_server(
                root / f"node{i}",
                ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "5000"),
            ))
        create = subprocess.run(
            [_redis_binary("redis-cli"), "--cluster", "create", *cluster.addrs,
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=30,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout.decode()}"
                               f"{create.stderr.decode()}")
        cluster.wait_ok()
    except BaseException:
        cluster.close()
        raise
    yield cluster
    cluster.close()


@pytest.fixture
def redis_cluster_flush(redis_cluster: RedisClusterServers) -> RedisClusterServers:
    """``redis_cluster``, every node running and every master empty."""
    redis_cluster.ensure_running()
    redis_cluster.flush()
    return redis_cluster


# --------------------------------------------------------------------------- event loop


class LoopRunner:
    """A private uvloop event loop; ``runner(awaitable)`` runs one to completion."""

    def __init__(self) -> None:
        import uvloop

        self.loop = uvloop.new_event_loop()

    def __call__(self, awaitable: Any, timeout: float = 30.0) -> Any:
        import asyncio

        return self.loop.run_until_complete(asyncio.wait_for(awaitable, timeout))

    def close(self) -> None:
        import asyncio

        loop = self.loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture
def run() -> Iterator[LoopRunner]:
    runner = LoopRunner()
    yield runner
    runner.close()


# --------------------------------------------------------------------------- stores


@dataclass
class StoreBackend:
    """One kind of store for a test: make as many instances on the same data as needed."""

    kind: str  # "memory" | "redis" | "redis-cluster"
    config: Any  # fastgate.config.StorageConfig
    run: LoopRunner
    stores: list[Any] = field(default_factory=list)

    def new(self, config: Any = None, **kwargs: Any) -> Any:
        """A started store on this backend (``kwargs``: e.g. ``timeout=`` for Redis).

        Redis stores share the data (two instances = two gateway nodes); each
        memory store is a world of its own. ``config`` replaces ``self.config``.
        """
        from fastgate.storage import create_store

        store = create_store(self.config if config is None else config, **kwargs)
        self.run(store.start())
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self.stores):
            self.run(store.close())
        self.stores.clear()


STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", id="redis-cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORE_KINDS)
def store_backend(request: pytest.FixtureRequest, run: LoopRunner) -> Iterator[StoreBackend]:
    from fastgate.config import StorageConfig

    kind = request.param
    if kind == "memory":
        config = StorageConfig(type="memory")
    elif kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_flush")
        config = StorageConfig(type="redis", host=server.host, port=server.port)
    else:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster_flush")
        config = StorageConfig(type="redis", enable_cluster=True, addrs=tuple(cluster.addrs))
    backend = StoreBackend(kind, config, run)
    yield backend
    backend.close()


@pytest.fixture
def store(store_backend: StoreBackend) -> Any:
    """A started, empty store: once on memory, once on Redis, once on a Redis Cluster."""
    return store_backend.new()


# -- the Gateway REST API, for tests that manage keys and policies -------------------


class Admin:
    """The gateway's /tyk/ REST API."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url
        self.headers = {"X-Tyk-Authorization": secret}

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base_url + path, json=body, headers=self.headers,
                                timeout=10, **kwargs)

    def add_key(self, key: str, session: dict[str, Any]) -> dict[str, Any]:
        resp = self.call("POST", f"/tyk/keys/{key}", session)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def update_key(self, key: str, session: dict[str, Any]) -> None:
        resp = self.call("PUT", f"/tyk/keys/{key}", session)
        assert resp.status_code == 200, resp.text

    def delete_key(self, key: str) -> None:
        resp = self.call("DELETE", f"/tyk/keys/{key}")
        assert resp.status_code == 200, resp.text

    def put_policy(self, policy_id: str, policy: dict[str, Any]) -> None:
        resp = self.call("PUT", f"/tyk/policies/{policy_id}", policy)
        if resp.status_code == 404:
            resp = self.call("POST", "/tyk/policies", {**policy, "id": policy_id})
        assert resp.status_code == 200, resp.text


@pytest.fixture
def admin_for() -> Callable[[Any], Admin]:
    def make(gateway: Any) -> Admin:
        return Admin(gateway.base_url, gateway.secret)

    return make
