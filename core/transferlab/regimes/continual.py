"""The continual regime: one model trained on a stream of experiences, evaluated on every
experience after each one (the accuracy matrix), checkpointed after each one.

Scenarios: ``task-incremental`` (a head per experience; evaluation knows which experience an
input comes from and predicts among its classes) and ``class-incremental`` (one head that grows
with each experience's classes; evaluation predicts among every class seen so far). Both are
one linear layer over all classes with a visibility mask
(:class:`~transferlab.regimes.heads.MaskedObjective`).

Each experience trains with the cell's parameter method (:meth:`GradientMethod.fit_model`,
its own budget per experience, no validation split: every strategy gets the same number of
optimizer steps) under a seed derived from the cell seed and the experience index, so a
stream resumed from a checkpoint ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferlab.api import Backbone, RunContext, Task
from transferlab.errors import CheckpointError, ParamError
from transferlab.regimes.heads import LabelLayout, MaskedObjective, masked_predictions
from transferlab.regimes.metrics import ContinualScores, continual_scores
from transferlab.regimes.spec import scale_budget
from transferlab.regimes.strategy import (
    ContinualStrategy,
    Experience,
    StreamState,
    TrainingTask,
    concatenate,
)
from transferlab.training.method import GradientMethod

__all__ = ["SCENARIOS", "StreamResult", "run_stream"]

SCENARIOS = ("task-incremental", "class-incremental")


@dataclass
class StreamResult:
    """The accuracy matrix (rows: after each trained experience), the untrained model's
    accuracy per experience (the forward-transfer reference) and the summary figures."""

    names: list[str]
    matrix: list[list[float]]
    reference: list[float]
    scores: ContinualScores
    resumed_from: int | None = None
    counts: tuple[int, int] = (0, 0)
    steps: list[int] = field(default_factory=list)


def experience_seed(seed: int, index: int) -> int:
    """The seed of experience ``index`` of a stream run with cell seed ``seed``."""
    return int(np.random.default_rng([seed, 4099, index]).integers(2**31 - 1))


def row_masks(layout: LabelLayout, scenario: str, seen: Sequence[int]) -> torch.Tensor:
    """``[C, C]``: row ``c`` is the set of columns an example of class ``c`` is scored over:
    its own experience's (task-incremental) or every seen experience's (class-incremental)."""
    owner = layout.task_of()
    if scenario == "task-incremental":
        masks = [layout.mask([int(owner[c])]) for c in range(layout.total)]
        return torch.stack(masks)
    return layout.mask(seen).unsqueeze(0).expand(layout.total, -1).clone()


def evaluate_row(model: Any, backbone: Backbone, experiences: Sequence[Experience],
                 layout: LabelLayout, scenario: str, seen: Sequence[int], device: Any
                 ) -> list[float]:
    """Accuracy on every experience's test split with the columns the scenario allows."""
    from transferlab.training.evaluate import predict_logits

    row = []
    for experience in experiences:
        logits = predict_logits(model, experience.test.inputs, backbone.preprocess,
                                backbone.default_batch_size, device)
        own = list(layout.columns(experience.index))
        columns = own if scenario == "task-incremental" else [
            c for task in seen for c in layout.columns(task)]
        predicted = np.asarray(columns)[masked_predictions(logits, columns)]
        row.append(float((predicted == experience.test.labels).mean()))
    return row


