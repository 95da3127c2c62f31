"""What every contract's checks share: the component under check, the suite's state,
turning crashes into :class:`~transferlab.testing.ConformanceError`, and the
``bad-params`` check of declared parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from transferlab.api import (
    Backbone,
    Split,
    Task,
)
from transferlab.errors import ParamError, TransferlabError
from transferlab.params import Param
from transferlab.registry import Entry, Registries
from transferlab.settings import Setting
from transferlab.testing._checks import Check, ConformanceError, NotApplicable
from transferlab.testing._target import Target

__all__ = [
    "UNKNOWN_PARAM", "Component", "SuiteBase", "attempt", "valid_labels", "violations", "weights",
]

T = TypeVar("T")
UNKNOWN_PARAM = "no_such_parameter"


@dataclass(frozen=True)
class Component:
    """One registered thing to check: its kind (singular), the setting it is built from, and
    the entry that serves it."""

    kind: str
    setting: Setting
    entry: Entry[Any]

    @property
    def label(self) -> str:
        return self.setting.canonical()


def attempt(what: str, call: Callable[[], T], fix: str) -> T:
    """``call()``, turning an unexpected exception into a :class:`ConformanceError`."""
    try:
        return call()
    except (ConformanceError, NotApplicable):
        raise
    except Exception as exc:
        raise ConformanceError(f"{what} raised {type(exc).__name__}: {exc}", fix) from exc


def declared_traits(c: Component, kind: type[T]) -> type[T] | T:
    """Where a component's class-level declarations (family, modalities, flags) are read:
    its class when it registered one, else an instance built with the setting's parameters,
    else ``kind`` itself (its defaults) when the factory fails or builds something else."""
    factory = c.entry.factory
    if isinstance(factory, type) and issubclass(factory, kind):
        return factory
    try:
        made = c.entry.create(c.setting.name, c.setting.params)
    except Exception:
        return kind
    return made if isinstance(made, kind) else kind


def weights(backbone: Backbone) -> dict[str, np.ndarray]:
    """A copy of every tensor of the backbone's module (empty without one)."""
    module = backbone.module
    if module is None:
        return {}
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


class SuiteBase:
    """The target, the registries, the shared state, and how a check is made."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._fits: dict[tuple[str, str], Any] = {}  # fits (methods) or their errors
        self._task_data: dict[str, tuple[Task, dict[str, Split]] | ConformanceError] = {}

    @property
    def registries(self) -> Registries:
        return self.target.registries

    def _check(self, kind: str, subject: str, name: str, summary: str,
               func: Callable[[], None]) -> Check:
        return Check(f"{kind}[{subject}]::{name}", kind, subject, name, summary, func)

    def check_bad_params(self, c: Component) -> None:
        entry, name = c.entry, c.setting.name
        for param in entry.params:
            if param.default is None and param.nullable:
                continue
            try:
                param.coerce(param.default, name)
            except ParamError as exc:
                raise ConformanceError(
                    f"the declared default {param.name}={param.default!r} fails its own"
                    f" declaration ({exc})", "change the default or the declared bounds") from None
        cases: list[tuple[str, Param | None, dict[str, Any]]] = [
            (f"unknown parameter {UNKNOWN_PARAM!r}", None, {UNKNOWN_PARAM: 1})]
        cases += [(f"{p.name}={value!r}", p, {p.name: value})
                  for p in entry.params for value in violations(p)]
        for label, param, bad in cases:
            given = {**c.setting.params, **bad}
            named = None if param is None else param.name
            self._expect_rejected(c, label, named, lambda given=given: self._validate(c, given))
            # a setting that names another component is checked against the registries when
            # the cell is validated, not when the method is constructed
            refers = param is not None and param.refers_to is not None
            if c.kind in ("method", "score") and isinstance(entry.factory, type) \
                    and not refers:
                self._expect_rejected(c, label, named,
                                      lambda given=given: entry.factory(name, **given),
                                      constructing=True)

    def _validate(self, c: Component, given: Mapping[str, Any]) -> None:
        from transferlab.settings import validate_settings

        resolved = c.entry.validate(c.setting.name, given)
        validate_settings(c.entry.params, resolved, self.registries, owner=c.setting.name)

    def _expect_rejected(self, c: Component, label: str, param: str | None,
                         call: Callable[[], Any], *, constructing: bool = False) -> None:
        how = f"constructing {c.entry.factory.__name__}" if constructing else "validation"
        fix = ("call super().__init__(registered_name, **params) in __init__ so values are"
               " checked against `params`" if constructing else
               "declare the parameter's type, bounds (min/max/gt/lt) or choices on its Param,"
               " or check the value in a registered `validate`")
        try:
            call()
        except TransferlabError as exc:
            if param is not None and param not in str(exc):
                raise ConformanceError(f"the error for {label} does not name the parameter:"
                                       f" {exc}", "name the parameter in the message") from None
            return
        except Exception as exc:
            raise ConformanceError(
                f"{how} of {c.label!r} with {label} raised {type(exc).__name__}: {exc},"
                " not a transferlab error", fix) from exc
        raise ConformanceError(f"{how} of {c.label!r} accepted {label}; the mistake would"
                               " surface only after work started", fix)


def valid_labels(out: Any, n: int, n_classes: int, what: str) -> np.ndarray:
    """``out`` as an int array of ``n`` labels in ``0..n_classes-1``, or a ConformanceError."""
    if not isinstance(out, np.ndarray):
        raise ConformanceError(f"{what} returned a {type(out).__name__}",
                               "return a numpy array of int labels")
    if out.shape != (n,) or not np.issubdtype(out.dtype, np.integer):
        raise ConformanceError(f"{what} returned {out.dtype} of shape {out.shape} for {n}"
                               " examples", f"return a ({n},) int array, one label each")
    if out.size and (out.min() < 0 or out.max() >= n_classes):
        raise ConformanceError(f"{what} returned labels outside 0..{n_classes - 1}",
                               "predict indices into the task's label_names")
    return out


def violations(param: Param) -> list[Any]:
    """Values that ``param``'s own declaration must reject."""
    values: list[Any] = []
    if param.type in (int, float, bool) and param.choices is None:
        values.append("not-a-number" if param.type is not bool else "not-a-bool")
    if param.choices is not None:
        values.append("not-one-of-the-choices")
    step = 1 if param.type is int else 1.0
    if param.min is not None:
        values.append(param.type(param.min - step) if param.type is int else param.min - step)
    if param.max is not None:
        values.append(param.type(param.max + step) if param.type is int else param.max + step)
    for bound in (param.gt, param.lt):
        if bound is not None:
            values.append(bound)
    if param.refers_to is not None:
        values.append("no-such-component")
    return values
