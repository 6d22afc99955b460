"""``/tyk/apis``: API definitions through the Gateway REST API.

As Tyk's ``apiHandler``, ``handleAddApi``, ``handleUpdateApi`` and
``handleDeleteAPI`` (``gateway/api.go``), definitions are files in
``app_path`` named ``<api_id>.json``.  Unlike Tyk, which waits for the next
``/tyk/reload``, fastgate applies a change at once: the file is written
atomically (temporary file, fsync, rename, fsync of the directory), the
gateway reloads, and a ``"apis"`` event reloads every other worker and node
(it reaches this worker too, whose reload then finds nothing changed and
says nothing: one change, one "reloaded" line).
When the reload refuses the new set of definitions (a listen path already
taken, ...), the previous file is put back and the reply is 400 with the
reason: nothing half-written stays behind.

* ``GET /tyk/apis``: every definition loaded (a list); ``GET /tyk/apis/{id}``:
  one, or 404 "API not found".
* ``POST /tyk/apis[/{id}]``: add; ``api_id`` from the body, else the path,
  else generated (Tyk's GenerateAPIID: a uuid in hex).  An ``api_id``
  already loaded is replaced in place, as Tyk does.  Action ``added``.
* ``PUT /tyk/apis/{id}``: replace a loaded API (404 otherwise); the body's
  ``api_id`` must match the path.  Action ``modified``.
* ``DELETE /tyk/apis/{id}``: remove its file.  Action ``deleted``.

An ``api_id`` must be a safe file name (letters, digits, ``-``, ``_``, and
``.`` except first): otherwise 400 "Invalid API ID", as Tyk.  Bodies are
validated by :func:`fastgate.apidef.parse_api_definition`: 400 "Validation
of API Definition failed. Reason: <field>: <message>."
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.apidef import ApiSpec, parse_api_definition
from fastgate.config import ConfigError

if TYPE_CHECKING:
    from fastgate.admin.control import Control

log = logging.getLogger("fastgate.admin")

NOT_FOUND = "API not found"
INVALID_ID = "Invalid API ID"
ID_MISMATCH = ("Request APIID does not match that in Definition! For Update operations "
               "these must match.")
UPDATE_NEEDS_ID = "Must specify an apiID to update"
DELETE_NEEDS_ID = "Must specify an apiID to delete"
WRITE_FAILED = "file object creation failed, write error"
DELETE_FAILED = "Delete failed"

#: A file name that cannot leave app_path nor hide from the loader.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def safe_api_id(api_id: str) -> bool:
    """Whether ``api_id`` can name ``app_path/<api_id>.json`` safely."""
    return _SAFE_ID.fullmatch(api_id) is not None


class ApisApi:
    """The ``/tyk/apis`` handlers."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway

    def _spec(self, api_id: str) -> ApiSpec | None:
        found = None
        for spec in self.gateway.specs:
            if spec.api_id == api_id:
                if spec.active:
                    return spec
                found = found or spec
        return found

    def _file_of(self, spec: ApiSpec | None, api_id: str) -> str:
        """The file holding ``spec`` when it is one of app_path's, else ``<api_id>.json``."""
        app_path = os.path.abspath(self.gateway.config.app_path)
        if spec is not None and spec.source:
            source = os.path.abspath(spec.source)
            if os.path.dirname(source) == app_path:
                return source
        return os.path.join(app_path, api_id + ".json")

    async def listing(self) -> bytes:
        return replies.ok([spec.raw for spec in self.gateway.specs])

    async def get(self, api_id: str) -> bytes:
        spec = self._spec(api_id)
        if spec is None:
            raise AdminError(404, NOT_FOUND)
        return replies.ok(spec.raw)

    async def add(self, path_id: str, body: bytes) -> bytes:
        return await self._write(path_id, body, "added")

    async def update(self, path_id: str, body: bytes) -> bytes:
        if not path_id:
            raise AdminError(400, UPDATE_NEEDS_ID)
        if not safe_api_id(path_id):
            raise AdminError(400, INVALID_ID)
        if self._spec(path_id) is None:
            raise AdminError(404, NOT_FOUND)
        return await self._write(path_id, body, "modified")

    async def _write(self, path_id: str, body: bytes, action: str) -> bytes:
        document = replies.decode_object(body)
        definition = _definition(document)
        body_id = definition.get("api_id")
        if body_id is not None and not isinstance(body_id, str):
            raise AdminError(400, _invalid("api_id: expected a string"))
        if body_id and path_id and body_id != path_id:
            raise AdminError(400, ID_MISMATCH)
        api_id = body_id or path_id or uuid.uuid4().hex
        definition["api_id"] = api_id
        if not safe_api_id(api_id):
            raise AdminError(400, INVALID_ID)
        path = self._file_of(self._spec(api_id), api_id)
        try:
            parse_api_definition(document, path)
        except ConfigError as exc:
            raise AdminError(400, _invalid(replies.field_message(exc))) from None
        self._replace(path, orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        await self.gateway.store.publish("apis", api_id)
        return replies.modified(api_id, action)

    async def delete(self, api_id: str) -> bytes:
        if not api_id:
            raise AdminError(400, DELETE_NEEDS_ID)
        if not safe_api_id(api_id):
            raise AdminError(400, INVALID_ID)
        spec = self._spec(api_id)
        if spec is None:
            raise AdminError(404, NOT_FOUND)
        path = self._file_of(spec, api_id)
        if not os.path.isfile(path):
            raise AdminError(500, DELETE_FAILED)
        self._replace(path, None)
        await self.gateway.store.publish("apis", api_id)
        return replies.modified(api_id, "deleted")

    def _replace(self, path: str, data: bytes | None) -> None:
        """Put ``data`` at ``path`` (None: remove it) and reload; undo both on failure.

        Synchronous on purpose: no other request runs on this worker between
        the write and the reload, so no one sees the file half-applied.
        """
        try:
            with open(path, "rb") as file:
                previous: bytes | None = file.read()
        except FileNotFoundError:
            previous = None
        except OSError as exc:
            log.error("cannot read %s: %s", path, exc.strerror or exc)
            raise AdminError(500, WRITE_FAILED if data is not None else DELETE_FAILED) from None
        try:
            _put(path, data)
        except OSError as exc:
            log.error("cannot write %s: %s", path, exc.strerror or exc)
            raise AdminError(500, WRITE_FAILED if data is not None else DELETE_FAILED) from None
        error = self.gateway.reload()
        if error is None:
            return
        try:
            _put(path, previous)
        except OSError as exc:
            log.error("cannot restore %s after a failed reload: %s", path, exc.strerror or exc)
        raise AdminError(400, error)


def _definition(document: dict[str, Any]) -> dict[str, Any]:
    """The definition in a request body: bare, or wrapped as a Tyk Dashboard
    export (``{"api_definition": {...}}``)."""
    wrapped = document.get("api_definition")
    if "api_id" not in document and isinstance(wrapped, dict):
        return wrapped
    return document


def _invalid(reason: str) -> str:
    return f"Validation of API Definition failed. Reason: {reason}."


def _put(path: str, data: bytes | None) -> None:
    """Atomically replace ``path`` by ``data``, or remove it (None); durable on return."""
    directory = os.path.dirname(path)
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        # A hidden name the loader skips, in the same directory so rename is atomic.
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
