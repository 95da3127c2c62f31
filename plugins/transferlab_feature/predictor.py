"""A predictor that applies a fitted scikit-learn estimator to frozen backbone features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, Predictor, RunContext, Task

if TYPE_CHECKING:
    import numpy as np


class FeaturePredictor(Predictor):
    """``estimator.predict(backbone.encode(x))``; whole splits reuse the shared features."""

    def __init__(self, estimator: Any, backbone: Backbone, head_params: int) -> None:
        self.estimator = estimator
        self.backbone = backbone
        self.trainable_params = head_params
        self.total_params = backbone.num_parameters() + head_params
        self.extra: dict[str, Any] = {}

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        return self.estimator.predict(self.backbone.encode(inputs, device=ctx.device))

    def predict_split(self, task: Task, split: str, ctx: RunContext) -> np.ndarray:
        return self.estimator.predict(ctx.features(self.backbone, task, split))
