"""Meta-tests: every hook is documented in its spec and in the docs, and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from transferlab import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name for name, fn in vars(hookspecs).items()
    if callable(fn) and hasattr(fn, "transferlab_spec")
)


def test_hooks_exist():
    assert HOOKS == ["register_backbones", "register_commands", "register_executors",
                     "register_methods", "register_objectives", "register_tasks"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_with_params(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()[0]) > 20 and ":param" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_for_plugin_authors(hook):
    assert f"`{hook}" in (ROOT / "docs" / "writing-a-plugin.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py")
                    if p.name != "test_hookspecs.py")
    assert f"def {hook}(" in tests or f"{hook}" in tests.replace("hookspecs", "")
