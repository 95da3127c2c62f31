"""The public training API every gradient-based method builds on, and the loop they share.

For method authors: :class:`GradientMethod` (subclass it; implement ``configure``),
:class:`Stage`, :class:`FitState` and :class:`Callback` (staged training and hooks),
:class:`TransferModel` (backbone features + a new head), :class:`ModelPredictor` (predicts,
saves and reloads through safetensors), :func:`training_params` (the loop's declared
parameters), :func:`decay_groups` (AdamW parameter groups), :class:`TrainValSplit` (the
training and validation examples, with indices into the task's splits), :class:`BatchSource`
(a split's batches, with per-example ``extras`` such as a teacher's outputs, handed to the
objective row by row).

Modules, one job each: ``config`` (declared parameters, budget; torch-free), ``method`` (the
fit sequence; torch-free to import), ``model``, ``predictor``, ``data`` (validation split,
batching), ``schedule`` (AdamW, warm-up + cosine), ``stopping`` (early stopping),
``accelerator`` (device and precision via Accelerate), ``loop`` (the loop), ``evaluate``
(validation and prediction), ``losses`` (shared objective building blocks), ``objectives``
(objectives from the objective hook).

Importing this package does not import torch: the names that need it load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from transferlab.training.config import TrainConfig, check_budget, training_params
from transferlab.training.method import Callback, FitState, GradientMethod, Stage

__all__ = [
    "BatchSource", "Callback", "FitState", "GradientMethod", "ModelPredictor", "Stage",
    "TrainConfig", "TrainValSplit", "TransferModel", "carve_validation", "check_budget",
    "decay_groups", "training_params",
]

_LAZY = {
    "BatchSource": "transferlab.training.data",
    "TransferModel": "transferlab.training.model",
    "ModelPredictor": "transferlab.training.predictor",
    "TrainValSplit": "transferlab.training.data",
    "carve_validation": "transferlab.training.data",
    "decay_groups": "transferlab.training.schedule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab.training' has no attribute {name!r}")
