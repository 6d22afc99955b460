"""fastgate's hot path: small Cython extensions, each with a pure-Python twin.

How to use it
-------------
Import the module you need from this package, and nothing else::

    from fastgate._core import compare, murmur3

    compare.constant_time_equals(expected, presented)
    murmur3.murmur64_hex(key)

``fastgate._core.<name>`` is the implementation chosen for the whole process:
the compiled extension (``<name>.pyx``), or its pure-Python twin
(``<name>_py.py``) when

* ``FASTGATE_NO_EXTENSIONS`` is set to anything but ``""`` or ``"0"`` (read
  once, when this package is first imported), or the interpreter is not
  CPython; or
* the extension is not built (a source checkout nobody compiled): then a
  ``RuntimeWarning`` says so, since everything still works, only slower.

The choice is also written into ``sys.modules``, so ``import
fastgate._core.murmur3`` gives the same module as ``from fastgate._core import
murmur3``: there is no way to reach the other implementation by accident.
Tests and benchmarks that need both ask for them by name with
:func:`compiled` and :func:`twin`.

Adding a module
---------------
``X.pyx`` (the extension), ``X.pyi`` (its typed interface, with the
docstrings), ``X_py.py`` (the twin, same ``__all__`` and signatures), a
``X.pxd`` only when another ``.pyx`` cimports from it; then add ``"X"`` to
:data:`MODULES` (after the modules it cimports) and bind it below.  The tests in
``tests/core/`` and the floors in ``bench/micro/`` must cover it.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = [
    "MODULES",
    "NO_EXTENSIONS",
    "compare",
    "compiled",
    "http",
    "jws",
    "limiter",
    "murmur3",
    "proxy",
    "signing",
    "twin",
]

#: Every module of this package, in import order (a module after those it cimports).
MODULES: tuple[str, ...] = ("compare", "http", "jws", "limiter", "murmur3", "proxy",
                            "signing")


def _extensions_disabled() -> bool:
    if sys.implementation.name != "cpython":
        return True
    return os.environ.get("FASTGATE_NO_EXTENSIONS", "") not in ("", "0")


#: True when the twins were chosen on purpose (the env var, or not CPython).
NO_EXTENSIONS: bool = _extensions_disabled()

_compiled: dict[str, ModuleType | None] = {}
_twins: dict[str, ModuleType] = {}


def _select(name: str) -> ModuleType:
    qualified = f"{__name__}.{name}"
    twin_module = importlib.import_module(f"{qualified}_py")
    _twins[name] = twin_module
    compiled_module: ModuleType | None = None
    if not NO_EXTENSIONS:
        try:
            compiled_module = importlib.import_module(qualified)
        except ImportError as exc:
            warnings.warn(
                f"{qualified}: compiled extension unavailable ({exc}); using the "
                "pure-Python twin. Build it with `pip install -e .`, or set "
                "FASTGATE_NO_EXTENSIONS=1 to choose the twins on purpose.",
                RuntimeWarning,
                stacklevel=2,
            )
    _compiled[name] = compiled_module
    if compiled_module is None:
        sys.modules[qualified] = twin_module
        return twin_module
    return compiled_module


def compiled(name: str) -> ModuleType | None:
    """The compiled extension ``name``, or None when the twins are in use."""
    if name not in _compiled:
        raise KeyError(f"fastgate._core has no module {name!r}")
    return _compiled[name]


def twin(name: str) -> ModuleType:
    """The pure-Python twin of ``name`` (always available)."""
    if name not in _twins:
        raise KeyError(f"fastgate._core has no module {name!r}")
    return _twins[name]


if TYPE_CHECKING:
    from fastgate._core import compare, http, limiter, murmur3
    from fastgate._core import jws_py as jws
    from fastgate._core import proxy_py as proxy
    from fastgate._core import signing_py as signing
else:
    compare = _select("compare")
    http = _select("http")
    jws = _select("jws")
    limiter = _select("limiter")
    murmur3 = _select("murmur3")
    proxy = _select("proxy")
    signing = _select("signing")
