"""compile_access / AccessRights.check: Tyk's AccessRightsCheck and GranularAccessMiddleware."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fastgate.session import (
    ALLOWED,
    API_DENIED,
    API_DENIED_MESSAGE,
    RESOURCE_DENIED,
    RESOURCE_DENIED_MESSAGE,
    SessionError,
    compile_access,
    parse_session,
)
from fastgate.session.access import prepare_url_pattern

SESSION = parse_session(
    {
        "access_rights": {
            "open": {"versions": ["Default"]},
            "v": {"versions": ["v1", "v2"]},
            "noversions": {"versions": []},
            "urls": {
                "versions": ["Default"],
                "allowed_urls": [
                    {"url": "/users/{id}", "methods": ["GET"]},
                    {"url": "^/orders$", "methods": ["GET", "POST"]},
                    {"url": "/admin/*", "methods": ["DELETE"]},
                    {"url": "/a+b", "methods": ["PUT"]},
                ],
            },
            "lower": {"allowed_urls": [{"url": "/x", "methods": ["get"]}]},
            "nomethods": {"allowed_urls": [{"url": ".*", "methods": []}]},
            "dollar": {"allowed_urls": [{"url": "$", "methods": ["GET"]}]},
            "suffix": {"allowed_urls": [{"url": "/users", "methods": ["GET"]}]},
            "digits": {"allowed_urls": [{"url": "^/n/\\d+/\\w+$", "methods": ["GET"]}]},
        }
    }
)

LEGACY: list[tuple[str, str, str, str, int]] = [
    # (api, version ("" = unversioned API), path with listen path, method, verdict)
    ("open", "", "/anything", "GET", ALLOWED),
    ("open", "", "/", "PATCH", ALLOWED),
    ("missing", "", "/", "GET", API_DENIED),
    ("", "", "/", "GET", API_DENIED),
    # versions are checked only for versioned APIs; an empty list admits no version
    ("v", "", "/", "GET", ALLOWED),
    ("v", "v1", "/", "GET", ALLOWED),
    ("v", "v2", "/", "GET", ALLOWED),
    ("v", "v3", "/", "GET", API_DENIED),
    ("v", "V1", "/", "GET", API_DENIED),
    ("noversions", "", "/", "GET", ALLOWED),
    ("noversions", "Default", "/", "GET", API_DENIED),
    ("open", "Default", "/", "GET", ALLOWED),
    # allowed_urls: a regex searched anywhere in the full path, methods exact
    ("urls", "", "/listen/users/42", "GET", ALLOWED),
    ("urls", "", "/users/42", "GET", ALLOWED),
    ("urls", "", "/users/42/orders", "GET", ALLOWED),
    ("urls", "", "/users/", "GET", RESOURCE_DENIED),  # {id} is ([^/]+)
    ("urls", "", "/users/42", "POST", RESOURCE_DENIED),
    ("urls", "", "/users/42", "HEAD", RESOURCE_DENIED),
    ("urls", "", "/orders", "GET", ALLOWED),
    ("urls", "", "/orders", "POST", ALLOWED),
    ("urls", "", "/listen/orders", "GET", RESOURCE_DENIED),  # ^ anchors the full path
    ("urls", "", "/orders/1", "GET", RESOURCE_DENIED),
    ("urls", "", "/orders\n", "GET", RESOURCE_DENIED),  # Go's $ is the very end
    ("urls", "", "/admin/users", "DELETE", ALLOWED),  # /* is /.*
    ("urls", "", "/admin", "DELETE", RESOURCE_DENIED),
    ("urls", "", "/admin/users", "GET", RESOURCE_DENIED),
    ("urls", "", "/aab", "PUT", ALLOWED),
    ("urls", "", "/a+b", "PUT", RESOURCE_DENIED),  # a regex, not a literal
    # the version check comes first
    ("urls", "v1", "/orders", "GET", API_DENIED),
    ("urls", "Default", "/orders", "GET", ALLOWED),
    ("urls", "Default", "/nothing", "GET", RESOURCE_DENIED),
    ("lower", "", "/x", "GET", RESOURCE_DENIED),  # Tyk compares methods exactly
    ("lower", "", "/x", "get", ALLOWED),
    ("nomethods", "", "/x", "GET", RESOURCE_DENIED),
    ("dollar", "", "/x", "GET", ALLOWED),  # "$" matches at the end of any path
    ("suffix", "", "/api/users/1", "GET", ALLOWED),
    # Go's \d and \w are ASCII only
    ("digits", "", "/n/12/ab_9", "GET", ALLOWED),
    ("digits", "", "/n/\u0661\u0662/ab", "GET", RESOURCE_DENIED),
    ("digits", "", "/n/12/\u00e9t\u00e9", "GET", RESOURCE_DENIED),
]


@pytest.mark.parametrize(("api", "version", "path", "method", "verdict"), LEGACY)
def test_default_matching(api: str, version: str, path: str, method: str, verdict: int) -> None:
    assert compile_access(SESSION).check(api, version, path, method) == verdict


PREFIX: list[tuple[bool, str, str, str | None, str, int]] = [
    # (suffix matching, api, full path, path without listen path, method, verdict)
    (False, "urls", "/listen/users/42", "/users/42", "GET", ALLOWED),
    (False, "urls", "/users/42", "/users/42", "GET", ALLOWED),
    (False, "urls", "/listen/users/42", None, "GET", RESOURCE_DENIED),  # ^/users vs full path
    (False, "urls", "/x/users/42", "/x/users/42", "GET", RESOURCE_DENIED),
    (False, "urls", "/listen/users/42/orders", "/users/42/orders", "GET", ALLOWED),
    (True, "urls", "/listen/users/42/orders", "/users/42/orders", "GET", RESOURCE_DENIED),
    (True, "urls", "/listen/users/42", "/users/42", "GET", ALLOWED),
    (False, "suffix", "/api/users/1", "/users/1", "GET", ALLOWED),
    (True, "suffix", "/api/users/1", "/users/1", "GET", RESOURCE_DENIED),
    (True, "suffix", "/api/users", "/users", "GET", ALLOWED),
    # Tyk's MatchPath: a pattern equal to ^path$ matches without the regex
    (True, "urls", "/l/a+b", "/a+b", "PUT", ALLOWED),
    (False, "urls", "/l/a+b", "/a+b", "PUT", RESOURCE_DENIED),
    (True, "urls", "/l/aab", "/aab", "PUT", ALLOWED),
    # and an empty pattern ("$" once stripped of ^ and $) never matches
    (False, "dollar", "/x", "/x", "GET", RESOURCE_DENIED),
    (False, "open", "/x", "/x", "GET", ALLOWED),
    (False, "missing", "/x", "/x", "GET", API_DENIED),
]


@pytest.mark.parametrize(("suffix", "api", "path", "stripped", "method", "verdict"), PREFIX)
def test_prefix_matching(
    suffix: bool, api: str, path: str, stripped: str | None, method: str, verdict: int
) -> None:
    rights = compile_access(SESSION, prefix_matching=True, suffix_matching=suffix)
    assert rights.check(api, "", path, method, stripped_path=stripped) == verdict


def test_suffix_matching_alone() -> None:
    rights = compile_access(SESSION, suffix_matching=True)
    assert rights.check("suffix", "", "/api/users", "GET") == ALLOWED
    assert rights.check("suffix", "", "/api/users/1", "GET") == RESOURCE_DENIED


FALLBACK: list[tuple[str, str, str, int]] = [
    # (api, version, the API's default version with fallback_to_default, verdict)
    ("v", "v3", "v2", ALLOWED),
    ("v", "v3", "v9", API_DENIED),
    ("v", "v3", "", API_DENIED),
    ("v", "v1", "v9", ALLOWED),
    ("noversions", "v1", "v1", API_DENIED),
]


@pytest.mark.parametrize(("api", "version", "fallback", "verdict"), FALLBACK)
def test_fallback_to_default_version(api: str, version: str, fallback: str, verdict: int) -> None:
    rights = compile_access(SESSION)
    assert rights.check(api, version, "/", "GET", fallback_version=fallback) == verdict


@pytest.mark.parametrize("session", [{}, {"access_rights": {}}, parse_session({})])
def test_empty_access_rights_admit_everything(session: dict[str, Any]) -> None:
    rights = compile_access(session)
    assert rights.check("any", "v7", "/whatever", "DELETE") == ALLOWED
    assert rights.check("", "", "", "") == ALLOWED


def test_messages_are_tyks() -> None:
    assert API_DENIED_MESSAGE == "Access to this API has been disallowed"
    assert RESOURCE_DENIED_MESSAGE == "Access to this resource has been disallowed"
    assert len({ALLOWED, API_DENIED, RESOURCE_DENIED}) == 3


def test_check_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    session = parse_session(
        {
            "access_rights": {
                "a": {"allowed_urls": [{"url": "/fresh-pattern-[0-9]+", "methods": ["GET"]}]}
            }
        }
    )
    rights = compile_access(session)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled on the request path")

    monkeypatch.setattr(re, "compile", boom)
    monkeypatch.setattr(re, "search", boom)
    assert rights.check("a", "", "/fresh-pattern-12", "GET") == ALLOWED
    assert rights.check("a", "", "/fresh-pattern-x", "GET") == RESOURCE_DENIED


def test_compile_refuses_what_parse_session_would() -> None:
    with pytest.raises(ValueError, match="not RE2 syntax"):
        compile_access({"access_rights": {"a": {"allowed_urls": [{"url": "(?<=x)y"}]}}})


PREPARE: list[tuple[str, bool, bool, str]] = [
    # (url, prefix, suffix, Tyk's PreparePathRegexp)
    ("/users/{id}", False, False, "/users/([^/]+)"),
    ("/users/{id}/orders/{oid}", False, False, "/users/([^/]+)/orders/([^/]+)"),
    ("/a{2}", False, False, "/a([^/]+)"),  # balanced braces are a mux template
    ("/a{2", False, False, "/a{2"),
    ("/users/*", False, False, "/users/.*"),
    ("/users/*/orders", False, False, "/users/[^/]+/orders"),
    ("/*/*/x", False, False, "/[^/]+/.*/x"),
    ("/users", True, False, "^/users"),
    ("users", True, False, "users"),
    ("^/users", True, False, "^/users"),
    ("/users", False, True, "/users$"),
    ("/users$", False, True, "/users$"),
    ("/users", True, True, "^/users$"),
    ("/users/{id}", True, True, "^/users/([^/]+)$"),
]


@pytest.mark.parametrize(("url", "prefix", "suffix", "expected"), PREPARE)
def test_prepare_url_pattern(url: str, prefix: bool, suffix: bool, expected: str) -> None:
    assert prepare_url_pattern(url, prefix=prefix, suffix=suffix) == expected


# -- check_request: the proxy's bytes ------------------------------------------------


def test_check_request_decodes_the_path_only_for_url_rules() -> None:
    from fastgate.session.access import check_request

    rights = compile_access({"access_rights": {
        "urls": {"api_id": "urls", "versions": ["Default"],
                 "allowed_urls": [{"url": "^/u/orders$", "methods": ["GET"]}]},
        "plain": {"api_id": "plain", "versions": ["Default"]}}})
    # Percent-decoded as Go's URL.Path, which Tyk matches.
    assert check_request(rights, "urls", "", b"/u/%6Frders", b"GET") == ALLOWED
    assert check_request(rights, "urls", "", b"/u/orders", b"POST") == RESOURCE_DENIED
    assert check_request(rights, "urls", "", b"/u/users", b"GET") == RESOURCE_DENIED
    assert check_request(rights, "plain", "", b"/anything", b"DELETE") == ALLOWED
    assert check_request(rights, "other", "", b"/x", b"GET") == API_DENIED
    assert check_request(compile_access({"access_rights": {}}), "any", "", b"/x",
                         b"GET") == ALLOWED


# -- matching modes (Tyk 5.5+): ported from Tyk's tests -------------------------------
#
# gateway/mw_granular_access_test.go (TestGranularAccessMiddleware_ProcessRequest),
# internal/httputil/mux_test.go (TestPreparePathRegexp, TestMatchPaths,
# TestStripListenPath, TestPreparePathRegexp_FixedOutputs) at TykTechnologies/tyk@31e219be.

TYK_GRANULAR = {"access_rights": {"api": {"allowed_urls": [
    {"url": "^/valid_path", "methods": ["GET"]},
    {"url": "^/test/try_valid_path", "methods": ["GET"]},
]}}}

GRANULAR: list[tuple[bool, str, str, int]] = [
    # (prefix matching, path, method, verdict); the API listens on "/test"
    (True, "/test/try_valid_path", "GET", ALLOWED),  # matches the full path
    (True, "/test/valid_path", "GET", ALLOWED),  # matches the path without /test
    (True, "/test/valid_path", "POST", RESOURCE_DENIED),
    (True, "/test/invalid_path", "GET", RESOURCE_DENIED),
    # Without prefix matching only the full path is tried.
    (False, "/test/try_valid_path", "GET", ALLOWED),
    (False, "/test/valid_path", "GET", RESOURCE_DENIED),
]


@pytest.mark.parametrize(("prefix", "path", "method", "verdict"), GRANULAR)
def test_tyk_granular_access_cases(prefix: bool, path: str, method: str, verdict: int) -> None:
    from fastgate.session.access import check_request

    rights = compile_access(parse_session(TYK_GRANULAR), prefix_matching=prefix)
    assert check_request(rights, "api", "", path.encode(), method.encode(), "/test") == verdict


TYK_PREPARE: list[tuple[str, bool, bool, str]] = [
    ("/users*.", True, False, "^/users*."),
    ("/users", True, False, "^/users"),
    ("users", True, False, "users"),
    ("^/test/users", True, False, "^/test/users"),
    ("/users$", True, False, "^/users$"),
    ("/users/.*", True, False, "^/users/.*"),
    ("/users/{id}", True, False, "^/users/([^/]+)"),
    ("/users/{id}$", True, False, "^/users/([^/]+)$"),
    ("/users/{id}/profile/{type:[a-zA-Z]+}", True, False, "^/users/([^/]+)/profile/([^/]+)"),
    ("/static/{path}/assets/{file}", True, False, "^/static/([^/]+)/assets/([^/]+)"),
    ("/items/{itemID:[0-9]+}/details/{detail}", True, False, "^/items/([^/]+)/details/([^/]+)"),
    ("/api/v1/users/{userId}/roles/{roleId}", True, False,
     "^/api/v1/users/([^/]+)/roles/([^/]+)"),
    ("/users", True, True, "^/users$"),
    ("/users/{id}", True, True, "^/users/([^/]+)$"),
    ("users", False, True, "users$"),
    ("/items/*", True, False, "^/items/.*"),
]


@pytest.mark.parametrize(("url", "prefix", "suffix", "expected"), TYK_PREPARE)
def test_tyk_prepare_path_regexp(url: str, prefix: bool, suffix: bool, expected: str) -> None:
    assert prepare_url_pattern(url, prefix=prefix, suffix=suffix) == expected


TYK_MATCH_PATHS: list[tuple[str, str, bool]] = [
    # (url, request path, match) with prefix and suffix matching: exact matches
    ("/api/v1/users", "/api/v1/users", True),
    ("/api/v1/users", "/api/v1/admin", False),
    ("/api/v1/user/\\d+", "/api/v1/user/123", True),
    ("/api/v1/user/\\d+", "/api/v1/user/abc", False),
    ("/api/v1/user/{id}", "/api/v1/user/123", True),
    ("/api/v1/*", "/api/v1/users", True),
    ("/api/v1/user", "", False),  # an empty path never matches
    ("/", "/", True),
    # and what exact matching means beyond Tyk's table
    ("/api/v1/users", "/api/v1/users/1", False),
    ("/api/v1/users", "/x/api/v1/users", False),
]


@pytest.mark.parametrize(("url", "path", "match"), TYK_MATCH_PATHS)
def test_tyk_match_paths(url: str, path: str, match: bool) -> None:
    session = parse_session({"access_rights": {"a": {"allowed_urls": [
        {"url": url, "methods": ["GET"]}]}}})
    rights = compile_access(session, prefix_matching=True, suffix_matching=True)
    assert rights.check("a", "", path, "GET") == (ALLOWED if match else RESOURCE_DENIED)


def test_tyk_match_paths_refusals() -> None:
    # Tyk skips a pattern that does not compile (it never matches) and never
    # matches an empty one; fastgate refuses both when the key is written.
    with pytest.raises(ValueError):
        compile_access({"access_rights": {"a": {"allowed_urls": [
            {"url": "/api/v1/[user", "methods": ["GET"]}]}}}, prefix_matching=True)
    with pytest.raises(SessionError, match="must not be empty"):
        parse_session({"access_rights": {"a": {"allowed_urls": [
            {"url": "", "methods": ["GET"]}]}}})


@pytest.mark.parametrize(
    ("listen_path", "path", "stripped"),
    [
        ("/listen", "/listen/get", "/get"),
        ("/listen/", "/listen/get", "/get"),
        ("listen", "listen/get", "/get"),
        ("listen/", "listen/get", "/get"),
        ("/listen/", "/listen/", "/"),
        ("/listen", "/listen", "/"),
        ("listen/", "", "/"),
        ("/listen/", "/other/get", "/other/get"),
    ],
)
def test_tyk_strip_listen_path(listen_path: str, path: str, stripped: str) -> None:
    from fastgate.session.access import strip_listen_path

    assert strip_listen_path(listen_path, path) == stripped


MODES_SESSION = parse_session({"access_rights": {"p": {"allowed_urls": [
    {"url": "/users", "methods": ["GET"]}]}}})

MODES: list[tuple[str, dict[tuple[bool, bool], int]]] = [
    # request path (listen path /p/) -> verdict by (prefix, suffix) mode
    ("/p/users", {(False, False): ALLOWED, (True, False): ALLOWED,
                  (False, True): ALLOWED, (True, True): ALLOWED}),
    ("/p/users/42", {(False, False): ALLOWED, (True, False): ALLOWED,
                     (False, True): RESOURCE_DENIED, (True, True): RESOURCE_DENIED}),
    ("/p/admin/users", {(False, False): ALLOWED, (True, False): RESOURCE_DENIED,
                        (False, True): ALLOWED, (True, True): RESOURCE_DENIED}),
    ("/p/x/users/42", {(False, False): ALLOWED, (True, False): RESOURCE_DENIED,
                       (False, True): RESOURCE_DENIED, (True, True): RESOURCE_DENIED}),
    # decoded before matching, as Go's URL.Path
    ("/p/%75sers", {(False, False): ALLOWED, (True, False): ALLOWED,
                    (False, True): ALLOWED, (True, True): ALLOWED}),
]


@pytest.mark.parametrize(("path", "verdicts"), MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize("mode", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["default", "prefix", "suffix", "both"])
def test_matching_modes(path: str, verdicts: dict[tuple[bool, bool], int],
                        mode: tuple[bool, bool]) -> None:
    from fastgate.session.access import check_request

    rights = compile_access(MODES_SESSION).with_matching(*mode)
    assert check_request(rights, "p", "", path.encode(), b"GET", "/p/") == verdicts[mode]
    assert check_request(rights, "p", "", path.encode(), b"POST", "/p/") == RESOURCE_DENIED


def test_listen_path_with_an_escape_is_stripped_decoded() -> None:
    from fastgate.session.access import check_request

    rights = compile_access(MODES_SESSION, prefix_matching=True, suffix_matching=True)
    # SessionChecks passes the listen path decoded ("/caf%C3%A9/" -> "/café/").
    assert check_request(rights, "p", "", b"/caf%C3%A9/users", b"GET", "/caf\u00e9/") == ALLOWED
    assert check_request(rights, "p", "", b"/caf%C3%A9/users", b"GET", "") == RESOURCE_DENIED


def test_with_matching_compiles_once_per_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    session = parse_session({"access_rights": {"a": {"allowed_urls": [
        {"url": "/once-per-mode-[0-9]+", "methods": ["GET"]}]}}})
    rights = compile_access(session)
    assert rights.with_matching(False, False) is rights
    prefixed = rights.with_matching(True, True)
    assert prefixed is not rights and prefixed.prefix_matching

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(re, "compile", boom)
    # The same compiled rights every time: no compilation on the request path.
    assert rights.with_matching(True, True) is prefixed
    assert prefixed.check("a", "", "/a/once-per-mode-7", "GET",
                          stripped_path="/once-per-mode-7") == ALLOWED
    assert prefixed.check("a", "", "/a/once-per-mode-7/x", "GET",
                          stripped_path="/once-per-mode-7/x") == RESOURCE_DENIED
    assert rights.check("a", "", "/a/once-per-mode-7/x", "GET") == ALLOWED
