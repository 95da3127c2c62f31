"""The shared training loop, its budget, schedule, data splits and objectives (tiny models).

torch, and the training modules that import it (``data``, ``loop``, ``schedule``,
``stopping``), are imported inside the tests so that collecting this file stays cheap.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from transferlab.api import Budget, Objective, RunContext, Split, Task
from transferlab.errors import DataError, IncompatibleError, ParamError
from transferlab.params import resolve_params
from transferlab.plugins import get_registries
from transferlab.training.accelerator import make_accelerator, resolve_precision
from transferlab.training.config import (
    PRECISIONS,
    TrainConfig,
    check_budget,
    check_positive,
    combine_budgets,
    training_params,
)
from transferlab.training.objectives import build_objective


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


class Indexed(Task):
    """A train split whose input ``i`` is the integer ``i``, with the given labels: which
    examples a carved split holds is then plain to see."""

    modality = "image"

    def __init__(self, labels) -> None:
        super().__init__("indexed")
        self.labels = np.asarray(labels)

    @property
    def label_names(self) -> list[str]:
        return [str(i) for i in range(int(self.labels.max()) + 1)]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        return Split(list(range(len(self.labels))), self.labels)


def _stack(items):
    import torch

    return torch.as_tensor(np.stack(items))


def _setup(seed=0, **cfg):
    import torch
    from torch import nn

    from transferlab.training.data import BatchSource
    from transferlab.training.schedule import decay_groups

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    task = Blobs()
    hparams = {"epochs": 3, "batch_size": 16, "patience": 0, **cfg}
    config = TrainConfig.from_hparams(hparams)
    groups = decay_groups(model.named_parameters(), 0.05, 0.0, "all")
    data = BatchSource(task.split("train"), _stack, config.batch_size)
    return model, data, groups, config


def _run(seed=0, objective=None, val=None, **cfg):
    from transferlab.training.loop import train

    model, data, groups, config = _setup(seed, **cfg)
    objective = objective or build_objective("cross-entropy")
    result = train(model, data, val, objective, groups, config, RunContext(seed, progress=False))
    return model, result


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_weights(model, snapshot) -> bool:
    import torch

    state = model.state_dict()
    return state.keys() == snapshot.keys() and all(
        torch.equal(state[k], v) for k, v in snapshot.items())


# -- budget and configuration (training/config.py) ------------------------------------------


def test_budgets_combine_to_the_tightest_and_non_positive_fails():
    merged = combine_budgets(Budget(epochs=10, steps=None), Budget(steps=5, seconds=2.0))
    assert (merged.epochs, merged.steps, merged.seconds) == (10, 5, 2.0)
    with pytest.raises(ParamError, match=r"run budget: steps=0 must be positive"):
        combine_budgets(Budget(epochs=3), Budget(steps=0))
    with pytest.raises(ParamError, match=r"seconds=-1 must be positive"):
        TrainConfig.from_hparams({"epochs": 2, "max_seconds": -1})
    with pytest.raises(ParamError, match="needs an epoch or step limit"):
        combine_budgets(Budget(), Budget(seconds=5))


@pytest.mark.parametrize(("own", "cap", "expected"), [
    (Budget(10, None, 5.0), Budget(None, 7, 2.0), Budget(10, 7, 2.0)),
    (Budget(3, 20, None), Budget(5, 10, None), Budget(3, 10, None)),
    (Budget(None, 4, None), Budget(), Budget(None, 4, None)),
    (Budget(None, None, 9.0), Budget(2, None, 30.0), Budget(2, None, 9.0)),
])
def test_combined_budget_takes_the_smaller_limit_field_by_field(own, cap, expected):
    """Catches _tightest returning the wrong side (max instead of min, or a None limit
    winning over a real one) and fields combined out of order."""
    assert combine_budgets(own, cap) == expected


@pytest.mark.parametrize(("budget", "message"), [
    (Budget(epochs=0), "training budget: epochs=0 must be positive (e.g. -p epochs=3)"),
    (Budget(epochs=2, steps=-1), "training budget: steps=-1 must be positive"
                                 " (e.g. -p max_steps=3)"),
    (Budget(epochs=2, seconds=0.0), "training budget: seconds=0.0 must be positive"
                                    " (e.g. -p max_seconds=3)"),
])
def test_non_positive_limits_fail_naming_the_field_and_its_flag(budget, message):
    """Catches a wrong field/flag pairing in the message and a check that lets 0 through."""
    with pytest.raises(ParamError) as excinfo:
        check_positive(budget)
    assert str(excinfo.value) == message


def test_budget_checks_pass_positive_limits_through_unchanged():
    """Catches a positivity check with an off-by-one threshold (rejecting 1 or 0.001) and a
    check that returns a copy or None instead of the budget it was given."""
    tight = Budget(epochs=1, steps=1, seconds=1e-3)
    assert check_positive(tight) is tight
    assert check_budget(tight) is tight
    steps_only = Budget(steps=1)
    assert check_budget(steps_only, "m") is steps_only
    epochs_only = Budget(epochs=1, seconds=0.5)
    assert check_budget(epochs_only) is epochs_only


def test_budget_without_an_end_fails_with_the_owner_and_the_fix():
    """Catches a schedule-end check that accepts a seconds-only budget or names the wrong
    owner."""
    with pytest.raises(ParamError) as excinfo:
        check_budget(Budget(seconds=10.0), "cell x")
    assert str(excinfo.value) == (
        "cell x: needs an epoch or step limit so the learning-rate schedule has an end;"
        " set -p epochs=N or -p max_steps=N")
    with pytest.raises(ParamError, match=r"^cell y: epochs=0 must be positive"):
        check_budget(Budget(epochs=0, steps=5), "cell y")  # positivity is checked too


def test_own_budget_is_checked_as_the_training_budget_and_the_cap_as_the_run_budget():
    """Catches combine_budgets skipping the check of its own limits or of the cap."""
    with pytest.raises(ParamError, match=r"^training budget: epochs=-1 must be positive"):
        combine_budgets(Budget(epochs=-1), Budget())
    with pytest.raises(ParamError, match=r"^run budget: seconds=0 must be positive"):
        combine_budgets(Budget(epochs=3), Budget(seconds=0))
    with pytest.raises(ParamError, match=r"^run budget: epochs=0 must be positive"):
        combine_budgets(Budget(epochs=3), Budget(epochs=0))


def test_train_config_defaults_when_hparams_leave_them_out():
    """Catches a changed fallback in TrainConfig.from_hparams or in the dataclass defaults."""
    config = TrainConfig.from_hparams({"epochs": 2})
    assert config == TrainConfig(budget=Budget(2, None, None))
    assert (config.batch_size, config.accumulate, config.warmup, config.grad_clip,
            config.patience, config.val_fraction, config.mixed_precision, config.betas) == (
        32, 1, 0.1, 1.0, 3, 0.15, "auto", (0.9, 0.999))


def test_train_config_reads_and_converts_every_hparam_and_applies_the_cap():
    """Catches a hparam read under the wrong key, a missing int/float/str conversion and a
    run budget cap that is ignored."""
    hparams = {"epochs": 5, "max_steps": 100, "max_seconds": 60.0, "batch_size": "8",
               "accumulate": "2", "warmup": "0.25", "grad_clip": "0.5", "patience": "4",
               "val_fraction": "0.3", "mixed_precision": "bf16"}
    config = TrainConfig.from_hparams(hparams, Budget(steps=10, seconds=90.0))
    assert config == TrainConfig(budget=Budget(5, 10, 60.0), batch_size=8, accumulate=2,
                                 warmup=0.25, grad_clip=0.5, patience=4, val_fraction=0.3,
                                 mixed_precision="bf16")
    assert [type(v) for v in (config.batch_size, config.accumulate, config.patience)] == [int] * 3
    assert [type(v) for v in (config.warmup, config.grad_clip, config.val_fraction)] == [
        float] * 3


def test_training_params_declare_exact_types_defaults_and_bounds():
    """Catches a changed default, type, bound, nullability or choice of the loop's shared
    parameters (what every method's `-p` accepts)."""
    declared = [(p.name, p.type, p.default, p.min, p.max, p.nullable, p.choices)
                for p in training_params()]
    assert declared == [
        ("epochs", int, 10, 1, None, False, None),
        ("max_steps", int, None, 1, None, True, None),
        ("max_seconds", float, None, 1e-3, None, True, None),
        ("batch_size", int, 32, 1, None, False, None),
        ("accumulate", int, 1, 1, None, False, None),
        ("lr", float, 1e-4, 0.0, None, False, None),
        ("head_lr", float, 1e-3, 0.0, None, False, None),
        ("weight_decay", float, 0.01, 0.0, None, False, None),
        ("warmup", float, 0.1, 0.0, 1.0, False, None),
        ("grad_clip", float, 1.0, 0.0, None, False, None),
        ("patience", int, 3, 0, None, False, None),
        ("val_fraction", float, 0.15, 0.0, 0.9, False, None),
        ("mixed_precision", str, "auto", None, None, False, ("auto", "no", "fp16", "bf16")),
        ("objective", str, "cross-entropy", None, None, False, None),
    ]
    assert PRECISIONS == ("auto", "no", "fp16", "bf16")
    custom = {p.name: p.default for p in training_params(lr=0.5, head_lr=0.25,
                                                          weight_decay=0.125, epochs=7)}
    assert (custom["lr"], custom["head_lr"], custom["weight_decay"], custom["epochs"]) == (
        0.5, 0.25, 0.125, 7)


def test_training_params_help_texts():
    """Catches an edited or garbled help line (shown by `transferlab list --json` and
    `transferlab run --help`)."""
    assert [p.help for p in training_params()] == [
        "training budget: passes over the training data",
        "training budget: optimizer steps (none = no limit)",
        "training budget: wall-clock seconds of training (none = no limit)",
        "examples per forward pass",
        "micro-batches per optimizer step (gradient accumulation)",
        "peak AdamW learning rate of the reused backbone weights",
        "peak learning rate of the new linear head",
        "AdamW decoupled weight decay (not applied to biases and norm weights)",
        "fraction of the steps spent in linear warm-up before cosine decay",
        "clip the global gradient norm (0 = off)",
        "epochs without validation improvement before stopping (0 = never stop early)",
        "share of train held out (stratified, seeded) for early stopping when the task has"
        " no val split (0 = no validation)",
        "auto = the backbone's precision (-B precision: bf16 where it measured faster, see"
        " docs/precision.md); no, bf16, or fp16 (GPUs only) override it",
        "training objective as a setting, NAME or NAME[key=value,...] (e.g."
        " cross-entropy[label_smoothing=0.1]; `transferlab list objectives`)",
    ]


@pytest.mark.parametrize(("key", "ok", "bad", "message"), [
    ("epochs", "1", "0", "epochs=0 must be >= 1"),
    ("max_steps", "1", "0", "max_steps=0 must be >= 1"),
    ("max_seconds", "0.001", "0.0009", "max_seconds=0.0009 must be >= 0.001"),
    ("batch_size", "1", "0", "batch_size=0 must be >= 1"),
    ("accumulate", "1", "0", "accumulate=0 must be >= 1"),
    ("lr", "0", "-0.1", "lr=-0.1 must be >= 0.0"),
    ("warmup", "1.0", "1.01", "warmup=1.01 must be <= 1.0"),
    ("patience", "0", "-1", "patience=-1 must be >= 0"),
    ("val_fraction", "0.9", "0.95", "val_fraction=0.95 must be <= 0.9"),
    ("mixed_precision", "fp16", "fp8", "mixed_precision='fp8' is not one of auto, no, fp16,"
                                       " bf16"),
])
def test_training_params_accept_their_limit_and_reject_just_past_it(key, ok, bad, message):
    """Catches a bound moved by one step (or dropped) on a shared training parameter."""
    declared = training_params()
    resolve_params(declared, {key: ok}, "m")  # the limit itself is accepted
    with pytest.raises(ParamError) as excinfo:
        resolve_params(declared, {key: bad}, "m")
    assert str(excinfo.value) == f"m: parameter {message}"


def test_step_and_seconds_budgets_may_be_none():
    """Catches max_steps / max_seconds losing ``nullable`` (then `-p max_steps=none`, the
    way to lift a suite's limit, fails)."""
    resolved = resolve_params(training_params(), {"max_steps": "none", "max_seconds": "null"},
                              "m")
    assert (resolved["max_steps"], resolved["max_seconds"]) == (None, None)
    with pytest.raises(ParamError, match="parameter epochs may not be empty"):
        resolve_params(training_params(), {"epochs": None}, "m")


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


# -- learning-rate schedule and optimizer groups (training/schedule.py) ---------------------


def test_warmup_then_cosine_decay():
    from transferlab.training.schedule import warmup_cosine

    factor = warmup_cosine(100, 10)
    values = [factor(s) for s in range(100)]
    assert values[0] < 0.1 < values[1] < values[9] < 1.0 == values[10]
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    assert values[-1] < 0.01
    assert warmup_cosine(1, 1)(0) == 1.0  # one step: no warm-up left to do


def test_warmup_cosine_exact_values_by_hand():
    """Catches any change to the warm-up ramp ((s+1)/(w+1)), the cosine (0.5*(1+cos(pi*p))),
    the progress denominator (total - warmup) or the clamp at the end (min(1, p))."""
    from transferlab.training.schedule import warmup_cosine

    factor = warmup_cosine(10, 4)
    assert [factor(s) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert factor(4) == 1.0  # peak: progress 0
    assert factor(5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 6)), abs=1e-12)
    assert factor(5) == pytest.approx(0.9330127018922193, abs=1e-12)
    assert factor(7) == pytest.approx(0.5, abs=1e-12)  # progress 3/6
    assert factor(8) == pytest.approx(0.25, abs=1e-12)  # progress 4/6: cos(2pi/3) = -1/2
    assert factor(10) == pytest.approx(0.0, abs=1e-12)
    assert factor(13) == pytest.approx(0.0, abs=1e-12)  # past the end: stays at 0


