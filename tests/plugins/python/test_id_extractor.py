"""Tyk's ``id_extractor`` settings and extraction (header, form, body;
value, regex, xpath), read as a definition gives them."""

from __future__ import annotations

from typing import Any

import pytest

from fastgate.config import ConfigError, FieldReader
from fastgate.plugins import id_extractor
from fastgate.plugins.settings import parse_custom_middleware


class Seen:
    """What extraction reads of a request: its headers and query."""

    def __init__(self, headers: dict[bytes, bytes] | None = None, query: bytes = b"") -> None:
        self.headers = headers or {}
        self.query = query

    def header(self, lname: bytes) -> bytes | None:
        return self.headers.get(lname)


def settings(**extractor: Any) -> Any:
    section = {"driver": "python", "auth_check": {"name": "Auth", "path": "a.py"},
               "id_extractor": extractor}
    parsed = parse_custom_middleware(FieldReader({"custom_middleware": section}, "api.json"))
    assert parsed is not None
    return parsed.id_extractor


CASES = [
    ({"extract_from": "header", "extract_with": "value",
      "extractor_config": {"header_name": "X-User"}},
     Seen({b"x-user": b"alice"}), None, "alice"),
    ({"extract_from": "header", "extract_with": "regex",
      "extractor_config": {"header_name": "Authorization", "regex_expression": "[0-9]+",
                           "regex_match_index": 1}},
     Seen({b"authorization": b"id 12 and 34"}), None, "34"),
    ({"extract_from": "form", "extract_with": "value",
      "extractor_config": {"param_name": "user"}},
     Seen({b"content-type": b"application/x-www-form-urlencoded"}), b"a=1&user=bob", "bob"),
    ({"extract_from": "body", "extract_with": "xpath",
      "extractor_config": {"xpath_expression": "//user/id"}},
     Seen(), b"<req><user><id>carol</id></user></req>", "carol"),
    ({"extract_from": "body", "extract_with": "xpath",
      "extractor_config": {"xpath_expression": "//user/id"}},
     Seen(), b"<!DOCTYPE r [<!ENTITY e 'x'>]><req><user><id>&e;</id></user></req>", None),
]


@pytest.mark.parametrize(("extractor", "request_seen", "body", "expected"), CASES)
def test_extraction(extractor: dict[str, Any], request_seen: Seen, body: bytes | None,
                    expected: str | None) -> None:
    found = id_extractor.extract(settings(**extractor), request_seen, body)  # type: ignore[arg-type]
    assert found == expected


@pytest.mark.parametrize(("extractor", "field"), [
    ({"extract_from": "header", "extract_with": "value", "extractor_config": {}},
     "extractor_config.header_name"),
    ({"extract_from": "body", "extract_with": "value", "extractor_config": {}},
     "id_extractor.extract_with"),
    ({"extract_from": "body", "extract_with": "regex",
      "extractor_config": {"regex_expression": "("}}, "extractor_config.regex_expression"),
    ({"extract_from": "body", "extract_with": "xpath",
      "extractor_config": {"xpath_expression": "//a[@x="}}, "extractor_config.xpath_expression"),
])
def test_unusable_settings_name_the_field(extractor: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**extractor)
    assert field in caught.value.field


def test_session_id_is_org_and_md5() -> None:
    assert id_extractor.session_id("org", "alice") == "org6384e2b2184bcbf58eccf10ca7a6563c"
