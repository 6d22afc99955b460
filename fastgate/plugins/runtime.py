"""An API's plugins, loaded: the chain steps its hooks become.

:func:`plugins_for` loads them once per compiled definition (the chain
builder and the ``custom`` auth method ask for the same set), from the
definition's ``custom_middleware`` or from its bundle (whose manifest
replaces it, as in Tyk), and raises ConfigError naming the field and, for a
plugin that fails to load, its file and line: the definition is not put
into service and, on a reload, the configuration in service stays.

File paths: a bundle's files are in its directory (the Python entry file is
``middleware.py``, or the only file the manifest lists, or -- fastgate's --
the bundle file a hook's ``path`` names); a hook's ``path``
outside a bundle is taken as written when absolute, else from the gateway
configuration file's directory (Tyk's working directory, where its
``middleware/`` directory is).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastgate.config import ConfigError
from fastgate.plugins.settings import HookDescriptor, PluginSettings, manifest_settings

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Services

__all__ = ["PluginSet", "PluginSource", "plugin_files", "plugins_for"]


@dataclass(frozen=True, slots=True)
class PluginSource:
    """Where an API's plugins come from (``ApiSpec.plugins``)."""

    #: The definition's own ``custom_middleware`` (None: none, or a bundle's).
    settings: PluginSettings | None
    #: ``custom_middleware_bundle`` ("" for none, or disabled).
    bundle: str = ""


@dataclass(slots=True)
class PluginSet:
    """The steps an API's hooks became, by where they run in the chain."""

    settings: PluginSettings
    pre: list[Any] = field(default_factory=list)
    post_key_auth: list[Any] = field(default_factory=list)
    post: list[Any] = field(default_factory=list)
    #: The step registering the response hooks (None: none).
    response: Any = None
    #: The ``auth_check`` method (None: none).
    auth: Any = None


