"""The Tyk session object (a key's data): validation, defaults and expiry.

A session is handled as the JSON object Tyk stores and serves
(``user.SessionState``): :func:`parse_session` checks a decoded object field
by field and returns a new dict in which every field Tyk's SessionState
has is present (Tyk 5.x LTS writes them all), with Tyk's zero value when it
was absent or ``null`` -- except that empty lists and objects are ``[]`` and
``{}`` where Go writes ``null``, so fastgate code never meets ``None`` there.
Fields fastgate does not know are kept as given.

Types follow Go's decoder: an integer field refuses ``1.5`` and ``1.0``, a
number field takes both, a boolean is not a number, and a string is never
converted.  fastgate refuses more than Tyk (which stores anything it can
decode): the limits (``rate``, ``per``, ``quota_max``, ``quota_remaining``,
``quota_renewal_rate``, ``throttle_interval``, ``throttle_retry_limit``,
``max_query_depth``, at the top and in ``access_rights.*.limit``) must be
``-1`` (Tyk's "unlimited") or at least 0, ``allowed_urls`` patterns must
compile (Go RE2 syntax; see :mod:`fastgate.session.access`) and must not
be empty, and ``basic_auth_data.hash_type`` must name a hash Tyk knows.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from fastgate.config import json_type_name
from fastgate.session.access import url_pattern_problem

__all__ = [
    "GO_ZERO_TIME",
    "SessionError",
    "key_lifetime",
    "normalize_access_definition",
    "parse_session",
    "session_expired",
    "zero_limit",
]

#: Go's zero ``time.Time`` as JSON: the ``date_created`` of a session nobody dated.
GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

#: ``basic_auth_data.hash_type`` values (Tyk's ``user.HashType``; "" is plain text).
BASIC_AUTH_HASH_TYPES: Final = ("", "bcrypt", "sha256", "murmur32", "murmur64", "murmur128")
POST_EXPIRY_ACTIONS: Final = ("", "retain", "delete")


class SessionError(ValueError):
    """A session object that cannot be stored: ``str()`` is ``'<field>: <message>'``.

    ``field`` is the dotted path of the offending value
    (``access_rights.api1.allowed_urls[0].url``), ``""`` for the object itself.
    Messages never echo a value that could be a secret.
    """

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def __reduce__(self) -> tuple[type[SessionError], tuple[str, str]]:
        return (type(self), (self.field, self.message))


# --------------------------------------------------------------------------
# Typed values.  Each checker takes (value, dotted path) and returns the
# normalised value; None (absent or null) gives the zero value.
# --------------------------------------------------------------------------


def _wrong(path: str, expected: str, value: object) -> SessionError:
    return SessionError(path, f"expected {expected}, got {json_type_name(value)}")


def _integer(value: object, path: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, "an integer", value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise SessionError(path, "out of range for a 64-bit integer")
    return value


def _number(value: object, path: str) -> float | int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(path, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SessionError(path, "expected a finite number")
    return value


def _limit_integer(value: object, path: str) -> int:
    checked = _integer(value, path)
    if checked < -1:
        raise SessionError(path, f"must be -1 (unlimited) or at least 0; got {checked}")
    return checked


def _limit_number(value: object, path: str) -> float | int:
    checked = _number(value, path)
    if checked < 0 and checked != -1:
        raise SessionError(path, f"must be -1 (unlimited) or at least 0; got {checked}")
    return checked


def _boolean(value: object, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong(path, "true or false", value)
    return value


def _string(value: object, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong(path, "a string", value)
    return value


def _string_list(value: object, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(path, "an array of strings", value)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _wrong(f"{path}[{index}]", "a string", item)
    return list(value)


def _object(value: object, path: str) -> dict[str, Any]:
    """Any JSON object, copied (meta_data and other free-form objects)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(path, "an object", value)
    return copy.deepcopy(value)


def _optional_object(value: object, path: str) -> dict[str, Any] | None:
    """An object or null (Go pointer fields such as ``smoothing``), copied."""
    if value is None:
        return None
    return _object(value, path)


