"""The shared training loop, its budget, schedule, data splits and objectives (tiny models)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.api import Budget, RunContext, Split, Task
from transferlab.errors import ParamError
from transferlab.plugins import get_registries
from transferlab.training.accelerator import make_accelerator, resolve_precision
from transferlab.training.config import TrainConfig, combine_budgets
from transferlab.training.data import BatchSource, count_batches, train_val_splits
from transferlab.training.loop import set_train_mode, train
from transferlab.training.objectives import build_objective
from transferlab.training.schedule import decay_groups, warmup_cosine


class Blobs(Task):
    """Three separable Gaussian blobs in 4-d; a ``val`` split only when asked."""

    modality = "image"

    def __init__(self, n: int = 90, with_val: bool = False) -> None:
        super().__init__("blobs")
        self.n, self.with_val = n, with_val

    @property
    def label_names(self) -> list[str]:
        return ["a", "b", "c"]

    def split_names(self) -> list[str]:
        return ["train", "val", "test"] if self.with_val else ["train", "test"]

    def _load_split(self, split: str) -> Split:
        rng = np.random.default_rng({"train": 0, "val": 1, "test": 2}[split])
        labels = np.arange(self.n) % 3
        points = (rng.normal(size=(self.n, 4)) + 3 * np.eye(4)[labels]).astype(np.float32)
        return Split(list(points), labels)


def _stack(items):
    return torch.as_tensor(np.stack(items))


def _setup(seed=0, **cfg):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    task = Blobs()
    hparams = {"epochs": 3, "batch_size": 16, "patience": 0, **cfg}
    config = TrainConfig.from_hparams(hparams)
    groups = decay_groups(model.named_parameters(), 0.05, 0.0, "all")
    data = BatchSource(task.split("train"), _stack, config.batch_size)
    return model, data, groups, config


def _run(seed=0, objective=None, val=None, **cfg):
    model, data, groups, config = _setup(seed, **cfg)
    objective = objective or build_objective("cross-entropy")
    result = train(model, data, val, objective, groups, config, RunContext(seed, progress=False))
    return model, result


def test_budgets_combine_to_the_tightest_and_non_positive_fails():
    merged = combine_budgets(Budget(epochs=10, steps=None), Budget(steps=5, seconds=2.0))
    assert (merged.epochs, merged.steps, merged.seconds) == (10, 5, 2.0)
    with pytest.raises(ParamError, match=r"run budget: steps=0 must be positive"):
        combine_budgets(Budget(epochs=3), Budget(steps=0))
    with pytest.raises(ParamError, match=r"seconds=-1 must be positive"):
        TrainConfig.from_hparams({"epochs": 2, "max_seconds": -1})
    with pytest.raises(ParamError, match="needs an epoch or step limit"):
        combine_budgets(Budget(), Budget(seconds=5))


def test_method_budget_parameters_are_validated_before_anything_loads():
    from transferlab.harness.cell import Cell, validate_cell

    registries = get_registries()
    for key, value in (("epochs", 0), ("max_steps", -2), ("max_seconds", 0)):
        cell = Cell("timm:test_efficientnet@random", "digits", "finetune", {key: value})
        with pytest.raises(ParamError, match=f"parameter {key}="):
            validate_cell(cell, registries)


def test_run_cell_budget_cap_fails_before_training():
    from transferlab.harness.cell import Cell, run_cell

    cell = Cell("timm:test_efficientnet@random", "digits", "finetune",
                backbone_params={"img_size": 32})
    result = run_cell(cell, get_registries(), progress=False, budget=Budget(steps=0))
    assert result.status == "error"
    assert result.error == "run budget: steps=0 must be positive (e.g. -p max_steps=3)"


def test_warmup_then_cosine_decay():
    factor = warmup_cosine(100, 10)
    values = [factor(s) for s in range(100)]
    assert values[0] < 0.1 < values[1] < values[9] < 1.0 == values[10]
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    assert values[-1] < 0.01
    assert warmup_cosine(1, 1)(0) == 1.0  # one step: no warm-up left to do


def test_val_split_is_the_tasks_or_carved_stratified_and_seeded():
    train_split, val = train_val_splits(Blobs(with_val=True), 0.2, seed=0)
    assert len(train_split) == 90 and len(val) == 90
    train_split, val = train_val_splits(Blobs(), 0.2, seed=0)
    assert (len(train_split), len(val)) == (72, 18)
    assert np.bincount(val.labels).tolist() == [6, 6, 6]
    again = train_val_splits(Blobs(), 0.2, seed=0)[1]
    other = train_val_splits(Blobs(), 0.2, seed=1)[1]
    assert all(np.array_equal(a, b) for a, b in zip(val.inputs, again.inputs, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(val.inputs, other.inputs, strict=True))
    assert train_val_splits(Blobs(), 0.0, seed=0)[1] is None


def test_batches_are_cached_tensors_and_skip_a_singleton():
    data = BatchSource(Blobs(n=33).split("train"), _stack, 16)
    assert data._cache is not None and data._cache.shape == (33, 4)
    assert count_batches(33, 16) == 3 and count_batches(33, 16, drop_singleton=True) == 2
    assert count_batches(1, 16, drop_singleton=True) == 1
    sizes = [len(y) for _, y in data.batches(np.arange(33), drop_singleton=True)]
    assert sizes == [16, 16]


def test_loop_learns_respects_step_budget_and_is_deterministic():
    model, result = _run(epochs=50, max_steps=7)
    assert result.steps == 7 and result.stop_reason == "steps"
    again, _ = _run(epochs=50, max_steps=7)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                   again.state_dict().values(), strict=True))
    model, result = _run(epochs=8)
    assert result.stop_reason == "epochs" and result.steps == 8 * 6
    points = torch.as_tensor(np.stack(Blobs().split("test").inputs))
    accuracy = (model(points).argmax(1).numpy() == Blobs().split("test").labels).mean()
    assert accuracy > 0.9


def test_gradient_accumulation_counts_optimizer_steps():
    _, result = _run(epochs=2, accumulate=4)  # 6 micro-batches per epoch -> 2 steps
    assert result.steps == 2 * math.ceil(6 / 4)
    assert result.examples == 2 * 90


def test_seconds_budget_stops_training():
    _, result = _run(epochs=10_000, max_seconds=0.3)
    assert result.stop_reason == "seconds" and result.epochs < 10_000


def test_early_stopping_restores_the_best_epoch():
    task = Blobs(with_val=True)
    val = BatchSource(task.split("val"), _stack, 32)
    _, result = _run(val=val, epochs=30, patience=2)
    assert result.stop_reason in {"early-stopping", "epochs"}
    assert result.best_epoch is not None and result.val_accuracy > 0.9
    best = result.history[result.best_epoch - 1]["val_accuracy"]
    assert best == max(h["val_accuracy"] for h in result.history)


def test_keyboard_interrupt_propagates_out_of_the_loop():
    calls = []

    class Interrupting:
        def __call__(self, outputs, batch):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return nn.functional.cross_entropy(outputs, batch["labels"])

    with pytest.raises(KeyboardInterrupt):
        _run(objective=Interrupting(), epochs=5)
    assert len(calls) == 3


def test_frozen_batch_norm_keeps_its_statistics():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.BatchNorm1d(8))
    model[1].weight.requires_grad_(False)
    set_train_mode(model)
    assert model.training and not model[1].training and model[2].training


def test_objectives_come_from_the_hook_and_compose():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    batch = {"labels": torch.tensor([0, 2])}
    plain = build_objective("cross-entropy")(logits, batch)
    assert torch.isclose(plain, nn.functional.cross_entropy(logits, batch["labels"]))
    smooth = build_objective("cross-entropy", "label_smoothing=0.2")(logits, batch)
    assert not torch.isclose(smooth, plain)
    total = build_objective("weighted-sum", {"terms": "cross-entropy:2+cross-entropy:0.5"})
    assert torch.isclose(total(logits, batch), 2.5 * plain)
    with pytest.raises(ParamError, match="is not NAME:WEIGHT"):
        build_objective("weighted-sum", {"terms": "cross-entropy:x"})


def test_l2_penalty_binds_to_the_model_and_to_references():
    from transferlab_objectives.losses import L2Penalty

    layer = nn.Linear(2, 2)
    penalty = build_objective("l2", "weight=0.5")
    penalty.setup(layer)
    expected = 0.5 * sum(p.pow(2).sum() for p in layer.parameters())
    assert torch.isclose(penalty(None, {}), expected)
    anchored = L2Penalty(3.0).bind(layer.parameters(), reference=list(layer.parameters()))
    assert float(anchored().detach()) == 0.0
    with torch.no_grad():
        layer.bias.add_(1.0)
    assert torch.isclose(anchored(), torch.tensor(3.0 * 2))


def test_cpu_runs_in_fp32_and_accelerator_state_can_change():
    assert resolve_precision("bf16", "cpu") == "no"
    assert make_accelerator("cpu", "auto").mixed_precision == "no"
    assert make_accelerator("cpu", "fp16").device.type == "cpu"
