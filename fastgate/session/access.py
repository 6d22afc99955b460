"""Access rights: which APIs, versions, paths and methods a session may use.

Theory of operation
-------------------
Tyk checks access in two middlewares, in this order (``mw_access_rights.go``
then ``mw_granular_access.go``):

1. **API and version** (``AccessRightsCheck``).  An empty ``access_rights``
   admits every API.  Otherwise the API's id must be a key of it, else 403
   "Access to this API has been disallowed".  For a *versioned* API the
   request's version (or the API's default version) must be in the entry's
   ``versions`` -- an empty list admits no version -- else the same 403.  With
   the API's ``fallback_to_default`` the default version, when listed, admits
   a request for any other version.  Unversioned APIs skip the check.
2. **Paths and methods** (``GranularAccessMiddleware``).  When the entry has
   ``allowed_urls``, some element must list the request's method (exact,
   case-sensitive) and have a ``url`` pattern that matches the path, else 403
   "Access to this resource has been disallowed".

How a ``url`` pattern matches (``internal/httputil.PreparePathRegexp``):
mux-style ``{name}`` parameters become ``([^/]+)`` (only when the pattern
has as many ``{`` as ``}``), ``/*/`` becomes ``/[^/]+/`` and ``/*``
becomes ``/.*``.  Then, by the gateway's ``http_server_options``
(``GranularAccessMiddleware``, Tyk 5.5+):

* by default the result is an *unanchored* regular expression searched in
  the request path **including the listen path**;
* ``enable_path_prefix_matching``: a pattern starting with ``/`` is anchored
  with ``^`` ("prefix" means the start of the path), and tried against the
  path **without the listen path** (Tyk's ``StripListenPath``: always
  starting with ``/``) and then against the full path, with
  ``httputil.MatchPath``'s rules: an empty pattern (once stripped of ``^``
  and ``$``) or an empty path never matches, and a pattern equal to the
  path, or to ``^path$``, matches without the regex;
* ``enable_path_suffix_matching``: ``$`` is appended (unless the pattern
  ends with one), in either mode: the pattern must match up to the end.
  Both together are an exact match: ``/users`` is ``^/users$``.

The mode is gateway-wide: :func:`compile_access` compiles for one mode and
:meth:`AccessRights.with_matching` gives the same rights compiled for
another, once per session and mode.

Tyk compiles the patterns with Go's RE2 syntax; fastgate runs them on
Python's ``re`` after :func:`go_regex_to_python` has translated the few
constructs the two read differently (``$``, ``\\z``, ``\\x{..}``,
``\\Q..\\E``, ``[[:alpha:]]``, ``{,n}``) and refused what RE2 has not
(lookaround, backreferences, possessive quantifiers, ...).  A pattern Tyk
could not compile was skipped there (so it never matched); fastgate refuses
it when the session or policy is loaded.  Python's engine backtracks, RE2
does not: an operator who writes ``(a+)+$`` can make requests slow.

Everything is compiled once per effective session by :func:`compile_access`
(patterns are also cached across sessions); :meth:`AccessRights.check` is a
dict lookup in the common case (no ``allowed_urls``, unversioned API).

**fastgate differs** in one corner: Tyk strips the listen path as written
from the *decoded* request path, so a listen path with a ``%``-escape is
never stripped there; fastgate strips its decoded form
(:func:`strip_listen_path`), so prefix patterns work under such a listen
path too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote

__all__ = [
    "ALLOWED",
    "API_DENIED",
    "API_DENIED_MESSAGE",
    "RESOURCE_DENIED",
    "RESOURCE_DENIED_MESSAGE",
    "AccessRights",
    "check_request",
    "compile_access",
    "compile_url_pattern",
    "go_regex_to_python",
    "prepare_url_pattern",
    "strip_listen_path",
    "url_pattern_problem",
]

ALLOWED: Final = 0
API_DENIED: Final = 1
RESOURCE_DENIED: Final = 2

#: Tyk's 403 messages for API_DENIED and RESOURCE_DENIED.
API_DENIED_MESSAGE: Final = "Access to this API has been disallowed"
RESOURCE_DENIED_MESSAGE: Final = "Access to this resource has been disallowed"

# --------------------------------------------------------------------------
# Patterns: Tyk's preparation, then Go RE2 syntax -> Python re syntax
# --------------------------------------------------------------------------

_MUX_PARAMETER = re.compile(r"\{([^}]+)\}")


def prepare_url_pattern(url: str, *, prefix: bool = False, suffix: bool = False) -> str:
    """Tyk's ``PreparePathRegexp``: the Go regular expression for an ``allowed_urls`` url."""
    opening = url.count("{")
    if opening and opening == url.count("}"):
        url = _MUX_PARAMETER.sub("([^/]+)", url)
    if "/*" in url:
        url = url.replace("/*/", "/[^/]+/").replace("/*", "/.*")
    if prefix and url.startswith("/"):
        url = "^" + url
    if suffix and not url.endswith("$"):
        url += "$"
    return url


