"""What every ``/tyk/`` handler shares: the reply shapes Tyk's REST API uses,
the error a handler raises to answer with one, and request-body decoding.

Tyk's shapes (``gateway/api.go``):

* ``apiModifyKeySuccess``: ``{"key": ..., "status": "ok", "action": ...}``,
  plus ``"key_hash"`` when it is not empty -- and fastgate's ``"warnings"``
  (a list of strings, when not empty) for what Tyk only logs;
* ``apiOk`` / ``apiStatusMessage``: ``{"status": "ok", "message": ...}``;
* ``apiStatusMessage`` for errors: ``{"status": "error", "message": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

import orjson

from fastgate import responses
from fastgate.config import ConfigError

#: Tyk's message for a body that is not the JSON object expected.
MALFORMED = "Request malformed"


class AdminError(Exception):
    """Raised by a handler to answer ``{"status": "error", "message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> bytes:
        return error(self.status, self.message)


def error(status: int, message: str) -> bytes:
    """Tyk's ``apiError`` reply."""
    return responses.json_response(status, {"status": "error", "message": message})


def ok(payload: object, status: int = 200) -> bytes:
    """A JSON reply (an object, a list, or ``null``)."""
    return responses.json_response(status, payload)


def modified(key: str, action: str, key_hash: str = "",
             warnings: Sequence[str] = ()) -> bytes:
    """Tyk's ``apiModifyKeySuccess``: ``key_hash`` only when not empty (``omitempty``);
    ``warnings`` (fastgate's) only when there are some."""
    payload: dict[str, object] = {"key": key, "status": "ok", "action": action}
    if key_hash:
        payload["key_hash"] = key_hash
    if warnings:
        payload["warnings"] = list(warnings)
    return responses.json_response(200, payload)


def status_ok(message: str) -> bytes:
    """Tyk's ``apiOk(message)``: ``{"status": "ok", "message": ...}``."""
    return responses.json_response(200, {"status": "ok", "message": message})


def parse_query(query: bytes) -> dict[str, str]:
    """Query parameters, first value of each (Go's ``URL.Query().Get``)."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        params.setdefault(name, value)
    return params


def decode_object(body: bytes, message: str = MALFORMED) -> dict[str, object]:
    """The JSON object in ``body``; AdminError(400, message) for anything else."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AdminError(400, message) from None
    if not isinstance(obj, dict):
        raise AdminError(400, message)
    return obj


def field_message(exc: ConfigError) -> str:
    """``'<field>: <message>'`` of a validation error, without a file name
    (the request body has none)."""
    return f"{exc.field}: {exc.message}" if exc.field else exc.message


def flag(params: Mapping[str, str], name: str) -> bool:
    """A boolean query flag such as ``?hashed=1``.

    Tyk counts any non-empty value as set (even ``0``); fastgate also reads
    ``0`` and ``false`` as unset, so that ``?hashed=false`` does what it says.
    """
    return params.get(name, "").lower() not in ("", "0", "false")