class _Checkpoints:
    """``DIR/exp-<i>/`` (model and strategy state, safetensors; progress, JSON) and a
    ``latest`` file naming the last finished experience, replaced atomically."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def latest(self) -> Path | None:
        if self.root is None or not (self.root / "latest").is_file():
            return None
        path = self.root / (self.root / "latest").read_text().strip()
        if not (path / "state.json").is_file():
            raise CheckpointError(f"continual checkpoint {path} is incomplete; delete"
                                  f" {self.root} to restart the stream")
        return path

    def save(self, index: int, model: Any, strategy: ContinualStrategy, name: str,
             progress: dict[str, Any]) -> None:
        if self.root is None:
            return
        from safetensors.torch import save_file

        from transferlab.checkpoint import save_checkpoint

        folder = self.root / f"exp-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, folder / "model.safetensors", name=name)
        tensors = {k: v.detach().cpu().contiguous() for k, v in strategy.state_tensors().items()}
        save_file(tensors, str(folder / "strategy.safetensors"))
        (folder / "state.json").write_text(json.dumps(
            {**progress, "strategy": strategy.state_json()}))
        pointer = self.root / "latest.tmp"
        pointer.write_text(folder.name)
        os.replace(pointer, self.root / "latest")
        import shutil

        for older in self.root.glob("exp-*"):  # only the latest is ever resumed from
            if older != folder:
                shutil.rmtree(older, ignore_errors=True)

    @staticmethod
    def load(folder: Path, model: Any, strategy: ContinualStrategy, name: str
             ) -> dict[str, Any]:
        from safetensors.torch import load_file

        from transferlab.checkpoint import load_checkpoint

        load_checkpoint(folder / "model.safetensors", model, expected_name=name)
        progress = json.loads((folder / "state.json").read_text())
        strategy.load_state(load_file(str(folder / "strategy.safetensors")),
                            progress.get("strategy", {}))
        return progress


def run_stream(
    method: GradientMethod, strategy: ContinualStrategy, backbone: Backbone,
    tasks: Sequence[Task], ctx: RunContext, *, scenario: str = "task-incremental",
    checkpoint_dir: Path | None = None,
    on_experience: Callable[[int, list[float]], Any] | None = None,
    names: Sequence[str] | None = None,
) -> StreamResult:
    """Train ``method`` with ``strategy`` on ``tasks`` in order and return the accuracy
    matrix; with ``checkpoint_dir`` each finished experience is saved there and a re-run
    resumes after the last one. ``names`` (default: the tasks' own) name the experiences."""
    from transferlab.training.model import TransferModel
    from transferlab.training.objectives import build_objective

    if scenario not in SCENARIOS:
        raise ParamError(f"unknown continual scenario {scenario!r}; use one of"
                         f" {', '.join(SCENARIOS)}")
    names = list(names) if names is not None else [t.name for t in tasks]
    layout = LabelLayout(tuple(names), tuple(len(t.label_names) for t in tasks))
    experiences = [Experience(i, names[i], layout.to_global(i, t.split("train")),
                              layout.to_global(i, t.split("test"))) for i, t in enumerate(tasks)]
    label_names = [f"{n}/{label}" for n, t in zip(names, tasks, strict=True)
                   for label in t.label_names]
    base_objective = build_objective(method.hparams["objective"], registries=ctx.registries)
    ctx.seed_everything()
    model = TransferModel(backbone, layout.total).to(ctx.device)
    device = next(model.parameters()).device
    state = StreamState(model, method, layout, experiences, scenario, ctx)
    everything = list(range(len(experiences)))
    checkpoints = _Checkpoints(checkpoint_dir)
    matrix: list[list[float]] = []
    steps: list[int] = []
    resumed = None
    start = 0
    found = checkpoints.latest()
    if found is not None:  # the untrained model's accuracies are in the checkpoint
        progress = checkpoints.load(found, model, strategy, backbone.name.split("@", 1)[0])
        matrix, reference, steps = progress["matrix"], progress["reference"], progress["steps"]
        start = resumed = progress["done"]
    elif strategy.joint:
        reference = evaluate_row(model, backbone, experiences, layout, scenario, everything,
                                 device)
    else:
        reference = [evaluate_row(model, backbone, [e], layout, scenario, [e.index],
                                  device)[0] for e in experiences]
    plan = [everything] if strategy.joint else [[i] for i in everything]
    trainer = scale_budget(method, len(experiences)) if strategy.joint else method
    for position in range(start, len(plan)):
        indices = plan[position]
        state.current = indices[-1]
        seen = state.seen()
        experience = experiences[indices[-1]]
        exp_ctx = replace(ctx, seed=experience_seed(ctx.seed, position))
        exp_ctx.seed_everything()
        strategy.before_experience(experience, state)
        if strategy.joint:
            split = concatenate([experiences[i].train for i in indices])
        else:
            split = strategy.training_split(experience, state)
        state.row_masks = row_masks(layout, scenario, seen)
        objective = strategy.extend_objective(
            MaskedObjective(base_objective, layout, state.row_masks), experience, state)
        task = TrainingTask(experience.name, split, label_names, tasks[0].modality)
        fitted = trainer.fit_model(model, task, exp_ctx, objective=objective, validate=False)
        steps.append(sum(r.steps for r in fitted.results.values()))
        strategy.after_experience(experience, state)
        row = evaluate_row(model, backbone, experiences, layout, scenario, seen, device)
        matrix.append(row)
        checkpoints.save(position, model, strategy, backbone.name.split("@", 1)[0],
                         {"done": position + 1, "matrix": matrix, "reference": reference,
                          "steps": steps, "names": layout.names})
        if on_experience is not None:  # after the checkpoint: the experience is finished
            on_experience(position, row)
    # class-incremental: an experience's classes have no column before it is trained, so its
    # accuracy just before training is 0 by construction and forward transfer says nothing
    transfer_reference = None if strategy.joint or scenario == "class-incremental" else reference
    return StreamResult(list(layout.names), matrix, reference,
                        continual_scores(matrix, transfer_reference), resumed, model.counts(),
                        steps)
