"""``fastgate keys ...`` against a real gateway process (the commands run in
this process through ``add_keys_parser``; the gateway is a real one)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Any

import pytest
import requests

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
                           storage=storage, enable_hashed_keys_listing=True)


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
    (["create", "--rate", "5"], 2, "--rate needs --per (or a per in --data)"),
    (["create", "--per", "5"], 2, "--per needs --rate (or a rate in --data)"),
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


# ----------------------------------------------------------------------------- the key's org


@pytest.fixture
def org_gw(gateway_factory: Any, make_api: Any, echo: Any, storage: dict[str, Any]) -> Any:
    apis = [make_api("acme-api", "/acme/", echo.base_url, use_keyless=False,
                     use_basic_auth=True, org_id="acme"),
            make_api("other-api", "/other/", echo.base_url, use_keyless=False,
                     org_id="other")]
    return gateway_factory(apis, storage=storage, hash_key_function="murmur64",
                           enable_hashed_keys_listing=True)


def test_a_basic_auth_user_gets_the_org_of_its_api(org_gw: Any,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(org_gw, capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret:pw\n"))
    code, _created, err = cli("create", "--key", "alice", "--password-stdin", "--api",
                              "acme-api")
    assert (code, err) == (0, "")
    code, session, err = cli("get", "alice")  # no --org: the gateway finds acme's alice
    assert (code, err) == (0, "")
    assert session["org_id"] == "acme"
    ok = requests.get(org_gw.url("/acme/x"), auth=("alice", "s3cret:pw"), timeout=10)
    assert ok.status_code == 200, ok.text


def test_the_org_given_wins(org_gw: Any, capsys: pytest.CaptureFixture[str],
                            tmp_path: Any) -> None:
    cli = Cli(org_gw, capsys)
    code, _, _ = cli("create", "--key", "key-org-x", "--api", "acme-api", "--org", "x")
    assert code == 0
    assert cli("get", "key-org-x", "--org", "x")[1]["org_id"] == "x"
    data = tmp_path / "session.json"
    data.write_text(json.dumps({"org_id": "from-data"}))
    code, _, _ = cli("create", "--key", "key-org-d", "--api", "acme-api", "--data", str(data))
    assert code == 0
    assert cli("get", "key-org-d", "--org", "from-data")[1]["org_id"] == "from-data"


def test_the_org_of_a_policy(org_gw: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rest = RestClient(org_gw)
    rights = {"other-api": {"api_id": "other-api", "versions": ["Default"]}}
    assert rest("POST", "/tyk/policies", {"id": "other-pol", "org_id": "other",
                                          "access_rights": rights}).status_code == 200
    cli = Cli(org_gw, capsys)
    code, _created, err = cli("create", "--key", "pol-key-1", "--policy", "other-pol")
    assert (code, err) == (0, "")
    assert cli("get", "pol-key-1")[1]["org_id"] == "other"
    assert requests.get(org_gw.url("/other/x"), headers={"Authorization": "pol-key-1"},
                        timeout=10).status_code == 200


def test_apis_of_different_orgs_need_org(org_gw: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(org_gw, capsys)
    code, out, err = cli("create", "--api", "acme-api", "--api", "other-api")
    assert (code, out) == (2, None)
    assert "--api: acme-api (acme), other-api (other) belong to different organisations" in err
    assert RestClient(org_gw)("GET", "/tyk/keys").json() == {"keys": []}  # nothing sent


# ----------------------------------------------------------------------------- --data and flags


def test_flags_override_the_body_one_field_at_a_time(cli: Cli, gw: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(
        {"rate": 5, "per": 10, "meta_data": {"team": "a"}, "access_rights": RIGHTS})))
    code, _created, err = cli("create", "--key", "data-key-1", "--data", "-", "--rate", "50")
    assert (code, err) == (0, "")
    session = cli("get", "data-key-1")[1]
    assert (session["rate"], session["per"], session["meta_data"]) == (50, 10, {"team": "a"})

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"rate": 5, "per": 10,
                                                              "access_rights": RIGHTS})))
    assert cli("create", "--key", "data-key-2", "--data", "-", "--per", "30")[0] == 0
    session = cli("get", "data-key-2")[1]
    assert (session["rate"], session["per"]) == (5, 30)

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"per": 0})))
    code, out, err = cli("create", "--data", "-", "--rate", "5")
    assert (code, out) == (2, None) and "--rate needs --per" in err
