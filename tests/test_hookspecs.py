"""Meta-tests: every hook is documented in its spec and in the docs, and tested."""

from __future__ import annotations

import ast
import inspect
import textwrap
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
                     "register_methods", "register_objectives", "register_scores",
                     "register_strategies", "register_tasks"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_with_params(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()[0]) > 20 and ":param" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_for_plugin_authors(hook):
    assert f"`{hook}" in (ROOT / "docs" / "writing-a-plugin.md").read_text()


def _is_hookimpl(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "hookimpl") or (
        isinstance(target, ast.Attribute) and target.attr == "hookimpl")


def _hooks_used(source: str) -> set[str]:
    """Hooks that a test file really exercises: a ``@hookimpl`` function of that name, in the
    test code or in plugin source text that is passed to a call (``fake_dists.add(...,
    SOURCE)``), or a pluggy hook caller (``pm.hook.register_tasks``). A name in a comment, a
    docstring, a test's name or a string that goes nowhere does not count."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. a deliberately broken plugin
        return set()
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in HOOKS:
            if any(_is_hookimpl(d) for d in node.decorator_list):
                found.add(node.name)
        elif isinstance(node, ast.Attribute) and node.attr in HOOKS:
            if isinstance(node.value, ast.Attribute) and node.value.attr == "hook":
                found.add(node.attr)
        elif isinstance(node, ast.Call):
            for arg in [*node.args, *(keyword.value for keyword in node.keywords)]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    text = arg.value
                elif isinstance(arg, ast.Name):
                    text = constants.get(arg.id, "")
                else:
                    continue
                if "hookimpl" in text:
                    found |= _hooks_used(textwrap.dedent(text))
    return found


def test_hook_use_detection_ignores_mentions():
    """The old meta-test passed when a hook's name appeared anywhere, even in a comment."""
    source = '''
"""register_tasks in a docstring."""
# register_methods in a comment
UNUSED = """
@hookimpl
def register_backbones(register): ...
"""

def test_register_executors_hook():
    assert "register_commands" != hookspecs.register_objectives
'''
    assert _hooks_used(source) == set()


def test_hook_use_detection_finds_real_uses():
    source = '''
SOURCE = """
from transferlab.hookspecs import hookimpl

@hookimpl
def register_tasks(register): ...
"""

def test_a(fake_dists):
    fake_dists.add("dist", "entry", "module", SOURCE)
    fake_dists.add("dist", "entry", "module", source="""
@hookimpl(tryfirst=True)
def register_commands(cli): ...
""")

class Plugin:
    @hookspecs.hookimpl
    def register_methods(self, register): ...

def test_b(host):
    host.pm.hook.register_objectives.get_hookimpls()
'''
    assert _hooks_used(source) == {"register_tasks", "register_commands", "register_methods",
                                   "register_objectives"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    used = set().union(*(_hooks_used(p.read_text()) for p in (ROOT / "tests").glob("test_*.py")
                         if p.name != "test_hookspecs.py"))
    assert hook in used, f"no test implements or calls {hook}"
