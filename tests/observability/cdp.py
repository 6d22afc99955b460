"""A small Chrome DevTools Protocol client for the dashboard's browser test.

Starts a headless Chromium (Debian's ``chromium``) with a fresh profile and
``--remote-debugging-port=0``, reads the port it chose from the profile's
``DevToolsActivePort`` file, opens a page target and talks to it over the
websocket (``websockets.sync.client``).  Events the page sends (console
messages, exceptions, log entries) are kept in :attr:`Page.events` for the
test to inspect.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect


def chromium_binary() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    """A DevTools command answered with an error, or the browser misbehaved."""


class Browser:
    """A headless Chromium process with its own profile directory."""

    def __init__(self, binary: str, profile: Path, *, timeout: float = 30.0) -> None:
        self.profile = profile
        self.stderr_path = profile.parent / (profile.name + ".stderr")
        profile.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                 "--disable-extensions", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                 "--window-size=1400,1100", "--remote-debugging-port=0",
                 f"--user-data-dir={profile}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=err)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if lines and lines[0].strip().isdigit():
                    self.port = int(lines[0])
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CdpError("chromium did not open its DevTools port:\n" + self.stderr())
            time.sleep(0.05)

    def stderr(self) -> str:
        """What the browser wrote on stderr (for failure messages)."""
        return self.stderr_path.read_text(errors="replace")[-5000:]

    def page(self) -> Page:
        """A connection to the browser's first page target."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        for target in targets:
            if target.get("type") == "page":
                ws = connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20,
                             open_timeout=10)
                # Entered as its context manager (websockets >= 17.1 warns otherwise).
                return Page(ws.__enter__())
        raise CdpError(f"no page target in {targets!r}")

    def close(self) -> None:
        """Stop the browser (terminate, then kill)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Page:
    """One page target: commands with :meth:`send`, events in :attr:`events`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its result (events meanwhile are kept)."""
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CdpError(f"{method}: no answer in {timeout}s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == ident:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                return
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The JSON value of ``expression`` in the page; raises on an exception."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0, interval: float = 0.1) -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(interval)
        raise CdpError(f"{expression!r} still {value!r} after {timeout}s")

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any(e["method"] == "Page.loadEventFired" for e in self.events):
                return
            self.pump(0.1)
        raise CdpError(f"{url} did not load")

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the page (the whole page, not just the window), saved to ``path``."""
        result = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(result["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def problems(self) -> list[dict[str, Any]]:
        """Exceptions, console errors and error log entries seen so far."""
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            console_error = (method == "Runtime.consoleAPICalled"
                             and params.get("type") in ("error", "assert"))
            log_error = (method == "Log.entryAdded"
                         and params.get("entry", {}).get("level") == "error")
            if method == "Runtime.exceptionThrown" or console_error or log_error:
                out.append(event)
        return out

    def close(self) -> None:
        """Close the websocket."""
        self.ws.close()
