"""Plugins enabled, disabled and reconfigured while the helpdesk runs (both engines).

Real parts: the built-in knowledge-base plugin (its own table, ``startup`` hook, HTTP routes
and ``kb_search``), the webhook notifier (a secret setting), the database, and a second
helpdesk in another process that follows the change.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ticketcore.app import App, create_helpdesk
from ticketcore.config import Settings
from ticketcore.errors import ConfigError
from ticketcore.plugin_overrides import (
    PluginOverride,
    effective_settings,
    load_effective_settings,
    read_overrides,
)
from ticketcore.plugins.kb.articles import KnowledgeBase

HERE = Path(__file__).resolve().parent

Factory = Callable[..., Awaitable[App]]


async def _kb_app(helpdesk_factory: Factory) -> App:
    return await helpdesk_factory(
        plugins={"kb": ["articles"]},
        plugin={"kb": {"articles": {"article_url": "/kb/{id}"}}},
    )


async def test_disable_and_enable_apply_without_restart(helpdesk_factory: Factory) -> None:
    app = await _kb_app(helpdesk_factory)
    first = app.pm.get_plugin("kb.articles")
    assert isinstance(first, KnowledgeBase) and first.store is not None
    assert app.hooks.implementers("kb_search") == ["kb.articles"]

    await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=False))
    assert app.pm.get_plugin("kb.articles") is None
    assert app.hooks.implementers("kb_search") == []
    assert "articles" not in app.settings.plugins.kb
    assert [p.qualified_name for p in app.plugins] == []

    await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=True))
    again = app.pm.get_plugin("kb.articles")
    assert isinstance(again, KnowledgeBase) and again is not first
    assert again.store is not None, "startup of the re-enabled plugin did not run"
    assert app.hooks.implementers("kb_search") == ["kb.articles"]


async def test_enable_a_plugin_not_in_the_file_creates_its_table(
    helpdesk_factory: Factory,
) -> None:
    app = await helpdesk_factory()
    assert app.pm.get_plugin("kb.articles") is None
    await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=True))
    plugin = app.pm.get_plugin("kb.articles")
    assert isinstance(plugin, KnowledgeBase) and plugin.store is not None
    # its table exists and works: write an article and find it through the hook
    await plugin.store.insert(
        {
            "title": "Reset your password",
            "body_text": "Use the link",
            "visibility": "public",
            "status": "published",
            "author_name": "Ada",
        },
        app.clock.now(),
    )
    outcomes = await app.hooks.broadcast("kb_search", query="password", limit=5)
    assert [h.title for h in outcomes[0].result] == ["Reset your password"]


async def test_settings_change_applies_and_unchanged_plugins_keep_their_object(
    helpdesk_factory: Factory,
) -> None:
    app = await helpdesk_factory(
        plugins={"kb": ["articles"], "routing": ["round_robin"]},
    )
    routing = app.pm.get_plugin("routing.round_robin")
    await app.plugin_runtime.save(
        PluginOverride(kind="kb", name="articles", settings={"article_url": "/help/{id}"})
    )
    kb = app.pm.get_plugin("kb.articles")
    assert isinstance(kb, KnowledgeBase) and kb.config.article_url == "/help/{id}"
    assert app.pm.get_plugin("routing.round_robin") is routing, "an unchanged plugin was rebuilt"


async def test_invalid_settings_are_refused_and_the_old_set_kept(
    helpdesk_factory: Factory,
) -> None:
    app = await _kb_app(helpdesk_factory)
    before = app.pm
    with pytest.raises(ConfigError) as caught:
        await app.plugin_runtime.save(
            PluginOverride(kind="kb", name="articles", settings={"article_url": "/no-id"})
        )
    assert "article_url must contain {id}" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        await app.plugin_runtime.save(
            PluginOverride(kind="kb", name="articles", settings={"no_such": 1})
        )
    assert "unknown setting(s) no_such" in str(caught.value)
    with pytest.raises(ConfigError):
        await app.plugin_runtime.save(PluginOverride(kind="kb", name="nope", enabled=True))
    assert app.pm is before
    assert app.pm.get_plugin("kb.articles") is not None
    version, overrides = await read_overrides(app.db)
    assert (version, overrides) == (0, []), "an invalid change was stored"


async def test_a_broken_stored_change_never_stops_a_helpdesk(
    helpdesk_factory: Factory, settings_factory: Callable[..., Settings]
) -> None:
    """A change that cannot be applied (here: a secret's environment variable missing in
    this process) leaves the running set alone, and a helpdesk starting with it starts with
    the file's plugins."""
    app = await _kb_app(helpdesk_factory)
    await app.db.fetch("UPDATE plugin_override_version SET version = version + 1 WHERE id = 1")
    await app.db.fetch(
        "INSERT INTO plugin_override (kind, name, enabled, settings, version, updated_at) "
        "VALUES ('notifiers', 'webhook', {}, {}, 1, 'now')",
        True,
        json.dumps({"urls": ["http://127.0.0.1:9/"], "secret": {"env": "TC_UNSET_SECRET"}}),
    )
    assert await app.plugin_runtime.refresh(force=True) is False
    assert app.plugin_runtime.last_error and "TC_UNSET_SECRET" in app.plugin_runtime.last_error[0]
    assert app.pm.get_plugin("kb.articles") is not None
    assert app.pm.get_plugin("notifiers.webhook") is None

    other = create_helpdesk(settings_factory(plugins={"kb": ["articles"]}), extra_plugins=())
    await other.start()
    try:
        assert other.pm.get_plugin("kb.articles") is not None
        assert other.plugin_runtime.last_error
    finally:
        await other.stop()


