"""Distillation losses, registered as objectives (``kd``, ``rkd``, ``spkd``) so that anyone can
combine them (``weighted-sum[terms=cross-entropy:1+kd:0.5]``) as well as the methods of the
same names.

The convention: a distillation objective is called as ``loss(student, batch)`` with the
teacher's per-example tensor in ``batch["teacher"]``, row ``i`` for example ``i`` of the
batch (a :class:`transferlab.training.BatchSource` with ``extras={"teacher": ...}`` puts it
there, aligned whatever the shuffling). For ``kd`` both are logits over the task's classes;
for ``rkd`` and ``spkd`` they are embeddings, ``[B, D_student]`` and ``[B, D_teacher]``, whose
widths may differ (both losses compare relations *within* the batch, never the vectors). The
teacher is a fixed target: no gradient flows into it.

- **KD** (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015):
  ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch. The
  ``T^2`` keeps the gradient's scale independent of the temperature. Default ``T = 4``, as
  RepDistiller's ``--kd_T`` (``HobbitLong/RepDistiller``, ``distiller_zoo/KD.py``).
- **RKD** (Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019): the
  distance-wise loss compares the pairwise Euclidean distances of the batch, each set divided
  by its mean over the pairs ``i != j`` (so the two spaces' scales do not matter), with the
  Huber loss (smooth L1, delta 1); the angle-wise loss compares, for every triplet, the cosine
  of the angle at one vertex, ``<(e_j - e_i) / |e_j - e_i|, (e_k - e_i) / |e_k - e_i|>``, with
  the same Huber loss. ``distance_weight * distance + angle_weight * angle`` with the
  paper's 25 and 50. Means run over all ``B^2`` distances and ``B^3`` triplets (the zero
  diagonal terms included), as the authors' release and RepDistiller's ``RKD.py`` do, which
  those weights were tuned with.
- **SP** (Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019): the
  batch's Gram matrices ``G = E E^T`` of student and teacher, each row L2-normalised, and
  ``||G_teacher - G_student||_F^2 / B^2``. The paper applies it to a late layer's activation
  maps; here it is applied to what it is given (the methods give the pooled embeddings: the
  teacher's come from the shared feature cache, which holds pooled features).

Each loss computes in the student's precision, at least float32 (so a float64 gradient check
stays float64, and bf16 autocast outputs are upcast).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transferlab.api import Objective
from transferlab.errors import DataError
from transferlab.params import Param

if TYPE_CHECKING:
    import torch

__all__ = [
    "ANGLE_WEIGHT", "DISTANCE_WEIGHT", "KD_PARAMS", "KD_TEMPERATURE", "RKD_PARAMS", "KDLoss",
    "RKDLoss", "SPKDLoss", "kd_loss", "rkd_angle_loss", "rkd_distance_loss", "rkd_loss",
    "spkd_loss",
]

KD_TEMPERATURE = 4.0  # RepDistiller's --kd_T
DISTANCE_WEIGHT = 25.0  # Park et al. 2019 and RepDistiller's RKDLoss(w_d=25, w_a=50)
ANGLE_WEIGHT = 50.0

# the losses' declared parameters, shared by the objectives and the methods of the same names
KD_PARAMS = (Param("temperature", float, KD_TEMPERATURE, "softmax temperature T of both"
                   " logits (the loss is scaled by T^2)", gt=0.0),)
RKD_PARAMS = (
    Param("distance_weight", float, DISTANCE_WEIGHT, "multiplier of the distance-wise loss",
          min=0.0),
    Param("angle_weight", float, ANGLE_WEIGHT, "multiplier of the angle-wise loss", min=0.0),
)


# --- the tensor functions ---------------------------------------------------------------------


def _pair(student: torch.Tensor, teacher: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Student (at least float32) and the detached teacher in its dtype, both ``[B, ...]``
    flattened to ``[B, D]``; a teacher with another batch size is a DataError."""
    import torch

    dtype = torch.promote_types(student.dtype, torch.float32)
    student = student.to(dtype)
    teacher = torch.as_tensor(teacher, device=student.device).detach().to(dtype)
    if teacher.shape[0] != student.shape[0]:
        raise DataError(f"{what}: the teacher has {teacher.shape[0]} rows but the batch has"
                        f" {student.shape[0]}; give one teacher row per example")
    return student.reshape(len(student), -1), teacher.reshape(len(teacher), -1)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor,
            temperature: float = KD_TEMPERATURE) -> torch.Tensor:
    """Hinton et al.'s soft-label loss: ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``,
    the mean over the batch of the per-example KL divergences. Both are ``[B, C]`` logits."""
    from torch.nn import functional as F

    student, teacher = _pair(student, teacher, "kd")
    if teacher.shape[1] != student.shape[1]:
        raise DataError(f"kd: the teacher gives {teacher.shape[1]} logits but the student"
                        f" {student.shape[1]}; both must be logits over the task's classes")
    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def _distances(embeddings: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` Euclidean distances with an exact zero diagonal; the square root is taken
    of the squared distances clamped away from 0, so the gradient stays finite."""
    import torch

    diff = embeddings[:, None, :] - embeddings[None, :, :]
    off_diagonal = 1.0 - torch.eye(len(embeddings), dtype=embeddings.dtype,
                                   device=embeddings.device)
    return diff.pow(2).sum(dim=2).clamp_min(1e-12).sqrt() * off_diagonal


def _normalised_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Distances divided by their mean over the pairs ``i != j``."""
    import torch

    distances = _distances(embeddings)
    n = len(embeddings)
    mean = distances.sum() / (n * (n - 1))
    return distances / mean.clamp_min(torch.finfo(distances.dtype).tiny)


def _angles(embeddings: torch.Tensor) -> torch.Tensor:
    """``[B, B, B]``: entry ``[i, j, k]`` is the cosine of the angle at ``e_i`` between
    ``e_j - e_i`` and ``e_k - e_i`` (0 where ``j`` or ``k`` is ``i``)."""
    from torch.nn import functional as F

    directions = F.normalize(embeddings[None, :, :] - embeddings[:, None, :], p=2, dim=2)
    return directions @ directions.transpose(1, 2)


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD's distance-wise term: the Huber loss between the two batches' mean-normalised
    pairwise distances (mean over all ``B^2`` pairs)."""
    from torch.nn import functional as F

    student, teacher = _pair(student, teacher, "rkd")
    if len(student) < 2:
        return student.sum() * 0.0  # no pairs: nothing to match
    return F.smooth_l1_loss(_normalised_distances(student), _normalised_distances(teacher))


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD's angle-wise term: the Huber loss between the two batches' triplet angle cosines
    (mean over all ``B^3`` triplets)."""
    from torch.nn import functional as F

    student, teacher = _pair(student, teacher, "rkd")
    return F.smooth_l1_loss(_angles(student), _angles(teacher))


def rkd_loss(student: torch.Tensor, teacher: torch.Tensor, *,
             distance_weight: float = DISTANCE_WEIGHT,
             angle_weight: float = ANGLE_WEIGHT) -> torch.Tensor:
    """Park et al.'s relational loss: ``distance_weight * distance + angle_weight * angle``
    (a term whose weight is 0 is not computed)."""
    student, teacher = _pair(student, teacher, "rkd")
    total = student.sum() * 0.0
    if distance_weight:
        total = total + rkd_distance_loss(student, teacher) * distance_weight
    if angle_weight:
        total = total + rkd_angle_loss(student, teacher) * angle_weight
    return total


def spkd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Tung and Mori's similarity-preserving loss: ``||G_t - G_s||_F^2 / B^2`` between the
    row-L2-normalised Gram matrices of the batch."""
    from torch.nn import functional as F

    student, teacher = _pair(student, teacher, "spkd")
    gram_student = F.normalize(student @ student.T, p=2, dim=1)
    gram_teacher = F.normalize(teacher @ teacher.T, p=2, dim=1)
    return (gram_teacher - gram_student).pow(2).sum() / len(student) ** 2


# --- the objectives -----------------------------------------------------------------------------


def _teacher(batch: Mapping[str, Any], name: str, what: str) -> Any:
    if "teacher" not in batch:
        raise DataError(
            f"objective {name!r} needs the teacher's per-example {what} in batch['teacher'];"
            f" the distillation methods put them there (e.g. -m {name}), or give a"
            " BatchSource extras={'teacher': ...}")
    return batch["teacher"]


class KDLoss(Objective):
    """``kd``: soft-label distillation of the outputs (logits) towards ``batch["teacher"]``."""

    name = "kd"

    def __init__(self, temperature: float = KD_TEMPERATURE) -> None:
        self.temperature = temperature

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return kd_loss(outputs, _teacher(batch, self.name, "logits"), self.temperature)


class RKDLoss(Objective):
    """``rkd``: relational distillation of the batch's distances and angles."""

    name = "rkd"

    def __init__(self, distance_weight: float = DISTANCE_WEIGHT,
                 angle_weight: float = ANGLE_WEIGHT) -> None:
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return rkd_loss(outputs, _teacher(batch, self.name, "embeddings"),
                        distance_weight=self.distance_weight, angle_weight=self.angle_weight)


class SPKDLoss(Objective):
    """``spkd``: similarity-preserving distillation of the batch's Gram matrix."""

    name = "spkd"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return spkd_loss(outputs, _teacher(batch, self.name, "embeddings"))
