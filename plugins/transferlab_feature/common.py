"""Small helpers shared by the feature methods: fetching features, dense checks, L2 norms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.api import Backbone, RunContext, Task
from transferlab.errors import IncompatibleError

if TYPE_CHECKING:
    import numpy as np


def labeled_features(
    backbone: Backbone, task: Task, split: str, ctx: RunContext
) -> tuple[Any, np.ndarray]:
    """(features, labels) of one split, the features shared through the feature store."""
    return ctx.features(backbone, task, split), task.split(split).labels


def is_sparse(features: Any) -> bool:
    return hasattr(features, "tocsr")


def require_dense(features: Any, method: str, backbone: Backbone) -> np.ndarray:
    """The features as a float32 array; sparse ones (raw:tfidf) are refused with the fix."""
    import numpy as np

    if is_sparse(features):
        raise IncompatibleError(
            f"method {method!r} needs dense features but {backbone.name!r} gives sparse ones;"
            " use linear-probe, knn or ncm, or a dense backbone"
        )
    return np.asarray(features, dtype=np.float32)


def l2_normalize(features: Any) -> Any:
    """Rows scaled to unit L2 norm (dense or sparse); all-zero rows stay zero."""
    from sklearn.preprocessing import normalize

    return normalize(features, norm="l2", copy=True)
