"""Deliberately broken: a predictor that never reports its parameter counts.

``majority-vote`` predicts the most frequent training label, but its predictor leaves
``trainable_params`` and ``total_params`` unset, so the harness would refuse its results; the
conformance kit's ``method[majority-vote]::parameter-counts`` check must name the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from transferlab import hookimpl
from transferlab.api import Backbone, Predictor, RunContext, Task, TransferMethod


class MajorityPredictor(Predictor):
    def __init__(self, label: int) -> None:
        self.label = label  # the bug: no trainable_params / total_params

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        return np.full(len(inputs), self.label, dtype=np.int64)


class MajorityVote(TransferMethod):
    name = "majority-vote"
    family = "baseline"
    summary = "the most frequent training label (reports no parameter counts: broken)"

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        return MajorityPredictor(int(np.bincount(task.split("train").labels).argmax()))


@hookimpl
def register_methods(register: Any) -> None:
    register(MajorityVote)
