"""Load plugins from the ``transferlab`` entry-point group, each in isolation.

A plugin that fails to import, implements a hook that does not exist, or registers badly is
recorded with its error and skipped; every other plugin and command keeps working. A name two
plugins claim is a conflict of that name only (see :mod:`transferlab.registry`), reported
naming both distributions. Environment:

- ``TRANSFERLAB_STRICT=1`` re-raises plugin errors instead of reporting them;
- ``TRANSFERLAB_PLUGINS=a,b`` loads only these entry points or distributions (empty: none);
- ``TRANSFERLAB_DISABLE=a,b`` loads every plugin except these;
- ``TRANSFERLAB_PREFER=NAME=DIST,DIST`` chooses between plugins that claim one name;
- ``TRANSFERLAB_TRACE=1`` prints each hook call on stderr.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from transferlab import hookspecs
from transferlab.errors import RegistrationError, TransferlabError
from transferlab.params import Param
from transferlab.registry import KINDS, Conflict, Entry, Preferences, Registries

__all__ = [
    "ENTRY_POINT_GROUP", "PluginHost", "PluginInfo", "get_host", "get_registries", "use_host",
]

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
    conflicts: list[str] = field(default_factory=list)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str]:
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


def _class_registration(
    component: type, factory: Any, summary: str, params: Sequence[Param], info: dict[str, Any]
) -> tuple[str, Any, str, Sequence[Param]]:
    """``register(Class)``: name, summary, params and family come from the class, once."""
    if factory is not None:
        raise RegistrationError(f"register({component.__name__}, ...): pass the class alone;"
                                " its name, summary and params are read from it")
    name = getattr(component, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistrationError(f"register({component.__name__}): the class needs a `name`"
                                " class attribute")
    if params:
        raise RegistrationError(f"register({component.__name__}): declare params on the class"
                                " only, not again in register()")
    family = getattr(component, "family", None)
    if isinstance(family, str) and "family" not in info:
        info["family"] = family
    return name, component, summary or getattr(component, "summary", ""), tuple(
        getattr(component, "params", ()))


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
        self.disabled = set(_env_list("TRANSFERLAB_DISABLE"))
        self.preferences = Preferences.parse(os.environ.get("TRANSFERLAB_PREFER"))
        self.conflicts: list[Conflict] = []
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
            if ep.name in self.disabled or dist_name in self.disabled:
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
        repeated = message in info.errors  # a hook failing again when registries are rebuilt
        if not repeated:
            info.errors.append(message)
        if self.strict:
            raise TransferlabError(f"plugin {info.name!r} {message}") from exc
        if repeated:
            return
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
            self._registries = Registries.with_preferences(self.preferences)
            self.conflicts = []
            for info in self.plugins.values():  # rebuilt from scratch, not appended to
                info.registered, info.conflicts = {}, []
            for kind in KINDS:
                self._collect(kind)
            self._report_conflicts()
        return self._registries

    def _report_conflicts(self) -> None:
        """Each conflict once on stderr (and in strict mode, an error if unresolved)."""
        assert self._registries is not None
        for kind in KINDS:
            self.conflicts.extend(self._registries.of(kind).conflicts.values())
        for conflict in self.conflicts:
            for claim in conflict.claims:
                if claim.plugin in self.plugins:
                    self.plugins[claim.plugin].conflicts.append(conflict.message())
            if self.strict and conflict.chosen is None:
                raise TransferlabError(conflict.message())
            print(f"transferlab: warning: {conflict.message()}", file=sys.stderr)

    def _collect(self, kind: str) -> None:
        assert self._registries is not None
        registry = self._registries.of(kind)
        caller = getattr(self.pm.hook, f"register_{kind}")
        # pluggy's call order: the plugin registered last first (get_hookimpls() lists them
        # in registration order); a name two plugins claim is blamed on the one called second
        for impl in reversed(caller.get_hookimpls()):
            info = self.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, "?"))
            names = info.registered.setdefault(kind, [])

            def register(
                name: str | type, factory: Callable[..., Any] | None = None, *,
                summary: str = "", params: Sequence[Param] = (),
                _plugin: str = impl.plugin_name, _names: list[str] = names,
                _info: PluginInfo = info, **extra: Any,
            ) -> None:
                if isinstance(name, type):
                    name, factory, summary, params = _class_registration(
                        name, factory, summary, params, extra)
                elif isinstance(factory, type) and not params:
                    params = tuple(getattr(factory, "params", ()))  # declared once, on the class
                if factory is None:
                    raise RegistrationError(f"register({name!r}) needs a factory or a class")
                if not all(isinstance(p, Param) for p in params):
                    raise RegistrationError(f"params of {name!r} must be transferlab.params.Param")
                registry.add(Entry(name, factory, _plugin, kind, summary, tuple(params), extra,
                                   _info.distribution, _info.version))
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
_PINNED: list[PluginHost] = []


@contextlib.contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make :func:`get_host` return ``host`` inside the block (blocks nest): how the
    ``transferlab_plugins`` test fixture runs commands against its own plugins only. Data
    folders a command passes (``--data-dir``) then re-register tasks on ``host``."""
    _PINNED.append(host)
    try:
        yield host
    finally:
        _PINNED.remove(host)


def get_host(*, data_dirs: Iterable[Path] = (), refresh: bool = False) -> PluginHost:
    """The process-wide plugin host, loading entry points on first use (inside
    :func:`use_host`, that block's host)."""
    global _HOST
    data_dirs = list(data_dirs)
    env_data = os.environ.get("TRANSFERLAB_DATA")
    if env_data:
        data_dirs += [Path(p) for p in env_data.split(os.pathsep) if p]
    if _PINNED:
        pinned = _PINNED[-1]
        if data_dirs and data_dirs != pinned.data_dirs:
            pinned.data_dirs = data_dirs
            pinned._registries = None  # tasks of the new folders register on the next use
        return pinned
    if _HOST is None or refresh or (data_dirs and data_dirs != _HOST.data_dirs):
        _HOST = PluginHost(data_dirs=data_dirs)
        _HOST.load_entry_points()
    return _HOST


def get_registries(*, data_dirs: Iterable[Path] = ()) -> Registries:
    """Shortcut for ``get_host(data_dirs=...).registries``."""
    return get_host(data_dirs=data_dirs).registries
