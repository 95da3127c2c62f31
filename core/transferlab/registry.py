"""Typed registries: what plugins registered, who registered it, and helpful lookups.

A name is exact (``"digits"``) or a pattern with wildcards (``"timm:*"``) whose factory
receives the full requested name. Lookups try the exact name, then the name without its
``@tag`` (``timm:efficientnet_lite0@random``), then the most specific matching pattern.
Unknown names fail with did-you-mean suggestions.

A name claimed by several plugins is a conflict of that name only: every other name of each
plugin keeps working. The claim that serves it is, in order, the one the user prefers
(:class:`Preferences`, from ``TRANSFERLAB_PREFER``), else the only built-in claim (a built-in
keeps its names unless the user chooses otherwise); otherwise the name is unusable and
looking it up fails naming every distribution that claims it, with the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from transferlab.errors import DuplicateNameError, RegistrationError, UnknownNameError
from transferlab.params import Param, resolve_params
from transferlab.precision import PRECISION_PARAM

T = TypeVar("T")
KINDS = ("backbones", "tasks", "methods", "objectives", "executors", "scores", "strategies")
BUILTIN_DISTRIBUTION = "transferlab"

__all__ = [
    "BUILTIN_DISTRIBUTION", "KINDS", "Conflict", "Entry", "Preferences", "RegisterCallback",
    "Registries", "Registry", "natural_key",
]


class RegisterCallback(Protocol):
    """The ``register`` callback each ``register_*`` hook receives.

    ``register(MethodClass)`` registers a class that declares ``name``, ``summary``,
    ``params`` and (methods) ``family`` as class attributes, read once from the class;
    ``register(name, factory, summary=..., params=..., **info)`` registers a factory function
    (and is how patterns such as ``"timm:*"`` register).
    """

    def __call__(
        self,
        name: str | type,
        factory: Callable[..., Any] | None = None,
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
    distribution: str | None = None
    version: str | None = None

    @property
    def is_pattern(self) -> bool:
        """Whether the name has wildcards and serves every name it matches."""
        return any(ch in self.name for ch in "*?[")

    @property
    def is_builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def provenance(self) -> dict[str, Any]:
        """Which plugin and distribution serve this entry (stored with every result)."""
        return {"name": self.name, "plugin": self.plugin, "distribution": self.distribution,
                "version": self.version}

    def validate(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check ``name`` (via the optional ``validate`` callable a plugin registered) and
        ``params`` without building anything; return the resolved parameters."""
        check = self.info.get("validate")
        if callable(check):
            check(name)
        return resolve_params(self.params, params, owner=name)

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> T:
        """Build the object for ``name`` with validated parameters. A backbone's ``precision``
        (the core's :data:`~transferlab.precision.PRECISION_PARAM`, which every backbone with
        weights accepts) is not the factory's: it is set on the built backbone."""
        resolved = resolve_params(self.params, params, owner=name)
        if not any(p is PRECISION_PARAM for p in self.params):
            return self.factory(name, **resolved)
        precision = resolved.pop("precision")
        made = self.factory(name, **resolved)
        with contextlib.suppress(AttributeError):  # not a Backbone (a test double)
            made.precision = precision
        return made

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "summary": self.summary,
            "params": [p.describe() for p in self.params],
            **{k: v for k, v in self.info.items() if _jsonable(v) and k != "validate"},
        }


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | tuple | dict)


