"""Nested settings: a reference to a registered component with its own parameter values.

One syntax everywhere (``-p``, ``-t``, suite files, commands)::

    NAME                                   cross-entropy
    NAME[key=value,key=value]              cross-entropy[label_smoothing=0.1]
    NAME[key=OTHER[key=value]]             kd[teacher=timm:efficientnet_lite0[img_size=128]]

Values stay strings until the owner's declared :class:`~transferlab.params.Param` coerces
them; a value may itself be a setting (brackets nest). Lists inside a setting are written
with ``+`` (``classes=0+1``, ``terms=cross-entropy:1+l2:0.5``). In TOML a setting may also
be an inline table, ``{ name = "cross-entropy", label_smoothing = 0.1 }`` (tables nest, and a
TOML array is a ``+`` list): the declared :class:`~transferlab.params.Param` turns it into its
text, ``cross-entropy[label_smoothing=0.1]``, before validation. :meth:`Setting.canonical` is
the one spelling cell keys hash: keys sorted, no spaces; :func:`validate_settings` also drops
parameters equal to their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transferlab.errors import ParamError, TransferlabError

__all__ = ["Setting", "parse_setting", "validate_settings"]

_EXAMPLE = "e.g. cross-entropy[label_smoothing=0.1]"


@dataclass(frozen=True)
class Setting:
    """A component name plus raw parameter values (strings, or values from TOML)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def canonical(self) -> str:
        """``name[k=v,...]`` with keys sorted (just ``name`` without parameters)."""
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={_canonical_value(v)}" for k, v in sorted(self.params.items()))
        return f"{self.name}[{inner}]"

    def __str__(self) -> str:
        return self.canonical()


def _canonical_value(value: Any) -> str:
    if isinstance(value, Setting):
        return value.canonical()
    if isinstance(value, Mapping):  # a nested TOML inline table: a setting of its own
        return parse_setting(value).canonical()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "+".join(_canonical_value(v) for v in value)
    if isinstance(value, str) and value.rstrip().endswith("]"):
        return parse_setting(value).canonical()  # a nested setting: its keys sorted too
    return str(value)


def parse_setting(value: str | Mapping[str, Any] | Setting, what: str = "setting") -> Setting:
    """Parse ``NAME[key=value,...]`` (or a TOML inline table with a ``name`` key).

    ``what`` names the thing being parsed in error messages (e.g. ``"parameter objective"``).
    """
    if isinstance(value, Setting):
        return value
    if isinstance(value, Mapping):
        params = dict(value)
        name = params.pop("name", None)
        if not isinstance(name, str) or not name.strip():
            raise ParamError(f"{what}: a table setting needs a 'name' key,"
                             ' e.g. { name = "cross-entropy", label_smoothing = 0.1 }')
        return Setting(name.strip(), params)
    if not isinstance(value, str):
        raise ParamError(f"{what}: expected NAME[key=value,...], got {value!r} ({_EXAMPLE})")
    text = value.strip()
    if not text:
        raise ParamError(f"{what} is empty; give a registered name ({_EXAMPLE})")
    open_at = text.find("[")
    if open_at < 0:
        if "]" in text:
            raise ParamError(f"{what}: {value!r} has ']' without '[' ({_EXAMPLE})")
        return Setting(text)
    if not text.endswith("]"):
        raise ParamError(f"{what}: {value!r} must end with ']' after its parameters ({_EXAMPLE})")
    name = text[:open_at].strip()
    if not name:
        raise ParamError(f"{what}: {value!r} has parameters but no name ({_EXAMPLE})")
    return Setting(name, _parse_params(text[open_at + 1 : -1], value, what))


def _parse_params(inner: str, whole: str, what: str) -> dict[str, str]:
    """Split ``k=v,k=v`` at top-level commas (commas inside nested brackets stay)."""
    params: dict[str, str] = {}
    for item in _split_top_level(inner, whole, what):
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"{what}: {item.strip()!r} in {whole!r} is not key=value"
                             f" ({_EXAMPLE})")
        if key in params:
            raise ParamError(f"{what}: {key!r} is given twice in {whole!r}")
        params[key] = val.strip()
    return params


def _split_top_level(inner: str, whole: str, what: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ParamError(f"{what}: unbalanced ']' in {whole!r} ({_EXAMPLE})")
        elif ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    if depth != 0:
        raise ParamError(f"{what}: unbalanced '[' in {whole!r} ({_EXAMPLE})")
    items.append(inner[start:])
    return [item for item in items if item.strip()]


def validate_settings(declared: Any, values: Mapping[str, Any], registries: Any,
                      owner: str) -> dict[str, Any]:
    """Check every value whose :class:`~transferlab.params.Param` ``refers_to`` a component
    kind against ``registries`` (name and parameters, nothing built) and replace it by its
    canonical spelling: parameters equal to their defaults are dropped, keys sorted, so two
    spellings of one setting make one cell key. An error names the owner and the parameter
    (``kd: parameter teacher: unknown backbone 'x'...``), whatever the component's kind."""
    result = dict(values)
    for param in declared:
        value = result.get(param.name)
        if param.refers_to is None or value is None:
            continue
        where = f"{owner}: parameter {param.name}"
        setting = parse_setting(value, where)
        try:
            entry = registries.of(param.refers_to).get(setting.name)
            resolved = entry.validate(setting.name, setting.params)
        except TransferlabError as exc:
            if str(exc).startswith(where):
                raise
            raise type(exc)(f"{where}: {exc}") from None
        defaults = {p.name: p.default for p in entry.params}
        kept = {k: v for k, v in resolved.items() if k in setting.params and v != defaults[k]}
        result[param.name] = Setting(setting.name, kept).canonical()
    return result
