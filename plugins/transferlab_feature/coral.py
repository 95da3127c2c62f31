"""``coral``: CORrelation ALignment (Sun, Feng & Saenko, AAAI 2016) on frozen features.

Source features are whitened with the source covariance and re-coloured with the target's,
``x_s' = x_s Cs^-1/2 Ct^1/2`` with ``C = cov + reg * I``, so that a linear classifier trained on
labeled source data sees target-like second-order statistics; target features are classified
as they are. ``align_means`` also moves the source mean onto the target mean (a first-order
alignment the paper leaves out). Without a source task (an ordinary cell) it is a plain
linear probe, as there is nothing to align to.
"""

from __future__ import annotations

import numpy as np

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab_feature.common import require_dense
from transferlab_feature.linear_probe import fit_logistic
from transferlab_feature.predictor import FeaturePredictor


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """``matrix ** power`` for a symmetric positive-definite matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh(matrix)
    values = np.clip(values, 1e-12, None)
    return (vectors * values**power) @ vectors.T


def coral_map(source: np.ndarray, target: np.ndarray, reg: float) -> np.ndarray:
    """The ``D x D`` matrix ``(Cs + reg I)^-1/2 (Ct + reg I)^1/2``."""
    eye = np.eye(source.shape[1])
    cs = np.cov(source, rowvar=False) + reg * eye
    ct = np.cov(target, rowvar=False) + reg * eye
    return _sym_power(cs, -0.5) @ _sym_power(ct, 0.5)


def coral_align(
    source: np.ndarray, target: np.ndarray, *, reg: float, align_means: bool
) -> np.ndarray:
    """Source features re-coloured with the target's covariance (float32)."""
    xs = np.asarray(source, np.float64)
    xt = np.asarray(target, np.float64)
    mapping = coral_map(xs, xt, reg)
    if not align_means:
        return (xs @ mapping).astype(np.float32)
    return ((xs - xs.mean(axis=0)) @ mapping + xt.mean(axis=0)).astype(np.float32)


class Coral(TransferMethod):
    """CORAL alignment of source to target feature covariance, then logistic regression."""

    name = "coral"
    family = "feature"
    summary = "CORAL: align source feature covariance to the target's, then a linear probe"
    adapts_domains = True
    params = (
        Param("reg", float, 1.0, "added to each covariance's diagonal (the paper's identity)",
              min=0.0),
        Param("align_means", bool, True, "also move the source mean onto the target mean"),
        Param("C", float, 1.0, "inverse L2 regularisation of the classifier", min=1e-12),
        Param("max_iter", int, 1000, "lbfgs iterations", min=1),
        Param("standardize", bool, True, "z-score the aligned source features for the"
              " classifier (fitted on them, applied to target features)"),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> FeaturePredictor:
        hp = self.hparams
        predictor = fit_logistic(ctx.features(backbone, task, "train"),
                                 task.split("train").labels, backbone, ctx, C=hp["C"],
                                 max_iter=hp["max_iter"], standardize=hp["standardize"])
        predictor.extra["adaptation"] = "none (no source task)"
        return predictor

    def fit_adapted(
        self, backbone: Backbone, source: Task, target: Task, ctx: RunContext
    ) -> FeaturePredictor:
        hp = self.hparams
        xs = require_dense(ctx.features(backbone, source, "train"), self.name, backbone)
        xt = require_dense(ctx.features(backbone, target, "train"), self.name, backbone)
        aligned = coral_align(xs, xt, reg=hp["reg"], align_means=hp["align_means"])
        predictor = fit_logistic(aligned, source.split("train").labels, backbone, ctx, C=hp["C"],
                                 max_iter=hp["max_iter"], standardize=hp["standardize"])
        predictor.extra["adaptation"] = "coral"
        return predictor
