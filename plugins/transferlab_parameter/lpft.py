"""``lp-ft``: linear probe, then fine-tune (Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution").

Fine-tuning with a *random* head sends large, noisy gradients through the pretrained backbone
while the head is still wrong, which distorts the features before the head has learned to use
them. LP-FT first fits the new head as a logistic-regression probe on the frozen features
(stage ``probe``: no gradient steps), then fine-tunes everything starting from that head
(stage ``finetune``). With a short training budget, the common case on a CPU, the difference
is large: the probe alone is already a good classifier and fine-tuning only refines it.

Batch-norm layers stay frozen while fine-tuning (``freeze_norm``, on by default), as Keras's
transfer-learning guide advises for BN networks: in train mode their batch statistics and
drifting running statistics change the very features the probe was fitted on. Measured here
(digits at 64 px, EfficientNet-Lite0, 30 steps), both learning rates set to 0 and BN left in
train mode took the probe's 0.9 to 0.12 by running-statistics drift alone.

The probe is fitted on exactly the examples training uses (the carved validation split is
left out), on the backbone's cached frozen features. Z-scoring the features for the probe is
optional and off by default: folded into the head, it makes each weight inversely proportional
to its feature's spread, so the shift that batch-norm batch statistics cause when fine-tuning
starts (train mode) is amplified and throws the fitted head off. Measured on digits at 64 px,
``timm:efficientnet_lite0``, 30 steps: see docs/results.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from transferlab.params import Param
from transferlab.threads import single_blas_thread
from transferlab.training.config import training_params
from transferlab_parameter.base import ParameterMethod, Stage

if TYPE_CHECKING:
    import numpy as np

    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel

__all__ = ["LinearProbeThenFinetune", "norm_parameter_ids", "probe_head_weights"]


class LinearProbeThenFinetune(ParameterMethod):
    """Fit the new head as a linear probe on frozen features, then fine-tune all weights."""

    name = "lp-ft"
    summary = "linear probe on frozen features first, then fine-tune everything from it"
    params = (
        Param("probe", bool, True, "fit the head as a linear probe before fine-tuning"
              " (false = plain finetune)"),
        Param("probe_C", float, 1.0, "inverse L2 strength of the probe", min=1e-12),
        Param("probe_max_iter", int, 1000, "lbfgs iterations of the probe", min=1),
        Param("freeze_norm", bool, True, "keep batch-norm layers frozen while fine-tuning"
              " (running statistics and affine weights), so the features the probe was"
              " fitted on do not shift under it"),
        Param("probe_standardize", bool, False, "z-score features for the probe (folded into"
              " the head's weights; off by default, see the module docstring)"),
        *training_params(),
    )

    def stages(self, state: FitState) -> list[Stage]:
        probe = [Stage("probe", train=False)] if self.hparams["probe"] else []
        return [*probe, Stage("finetune")]

    def begin_stage(self, state: FitState) -> None:
        if state.stage.name != "probe":
            return
        import numpy as np
        import torch

        from transferlab.errors import TransferlabError

        features = state.ctx.features(state.backbone, state.task, "train")
        if not isinstance(features, np.ndarray):
            raise TransferlabError(
                f"lp-ft: backbone {state.backbone.name!r} gives sparse features, which a"
                " trainable head cannot reuse; use a dense, trainable backbone")
        features = features[np.asarray(state.data.train_indices)]
        labels = np.asarray(state.data.train.labels)
        hp = self.hparams
        weight, bias = probe_head_weights(
            features, labels, state.model.head.out_features, C=hp["probe_C"],
            max_iter=hp["probe_max_iter"], standardize=hp["probe_standardize"],
            seed=state.ctx.seed)
        head = state.model.head
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups

        frozen = norm_parameter_ids(model) if self.hparams["freeze_norm"] else set()
        named = [(n, p) for n, p in model.body_parameters() if id(p) not in frozen]
        for _, param in model.body_parameters():
            param.requires_grad_(id(param) not in frozen)
        hp = self.hparams
        return decay_groups(named, hp["lr"], hp["weight_decay"], "backbone")


def norm_parameter_ids(model: TransferModel) -> set[int]:
    """The ids of every batch-norm weight and bias in the backbone. With these frozen, the
    shared loop also keeps the layers in eval mode, so their running statistics stay put."""
    from torch import nn

    return {id(p) for module in model.body.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for p in module.parameters(recurse=False)}


def probe_head_weights(
    features: np.ndarray, labels: np.ndarray, num_classes: int, *, C: float, max_iter: int,
    standardize: bool, seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A linear head ``[num_classes, D]`` and bias ``[num_classes]`` whose logits on *raw*
    features equal a fitted logistic regression's decision function (up to a per-row shift
    that softmax ignores).

    Z-scoring is folded in: ``W((x - mu) / s) + b = (W / s) x + (b - W mu / s)``. Classes absent
    from ``labels`` get zero weights and a bias far below the others, so the head never
    predicts a class it has not seen, exactly as the probe would not. A binary probe has one
    row ``w``; the head puts it on class 1 and zeros on class 0, so ``logit1 - logit0 = w x + b``.
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0) if standardize else np.zeros(features.shape[1])
    scale = features.std(axis=0) if standardize else np.ones(features.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    probe = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(), single_blas_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit((features - mean) / scale, labels)
    coef = probe.coef_ / scale
    intercept = probe.intercept_ - coef @ mean
    rows = probe.classes_ if len(probe.coef_) > 1 else probe.classes_[1:]
    weight = np.zeros((num_classes, features.shape[1]))
    bias = np.zeros(num_classes)
    weight[rows] = coef
    bias[rows] = intercept
    seen = probe.classes_  # a binary probe's class 0 keeps its zero logit
    unseen = np.setdiff1d(np.arange(num_classes), seen)
    if len(unseen):
        bias[unseen] = bias[seen].min() - 1e4
    return weight, bias
