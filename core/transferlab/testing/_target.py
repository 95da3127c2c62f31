"""What the conformance kit checks: a plugin module or an installed distribution, loaded into a
fresh plugin host of its own together with the built-in plugins.

- A **distribution** name (``transferlab-majority``; ``transferlab`` itself means every
  built-in plugin) loads that distribution's entry points in the ``transferlab`` group.
- A **module** name (``transferlab_majority``) imports the module and registers it directly,
  so a plugin can be checked before it is installed or registered through entry points.
- A path to a ``.py`` file is imported as a module.

The built-in plugins are always loaded as well (the objectives a training method builds, for
instance); only what the target's own plugins register is checked. Nothing here touches the
process-wide host of :func:`transferlab.plugins.get_host`, and plugin warnings are collected
rather than printed: a plugin that fails to load fails the ``plugin[...]::loads`` check.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.plugins import ENTRY_POINT_GROUP, PluginHost, PluginInfo
from transferlab.registry import BUILTIN_DISTRIBUTION, Registries

__all__ = ["Target", "builtin_entry_points", "load_target"]


@dataclass
class Target:
    """A loaded target: its host (built-ins plus the target), and which plugins are its own."""

    spec: str
    description: str
    host: PluginHost
    plugins: list[str]
    import_error: str | None = None
    warnings: str = ""
    _registries: Registries | None = field(default=None, repr=False)

    @property
    def registries(self) -> Registries:
        if self._registries is None:
            with _quiet() as stderr:
                self._registries = self.host.registries
            self.warnings += stderr.getvalue()
        return self._registries

    def info(self, plugin: str) -> PluginInfo:
        return self.host.plugins[plugin]

    def registered(self, kind: str) -> list[tuple[str, str]]:
        """(plugin, name) of every ``kind`` (plural) name the target's plugins registered."""
        self.registries  # noqa: B018 - calling the hooks fills `registered`
        return [(plugin, name) for plugin in self.plugins
                for name in self.info(plugin).registered.get(kind, [])]


@contextlib.contextmanager
def _quiet() -> Any:
    """Collect what plugin loading prints on stderr (warnings the checks report instead)."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer


def builtin_entry_points() -> list[metadata.EntryPoint]:
    """The ``transferlab`` entry points of the core distribution (the built-in plugins)."""
    return [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if _dist_name(ep) == BUILTIN_DISTRIBUTION]


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.metadata["Name"]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def fresh_host(data_dirs: Iterable[Path] = (), *, strict: bool = False) -> PluginHost:
    """A plugin host that ignores the user's plugin filters (``TRANSFERLAB_PLUGINS`` /
    ``TRANSFERLAB_DISABLE``) and has loaded nothing yet."""
    host = PluginHost(strict=strict, only=[], data_dirs=data_dirs)
    host.only, host.disabled = None, set()
    return host


def load_target(target: str | ModuleType, *, data_dirs: Iterable[Path] = ()) -> Target:
    """Load ``target`` (distribution name, module name, module, or ``.py`` path) with the
    built-in plugins into a fresh host; raise :class:`TransferlabError` if it names nothing."""
    host = fresh_host(data_dirs)
    with _quiet() as stderr:
        host.load_entry_points(builtin_entry_points())
        loaded = _load_into(host, target)
    loaded.warnings = stderr.getvalue()
    return loaded


def _load_into(host: PluginHost, target: str | ModuleType) -> Target:
    if isinstance(target, ModuleType):
        return _module_target(host, target.__name__, target)
    spec = str(target).strip()
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise TransferlabError(f"plugin file {spec} does not exist")
        return _file_target(host, path)
    eps = _distribution_entry_points(spec)
    if eps is not None:
        if _normalise(spec) == _normalise(BUILTIN_DISTRIBUTION):
            return Target(spec, "the built-in plugins", host, sorted(e.name for e in eps))
        host.load_entry_points(eps)
        names = sorted(ep.name for ep in eps)
        return Target(spec, f"distribution {spec}", host, names)
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name == spec or spec.startswith(f"{exc.name}."):
            raise TransferlabError(
                f"no installed distribution with transferlab entry points and no importable"
                f" module named {spec!r}; pip install the plugin, or give its module name"
                " (on sys.path) or a path to its .py file"
            ) from None
        return _broken(host, spec, exc)
    except Exception as exc:
        return _broken(host, spec, exc)
    return _module_target(host, spec, module)


def _distribution_entry_points(name: str) -> list[metadata.EntryPoint] | None:
    """The distribution's ``transferlab`` entry points, or None when no distribution of that
    name has any (the name may then be a module)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if not eps:
        return None
    if _normalise(dist.metadata["Name"]) == _normalise(BUILTIN_DISTRIBUTION):
        return builtin_entry_points()  # with their `dist` set, as the host expects
    return [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if _normalise(_dist_name(ep) or "") == _normalise(dist.metadata["Name"])]


def _file_target(host: PluginHost, path: Path) -> Target:
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) != str(path):
        raise TransferlabError(
            f"{path}: its module name {name!r} is already taken by another module"
            f" ({getattr(loaded, '__file__', None) or 'built in'}); rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TransferlabError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        return _broken(host, str(path), exc, name=name)
    return _module_target(host, name, module, description=f"file {path}")


def _module_target(host: PluginHost, name: str, module: ModuleType, *,
                   description: str | None = None) -> Target:
    description = description or f"module {name}"
    if host.pm.is_registered(module):  # a built-in module: check it where it was loaded
        plugin = host.pm.get_name(module)
        assert plugin is not None
        return Target(name, description, host, [plugin])
    host.add_plugin(module, name, info=PluginInfo(name, name))
    return Target(name, description, host, [name])


def _broken(host: PluginHost, spec: str, exc: BaseException, *, name: str | None = None
            ) -> Target:
    """A target whose module failed to import: its ``loads`` check reports the error."""
    name = name or spec
    message = f"failed to import {spec}: {type(exc).__name__}: {exc}"
    host.plugins[name] = PluginInfo(name, spec, errors=[message])
    return Target(spec, f"module {spec}", host, [name], import_error=message)


def targets_label(targets: Sequence[Target]) -> str:
    return ", ".join(t.description for t in targets)
