"""``linear-probe``: scikit-learn logistic regression on frozen features."""

from __future__ import annotations

import warnings

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab_feature.predictor import FeaturePredictor


class LinearProbe(TransferMethod):
    """Multinomial logistic regression (lbfgs) on frozen features, optionally standardised."""

    name = "linear-probe"
    family = "feature"
    summary = "logistic regression on frozen features (scikit-learn)"
    params = (
        Param("C", float, 1.0, "inverse L2 regularisation strength", min=1e-12),
        Param("max_iter", int, 1000, "lbfgs iterations", min=1),
        Param("standardize", bool, True, "z-score features first (fitted on train only)"),
        Param("class_weight", str, "none", "reweight classes", choices=("none", "balanced")),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> FeaturePredictor:
        import scipy.sparse as sp
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        features = ctx.features(backbone, task, "train")
        labels = task.split("train").labels
        hp = self.hparams
        classifier = LogisticRegression(
            C=hp["C"], max_iter=hp["max_iter"], random_state=ctx.seed,
            class_weight=None if hp["class_weight"] == "none" else hp["class_weight"],
        )
        steps = []
        if hp["standardize"]:
            steps.append(StandardScaler(with_mean=not sp.issparse(features)))
        model = make_pipeline(*steps, classifier)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(features, labels)
        predictor = FeaturePredictor(model, backbone, classifier.coef_.size
                                     + classifier.intercept_.size)
        predictor.extra["converged"] = not any(
            issubclass(w.category, ConvergenceWarning) for w in caught
        )
        return predictor