def test_warmup_cosine_clamps_its_arguments():
    """Catches losing the clamps: warm-up longer than the run (at most total-1 steps),
    negative warm-up (0), zero total steps (1) and a progress denominator below 1."""
    from transferlab.training.schedule import warmup_cosine

    long = warmup_cosine(5, 10)  # warm-up clamped to 4 steps
    assert [long(s) for s in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 0.0],
                                                        abs=1e-12)
    negative = warmup_cosine(4, -2)  # no warm-up
    assert [negative(s) for s in range(5)] == pytest.approx(
        [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)),
         0.0], abs=1e-12)
    empty = warmup_cosine(0, 3)  # treated as one step without warm-up
    assert (empty(0), empty(1)) == pytest.approx((1.0, 0.0), abs=1e-12)
    two = warmup_cosine(2, 1)
    assert (two(0), two(1), two(2)) == pytest.approx((0.5, 1.0, 0.0), abs=1e-12)
    assert warmup_cosine(3, 0)(0) == 1.0


def test_scheduler_scales_every_groups_own_peak_rate():
    """Catches a scheduler that ignores the warm-up fraction (round(warmup * total)), drops
    the cosine, or sets one rate for all groups instead of scaling each group's own."""
    import torch

    from transferlab.training.schedule import build_scheduler

    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "lr": 0.1},
                                 {"params": [weights[1]], "lr": 0.01}])
    scheduler = build_scheduler(optimizer, 10, 0.3)  # 3 warm-up steps, 7 of cosine
    rates = []
    for _ in range(11):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    expected = [0.25, 0.5, 0.75, *(0.5 * (1 + math.cos(math.pi * k / 7)) for k in range(8))]
    assert [r[0] for r in rates] == pytest.approx([0.1 * f for f in expected], abs=1e-12)
    assert [r[1] for r in rates] == pytest.approx([0.01 * f for f in expected], abs=1e-12)
    no_warmup = build_scheduler(torch.optim.SGD([weights[0]], lr=1.0), 4, 0.0)
    assert no_warmup.get_last_lr() == [1.0]


