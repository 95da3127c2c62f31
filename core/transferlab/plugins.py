"""Load plugins from the ``transferlab`` entry-point group, each in isolation.

A plugin that fails to import, implements a hook that does not exist, or registers badly is
recorded with its error and skipped; every other plugin and command keeps working. Set
``TRANSFERLAB_STRICT=1`` to re-raise instead, ``TRANSFERLAB_PLUGINS=a,b`` to load only some
(entry-point or distribution names; empty loads none), ``TRANSFERLAB_TRACE=1`` to print each
hook call on stderr.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from transferlab import hookspecs
from transferlab.errors import RegistrationError, TransferlabError
from transferlab.params import Param
from transferlab.registry import KINDS, Entry, Registries

ENTRY_POINT_GROUP = "transferlab"
HOOK_NAMES = tuple(f"register_{kind}" for kind in KINDS)


@dataclass
class PluginInfo:
    """What ``transferlab plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginHost:
    """Owns the pluggy manager, the plugin records and the registries built from them."""

    def __init__(
        self, *, strict: bool | None = None, only: Sequence[str] | None = None,
        data_dirs: Iterable[Path] = (),
    ) -> None:
        self.strict = _env_flag("TRANSFERLAB_STRICT") if strict is None else strict
        env_only = os.environ.get("TRANSFERLAB_PLUGINS")
        if only is None and env_only is not None:
            only = [n.strip() for n in env_only.split(",") if n.strip()]
        self.only = None if only is None else set(only)
        self.data_dirs = [Path(d) for d in data_dirs]
        self.trace = _env_flag("TRANSFERLAB_TRACE")
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registries: Registries | None = None

    # -- loading ------------------------------------------------------------------------
    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Import and register every selected entry point of the ``transferlab`` group."""
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            if self.only is not None and ep.name not in self.only and dist_name not in self.only:
                continue
            info = PluginInfo(ep.name, ep.value, dist_name, dist.version if dist else None)
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(info, f"failed to import {ep.value}: {type(exc).__name__}: {exc}", exc)
                continue
            self.add_plugin(module, ep.name, info=info)

    def add_plugin(self, plugin: object, name: str, *, info: PluginInfo | None = None) -> None:
        """Register one plugin object (a module or instance with ``@hookimpl`` functions)."""
        info = info or self.plugins.setdefault(name, PluginInfo(name, repr(plugin)))
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hookimpl signatures here
            self._fail(info, f"is invalid: {exc}", exc)
            return
        unknown = [hc.name for hc in self.pm.get_hookcallers(plugin) or [] if not hc.has_spec()]
        if unknown:
            self.pm.unregister(plugin)
            bad = unknown[0]
            close = difflib.get_close_matches(bad, [*HOOK_NAMES, "register_commands"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self._fail(info, f"implements unknown hook {bad!r}{hint}; it was not loaded", None)
            return
        info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or [])
        self._registries = None

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None) -> None:
        info.errors.append(message)
        if self.strict:
            raise TransferlabError(f"plugin {info.name!r} {message}") from exc
        print(
            f"transferlab: warning: plugin {info.name!r} {message}"
            " (other plugins still work; TRANSFERLAB_STRICT=1 raises)",
            file=sys.stderr,
        )

    # -- registries ---------------------------------------------------------------------
    @property
    def registries(self) -> Registries:
        """Registries filled by calling every ``register_*`` hook, one plugin at a time."""
        if self._registries is None:
            self._registries = Registries()
            for kind in KINDS:
                self._collect(kind)
        return self._registries

    def _collect(self, kind: str) -> None:
        assert self._registries is not None
        registry = self._registries.of(kind)
        caller = getattr(self.pm.hook, f"register_{kind}")
        for impl in reversed(caller.get_hookimpls()):  # registration order
            info = self.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, "?"))
            names = info.registered.setdefault(kind, [])

            def register(
                name: str, factory: Callable[..., Any], *, summary: str = "",
                params: Sequence[Param] = (), _plugin: str = impl.plugin_name,
                _names: list[str] = names, **extra: Any,
            ) -> None:
                if not all(isinstance(p, Param) for p in params):
                    raise RegistrationError(f"params of {name!r} must be transferlab.params.Param")
                registry.add(Entry(name, factory, _plugin, kind, summary, tuple(params), extra))
                _names.append(name)

            kwargs = {"register": register, "data_dirs": self.data_dirs}
            if self.trace:
                print(f"transferlab: trace: {impl.plugin_name}.register_{kind}()", file=sys.stderr)
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                self._fail(info, f"failed in register_{kind}: {type(exc).__name__}: {exc}", exc)

    def add_commands(self, cli: Any) -> None:
        """Let plugins add CLI commands; a failing plugin is reported, not fatal."""
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = self.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, "?"))
                self._fail(info, f"failed in register_commands: {type(exc).__name__}: {exc}", exc)


_HOST: PluginHost | None = None


def get_host(*, data_dirs: Iterable[Path] = (), refresh: bool = False) -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _HOST
    data_dirs = list(data_dirs)
    env_data = os.environ.get("TRANSFERLAB_DATA")
    if env_data:
        data_dirs += [Path(p) for p in env_data.split(os.pathsep) if p]
    if _HOST is None or refresh or (data_dirs and data_dirs != _HOST.data_dirs):
        _HOST = PluginHost(data_dirs=data_dirs)
        _HOST.load_entry_points()
    return _HOST


def get_registries(*, data_dirs: Iterable[Path] = ()) -> Registries:
    """Shortcut for ``get_host(data_dirs=...).registries``."""
    return get_host(data_dirs=data_dirs).registries
