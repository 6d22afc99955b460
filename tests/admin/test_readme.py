"""The README's REST API and ``fastgate keys`` examples work as printed against
the quick start (examples/quickstart/, what ``tools/run`` serves), and the
README and the ``fastgate.cli_keys`` docstring carry the same CLI section."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

import fastgate.cli_keys

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(title)
    end = README.index("\n### ", start + len(title))
    return README[start:end]


def shell_commands(text: str) -> list[str]:
    """The commands of the first ```sh block of ``text``: continuation lines
    (after ``\\`` or ``|``, or inside a quoted string) joined."""
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending += line + "\n"
        if not line.rstrip().endswith(("\\", "|")) and _complete(pending):
            commands.append(pending)
            pending = ""
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quoted string goes on on the next line
        return False
    return True


def quickstart_gateway(gateway_factory: Any, echo: Any) -> Any:
    config = json.loads((QUICKSTART / "gateway.json").read_text())
    api = json.loads((QUICKSTART / "apps" / "httpbin.json").read_text())
    api["proxy"]["target_url"] = echo.base_url  # the quick start's upstream is fastgate echo
    policies = {"policy_source": "file",
                "policy_record_name": str(QUICKSTART / "policies.json")}
    kept = {k: v for k, v in config.items()
            if k not in ("listen_address", "listen_port", "app_path", "policies")}
    return gateway_factory([api], **{**kept, "policies": policies})


def test_the_cli_section_is_the_cli_docstring() -> None:
    doc = fastgate.cli_keys.__doc__ or ""
    assert doc[doc.index("### Managing keys"):].strip() == \
        section("### Managing keys from the command line").strip()


def test_readme_cli_examples_work_against_the_quick_start(gateway_factory: Any,
                                                          echo: Any) -> None:
    gw = quickstart_gateway(gateway_factory, echo)
    commands = shell_commands(section("### Managing keys from the command line"))
    export, *rest = commands
    name, value = re.fullmatch(r"export (\w+)=(\S+).*\n", export).groups()  # type: ignore[union-attr]
    env = {**os.environ, name: value}
    fastgate = f"{sys.executable} -m fastgate"
    key_hash = ""
    for command in rest:
        line = command.replace(".venv/bin/fastgate", fastgate)
        if "--config" in line:
            line = line.replace("examples/quickstart/gateway.json", str(gw.config_path))
        else:
            line = re.sub(r"(-m fastgate keys \w+)", rf"\1 --url {gw.base_url}", line)
        line = line.replace("<key_hash>", key_hash)
        result = subprocess.run(["sh", "-c", line], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        reply = json.loads(result.stdout)
        if not key_hash and isinstance(reply, dict) and reply.get("key_hash"):
            key_hash = reply["key_hash"]
    assert key_hash

    # alice, made without --org, is a user of echo's org the gateway finds.
    admin = {"X-Tyk-Authorization": gw.secret}
    api = requests.get(gw.url("/tyk/apis/echo"), headers=admin, timeout=10).json()
    changed = requests.put(gw.url("/tyk/apis/echo"), headers=admin, timeout=10,
                           json={**api, "use_keyless": False, "use_basic_auth": True})
    assert changed.status_code == 200, changed.text
    user = re.search(r"printf '([^\\']+)\\n'", README)
    assert user is not None
    ok = requests.get(gw.url("/echo/anything"), auth=("alice", user.group(1)), timeout=10)
    assert ok.status_code == 200, ok.text
    assert requests.get(gw.url("/echo/anything"), auth=("alice", "wrong"), timeout=10
                        ).status_code == 401


def test_readme_rest_example_creates_a_key(gateway_factory: Any, echo: Any) -> None:
    gw = quickstart_gateway(gateway_factory, echo)
    text = section("### The Gateway REST API")
    (curl,) = [c for c in shell_commands(text) if c.startswith("curl")]
    body = json.loads(re.search(r"-d '(.*?)'", curl, re.S).group(1))  # type: ignore[union-attr]
    secret = re.search(r"X-Tyk-Authorization: ([^']+)'", curl).group(1)  # type: ignore[union-attr]
    reply = requests.post(gw.url("/tyk/keys/create"), json=body,
                          headers={"X-Tyk-Authorization": secret}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert "warnings" not in reply.json()


def test_readme_facts() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| `hash_keys`"))
    for function in ('`""`', "`murmur32`", "`murmur64`", "`murmur128`", "`sha256`"):
        assert function in row
    assert "../shared/" not in README
    for linked in re.findall(r"`(docs/[^`]+)`", README):
        assert (REPO / linked).is_file(), linked  # a clone has what the README points to
    assert "httpbin`" not in section("### Managing keys from the command line")
