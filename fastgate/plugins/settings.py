"""Tyk's ``custom_middleware`` section, parsed: which hooks run, in which driver.

The section (Tyk's ``apidef.MiddlewareSection``) is read from the API
definition, or from the ``manifest.json`` of the bundle the definition names
(``custom_middleware_bundle``), which replaces it as in Tyk::

    {"driver": "python",
     "pre": [{"name": "rewrite", "path": "", "require_session": false,
              "raw_body_only": false, "disabled": false}],
     "auth_check": {"name": "my_auth"},
     "post_key_auth": [...], "post": [...], "response": [...],
     "id_extractor": {"extract_from": "header", "extract_with": "value",
                      "extractor_config": {"header_name": "Authorization"}}}

A descriptor's ``name`` is the Python function (``@Hook``) or the JavaScript
middleware object; ``path`` is the file holding it (JavaScript; for Python,
fastgate's own: a ``.py`` file used without a bundle).  Entries marked
``disabled`` are dropped here.  ``driver`` defaults to ``otto`` (Tyk's JSVM)
as in Tyk; ``python`` and ``otto`` are implemented, ``grpc``, ``lua`` and
``goplugin`` are refused when the definition is loaded.

fastgate's own descriptor field: ``run_in_thread`` (a synchronous Python hook
runs in the gateway's bounded thread pool, ``coprocess_options.thread_pool_workers``,
instead of on the event loop: for hooks that block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastgate.config import ConfigError, FieldReader, json_type_name
from fastgate.plugins.id_extractor import check_xpath

__all__ = [
    "DRIVERS",
    "HOOK_KINDS",
    "HookDescriptor",
    "IdExtractorSettings",
    "PluginSettings",
    "parse_custom_middleware",
]

#: The drivers fastgate runs.
DRIVERS = ("python", "otto")
#: Tyk's drivers fastgate does not run (the definition is refused, naming the driver).
_OTHER_DRIVERS = ("grpc", "lua", "goplugin", "goja")
#: The hook lists, in Tyk's names.
HOOK_KINDS = ("pre", "post_key_auth", "post", "response")
_SOURCES = ("header", "form", "body")
_KINDS = ("value", "regex", "xpath")


@dataclass(frozen=True, slots=True)
class HookDescriptor:
    """One hook (Tyk's ``MiddlewareDefinition``)."""

    #: The function (Python) or middleware object (JavaScript) to call.
    name: str
    #: The file it is in, as written ("" for a bundle's entry file).
    path: str
    #: The hook gets the request's session (Tyk: ``post`` hooks only).
    require_session: bool
    #: Python: the hook gets ``raw_body`` but no decoded ``body``.
    raw_body_only: bool
    #: fastgate's: a synchronous hook runs in the bounded thread pool.
    run_in_thread: bool
    #: Where it was declared (``custom_middleware.pre[0]``), for messages.
    where: str


@dataclass(frozen=True, slots=True)
class IdExtractorSettings:
    """Tyk's ``id_extractor``: where the identity the auth plugin's session
    is cached under comes from (``extract_from`` header|form|body,
    ``extract_with`` value|regex|xpath and the ``extractor_config``)."""

    extract_from: str
    extract_with: str
    header_name: str
    param_name: str
    regex: re.Pattern[str] | None
    regex_match_index: int
    xpath: str


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """The hooks of one API, enabled entries only."""

    driver: str
    pre: tuple[HookDescriptor, ...] = ()
    post_key_auth: tuple[HookDescriptor, ...] = ()
    post: tuple[HookDescriptor, ...] = ()
    response: tuple[HookDescriptor, ...] = ()
    auth_check: HookDescriptor | None = None
    id_extractor: IdExtractorSettings | None = None

    @property
    def empty(self) -> bool:
        """No hook runs."""
        return not (self.pre or self.post_key_auth or self.post or self.response
                    or self.auth_check is not None)

    def hooks(self) -> list[tuple[str, HookDescriptor]]:
        """Every hook with its kind (``auth_check`` included), in declaration order."""
        out = [(kind, hook) for kind in HOOK_KINDS for hook in getattr(self, kind)]
        if self.auth_check is not None:
            out.append(("auth_check", self.auth_check))
        return out


def parse_custom_middleware(reader: FieldReader) -> PluginSettings | None:
    """``reader``'s ``custom_middleware`` section, or None when it has no
    hook that runs.  Raises ConfigError naming the field."""
    if reader.get("custom_middleware") is None:
        return None
    section = reader.section("custom_middleware")
    driver = section.string("driver") or "otto"
    lists: dict[str, tuple[HookDescriptor, ...]] = {}
    for kind in HOOK_KINDS:
        lists[kind] = _descriptors(section, kind)
    auth_check = None
    raw = section.get("auth_check")
    if raw is not None:
        if not isinstance(raw, dict):
            raise section.error("auth_check", f"expected an object, got {json_type_name(raw)}")
        hook = _descriptor(FieldReader(raw, reader.file, section.path("auth_check") + "."),
                           section.path("auth_check"))
        auth_check = hook if hook is not None and hook.name else None
    extractor = _id_extractor(section)
    settings = PluginSettings(driver=driver, auth_check=auth_check, id_extractor=extractor,
                              **lists)
    if settings.empty:
        return None
    if driver in _OTHER_DRIVERS:
        raise section.error("driver", f"the {driver!r} driver is not supported by fastgate "
                                      f"(it runs {', '.join(repr(d) for d in DRIVERS)})")
    if driver not in DRIVERS:
        raise section.error("driver", f"unknown driver {driver!r}: expected one of "
                                      f"{', '.join(repr(d) for d in DRIVERS)}")
    for kind, hook in settings.hooks():
        if not hook.name:
            raise ConfigError(reader.file, hook.where + ".name", "is required (the hook to call)")
        if driver == "otto" and kind == "response":
            raise ConfigError(reader.file, hook.where,
                              "response hooks need driver \"python\" (Tyk's JSVM has none)")
    return settings


def _descriptors(section: FieldReader, kind: str) -> tuple[HookDescriptor, ...]:
    entries = section.get(kind)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise section.error(kind, f"expected an array, got {json_type_name(entries)}")
    out = []
    for index, entry in enumerate(entries):
        where = f"{section.path(kind)}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(section.file, where,
                              f"expected an object, got {json_type_name(entry)}")
        hook = _descriptor(FieldReader(entry, section.file, where + "."), where)
        if hook is not None:
            out.append(hook)
    return tuple(out)


