"""Loading a Python plugin: its file run as a fresh module, its ``@Hook`` functions found.

Each load runs the file anew under a module name of its own
(``fastgate_plugin_<n>``), so a reload picks up a changed file and two APIs
never share a module's state by accident.  While it runs, the plugin's
directory (the bundle's) is first on ``sys.path`` so that its own modules
import; those are dropped from ``sys.modules`` afterwards (as Tyk's loader
does), so the next load reads them again.  ``coprocess_options.python_path_prefix``
directories are put on ``sys.path`` for the third-party packages plugins
use.  Tyk's ``tyk`` package and ``gateway`` module come from
``fastgate/plugins/python/sdk``, put on ``sys.path`` once.

A plugin that fails to load -- a syntax error, an exception while it
runs, a hook named in the definition and missing from it -- is a
ConfigError naming the definition's field and the file and line of the
error: the API is not put into service, and on a reload the configuration
in service stays.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import sys
import threading
import traceback
from types import ModuleType

from fastgate.config import ConfigError
from fastgate.plugins.python.hooks import Hook

__all__ = ["SDK_PATH", "hook_of", "load_module"]

#: Where Tyk's ``tyk`` package and ``gateway`` module are (fastgate's).
SDK_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")
_counter = itertools.count(1)
_lock = threading.Lock()


def _ensure_paths(prefixes: tuple[str, ...]) -> None:
    if SDK_PATH not in sys.path:
        sys.path.insert(0, SDK_PATH)
    for prefix in prefixes:
        if prefix and prefix not in sys.path:
            sys.path.append(prefix)


def load_module(path: str, *, source: str, field: str,
                path_prefixes: tuple[str, ...] = ()) -> ModuleType:
    """Run the plugin file ``path``; ConfigError(source, field, "file:line: ...")."""
    if not os.path.isfile(path):
        raise ConfigError(source, field, f"the plugin file {path} does not exist")
    directory = os.path.dirname(os.path.abspath(path))
    name = f"fastgate_plugin_{next(_counter)}"
    with _lock:  # sys.path and sys.modules are the interpreter's: one load at a time
        _ensure_paths(path_prefixes)
        before = set(sys.modules)
        sys.path.insert(0, directory)
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(source, field, f"{path} cannot be loaded as Python")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except SyntaxError as exc:
                where = f"{exc.filename or path}:{exc.lineno or 0}"
                raise ConfigError(source, field, f"{where}: SyntaxError: {exc.msg}") from None
            except Exception as exc:
                raise ConfigError(source, field, _where(exc, directory, path)) from None
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
            for added in set(sys.modules) - before:
                if _inside(getattr(sys.modules.get(added), "__file__", None), directory):
                    del sys.modules[added]
    return module


def _inside(file: str | None, directory: str) -> bool:
    if not file:
        return False
    return os.path.abspath(file).startswith(directory + os.sep)


def _where(exc: BaseException, directory: str, path: str) -> str:
    """``file:line: Type: message`` of the deepest frame in the plugin's files."""
    frames = traceback.extract_tb(exc.__traceback__)
    chosen = None
    for frame in frames:
        if _inside(frame.filename, directory) or os.path.abspath(frame.filename) == \
                os.path.abspath(path):
            chosen = frame
    where = f"{chosen.filename}:{chosen.lineno}" if chosen is not None else path
    return f"{where}: {type(exc).__name__}: {exc}"


def hook_of(module: ModuleType, name: str, *, source: str, field: str, path: str) -> Hook:
    """The ``@Hook`` named ``name`` in ``module`` (ConfigError when there is none)."""
    found = getattr(module, name, None)
    if isinstance(found, Hook):
        return found
    if found is None or not callable(found):
        raise ConfigError(source, field, f"{path}: no hook named {name!r}")
    raise ConfigError(source, field, f"{path}: {name!r} is not decorated with @Hook")
