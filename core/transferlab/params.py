"""Declared, typed hyper-parameters: parsed from ``key=value`` strings, validated up front.

Methods, backbones and tasks declare :class:`Param` tuples; the CLI and suites set them, and a
bad value fails before any work starts with a message naming the owner, the key and the fix.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transferlab.errors import ParamError
from transferlab.settings import Setting, parse_setting

__all__ = ["Param", "parse_assignments", "resolve_params"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, type, default, help, and optional choices or bounds.

    ``min`` / ``max`` are inclusive bounds, ``gt`` / ``lt`` exclusive ones (``gt=0.0`` for
    "strictly positive"). Float values must be finite; ``nullable`` accepts ``none``/``null``.
    ``refers_to`` names a component kind (``"objectives"``, ``"backbones"``): the value is then
    a setting, ``NAME[key=value,...]``, checked against that registry when the cell is
    validated (:func:`transferlab.settings.validate_settings`). Such a value may also be given
    as a mapping with a ``name`` key (a TOML inline table, ``{ name = "cross-entropy",
    label_smoothing = 0.1 }``) or a :class:`~transferlab.settings.Setting`; :meth:`coerce`
    turns it into its canonical spelling, ``cross-entropy[label_smoothing=0.1]``.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    gt: float | None = None
    lt: float | None = None
    refers_to: str | None = None

    def coerce(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to this parameter's type, or raise :class:`ParamError`."""
        if value is None or (
            self.nullable and isinstance(value, str) and value.strip().lower() in {"none", "null"}
        ):
            if self.nullable:
                return None
            raise ParamError(f"{owner}: parameter {self.name} may not be empty")
        if isinstance(value, Mapping | Setting):
            value = self._setting_text(value, owner)
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            raise ParamError(
                f"{owner}: parameter {self.name} expects {self.type.__name__}, got {value!r}"
                f" (e.g. -p {self.name}={self.default!r})"
            ) from None
        if self.choices is not None and converted not in self.choices:
            raise ParamError(
                f"{owner}: parameter {self.name}={converted!r} is not one of "
                f"{', '.join(map(str, self.choices))}"
            )
        if self.min is not None and converted < self.min:
            raise ParamError(f"{owner}: parameter {self.name}={converted!r} must be >= {self.min}")
        if self.max is not None and converted > self.max:
            raise ParamError(f"{owner}: parameter {self.name}={converted!r} must be <= {self.max}")
        if self.gt is not None and not converted > self.gt:
            raise ParamError(f"{owner}: parameter {self.name}={converted!r} must be > {self.gt}")
        if self.lt is not None and not converted < self.lt:
            raise ParamError(f"{owner}: parameter {self.name}={converted!r} must be < {self.lt}")
        return converted

    def _setting_text(self, value: Mapping[str, Any] | Setting, owner: str) -> str:
        """A table (or :class:`Setting`) given for a setting, as its canonical text; a table
        given for any other parameter is an error (``str()`` of it would pass silently)."""
        if self.refers_to is None:
            given = (f"the table {dict(value)!r}" if isinstance(value, Mapping)
                     else f"the setting {value.canonical()!r}")
            raise ParamError(
                f"{owner}: parameter {self.name} expects {self.type.__name__}, got {given};"
                " only a parameter that names another component takes a setting"
                f" (e.g. -p {self.name}={self.default!r})"
            )
        return parse_setting(value, f"{owner}: parameter {self.name}").canonical()

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if self.type is int:
            if isinstance(value, bool):
                raise TypeError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value.strip())
        if self.type is float:
            if isinstance(value, bool):
                raise TypeError(value)
            result = float(value)
            if not math.isfinite(result):  # NaN and infinities are never meant
                raise ValueError(value)
            return result
        return self.type(value)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description for ``transferlab list --json`` and the docs."""
        info: dict[str, Any] = {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "help": self.help,
        }
        if self.choices is not None:
            info["choices"] = list(self.choices)
        for bound in ("min", "max", "gt", "lt"):
            if getattr(self, bound) is not None:
                info[bound] = getattr(self, bound)
        if self.nullable:
            info["nullable"] = True
        if self.refers_to is not None:
            info["refers_to"] = self.refers_to
        return info

    def constraint_text(self) -> str:
        """Choices and bounds in words, for ``transferlab list`` (empty when there are none)."""
        parts = []
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        for bound, symbol in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<")):
            value = getattr(self, bound)
            if value is not None:
                parts.append(f"{symbol} {value}")
        if self.nullable:
            parts.append("or none")
        return ", ".join(parts)


def resolve_params(
    declared: Sequence[Param], given: Mapping[str, Any] | None, owner: str
) -> dict[str, Any]:
    """Merge ``given`` over the declared defaults, rejecting unknown keys and bad values."""
    by_name = {p.name: p for p in declared}
    given = dict(given or {})
    unknown = [key for key in given if key not in by_name]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(by_name), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        valid = ", ".join(sorted(by_name)) or "(none)"
        raise ParamError(f"{owner}: unknown parameter {key!r}.{hint} Valid parameters: {valid}")
    resolved = {p.name: p.default for p in declared}
    for key, value in given.items():
        resolved[key] = by_name[key].coerce(value, owner)
    return resolved


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse CLI ``key=value`` strings into a dict (values stay strings until resolved)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"parameter {pair!r} is not of the form key=value (e.g. -p C=0.5)")
        result[key.strip()] = value.strip()
    return result
