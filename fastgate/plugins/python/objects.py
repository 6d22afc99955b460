"""The objects a Python hook is given, shaped as Tyk's coprocess protobuf messages.

* ``request`` -- :class:`TykCoProcessRequest`: ``request.object`` is the
  ``MiniRequestObject`` (``headers`` -- each field's first value, ``Host``
  included --, ``set_headers``, ``delete_headers``, ``body`` (UTF-8 text;
  absent with ``raw_body_only``), ``raw_body``, ``url``, ``params``,
  ``add_params``, ``extended_params``, ``delete_params``, ``method``,
  ``request_uri``, ``scheme``, ``return_overrides``), with Tyk's helpers
  ``add_header``, ``delete_header``, ``add_param``, ``delete_param``,
  ``get_header``;
* ``session`` -- :class:`SessionState`: the proto ``SessionState``
  (snake_case session fields; ``metadata`` is the session's ``meta_data``,
  text to text); unset fields read as their zero value;
* ``metadata`` -- a dict (the session's metadata);
* ``spec`` -- ``{"OrgID", "APIID", "bundle_hash", "config_data"}``
  (``config_data`` as a JSON string);
* ``response`` (response hooks) -- :class:`ResponseObject`: ``status_code``,
  ``raw_body``, ``body``, ``headers`` (first values), ``multivalue_headers``
  (``key`` and ``values``).

Hooks change these in place (and return them, as Tyk's signatures say).
"""

from __future__ import annotations

import copy
from typing import Any

from fastgate.plugins.changes import RequestChanges, RequestView

__all__ = [
    "Header",
    "HeaderList",
    "MiniRequestObject",
    "ResponseObject",
    "ReturnOverrides",
    "SessionState",
    "TykCoProcessRequest",
]


class ReturnOverrides:
    """Tyk's ``ReturnOverrides``: an answer the hook gives instead of going on."""

    def __init__(self) -> None:
        self.response_code = -1
        self.response_error = ""
        self.headers: dict[str, str] = {}
        self.override_error = False
        self.response_body = ""


class MiniRequestObject:
    """Tyk's ``MiniRequestObject`` (``request.object``)."""

    def __init__(self, view: RequestView, *, raw_body_only: bool) -> None:
        self.headers: dict[str, str] = view.first_values()
        self.set_headers: dict[str, str] = {}
        self.delete_headers: list[str] = []
        self.raw_body: bytes = view.body
        self.body: str = "" if raw_body_only else view.body.decode("utf-8", "replace")
        self.url: str = view.url
        self.params: dict[str, str] = view.first_params()
        self.add_params: dict[str, str] = {}
        self.extended_params: dict[str, str] = {}
        self.delete_params: list[str] = []
        self.return_overrides = ReturnOverrides()
        self.method: str = view.method
        self.request_uri: str = view.request_uri
        self.scheme: str = view.scheme
        self.raw_certificates: list[bytes] = []


class TykCoProcessRequest:
    """The ``request`` a hook gets: ``request.object`` and Tyk's helpers."""

    def __init__(self, view: RequestView, *, raw_body_only: bool = False) -> None:
        self.view = view
        self.object = MiniRequestObject(view, raw_body_only=raw_body_only)
        self._body = self.object.body
        self._headers = dict(self.object.headers)

    def add_header(self, key: str, value: str) -> None:
        """Set header ``key`` on the request forwarded."""
        self.object.set_headers[key] = value

    def delete_header(self, key: str) -> None:
        """Remove header ``key`` from the request forwarded."""
        self.object.delete_headers.append(key)

    def add_param(self, key: str, value: str) -> None:
        """Set query parameter ``key``."""
        self.object.add_params[key] = value

    def delete_param(self, key: str) -> None:
        """Remove query parameter ``key``."""
        self.object.delete_params.append(key)

    def get_header(self, key: str) -> str | None:
        """The first value of header ``key`` (as Tyk names it: ``X-Api-Key``), or None."""
        return self.object.headers.get(key)

    def untouched(self) -> bool:
        """Nothing the hook could have changed was changed (the common case:
        a hook that only reads)."""
        obj = self.object
        return (not obj.set_headers and not obj.delete_headers and not obj.add_params
                and not obj.delete_params and not obj.extended_params
                and obj.url == self.view.url and obj.method == self.view.method
                and obj.raw_body is self.view.body and obj.body == self._body
                and obj.headers == self._headers)

    def changes(self) -> RequestChanges:
        """What the hook asked for.  **Beyond Tyk**, which reads back only
        the ``set_``/``delete_`` lists, ``url``, params and ``raw_body``: a
        header the hook wrote into ``headers`` (or removed from it) is set
        (or removed) too, and a changed ``body`` text is sent when
        ``raw_body`` was left as it was."""
        obj = self.object
        set_headers = dict(obj.set_headers)
        delete = list(obj.delete_headers)
        if obj.headers != self._headers:
            for name, value in obj.headers.items():
                if self._headers.get(name) != value and name not in set_headers:
                    set_headers[name] = value
            delete += [name for name in self._headers if name not in obj.headers]
        body: bytes | None = None
        if obj.raw_body != self.view.body:
            body = bytes(obj.raw_body)
        elif obj.body != self._body:
            body = obj.body.encode("utf-8")
        extended = {k: v if isinstance(v, list) else [v] for k, v in obj.extended_params.items()}
        return RequestChanges(set_headers=set_headers, delete_headers=delete, url=obj.url,
                              add_params=dict(obj.add_params), extended_params=extended,
                              delete_params=list(obj.delete_params), method=obj.method,
                              body=body)