# Go's [[:name:]] classes (ASCII), as the inside of a Python character class.
_POSIX_CLASSES: Final = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_GO_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_GO_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])")
_GO_HEX_BRACED = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")
# Escaped letters that mean the same in both engines, also inside a class
# (\A \b \B are the same outside one); any other is translated or refused.
_CLASS_LETTER_ESCAPES: Final = frozenset("aftnrvdDsSwW")
_QUANTIFIER_CHARS: Final = frozenset("*+?")


def go_regex_to_python(pattern: str) -> str:
    """Translate a Go (RE2) regular expression into Python ``re`` syntax with the same meaning.

    Compile the result with ``re.ASCII`` (Go's ``\\d``, ``\\w``, ``\\s`` and
    ``\\b`` are ASCII-only).  Raises ValueError, naming the construct, for
    syntax RE2 does not accept (lookaround, backreferences, atomic groups,
    possessive quantifiers, ``(?x)``-style flags, ``\\Z``, ...) and for the
    little RE2 syntax not translated (``\\p{..}`` classes, ``\\C``,
    ``(?U)``, ``[[:^alpha:]]``).  Other errors are left to ``re.compile``.
    """
    multiline = any("m" in m.group(1) for m in _GO_FLAGS.finditer(pattern))
    out: list[str] = []
    i = 0
    n = len(pattern)
    repeated = _NOT_REPEATED  # what the previous token was, for nested repetitions
    while i < n:
        c = pattern[i]
        if c in _QUANTIFIER_CHARS or c == "{":
            if c == "{":
                repeat = _GO_REPEAT.match(pattern, i)
                if repeat is None:
                    out.append("\\{")  # not a repetition: a literal brace in Go ("{,3}" too)
                    i += 1
                    repeated = _NOT_REPEATED
                    continue
                token = repeat.group(0)
                if int(repeat.group(1)) > 1000 or int(repeat.group(3) or 0) > 1000:
                    raise ValueError(f"invalid repeat count {token} (RE2 allows up to 1000)")
            else:
                token = c
            if repeated == _REPEATED and c == "?":
                repeated = _LAZY  # x*? x+? x?? x{n}?: non-greedy, the same in both
            elif repeated != _NOT_REPEATED:
                # RE2 refuses x** x*+ x{2}{3} ...; Python reads x*+ as possessive.
                raise ValueError(f"invalid nested repetition operator at position {i}")
            else:
                repeated = _REPEATED
            out.append(token)
            i += len(token)
            continue
        repeated = _NOT_REPEATED
        if c == "\\":
            piece, i = _escape(pattern, i, in_class=False)
        elif c == "[":
            piece, i = _char_class(pattern, i)
        elif c == "(" and pattern.startswith("(?", i):
            piece, i = _group_opening(pattern, i)
        elif c == "}":
            piece, i = "\\}", i + 1
        elif c == "$" and not multiline:
            # Go's $ is the very end of the text; Python's also matches before a final newline.
            piece, i = "\\Z", i + 1
        else:
            piece, i = c, i + 1
        out.append(piece)
    return "".join(out)


