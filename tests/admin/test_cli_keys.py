"""``fastgate keys ...`` against a real gateway process (the commands run in
this process through ``add_keys_parser``; the gateway is a real one)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Any

import pytest

from fastgate.cli_keys import add_keys_parser, url_for

from .conftest import RestClient

RIGHTS = {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"]}}


class Cli:
    def __init__(self, gateway: Any, capsys: pytest.CaptureFixture[str]) -> None:
        self.gateway = gateway
        self.capsys = capsys
        parser = argparse.ArgumentParser(prog="fastgate")
        add_keys_parser(parser.add_subparsers(dest="command", required=True))
        self.parser = parser

    def __call__(self, *argv: str, connect: bool = True) -> tuple[int, Any, str]:
        """(exit code, decoded stdout (None if empty), stderr)."""
        args = list(argv)
        if connect:
            args += ["--url", self.gateway.base_url, "--secret", self.gateway.secret]
        parsed = self.parser.parse_args(["keys", *args])
        code = parsed.func(parsed)
        out, err = self.capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err


@pytest.fixture
def gw(gateway_factory: Any, make_api: Any, echo: Any, storage: dict[str, Any]) -> Any:
    return gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False, org_id="")],
                           storage=storage)


@pytest.fixture
def cli(gw: Any, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(gw, capsys)


def test_create_get_list_delete(cli: Cli, gw: Any) -> None:
    code, created, err = cli("create", "--api", "p", "--rate", "10", "--per", "60",
                             "--quota-max", "100", "--quota-renewal-rate", "3600",
                             "--expires", "4102444800", "--org", "")
    assert (code, err) == (0, "")
    assert created["action"] == "added" and created["key_hash"]
    key = created["key"]

    code, session, _ = cli("get", key)
    assert code == 0
    assert (session["rate"], session["per"], session["quota_max"]) == (10, 60, 100)
    assert session["quota_renewal_rate"] == 3600 and session["expires"] == 4102444800
    assert list(session["access_rights"]) == ["p"]

    code, by_hash, _ = cli("get", created["key_hash"], "--hashed")
    assert code == 0 and by_hash["rate"] == 10

    code, listing, _ = cli("list")
    assert code == 0 and listing["keys"] == [created["key_hash"]]

    code, deleted, _ = cli("delete", key)
    assert code == 0 and deleted == {"key": key, "status": "ok", "action": "deleted"}

    code, out, err = cli("get", key)
    assert (code, out) == (1, None)
    assert "404" in err and "Key not found" in err


def test_create_custom_key_with_policy_and_data(cli: Cli, gw: Any, tmp_path: Any) -> None:
    rest = RestClient(gw)
    assert rest("POST", "/tyk/policies", {"id": "gold", "access_rights": RIGHTS}).status_code == 200
    data = tmp_path / "session.json"
    data.write_text(json.dumps({"rate": 5, "per": 1, "meta_data": {"team": "a"}}))
    code, created, err = cli("create", "--key", "my-custom-key", "--policy", "gold",
                             "--data", str(data))
    assert (code, err) == (0, "")
    assert created["key"] == "my-custom-key"
    session = rest("GET", "/tyk/keys/my-custom-key").json()
    assert session["apply_policies"] == ["gold"]
    assert session["meta_data"] == {"team": "a"} and session["rate"] == 5


def test_create_basic_auth_user(cli: Cli, gw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret:pw\n"))
    code, created, err = cli("create", "--key", "alice", "--api", "p", "--password-stdin")
    assert (code, err) == (0, "")
    assert created["key"] == "" and created["key_hash"]  # hash_keys: by hash only, as Tyk
    code, session, _ = cli("get", "alice")
    assert code == 0
    assert session["basic_auth_data"] == {"hash_type": "bcrypt"}


def test_secret_from_environment_and_config(gw: Any, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(gw, capsys)
    monkeypatch.setenv("FASTGATE_SECRET", gw.secret)
    code, listing, err = cli("list", "--url", gw.base_url, connect=False)
    assert (code, listing, err) == (0, {"keys": []}, "")
    monkeypatch.delenv("FASTGATE_SECRET")
    code, listing, err = cli("list", "--config", str(gw.config_path), connect=False)
    assert (code, listing, err) == (0, {"keys": []}, "")


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["list", "--secret", "wrong"], 1,
     "403: Attempted administrative access with invalid or missing key!"),
    (["list"], 2, "no gateway secret"),
    (["create", "--rate", "5"], 2, "--rate and --per go together"),
    (["delete", "nope-key"], 1, "404: There is no such key found"),
    (["create", "--key", "ab"], 1, "custom key ID length 2 is less than min_token_length"),
])
def test_errors(gw: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                argv: list[str], code: int, message: str) -> None:
    monkeypatch.delenv("FASTGATE_SECRET", raising=False)
    cli = Cli(gw, capsys)
    connect = "--secret" not in argv and argv != ["list"]
    extra = [] if connect else ["--url", gw.base_url]
    got, out, err = cli(*argv, *extra, connect=connect)
    assert (got, out) == (code, None)
    assert message in err
    assert err.startswith("fastgate: ")


def test_bad_data_file(cli: Cli, tmp_path: Any) -> None:
    data = tmp_path / "bad.json"
    data.write_text("[1, 2]")
    code, out, err = cli("create", "--data", str(data))
    assert (code, out) == (2, None) and "JSON object" in err
    data.write_text("{nope")
    code, out, err = cli("create", "--data", str(data))
    assert (code, out) == (2, None) and "not JSON" in err


def test_unreachable_gateway(capsys: pytest.CaptureFixture[str], free_port: Any) -> None:
    parser = argparse.ArgumentParser(prog="fastgate")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", "list", "--url", f"http://127.0.0.1:{free_port()}",
                              "--secret", "x", "--timeout", "2"])
    assert args.func(args) == 2
    assert "cannot reach the gateway" in capsys.readouterr().err


@pytest.mark.parametrize(("address", "port", "url"), [
    ("", 8080, "http://127.0.0.1:8080"),
    ("0.0.0.0", 9, "http://127.0.0.1:9"),
    ("10.1.2.3", 80, "http://10.1.2.3:80"),
    ("::", 8080, "http://[::1]:8080"),
    ("fe80::1", 8080, "http://[fe80::1]:8080"),
])
def test_url_for(address: str, port: int, url: str) -> None:
    assert url_for(address, port) == url
