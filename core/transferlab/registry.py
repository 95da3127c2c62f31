"""Typed registries: what plugins registered, who registered it, and helpful lookups.

A name is exact (``"digits"``) or a family pattern with wildcards (``"timm:*"``) whose factory
receives the full requested name. Lookups try the exact name, then the name without its
``@tag`` (``timm:efficientnet_lite0@random``), then the most specific matching family.
Unknown names fail with did-you-mean suggestions; names claimed by two plugins fail naming both.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from transferlab.errors import DuplicateNameError, RegistrationError, UnknownNameError
from transferlab.params import Param, resolve_params

T = TypeVar("T")
KINDS = ("backbones", "tasks", "methods", "objectives", "executors")


class RegisterCallback(Protocol):
    """The ``register`` callback each ``register_*`` hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        summary: str = "",
        params: Sequence[Param] = (),
        **info: Any,
    ) -> None: ...


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name or family pattern, factory, owner and metadata."""

    name: str
    factory: Callable[..., T]
    plugin: str
    kind: str
    summary: str = ""
    params: tuple[Param, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_family(self) -> bool:
        return any(ch in self.name for ch in "*?[")

    def validate(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check ``name`` (via the optional ``validate`` callable a plugin registered) and
        ``params`` without building anything; return the resolved parameters."""
        check = self.info.get("validate")
        if callable(check):
            check(name)
        return resolve_params(self.params, params, owner=name)

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> T:
        """Build the object for ``name`` with validated parameters."""
        resolved = resolve_params(self.params, params, owner=name)
        return self.factory(name, **resolved)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "summary": self.summary,
            "params": [p.describe() for p in self.params],
            **{k: v for k, v in self.info.items() if _jsonable(v) and k != "validate"},
        }


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | tuple | dict)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``lite2`` before ``lite10`` (as timm's ``list_models`` does)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class Registry(Generic[T]):
    """Entries of one kind, keyed by name, with conflict tracking."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._conflicts: dict[str, list[str]] = {}

    # -- registration -------------------------------------------------------------------
    def add(self, entry: Entry[T]) -> None:
        """Add ``entry``; a name already owned by another plugin becomes a conflict."""
        if not isinstance(entry.name, str) or not entry.name.strip():
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered a {self.kind[:-1]} with an empty or"
                f" non-string name {entry.name!r}; pass a non-empty string"
            )
        if not callable(entry.factory):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered {self.kind[:-1]} {entry.name!r} with a"
                f" factory that is not callable ({type(entry.factory).__name__})"
            )
        if entry.name in self._conflicts:
            self._conflicts[entry.name].append(entry.plugin)
            raise self._duplicate_error(entry.name)
        existing = self._entries.get(entry.name)
        if existing is not None:
            self._conflicts[entry.name] = [existing.plugin, entry.plugin]
            del self._entries[entry.name]
            raise self._duplicate_error(entry.name)
        self._entries[entry.name] = entry

    def _duplicate_error(self, name: str) -> DuplicateNameError:
        owners = self._conflicts[name]
        return DuplicateNameError(
            f"{self.kind[:-1]} {name!r} is registered by plugins {' and '.join(map(repr, owners))};"
            " uninstall one of them or choose which load with TRANSFERLAB_PLUGINS"
        )

    # -- lookup -------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: natural_key(e.name)))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def conflicts(self) -> dict[str, list[str]]:
        return dict(self._conflicts)

    def _find(self, name: str) -> Entry[T] | None:
        if name in self._entries:
            return self._entries[name]
        base = name.split("@", 1)[0]
        if base in self._entries:
            return self._entries[base]
        families = [
            e for e in self._entries.values() if e.is_family and fnmatch.fnmatchcase(base, e.name)
        ]
        if not families:
            return None
        return max(families, key=lambda e: len(e.name.split("*", 1)[0]))

    def get(self, name: str) -> Entry[T]:
        """Return the entry serving ``name`` or raise an error listing the valid choices."""
        for conflicted in (name, name.split("@", 1)[0]):
            if conflicted in self._conflicts:
                raise self._duplicate_error(conflicted)
        entry = self._find(name)
        if entry is None:
            raise UnknownNameError(self._unknown_message(name))
        return entry

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> T:
        """Build the object registered under ``name`` with validated ``params``."""
        return self.get(name).create(name, params)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names (family patterns included) matching an fnmatch ``pattern``."""
        names = [e.name for e in self]
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def _unknown_message(self, name: str) -> str:
        choices = self.names()
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        return (
            f"unknown {self.kind[:-1]} {name!r}.{hint} Available: {shown or '(none)'}"
            f" (see `transferlab list {self.kind}`)"
        )


@dataclass
class Registries:
    """One registry per kind, filled by the plugin manager."""

    backbones: Registry[Any] = field(default_factory=lambda: Registry("backbones"))
    tasks: Registry[Any] = field(default_factory=lambda: Registry("tasks"))
    methods: Registry[Any] = field(default_factory=lambda: Registry("methods"))
    objectives: Registry[Any] = field(default_factory=lambda: Registry("objectives"))
    executors: Registry[Any] = field(default_factory=lambda: Registry("executors"))

    def of(self, kind: str) -> Registry[Any]:
        if kind not in KINDS:
            raise UnknownNameError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        return getattr(self, kind)
