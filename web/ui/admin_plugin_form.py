"""A plugin's settings as a form: fields from its own ``Config`` struct, values shown with
secrets masked, and the submitted form read back into an override (field errors in place).

A masked secret sent back unchanged keeps its stored value (an ``{ env = "NAME" }``
reference stays a reference, never the value it resolves to); ``{env=NAME}`` typed into a
field stores such a reference; an empty field falls back to the settings file (or the
plugin's default).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi

from ticketcore.config import (
    NAMESPACES,
    REDACTED,
    Settings,
    is_secret_key,
    resolve_env_references,
)
from ticketcore.plugin_overrides import PluginOverride

_ENV_REF = re.compile(r'^\{\s*env\s*=\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*\}$')
_AT_FIELD = re.compile(r"`\$\.([A-Za-z_][A-Za-z0-9_]*)")
_MISSING_FIELD = re.compile(r"missing required field `([A-Za-z_][A-Za-z0-9_]*)`")

#: Form field names are ``setting.<key>``.
PREFIX = "setting."


@dataclass(frozen=True)
class SettingField:
    """One setting as a form control."""

    name: str
    #: ``text``, ``number``, ``bool`` or ``json`` (lists, tables, anything else).
    control: str
    value: str
    required: bool
    secret: bool
    default: str


def plugin_module(kind: str, name: str) -> Any | None:
    """The module of installed plugin ``kind.name`` (imports it: cheap by contract), or
    None when it is not installed or does not import."""
    namespace = NAMESPACES.get(kind)
    if namespace is None:
        return None
    for ep in importlib.metadata.entry_points(group=namespace, name=name):
        try:
            return ep.load()
        except Exception:
            return None
    return None


def _control(type_: mi.Type) -> str:
    if isinstance(type_, mi.UnionType):
        others = [t for t in type_.types if not isinstance(t, mi.NoneType)]
        if len(others) == 1:
            return _control(others[0])
        return "json"
    if isinstance(type_, mi.StrType):
        return "text"
    if isinstance(type_, mi.BoolType):
        return "bool"
    if isinstance(type_, mi.IntType | mi.FloatType):
        return "number"
    return "json"


def _show(value: Any, control: str) -> str:
    if value is None:
        return ""
    if control == "bool":
        return "true" if value else "false"
    if control in ("text", "number") and not isinstance(value, dict | list):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _fields(module: Any) -> list[mi.Field]:
    config = getattr(module, "Config", None)
    if config is None:
        return []
    info = mi.type_info(config)
    assert isinstance(info, mi.StructType)
    return list(info.fields)


def _default(field: mi.Field) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return None


def setting_fields(module: Any, settings: Settings, kind: str, name: str) -> list[SettingField]:
    """The plugin's settings as they are in effect, secrets masked."""
    raw = settings.plugin_config(kind, name)
    secrets = set(settings.secret_paths)
    result = []
    for field in _fields(module):
        control = _control(field.type)
        value = raw.get(field.name, _default(field))
        secret = is_secret_key(field.name) or f"plugin.{kind}.{name}.{field.name}" in secrets
        shown = REDACTED if secret and value not in (None, "") else _show(value, control)
        result.append(
            SettingField(
                name=field.name,
                control=control,
                value=shown,
                required=field.required,
                secret=secret,
                default="" if field.required else _show(_default(field), control),
            )
        )
    return result


def _parse(text: str, control: str) -> Any:
    if control == "bool":
        if text not in ("true", "false"):
            raise ValueError("choose true or false")
        return text == "true"
    if control == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ValueError("must be a number") from None
    if control == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    return text


def read_settings_form(
    module: Any,
    form: Mapping[str, Any],
    base: Settings,
    kind: str,
    name: str,
    previous: PluginOverride | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The override settings a submitted form asks for, and errors by field name.

    The values are checked against the plugin's ``Config`` merged over the settings file's
    table, so an error names the field it is about; ``""`` is for errors of the whole form.
    """
    kept = (previous.settings if previous else None) or {}
    settings: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in _fields(module):
        control = _control(field.type)
        value = form.get(PREFIX + field.name)
        text = value.strip() if isinstance(value, str) else ""
        secret = (
            is_secret_key(field.name)
            or f"plugin.{kind}.{name}.{field.name}" in base.secret_paths
            or (isinstance(kept.get(field.name), dict) and set(kept[field.name]) == {"env"})
        )
        if secret and text == REDACTED:
            if field.name in kept:
                settings[field.name] = kept[field.name]
            continue
        env = _ENV_REF.match(text)
        if env:
            settings[field.name] = {"env": env.group(1)}
            continue
        if not text:
            continue
        try:
            settings[field.name] = _parse(text, control)
        except ValueError as exc:
            errors[field.name] = str(exc)
    config = getattr(module, "Config", None)
    if errors or config is None:
        return settings, errors
    where = f"plugin.{kind}.{name}"
    resolved, _, missing = resolve_env_references(settings, where)
    for problem in missing:
        key = problem.removeprefix(f"{where}.").split(":", 1)[0]
        errors[key if key in settings else ""] = problem.split(": ", 1)[-1]
    if errors:
        return settings, errors
    try:
        msgspec.convert({**base.plugin_config(kind, name), **resolved}, config)
    except msgspec.ValidationError as exc:
        field_name = field_of(str(exc), [f.name for f in _fields(module)])
        errors[field_name] = str(exc)
    return settings, errors


def field_of(message: str, names: list[str]) -> str:
    """The setting a validation message is about (``""``: the whole form)."""
    for pattern in (_AT_FIELD, _MISSING_FIELD):
        found = pattern.search(message)
        if found and found.group(1) in names:
            return found.group(1)
    mentioned = [n for n in names if re.search(rf"\b{re.escape(n)}\b", message)]
    return mentioned[0] if len(mentioned) == 1 else ""