def test_decay_groups_split_by_dimension_and_skip_frozen():
    """Catches weight decay applied to biases/norm weights (the ndim >= 2 test), frozen
    parameters handed to the optimizer, wrong group names or rates, and empty groups kept."""
    from torch import nn

    from transferlab.training.schedule import decay_groups

    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    groups = decay_groups(model.named_parameters(), 0.5, 0.1, "body")
    assert [{k: v for k, v in g.items() if k != "params"} for g in groups] == [
        {"lr": 0.5, "weight_decay": 0.1, "name": "body"},
        {"lr": 0.5, "weight_decay": 0.0, "name": "body/no-decay"},
    ]
    assert [[id(p) for p in g["params"]] for g in groups] == [
        [id(model[0].weight)],
        [id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)],
    ]
    only_biases = decay_groups(((n, p) for n, p in model.named_parameters() if p.ndim == 1),
                               0.5, 0.1, "b")
    assert [g["name"] for g in only_biases] == ["b/no-decay"]
    only_matrix = decay_groups([("w", model[0].weight)], 0.5, 0.1, "w")
    assert [g["name"] for g in only_matrix] == ["w"]
    for param in model.parameters():
        param.requires_grad_(False)
    assert decay_groups(model.named_parameters(), 0.5, 0.1, "none") == []


def test_optimizer_keeps_group_settings_and_refuses_nothing_to_train():
    """Catches build_optimizer dropping the betas or the per-group rates, and training that
    starts (and silently does nothing) when every parameter is frozen."""
    import torch

    from transferlab.training.schedule import build_optimizer

    a, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    groups = [{"params": [a], "lr": 0.5, "weight_decay": 0.1, "name": "x"},
              {"params": [b], "lr": 0.25, "weight_decay": 0.0, "name": "x/no-decay"}]
    optimizer = build_optimizer(groups, (0.8, 0.9))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.8, 0.9)
    assert [(g["lr"], g["weight_decay"], g["name"]) for g in optimizer.param_groups] == [
        (0.5, 0.1, "x"), (0.25, 0.0, "x/no-decay")]
    message = ("nothing to train: every parameter is frozen; train more layers (e.g. a smaller"
               " freeze k)")
    for empty in ([], [{"params": [], "lr": 0.1}]):
        with pytest.raises(IncompatibleError) as excinfo:
            build_optimizer(empty, (0.9, 0.999))
        assert str(excinfo.value) == message
    assert len(build_optimizer([{"params": []}, {"params": [b]}], (0.9, 0.99)).param_groups) == 2


