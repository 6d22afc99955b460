"""go_regex_to_python: Go RE2 patterns keep their Go meaning on Python's re.

Expected results are what Go's regexp.MatchString answers (RE2 syntax,
https://github.com/google/re2/wiki/Syntax), reasoned case by case.
"""

from __future__ import annotations

import re
import warnings

import pytest

from fastgate.session.access import go_regex_to_python, url_pattern_problem

MATCHES: list[tuple[str, str, bool]] = [
    # (Go pattern, subject, Go's MatchString)
    ("/users", "/api/users/1", True),
    ("^/users", "/api/users", False),
    ("^/users$", "/users", True),
    ("^/users$", "/users\n", False),  # Go's $ without (?m) is the end of the text
    ("/users$", "/users/", False),
    ("/users\\z", "/users", True),
    ("/users\\z", "/users\n", False),
    ("(?m)^/a$", "/a\nb", True),
    ("(?m)/a$", "x/a\n", True),
    ("\\d+", "/\u0661\u0662", False),  # Arabic-Indic digits: Go's \d is ASCII
    ("\\d+", "/12", True),
    ("^/\\w+$", "/\u00e9", False),  # Go's \w is ASCII
    ("^/\\w+$", "/e_1", True),
    ("\\bx\\b", "a x b", True),
    ("^a{,3}$", "a{,3}", True),  # not a repetition in Go: literal
    ("^a{,3}$", "aa", False),
    ("^a{2}$", "aa", True),
    ("^a{2,}$", "aaaa", True),
    ("^a{2,3}$", "aaaa", False),
    ("x}", "x}", True),
    ("^\\x{41}\\x42$", "AB", True),
    ("^\\Qa.b\\E$", "a.b", True),
    ("^\\Qa.b\\E$", "axb", False),
    ("^\\Qa.b", "a.b", True),  # \Q without \E runs to the end
    ("^[[:digit:]]+$", "123", True),
    ("[[:digit:]]", "abc", False),
    ("^[[:alpha:]_]+$", "ab_C", True),
    ("^[[:alpha:]]$", "1", False),
    ("^[[:xdigit:]]+$", "09afAF", True),
    ("^[[:space:]]$", "\t", True),
    ("^[[:punct:]]+$", "!-/[`{~", True),
    ("(?i)/USERS", "/users", True),
    ("(?i:a)b", "Ab", True),
    ("(?i:a)b", "AB", False),
    ("[a&b]", "&", True),
    ("[a|b]", "|", True),
    ("[a~b]", "~", True),
    ("[[a]", "[", True),
    ("^[]a]$", "]", True),
    ("^[^]a]$", "b", True),
    ("(?)a", "a", True),
    ("^a*?b$", "aab", True),
    ("^(?P<id>[0-9]+)$", "42", True),
    ("^\\.$", ".", True),
    ("^\\.$", "x", False),
    ("[\\d]", "5", True),
    ("^\\$$", "$", True),
    ("^a|b$", "xb", True),
    ("^[$]$", "$", True),
]


@pytest.mark.parametrize(("pattern", "subject", "matches"), MATCHES)
def test_go_meaning(pattern: str, subject: str, matches: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning about nested sets either
        compiled = re.compile(go_regex_to_python(pattern), re.ASCII)
    assert bool(compiled.search(subject)) is matches


REFUSED: list[tuple[str, str]] = [
    # (pattern, fragment of the reason): not RE2 syntax, or RE2 syntax not translated
    ("(?=a)", "not RE2 syntax"),
    ("(?!a)", "not RE2 syntax"),
    ("(?<=a)b", "not RE2 syntax"),
    ("(?<!a)b", "not RE2 syntax"),
    ("(?>a)", "not RE2 syntax"),
    ("(a)(?(1)b)", "not RE2 syntax"),
    ("(?P<n>a)(?P=n)", "not RE2 syntax"),
    ("(?#comment)", "not RE2 syntax"),
    ("(?x)a b", "not RE2 syntax"),
    ("(a)\\1", "backreference"),
    ("a*+", "nested repetition"),
    ("a++", "nested repetition"),
    ("a?+", "nested repetition"),
    ("a{2}+", "nested repetition"),
    ("a**", "nested repetition"),
    ("a*??", "nested repetition"),
    ("a{2}{3}", "nested repetition"),
    ("a{1001}", "repeat count"),
    ("a\\Z", "not RE2 syntax"),
    ("\\G", "not RE2 syntax"),
    ("\\u0041", "not RE2 syntax"),
    ("\\N{DIGIT ONE}", "not RE2 syntax"),
    ("[\\b]", "inside a character class"),
    ("[\\z]", "inside a character class"),
    ("\\pL", "Unicode classes"),
    ("\\p{Greek}", "Unicode classes"),
    ("[[:^alpha:]]", "negated class"),
    ("[[:nope:]]", "invalid character class"),
    ("(?U)a+", "ungreedy"),
    ("(?i-)a", "missing flags"),
    ("\\x{110000}", "beyond Unicode"),
    ("abc\\", "trailing backslash"),
    ("[abc", "missing closing ]"),
]


@pytest.mark.parametrize(("pattern", "fragment"), REFUSED)
def test_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        go_regex_to_python(pattern)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("/users/.*", None),
        ("/users/{id}", None),
        ("/users/*", None),
        ("", 'must not be empty (".*" matches every path)'),
        ("/users/(", "invalid regular expression: missing ), unterminated subpattern"),
        ("/a(?=b)", "invalid regular expression: '(?=b' (lookaround"),
        ("a(?i)b", "invalid regular expression: global flags not at the start"),
    ],
)
def test_url_pattern_problem(url: str, problem: str | None) -> None:
    found = url_pattern_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
