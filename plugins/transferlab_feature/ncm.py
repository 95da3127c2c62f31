"""``ncm``: nearest class mean (prototypes) on frozen features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab_feature.common import l2_normalize, labeled_features
from transferlab_feature.predictor import FeaturePredictor

if TYPE_CHECKING:
    import numpy as np


class PrototypeClassifier:
    """One prototype per class (the mean training feature); predicts the closest.

    ``cosine`` L2-normalises features before averaging and compares by cosine similarity to
    the normalised prototypes (as in prototypical few-shot classifiers); ``euclidean`` is
    scikit-learn's ``NearestCentroid`` rule. Works on dense and scipy sparse features.
    """

    def __init__(self, metric: str = "cosine") -> None:
        self.metric = metric

    def fit(self, features: Any, labels: np.ndarray) -> PrototypeClassifier:
        import numpy as np

        x = l2_normalize(features) if self.metric == "cosine" else features
        self.classes_ = np.unique(labels)
        rows = [np.asarray(x[labels == c].mean(axis=0)).reshape(-1) for c in self.classes_]
        self.prototypes_ = np.stack(rows).astype(np.float64)
        if self.metric == "cosine":
            self.prototypes_ = l2_normalize(self.prototypes_)
        self._sq_norms = (self.prototypes_**2).sum(axis=1)
        return self

    def predict(self, features: Any) -> np.ndarray:
        import numpy as np

        if self.metric == "cosine":
            scores = np.asarray(l2_normalize(features) @ self.prototypes_.T)
        else:  # argmin |x - p|^2 = argmax 2 x.p - |p|^2 (|x|^2 is the same for every p)
            scores = 2 * np.asarray(features @ self.prototypes_.T) - self._sq_norms
        return self.classes_[scores.argmax(axis=1)]


class NearestClassMean(TransferMethod):
    """Prototype classifier: no training beyond one mean per class."""

    name = "ncm"
    family = "feature"
    summary = "nearest class mean (prototypes) on frozen features"
    params = (Param("metric", str, "cosine", "similarity to the prototypes",
                    choices=("cosine", "euclidean")),)

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> FeaturePredictor:
        features, labels = labeled_features(backbone, task, "train", ctx)
        model = PrototypeClassifier(self.hparams["metric"]).fit(features, labels)
        return FeaturePredictor(model, backbone, int(model.prototypes_.size))
