"""Loading a directory of API definitions (``app_path``)."""

from __future__ import annotations

import os

from fastgate.apidef.parse import parse_api_definition
from fastgate.apidef.spec import ApiSpec
from fastgate.config import ConfigError, load_json_file

__all__ = ["load_api_definitions"]


def load_api_definitions(app_path: str) -> list[ApiSpec]:
    """Load every ``*.json`` file of ``app_path`` (sorted by name), one API each.

    Raises ConfigError naming the file at fault; two active APIs with the same
    ``api_id`` or the same ``listen_path`` are an error naming both files.
    Hidden files (editor back-ups such as ``.x.json``) are skipped.
    """
    try:
        names = sorted(os.listdir(app_path))
    except OSError as exc:
        raise ConfigError(
            app_path, "", f"cannot read the API definitions directory: {exc.strerror or exc}"
        ) from None
    specs: list[ApiSpec] = []
    by_id: dict[str, ApiSpec] = {}
    by_listen_path: dict[str, ApiSpec] = {}
    for file_name in names:
        path = os.path.join(app_path, file_name)
        if not file_name.endswith(".json") or file_name.startswith("."):
            continue
        if not os.path.isfile(path):
            continue
        spec = parse_api_definition(load_json_file(path), path)
        if spec.active:
            _check_unique(by_id, spec.api_id, spec, "api_id")
            _check_unique(by_listen_path, spec.listen_path, spec, "proxy.listen_path")
        specs.append(spec)
    return specs


def _check_unique(seen: dict[str, ApiSpec], key: str, spec: ApiSpec, field_name: str) -> None:
    other = seen.get(key)
    if other is not None:
        raise ConfigError(
            spec.source,
            field_name,
            f"{key!r} is also used by the active API in {other.source}",
        )
    seen[key] = spec
