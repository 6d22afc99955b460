"""compare.pxd: another Cython module can cimport ct_memeq and gets the same answers.

Builds a tiny extension against the checkout, as a later ``_core`` module
(HMAC, JWT) will; needs Cython and a C compiler, as building fastgate does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastgate._core as core

ROOT = Path(core.__file__).parent.parent.parent

USER = """
from fastgate._core.compare cimport ct_memeq

def eq(bytes a not None, bytes b not None):
    cdef const unsigned char *pa = <const unsigned char *>a
    cdef const unsigned char *pb = <const unsigned char *>b
    cdef Py_ssize_t na = len(a), nb = len(b)
    cdef bint result
    with nogil:  # ct_memeq is declared nogil and noexcept
        result = ct_memeq(pa, na, pb, nb)
    return result
"""

BUILD = """
from setuptools import Extension, setup
from Cython.Build import cythonize
setup(
    script_args=["-q", "build_ext", "--inplace"],
    ext_modules=cythonize(
        [Extension("user_of_compare", ["user_of_compare.pyx"])],
        include_path=[{root!r}],
        language_level=3,
        quiet=True,
    ),
)
"""

CHECK = """
import user_of_compare
cases = [
    (b"", b"", True), (b"abc", b"abc", True), (b"abc", b"abd", False),
    (b"abc", b"ab", False), (b"a\\x00b", b"a\\x00c", False),
    (b"x" * 41, b"x" * 41, True), (b"x" * 41, b"x" * 40 + b"y", False),
]
for a, b, expected in cases:
    assert user_of_compare.eq(a, b) is expected, (a, b)
print("ok")
"""


@pytest.mark.slow
def test_cimport_ct_memeq(tmp_path: Path) -> None:
    pytest.importorskip("Cython")
    if core.compiled("compare") is None:
        pytest.skip("fastgate._core.compare is not compiled in this run")
    (tmp_path / "user_of_compare.pyx").write_text(textwrap.dedent(USER))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("FASTGATE_NO_EXTENSIONS", None)
    subprocess.run(
        [sys.executable, "-c", BUILD.format(root=str(ROOT))],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "ok"
