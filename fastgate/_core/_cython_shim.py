"""What the pure-Python twins need of the ``cython`` module when Cython is not
installed (a wheel built elsewhere, run with ``FASTGATE_NO_EXTENSIONS=1``).

Modules written in Cython's pure-Python mode do::

    try:
        import cython
    except ImportError:
        from fastgate._core import _cython_shim as cython

Compiled, ``import cython`` is resolved by the compiler and this file is never
used; interpreted, the decorators below are no-ops and the type names are
plain Python types, exactly as in Cython's own ``Shadow`` module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F")

compiled = False

# Type names used in annotations and declarations.
bint = bool
int = int  # mirrors cython.int
long = int
longlong = int
Py_ssize_t = int
double = float
uint = int
uchar = int
p_uchar = bytes  # a pointer to unsigned char: the buffer, interpreted


def _identity(obj: F) -> F:
    return obj


cclass = _identity
cfunc = _identity
ccall = _identity
inline = _identity
final = _identity


def locals(**_types: Any) -> Callable[[F], F]:  # mirrors cython.locals
    return _identity


def exceptval(*_args: Any, **_kwargs: Any) -> Callable[[F], F]:
    return _identity


def declare(_type: Any = None, value: Any = None, **_kwargs: Any) -> Any:
    return value


def cast(_type: Any, value: Any, **_kwargs: Any) -> Any:
    return value
