"""FASTGATE_NO_EXTENSIONS and a missing build really select the twins, everywhere.

Each case runs a fresh interpreter, since the choice is made once at import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastgate._core as core

PACKAGE_DIR = Path(core.__file__).parent.parent  # .../fastgate

PROBE = r"""
import json, os, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import fastgate._core as core
    import fastgate._core.murmur3 as direct
    from fastgate._core import compare, http, murmur3
result = {
    "no_extensions": core.NO_EXTENSIONS,
    "package_dir": os.path.dirname(core.__file__),
    "chosen": {name: getattr(core, name).__name__ for name in core.MODULES},
    "in_sys_modules": {
        name: sys.modules["fastgate._core." + name].__name__ for name in core.MODULES
    },
    "compiled": {name: core.compiled(name) is not None for name in core.MODULES},
    "direct": direct.__name__,
    "extension_files": sorted(
        m.__name__ for m in list(sys.modules.values())
        if getattr(m, "__name__", "").startswith("fastgate._core.")
        and str(getattr(m, "__file__", "")).endswith((".so", ".pyd"))
    ),
    "warnings": [str(w.message) for w in caught],
    "hash": murmur3.murmur64_hex(b"fastgate"),
}
print(json.dumps(result))
"""


def probe(env_value: str | None, pythonpath: Path | None = None) -> dict:
    env = dict(os.environ)
    env.pop("FASTGATE_NO_EXTENSIONS", None)
    if env_value is not None:
        env["FASTGATE_NO_EXTENSIONS"] = env_value
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=pythonpath or PACKAGE_DIR.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_env_selects_every_twin(value: str) -> None:
    result = probe(value)
    assert result["no_extensions"] is True
    for name in core.MODULES:
        assert result["chosen"][name] == f"fastgate._core.{name}_py"
        assert result["in_sys_modules"][name] == f"fastgate._core.{name}_py"
        assert result["compiled"][name] is False
    # `import fastgate._core.murmur3` cannot reach the extension behind the switch.
    assert result["direct"] == "fastgate._core.murmur3_py"
    assert result["extension_files"] == []
    assert result["warnings"] == []


@pytest.mark.parametrize("value", [None, "", "0"])
def test_extensions_by_default(value: str | None) -> None:
    if core.NO_EXTENSIONS:
        pytest.skip("this run has FASTGATE_NO_EXTENSIONS set")
    result = probe(value)
    assert result["no_extensions"] is False
    for name in core.MODULES:
        assert result["chosen"][name] == f"fastgate._core.{name}"
        assert result["compiled"][name] is True
    assert result["direct"] == "fastgate._core.murmur3"
    assert sorted(result["extension_files"]) == sorted(f"fastgate._core.{n}" for n in core.MODULES)
    assert result["warnings"] == []


def test_both_choices_hash_alike() -> None:
    assert probe("1")["hash"] == probe(None)["hash"]


def test_missing_extension_falls_back_loudly(tmp_path: Path) -> None:
    # A copy of the package whose murmur3 extension was never built.
    shutil.copytree(
        PACKAGE_DIR,
        tmp_path / "fastgate",
        ignore=shutil.ignore_patterns("murmur3.*.so", "murmur3.*.pyd", "__pycache__"),
    )
    result = probe(None, pythonpath=tmp_path)
    assert Path(result["package_dir"]) == tmp_path / "fastgate" / "_core"
    assert result["chosen"]["murmur3"] == "fastgate._core.murmur3_py"
    assert result["direct"] == "fastgate._core.murmur3_py"
    assert result["compiled"]["murmur3"] is False
    assert len(result["warnings"]) == 1
    assert "fastgate._core.murmur3" in result["warnings"][0]
    assert "FASTGATE_NO_EXTENSIONS" in result["warnings"][0]
    if not core.NO_EXTENSIONS:
        assert result["chosen"]["compare"] == "fastgate._core.compare"
