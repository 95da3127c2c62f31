"""A pytest fixture for testing a plugin's registrations and commands in isolation, in the
manner of pytest's own ``pytester``.

``transferlab_plugins`` is registered as a pytest plugin (entry point ``pytest11``:
``transferlab``), so any test in an environment where transferlab is installed can use it::

    def test_my_command(transferlab_plugins):
        plugins = transferlab_plugins("my_plugin", builtins=True)
        assert "my-method" in plugins.registries.methods
        result = plugins.invoke("my-command", "--flag")
        assert result.exit_code == 0, result.output

Each call returns a :class:`PluginSandbox`: a fresh plugin host holding only the named
plugins (modules, module names, or objects with ``@hookimpl`` functions), plus the built-in
plugins when ``builtins=True``. ``TRANSFERLAB_PLUGINS`` / ``TRANSFERLAB_DISABLE`` do not
apply to it, and it never touches the process-wide host. ``invoke`` runs the ``transferlab``
command line with the sandbox's plugin commands attached (``main()`` attaches them only in a
real run) while :func:`transferlab.plugins.get_host` returns the sandbox's host, so built-in
commands such as ``list`` see only the sandbox's plugins.

Without the entry point (``-p no:transferlab``), opt in with
``pytest_plugins = ["transferlab.testing.fixtures"]`` in a root ``conftest.py``.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import click
    from click.testing import Result

    from transferlab.plugins import PluginHost, PluginInfo
    from transferlab.registry import Registries

__all__ = ["PluginSandbox", "transferlab_plugins"]


class PluginSandbox:
    """A fresh plugin host with only the given plugins (and the built-ins when asked).

    :param plugins: modules, importable module names, or plugin objects.
    :param builtins: also load the built-in plugins (``transferlab``'s own entry points).
    :param data_dirs: folders passed to ``register_tasks``.
    :param strict: re-raise a plugin's load or registration error instead of recording it in
        :attr:`plugins` (default: raise, so a broken plugin fails the test where it breaks).
    """

    def __init__(self, *plugins: ModuleType | str | object, builtins: bool = False,
                 data_dirs: Iterable[Path] = (), strict: bool = True) -> None:
        from transferlab.testing._target import builtin_entry_points, fresh_host

        self.host: PluginHost = fresh_host(data_dirs, strict=strict)
        if builtins:
            self.host.load_entry_points(builtin_entry_points())
        for plugin in plugins:
            module = importlib.import_module(plugin) if isinstance(plugin, str) else plugin
            name = plugin if isinstance(plugin, str) else getattr(
                plugin, "__name__", type(plugin).__name__)
            if not self.host.pm.is_registered(module):
                self.host.add_plugin(module, name)

    @property
    def registries(self) -> Registries:
        """The registries filled by the sandbox's plugins (hooks run on first use)."""
        return self.host.registries

    @property
    def plugins(self) -> Mapping[str, PluginInfo]:
        """Name -> what each plugin registered, its hooks, errors and conflicts."""
        self.host.registries  # noqa: B018 - calling the hooks fills `registered` and `errors`
        return self.host.plugins

    def cli(self) -> click.Group:
        """A copy of the ``transferlab`` group with the sandbox's plugin commands attached
        (the real group is left as it is)."""
        from transferlab.cli import cli

        group = copy.copy(cli)
        group.commands = dict(cli.commands)
        self.host.add_commands(group)
        return group

    def invoke(self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None,
               catch_exceptions: bool = True) -> Result:
        """Run ``transferlab ARGS...`` in-process against this sandbox's plugins; returns
        click's ``Result`` (``exit_code``, ``output``, ``exception``)."""
        from click.testing import CliRunner

        from transferlab.plugins import use_host

        with use_host(self.host):
            return CliRunner().invoke(self.cli(), list(args), input=input, env=env,
                                      catch_exceptions=catch_exceptions,
                                      prog_name="transferlab")


def _sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., PluginSandbox]]:
    for var in ("TRANSFERLAB_PLUGINS", "TRANSFERLAB_DISABLE", "TRANSFERLAB_PREFER",
                "TRANSFERLAB_STRICT", "TRANSFERLAB_TRACE"):
        monkeypatch.delenv(var, raising=False)

    def load(*plugins: ModuleType | str | object, builtins: bool = False,
             data_dirs: Sequence[Path] = (), strict: bool = True) -> PluginSandbox:
        return PluginSandbox(*plugins, builtins=builtins, data_dirs=data_dirs, strict=strict)

    yield load


@pytest.fixture
def transferlab_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``transferlab_plugins(*plugins, builtins=False, data_dirs=(), strict=True)`` ->
    :class:`PluginSandbox`: fresh registries with only these plugins, and ``invoke(*args)``
    to run the command line with their commands."""
    yield from _sandboxes(monkeypatch)
