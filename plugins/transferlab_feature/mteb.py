"""The MTEB classification protocol (Muennighoff et al., 2022; ``mteb`` >= 1.12).

MTEB scores an embedding model on a classification task by repeating, ``n_experiments`` times:
undersample the training split to ``k`` examples per label, fit
``LogisticRegression(max_iter=100, random_state=42)`` on their embeddings, and measure accuracy
on the whole test split; it reports the mean. The undersampling is reproduced exactly:

- one index array ``0..N-1`` is kept across experiments and shuffled in place at the start of
  each, by numpy's legacy generator freshly seeded with ``seed`` (mteb seeds the global
  generator in ``AbsTask.__init__`` and again in every evaluator's ``__init__``, so every
  shuffle starts from the same state: experiment ``i`` applies the same permutation ``i + 1``
  times);
- walking the shuffled indices, an example is kept while its label has fewer than ``k``
  examples, so the subsample is in shuffled order and a label with fewer than ``k`` training
  examples keeps all of them (clamping, as mteb does; the clamped labels are reported).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, Predictor, RunContext, Task
from transferlab.threads import single_blas_thread

if TYPE_CHECKING:
    import numpy as np

MTEB_MAX_ITER = 100
MTEB_CLASSIFIER_SEED = 42


def mteb_undersample(
    labels: np.ndarray, k: int, n_experiments: int, seed: int = 42
) -> list[np.ndarray]:
    """Training indices of each experiment, exactly as mteb's ``_undersample_data`` picks them."""
    import numpy as np

    labels = np.asarray(labels)
    idxs = np.arange(len(labels))
    picks = []
    for _ in range(n_experiments):
        np.random.RandomState(seed).shuffle(idxs)  # same stream as np.random.seed(seed)
        counts: dict[int, int] = {}
        chosen = []
        for i in idxs:
            label = int(labels[i])
            if counts.get(label, 0) < k:
                chosen.append(i)
                counts[label] = counts.get(label, 0) + 1
        picks.append(np.array(chosen, dtype=np.int64))
    return picks


def clamped_labels(labels: np.ndarray, k: int) -> dict[int, int]:
    """Labels with fewer than ``k`` training examples -> how many they have."""
    import numpy as np

    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True) if c < k}


class ExperimentsPredictor(Predictor):
    """One fitted classifier per experiment; the harness scores each and reports mean and std.

    ``predict`` and ``predict_split`` use the first experiment's classifier.
    """

    def __init__(self, estimators: Sequence[Any], backbone: Backbone, head_params: int) -> None:
        self.estimators = list(estimators)
        self.backbone = backbone
        self.trainable_params = head_params
        self.total_params = backbone.num_parameters() + head_params
        self.extra: dict[str, Any] = {}

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        return self.estimators[0].predict(self.backbone.encode(inputs, device=ctx.device))

    def predict_split(self, task: Task, split: str, ctx: RunContext) -> np.ndarray:
        return self.estimators[0].predict(ctx.features(self.backbone, task, split))

    def predict_experiments(self, task: Task, split: str, ctx: RunContext) -> list[np.ndarray]:
        features = ctx.features(self.backbone, task, split)
        return [estimator.predict(features) for estimator in self.estimators]


def fit_mteb(
    features: Any, labels: np.ndarray, backbone: Backbone, *, k: int, n_experiments: int,
    seed: int,
) -> ExperimentsPredictor:
    """Fit MTEB's logistic regression on each experiment's subsample."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    picks = mteb_undersample(labels, k, n_experiments, seed)
    estimators, converged = [], []
    for idx in picks:
        classifier = LogisticRegression(max_iter=MTEB_MAX_ITER, random_state=MTEB_CLASSIFIER_SEED)
        with warnings.catch_warnings(record=True) as caught, single_blas_thread():
            warnings.simplefilter("always", ConvergenceWarning)
            classifier.fit(features[idx], labels[idx])
        converged.append(not any(issubclass(w.category, ConvergenceWarning) for w in caught))
        estimators.append(classifier)
    head = estimators[0].coef_.size + estimators[0].intercept_.size
    predictor = ExperimentsPredictor(estimators, backbone, head)
    predictor.extra.update({
        "protocol": "mteb", "k_per_label": k, "n_experiments": n_experiments,
        "protocol_seed": seed,
        "classifier": f"LogisticRegression(max_iter={MTEB_MAX_ITER},"
                      f" random_state={MTEB_CLASSIFIER_SEED})",
        "train_sizes": [len(idx) for idx in picks],
        "clamped_labels": clamped_labels(labels, k),
        "converged": converged,
    })
    return predictor
