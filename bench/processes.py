"""Start and stop the benchmark's processes without leaving any behind.

Each process gets its own session (so its own process group): Ctrl-C at the terminal
reaches the harness only, which then stops every group it started, in reverse order,
from a ``finally``.  Stopping sends SIGTERM to the whole group (nginx's master and
worker, fastgate and its workers), waits, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType


class StartupError(RuntimeError):
    """A process died or did not become ready; the message carries its log's tail."""


class ManagedProcess:
    def __init__(self, name: str, argv: Sequence[str], log_path: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _group_exists(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what remains after ``timeout`` s."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.popen.poll()  # reap the leader, or it lingers as a zombie in the group
                if not self._group_exists():
                    return
                time.sleep(0.02)
        self.popen.poll()

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid}>"


class Supervisor:
    """Owns every process the harness starts; leaving the ``with`` stops them all."""

    def __init__(self) -> None:
        self._procs: list[ManagedProcess] = []

    def start(self, name: str, argv: Sequence[str], log_path: Path,
              cwd: Path | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, argv, log_path, cwd)
        self._procs.append(proc)
        return proc

    def stop(self, proc: ManagedProcess) -> None:
        if proc in self._procs:
            self._procs.remove(proc)
        proc.stop()

    def stop_all(self) -> None:
        while self._procs:
            self._procs.pop().stop()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(proc: ManagedProcess, ready: Callable[[], bool], what: str,
               timeout: float = 30.0) -> None:
    """Poll ``ready()`` until true; StartupError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartupError(
                f"{proc.name} exited with status {proc.popen.returncode} before {what}; "
                f"{proc.argv}\n--- {proc.log_path} ---\n{proc.log_tail()}"
            )
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise StartupError(
        f"{proc.name} not ready after {timeout:.0f}s ({what}); {proc.argv}\n"
        f"--- {proc.log_path} ---\n{proc.log_tail()}"
    )
