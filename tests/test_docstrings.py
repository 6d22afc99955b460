"""Docstrings and comments name only files and modules that exist.

A docstring that sends the reader to ``DESIGN.md`` (not in the tree) or to
``fastgate.server.responses`` after a move is worse than none.  This reads every
docstring and comment of fastgate, bench and tools, and checks each file path
(``fastgate/auth/basic_auth.py``, ``bench/README.md``, ``setup.py``) and each
Sphinx reference to a fastgate module (``:mod:`fastgate.auth.identity```,
``:class:`fastgate.services.Services```).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for folder in ("fastgate", "bench", "tools", "tests")
                 for p in (REPO / folder).rglob("*.py")
                 if "__pycache__" not in p.parts and p.name != "test_docstrings.py")

#: A path with a folder (a/b.py, ../x/y.md) or a bare file name with an extension
#: only documents have (README.md, setup.py is caught by the folder-less rule).
_PATH = re.compile(
    r"(?<![\w/.`-])((?:\.\./)*(?:[\w.-]+/)+[\w.-]+\.(?:py|pyx|pxd|pyi|md|lua|json|toml|conf|cfg))"
    r"|(?<![\w/.-])([\w-]+\.(?:md|toml|cfg))\b")
_SPHINX = re.compile(r":(?:mod|class|func|meth|data|attr|exc):`~?(fastgate(?:\.\w+)+)`")
#: Files that are produced, not kept (named on purpose in docs of tools that write them).
_GENERATED = {"bench/results/latest.json"}


def texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of the file."""
    source = path.read_text()
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                line = node.body[0].lineno if node.body else 1
                found.append((line, doc))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found.append((token.start[0], token.string))
    return found


def _exists(name: str, here: Path) -> bool:
    if name in _GENERATED:
        return True
    if name.startswith("../"):
        return False  # outside the repository: a clone does not have it
    candidates = [REPO / name, here.parent / name, REPO / "fastgate" / name]
    return any(c.exists() for c in candidates)


def _module_exists(dotted: str) -> bool:
    """Whether ``dotted`` is a module of the tree, or a name defined in one
    (each name after the module must appear in that module's source)."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:end])
        # A _core module compiled from its twin is named without the "_py".
        twin = base.with_name(base.name + "_py.py")
        for source in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".pyx"),
                       base.with_suffix(".pyi"), twin):
            if source.is_file():
                text = source.read_text()
                return all(re.search(rf"\b{re.escape(name)}\b", text) for name in parts[end:])
    return False


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_files_and_modules_exist(path: Path) -> None:
    missing = []
    for line, text in texts(path):
        for match in _PATH.finditer(text):
            name = match.group(1) or match.group(2)
            if not _exists(name, path):
                missing.append(f"line {line}: {name}")
        for match in _SPHINX.finditer(text):
            dotted = match.group(1)
            if not _module_exists(dotted):
                missing.append(f"line {line}: {dotted}")
    assert not missing, f"{path.relative_to(REPO)} names what does not exist: {missing}"


def test_the_check_finds_a_missing_file(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""See ../shared/DESIGN.md and :mod:`fastgate.nothing.here`."""\n'
                     "# and fastgate/no_such_module.py\n")
    found = texts(probe)
    names = [m.group(1) or m.group(2) for _line, text in found for m in _PATH.finditer(text)]
    assert names == ["../shared/DESIGN.md", "fastgate/no_such_module.py"]
    assert not _exists("../shared/DESIGN.md", probe)
    assert not _module_exists("fastgate.nothing.here")
    assert _module_exists("fastgate.services.Services")