def _singular(kind: str) -> str:
    """A kind in the singular, for messages (``strategies`` -> ``strategy``)."""
    return kind[:-3] + "y" if kind.endswith("ies") else kind[:-1]


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``lite2`` before ``lite10`` (as timm's ``list_models`` does)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass(frozen=True)
class Preferences:
    """The user's choices between plugins that claim one name: ``TRANSFERLAB_PREFER``, a
    comma-separated list of ``NAME=DIST`` (this name from that distribution or entry point)
    and bare ``DIST`` (every name that distribution claims)."""

    by_name: Mapping[str, str] = field(default_factory=dict)
    everywhere: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Preferences:
        by_name: dict[str, str] = {}
        everywhere: list[str] = []
        for item in filter(None, (part.strip() for part in (text or "").split(","))):
            name, sep, owner = item.rpartition("=")
            if sep:
                by_name[name.strip()] = owner.strip()
            else:
                everywhere.append(item)
        return cls(by_name, tuple(everywhere))

    def choose(self, name: str, claims: Sequence[Entry[Any]]) -> Entry[Any] | None:
        """The claim the user chose for ``name``, if any."""
        wanted = [self.by_name[name]] if name in self.by_name else list(self.everywhere)
        for owner in wanted:
            for claim in claims:
                if owner in (claim.distribution, claim.plugin):
                    return claim
        return None


@dataclass(frozen=True)
class Conflict:
    """A name several plugins claim, and which claim serves it (None: unusable)."""

    kind: str
    name: str
    claims: tuple[Entry[Any], ...]
    chosen: Entry[Any] | None
    reason: str

    def owners(self) -> str:
        """Every claimant, sorted (the message must not depend on loading order)."""
        claims = sorted(self.claims, key=lambda c: (c.distribution or "", c.plugin))
        return " and ".join(f"{c.distribution or '?'} (plugin {c.plugin!r})" for c in claims)

    def message(self) -> str:
        what = f"{_singular(self.kind)} {self.name!r} is registered by {self.owners()}"
        if self.chosen is None:
            return (f"{what}; choose one with TRANSFERLAB_PREFER={self.name}=DIST, or disable"
                    " one with TRANSFERLAB_DISABLE=DIST")
        return (f"{what}; using {self.chosen.distribution or self.chosen.plugin}"
                f" ({self.reason}; TRANSFERLAB_PREFER={self.name}=DIST chooses another)")


class Registry(Generic[T]):
    """Entries of one kind, keyed by name, with per-name conflict resolution."""

    def __init__(self, kind: str, preferences: Preferences | None = None) -> None:
        self.kind = kind
        self.preferences = preferences or Preferences()
        self._entries: dict[str, Entry[T]] = {}
        self._claims: dict[str, list[Entry[T]]] = {}
        self._conflicts: dict[str, Conflict] = {}

    # -- registration -------------------------------------------------------------------
    def add(self, entry: Entry[T]) -> Conflict | None:
        """Add ``entry``. A name another plugin already claims becomes a conflict of that name
        alone, resolved by :meth:`_resolve`; the conflict is returned so the host can report
        it (None when the name was free)."""
        if not isinstance(entry.name, str) or not entry.name.strip():
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered a {_singular(self.kind)} with an empty or"
                f" non-string name {entry.name!r}; pass a non-empty string"
            )
        if not callable(entry.factory):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered {_singular(self.kind)} {entry.name!r} with a"
                f" factory that is not callable ({type(entry.factory).__name__})"
            )
        if (self.kind == "backbones" and entry.info.get("has_weights") is not False
                and not any(p.name == "precision" for p in entry.params)):
            entry = replace(entry, params=(*entry.params, PRECISION_PARAM))
        claims = self._claims.setdefault(entry.name, [])
        if any(c.plugin == entry.plugin for c in claims):
            raise RegistrationError(
                f"plugin {entry.plugin!r} registered {_singular(self.kind)} {entry.name!r} twice;"
                " register each name once"
            )
        claims.append(entry)
        if len(claims) == 1:
            self._entries[entry.name] = entry
            return None
        conflict = self._resolve(entry.name, claims)
        self._conflicts[entry.name] = conflict
        if conflict.chosen is None:
            self._entries.pop(entry.name, None)
        else:
            self._entries[entry.name] = conflict.chosen
        return conflict

    def _resolve(self, name: str, claims: Sequence[Entry[T]]) -> Conflict:
        chosen = self.preferences.choose(name, claims)
        if chosen is not None:
            return Conflict(self.kind, name, tuple(claims), chosen, "chosen by TRANSFERLAB_PREFER")
        builtin = [c for c in claims if c.is_builtin]
        if len(builtin) == 1:
            return Conflict(self.kind, name, tuple(claims), builtin[0], "built-ins keep their"
                            " names")
        return Conflict(self.kind, name, tuple(claims), None, "unresolved")

    def _duplicate_error(self, name: str) -> DuplicateNameError:
        return DuplicateNameError(self._conflicts[name].message())

    # -- lookup -------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: natural_key(e.name)))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def conflicts(self) -> dict[str, Conflict]:
        """Names several plugins claim, resolved or not."""
        return dict(self._conflicts)

    def _find(self, name: str) -> Entry[T] | None:
        if name in self._entries:
            return self._entries[name]
        base = name.split("@", 1)[0]
        if base in self._entries:
            return self._entries[base]
        patterns = [
            e for e in self._entries.values() if e.is_pattern and fnmatch.fnmatchcase(base, e.name)
        ]
        if not patterns:
            return None
        return max(patterns, key=lambda e: len(e.name.split("*", 1)[0]))

    def get(self, name: str) -> Entry[T]:
        """Return the entry serving ``name`` or raise an error listing the valid choices."""
        for conflicted in (name, name.split("@", 1)[0]):
            conflict = self._conflicts.get(conflicted)
            if conflict is not None and conflict.chosen is None:
                raise self._duplicate_error(conflicted)
            if conflict is not None:
                return conflict.chosen
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
            f"unknown {_singular(self.kind)} {name!r}.{hint} Available: {shown or '(none)'}"
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
    scores: Registry[Any] = field(default_factory=lambda: Registry("scores"))
    strategies: Registry[Any] = field(default_factory=lambda: Registry("strategies"))

    @classmethod
    def with_preferences(cls, preferences: Preferences) -> Registries:
        """Empty registries that resolve conflicts with the user's ``preferences``."""
        return cls(*(Registry(kind, preferences) for kind in KINDS))

    def of(self, kind: str) -> Registry[Any]:
        if kind not in KINDS:
            raise UnknownNameError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        return getattr(self, kind)
