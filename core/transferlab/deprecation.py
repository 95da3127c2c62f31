"""Deprecations: how a public name is renamed or removed without breaking the code using it.

The stability policy (``docs/stability.md``): the public API is every name in a public
module's ``__all__``, the public members of those classes, and the hook specs with their
parameters (``tests/public_api.txt`` records all of them). A public name is removed only after
it has warned with :class:`TransferlabDeprecationWarning` for at least one minor version:

- :func:`deprecated_alias` keeps an old module attribute importable, warning on each use::

      deprecated_alias(globals(), "OldName", NewName, since="0.2", removal="0.3")

- :func:`deprecated` wraps a function or method that is going away;
- :func:`warn_deprecated` warns once about anything else (a keyword argument, a value).

Each names the replacement and the version that removes it. The warning is a
:class:`DeprecationWarning` subclass, so Python hides it outside ``__main__`` while pytest
shows it; ``-W error::transferlab.deprecation.TransferlabDeprecationWarning`` makes it fatal.
"""

from __future__ import annotations

import functools
import importlib
import re
import warnings
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "Deprecation", "TransferlabDeprecationWarning", "deprecated", "deprecated_alias",
    "warn_deprecated",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute :func:`deprecated` sets on the functions it wraps (the API snapshot reads it).
MARKER = "__transferlab_deprecated__"
#: The module global :func:`deprecated_alias` keeps its aliases in (name -> Deprecation).
ALIASES = "__deprecated__"


class TransferlabDeprecationWarning(DeprecationWarning):
    """A transferlab public name or behaviour that is deprecated and will be removed."""


def _minor(version: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", version.strip())
    if match is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR (e.g. '0.3')")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class Deprecation:
    """What is deprecated (a dotted name or a description), what replaces it, the version
    that deprecated it and the one that removes it (at least one minor version later)."""

    name: str
    replacement: str
    since: str
    removal: str

    def __post_init__(self) -> None:
        if _minor(self.removal) <= _minor(self.since):
            raise ValueError(
                f"deprecation of {self.name}: removal {self.removal} must come at least one"
                f" minor version after {self.since} (the stability policy)"
            )

    def message(self) -> str:
        return (f"{self.name} is deprecated since transferlab {self.since} and will be removed"
                f" in {self.removal}; use {self.replacement} instead")

    def warn(self, stacklevel: int = 2) -> None:
        """Emit the warning, attributed ``stacklevel`` frames up from the caller."""
        warnings.warn(self.message(), TransferlabDeprecationWarning, stacklevel=stacklevel + 1)

    def removal_due(self, version: str) -> bool:
        """Whether ``version`` (the running transferlab) is the removal version or later."""
        return _minor(version) >= _minor(self.removal)


def warn_deprecated(name: str, *, replacement: str, since: str, removal: str,
                    stacklevel: int = 2) -> None:
    """Warn that ``name`` (a keyword argument, a parameter, a behaviour) is deprecated; the
    warning points ``stacklevel`` frames up (2: the caller of the function calling this)."""
    Deprecation(name, replacement, since, removal).warn(stacklevel=stacklevel + 1)


def deprecated(*, replacement: str, since: str, removal: str) -> Callable[[F], F]:
    """Decorate a public function or method that is going away: each call warns, then runs
    it unchanged. ``replacement`` says what to use instead."""

    def decorate(func: F) -> F:
        deprecation = Deprecation(f"{func.__module__}.{func.__qualname__}", replacement, since,
                                  removal)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            deprecation.warn(stacklevel=2)
            return func(*args, **kwargs)

        setattr(wrapper, MARKER, deprecation)
        return wrapper  # type: ignore[return-value]

    return decorate


def _dotted(obj: Any) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else repr(obj)


def _resolve(target: Any) -> Any:
    """A dotted path ``"pkg.module.Name"`` imported on first use, or the object itself."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def deprecated_alias(module_globals: MutableMapping[str, Any], old_name: str, new: Any, *,
                     since: str, removal: str, replacement: str | None = None) -> Deprecation:
    """Keep ``old_name`` importable from the module whose ``globals()`` are given, as an
    alias of ``new`` that warns on every access (``module.old_name`` and ``from module import
    old_name``). ``new`` is the object, or its dotted path (imported on first use, so the
    alias costs nothing until used). The module's aliases are listed in its
    ``__deprecated__`` mapping; an existing module ``__getattr__`` keeps working."""
    module = module_globals["__name__"]
    if old_name in module_globals:
        raise ValueError(f"{module}.{old_name} is still defined; remove it (or its import)"
                         " so the deprecated alias can serve it")
    if replacement is None:
        replacement = new if isinstance(new, str) else _dotted(new)
    deprecation = Deprecation(f"{module}.{old_name}", replacement, since, removal)
    aliases: dict[str, Deprecation] = module_globals.setdefault(ALIASES, {})
    targets: dict[str, Any] = module_globals.setdefault("__deprecated_targets__", {})
    aliases[old_name], targets[old_name] = deprecation, new
    current = module_globals.get("__getattr__")
    if not getattr(current, MARKER, False):
        module_globals["__getattr__"] = _alias_getattr(module, module_globals, current)
    return deprecation


def _alias_getattr(module: str, module_globals: MutableMapping[str, Any],
                   fallback: Callable[[str], Any] | None) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        deprecation = module_globals[ALIASES].get(name)
        if deprecation is None:
            if fallback is not None:
                return fallback(name)
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        deprecation.warn(stacklevel=2)
        return _resolve(module_globals["__deprecated_targets__"][name])

    setattr(__getattr__, MARKER, True)
    return __getattr__