def _object_list(value: object, path: str) -> list[Any]:
    """An array of objects kept as given (GraphQL fields fastgate does not use)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(path, "an array", value)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _wrong(f"{path}[{index}]", "an object", item)
    return copy.deepcopy(value)


def _string_map(value: object, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(path, "an object", value)
    for name, item in value.items():
        if not isinstance(item, str):
            raise _wrong(f"{path}.{name}", "a string", item)
    return dict(value)


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _time(value: object, path: str) -> str:
    """A Go ``time.Time`` as JSON: an RFC 3339 string."""
    if value is None:
        return GO_ZERO_TIME
    if not isinstance(value, str):
        raise _wrong(path, "an RFC 3339 time string", value)
    if _RFC3339.fullmatch(value) is None:
        raise SessionError(path, "expected an RFC 3339 time such as 2024-01-31T12:00:00Z")
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise SessionError(path, "not a valid date and time") from None
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    def check(value: object, path: str) -> str:
        text = _string(value, path)
        if text not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise SessionError(path, f"must be one of {listed}; got {text!r}")
        return text

    return check


def _fields(
    spec: tuple[tuple[str, Callable[[object, str], Any]], ...],
) -> Callable[[object, str], dict[str, Any]]:
    """A checker for an object with the fields of ``spec`` (in that order) and any others kept."""

    def check(value: object, path: str) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _wrong(path, "an object", value)
        prefix = f"{path}." if path else ""
        out = {name: checker(value.get(name), prefix + name) for name, checker in spec}
        for name, item in value.items():
            if name not in out:
                out[name] = copy.deepcopy(item)
        return out

    return check


# --------------------------------------------------------------------------
# Composite fields
# --------------------------------------------------------------------------

_LIMIT_FIELDS: tuple[tuple[str, Callable[[object, str], Any]], ...] = (
    ("rate", _limit_number),
    ("per", _limit_number),
    ("throttle_interval", _limit_number),
    ("throttle_retry_limit", _limit_integer),
    ("max_query_depth", _limit_integer),
    ("quota_max", _limit_integer),
    ("quota_renews", _integer),
    ("quota_remaining", _limit_integer),
    ("quota_renewal_rate", _limit_integer),
)
_api_limit = _fields(_LIMIT_FIELDS)


def _limit(value: object, path: str) -> dict[str, Any]:
    out = _api_limit(value, path)
    if out.get("smoothing") is not None:
        out["smoothing"] = _optional_object(out["smoothing"], f"{path}.smoothing")
    return out


def zero_limit() -> dict[str, Any]:
    """An empty per-API limit (Tyk's zero ``APILimit``)."""
    return {name: 0 for name, _ in _LIMIT_FIELDS}


def _allowed_urls(value: object, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(path, "an array", value)
    out = []
    for index, rule in enumerate(value):
        at = f"{path}[{index}]"
        if not isinstance(rule, dict):
            raise _wrong(at, "an object", rule)
        url = _string(rule.get("url"), f"{at}.url")
        problem = url_pattern_problem(url)
        if problem is not None:
            raise SessionError(f"{at}.url", problem)
        checked = {"url": url, "methods": _string_list(rule.get("methods"), f"{at}.methods")}
        for name, item in rule.items():
            checked.setdefault(name, copy.deepcopy(item))
        out.append(checked)
    return out


_endpoint_method = _fields(
    (
        ("name", _string),
        ("limit", _fields((("rate", _limit_number), ("per", _limit_number)))),
    )
)


def _endpoints(value: object, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(path, "an array", value)
    out = []
    for index, endpoint in enumerate(value):
        at = f"{path}[{index}]"
        if not isinstance(endpoint, dict):
            raise _wrong(at, "an object", endpoint)
        methods = endpoint.get("methods")
        if methods is not None and not isinstance(methods, list):
            raise _wrong(f"{at}.methods", "an array", methods)
        checked = {
            "path": _string(endpoint.get("path"), f"{at}.path"),
            "methods": [
                _endpoint_method(method, f"{at}.methods[{i}]")
                for i, method in enumerate(methods or ())
            ],
        }
        for name, item in endpoint.items():
            checked.setdefault(name, copy.deepcopy(item))
        out.append(checked)
    return out


_ACCESS_FIELDS: tuple[tuple[str, Callable[[object, str], Any]], ...] = (
    ("api_name", _string),
    ("api_id", _string),
    ("versions", _string_list),
    ("allowed_urls", _allowed_urls),
    ("restricted_types", _object_list),
    ("allowed_types", _object_list),
    ("limit", _limit),
    ("field_access_rights", _object_list),
    ("disable_introspection", _boolean),
    ("allowance_scope", _string),
)
_access_fields = _fields(_ACCESS_FIELDS)


def normalize_access_definition(value: object, path: str) -> dict[str, Any]:
    """One ``access_rights`` entry, checked, with Tyk's zero values filled in (a new dict).

    ``endpoints`` (per-endpoint rate limits) is kept only when non-empty, as
    Tyk writes it.  Raises SessionError naming ``path`` or a field under it.
    """
    out = _access_fields(value, path)
    if out.get("endpoints") is not None:
        out["endpoints"] = _endpoints(
            out["endpoints"], f"{path}.endpoints" if path else "endpoints"
        )
        if not out["endpoints"]:
            del out["endpoints"]
    elif "endpoints" in out:
        del out["endpoints"]
    return out


def _access_rights(value: object, path: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(path, "an object mapping API ids to access definitions", value)
    return {
        api_id: normalize_access_definition(access, f"{path}.{api_id}")
        for api_id, access in value.items()
    }


def _number_list(value: object, path: str) -> list[float | int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(path, "an array of numbers", value)
    return [_number(item, f"{path}[{index}]") for index, item in enumerate(value)]


def _grace_period(value: object, path: str) -> int:
    checked = _integer(value, path)
    if checked < -1:
        raise SessionError(path, f"must be -1 or at least 0; got {checked}")
    return checked


# Tyk's SessionState fields, in the order Tyk writes them, with their checkers.
_SESSION_FIELDS: tuple[tuple[str, Callable[[object, str], Any]], ...] = (
    ("last_check", _integer),
    ("allowance", _number),
    ("rate", _limit_number),
    ("per", _limit_number),
    ("throttle_interval", _limit_number),
    ("throttle_retry_limit", _limit_integer),
    ("max_query_depth", _limit_integer),
    ("date_created", _time),
    ("expires", _integer),
    ("quota_max", _limit_integer),
    ("quota_renews", _integer),
    ("quota_remaining", _limit_integer),
    ("quota_renewal_rate", _limit_integer),
    ("access_rights", _access_rights),
    ("org_id", _string),
    ("oauth_client_id", _string),
    ("oauth_keys", _string_map),
    ("certificate", _string),
    (
        "basic_auth_data",
        _fields((("password", _string), ("hash_type", _choice(BASIC_AUTH_HASH_TYPES)))),
    ),
    ("jwt_data", _fields((("secret", _string),))),
    ("hmac_enabled", _boolean),
    ("enable_http_signature_validation", _boolean),
    ("hmac_string", _string),
    ("rsa_certificate_id", _string),
    ("is_inactive", _boolean),
    ("apply_policy_id", _string),
    ("apply_policies", _string_list),
    ("data_expires", _integer),
    ("monitor", _fields((("trigger_limits", _number_list),))),
    ("enable_detail_recording", _boolean),
    ("enable_detailed_recording", _boolean),
    ("meta_data", _object),
    ("tags", _string_list),
    ("alias", _string),
    ("last_updated", _string),
    ("id_extractor_deadline", _integer),
    ("session_lifetime", _integer),
    ("smoothing", _optional_object),
)

# Fields of newer Tyk versions: checked and kept when given, not filled in.
_OPTIONAL_FIELDS: tuple[tuple[str, Callable[[object, str], Any]], ...] = (
    ("mtls_static_certificate_bindings", _string_list),
    ("post_expiry_action", _choice(POST_EXPIRY_ACTIONS)),
    ("post_expiry_grace_period", _grace_period),
)


def parse_session(data: object) -> dict[str, Any]:
    """Validate a Tyk session object (as POSTed to ``/tyk/keys``) and return it filled in.

    The result is a new, JSON-ready dict: every Tyk SessionState field, with
    Tyk's zero value when absent or null (``[]``/``{}`` for empty lists and
    objects, ``"0001-01-01T00:00:00Z"`` for ``date_created``), each
    ``access_rights`` entry filled in the same way (``limit`` always an
    object), then the fields fastgate does not know, as given.  Nothing is
    computed (no dates, no hashing, no policies).

    Raises SessionError naming the dotted field at fault.
    """
    if not isinstance(data, dict):
        raise SessionError("", f"expected a session object, got {json_type_name(data)}")
    out: dict[str, Any] = {name: checker(data.get(name), name) for name, checker in _SESSION_FIELDS}
    for name, checker in _OPTIONAL_FIELDS:
        value = data.get(name)
        if value is not None:
            out[name] = checker(value, name)
    for name, value in data.items():
        if name not in out and not (value is None and any(name == f for f, _ in _OPTIONAL_FIELDS)):
            out[name] = copy.deepcopy(value)
    return out


def session_expired(session: dict[str, Any], now: float) -> bool:
    """Whether the key has expired at unix time ``now`` (Tyk: 401 "Key has expired, please renew").

    As Tyk's ``DefaultSessionManager.KeyExpired``: ``expires`` below 1 never
    expires; otherwise the key is expired strictly *after* that second
    (``time.Now().After(time.Unix(expires, 0))``), so at ``now == expires``
    it still works.
    """
    expires = session.get("expires") or 0
    return bool(expires >= 1 and now > expires)


def key_lifetime(session: Mapping[str, Any], now: float, *, api_lifetime: int,
                 respects_expiration: bool, force_global: bool,
                 global_lifetime: int) -> int:
    """Seconds the store keeps the key's record, for one API (Tyk's
    ``SessionState.Lifetime``): ``> 0`` that many seconds, ``0`` or ``-1``
    for ever (``-1`` is Tyk's explicit "never delete").

    In order: ``force_global`` gives ``global_lifetime``; a session whose
    ``post_expiry_action`` is ``"delete"`` (or ``"retain"`` with a
    ``post_expiry_grace_period``) lives until ``expires`` (plus the grace
    period; ``-1``: for ever; already past: 1 s); else the session's own
    ``session_lifetime``, else the API's ``api_lifetime`` -- each, with
    ``respects_expiration``, stretched to the key's ``expires`` when that is
    later (and for ever when the key never expires).  ``now``: unix time.
    """
    if force_global:
        return global_lifetime
    expires = _int_field(session, "expires")
    action = session.get("post_expiry_action") or ""
    grace = _int_field(session, "post_expiry_grace_period")
    if action == "delete" or (action == "retain" and grace != 0):
        if expires <= 0:
            return 0
        if action == "delete":
            ttl = expires - int(now)
        elif grace == -1:
            return -1
        else:
            ttl = expires - int(now) + grace
        return ttl if ttl > 0 else 1
    own = _int_field(session, "session_lifetime")
    if own > 0:
        return _stretched(respects_expiration, expires, own, now)
    if api_lifetime > 0:
        return _stretched(respects_expiration, expires, api_lifetime, now)
    return 0


def _stretched(respects_expiration: bool, expires: int, lifetime: int, now: float) -> int:
    """Tyk's ``calculateLifetime``: ``lifetime``, or until ``expires`` when that
    is later and the API respects key expiration."""
    if not respects_expiration or lifetime <= 0:
        return lifetime
    if expires <= 0:
        return expires  # a key that never expires is kept for ever (0 or -1)
    if expires > int(now) + lifetime:
        return expires - int(now)
    return lifetime


def _int_field(session: Mapping[str, Any], name: str) -> int:
    value = session.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