async def test_secret_settings_stay_env_references(
    helpdesk_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TC_HOOK_SECRET", "s3cr3t-value")
    app = await helpdesk_factory()
    await app.plugin_runtime.save(
        PluginOverride(
            kind="notifiers",
            name="webhook",
            enabled=True,
            settings={"urls": ["http://127.0.0.1:9/"], "secret": {"env": "TC_HOOK_SECRET"}},
        )
    )
    plugin = app.pm.get_plugin("notifiers.webhook")
    assert plugin is not None and plugin.config.secret == "s3cr3t-value"
    stored = await app.db.fetchval(
        "SELECT settings FROM plugin_override WHERE name = {}", "webhook"
    )
    assert "s3cr3t-value" not in stored and "TC_HOOK_SECRET" in stored
    shown = next(p for p in app.plugins if p.name == "webhook").raw_config
    assert shown["secret"] == "********"
    assert "plugin.notifiers.webhook.secret" in app.settings.secret_paths


def test_effective_settings_merge_over_the_file(
    settings_factory: Callable[..., Settings],
) -> None:
    base = settings_factory(
        plugins={"kb": ["articles"], "routing": ["rules", "round_robin"]},
        plugin={"kb": {"articles": {"article_url": "/a/{id}"}}},
    )
    merged = effective_settings(
        base,
        [
            PluginOverride(kind="routing", name="rules", enabled=False),
            PluginOverride(kind="routing", name="skills", enabled=True),
            PluginOverride(kind="kb", name="articles", settings={"article_url": "/b/{id}"}),
        ],
    )
    assert merged.plugins.routing == ["round_robin", "skills"]
    assert merged.plugin_config("kb", "articles") == {"article_url": "/b/{id}"}
    assert base.plugin_config("kb", "articles") == {"article_url": "/a/{id}"}


async def test_one_off_commands_read_the_effective_settings(helpdesk_factory: Factory) -> None:
    app = await _kb_app(helpdesk_factory)
    await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=False))
    effective = await load_effective_settings(app.base_settings)
    assert effective.plugins.kb == []


async def test_another_process_follows_the_change(
    helpdesk_factory: Factory, tmp_path: Path
) -> None:
    """A second helpdesk on the same database, in its own process, running its job worker,
    drops the plugin an admin disabled here, and takes it back when re-enabled."""
    app = await _kb_app(helpdesk_factory)
    settings = {
        "database": {"url": app.settings.database.url},
        "storage_dir": str(tmp_path / "att"),
        "plugins": {"kb": ["articles"]},
    }
    env = dict(os.environ)
    env.pop("TICKETCORE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "plugin_runtime_process.py"),
        json.dumps(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None

    async def line() -> str:
        return (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()

    try:
        assert await line() == "enabled ['kb.articles']"
        await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=False))
        assert await line() == "enabled []"
        await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=True))
        assert await line() == "enabled ['kb.articles']"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_cli_plugins_list_shows_the_effective_state(
    helpdesk_factory: Factory, tmp_path: Path
) -> None:
    from test_cli import run_cli, write_config

    app = await _kb_app(helpdesk_factory)
    config = write_config(
        tmp_path / "helpdesk.toml", app.settings.database.url, '[plugins]\nkb = ["articles"]\n'
    )

    def kb_enabled() -> bool:
        listed = run_cli("plugins", "list", "--json", "-c", str(config))
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        return next(r for r in rows if r["kind"] == "kb" and r["name"] == "articles")["enabled"]

    assert await asyncio.to_thread(kb_enabled) is True
    await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=False))
    assert await asyncio.to_thread(kb_enabled) is False


async def test_a_plugin_failing_to_start_is_not_enabled(
    helpdesk_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the knowledge base's ``startup`` raises (say its database index
    cannot be made). Enabling it is refused, the running set and the stored state stay."""
    from ticketcore import hookimpl

    @hookimpl
    async def startup(self: KnowledgeBase, app: App) -> None:
        raise RuntimeError("index cannot be created")

    app = await helpdesk_factory(plugins={"routing": ["round_robin"]})
    before = app.pm.get_plugin("routing.round_robin")
    monkeypatch.setattr(KnowledgeBase, "startup", startup)
    with pytest.raises(ConfigError) as caught:
        await app.plugin_runtime.save(PluginOverride(kind="kb", name="articles", enabled=True))
    assert "kb.articles: startup failed: RuntimeError: index cannot be created" in str(caught.value)
    assert app.pm.get_plugin("kb.articles") is None
    assert app.pm.get_plugin("routing.round_robin") is before
    assert effective_settings(app.base_settings, (await read_overrides(app.db))[1]).plugins.kb == []
    await app.plugin_runtime.refresh(force=True)
    assert app.pm.get_plugin("kb.articles") is None and app.plugin_runtime.last_error is None
