"""Tyk's ``id_extractor``: the identity an auth plugin's session is kept under.

``extract_from`` header (``header_name``), form (``param_name``: the query,
then an ``application/x-www-form-urlencoded`` body, as Go's ``FormValue``)
or body (the whole body); ``extract_with`` value (header or form as it is),
regex (``regex_expression``; the match number ``regex_match_index`` of all
non-overlapping matches) or xpath (``xpath_expression`` on an XML body: the
text of the first element it selects -- ElementTree's XPath subset, which
covers paths, ``//``, ``@attr`` predicates and positions; an expression it
cannot read is refused when the definition is loaded; a body holding a
DTD or entity declaration (``<!``) yields nothing: nothing is expanded or fetched).

The session id is the API's org id followed by the md5 hex of the value,
as Tyk makes it; a session stored under it whose ``id_extractor_deadline``
(unix seconds, set by the plugin) is still ahead is used without calling
the plugin.  No value gives Tyk's 400 "Authorization field missing".
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from fastgate import responses

if TYPE_CHECKING:
    from fastgate.plugins.settings import IdExtractorSettings
    from fastgate.services import Request

__all__ = ["MISSING", "check_xpath", "extract", "session_id"]

#: Tyk's answer when the identity cannot be extracted.
MISSING = responses.error_response(400, "Authorization field missing")


def check_xpath(expression: str) -> str | None:
    """Why ``expression`` cannot be used (None: it can)."""
    try:
        ElementTree.fromstring("<a/>").find(_relative(expression))  # noqa: S314 (a constant)
    except (SyntaxError, KeyError, ValueError, TypeError) as exc:
        return (f"{expression!r} is not an XPath expression fastgate can read (ElementTree's "
                f"subset: paths, //, [@attr], positions): {exc}")
    return None


def _relative(expression: str) -> str:
    # ElementTree searches from an element: "/a/b" and "//b" become "./b", ".//b".
    if expression.startswith("//"):
        return "." + expression
    if expression.startswith("/"):
        _root, _, rest = expression[1:].partition("/")
        return "./" + rest if rest else "."
    return expression


def extract(settings: IdExtractorSettings, req: Request, body: bytes | None) -> str | None:
    """The value to identify the request by, or None."""
    source = settings.extract_from
    raw: str | None
    if source == "header":
        value = req.header(settings.header_name.lower().encode("latin-1"))
        raw = value.decode("latin-1") if value is not None else None
    elif source == "form":
        raw = _form_value(req, body, settings.param_name)
    else:
        raw = body.decode("utf-8", "replace") if body else None
    if not raw:
        return None
    if settings.extract_with == "regex":
        assert settings.regex is not None
        matches = [m.group(0) for m in settings.regex.finditer(raw)]
        if settings.regex_match_index >= len(matches):
            return None
        return matches[settings.regex_match_index] or None
    if settings.extract_with == "xpath":
        if "<!" in raw:
            return None  # no DTD, no entities: nothing to expand, nothing to fetch
        try:
            root = ElementTree.fromstring(raw)  # noqa: S314 (no DTD: checked above)
        except ElementTree.ParseError:
            return None
        expression = _relative(settings.xpath)
        node = root if expression == "." else root.find(expression)
        return (node.text or None) if node is not None else None
    return raw


def _form_value(req: Request, body: bytes | None, name: str) -> str | None:
    for key, value in parse_qsl(req.query.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    content_type = (req.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if body and content_type == b"application/x-www-form-urlencoded":
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if key == name:
                return value
    return None


def session_id(org_id: str, value: str) -> str:
    """Tyk's ``GenerateSessionID``: the org id and the md5 hex of the value."""
    return org_id + hashlib.md5(value.encode("utf-8"), usedforsecurity=False).hexdigest()