_NOT_REPEATED: Final = 0
_REPEATED: Final = 1
_LAZY: Final = 2


def _escape(pattern: str, i: int, *, in_class: bool) -> tuple[str, int]:
    """Translate the escape starting at ``pattern[i] == '\\'``; return it and the next index."""
    if i + 1 >= len(pattern):
        raise ValueError("trailing backslash at end of expression")
    c = pattern[i + 1]
    if c.isascii() and c.isalpha():
        if c in _CLASS_LETTER_ESCAPES or (c in "AbB" and not in_class):
            return pattern[i : i + 2], i + 2
        if c == "z" and not in_class:
            return "\\Z", i + 2
        if c == "x":
            braced = _GO_HEX_BRACED.match(pattern, i)
            if braced is None:
                return pattern[i : i + 2], i + 2  # \xhh: the same in both
            code = int(braced.group(1), 16)
            if code > 0x10FFFF:
                raise ValueError(f"invalid escape {braced.group(0)}: beyond Unicode")
            return f"\\U{code:08x}", braced.end()
        if c == "Q" and not in_class:
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return re.escape(pattern[i + 2 :]), len(pattern)
            return re.escape(pattern[i + 2 : end]), end + 2
        if c in "pP":
            raise ValueError(f"\\{c} Unicode classes are not supported")
        where = " inside a character class" if in_class else ""
        raise ValueError(f"invalid escape \\{c}{where} (not RE2 syntax)")
    if c in "123456789":
        raise ValueError(f"backreference \\{c} is not RE2 syntax")
    # Escaped punctuation and \0 octal escapes mean the same in both.
    return pattern[i : i + 2], i + 2


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the character class starting at ``pattern[i] == '['``."""
    n = len(pattern)
    out = ["["]
    i += 1
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < n and pattern[i] == "]":
        out.append("\\]")  # a leading ] is literal in both
        i += 1
    while i < n:
        c = pattern[i]
        if c == "]":
            out.append("]")
            return "".join(out), i + 1
        if c == "\\":
            piece, i = _escape(pattern, i, in_class=True)
            out.append(piece)
            continue
        if c == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            if end >= 0:
                name = pattern[i + 2 : end]
                if name.startswith("^"):
                    raise ValueError(f"negated class [:{name}:] is not supported")
                ranges = _POSIX_CLASSES.get(name)
                if ranges is None:
                    raise ValueError(f"invalid character class range [:{name}:]")
                out.append(ranges)
                i = end + 2
                continue
        if c in "[&~|" or (c == "-" and pattern.startswith("--", i - 1)):
            # Literal in Go; Python warns that these may become set operators.
            out.append("\\" + c)
            i += 1
            continue
        out.append(c)
        i += 1
    raise ValueError("missing closing ]")


def _group_opening(pattern: str, i: int) -> tuple[str, int]:
    """Translate a group opening ``(?...`` at ``i``: named groups and i/m/s flags only."""
    if pattern.startswith("(?P<", i):
        return "(?P<", i + 4
    flags = _GO_FLAGS.match(pattern, i)
    if flags is None:
        shown = pattern[i : i + 4]
        raise ValueError(f"{shown!r} (lookaround, backreference or extension) is not RE2 syntax")
    on, off, end = flags.group(1), flags.group(2), flags.group(3)
    if "U" in on + (off or ""):
        raise ValueError("the ungreedy flag (?U) is not supported")
    if off == "":
        raise ValueError(f"missing flags after '-' in {flags.group(0)!r}")
    if not on and off is None and end == ")":
        return "", flags.end()  # "(?)" sets no flag: Go accepts it, Python does not
    return flags.group(0), flags.end()


@functools.lru_cache(maxsize=4096)
def compile_url_pattern(url: str, prefix: bool = False, suffix: bool = False) -> re.Pattern[str]:
    """The compiled regular expression Tyk matches an ``allowed_urls`` url with.

    Raises ValueError when it is not a valid RE2 expression.
    """
    translated = go_regex_to_python(prepare_url_pattern(url, prefix=prefix, suffix=suffix))
    try:
        return re.compile(translated, re.ASCII)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def url_pattern_problem(url: str) -> str | None:
    """Why ``url`` is not a usable ``allowed_urls`` pattern, or None when it is."""
    if not url:
        return 'must not be empty (".*" matches every path)'
    try:
        compile_url_pattern(url)
    except ValueError as exc:
        return f"invalid regular expression: {exc}"
    return None


# --------------------------------------------------------------------------
# Compiled access rights
# --------------------------------------------------------------------------

_Matcher = Callable[[str], object]


class _ApiRule:
    """One API's entry: the versions listed and, when restricted, the url matchers per method."""

    __slots__ = ("by_method", "versions")

    def __init__(self, versions: frozenset[str], by_method: dict[str, tuple[Any, ...]] | None):
        self.versions = versions
        # Legacy mode: method -> (pattern.search, ...).  Prefix mode: method ->
        # ((pattern_text, pattern.search), ...).  None: no allowed_urls.
        self.by_method = by_method


class AccessRights:
    """The access rights of one effective session, compiled; see :func:`compile_access`."""

    __slots__ = ("_prefix", "_rules", "_source", "_suffix", "_variants")

    def __init__(self, rules: dict[str, _ApiRule] | None, prefix_matching: bool,
                 suffix_matching: bool = False, source: Mapping[str, Any] | None = None) -> None:
        self._rules = rules
        self._prefix = prefix_matching
        self._suffix = suffix_matching
        # The access_rights compiled, for with_matching.
        self._source: Mapping[str, Any] = source or {}
        self._variants: dict[tuple[bool, bool], AccessRights] | None = None

    @property
    def prefix_matching(self) -> bool:
        """Whether the patterns were compiled for ``enable_path_prefix_matching``."""
        return self._prefix

    def with_matching(self, prefix_matching: bool, suffix_matching: bool) -> AccessRights:
        """These rights compiled for another matching mode: ``self`` when it is
        this one's, else compiled on first use and kept, so that a session costs
        one compilation per mode, never one per request."""
        if prefix_matching == self._prefix and suffix_matching == self._suffix:
            return self
        key = (prefix_matching, suffix_matching)
        variants = self._variants
        if variants is None:
            variants = self._variants = {}
        variant = variants.get(key)
        if variant is None:
            variant = compile_access({"access_rights": self._source},
                                     prefix_matching=prefix_matching,
                                     suffix_matching=suffix_matching)
            variants[key] = variant
        return variant

    def path_dependent(self, api_id: str) -> bool:
        """Whether :meth:`check`'s verdict for ``api_id`` can depend on the
        request's path or method (the API's rights carry ``allowed_urls``)."""
        rules = self._rules
        if rules is None:
            return False
        rule = rules.get(api_id)
        return rule is not None and rule.by_method is not None

    def check(
        self,
        api_id: str,
        version: str,
        path: str,
        method: str,
        *,
        stripped_path: str | None = None,
        fallback_version: str = "",
    ) -> int:
        """ALLOWED, API_DENIED or RESOURCE_DENIED for one request.

        ``version``: the version the request asks for (the API's default when
        it names none), or ``""`` for an unversioned API (no version check).
        ``fallback_version``: the API's default version when its
        ``fallback_to_default`` is on, else ``""``.
        ``path``: the request path as the client sent it, listen path
        included, without the query string (Tyk uses Go's decoded
        ``URL.Path``).  ``stripped_path``: the same without the listen path;
        used only with prefix matching (else ``path`` alone is tried).
        """
        rules = self._rules
        if rules is None:
            return ALLOWED
        rule = rules.get(api_id)
        if rule is None:
            return API_DENIED
        by_method = rule.by_method
        if not version and by_method is None:
            return ALLOWED
        if (
            version
            and version not in rule.versions
            and (
                not fallback_version
                or fallback_version == version
                or fallback_version not in rule.versions
            )
        ):
            return API_DENIED
        if by_method is None:
            return ALLOWED
        matchers = by_method.get(method)
        if matchers is None:
            return RESOURCE_DENIED
        if not self._prefix:
            for search in matchers:
                if search(path):
                    return ALLOWED
            return RESOURCE_DENIED
        candidates = (path,) if stripped_path is None else (stripped_path, path)
        for text, search in matchers:
            for candidate in candidates:
                # Tyk's MatchPath: an empty path never matches; a pattern equal
                # to the path (or ^path$) matches without running the regex.
                if candidate and (
                    text == candidate or text == "^" + candidate + "$" or search(candidate)
                ):
                    return ALLOWED
        return RESOURCE_DENIED


def strip_listen_path(listen_path: str, path: str) -> str:
    """Tyk's ``httputil.StripListenPath`` for a fixed listen path: ``path``
    without ``listen_path`` when it starts with it, always starting with ``/``
    (``/listen/`` and ``/listen/get`` give ``/get``; ``/listen`` and
    ``/listen`` give ``/``)."""
    rest = path[len(listen_path):] if path.startswith(listen_path) else path
    return rest if rest.startswith("/") else "/" + rest


def check_request(access: AccessRights, api_id: str, version: str, path: bytes,
                  method: bytes, listen_path: str = "") -> int:
    """:meth:`AccessRights.check` for a request as the proxy holds it (bytes):
    the path is decoded (percent-decoded, as Go's ``URL.Path`` that Tyk
    matches) only when the API's rights have ``allowed_urls`` to match.

    ``listen_path``: the API's, percent-decoded; with prefix matching the
    path without it is tried first (see :func:`strip_listen_path`).
    """
    rules = access._rules
    if rules is None:
        return ALLOWED
    rule = rules.get(api_id)
    if rule is None:
        return API_DENIED
    if rule.by_method is None:
        # No URL rules: the path and method play no part.
        return access.check(api_id, version, "", "")
    decoded = unquote(path.decode("utf-8", "surrogateescape"))
    stripped = strip_listen_path(listen_path, decoded) if access._prefix and listen_path \
        else None
    return access.check(api_id, version, decoded, method.decode("latin-1"),
                        stripped_path=stripped)


def compile_access(
    effective_session: Mapping[str, Any],
    *,
    prefix_matching: bool = False,
    suffix_matching: bool = False,
) -> AccessRights:
    """Compile the ``access_rights`` of an effective session (policies applied).

    ``prefix_matching`` / ``suffix_matching`` are the gateway's
    ``http_server_options.enable_path_prefix_matching`` /
    ``enable_path_suffix_matching``.  The session must have been checked by
    ``parse_session`` (or its policies by ``validate_policy``): a pattern
    that does not compile raises ValueError here.
    """
    access_rights = effective_session.get("access_rights") or {}
    if not access_rights:
        return AccessRights(None, prefix_matching, suffix_matching)
    rules: dict[str, _ApiRule] = {}
    for api_id, access in access_rights.items():
        versions = frozenset(access.get("versions") or ())
        allowed_urls = access.get("allowed_urls") or ()
        rules[api_id] = _ApiRule(
            versions,
            _compile_urls(allowed_urls, prefix_matching, suffix_matching) if allowed_urls else None,
        )
    return AccessRights(rules, prefix_matching, suffix_matching, access_rights)


def _compile_urls(
    allowed_urls: Any, prefix_matching: bool, suffix_matching: bool
) -> dict[str, tuple[Any, ...]]:
    grouped: dict[str, list[Any]] = {}
    for spec in allowed_urls:
        url = spec.get("url") or ""
        pattern = compile_url_pattern(url, prefix_matching, suffix_matching)
        if prefix_matching:
            text = prepare_url_pattern(url, prefix=True, suffix=suffix_matching)
            if not text.strip("^$"):
                continue  # Tyk's MatchPath never matches an empty pattern
            matcher: Any = (text, pattern.search)
        else:
            matcher = pattern.search
        for method in spec.get("methods") or ():
            entries = grouped.setdefault(method, [])
            if matcher not in entries:
                entries.append(matcher)
    return {method: tuple(entries) for method, entries in grouped.items()}
