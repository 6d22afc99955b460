"""The package's layers: every import points down.

Read from the source (``ast``), so a violation fails here whether or not the
import runs.  Imports under ``if TYPE_CHECKING:`` are annotations only and may
name a higher layer's types -- except ``fastgate.server.gateway``, which nothing
outside ``server/`` and the CLI may name at all (the middleware get
:class:`fastgate.services.Services`, the REST API its control interface).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "fastgate"

#: Lowest first.  A module may import its own layer and the ones before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("fastgate", "fastgate._core", "fastgate.responses", "fastgate.stats"),
    ("fastgate.config", "fastgate.tyk_conf_fields", "fastgate.certs"),
    ("fastgate.storage", "fastgate.session"),
    ("fastgate.limits", "fastgate.outbound", "fastgate.policies", "fastgate.services"),
    ("fastgate.auth", "fastgate.middleware", "fastgate.observability", "fastgate.plugins"),
    ("fastgate.apidef",),
    ("fastgate.admin", "fastgate.echo"),
    ("fastgate.server",),
    ("fastgate.cli", "fastgate.cli_keys", "fastgate.cli_top", "fastgate.__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len and (prefix != "fastgate" or module == prefix):
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to tests/test_layers.py LAYERS"
    return best


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, source: str | None = None,
            module: str | None = None) -> list[tuple[str, bool, int]]:
    """(module imported, under TYPE_CHECKING, line) for every fastgate import
    of the file (``source`` and ``module`` stand in for a file not in the tree)."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    module = module_name(path) if module is None else module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, typing_only)
                continue
            visit_stmt(child, typing_only)

    def visit_stmt(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, typing_only, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                # "from fastgate import responses" imports that module; a name
                # that is no module of the tree comes from ``base`` itself.
                sub = f"{base}.{alias.name}"
                found.append((sub if _is_module(sub) else base, typing_only, node.lineno))
        else:
            visit(node, typing_only)

    visit(tree, False)
    return [(name, typing, line) for name, typing, line in found
            if name == "fastgate" or name.startswith("fastgate.")]


SOURCES = sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_point_down(path: Path) -> None:
    here = module_name(path)
    mine = layer_of(here)
    upward = []
    for name, typing_only, line in imports(path):
        if typing_only:
            continue
        if layer_of(name) > mine:
            upward.append(f"{path.name}:{line} imports {name} (layer {layer_of(name)} > {mine})")
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_only_the_server_and_the_cli_know_the_gateway(path: Path) -> None:
    here = module_name(path)
    if here.startswith(("fastgate.server", "fastgate.cli")):
        return
    named = [f"{path.name}:{line}" for name, _typing, line in imports(path)
             if name == "fastgate.server.gateway" or name == "fastgate.server"]
    assert not named, f"{here} names fastgate.server.gateway at {', '.join(named)}"


@pytest.mark.parametrize("path", sorted((ROOT / "_core").glob("*.py")),
                         ids=lambda p: p.name)
def test_core_imports_nothing_above_it(path: Path) -> None:
    """``_core`` may use itself and the prepared responses (a leaf), nothing else."""
    allowed = ("fastgate._core", "fastgate.responses")
    above = [f"{path.name}:{line} imports {name}" for name, _typing, line in imports(path)
             if not name.startswith(allowed)]
    assert not above, "\n".join(above)


def test_the_checker_sees_an_upward_import() -> None:
    """The AST reading itself: upward imports, plain, relative and typing-only."""
    source = ("from fastgate.server.gateway import Gateway\nfrom ..admin import keys\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from fastgate import apidef\n")
    found = imports(Path("probe.py"), source, "fastgate.session.probe")
    assert found == [("fastgate.server.gateway", False, 1), ("fastgate.admin.keys", False, 2),
                     ("fastgate.apidef", True, 5)]
    assert layer_of("fastgate.server.gateway") > layer_of("fastgate.session.cache")