#: The proto ``SessionState`` fields and their zero values (``metadata`` is
#: the session's ``meta_data``).
_SESSION_FIELDS: dict[str, Any] = {
    "last_check": 0, "allowance": 0.0, "rate": 0.0, "per": 0.0, "expires": 0,
    "quota_max": 0, "quota_renews": 0, "quota_remaining": 0, "quota_renewal_rate": 0,
    "access_rights": {}, "org_id": "", "oauth_client_id": "", "oauth_keys": {},
    "basic_auth_data": {}, "jwt_data": {}, "hmac_enabled": False, "hmac_secret": "",
    "is_inactive": False, "apply_policy_id": "", "data_expires": 0, "monitor": {},
    "enable_detailed_recording": False, "metadata": {}, "tags": [], "alias": "",
    "last_updated": "", "id_extractor_deadline": 0, "session_lifetime": 0,
    "apply_policies": [], "certificate": "", "max_query_depth": 0,
}


class SessionState:
    """Tyk's proto ``SessionState``: attribute access; a field never set
    reads as its zero value (made on first access: nothing is copied for
    the fields a hook does not touch)."""

    def __init__(self, session: dict[str, Any] | None = None) -> None:
        for name, value in (session or {}).items():
            if name == "meta_data":
                name = "metadata"
                value = {str(k): v if isinstance(v, str) else str(v)
                         for k, v in (value or {}).items()} if isinstance(value, dict) else {}
            elif isinstance(value, dict | list):
                value = copy.deepcopy(value)
            self.__dict__[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in _SESSION_FIELDS:
            raise AttributeError(name)
        value = copy.copy(_SESSION_FIELDS[name])
        self.__dict__[name] = value
        return value

    def to_dict(self) -> dict[str, Any]:
        """The fields set, as Tyk's JSON session object (``meta_data``...)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name.startswith("_"):
                continue
            out["meta_data" if name == "metadata" else name] = value
        return out

    @property
    def empty(self) -> bool:
        """Every field holds its zero value (Tyk: no session)."""
        return all(value == _SESSION_FIELDS.get(name) for name, value in self.__dict__.items()
                   if not name.startswith("_"))


class Header:
    """One ``multivalue_headers`` entry."""

    def __init__(self, key: str = "", values: list[str] | None = None) -> None:
        self.key = key
        self.values = list(values or [])


class HeaderList(list[Header]):
    """``multivalue_headers``: a list with the protobuf ``add(key=, values=)``."""

    def add(self, key: str = "", values: list[str] | None = None) -> Header:
        """Append and return a new entry."""
        header = Header(key, values)
        self.append(header)
        return header


class ResponseObject:
    """Tyk's ``ResponseObject`` for response hooks."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = status
        self.raw_body = body
        self.body = body.decode("utf-8", "replace")
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name, []).append(value)
        self.headers: dict[str, str] = {name: values[0] for name, values in grouped.items()}
        self.multivalue_headers = HeaderList(Header(k, v) for k, v in grouped.items())
        self._raw = body
        self._body = self.body
        self._headers = dict(self.headers)

    def result(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` after the hook: ``multivalue_headers``
        and ``raw_body`` as Tyk reads them back, and **beyond Tyk** a changed
        ``headers`` map or ``body`` text."""
        grouped = {h.key: list(h.values) for h in self.multivalue_headers}
        if self.headers != self._headers:
            for name, value in self.headers.items():
                if self._headers.get(name) != value:
                    grouped[name] = [value]
            for name in self._headers:
                if name not in self.headers:
                    grouped.pop(name, None)
        headers = [(name, value) for name, values in grouped.items() for value in values]
        body = bytes(self.raw_body)
        if body == self._raw and self.body != self._body:
            body = self.body.encode("utf-8")
        return int(self.status_code), headers, body
