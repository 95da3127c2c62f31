"""The hook specifications every transferlab plugin implements a subset of.

Each ``register_*`` hook receives a ``register`` callback (the simonw/llm style): a plugin may
register many things, and the host validates every registration in one place and records
which plugin registered what. Types are imported only under ``TYPE_CHECKING`` so importing
the spec stays cheap (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

__all__ = [
    "PROJECT", "hookimpl", "hookspec", "register_backbones", "register_commands",
    "register_executors", "register_methods", "register_objectives", "register_scores",
    "register_strategies", "register_tasks",
]

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from transferlab.registry import RegisterCallback

PROJECT = "transferlab"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- what can be benchmarked ---------------------------------------------------------------


@hookspec
def register_backbones(register: RegisterCallback) -> None:
    """Register backbones (pretrained mappings from inputs to representations).

    :param register: ``register(name, factory, *, summary, params, **info)``. ``name`` is an
        exact name (``"raw:pixels"``) or a family pattern with a wildcard (``"timm:*"``) whose
        factory receives the full requested name. ``factory(name, **params)`` returns a
        :class:`transferlab.api.Backbone`; it is called only when the backbone is used.
    """


@hookspec
def register_tasks(register: RegisterCallback, data_dirs: list[Path]) -> None:
    """Register tasks (datasets with splits, labels and a primary metric).

    :param register: as for :func:`register_backbones`; factories return a
        :class:`transferlab.api.Task` and must load data lazily.
    :param data_dirs: folders the user pointed at with ``--data-dir`` or
        ``TRANSFERLAB_DATA``; a plugin may register one task per recognised subfolder.
    """


@hookspec
def register_methods(register: RegisterCallback) -> None:
    """Register transfer methods (strategies that turn a backbone into a predictor).

    :param register: ``register(name, method_class, *, summary, params, family)``; the class
        subclasses :class:`transferlab.api.TransferMethod` and declares its hyper-parameters.
    """


@hookspec
def register_objectives(register: RegisterCallback) -> None:
    """Register objectives (losses over a model's outputs and a batch).

    :param register: ``register(name, factory, *, summary, params)``; factories return a
        :class:`transferlab.api.Objective`.
    """


@hookspec
def register_scores(register: RegisterCallback) -> None:
    """Register transferability scores (predict, before training, how well a backbone's
    features will transfer to a task).

    :param register: ``register(ScoreClass)`` or ``register(name, factory, *, summary,
        params)``; the class subclasses :class:`transferlab.api.TransferabilityScore`
        (factories return an instance of one), and ``transferlab rank`` computes it on a
        task's training features.
    """


@hookspec
def register_strategies(register: RegisterCallback) -> None:
    """Register continual strategies (what protects earlier experiences when one model learns
    a stream of tasks: replay, a weight penalty, distillation).

    :param register: ``register(StrategyClass)``; the class subclasses
        :class:`transferlab.regimes.ContinualStrategy` and declares its parameters, and the
        ``continual`` regime uses it as ``continual[strategy=NAME[...]]``.
    """


# --- how it runs ---------------------------------------------------------------------------


@hookspec
def register_executors(register: RegisterCallback) -> None:
    """Register executors that run a suite's cells (in-process, process pool, cluster).

    :param register: ``register(name, factory, *, summary, params)``; factories return an
        object with ``run(cells, run_one) -> Iterator[CellResult]``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``transferlab`` command line.

    :param cli: the root click group; call ``cli.add_command(...)`` or decorate with
        ``@cli.command()``.
    """
