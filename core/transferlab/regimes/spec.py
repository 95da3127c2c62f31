"""Regime settings: how a cell combines several tasks when fine-tuning.

Written with the setting syntax (``-r`` / ``--regime``, a suite's ``regime``)::

    multi-task                                      one shared backbone, a head per task,
    multi-task[sampling=temperature,temperature=2]  batches drawn with p_t ~ n_t^(1/T)
    multi-task[weights=1+0.5+1]                     per-task loss weights, in task order
    continual[strategy=ewc,scenario=class-incremental]
    continual[strategy=replay[memory=500]]

``task-specific`` (one task, one head) is what a cell without a regime is.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transferlab.errors import ParamError
from transferlab.params import Param, resolve_params
from transferlab.settings import Setting, parse_setting, validate_settings

__all__ = ["REGIMES", "RegimeSpec", "parse_regime", "split_by_classes"]

SAMPLING = ("proportional", "uniform", "temperature")

REGIMES: dict[str, tuple[Param, ...]] = {
    "multi-task": (
        Param("sampling", str, "proportional", "how training examples are drawn from the tasks:"
              " proportional (every example once), uniform (each task equally), temperature"
              " (p_t ~ n_t^(1/T))", choices=SAMPLING),
        Param("temperature", float, 2.0, "T of temperature sampling (1 = proportional)",
              min=1e-3),
        Param("weights", str, None, "per-task loss weights in task order, joined by + (default"
              " all 1)", nullable=True),
    ),
    "continual": (
        Param("strategy", str, "naive", "continual strategy as a setting (`transferlab list"
              " strategies`)", refers_to="strategies"),
        Param("scenario", str, "task-incremental", "task-incremental (a head per experience,"
              " the experience known at test time) or class-incremental (one growing head)",
              choices=("task-incremental", "class-incremental")),
    ),
}


@dataclass(frozen=True)
class RegimeSpec:
    """A parsed regime: its name and resolved parameter values."""

    name: str
    params: dict[str, Any]

    def weights(self, tasks: int) -> list[float]:
        """The per-task loss weights of a multi-task regime over ``tasks`` tasks."""
        raw = self.params.get("weights")
        if raw is None:
            return [1.0] * tasks
        try:
            values = [float(w) for w in str(raw).split("+")]
        except ValueError:
            raise ParamError(f"multi-task: weights={raw!r} must be numbers joined by +,"
                             " e.g. weights=1+0.5+1") from None
        if len(values) != tasks or any(w < 0 for w in values):
            raise ParamError(f"multi-task: weights={raw!r} gives {len(values)} weights for"
                             f" {tasks} tasks; give one non-negative weight per task, in order")
        return values


def parse_regime(value: str, registries: Any, tasks: Sequence[str] = ()) -> tuple[RegimeSpec,
                                                                                  str]:
    """Resolve a regime setting against ``REGIMES`` (strategies against ``registries``);
    return it with its canonical spelling, which the cell key hashes."""
    setting = parse_setting(value, "regime")
    if setting.name not in REGIMES:
        raise ParamError(f"unknown regime {setting.name!r}; use one of"
                         f" {', '.join(REGIMES)} (a cell without one is task-specific)")
    declared = REGIMES[setting.name]
    params = resolve_params(declared, setting.params, owner=f"regime {setting.name}")
    params = validate_settings(declared, params, registries, owner=f"regime {setting.name}")
    spec = RegimeSpec(setting.name, params)
    if tasks:
        if len(tasks) < 2:
            raise ParamError(f"regime {setting.name} needs at least two tasks, got"
                             f" {list(tasks)}; give -t several times")
        if spec.name == "multi-task":
            spec.weights(len(tasks))
    defaults = {p.name: p.default for p in declared}
    kept = {k: v for k, v in params.items() if v != defaults[k]}
    return spec, Setting(setting.name, kept).canonical()


def scale_budget(method: Any, factor: int) -> Any:
    """A copy of gradient method ``method`` whose step and time budgets are ``factor`` times
    its own: what several tasks trained at once get (``joint``: the stream's total;
    ``multi-task``: the tasks' total), so they match training on each in turn. Epochs stay:
    one pass over the union is one pass over each task."""
    hp = dict(method.hparams)
    for key in ("max_steps", "max_seconds"):
        if hp.get(key) is not None:
            hp[key] = hp[key] * factor
    return type(method)(method.name, **hp)


def split_by_classes(task: str, experiences: int, label_names: Sequence[str]) -> list[str]:
    """Class-subset views splitting ``task`` into ``experiences`` experiences of consecutive
    classes (``mnist_subset`` into 5: ``mnist_subset[classes=0+1]``, ...)."""
    n = len(label_names)
    if not 2 <= experiences <= n:
        raise ParamError(f"cannot split {task!r} ({n} classes) into {experiences} experiences;"
                         f" use 2..{n}")
    bounds = [round(i * n / experiences) for i in range(experiences + 1)]
    base, bracket, rest = task.partition("[")
    views = []
    for lo, hi in itertools.pairwise(bounds):
        classes = "+".join(str(c) for c in range(lo, hi))
        inner = f"{rest[:-1]},classes={classes}" if bracket else f"classes={classes}"
        views.append(f"{base}[{inner}]")
    return views