def _descriptor(entry: FieldReader, where: str) -> HookDescriptor | None:
    disabled = entry.boolean("disabled")
    hook = HookDescriptor(
        name=entry.string("name"),
        path=entry.string("path"),
        require_session=entry.boolean("require_session"),
        raw_body_only=entry.boolean("raw_body_only"),
        run_in_thread=entry.boolean("run_in_thread"),
        where=where,
    )
    return None if disabled else hook


def _id_extractor(section: FieldReader) -> IdExtractorSettings | None:
    raw = section.get("id_extractor")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise section.error("id_extractor", f"expected an object, got {json_type_name(raw)}")
    reader = FieldReader(raw, section.file, section.path("id_extractor") + ".")
    if reader.boolean("disabled"):
        return None
    kind = reader.string("extract_with")
    if not kind:
        return None
    if kind not in _KINDS:
        raise reader.error("extract_with", f"must be one of {', '.join(map(repr, _KINDS))}; "
                                           f"got {kind!r}")
    source = reader.string("extract_from")
    if source not in _SOURCES:
        raise reader.error("extract_from", f"must be one of {', '.join(map(repr, _SOURCES))}; "
                                           f"got {source!r}")
    config = reader.section("extractor_config")
    header_name = config.string("header_name")
    param_name = config.string("param_name")
    pattern: re.Pattern[str] | None = None
    xpath = ""
    if source == "header" and not header_name:
        raise config.error("header_name", "is required to extract from a header")
    if source == "form" and not param_name:
        raise config.error("param_name", "is required to extract from a form")
    if kind == "value" and source == "body":
        raise reader.error("extract_with", "\"value\" extracts from a header or a form only")
    if kind == "regex":
        expression = config.string("regex_expression")
        if not expression:
            raise config.error("regex_expression", "is required with extract_with \"regex\"")
        try:
            pattern = re.compile(expression)
        except re.error as exc:
            raise config.error("regex_expression", f"not a regular expression: {exc}") from None
    index = config.integer("regex_match_index", 0, minimum=0)
    if kind == "xpath":
        if source != "body":
            raise reader.error("extract_from", "\"xpath\" extracts from the body only")
        xpath = config.string("xpath_expression")
        if not xpath:
            raise config.error("xpath_expression", "is required with extract_with \"xpath\"")
        problem = check_xpath(xpath)
        if problem is not None:
            raise config.error("xpath_expression", problem)
    return IdExtractorSettings(extract_from=source, extract_with=kind, header_name=header_name,
                               param_name=param_name, regex=pattern, regex_match_index=index,
                               xpath=xpath)


def manifest_settings(manifest: dict[str, Any], file: str) -> PluginSettings | None:
    """The ``custom_middleware`` of a bundle's manifest (it replaces the definition's)."""
    return parse_custom_middleware(FieldReader(manifest, file))
