"""Checks of a plugin as a whole: it loads, and its names are its own."""

from __future__ import annotations

import inspect

from transferlab import hookspecs
from transferlab.testing._checks import Check, ConformanceError
from transferlab.testing._contracts.base import SuiteBase

__all__ = ["HOOKS", "PluginChecks"]

HOOKS = ("register_backbones", "register_tasks", "register_methods", "register_objectives",
         "register_executors", "register_commands")


class PluginChecks(SuiteBase):
    """``plugin[NAME]::loads`` and ``::unique-names``."""

    def _plugin_checks(self, plugin: str) -> list[Check]:
        return [
            self._check("plugin", plugin, "loads", "imports, hook signatures match the specs,"
                        " every register_* hook runs", lambda: self.check_loads(plugin)),
            self._check("plugin", plugin, "unique-names", "no name is also claimed by another"
                        " plugin", lambda: self.check_unique_names(plugin)),
        ]

    def check_loads(self, plugin: str) -> None:
        self.registries  # noqa: B018 - calling the hooks records their errors
        info = self.target.info(plugin)
        if info.errors:
            error = info.errors[0]
            raise ConformanceError(f"plugin {plugin!r} {error}", _load_fix(error))
        if not info.hooks:
            raise ConformanceError(f"plugin {plugin!r} implements no transferlab hook",
                                   "mark its register_* functions with @transferlab.hookimpl")

    def check_unique_names(self, plugin: str) -> None:
        self.registries  # noqa: B018
        conflicts = self.target.info(plugin).conflicts
        if conflicts:
            raise ConformanceError(
                conflicts[0].split("; ", 1)[0],
                "give it a name of its own (names are global across installed plugins), e.g."
                " prefixed with the plugin's name",
            )


def _load_fix(error: str) -> str:
    """The fix for a plugin that failed to load, from the host's error."""
    if "hookimpl definition" in error or "hookspec" in error:
        hook = next((h for h in HOOKS if f"'{h}'" in error or f"{h}(" in error), None)
        spec = f"{hook}({', '.join(_spec_arguments(hook))})" if hook else "its hook spec"
        return (f"a hook implementation may accept only arguments of its spec: {spec}"
                " (any subset, same names; see transferlab.hookspecs)")
    if "unknown hook" in error:
        return f"name the function after a hook of transferlab.hookspecs: {', '.join(HOOKS)}"
    if "failed to import" in error:
        return ("make the module importable: install what it imports, and import heavy"
                " libraries inside functions")
    if "failed in register_" in error:
        return "fix the registration the error names (register(Class) or register(name, factory))"
    return "fix the error it names"


def _spec_arguments(hook: str) -> list[str]:
    return list(inspect.signature(getattr(hookspecs, hook)).parameters)