# -- validation split and batches (training/data.py) ----------------------------------------


def test_val_split_is_the_tasks_or_carved_stratified_and_seeded():
    from transferlab.training.data import train_val_splits

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


def test_tasks_own_val_split_is_used_as_is():
    """Catches carving from train even though the task has its own val split."""
    from transferlab.training.data import train_val_splits

    task = Blobs(with_val=True)
    train_split, val = train_val_splits(task, 0.5, seed=3)
    assert train_split is task.split("train") and val is task.split("val")
    plain = Blobs()
    for fraction in (0.0, -0.1):
        train_split, val = train_val_splits(plain, fraction, seed=0)
        assert train_split is plain.split("train") and val is None


def test_carved_val_split_is_exact_disjoint_sorted_stratified_and_seeded():
    """Catches a carve that is not sklearn's stratified split with ``random_state=seed``
    (or not stratified at all), overlapping or lost examples, unsorted indices, labels that
    no longer match their inputs, and a size that is not round(n * fraction)."""
    from sklearn.model_selection import train_test_split

    from transferlab.training.data import train_val_splits

    labels = np.array([0] * 40 + [1] * 30 + [2] * 20)
    task = Indexed(labels)
    train_split, val = train_val_splits(task, 0.15, seed=7)
    assert (len(train_split), len(val)) == (76, 14)  # round(13.5) = 14
    train_idx, val_idx = train_test_split(np.arange(90), test_size=14, stratify=labels,
                                          random_state=7)
    assert val.inputs == sorted(val_idx.tolist())
    assert train_split.inputs == sorted(train_idx.tolist())
    assert set(val.inputs).isdisjoint(train_split.inputs)
    assert sorted(val.inputs + train_split.inputs) == list(range(90))
    assert val.labels.tolist() == labels[val.inputs].tolist()
    assert train_split.labels.tolist() == labels[train_split.inputs].tolist()
    assert np.bincount(val.labels).tolist() == [6, 5, 3]  # stratified: 40:30:20
    assert train_val_splits(Indexed(labels), 0.15, seed=7)[1].inputs == val.inputs
    assert train_val_splits(Indexed(labels), 0.15, seed=8)[1].inputs != val.inputs


def test_carve_seed_is_reduced_modulo_2_to_the_32():
    """Catches passing a seed of 2**32 or more (or a negative one) straight to sklearn, which
    only accepts 0 <= random_state < 2**32."""
    from transferlab.training.data import train_val_splits

    labels = np.arange(60) % 3
    base = train_val_splits(Indexed(labels), 0.2, seed=5)[1].inputs
    assert train_val_splits(Indexed(labels), 0.2, seed=2**32 + 5)[1].inputs == base
    top = train_val_splits(Indexed(labels), 0.2, seed=2**32 - 1)[1].inputs
    assert train_val_splits(Indexed(labels), 0.2, seed=-1)[1].inputs == top


def test_carve_needs_one_example_per_class_on_each_side():
    """Catches an off-by-one in the 'too small to spare one example per class' check, on the
    val side (n_val < classes) and on the train side (n - n_val < classes)."""
    from transferlab.training.data import train_val_splits

    nine = np.arange(9) % 3
    train_split, val = train_val_splits(Indexed(nine), 1 / 3, seed=0)  # 3 val == 3 classes
    assert sorted(val.labels.tolist()) == [0, 1, 2] and len(train_split) == 6
    assert train_val_splits(Indexed(nine), 0.2, seed=0)[1] is None  # round(1.8)=2 < 3
    train_split, val = train_val_splits(Indexed(nine), 0.6667, seed=0)  # 6 val, 3 train
    assert sorted(train_split.labels.tolist()) == [0, 1, 2] and len(val) == 6
    assert train_val_splits(Indexed(nine), 0.75, seed=0)[1] is None  # 7 val leaves 2 < 3
    gap = np.array([0, 2] * 5)  # class 1 absent: 2 classes present, not 3
    train_split, val = train_val_splits(Indexed(gap), 0.2, seed=0)
    assert sorted(val.labels.tolist()) == [0, 2] and len(train_split) == 8


def test_carve_without_stratification_when_a_class_has_one_example():
    """Catches stratifying with a singleton class (sklearn refuses: 'least populated class')
    and, at exactly two members per class, not stratifying."""
    from sklearn.model_selection import train_test_split

    from transferlab.training.data import train_val_splits

    labels = np.array([0] * 10 + [1] * 10 + [2])
    train_split, val = train_val_splits(Indexed(labels), 0.2, seed=1)
    assert (len(train_split), len(val)) == (17, 4)
    expected = train_test_split(np.arange(21), test_size=4, stratify=None, random_state=1)[1]
    assert val.inputs == sorted(expected.tolist())
    pairs = np.array([0] * 2 + [1] * 10 + [2] * 8)
    val = train_val_splits(Indexed(pairs), 0.25, seed=2)[1]
    expected = train_test_split(np.arange(20), test_size=5, stratify=pairs, random_state=2)[1]
    assert val.inputs == sorted(expected.tolist())


def test_batches_are_cached_tensors_and_skip_a_singleton():
    from transferlab.training.data import BatchSource, count_batches

    data = BatchSource(Blobs(n=33).split("train"), _stack, 16)
    assert data._cache is not None and data._cache.shape == (33, 4)
    assert count_batches(33, 16) == 3 and count_batches(33, 16, drop_singleton=True) == 2
    assert count_batches(1, 16, drop_singleton=True) == 1
    sizes = [len(y) for _, y in data.batches(np.arange(33), drop_singleton=True)]
    assert sizes == [16, 16]


@pytest.mark.parametrize(("n", "size", "drop", "expected"), [
    (0, 16, False, 0), (16, 16, False, 1), (17, 16, False, 2), (32, 16, True, 2),
    (33, 16, False, 3), (33, 16, True, 2), (34, 16, True, 3), (17, 16, True, 1),
    (1, 16, True, 1), (1, 1, True, 1), (5, 2, True, 2), (5, 2, False, 3),
])
def test_count_batches_exact(n, size, drop, expected):
    """Catches ceil-division errors and dropping a final batch that is not a singleton (or
    the only batch there is)."""
    from transferlab.training.data import count_batches

    assert count_batches(n, size, drop) == expected


