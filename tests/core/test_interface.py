"""Each compiled module, its twin and its .pyi stub promise the same interface."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import fastgate._core as core

CORE_DIR = Path(core.__file__).parent


def _has_pyx(name: str) -> bool:
    return (CORE_DIR / f"{name}.pyx").is_file()


def test_modules_are_complete() -> None:
    # Two kinds: X.pyx with its .pyi stub and the twin X_py.py, or a module in
    # Cython's pure-Python mode whose twin X_py.py is itself the compiled source.
    for name in core.MODULES:
        twin = CORE_DIR / f"{name}_py.py"
        assert twin.is_file()
        if _has_pyx(name):
            assert (CORE_DIR / f"{name}.pyi").is_file(), f"{name}.pyx has no .pyi stub"
        else:
            assert "import cython" in twin.read_text(), f"{name}: no .pyx, and not pure mode"
    on_disk = {p.stem for p in CORE_DIR.glob("*.pyx")}
    assert on_disk <= set(core.MODULES), "a .pyx that fastgate._core never loads"


def test_selected_modules_are_bound() -> None:
    for name in core.MODULES:
        chosen = getattr(core, name)
        assert chosen in (core.compiled(name), core.twin(name))
        assert chosen is (core.compiled(name) or core.twin(name))


def _stub_functions(name: str) -> dict[str, list[tuple[str, bool]]]:
    # Functions by name; a class by its name (no parameters: a cdef class has no
    # introspectable signature) and each of its public methods as "Class.method".
    tree = ast.parse((CORE_DIR / f"{name}.pyi").read_text())
    functions: dict[str, list[tuple[str, bool]]] = {}

    def add(node: ast.FunctionDef, qualified: str) -> None:
        args = node.args
        params = [a.arg for a in args.posonlyargs + args.args]
        first_default = len(params) - len(args.defaults)
        functions[qualified] = [(p, i >= first_default) for i, p in enumerate(params)]
        assert ast.get_docstring(node), f"{name}.pyi: {qualified} has no docstring"

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            add(node, node.name)
        elif isinstance(node, ast.ClassDef):
            assert ast.get_docstring(node), f"{name}.pyi: {node.name} has no docstring"
            functions[node.name] = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    add(item, f"{node.name}.{item.name}")
    return functions


def _lookup(module: ModuleType, qualified: str) -> object:
    found: object = module
    for part in qualified.split("."):
        found = getattr(found, part)
    return found


def _defined_here(module: ModuleType) -> list[str]:
    return sorted(
        n
        for n in dir(module)
        if not n.startswith("_")
        and getattr(getattr(module, n), "__module__", None) == module.__name__
    )


def _signature(function: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("name", [n for n in core.MODULES if _has_pyx(n)])
def test_same_public_interface(impl, name: str) -> None:
    module = getattr(impl, name)
    twin = core.twin(name)
    stub = _stub_functions(name)
    assert sorted(module.__all__) == sorted(twin.__all__) == sorted(n for n in stub if "." not in n)
    for public in twin.__all__:
        if isinstance(getattr(twin, public), type):
            methods = sorted(
                f"{public}.{m}" for m in vars(getattr(twin, public)) if not m.startswith("_")
            )
            assert methods == sorted(n for n in stub if n.startswith(f"{public}."))
    for function in stub:
        if isinstance(getattr(twin, function, None), type):
            continue
        compiled_function = _lookup(module, function)
        twin_function = _lookup(twin, function)
        assert _signature(compiled_function) == _signature(twin_function)
        stub_params = [
            (p.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(twin_function).parameters.values()
        ]
        assert stub_params == stub[function]


@pytest.mark.parametrize("name", [n for n in core.MODULES if not _has_pyx(n)])
def test_pure_mode_module_is_its_twin_compiled(impl, name: str) -> None:
    # Same source, so the same classes and functions; what the compiler drops
    # (``from __future__`` flags, the ``cython`` shadow module) does not count.
    module = getattr(impl, name)
    assert _defined_here(module) == _defined_here(core.twin(name))
    if impl.kind == "c":
        assert Path(module.__file__).suffix in (".so", ".pyd")


def test_unknown_module() -> None:
    with pytest.raises(KeyError):
        core.compiled("nope")
    with pytest.raises(KeyError):
        core.twin("nope")
