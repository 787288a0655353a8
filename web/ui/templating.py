"""The Jinja2 environment of the pages: organisation overrides, then plugin templates, then
the built-in ones; autoescaped; with our formatting filters."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ticketcore.app import App
from ticketcore.domain.models import SLA_TARGETS, Ticket

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z][\w.\-]*[\w])")


def template_folders(helpdesk: App) -> list[Path]:
    """Where templates are looked up, first match wins: ``[web] templates_dir``, then the
    folders plugins return from ``register_templates``, then the built-in templates."""
    folders: list[Path] = []
    if helpdesk.settings.web.templates_dir:
        folders.append(Path(helpdesk.settings.web.templates_dir))
    for _, registered in helpdesk.hooks.collect("register_templates"):
        folders += [Path(folder) for folder in registered or []]
    folders.append(BUILTIN_TEMPLATES)
    return folders


def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A timestamp for display (UTC); empty for None."""
    return value.strftime(fmt) if value else ""


def format_size(size: int) -> str:
    """A file size for people: ``512 B``, ``3.4 KB``, ``1.2 MB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def sla_due(ticket: Ticket) -> datetime | None:
    """The earliest due time of a ticket's running SLA targets (None when none runs)."""
    times = [t for t in (ticket.sla.due(target) for target in SLA_TARGETS) if t is not None]
    return min(times) if times else None


def highlight_mentions(text: str) -> Markup:
    """Escape ``text`` and mark ``@name`` mentions."""
    escaped = str(escape(text))
    return Markup(_MENTION.sub(r'<mark class="mention">@\1</mark>', escaped))


def build_environment(helpdesk: App) -> jinja2.Environment:
    """The environment every page is rendered with (autoescape always on)."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader([str(p) for p in template_folders(helpdesk)]),
                # An override can extend the original and replace only some blocks:
                # {% extends "builtin/agent/ticket.html" %}
                jinja2.PrefixLoader({"builtin": jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES))}),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["dt"] = format_datetime
    env.filters["mentions"] = highlight_mentions
    env.filters["filesize"] = format_size
    env.filters["sla_due"] = sla_due
    return env


def render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render template ``name`` with ``context``."""
    return env.get_template(name).render(context)
