"""Several tasks' heads side by side in one linear layer, and the objective that keeps each
example to its own task's columns.

Multi-task and continual regimes train one :class:`~transferlab.training.model.TransferModel`
whose head has a column per class of every task (task ``t``'s classes are the columns
``layout.columns(t)``), and relabel each task's examples to those global columns. Masking the
other columns before the loss makes that one layer exactly a head per task: a column only
receives gradient from its own task's examples. In the class-incremental setting the mask is
instead "every class seen so far", which is one head that grows with each experience.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from transferlab.api import Objective, Split

__all__ = ["LabelLayout", "MaskedObjective", "masked_predictions"]

# A large negative logit rather than -inf: a soft-target objective (label smoothing, a
# teacher's distribution) stays finite when it touches a masked column.
MASKED = -1e4


@dataclass(frozen=True)
class LabelLayout:
    """Task ``t`` owns ``sizes[t]`` consecutive head columns, from ``offsets[t]``."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.cumsum((0, *self.sizes[:-1])))

    def columns(self, task: int) -> range:
        start = self.offsets[task]
        return range(start, start + self.sizes[task])

    def to_global(self, task: int, split: Split) -> Split:
        """``split`` with its labels moved to task ``task``'s columns."""
        return Split(split.inputs, split.labels + self.offsets[task])

    def task_of(self) -> np.ndarray:
        """For each global column, the task that owns it."""
        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    def mask(self, visible: Sequence[int]) -> torch.Tensor:
        """A ``[total]`` bool mask of the columns of tasks ``visible``."""
        mask = torch.zeros(self.total, dtype=torch.bool)
        for task in visible:
            mask[self.offsets[task]: self.offsets[task] + self.sizes[task]] = True
        return mask


class MaskedObjective(Objective):
    """``base`` on logits whose columns outside each example's visible set are masked.

    ``row_masks[c]`` is the visible set of an example labelled ``c`` (global column): its own
    task's columns (a head per task) or every class seen so far (one growing head).
    ``task_weights`` (per task, default 1) weight each task's share of the batch: the loss is
    ``sum_t w_t * n_t / B * base(examples of t)``, which is ``base`` when all weights are 1
    and the base objective is a mean over examples.
    """

    name = "masked"

    def __init__(self, base: Objective, layout: LabelLayout, row_masks: torch.Tensor,
                 task_weights: Sequence[float] | None = None) -> None:
        self.base = base
        self.layout = layout
        self.row_masks = row_masks
        self.task_weights = None if task_weights is None else list(task_weights)
        self._task_of = torch.from_numpy(layout.task_of())

    def setup(self, model: torch.nn.Module) -> None:
        self.base.setup(model)

    def mask(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        visible = self.row_masks.to(outputs.device)[labels]
        return outputs.masked_fill(~visible, MASKED)

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        labels = batch["labels"]
        masked = self.mask(outputs, labels)
        if self.task_weights is None or all(w == 1.0 for w in self.task_weights):
            return self.base(masked, batch)
        tasks = self._task_of.to(labels.device)[labels]
        total: torch.Tensor | float = 0.0
        for task in torch.unique(tasks).tolist():
            rows = (tasks == task).nonzero().squeeze(1)
            sub = {k: (v[rows] if isinstance(v, torch.Tensor) and k != "inputs"
                       and v.shape[:1] == labels.shape else v) for k, v in batch.items()}
            share = len(rows) / len(labels)
            total = total + self.task_weights[task] * share * self.base(masked[rows], sub)
        return total if isinstance(total, torch.Tensor) else outputs.sum() * 0.0


def masked_predictions(logits: np.ndarray | torch.Tensor, columns: Sequence[int]) -> np.ndarray:
    """Arg-max over ``columns`` only, as indices into ``columns`` (a task's local labels)."""
    values = torch.as_tensor(logits)[:, list(columns)]
    return values.argmax(dim=1).numpy()
