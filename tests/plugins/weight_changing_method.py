"""Deliberately broken: a *feature* method that changes the backbone's weights.

``sharpened-probe`` declares ``family = "feature"`` (frozen backbone) but scales the
backbone's last layer before fitting a probe on its features. Predictions stay consistent
(everything goes through ``backbone.encode``), so only the conformance kit's
``method[sharpened-probe]::backbone-untouched`` check catches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from transferlab import hookimpl
from transferlab.api import Backbone, Predictor, RunContext, Task, TransferMethod


class EncodedProbe(Predictor):
    def __init__(self, model: Any, backbone: Backbone) -> None:
        self.model, self.backbone = model, backbone
        self.trainable_params = int(model.coef_.size + model.intercept_.size)
        self.total_params = backbone.num_parameters() + self.trainable_params

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        return self.model.predict(self.backbone.encode(inputs))


class SharpenedProbe(TransferMethod):
    name = "sharpened-probe"
    family = "feature"
    summary = "logistic regression on 'sharpened' features (changes the backbone: broken)"

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        import torch
        from sklearn.linear_model import LogisticRegression

        module = backbone.module
        if module is not None:
            with torch.no_grad():
                list(module.parameters())[-1].mul_(2.0)  # the bug: writes to frozen weights
        train = task.split("train")
        model = LogisticRegression(max_iter=500).fit(backbone.encode(train.inputs), train.labels)
        return EncodedProbe(model, backbone)


@hookimpl
def register_methods(register: Any) -> None:
    register(SharpenedProbe)
