"""The hook contract is documented and tested: every hookspec in ``ticketcore.hookspecs`` has
a docstring and type hints, and some test under ``tests/`` implements it.

"Tested" is checked the way datasette checks its hooks: the hook's name must appear, here as
an implementation (``def <hook>(``), in a test file other than this one. A hook that is
knowingly untested is listed in ``KNOWN_UNTESTED`` with the reason, as a strict xfail: the
day a test implements it, this file fails until the entry is removed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ticketcore import hookimpl, hookspecs
from ticketcore.plugin_manager import new_plugin_manager

TESTS = Path(__file__).resolve().parent
SKIPPED_DIRS = {"build", "dist", "__pycache__", ".tox"}

#: Hooks with no test, and why; each one is reported to the maintainers.
KNOWN_UNTESTED: dict[str, str] = {}


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every function of ``ticketcore.hookspecs`` marked as a hookspec, by name."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    }


@cache
def other_test_sources() -> dict[Path, str]:
    """The text of every test module except this one (build output excluded)."""
    found: dict[Path, str] = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve() or SKIPPED_DIRS & set(path.parts):
            continue
        found[path] = path.read_text(encoding="utf-8")
    return found


SPECS = hook_specs()


def test_hookspecs_module_declares_the_hooks_of_the_plugin_manager() -> None:
    pm = new_plugin_manager()
    registered = {name for name in vars(pm.hook) if not name.startswith("_")}

    assert registered == set(SPECS)
    assert "route_ticket" in SPECS, "hookspecs not found: did the marker attribute change?"
    assert hookimpl.project_name == hookspecs.PROJECT


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_is_documented_and_typed(name: str) -> None:
    spec = SPECS[name]
    doc = inspect.getdoc(spec) or ""
    signature = inspect.signature(spec)

    assert len(doc.split()) >= 5, f"hookspec {name} needs a docstring saying what it is for"
    for param in signature.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) untyped"
        assert param.default is inspect.Parameter.empty, f"{name}({param.name}) has a default"
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert signature.return_annotation is not inspect.Signature.empty, f"{name} return untyped"


def _implemented_in(name: str) -> list[str]:
    pattern = re.compile(rf"\bdef {re.escape(name)}\(")
    return [
        str(path.relative_to(TESTS))
        for path, text in other_test_sources().items()
        if pattern.search(text)
    ]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_UNTESTED[name]),
        )
        if name in KNOWN_UNTESTED
        else name
        for name in sorted(SPECS)
    ],
)
def test_hook_is_exercised_by_a_test(name: str) -> None:
    assert _implemented_in(name), (
        f"no test implements hook {name!r}: write one (a test plugin with "
        f"'@hookimpl def {name}(...)') under tests/"
    )


def test_known_untested_hooks_exist() -> None:
    assert set(KNOWN_UNTESTED) <= set(SPECS), "remove entries for hooks that no longer exist"
