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


def _flag(name: str) -> bool:
    # Same rule as fastgate._core: unset, "" and "0" mean off.
    return os.environ.get(name, "") not in ("", "0")


def extensions() -> list[Extension]:
    if _flag("FASTGATE_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    modules = [
        Extension(
            "fastgate._core." + pyx.stem,
            [pyx.relative_to(HERE).as_posix()],
            extra_compile_args=["-O3"],
        )
        for pyx in sorted((HERE / "fastgate" / "_core").glob("*.pyx"))
    ]
    return cythonize(
        modules,
        language_level=3,
        annotate=_flag("FASTGATE_CYTHON_ANNOTATE"),
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions())
