"""The ``impl`` fixture: one test, run once per implementation of fastgate._core.

``impl.murmur3`` (and so on for every name in ``fastgate._core.MODULES``) is the
compiled extension for the id ``c`` and the pure-Python twin for the id ``py``.
With ``FASTGATE_NO_EXTENSIONS=1`` the ``c`` runs are skipped; an extension that
is merely missing fails them, so an unbuilt checkout cannot pass on twins alone.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import NoReturn

import pytest

import fastgate._core as core


class Implementation:
    """The modules of one implementation, by name: ``impl.compare``, ``impl.murmur3``..."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getattr__(self, name: str) -> ModuleType:
        if name not in core.MODULES:
            raise AttributeError(name)
        if self.kind == "py":
            return core.twin(name)
        module = core.compiled(name)
        if module is None:
            _missing_extension(name)
        return module

    def __repr__(self) -> str:
        return f"<fastgate._core implementation {self.kind}>"


def _missing_extension(name: str) -> NoReturn:
    if core.NO_EXTENSIONS:
        pytest.skip("FASTGATE_NO_EXTENSIONS is set: compiled extensions not loaded")
    pytest.fail(f"fastgate._core.{name} is not built (run `pip install -e .`)")


@pytest.fixture(params=["c", "py"])
def impl(request: pytest.FixtureRequest) -> Implementation:
    return Implementation(request.param)


@pytest.fixture
def both() -> Callable[[str], tuple[ModuleType, ModuleType]]:
    """``both(name)`` gives ``(compiled, twin)`` for the differential tests."""

    def get(name: str) -> tuple[ModuleType, ModuleType]:
        compiled = core.compiled(name)
        if compiled is None:
            _missing_extension(name)
        return compiled, core.twin(name)

    return get
