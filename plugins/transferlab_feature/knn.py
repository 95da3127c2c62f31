"""``knn``: k-nearest-neighbour vote on frozen features (scikit-learn, brute force)."""

from __future__ import annotations

from transferlab.api import Backbone, RunContext, Task, TransferMethod
from transferlab.errors import DataError
from transferlab.params import Param
from transferlab_feature.common import labeled_features
from transferlab_feature.predictor import FeaturePredictor


class Knn(TransferMethod):
    """Majority (or distance-weighted) vote of the k nearest training examples.

    Nothing is trained, so it measures how well the representation alone clusters the classes.
    ``k`` larger than the training split is an error (not silently clamped): the vote would be
    the majority class everywhere.
    """

    name = "knn"
    family = "feature"
    summary = "k-nearest-neighbour vote on frozen features (cosine or euclidean)"
    params = (
        Param("k", int, 5, "neighbours that vote", min=1),
        Param("metric", str, "cosine", "distance", choices=("cosine", "euclidean")),
        Param("weights", str, "uniform", "uniform vote or weighted by 1/distance",
              choices=("uniform", "distance")),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> FeaturePredictor:
        from sklearn.neighbors import KNeighborsClassifier

        features, labels = labeled_features(backbone, task, "train", ctx)
        k = self.hparams["k"]
        if k > len(labels):
            raise DataError(
                f"knn: k={k} exceeds the {len(labels)} training examples of {task.name!r};"
                f" use -p k={min(len(labels), 5)} or fewer"
            )
        model = KNeighborsClassifier(n_neighbors=k, metric=self.hparams["metric"],
                                     weights=self.hparams["weights"], algorithm="brute")
        model.fit(features, labels)
        predictor = FeaturePredictor(model, backbone, 0)
        predictor.extra["smallest_class"] = int(min(_counts(labels)))
        return predictor


def _counts(labels: object) -> list[int]:
    import numpy as np

    return np.unique(np.asarray(labels), return_counts=True)[1].tolist()
