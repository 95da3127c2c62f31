"""Registers the transferability scores and the relational methods (no torch import here)."""

from __future__ import annotations

from typing import Any

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


@hookimpl
def register_scores(register: RegisterCallback) -> None:
    from transferlab_relational.scores import SCORES

    for score in SCORES:
        # name, summary and params are read from the class; the flag shows in `list`
        register(score, needs_source_probabilities=score.needs_source_probabilities)


@hookimpl
def register_methods(register: RegisterCallback) -> None:
    """The relational methods (torch is imported at fit time, not here)."""
    from transferlab_relational.cotuning import CoTuning
    from transferlab_relational.distill import METHODS

    for method in (CoTuning, *METHODS):
        register(method)  # name, summary, params and family are read from the class


def _kd(name: str, temperature: float) -> Any:
    from transferlab_relational.losses import KDLoss

    return KDLoss(temperature)


def _rkd(name: str, distance_weight: float, angle_weight: float) -> Any:
    from transferlab_relational.losses import RKDLoss

    return RKDLoss(distance_weight, angle_weight)


def _spkd(name: str) -> Any:
    from transferlab_relational.losses import SPKDLoss

    return SPKDLoss()


@hookimpl
def register_objectives(register: RegisterCallback) -> None:
    """The distillation losses, for any method's objective: each reads the teacher's
    per-example tensor from ``batch["teacher"]`` (see transferlab_relational.losses)."""
    from transferlab_relational.losses import KD_PARAMS, RKD_PARAMS

    register("kd", _kd, params=KD_PARAMS, summary="T^2 * KL(teacher || student) of softened"
             " logits; needs batch['teacher'] logits (Hinton 2015)")
    register("rkd", _rkd, params=RKD_PARAMS, summary="relational KD: pairwise distances and"
             " angles against batch['teacher'] embeddings (Park 2019)")
    register("spkd", _spkd, summary="similarity-preserving KD: normalised batch Gram matrices"
             " against batch['teacher'] embeddings (Tung 2019)")
