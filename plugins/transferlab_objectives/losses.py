"""Objective implementations. Each is a :class:`transferlab.api.Objective`: called with the
model's outputs (logits) and the batch mapping (``labels``, ``inputs``), it returns a scalar.

``l2`` and ``weighted-sum`` are the core's :mod:`transferlab.training.losses`, shared with the
methods that compose them (``l2sp``); :meth:`Objective.setup` is how a penalty finds its weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F

from transferlab.api import Objective
from transferlab.training.losses import L2Penalty, WeightedSum

__all__ = ["CrossEntropy", "L2Penalty", "WeightedSum"]


class CrossEntropy(Objective):
    """Mean cross-entropy of logits against ``batch["labels"]``, with label smoothing."""

    name = "cross-entropy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), batch["labels"],
                               label_smoothing=self.label_smoothing)
