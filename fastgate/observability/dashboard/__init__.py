"""The dashboard: a live page at ``/dashboard/`` (issue 13, point 5).

The gateway serves three static files shipped beside this module --
``index.html``, ``app.js`` and ``style.css`` -- and nothing else: the page
asks for the gateway secret, keeps it in the tab's ``sessionStorage`` and
reads everything it shows from ``/tyk/apis``, ``/tyk/keys`` and the
Prometheus endpoint with ``X-Tyk-Authorization``.  The shell itself carries
no data, so the admin API hands ``/dashboard`` requests here without checking
the secret.  Two settings the page needs are written into ``index.html`` as
``data-`` attributes of ``<body>`` (never as inline script): where the
metrics are (``prometheus.path``) and whether ``/tyk/keys`` lists hashes
(``hash_keys``).

Routes (GET and HEAD only, 405 with ``Allow`` otherwise):

========================  ===========================================
``/dashboard``            308 to ``/dashboard/``
``/dashboard/``           ``index.html``
``/dashboard/app.js``     the page's script
``/dashboard/style.css``  its style sheet
anything else             404
========================  ===========================================

Every answer carries ``Cache-Control: no-cache``, a strict
``Content-Security-Policy`` (same-origin script, style, fetch; no inline
script or style attribute, no framing, no form submission), and
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY``.  The files are read once, when the gateway
builds the dashboard; the answers are prepared bytes.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import TYPE_CHECKING

from fastgate import responses

if TYPE_CHECKING:
    from fastgate.config import GatewayConfig

__all__ = ["CONTENT_SECURITY_POLICY", "Dashboard", "static_response"]

#: Scripts, styles and requests from the gateway's own origin only; no
#: plugins, no ``<base>``, no framing, and no native form submission (the
#: login form is handled by the script; the secret never goes into a URL).
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    b"frame-ancestors 'none'"
)

#: The headers every dashboard answer carries.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Cache-Control", b"no-cache"),
    (b"Content-Security-Policy", CONTENT_SECURITY_POLICY),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
    (b"X-Frame-Options", b"DENY"),
)

#: The static files: request path -> (file name, Content-Type).
FILES: dict[bytes, tuple[str, bytes]] = {
    b"/dashboard/": ("index.html", b"text/html; charset=utf-8"),
    b"/dashboard/app.js": ("app.js", b"text/javascript; charset=utf-8"),
    b"/dashboard/style.css": ("style.css", b"text/css; charset=utf-8"),
}

#: Placeholders in ``index.html`` replaced (HTML-escaped) at construction.
METRICS_PATH_MARK = "{{metrics_path}}"
HASHED_KEYS_MARK = "{{hashed_keys}}"


def static_response(status: int, body: bytes, content_type: bytes, *,
                    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
                    head_only: bool = False) -> bytes:
    """A complete HTTP/1.1 response with a non-JSON body and the dashboard's
    security headers.

    ``head_only`` leaves the body out (the answer to HEAD) but keeps the
    ``Content-Length`` the body would have had (RFC 9110 §9.3.2).
    """
    parts = [responses.STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
             b"Content-Type: " + content_type + b"\r\n"]
    for name, value in SECURITY_HEADERS + extra_headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def _read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


class Dashboard:
    """Answers ``/dashboard`` and ``/dashboard/...`` with prepared bytes."""

    def __init__(self, config: GatewayConfig) -> None:
        metrics = config.observability.metrics
        # The page reads /metrics; with prometheus off it says so instead.
        metrics_path = metrics.path if metrics.enabled else ""
        index = _read("index.html")
        for mark in (METRICS_PATH_MARK, HASHED_KEYS_MARK):
            if mark not in index:
                raise RuntimeError(f"dashboard index.html lacks the {mark} placeholder")
        index = index.replace(METRICS_PATH_MARK, html.escape(metrics_path, quote=True))
        index = index.replace(HASHED_KEYS_MARK, "true" if config.hash_keys else "false")
        texts = {"index.html": index, "app.js": _read("app.js"), "style.css": _read("style.css")}
        #: path -> (GET answer, HEAD answer)
        self._answers: dict[bytes, tuple[bytes, bytes]] = {}
        for path, (name, content_type) in FILES.items():
            body = texts[name].encode("utf-8")
            self._answers[path] = (
                static_response(200, body, content_type),
                static_response(200, body, content_type, head_only=True))
        redirect = ((b"Location", b"/dashboard/"),)
        moved = b"Moved to /dashboard/\n"
        self._redirect = (
            static_response(308, moved, b"text/plain; charset=utf-8", extra_headers=redirect),
            static_response(308, moved, b"text/plain; charset=utf-8", extra_headers=redirect,
                            head_only=True))
        missing = b"Not found\n"
        self._not_found = (
            static_response(404, missing, b"text/plain; charset=utf-8"),
            static_response(404, missing, b"text/plain; charset=utf-8", head_only=True))
        self._method_not_allowed = static_response(
            405, b"Method not allowed\n", b"text/plain; charset=utf-8",
            extra_headers=((b"Allow", b"GET, HEAD"),))

    def handle(self, method: bytes, path: bytes, query: bytes,
               headers: list[tuple[bytes, bytes, bytes]]) -> bytes:
        """The complete response to a request for ``/dashboard`` or below
        (``query`` and ``headers`` are not used: the files are the same for
        everyone)."""
        if method == b"GET":
            which = 0
        elif method == b"HEAD":
            which = 1
        else:
            return self._method_not_allowed
        if path == b"/dashboard":
            return self._redirect[which]
        answers = self._answers.get(path)
        if answers is None:
            return self._not_found[which]
        return answers[which]
