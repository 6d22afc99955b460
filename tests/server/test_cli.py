"""``fastgate check`` and ``fastgate run`` on good and bad configurations."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess[str]:
    # cwd "/": relative paths in the config must be resolved against the config file.
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/")


@pytest.fixture
def cfg(gateway_factory):
    """A gateway directory with a valid config and one API, not started."""
    return gateway_factory(start=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_check_good_config(cfg, gateway_cmd):
    result = run_cli(gateway_cmd("check", "--config", str(cfg.config_path)))
    assert result.returncode == 0, output(result)


def test_console_script(cfg):
    script = Path(sys.executable).parent / "fastgate"
    if not script.exists():
        pytest.fail(f"console script {script} not installed (pip install -e .)")
    assert run_cli([str(script), "--help"]).returncode == 0
    result = run_cli([str(script), "check", "--config", str(cfg.config_path)])
    assert result.returncode == 0, output(result)


# (id, change applied to the config dict, field named in the message)
BAD_CONFIGS = [
    ("port-string", lambda c: c.update(listen_port="80"), r"listen_port"),
    ("port-range", lambda c: c.update(listen_port=70000), r"listen_port"),
    ("storage-enum", lambda c: c["storage"].update(type="mongo"), r"storage\W{1,4}type"),
    ("read-timeout-type", lambda c: c["http_server_options"].update(read_timeout="x"),
     r"http_server_options\W{1,4}read_timeout"),
    ("max-header-bytes-type",
     lambda c: c["http_server_options"].update(max_header_bytes=[1]),
     r"http_server_options\W{1,4}max_header_bytes"),
    ("secret-type", lambda c: c.update(secret=5), r"secret"),
    ("app-path-missing", lambda c: c.update(app_path="no-such-dir"), r"app_path: .*no-such-dir"),
    ("policy-source-enum", lambda c: c["policies"].update(policy_source="nonsense"),
     r"policies\W{1,4}policy_source"),
    ("workers-memory", lambda c: c.update(workers=2), r"workers"),
]


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in BAD_CONFIGS],
                         ids=[i for i, _, _ in BAD_CONFIGS])
@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_config_refused_naming_file_and_field(cfg, gateway_cmd, command, change, field):
    change(cfg.config)
    cfg.write_config()
    result = run_cli(gateway_cmd(command, "--config", str(cfg.config_path)))
    text = output(result)
    assert result.returncode != 0, f"{command} accepted a bad config:\n{text}"
    assert cfg.config_path.name in text, f"message does not name the file:\n{text}"
    assert re.search(field, text), f"message does not name the field /{field}/:\n{text}"


@pytest.mark.parametrize("command", ["check", "run"])
def test_invalid_json_config(cfg, gateway_cmd, command):
    cfg.config_path.write_text('{"listen_port": 8080,')
    result = run_cli(gateway_cmd(command, "--config", str(cfg.config_path)))
    assert result.returncode != 0
    assert cfg.config_path.name in output(result)


@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_config_file(tmp_path, gateway_cmd, command):
    missing = tmp_path / "nope.json"
    result = run_cli(gateway_cmd(command, "--config", str(missing)))
    assert result.returncode != 0
    assert "nope.json" in output(result)


@pytest.mark.parametrize("command", ["check", "run"])
def test_broken_api_definition_named(cfg, gateway_cmd, command):
    cfg.write_api_text("broken-api.json", json.dumps({"api_id": "b", "proxy": {"listen_path": 5}}))
    result = run_cli(gateway_cmd(command, "--config", str(cfg.config_path)))
    assert result.returncode != 0
    assert "broken-api.json" in output(result), output(result)


def test_unknown_field_is_only_a_warning(cfg, gateway_cmd):
    cfg.config["some_tyk_field_we_do_not_know"] = True
    cfg.write_config()
    result = run_cli(gateway_cmd("check", "--config", str(cfg.config_path)))
    assert result.returncode == 0, output(result)
    assert "some_tyk_field_we_do_not_know" in output(result)


def test_api_with_unimplemented_tyk_fields_loads(cfg, gateway_cmd, make_api, echo):
    api = make_api(
        "tyk", "/tyk-export/", echo.base_url,
        enable_batch_request_support=True,
        custom_middleware={"pre": [], "post": [], "driver": "otto"},
        response_processors=[],
        CORS={"enable": False},
    )
    cfg.write_api(api)
    result = run_cli(gateway_cmd("check", "--config", str(cfg.config_path)))
    assert result.returncode == 0, output(result)
    assert "enable_batch_request_support" in output(result)