def _resolve(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def plugin_files(spec: ApiSpec, config_path: str) -> list[str]:
    """The files outside bundles the API's plugins and virtual endpoints are
    read from (a reload compares their stamps: a changed file is reloaded).
    A bundle is never rewritten in place (a new version has a new name)."""
    base = os.path.dirname(config_path)
    files: set[str] = set()
    source: PluginSource | None = spec.plugins
    if source is not None and source.settings is not None:
        files.update(_resolve(h.path, base) for _kind, h in source.settings.hooks() if h.path)
    for version in (spec.version_data.get("versions") or {}).values():
        extended = version.get("extended_paths") if isinstance(version, dict) else None
        entries = extended.get("virtual") if isinstance(extended, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and entry.get("function_source_type") == "file" \
                    and isinstance(entry.get("function_source_uri"), str):
                files.add(_resolve(entry["function_source_uri"], base))
    return sorted(files)


def plugins_for(spec: ApiSpec, services: Services) -> PluginSet | None:
    """The API's loaded plugins (loaded on the first call for this spec), or None."""
    loaded: PluginSet | None = spec.loaded_plugins
    if loaded is not None:
        return loaded
    source: PluginSource | None = spec.plugins
    if source is None:
        return None
    settings = source.settings
    directory = ""
    manifest_files: list[str] = []
    bundle_hash = ""
    if source.bundle:
        bundle = services.bundles.get(spec.api_id, source.bundle, spec.source)
        manifest = os.path.join(bundle.directory, "manifest.json")
        settings = manifest_settings(bundle.manifest, manifest)
        directory = bundle.directory
        listed = bundle.manifest.get("file_list")
        manifest_files = [f for f in listed if isinstance(f, str)] \
            if isinstance(listed, list) else []
        bundle_hash = hashlib.md5(source.bundle.encode(), usedforsecurity=False).hexdigest()
    if settings is None or settings.empty:
        return None
    if settings.driver == "python":
        loaded = _python(spec, services, settings, directory, manifest_files, bundle_hash)
    else:
        loaded = _javascript(spec, services, settings, directory)
    spec.loaded_plugins = loaded
    return loaded


def _field(hook: HookDescriptor) -> str:
    return hook.where + ".name"


def _python(spec: ApiSpec, services: Services, settings: PluginSettings, directory: str,
            manifest_files: list[str], bundle_hash: str) -> PluginSet:
    from fastgate.plugins.python.host import PluginHost
    from fastgate.plugins.python.loader import hook_of, load_module
    from fastgate.plugins.python.middleware import (
        HookRunner,
        PythonAuth,
        PythonHook,
        PythonResponseHooks,
    )

    config = services.config.plugins
    if not config.enable_coprocess:
        raise ConfigError(spec.source, "custom_middleware.driver",
                          "Python plugins need coprocess_options.enable_coprocess: true in "
                          f"the gateway configuration ({services.config.path})")
    base = os.path.dirname(services.config.path)
    prefixes = (config.python_path_prefix,) if config.python_path_prefix else ()
    modules: dict[str, ModuleType] = {}
    host = PluginHost(services.store)

    def runner(hook: HookDescriptor) -> HookRunner:
        if directory:
            # Tyk's entry file; fastgate's: a hook's path naming a bundle file.
            entry = os.path.join(directory, "middleware.py")
            if len(manifest_files) == 1:
                entry = os.path.join(directory, manifest_files[0])
            named = os.path.normpath(os.path.join(directory, hook.path)) if hook.path else ""
            if named.startswith(directory + os.sep) and os.path.isfile(named):
                entry = named
        elif hook.path:
            entry = _resolve(hook.path, base)
        else:
            raise ConfigError(spec.source, hook.where + ".path",
                              "a Python hook outside a bundle needs the path of its file")
        module = modules.get(entry)
        if module is None:
            module = modules[entry] = load_module(entry, source=spec.source,
                                                  field=_field(hook), path_prefixes=prefixes)
        found = hook_of(module, hook.name, source=spec.source, field=_field(hook), path=entry)
        return HookRunner(found, hook, host, budget=config.hook_time_budget,
                          workers=config.thread_pool_workers)

    out = PluginSet(settings)
    for kind in ("pre", "post_key_auth", "post"):
        steps = getattr(out, kind)
        for hook in getattr(settings, kind):
            made = runner(hook)
            if made.hook.arg_count not in (3, 4):
                raise ConfigError(spec.source, hook.where, f"{hook.name!r} takes "
                                  f"{made.hook.arg_count} arguments: a {kind} hook takes 3 "
                                  "(request, session, spec) or 4 (..., metadata, spec)")
            steps.append(PythonHook(spec, hook, made, bundle_hash,
                                    with_session=kind == "post_key_auth" or hook.require_session))
    responders = []
    for hook in settings.response:
        made = runner(hook)
        if made.hook.arg_count != 5:
            raise ConfigError(spec.source, hook.where, f"{hook.name!r} takes "
                              f"{made.hook.arg_count} arguments: a response hook takes 5 "
                              "(request, response, session, metadata, spec)")
        responders.append(made)
    if responders:
        out.response = PythonResponseHooks(spec, responders, bundle_hash)
    if settings.auth_check is not None:
        hook = settings.auth_check
        made = runner(hook)
        if made.hook.arg_count != 4:
            raise ConfigError(spec.source, hook.where, f"{hook.name!r} takes "
                              f"{made.hook.arg_count} arguments: auth_check takes 4 "
                              "(request, session, metadata, spec)")
        out.auth = PythonAuth(spec, hook, made, bundle_hash, services, settings.id_extractor)
    return out


def _javascript(spec: ApiSpec, services: Services, settings: PluginSettings,
                directory: str) -> PluginSet:
    from fastgate.plugins.js.auth import JsAuth
    from fastgate.plugins.js.middleware import JsMiddleware

    if not services.config.plugins.enable_jsvm:
        raise ConfigError(spec.source, "custom_middleware.driver",
                          "JavaScript plugins need enable_jsvm: true in the gateway "
                          f"configuration ({services.config.path})")
    base = directory or os.path.dirname(services.config.path)
    out = PluginSet(settings)
    for kind in ("pre", "post_key_auth", "post"):
        steps = getattr(out, kind)
        for hook in getattr(settings, kind):
            if not hook.path:
                raise ConfigError(spec.source, hook.where + ".path",
                                  "a JavaScript middleware needs the path of its file")
            resolved = dataclasses.replace(hook, path=_resolve(hook.path, base))
            steps.append(JsMiddleware(spec, resolved, kind, services))
    if settings.auth_check is not None:
        hook = settings.auth_check
        if not hook.path:
            raise ConfigError(spec.source, hook.where + ".path",
                              "a JavaScript auth_check needs the path of its file")
        out.auth = JsAuth(spec, dataclasses.replace(hook, path=_resolve(hook.path, base)),
                          services)
    return out
