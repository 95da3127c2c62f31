"""Frozen-feature extraction shared by every feature method within a process.

Keyed on (backbone fingerprint, task fingerprint, split) so methods and seeds that use the same
backbone and split pay for one forward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from transferlab.errors import DataError

if TYPE_CHECKING:
    from transferlab.api import Backbone, RunContext, Task


class FeatureStore:
    """An in-process cache of extracted features."""

    def __init__(self) -> None:
        self._memory: dict[tuple[str, str, str], np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def get(self, backbone: Backbone, task: Task, split: str, ctx: RunContext) -> np.ndarray:
        key = (backbone.fingerprint, task.fingerprint(), split)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        self.misses += 1
        data = task.split(split)
        with ctx.progress_bar(len(data), f"features {task.name}/{split}") as update:
            feats = backbone.encode(data.inputs, progress=update, device=ctx.device)
        values = feats.data if hasattr(feats, "tocsr") else feats  # scipy sparse or dense
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise DataError(
                f"backbone {backbone.name!r} produced {bad} NaN/inf feature values"
                f" on {task.name}/{split}; check the inputs and the weights"
            )
        self._memory[key] = feats
        return feats
