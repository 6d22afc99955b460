"""bench.luagen: Lua literals and the rotating-credentials wrk script."""

import re

import pytest

from bench.luagen import lua_string, rotating_requests_script, write_rotating_requests_script


def lua_unquote(literal: str) -> bytes:
    """Decode the subset of Lua string syntax lua_string emits (the test's own oracle)."""
    assert literal[0] == literal[-1] == '"'
    out = bytearray()
    body = literal[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if body[i + 1].isdigit():
                out.append(int(body[i + 1 : i + 4]))
                i += 4
                continue
            out += body[i + 1].encode()
            i += 2
            continue
        assert ch != '"' and 0x20 <= ord(ch) < 0x7F
        out += ch.encode()
        i += 1
    return bytes(out)


@pytest.mark.parametrize(
    "value",
    ["plain-key", 'quo"te', "back\\slash", "new\nline", "nul\0then 123", "\x01" + "9",
     "é ünïcode", "Bearer eyJhbGciOi.eyJzdWIi.sig", ""],
)
def test_lua_string_round_trips(value):
    literal = lua_string(value)
    assert lua_unquote(literal) == value.encode()
    assert "\n" not in literal


def test_lua_string_digit_after_escape_is_not_swallowed():
    # "\1" followed by "9" must not become "\19".
    assert lua_string("\x019") == '"\\0019"'


def test_rotating_script_holds_every_set_in_order():
    keys = [f"key-{n:05d}" for n in range(10_000)]
    script = rotating_requests_script([{"Authorization": k} for k in keys])
    assert re.findall(r'\{\["Authorization"\] = "([^"]*)"\}', script) == keys
    assert "function request()" in script
    assert "function init(args)" in script
    assert 'wrk.format("GET", nil, headers, nil)' in script


def test_rotating_script_method_path_body():
    script = rotating_requests_script([{"X-A": "1", "X-B": "2"}], method="POST",
                                      path="/p?q=1", body=b"\x00{}")
    assert 'wrk.format("POST", "/p?q=1", headers, "\\000{}")' in script
    assert '{["X-A"] = "1", ["X-B"] = "2"}' in script


def test_rotating_script_needs_a_set():
    with pytest.raises(ValueError):
        rotating_requests_script([])


def test_write(tmp_path):
    path = write_rotating_requests_script(tmp_path / "keys.lua", [{"Authorization": "k"}])
    assert path.read_text().startswith("-- Generated")


def test_large_key_sets_are_split_across_functions():
    # LuaJIT refuses a function with more than 65,536 constants: 100,000 keys in one
    # table constructor would make wrk ignore the script.
    script = rotating_requests_script([{"Authorization": f"k{n}"} for n in range(100_000)])
    assert script.count("add(function() return {") == 100
    assert len(re.findall(r'\{\["Authorization"\] = "k[0-9]+"\}', script)) == 100_000
