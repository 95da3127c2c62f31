"""``coral``: CORrelation ALignment (Sun, Feng & Saenko, AAAI 2016) on frozen features.

Source features are whitened with the source covariance and re-coloured with the target's,
``x_s' = x_s Cs^-1/2 Ct^1/2`` with ``C = cov + reg * I``, so that a linear classifier trained on
labeled source data sees target-like second-order statistics; target features are classified
as they are. ``align_means`` also moves the source mean onto the target mean (a first-order
alignment the paper leaves out). ``covariance=diagonal`` matches per-feature variances only;
with ``standardize=true`` that is exactly per-domain standardisation (each domain z-scored
with its own statistics). Without a source task (an ordinary cell) it is a plain linear probe,
as there is nothing to align to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab_feature.common import require_dense
from transferlab_feature.linear_probe import fit_logistic
from transferlab_feature.predictor import FeaturePredictor

if TYPE_CHECKING:
    import numpy as np


def _sym_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """``matrix ** power`` for a symmetric positive-definite matrix (eigendecomposition)."""
    import numpy as np

    values, vectors = np.linalg.eigh(matrix)
    values = np.clip(values, 1e-12, None)
    return (vectors * values**power) @ vectors.T


def coral_map(source: np.ndarray, target: np.ndarray, reg: float) -> np.ndarray:
    """The ``D x D`` matrix ``(Cs + reg I)^-1/2 (Ct + reg I)^1/2``."""
    import numpy as np

    eye = np.eye(source.shape[1])
    cs = np.cov(source, rowvar=False) + reg * eye
    ct = np.cov(target, rowvar=False) + reg * eye
    return _sym_power(cs, -0.5) @ _sym_power(ct, 0.5)


def coral_align(
    source: np.ndarray, target: np.ndarray, *, reg: float, align_means: bool,
    diagonal: bool = False,
) -> np.ndarray:
    """Source features re-coloured with the target's covariance (float32); ``diagonal``
    matches per-feature variances only."""
    import numpy as np

    xs = np.asarray(source, np.float64)
    xt = np.asarray(target, np.float64)
    if diagonal:
        scale = np.sqrt((xt.var(axis=0) + reg) / (xs.var(axis=0) + reg))
        return _shift(xs, xs * scale, xt, align_means, lambda m: m * scale)
    mapping = coral_map(xs, xt, reg)
    return _shift(xs, xs @ mapping, xt, align_means, lambda m: m @ mapping)


def _shift(xs: np.ndarray, mapped: np.ndarray, xt: np.ndarray, align_means: bool,
           apply: object) -> np.ndarray:
    """``mapped`` moved so its mean is the target's (when ``align_means``), as float32."""
    import numpy as np

    if align_means:
        mapped = mapped - apply(xs.mean(axis=0)) + xt.mean(axis=0)  # type: ignore[operator]
    return mapped.astype(np.float32)


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
        Param("covariance", str, "full", "full: CORAL; diagonal: per-feature variances only",
              choices=("full", "diagonal")),
        Param("C", float, 1.0, "inverse L2 regularisation of the classifier", min=1e-12),
        Param("max_iter", int, 1000, "lbfgs iterations", min=1),
        Param("standardize", bool, False, "z-score the aligned source features for the"
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
        aligned = coral_align(xs, xt, reg=hp["reg"], align_means=hp["align_means"],
                              diagonal=hp["covariance"] == "diagonal")
        predictor = fit_logistic(aligned, source.split("train").labels, backbone, ctx, C=hp["C"],
                                 max_iter=hp["max_iter"], standardize=hp["standardize"])
        predictor.extra["adaptation"] = "coral"
        return predictor
