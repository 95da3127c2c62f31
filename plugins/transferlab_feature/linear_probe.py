"""``linear-probe``: scikit-learn logistic regression on frozen features.

``protocol=full`` (default) fits one classifier on the whole training split;
``protocol=mteb`` runs the MTEB classification protocol (see :mod:`transferlab_feature.mteb`).
"""

from __future__ import annotations

import warnings

from transferlab.api import Backbone, Predictor, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab.threads import single_blas_thread
from transferlab_feature.common import is_sparse, labeled_features
from transferlab_feature.predictor import FeaturePredictor


class LinearProbe(TransferMethod):
    """Multinomial logistic regression (lbfgs) on frozen features, optionally standardised."""

    name = "linear-probe"
    family = "feature"
    summary = "logistic regression on frozen features (scikit-learn); protocol=mteb for MTEB"
    params = (
        Param("C", float, 1.0, "inverse L2 regularisation strength", min=1e-12),
        Param("max_iter", int, 1000, "lbfgs iterations", min=1),
        Param("standardize", bool, True, "z-score features first (fitted on train only)"),
        Param("class_weight", str, "none", "reweight classes", choices=("none", "balanced")),
        Param("protocol", str, "full", "full: one fit on all of train; mteb: k per label,"
              " LogisticRegression(max_iter=100), n_experiments repeats (C, max_iter,"
              " standardize, class_weight ignored)", choices=("full", "mteb")),
        Param("k_per_label", int, 8, "mteb: training examples per label (labels with fewer"
              " keep all theirs)", min=1),
        Param("n_experiments", int, 10, "mteb: repeated subsamples", min=1),
        Param("protocol_seed", int, 42, "mteb: seed of the subsampling (MTEB uses 42)"),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        features, labels = labeled_features(backbone, task, "train", ctx)
        hp = self.hparams
        if hp["protocol"] == "mteb":
            from transferlab_feature.mteb import fit_mteb

            return fit_mteb(features, labels, backbone, k=hp["k_per_label"],
                            n_experiments=hp["n_experiments"], seed=hp["protocol_seed"])
        return fit_logistic(features, labels, backbone, ctx, C=hp["C"], max_iter=hp["max_iter"],
                            standardize=hp["standardize"], class_weight=hp["class_weight"])


def fit_logistic(
    features: object, labels: object, backbone: Backbone, ctx: RunContext, *, C: float,
    max_iter: int, standardize: bool, class_weight: str = "none",
) -> FeaturePredictor:
    """Fit (optionally standardised) logistic regression; records whether lbfgs converged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(
        C=C, max_iter=max_iter, random_state=ctx.seed,
        class_weight=None if class_weight == "none" else class_weight,
    )
    steps = [StandardScaler(with_mean=not is_sparse(features))] if standardize else []
    model = make_pipeline(*steps, classifier)
    with warnings.catch_warnings(record=True) as caught, single_blas_thread():
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(features, labels)
    predictor = FeaturePredictor(model, backbone, classifier.coef_.size
                                 + classifier.intercept_.size)
    predictor.extra["converged"] = not any(
        issubclass(w.category, ConvergenceWarning) for w in caught
    )
    return predictor
