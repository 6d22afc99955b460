"""Build script: compiles every Cython module under fastgate/_core/.

Each compiled module has a pure-Python twin (``<name>_py.py``); setting
``FASTGATE_NO_EXTENSIONS=1`` at run time selects the twins.  Setting it at
build time skips compilation altogether (for platforms without a compiler).
``FASTGATE_CYTHON_ANNOTATE=1`` also writes Cython's HTML annotation next to
each ``.pyx`` (yellow lines are where the code calls into Python).
"""

import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent

#: fastgate/_core modules whose source is the pure-Python twin itself.
PURE_MODE_MODULES = ("jws", "proxy", "signing")


def _flag(name: str) -> bool:
    # Same rule as fastgate._core: unset, "" and "0" mean off.
    return os.environ.get(name, "") not in ("", "0")


def extensions() -> list[Extension]:
    if _flag("FASTGATE_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    core = HERE / "fastgate" / "_core"
    modules = [
        Extension(
            "fastgate._core." + pyx.stem,
            [pyx.relative_to(HERE).as_posix()],
            extra_compile_args=["-O3"],
        )
        for pyx in sorted(core.glob("*.pyx"))
    ]
    annotate = _flag("FASTGATE_CYTHON_ANNOTATE")
    extensions = cythonize(
        modules,
        language_level=3,
        annotate=annotate,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    )
    # Modules written in Cython's pure-Python mode: the twin ``X_py.py`` *is*
    # the source, compiled as ``fastgate._core.X``, so the two cannot diverge.
    # Python semantics are kept (bounds checks, negative indexes, division).
    pure = [
        Extension(
            "fastgate._core." + name,
            [(core / f"{name}_py.py").relative_to(HERE).as_posix()],
            extra_compile_args=["-O3"],
        )
        for name in PURE_MODE_MODULES
    ]
    extensions += cythonize(pure, language_level=3, annotate=annotate)
    return extensions


setup(ext_modules=extensions())
