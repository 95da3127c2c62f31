"""Continual-learning metrics of an accuracy matrix, with Avalanche's definitions.

``R[i][j]`` is the accuracy on experience ``j``'s test split after training on experience
``i`` (rows: training experiences in order; columns: every experience of the stream).

- **average accuracy**: the mean of the last row, over every experience.
- **forgetting** of experience ``k``: ``R[k][k] - R[T-1][k]``, its accuracy right after
  training on it minus its accuracy at the end (not the best accuracy it ever had), defined for
  the experiences that have both, i.e. ``k < T-1``; the stream's forgetting is their mean
  (Avalanche's ``StreamForgetting`` after the last experience).
- **BWT** (backward transfer) = ``-forgetting``, per experience and averaged the same way.
- **forward transfer** of experience ``k >= 1``: ``R[k-1][k] - b[k]``, its accuracy just
  before training on it minus ``b[k]``, the accuracy of the reference model (the model at its
  initialisation, before any training); the stream's is the mean over ``k >= 1``
  (Avalanche's ``StreamForwardTransfer``).

A matrix with one row (``joint``: every experience trained at once) has no forgetting and no
forward transfer: those come back as None, never as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transferlab.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ContinualScores", "continual_scores"]


@dataclass(frozen=True)
class ContinualScores:
    """The summary figures of one accuracy matrix (see the module docstring)."""

    average_accuracy: float
    forgetting: float | None
    bwt: float | None
    forward_transfer: float | None
    per_experience_forgetting: list[float] = field(default_factory=list)
    per_experience_forward_transfer: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """The figures that are defined, as a flat metrics mapping for the results store."""
        values = {"average_accuracy": self.average_accuracy, "forgetting": self.forgetting,
                  "bwt": self.bwt, "forward_transfer": self.forward_transfer}
        return {k: float(v) for k, v in values.items() if v is not None}


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    import numpy as np

    matrix = np.asarray(rows, dtype=float)
    if matrix.ndim != 2 or matrix.size == 0:
        raise DataError(f"an accuracy matrix must be a non-empty 2-d table, got shape"
                        f" {matrix.shape}")
    if matrix.shape[0] > matrix.shape[1]:
        raise DataError(f"an accuracy matrix has one row per training experience and one column"
                        f" per experience; {matrix.shape[0]} rows > {matrix.shape[1]} columns")
    if not np.isfinite(matrix).all():
        raise DataError("an accuracy matrix holds NaN or infinite values")
    return matrix


def continual_scores(matrix: Sequence[Sequence[float]],
                     reference: Sequence[float] | None = None) -> ContinualScores:
    """Average accuracy, forgetting, BWT and forward transfer of ``matrix``; forward transfer
    needs ``reference`` (one accuracy per experience of the untrained model)."""
    import numpy as np

    r = _matrix(matrix)
    rows, columns = r.shape
    final = r[-1]
    average = float(final.mean())
    if rows < columns:  # a single joint row: no sequence, nothing to forget
        return ContinualScores(average, None, None, None)
    forgetting = [float(r[k, k] - final[k]) for k in range(rows - 1)]
    transfer: list[float] = []
    if reference is not None:
        b = np.asarray(reference, dtype=float)
        if b.shape != (columns,):
            raise DataError(f"the reference accuracies have shape {b.shape}; give one per"
                            f" experience ({columns})")
        transfer = [float(r[k - 1, k] - b[k]) for k in range(1, rows)]
    mean_forgetting = float(np.mean(forgetting)) if forgetting else None
    return ContinualScores(
        average, mean_forgetting, None if mean_forgetting is None else -mean_forgetting,
        float(np.mean(transfer)) if transfer else None, forgetting, transfer)


def describe(scores: ContinualScores) -> dict[str, Any]:
    """Everything in ``scores``, JSON-ready (the per-experience lists included)."""
    return {"average_accuracy": scores.average_accuracy, "forgetting": scores.forgetting,
            "bwt": scores.bwt, "forward_transfer": scores.forward_transfer,
            "per_experience_forgetting": scores.per_experience_forgetting,
            "per_experience_forward_transfer": scores.per_experience_forward_transfer}
