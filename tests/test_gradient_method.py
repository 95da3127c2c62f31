"""GradientMethod's defaults that a subclass relies on without overriding them: the head's
optimizer groups, the predictor it returns, and the error for a missing ``configure``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fakes import small_digits
from transferlab.api import RunContext
from transferlab.plugins import PluginHost

torch = pytest.importorskip("torch")

TINY = "timm:test_efficientnet@random"
FAST = {"max_steps": 2, "batch_size": 24, "val_fraction": 0.0}


def test_a_method_without_configure_says_which_class_must_implement_it(registries):
    """Bug caught: the error lost the class name, leaving a plugin author to guess which of
    their methods is incomplete."""
    from transferlab.training import GradientMethod

    class Incomplete(GradientMethod):
        name = "incomplete"

    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries)
    with pytest.raises(NotImplementedError, match=r"^Incomplete must implement configure\(\)$"):
        Incomplete(**FAST).fit(backbone, small_digits(40, 10), ctx)


def test_head_groups_are_named_head_and_follow_the_stage_overrides(registries):
    """Bug caught: the head's groups named otherwise (logs, per-group learning-rate records
    and schedules key on "head"), or a stage's head_lr override ignored."""
    from transferlab.training import Stage

    method = registries.methods.create("finetune", {"head_lr": 0.01, "weight_decay": 0.1})
    head = torch.nn.Linear(3, 2)
    model = SimpleNamespace(head=head)
    groups = method.head_groups(model, SimpleNamespace(stage=Stage()))
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("head", 0.01, 0.1), ("head/no-decay", 0.01, 0.0)]
    assert groups[0]["params"] == [head.weight] and groups[1]["params"] == [head.bias]
    staged = method.head_groups(model, SimpleNamespace(stage=Stage("x", {"head_lr": 0.5})))
    assert [g["lr"] for g in staged] == [0.5, 0.5]


def test_the_predictor_carries_the_method_name_and_its_structure(registries):
    """Bug caught: a predictor saved without the method's name or structure (LoRA's rank and
    targets) cannot be rebuilt on load."""
    task = small_digits(40, 10)
    ctx = RunContext(seed=0, progress=False, registries=registries)
    method = registries.methods.create("lora", {**FAST, "r": 2})
    predictor = method.fit(registries.backbones.create(TINY, {"img_size": 32}), task, ctx)
    assert predictor.method == "lora"
    assert predictor.structure == method.structure() and predictor.structure


def test_the_predictor_records_how_many_examples_trained_and_validated(registries):
    """Bug caught: train_size / val_size missing, swapped or off by one in the stored cell
    (they say how much data a score came from), or a one-stage fit reported as staged."""
    from transferlab.training import carve_validation

    task = small_digits(40, 10)
    ctx = RunContext(seed=0, progress=False, registries=registries)

    def fit(val_fraction):
        method = registries.methods.create("finetune", {**FAST, "val_fraction": val_fraction})
        return method.fit(registries.backbones.create(TINY, {"img_size": 32}), task, ctx)

    whole = fit(0.0)
    assert (whole.extra["train_size"], whole.extra["val_size"]) == (40, 0)
    assert "stages" not in whole.extra
    carved = carve_validation(task, 0.25, seed=0)
    split = fit(0.25)
    assert (split.extra["train_size"], split.extra["val_size"]) == (
        len(carved.train), len(carved.val))
    assert len(carved.val) > 1 and len(carved.train) + len(carved.val) == 40


class _Recorder:
    """What the fit sequence handed a method's hooks."""

    def __init__(self):
        self.seen = {}


def _recording_method(recorder):
    from transferlab.training import Callback, GradientMethod
    from transferlab.training.schedule import decay_groups

    class Watcher(Callback):
        def on_stage_start(self, state):
            recorder.seen["callback_method"] = state.method

    class Recording(GradientMethod):
        name = "recording"

        def configure(self, model, state):
            for _, param in model.body_parameters():
                param.requires_grad_(True)
            return decay_groups(model.body_parameters(), 1e-3, 0.0, "backbone")

        def stages(self, state):
            recorder.seen["stages_state"] = state
            return super().stages(state)

        def callbacks(self, state):
            recorder.seen["callbacks_state"] = state
            return [Watcher()]

        def extend_objective(self, objective, model):
            recorder.seen["objective"], recorder.seen["model"] = objective, model
            return objective

        def structure(self):
            return {"shape": "recorded"}

    return Recording


def test_the_fit_sequence_hands_every_hook_the_run_it_belongs_to(registries, monkeypatch):
    """Bugs caught: the run's budget cap ignored by a stage, the objective built from the
    process's plugins instead of the run's registries, hooks given no state or model, the
    validation split dropped, the progress bar unnamed, the predictor without the method's
    name or structure."""
    import contextlib

    from transferlab.api import Budget
    from transferlab.hookspecs import hookimpl
    from transferlab.training import FitState, ModelPredictor
    from transferlab_objectives.losses import CrossEntropy

    class RunOnly:
        @hookimpl
        def register_objectives(self, register):
            register("run-only-loss", lambda name: CrossEntropy())

    host = PluginHost()
    host.load_entry_points()
    host.add_plugin(RunOnly(), "run-only")
    recorder = _Recorder()
    method = _recording_method(recorder)(max_steps=5, batch_size=8, val_fraction=0.25,
                                         objective="run-only-loss")
    ctx = RunContext(seed=0, progress=False, registries=host.registries, budget=Budget(steps=2))
    bars = []

    @contextlib.contextmanager
    def progress_bar(total, desc):
        bars.append(desc)
        yield lambda k: None

    monkeypatch.setattr(ctx, "progress_bar", progress_bar)
    task = small_digits(40, 10)
    predictor = method.fit(registries.backbones.create(TINY, {"img_size": 32}), task, ctx)
    seen = recorder.seen
    assert predictor.extra["steps"] == 2  # the run's cap, not max_steps=5
    assert isinstance(seen["objective"], CrossEntropy)
    assert isinstance(seen["stages_state"], FitState) and seen["callbacks_state"] is seen[
        "stages_state"]
    assert seen["callback_method"] is method and seen["model"] is predictor.model
    assert predictor.extra["val_accuracy"] is not None and predictor.extra["val_size"] > 0
    assert bars == [f"recording {task.name}"]
    assert type(predictor) is ModelPredictor
    assert (predictor.method, predictor.structure) == ("recording", {"shape": "recorded"})
