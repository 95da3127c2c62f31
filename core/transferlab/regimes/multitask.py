"""The multi-task regime: one shared backbone, a head per task, trained on a mixture of the
tasks' training data with per-task loss weights (MT-DNN, Liu et al. 2019).

Every batch mixes tasks; each example's loss only sees its own task's head columns
(:class:`~transferlab.regimes.heads.MaskedObjective`). The mixture is drawn once per cell,
seeded: ``proportional`` keeps every example once; ``uniform`` and ``temperature``
(``p_t ~ n_t^(1/T)``) resample each task to its share of the same total size, drawing
without replacement up to a task's size and repeating examples beyond it. The method's own
budget counts per task: ``max_steps`` (and ``max_seconds``) are multiplied by the number of
tasks, so a multi-task cell takes as many optimizer steps as single-task cells of the same
method on each task together; ``epochs`` stay (one pass over a proportional mixture is one
pass over every task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.api import Backbone, RunContext, Split, Task
from transferlab.regimes.heads import LabelLayout, MaskedObjective, masked_predictions
from transferlab.regimes.strategy import TrainingTask, concatenate
from transferlab.training.method import GradientMethod

__all__ = ["MultiTaskResult", "mixture_sizes", "run_multitask"]


def mixture_sizes(sizes: Sequence[int], sampling: str, temperature: float = 2.0) -> list[int]:
    """How many training examples each task contributes to the mixture (same total as the
    tasks' sizes together; at least one per task)."""
    n = np.asarray(sizes, dtype=float)
    if sampling == "proportional":
        return [int(s) for s in sizes]
    if sampling == "uniform":
        p = np.full(len(n), 1.0 / len(n))
    elif sampling == "temperature":
        p = n ** (1.0 / temperature)
        p = p / p.sum()
    else:
        raise ValueError(f"unknown sampling {sampling!r}")
    return [max(1, round(x)) for x in p * n.sum()]


def _draw(split: Split, count: int, rng: np.random.Generator) -> Split:
    size = len(split)
    if count == size:
        return split
    rows = rng.permutation(size)[: min(count, size)]
    if count > size:
        rows = np.concatenate([rng.permutation(size), rng.choice(size, count - size)])
    return Split([split.inputs[i] for i in rows], split.labels[rows])


@dataclass
class MultiTaskResult:
    """Per-task test metrics (``{task: {metric: value}}``), the weight counts and steps."""

    per_task: dict[str, dict[str, float]]
    counts: tuple[int, int]
    steps: int
    mixture: dict[str, int]


def run_multitask(
    method: GradientMethod, backbone: Backbone, tasks: Sequence[Task], ctx: RunContext, *,
    sampling: str = "proportional", temperature: float = 2.0,
    weights: Sequence[float] | None = None, names: Sequence[str] | None = None,
) -> MultiTaskResult:
    """Fine-tune ``backbone`` with ``method`` on all ``tasks`` at once; score each task's test
    split with its own head. ``names`` (default: the tasks' own) key the per-task results."""
    from transferlab.harness.metrics import classification_metrics
    from transferlab.training.evaluate import predict_logits
    from transferlab.training.model import TransferModel
    from transferlab.training.objectives import build_objective

    names = list(names) if names is not None else [t.name for t in tasks]
    layout = LabelLayout(tuple(names), tuple(len(t.label_names) for t in tasks))
    trains = [layout.to_global(i, t.split("train")) for i, t in enumerate(tasks)]
    counts = mixture_sizes([len(s) for s in trains], sampling, temperature)
    rng = np.random.default_rng([ctx.seed, 2741])
    mixture = concatenate([_draw(s, c, rng) for s, c in zip(trains, counts, strict=True)])
    base = build_objective(method.hparams["objective"], registries=ctx.registries)
    ctx.seed_everything()
    model = TransferModel(backbone, layout.total)
    owner = layout.task_of()
    import torch

    masks = torch.stack([layout.mask([int(owner[c])]) for c in range(layout.total)])
    objective = MaskedObjective(base, layout, masks, weights)
    label_names = [f"{n}/{label}" for n, t in zip(names, tasks, strict=True)
                   for label in t.label_names]
    task = TrainingTask("multi-task", mixture, label_names, tasks[0].modality)
    from transferlab.regimes.spec import scale_budget

    trainer = scale_budget(method, len(tasks))
    state = trainer.fit_model(model, task, ctx, objective=objective, validate=False)
    device = next(model.parameters()).device
    per_task: dict[str, dict[str, float]] = {}
    for i, t in enumerate(tasks):
        test = t.split("test")
        logits = predict_logits(model, test.inputs, backbone.preprocess,
                                backbone.default_batch_size, device)
        predicted = masked_predictions(logits, list(layout.columns(i)))
        per_task[names[i]] = classification_metrics(test.labels, predicted)
    steps = sum(r.steps for r in state.results.values())
    return MultiTaskResult(per_task, model.counts(), steps,
                           dict(zip(names, counts, strict=True)))


def summary_metrics(per_task: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The cell's stored metrics: each task's as ``TASK/metric`` and their means."""
    metrics: dict[str, float] = {}
    names = sorted({m for values in per_task.values() for m in values})
    for name in names:
        values = [v[name] for v in per_task.values() if name in v]
        metrics[name] = float(np.mean(values))
    for task, values in per_task.items():
        for name, value in values.items():
            metrics[f"{task}/{name}"] = float(value)
    return metrics
