"""Registers the transferability scores (numpy and scikit-learn only; no torch import)."""

from __future__ import annotations

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


@hookimpl
def register_scores(register: RegisterCallback) -> None:
    from transferlab_relational.scores import SCORES

    for score in SCORES:
        # name, summary and params are read from the class; the flag shows in `list`
        register(score, needs_source_probabilities=score.needs_source_probabilities)