def test_batch_source_yields_the_requested_order_with_labels():
    """Catches batches that ignore ``order``, mismatch inputs and labels, or re-run
    preprocessing on every batch although the split was cached once."""
    import torch

    from transferlab.training.data import BatchSource

    split = Blobs(n=10).split("train")
    calls = []

    def preprocess(items):
        calls.append(len(items))
        return _stack(items)

    data = BatchSource(split, preprocess, 4)
    assert calls == [4, 4, 2] and len(data) == 10
    assert (data.num_batches(), data.num_batches(5), data.num_batches(9, drop_singleton=True)) \
        == (3, 2, 2)
    order = np.array([9, 0, 5, 3, 1, 2, 8, 7, 6, 4])
    batches = list(data.batches(order))
    assert calls == [4, 4, 2]
    assert [len(y) for _, y in batches] == [4, 4, 2]
    inputs = torch.cat([x for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(inputs, torch.as_tensor(np.stack([split.inputs[i] for i in order])))
    assert labels.dtype == torch.long and labels.tolist() == split.labels[order].tolist()
    default = torch.cat([y for _, y in data.batches()])
    assert default.tolist() == split.labels.tolist()
    part = list(data.batches(np.array([3, 1])))  # a partial order: one batch of two
    assert len(part) == 1 and part[0][1].tolist() == split.labels[[3, 1]].tolist()


def test_batch_source_keeps_a_final_singleton_unless_asked():
    """Catches the last example of an epoch dropped by default (only training, with batch
    norm, asks to drop a final batch of one; evaluation must see every example)."""
    from transferlab.training.data import BatchSource

    data = BatchSource(Blobs(n=9).split("train"), _stack, 4)
    assert [len(y) for _, y in data.batches()] == [4, 4, 1]
    assert [len(y) for _, y in data.batches(drop_singleton=True)] == [4, 4]


def test_batch_source_preprocesses_per_batch_when_it_cannot_cache():
    """Catches caching preprocessing output that is not a tensor (tokenised text dicts),
    that has the wrong batch dimension, or that is over the memory limit."""
    import torch

    from transferlab.training.data import BatchSource

    split = Blobs(n=6).split("train")
    calls = []

    def as_dict(items):
        calls.append(len(items))
        return {"x": _stack(items)}

    data = BatchSource(split, as_dict, 4)
    assert data._cache is None and calls == [4]
    batches = list(data.batches(np.array([5, 4, 3, 2, 1, 0])))
    assert calls == [4, 4, 2]
    assert torch.equal(batches[1][0]["x"], _stack([split.inputs[1], split.inputs[0]]))
    one_row = BatchSource(split, lambda items: torch.zeros(1, 4), 4)
    assert one_row._cache is None
    nbytes = 6 * 4 * 4  # six float32 4-vectors
    assert BatchSource(split, _stack, 4, cache_limit_mb=nbytes / 2**20)._cache is not None
    assert BatchSource(split, _stack, 4, cache_limit_mb=(nbytes - 1) / 2**20)._cache is None
    assert BatchSource(split, _stack, 10)._cache.shape == (6, 4)  # one batch holds them all
    single = BatchSource(Split([np.zeros(4, np.float32)], [0]), _stack, 4)
    assert single._cache.shape == (1, 4)  # sized from its one example


def test_batch_source_refuses_an_empty_split():
    """Catches an empty split reaching the loop (0 steps, a schedule of length 0)."""
    from transferlab.training.data import BatchSource

    with pytest.raises(DataError) as excinfo:
        BatchSource(Split([], []), _stack, 4)
    assert str(excinfo.value) == "cannot train on an empty split; add examples to it"


def test_channels_last_images_stay_channels_last():
    """Catches cached image batches losing (or wrongly gaining) the channels-last layout the
    backbone's preprocessing chose."""
    import torch

    from transferlab.training.data import BatchSource

    images = Split([np.full((3, 2, 2), i, np.float32) for i in range(5)], np.zeros(5))

    def channels_last(items):
        return _stack(items).contiguous(memory_format=torch.channels_last)

    data = BatchSource(images, channels_last, 2)
    assert data._channels_last
    batch = next(data.batches(np.array([4, 1])))[0]
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert batch[:, 0, 0, 0].tolist() == [4.0, 1.0]
    plain = BatchSource(images, _stack, 2)
    assert not plain._channels_last
    assert not next(plain.batches())[0].is_contiguous(memory_format=torch.channels_last)
    vectors = BatchSource(Blobs(n=4).split("train"), _stack, 2)
    assert not vectors._channels_last


def test_shuffled_order_depends_only_on_seed_and_epoch():
    """Catches an epoch order that ignores the epoch or the seed, or is not a permutation."""
    from transferlab.training.data import shuffled

    order = shuffled(50, 3, 2)
    assert sorted(order.tolist()) == list(range(50))
    assert order.tolist() == np.random.default_rng([3, 7919, 2]).permutation(50).tolist()
    assert order.tolist() == shuffled(50, 3, 2).tolist()
    assert order.tolist() != shuffled(50, 3, 1).tolist()
    assert order.tolist() != shuffled(50, 4, 2).tolist()


def test_to_device_moves_tensors_mappings_and_objects():
    """Catches nested mappings left on the host, objects with ``.to`` (BatchEncoding) not
    moved, and other values not passed through unchanged."""
    import torch

    from transferlab.training.data import to_device

    class Movable:
        def __init__(self):
            self.moved_to = None

        def to(self, device):
            self.moved_to = device
            return ("moved", device)

    tensor = torch.ones(2)
    assert torch.equal(to_device(tensor, "cpu"), tensor)
    assert to_device(tensor, "meta").device.type == "meta"
    assert to_device(tensor, "meta", non_blocking=True).device.type == "meta"
    nested = to_device({"a": tensor, "b": {"c": tensor}, "d": Movable(), "e": "text"}, "meta")
    assert nested["a"].device.type == "meta" and nested["b"]["c"].device.type == "meta"
    assert nested["d"] == ("moved", "meta") and nested["e"] == "text"
    items = [1, 2]
    assert to_device(items, "meta") is items


def test_to_device_passes_non_blocking_through():
    """Catches non_blocking dropped (host-to-GPU copies from pinned memory then block), at
    the top level or inside a mapping; the default is a blocking copy."""
    import torch

    from transferlab.training.data import to_device

    calls = []

    class Recording(torch.Tensor):
        def to(self, *args, **kwargs):
            calls.append(kwargs.get("non_blocking"))
            return self

    tensor = torch.ones(2).as_subclass(Recording)
    to_device(tensor, "cpu")
    to_device(tensor, "cpu", non_blocking=True)
    to_device({"a": {"b": tensor}}, "cpu", non_blocking=True)
    assert calls == [False, True, True]


# -- early stopping (training/stopping.py) --------------------------------------------------


def _bn_model():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _train_a_little(model):
    """What an optimizer step and a training forward pass do: change parameters in place
    and update batch-norm running statistics in place."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.5)
    model.train()
    model(torch.randn(8, 3))


def test_restore_puts_back_exactly_the_best_epochs_tensors():
    """Catches a snapshot that aliases the live weights (detach without clone: in-place
    optimizer steps then rewrite the 'best' copy) and a restore that copies nothing back."""
    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    _train_a_little(model)
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1, 0.5, 1.0, model) is False
    best = _snapshot(model)
    _train_a_little(model)
    assert stopper.update(2, 0.4, 1.0, model) is False
    assert not _same_weights(model, best)  # training moved every tensor
    assert stopper.restore(model) is True
    assert _same_weights(model, best)


def test_restore_covers_buffers_and_skips_frozen_parameters():
    """Catches batch-norm running statistics left at the last epoch's values, and frozen
    parameters copied every epoch (and written back) although training cannot change them."""
    import torch

    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    model[0].weight.requires_grad_(False)
    stopper = EarlyStopping(patience=0)
    stopper.update(1, 0.5, 1.0, model)
    assert sorted(stopper._state) == sorted(
        ["0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
         "1.num_batches_tracked", "2.weight", "2.bias"])
    best = _snapshot(model)
    _train_a_little(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)  # changed outside training: restore must leave it alone
    frozen = model[0].weight.detach().clone()
    assert not torch.equal(model[1].running_mean, best["1.running_mean"])
    stopper.restore(model)
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked", "0.bias",
                "2.weight"):
        assert torch.equal(model.state_dict()[key], best[key]), key
    assert torch.equal(model[0].weight, frozen)


def test_a_later_better_epoch_replaces_the_snapshot_and_a_tie_does_not():
    """Catches a snapshot taken only once (first epoch), and a tie in accuracy and loss that
    replaces the best epoch."""
    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    stopper = EarlyStopping(patience=0)
    stopper.update(1, 0.5, 1.0, model)
    _train_a_little(model)
    stopper.update(2, 0.6, 1.0, model)
    second = _snapshot(model)
    _train_a_little(model)
    assert stopper.update(3, 0.6, 1.0, model) is False  # a tie is not better
    assert (stopper.best_epoch, stopper.bad_epochs, stopper.best) == (2, 1, (0.6, -1.0))
    stopper.restore(model)
    assert _same_weights(model, second)


def test_patience_counts_bad_epochs_exactly():
    """Catches stopping one epoch early or late (< vs <=), a bad-epoch count that a better
    epoch does not reset, and patience=0 stopping instead of never stopping."""
    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1, 0.5, 1.0, model) is False
    assert stopper.update(2, 0.4, 1.0, model) is False
    assert stopper.bad_epochs == 1
    assert stopper.update(3, 0.4, 1.0, model) is True
    assert stopper.bad_epochs == 2 and stopper.best_epoch == 1

    resets = EarlyStopping(patience=2)
    assert [resets.update(e, acc, 1.0, model) for e, acc in enumerate(
        [0.5, 0.4, 0.6, 0.4, 0.3], start=1)] == [False, False, False, False, True]
    assert (resets.best_epoch, resets.bad_epochs) == (3, 2)

    one = EarlyStopping(patience=1)
    assert [one.update(e, 0.5, 1.0, model) for e in (1, 2)] == [False, True]

    never = EarlyStopping(patience=0)
    assert not any(never.update(e, 0.9 if e == 1 else 0.1, 1.0, model) for e in range(1, 12))
    assert (never.best_epoch, never.bad_epochs, never.best) == (1, 10, (0.9, -1.0))


def test_score_is_accuracy_first_then_lower_loss():
    """Catches loss compared the wrong way round (higher loss counted as better), loss
    ignored at equal accuracy, and loss outranking accuracy."""
    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    stopper = EarlyStopping(patience=5)
    stopper.update(1, 0.5, 1.0, model)
    stopper.update(2, 0.5, 0.9, model)  # same accuracy, lower loss: better
    assert (stopper.best_epoch, stopper.bad_epochs, stopper.best) == (2, 0, (0.5, -0.9))
    stopper.update(3, 0.5, 0.95, model)  # same accuracy, higher loss: worse
    assert (stopper.best_epoch, stopper.bad_epochs) == (2, 1)
    stopper.update(4, 0.6, 5.0, model)  # higher accuracy wins despite a higher loss
    assert (stopper.best_epoch, stopper.bad_epochs, stopper.best) == (4, 0, (0.6, -5.0))
    stopper.update(5, 0.55, 0.1, model)  # lower accuracy loses despite a lower loss
    assert (stopper.best_epoch, stopper.bad_epochs) == (4, 1)


def test_restore_without_a_recorded_epoch_changes_nothing():
    """Catches restore() reporting success (and the loop claiming a best epoch) when no
    epoch was ever recorded."""
    from transferlab.training.stopping import EarlyStopping

    model = _bn_model()
    before = _snapshot(model)
    stopper = EarlyStopping(patience=3)
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs) == (None, -1, 0)
    assert stopper.restore(model) is False
    assert _same_weights(model, before)


# -- the loop (training/loop.py) ------------------------------------------------------------


def test_loop_learns_respects_step_budget_and_is_deterministic():
    import torch

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


def _recording_stopper(monkeypatch):
    """Make the loop's EarlyStopping record a copy of the weights after every epoch."""
    import transferlab.training.loop as loop
    from transferlab.training.stopping import EarlyStopping

    snapshots: dict[int, dict] = {}

    class Recording(EarlyStopping):
        def update(self, epoch, accuracy, loss, model):
            snapshots[epoch] = _snapshot(model)
            return super().update(epoch, accuracy, loss, model)

    monkeypatch.setattr(loop, "EarlyStopping", Recording)
    return snapshots


def test_early_stopping_restores_the_best_epoch(monkeypatch):
    """Catches a loop that keeps the last epoch's weights instead of the best epoch's (the
    weights after training are compared with a copy taken at the best epoch)."""
    from transferlab.training.data import BatchSource

    snapshots = _recording_stopper(monkeypatch)
    task = Blobs(with_val=True)
    val = BatchSource(task.split("val"), _stack, 32)
    model, result = _run(val=val, epochs=30, patience=2)
    assert result.stop_reason in {"early-stopping", "epochs"}
    assert result.best_epoch is not None and result.val_accuracy > 0.9
    best = result.history[result.best_epoch - 1]["val_accuracy"]
    assert best == max(h["val_accuracy"] for h in result.history)
    assert _same_weights(model, snapshots[result.best_epoch])


def test_loop_stops_after_patience_and_restores_an_earlier_best_epoch(monkeypatch):
    """Catches a loop that does not stop after ``patience`` bad epochs, reports the wrong
    best epoch or accuracy, or ends with the last epoch's weights (scripted validation
    scores: best at epoch 2, then two worse epochs)."""
    import transferlab.training.loop as loop
    from transferlab.training.data import BatchSource

    snapshots = _recording_stopper(monkeypatch)
    scores = iter([(0.5, 1.0), (0.9, 0.5), (0.8, 0.4), (0.7, 0.3)])
    monkeypatch.setattr(loop, "evaluate", lambda model, data, device: next(scores))
    val = BatchSource(Blobs(n=6, with_val=True).split("val"), _stack, 32)
    model, result = _run(val=val, epochs=30, patience=2)
    assert (result.stop_reason, result.epochs, result.best_epoch, result.val_accuracy) == (
        "early-stopping", 4, 2, 0.9)
    assert [h["val_accuracy"] for h in result.history] == [0.5, 0.9, 0.8, 0.7]
    assert not _same_weights(model, snapshots[4])  # training went on after epoch 2
    assert _same_weights(model, snapshots[2])


def test_keyboard_interrupt_propagates_out_of_the_loop():
    from torch import nn

    calls = []

    class Interrupting(Objective):
        def __call__(self, outputs, batch):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return nn.functional.cross_entropy(outputs, batch["labels"])

    with pytest.raises(KeyboardInterrupt):
        _run(objective=Interrupting(), epochs=5)
    assert len(calls) == 3


def test_frozen_batch_norm_keeps_its_statistics():
    from torch import nn

    from transferlab.training.loop import set_train_mode

    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.BatchNorm1d(8))
    model[1].weight.requires_grad_(False)
    set_train_mode(model)
    assert model.training and not model[1].training and model[2].training


# -- objectives and devices -----------------------------------------------------------------


def test_objectives_come_from_the_hook_and_compose():
    import torch
    from torch import nn

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    batch = {"labels": torch.tensor([0, 2])}
    plain = build_objective("cross-entropy")(logits, batch)
    assert torch.isclose(plain, nn.functional.cross_entropy(logits, batch["labels"]))
    smooth = build_objective("cross-entropy[label_smoothing=0.2]")(logits, batch)
    assert not torch.isclose(smooth, plain)
    same = build_objective({"name": "cross-entropy", "label_smoothing": 0.2})(logits, batch)
    assert torch.isclose(same, smooth)  # a TOML inline table is the same setting
    total = build_objective("weighted-sum[terms=cross-entropy:2+cross-entropy:0.5]")
    assert torch.isclose(total(logits, batch), 2.5 * plain)
    with pytest.raises(ParamError, match="is not NAME:WEIGHT"):
        build_objective("weighted-sum[terms=cross-entropy:x]")


def test_l2_penalty_binds_to_the_model_and_to_references():
    import torch
    from torch import nn

    from transferlab_objectives.losses import L2Penalty

    layer = nn.Linear(2, 2)
    penalty = build_objective("l2[weight=0.5]")
    penalty.setup(layer)
    expected = 0.5 * sum(p.pow(2).sum() for p in layer.parameters())
    assert torch.isclose(penalty(None, {}), expected)
    anchored = L2Penalty(3.0).bind(layer.parameters(), reference=list(layer.parameters()))
    assert float(anchored().detach()) == 0.0
    with torch.no_grad():
        layer.bias.add_(1.0)
    assert torch.isclose(anchored(), torch.tensor(3.0 * 2))


def test_cpu_precision_and_accelerator_state_can_change():
    """On a CPU, ``auto`` (no backbone decided) is fp32, bf16 is honoured (a backbone whose
    bf16 training measured faster asks for it) and fp16 is refused; the process-wide
    Accelerate state follows each cell's choice."""
    assert resolve_precision("auto", "cpu") == "no"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert make_accelerator("cpu", "auto").mixed_precision == "no"
    assert make_accelerator("cpu", "bf16").mixed_precision == "bf16"
    assert make_accelerator("cpu", "no").mixed_precision == "no"
    with pytest.raises(ParamError, match="fp16 runs on GPUs only"):
        make_accelerator("cpu", "fp16")


# --- carve_validation: the indices and provenance methods with cached features rely on ------


def test_carve_validation_with_the_tasks_own_val_split_reports_where_it_came_from():
    """Catches the indices or the provenance word of the task's own ``val`` split dropped
    (LP-FT reads ``train_indices`` to pick the cached feature rows it probes on)."""
    from transferlab.training.data import carve_validation

    data = carve_validation(Blobs(n=30, with_val=True), 0.5, seed=0)
    np.testing.assert_array_equal(data.train_indices, np.arange(30))
    np.testing.assert_array_equal(data.val_indices, np.arange(30))
    assert data.val_from == "val" and len(data.train) == 30


def test_carve_validation_without_validation_keeps_every_training_index():
    """Catches ``train_indices`` dropped when no validation is carved (off, or too small)."""
    from transferlab.training.data import carve_validation

    for task, fraction in ((Indexed([0, 1] * 10), 0.0), (Indexed([0, 1, 2]), 0.5)):
        data = carve_validation(task, fraction, seed=0)
        assert data.val is None and data.val_indices is None and data.val_from is None
        np.testing.assert_array_equal(data.train_indices, np.arange(len(task.labels)))
        assert data.train.inputs == list(range(len(task.labels)))


def test_carve_validation_carved_split_partitions_train_and_says_so():
    """Catches carved indices or the provenance word ``train`` dropped, and indices that do
    not match the examples actually moved to validation."""
    from transferlab.training.data import carve_validation

    data = carve_validation(Indexed([0, 1] * 20), 0.25, seed=1)
    assert data.val_from == "train"
    assert sorted([*data.train_indices, *data.val_indices]) == list(range(40))
    assert data.val.inputs == list(data.val_indices)
    assert data.train.inputs == list(data.train_indices)


def test_a_singleton_class_counts_as_present_when_sizing_the_validation_split():
    """Ten examples of three classes, one of them a singleton: two validation examples
    cannot cover three classes, so no validation is carved. Catches a class with one
    example not counted as present (the carve would then go ahead)."""
    from transferlab.training.data import carve_validation

    data = carve_validation(Indexed([0] * 5 + [1] * 4 + [2]), 0.2, seed=0)
    assert data.val is None and len(data.train_indices) == 10


def test_the_objective_setting_is_checked_against_the_objectives_registry():
    """Catches the ``objective`` parameter not declared as naming an objective (its
    ``refers_to``): a misspelt objective would then pass validation and fail mid-fit, and two
    spellings of one objective would make two cell keys."""
    from transferlab.errors import TransferlabError
    from transferlab.settings import validate_settings
    from transferlab.training.config import training_params

    declared = training_params()
    registries = get_registries()
    spelled = validate_settings(declared, {"objective": "cross-entropy[label_smoothing=0.0]"},
                                registries, "finetune")
    assert spelled["objective"] == "cross-entropy"
    with pytest.raises(TransferlabError, match="crossentropy"):
        validate_settings(declared, {"objective": "crossentropy"}, registries, "finetune")


def test_batch_source_hands_out_int64_labels_whatever_the_split_stores():
    """Catches labels kept in the split's own dtype (int32 from some loaders, uint8 from
    image folders): cross-entropy refuses anything but int64 class indices."""
    import torch

    from transferlab.training.data import BatchSource

    split = Split([np.zeros(4, np.float32)] * 5, np.array([0, 1, 2, 0, 1], dtype=np.int32))
    source = BatchSource(split, lambda xs: torch.as_tensor(np.stack(xs)), batch_size=2)
    labels = [y for _, y in source.batches()]
    assert all(y.dtype == torch.int64 for y in labels)
    assert torch.cat(labels).tolist() == [0, 1, 2, 0, 1]


# -- per-example extras (BatchSource extras, e.g. a teacher's outputs for distillation) ---------


def test_batch_source_extras_stay_with_their_examples_in_any_order():
    """Each extra's rows must belong to the batch's examples, in the batch's order, for a
    shuffled order too. Catches extras indexed by batch position instead of by example
    (``extras[start:stop]``), extras left in the stored order while inputs are shuffled, and
    ``with_extras`` preprocessing the split again or dropping the extras it had."""
    import torch

    from transferlab.training import BatchSource

    split = Blobs(n=10).split("train")
    calls = []

    def preprocess(items):
        calls.append(len(items))
        return _stack(items)

    rows = torch.arange(10, dtype=torch.float64) * 10
    data = BatchSource(split, preprocess, 4, extras={"row": rows})
    sums = np.stack(split.inputs).sum(axis=1)
    data = data.with_extras({"sum": sums})  # a numpy array becomes a tensor
    assert calls == [4, 4, 2] and set(data.extras) == {"row", "sum"}
    order = np.array([7, 2, 9, 0, 4, 1, 8, 3, 6, 5])
    seen = []
    for batch in data.objective_batches(order):
        assert set(batch) == {"inputs", "labels", "row", "sum"}
        index = (batch["row"] / 10).long().numpy()
        seen.extend(index.tolist())
        np.testing.assert_allclose(batch["inputs"].sum(dim=1).numpy(), batch["sum"].numpy(),
                                   rtol=1e-6)
        assert batch["labels"].tolist() == split.labels[index].tolist()
    assert seen == order.tolist() and calls == [4, 4, 2]
    kept = [len(b["labels"]) for b in data.objective_batches(np.arange(9), drop_singleton=True)]
    assert kept == [4, 4]


def test_batch_source_refuses_extras_that_cannot_line_up():
    """Catches an extra with a row count other than the split's (it would be silently
    misindexed or fail mid-epoch) and an extra that would overwrite inputs or labels."""
    import torch

    from transferlab.training import BatchSource

    data = BatchSource(Blobs(n=6).split("train"), _stack, 4)
    assert data.extras == {}
    with pytest.raises(DataError, match=r"has shape \(5, 2\) but the split has 6 examples"):
        data.with_extras({"teacher": torch.zeros(5, 2)})
    with pytest.raises(DataError, match="would replace the batch's own 'labels'"):
        BatchSource(Blobs(n=6).split("train"), _stack, 4, extras={"labels": torch.zeros(6)})
    with pytest.raises(DataError, match="has shape"):
        data.with_extras({"scalar": torch.tensor(1.0)})


def test_the_loop_hands_the_objective_each_examples_own_extras():
    """Over shuffled epochs, every batch the objective sees carries, under ``teacher``, the
    rows of exactly its examples (here a per-example value computed from the inputs), and
    inputs and labels still work as before. Catches the loop dropping the extras, or pairing
    them with another epoch's or another batch's order."""
    import torch

    from transferlab.training.loop import train

    model, data, groups, config = _setup(epochs=3)
    inputs = torch.as_tensor(np.stack(Blobs().split("train").inputs))
    data = data.with_extras({"teacher": inputs.sum(dim=1, keepdim=True) * 2})
    checked = []

    class Checking(Objective):
        name = "checking"

        def __call__(self, outputs, batch):
            expected = batch["inputs"].sum(dim=1, keepdim=True) * 2
            checked.append(bool(torch.allclose(batch["teacher"], expected)))
            return torch.nn.functional.cross_entropy(outputs, batch["labels"])

    result = train(model, data, None, Checking(), groups, config,
                   RunContext(seed=3, progress=False))
    assert result.epochs == 3 and len(checked) == result.steps and all(checked)
