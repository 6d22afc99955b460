"""The JavaScript worker process: QuickJS contexts, one per API, driven over a pipe.

This file runs as a script in a child process (``python worker.py``), never
imported by the gateway: it imports nothing of fastgate's, so it starts in
the time the interpreter and QuickJS take.  The parent
(:mod:`fastgate.plugins.js.runtime`) talks to it over stdin/stdout in
frames: a 4-byte big-endian length, then a JSON object.

Parent to worker:

* ``{"op": "load", "ctx": id, "name": file, "source": js, "memory": bytes,
  "stack": bytes, "prelude": js}`` -- create context ``id`` if needed (its
  memory and stack limits, Tyk's ``TykJS`` shim, the host functions) and
  run ``source`` in it.  Answer ``{"ok": true}`` or ``{"error": message}``.
* ``{"op": "run", "ctx": id, "expr": js}`` -- evaluate an expression that
  yields a string (the JSON Tyk's scripts hand back).  Answer
  ``{"result": string}`` or ``{"error": message}``.

Worker to parent, while a ``run`` is under way:

* ``{"host": name, "args": [...]}`` -- a host function the script called
  (``TykMakeHttpRequest``, ``TykBatchRequest``, ``TykGetKeyData``,
  ``TykSetKeyData``); the parent answers ``{"value": string or null}`` and
  the script goes on with it: host functions are synchronous, as in otto.
* ``{"log": message, "raw": bool}`` -- ``log()`` / ``rawlog()``; no answer.

Time limits are the parent's: it kills this process when a call overruns
(QuickJS's own time limit cannot be combined with host functions).  So that
a runaway script never outlives the gateway, the process asks Linux to kill
it when its parent dies, and it ends when its stdin closes.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import json
import os
import struct
import sys
from typing import Any

import quickjs

_HEADER = struct.Struct(">I")


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): this process dies with the gateway."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: stdin's end still stops an idle worker
    if os.getppid() == 1:
        os._exit(0)


class _Channel:
    """Framed JSON over two binary streams."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        self.writer.write(_HEADER.pack(len(data)) + data)
        self.writer.flush()

    def receive(self) -> dict[str, Any] | None:
        head = self.reader.read(4)
        if len(head) < 4:
            return None
        (size,) = _HEADER.unpack(head)
        data = self.reader.read(size)
        if len(data) < size:
            return None
        message: dict[str, Any] = json.loads(data)
        return message


def _b64enc(text: object) -> str:
    return base64.b64encode(str(text).encode("utf-8", "surrogatepass")).decode("ascii")


def _b64dec(text: object) -> str | None:
    # Tyk: standard encoding, then the unpadded one; undefined when neither.
    data = str(text)
    for candidate in (data, data + "=" * (-len(data) % 4)):
        try:
            return base64.b64decode(candidate, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
    return None


def _rawb64enc(text: object) -> str:
    return _b64enc(text).rstrip("=")


def _rawb64dec(text: object) -> str | None:
    data = str(text)
    if "=" in data:
        return None
    return _b64dec(data)


class Worker:
    """The contexts of this process and the loop serving the parent."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.contexts: dict[str, quickjs.Context] = {}

    def _host(self, name: str) -> Any:
        channel = self.channel

        def call(*args: object) -> str | None:
            # Never raise out of a callable: QuickJS's binding is left broken.
            try:
                channel.send({"host": name, "args": [_plain(arg) for arg in args]})
                answer = channel.receive()
            except (OSError, ValueError):
                os._exit(1)
            if answer is None:
                os._exit(0)
            value = answer.get("value")
            return value if isinstance(value, str) else None

        return call

    def _log(self, raw: bool) -> Any:
        channel = self.channel

        def log(message: object = "") -> None:
            try:
                channel.send({"log": str(message), "raw": raw})
            except (OSError, ValueError):
                os._exit(1)

        return log

    def _context(self, message: dict[str, Any]) -> quickjs.Context:
        ctx_id = str(message["ctx"])
        context = self.contexts.get(ctx_id)
        if context is not None:
            return context
        context = quickjs.Context()
        memory = int(message.get("memory") or 0)
        if memory > 0:
            context.set_memory_limit(memory)
        stack = int(message.get("stack") or 0)
        if stack > 0:
            context.set_max_stack_size(stack)
        for name in ("TykMakeHttpRequest", "TykBatchRequest", "TykGetKeyData",
                     "TykSetKeyData"):
            context.add_callable("__host_" + name, self._host(name))
        context.add_callable("log", self._log(False))
        context.add_callable("rawlog", self._log(True))
        context.add_callable("__b64enc", _guard(_b64enc))
        context.add_callable("__b64dec", _guard(_b64dec))
        context.add_callable("__rawb64enc", _guard(_rawb64enc))
        context.add_callable("__rawb64dec", _guard(_rawb64dec))
        context.eval(str(message.get("prelude") or ""))
        self.contexts[ctx_id] = context
        return context

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        try:
            if op == "load":
                context = self._context(message)
                context.eval(str(message["source"]))
                context.gc()
                return {"ok": True}
            if op == "run":
                context = self.contexts[str(message["ctx"])]
                try:
                    result = context.eval(str(message["expr"]))
                finally:
                    context.gc()
                if isinstance(result, str):
                    return {"result": result}
                if result is None:
                    return {"error": "the function returned undefined, not a JSON string"}
                return {"error": f"the function returned {type(result).__name__}, "
                                 "not a JSON string"}
            if op == "ping":
                return {"ok": True}
        except quickjs.StackOverflow as exc:
            return {"error": f"stack overflow: {exc}"}
        except quickjs.JSException as exc:
            return {"error": str(exc).strip()}
        except KeyError as exc:
            return {"error": f"no such context {exc}"}
        return {"error": f"unknown operation {op!r}"}

    def serve(self) -> None:
        while True:
            message = self.channel.receive()
            if message is None:
                return
            self.channel.send(self.handle(message))


def _guard(function: Any) -> Any:
    def call(*args: object) -> object:
        try:
            return function(*args)
        except Exception:  # a callable must never raise into QuickJS
            return None

    return call


def _plain(value: object) -> object:
    """A host function's argument as JSON (Tyk reads each as a string)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, quickjs.Object):
        try:
            return json.loads(value.json())
        except (ValueError, quickjs.JSException):
            return None
    return str(value)


def main() -> None:
    """Serve the parent over stdin/stdout until stdin closes."""
    _die_with_parent()
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # Nothing else may write to the protocol stream.
    sys.stdout = sys.stderr
    Worker(_Channel(stdin, stdout)).serve()


if __name__ == "__main__":
    main()
