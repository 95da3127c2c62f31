"""Parameter-transfer methods on a tiny random EfficientNet and a subset of digits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fakes import small_digits
from transferlab.api import Objective, RunContext, Split, Task
from transferlab.errors import CheckpointError, IncompatibleError, ParamError
from transferlab.harness.cell import Cell, run_cell, validate_cell
from transferlab.plugins import get_registries
from transferlab_parameter.predictor import ParameterPredictor
from transferlab_timm.backbone import TimmBackbone

TINY = "timm:test_efficientnet@random"
METHODS = ("finetune", "freeze", "bitfit", "lora", "l2sp", "llrd")
FAST = {"max_steps": 12, "batch_size": 24, "val_fraction": 0.0}


def SmallDigits():
    return small_digits(240, 120)


def _tiny() -> TimmBackbone:
    return TimmBackbone(TINY, img_size=32)


def _fit(method: str, seed: int = 0, backbone=None, **params):
    task = SmallDigits()
    ctx = RunContext(seed=seed, progress=False)
    backbone = backbone or _tiny()
    predictor = get_registries().methods.create(method, {**FAST, **params}).fit(
        backbone, task, ctx)
    predictions = predictor.predict_split(task, "test", ctx)
    return predictor, predictions, float((predictions == task.split("test").labels).mean())


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_and_reports_parameters(method):
    predictor, predictions, accuracy = _fit(method, lr=3e-3, head_lr=3e-3)
    assert predictions.shape == (120,)
    assert predictor.extra["steps"] == 12 and predictor.extra["stop_reason"] == "steps"
    assert 0 < predictor.trainable_params <= predictor.total_params
    head = 256 * 10 + 10
    if method in {"finetune", "l2sp", "llrd"}:
        assert predictor.trainable_params == predictor.total_params
        assert accuracy > 0.2  # 10 classes: chance is 0.1
    elif method == "freeze":
        assert predictor.trainable_params == head  # default k=all: head only
    else:
        assert head < predictor.trainable_params < predictor.total_params / 4


def test_freeze_k_trains_the_top_groups_only():
    backbone = _tiny()
    predictor = _fit("freeze", backbone=backbone, k="-1", max_steps=2)[0]
    top = backbone.layer_groups()[-2][1]  # [-1] is the ImageNet head, off the feature path
    top_params = sum(p.numel() for m in top for p in m.parameters())
    assert predictor.trainable_params == top_params + 256 * 10 + 10
    assert _fit("freeze", k=0, max_steps=1)[0].trainable_params == predictor.total_params


def test_same_seed_same_predictions():
    first = _fit("finetune", seed=3, max_steps=6)[1]
    assert np.array_equal(first, _fit("finetune", seed=3, max_steps=6)[1])
    lora = _fit("lora", seed=3, max_steps=4)[1]
    assert np.array_equal(lora, _fit("lora", seed=3, max_steps=4)[1])


@pytest.mark.parametrize("method", ["finetune", "lora"])
def test_saved_predictor_reloads_to_identical_predictions(method, tmp_path):
    predictor, predictions, _ = _fit(method, max_steps=6)
    path = predictor.save(tmp_path / "model.safetensors")
    restored = ParameterPredictor.load(path, _tiny())
    ctx = RunContext(progress=False)
    assert np.array_equal(restored.predict(SmallDigits().split("test").inputs, ctx), predictions)
    assert (restored.trainable_params, restored.total_params) == (
        predictor.trainable_params, predictor.total_params)
    other = TimmBackbone("timm:test_resnet@random", img_size=32)
    with pytest.raises(CheckpointError):
        ParameterPredictor.load(path, other)


def test_early_stopping_uses_a_seeded_validation_split():
    predictor = _fit("finetune", val_fraction=0.2, max_steps=None, epochs=2, patience=1)[0]
    assert predictor.extra["val_size"] == 48 and predictor.extra["train_size"] == 192
    assert predictor.extra["best_epoch"] in {1, 2}


@pytest.mark.parametrize(("method", "params", "message"), [
    ("lora", {"target_modules": "attention"}, r"target_modules='attention' match no"
     r" adaptable layer of 'timm:test_efficientnet@random'; layer names there end in"),
    ("lora", {"target_modules": "conv_dw"}, r"grouped convolution \(groups=\d+\)"),
    ("freeze", {"k": "12"}, r"freeze: k=12 but .* has \d+ layer groups; use -\d+ <= k <= \d+"),
])
def test_bad_input_fails_before_training(method, params, message, monkeypatch):
    import transferlab.training.loop as loop

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(loop, "train", no_training)
    with pytest.raises(IncompatibleError, match=message):
        _fit(method, **params)


def test_bad_values_fail_at_validation_with_one_line():
    registries = get_registries()
    for method, params, message in (
        ("freeze", {"k": "some"}, "parameter k expects int_or_all, got 'some'"),
        ("finetune", {"epochs": 0}, "parameter epochs=0 must be >= 1"),
        ("lora", {"r": 0}, "parameter r=0 must be >= 1"),
    ):
        with pytest.raises(ParamError, match=message):
            validate_cell(Cell(TINY, "digits", method, params), registries)


def test_unknown_objective_fails_before_training():
    from transferlab.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown objective 'hinge'"):
        _fit("finetune", objective="hinge")


def test_run_cell_records_counts_and_training_summary():
    cell = Cell(TINY, "digits", "bitfit", {"max_steps": 3, "val_fraction": 0.0},
                {"img_size": 32})
    result = run_cell(cell, get_registries(), progress=False)
    assert result.status == "ok", result.error
    assert 0 < result.trainable_params < result.total_params
    assert result.extra["steps"] == 3 and result.extra["train_examples_per_s"] > 0


def test_keyboard_interrupt_propagates_through_run_cell(monkeypatch):
    import transferlab.training.loop as loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    cell = Cell(TINY, "digits", "finetune", {"max_steps": 1}, {"img_size": 32})
    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, get_registries(), progress=False)


def _configured(method: str, **params):
    """(method instance, model, backbone, optimizer groups) of ``method`` on the tiny
    EfficientNet, configured as ``fit`` does but without training."""
    from transferlab.training import Stage, TransferModel

    backbone = _tiny()
    instance = get_registries().methods.create(method, params)
    model = TransferModel(backbone, 3)
    state = SimpleNamespace(backbone=backbone, stage=Stage())
    groups = [*instance.configure(model, state), *instance.head_groups(model, state)]
    return instance, model, backbone, groups


@pytest.mark.parametrize("method", ["llrd", "finetune", "l2sp"])
def test_only_llrd_decays_the_learning_rate_by_layer_group(method):
    """Catches llrd training every group at one rate (it would then be finetune under
    another name), a decay applied from the wrong end (the stem must be slowest), an
    exponent off by one (the top group must train at exactly lr), and a body parameter
    left out of the groups or frozen."""
    import torch

    from transferlab.training.schedule import build_optimizer

    params = {"lr": 0.1, "head_lr": 0.02}
    _, model, backbone, groups = _configured(
        method, **params, **({"decay": 0.5} if method == "llrd" else {}))
    optimizer = build_optimizer(groups, (0.9, 0.999))
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    body = [p for _, p in model.body_parameters()]
    assert all(p.requires_grad for p in body)
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted([id(p) for p in body] + [id(p) for p in
                                                              model.head.parameters()])
    assert rates["head"] == rates["head/no-decay"] == 0.02
    if method != "llrd":
        assert {r for n, r in rates.items() if not n.startswith("head")} == {0.1}
        return
    stages = ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4"]
    expected = [0.003125, 0.00625, 0.0125, 0.025, 0.05, 0.1]  # 0.1 * 0.5**(5 - i)
    assert [n for n in rates if not n.startswith("head")] == [
        f"{s}{suffix}" for s in stages for suffix in ("", "/no-decay")]
    for stage, rate in zip(stages, expected, strict=True):
        assert rates[stage] == pytest.approx(rate, rel=1e-12)
        assert rates[f"{stage}/no-decay"] == pytest.approx(rate, rel=1e-12)
    stem = {id(p) for m in dict(backbone.layer_groups())["stem"] for p in m.parameters()}
    stem_group = [g for g in optimizer.param_groups if g["name"].startswith("stem")]
    assert {id(p) for g in stem_group for p in g["params"]} == stem
    default = _configured("llrd")[3]  # lr 2e-4, decay 0.75
    assert [g["lr"] for g in default if g["name"] == "stem"] == pytest.approx(
        [2e-4 * 0.75**5], rel=1e-12)
    assert isinstance(optimizer, torch.optim.AdamW)


class _Zero(Objective):
    name = "zero"

    def __call__(self, outputs, batch):
        import torch

        return torch.zeros(())


@pytest.mark.parametrize("method", ["l2sp", "finetune", "llrd"])
def test_only_l2sp_penalises_the_distance_from_the_starting_weights(method):
    """Catches l2sp without its L2-SP term (then it is finetune under another name), a
    penalty towards zero instead of towards the starting weights, a reference that follows
    the live weights (no copy: the distance stays 0), alpha and beta swapped, and the
    frozen source head penalised."""
    import torch

    params = {"alpha": 0.5, "beta": 0.25} if method == "l2sp" else {}
    instance, model, backbone, _ = _configured(method, **params)
    base = _Zero()
    objective = instance.extend_objective(base, model)
    if method != "l2sp":
        assert objective is base
        return
    objective.setup(model)

    def value() -> float:
        return float(objective(None, {"labels": None}).detach())

    head = float(model.head.weight.detach().pow(2).sum())
    assert value() == pytest.approx(0.25 * head, rel=1e-5)  # at the start: head term only
    weight = next(p for _, p in model.body_parameters())
    with torch.no_grad():
        weight.add_(0.1)
    assert value() - 0.25 * head == pytest.approx(0.5 * 0.01 * weight.numel(), rel=1e-4)
    with torch.no_grad():
        weight.sub_(0.1)
        backbone.source_head.weight.add_(1.0)  # off the feature path: not penalised
        model.head.bias.add_(1.0)  # only the head's weight is
    assert value() == pytest.approx(0.25 * head, rel=1e-5)


def _counts(backbone, method, **params):
    """(trainable, total) after configuring ``method`` (no training needed)."""
    from transferlab.training import Stage, TransferModel

    instance = get_registries().methods.create(method, params)
    model = TransferModel(backbone, 2)
    instance.configure(model, SimpleNamespace(backbone=backbone, stage=Stage()))
    return model.counts()


def test_efficientnet_lite0_lora_and_bitfit_parameter_shares():
    backbone = TimmBackbone("timm:efficientnet_lite0@random", img_size=32)
    trainable, total = _counts(backbone, "lora")
    assert trainable == 182_272 + 1280 * 2 + 2  # rank 8 on 32 pointwise convs + conv_head
    assert trainable / total < 0.06
    trainable, total = _counts(TimmBackbone("timm:efficientnet_lite0@random", img_size=32),
                               "bitfit")
    assert trainable / total < 0.01


class Sentiment(Task):
    """Twelve tiny positive/negative sentences, repeated: a text task that trains in steps."""

    modality = "text"
    WORDS = (["good", "great", "lovely", "fine"], ["bad", "awful", "poor", "terrible"])

    @property
    def label_names(self) -> list[str]:
        return ["negative", "positive"]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        texts, labels = [], []
        for label, words in ((1, self.WORDS[0]), (0, self.WORDS[1])):
            for word in words:
                texts += [f"the film was {word}", f"a {word} story"]
                labels += [label, label]
        repeat = 4 if split == "train" else 1
        return Split(texts * repeat, labels * repeat)


@pytest.mark.parametrize("method", ["finetune", "lora"])
def test_text_backbone_trains_saves_and_reloads(method, tmp_path):
    registries = get_registries()
    task, ctx = Sentiment("sentiment"), RunContext(progress=False)
    backbone = registries.backbones.create("bert:tiny")
    predictor = registries.methods.create(method, {**FAST, "max_steps": 6, "batch_size": 8}
                                          ).fit(backbone, task, ctx)
    predictions = predictor.predict_split(task, "test", ctx)
    assert predictor.extra["steps"] == 6
    path = predictor.save(tmp_path / "text.safetensors")
    restored = ParameterPredictor.load(path, registries.backbones.create("bert:tiny"))
    assert np.array_equal(restored.predict(task.split("test").inputs, ctx), predictions)


def _text_backbone():
    return get_registries().backbones.create("sbert:all-MiniLM-L6-v2")


@pytest.mark.slow
def test_minilm_lora_and_bitfit_parameter_shares():
    trainable, total = _counts(_text_backbone(), "lora")
    assert trainable / total < 0.02
    trainable, total = _counts(_text_backbone(), "bitfit")
    assert trainable / total < 0.01
