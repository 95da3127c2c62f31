"""Registers the built-in continual strategies (torch is imported when one runs, not here)."""

from __future__ import annotations

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


@hookimpl
def register_strategies(register: RegisterCallback) -> None:
    from transferlab_continual.strategies import STRATEGIES

    for strategy in STRATEGIES:
        register(strategy)  # name, summary and params are read from the class
