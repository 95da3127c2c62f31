"""Knowledge distillation into the cell's backbone: ``kd``, ``rkd`` and ``spkd``.

The **student** is the cell's backbone (e.g. ``timm:efficientnet_lite0@random`` at 32 px),
fine-tuned whole with a new linear head exactly as ``finetune`` does (same parameters and
defaults); the **teacher** is any registered backbone, named by a setting
(``teacher=timm:efficientnet_lite0[img_size=128]``), at its own input size. The loss is

    task_weight * objective(logits, labels) + distill_weight * distillation loss

with the losses of :mod:`transferlab_relational.losses`. With ``distill_weight=0`` and
``task_weight=1`` the method trains exactly as ``finetune`` (the teacher work draws no
random numbers from the run's generators).

The teacher never trains and never runs in the training loop: its frozen features of the
task's training split come through the shared feature cache (``ctx.features``), so a suite
extracts them once per task, whatever the number of methods, seeds and students. The rows of
the examples training uses (``state.data.train_indices``; the carved validation rows come from
``state.data.val_from`` at ``state.data.val_indices``) are attached to the batches as the
``teacher`` extra of :class:`transferlab.training.BatchSource`, which keeps each row with its
example whatever the shuffling.

- ``kd`` (Hinton et al. 2015) distils the teacher's logits over the task's classes. A
  backbone has no such logits, so the teacher is the backbone plus a linear probe (a
  standardised logistic regression, as ``linear-probe``) fitted on its cached features of
  exactly the training rows; its logits on the training and validation rows are the
  targets. Defaults from RepDistiller's ``scripts/run_cifar_distill.sh``: ``-r 0.1 -a 0.9``,
  i.e. ``task_weight=0.1``, ``distill_weight=0.9``, and ``--kd_T 4``.
- ``rkd`` (Park et al. 2019) and ``spkd`` (Tung and Mori 2019) distil relations between the
  examples of a batch: the student's embeddings (the input of ``model.head``, captured by a
  forward pre-hook while a stage trains) against the teacher's cached features of the same
  examples. Defaults from the same script: RKD ``-r 1 -b 1`` (``task_weight=1``,
  ``distill_weight=1``, with the loss's own distance and angle weights 25 and 50), SP
  ``-r 1 -b 3000``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Objective
from transferlab.errors import IncompatibleError, ParamError, TransferlabError
from transferlab.params import Param
from transferlab.threads import single_blas_thread
from transferlab.training import Callback, FitState, GradientMethod, training_params
from transferlab_relational.losses import KD_PARAMS, RKD_PARAMS, KDLoss, RKDLoss, SPKDLoss

if TYPE_CHECKING:
    import numpy as np
    import torch

    from transferlab.api import Backbone
    from transferlab.training.loop import TrainResult
    from transferlab.training.model import TransferModel
    from transferlab.training.predictor import ModelPredictor

__all__ = ["DEFAULT_TEACHER", "KD", "METHODS", "RKD", "SPKD", "DistillationMethod",
           "HeadInput", "build_teacher", "probe_logits"]

DEFAULT_TEACHER = "timm:efficientnet_lite0[img_size=128]"


def _weights(task: float, distill: float) -> tuple[Param, ...]:
    return (
        Param("teacher", str, DEFAULT_TEACHER, "the teacher backbone as a setting,"
              " NAME[key=value,...] (e.g. timm:efficientnet_lite0[img_size=128]); its frozen"
              " features come from the shared cache", refers_to="backbones"),
        Param("task_weight", float, task, "multiplier of the task objective", min=0.0),
        Param("distill_weight", float, distill, "multiplier of the distillation loss"
              " (0 = the student trains as finetune)", min=0.0),
    )


# --- the teacher ------------------------------------------------------------------------------


def build_teacher(setting: str, state: FitState, owner: str) -> Backbone:
    """Create the teacher a setting names from the run's registries, prepared on the task's
    training data and on the run's device; any mistake is a one-line TransferlabError that
    names ``owner`` and the teacher."""
    from transferlab.settings import parse_setting

    registries = state.ctx.registries
    if registries is None:
        from transferlab.plugins import get_registries

        registries = get_registries()
    parsed = parse_setting(setting, f"{owner}: parameter teacher")
    try:
        entry = registries.backbones.get(parsed.name)
        params = entry.validate(parsed.name, parsed.params)
        teacher = entry.create(parsed.name, params)
    except TransferlabError as exc:
        raise type(exc)(f"{owner}: teacher {parsed.canonical()!r}: {exc}") from None
    if teacher.modality != state.task.modality:
        raise IncompatibleError(f"{owner}: teacher {teacher.name!r} reads {teacher.modality}"
                                f" but task {state.task.name!r} is {state.task.modality};"
                                f" pick a {state.task.modality} teacher")
    teacher.prepare(state.task)  # data-dependent preprocessing, fitted on training data only
    return teacher.to(state.ctx.device)


def _teacher_features(teacher: Backbone, state: FitState, owner: str
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's cached features of the training rows and of the validation rows."""
    import numpy as np

    def cached(split: str) -> np.ndarray:
        features = state.ctx.features(teacher, state.task, split)
        if not isinstance(features, np.ndarray):
            raise IncompatibleError(f"{owner}: teacher {teacher.name!r} gives sparse features;"
                                    " use a teacher with dense features")
        return features

    data = state.data
    everything = cached("train")
    train = everything[np.asarray(data.train_indices)]
    val = None
    if data.val_from is not None and data.val_indices is not None:
        source = everything if data.val_from == "train" else cached(data.val_from)
        val = source[np.asarray(data.val_indices)]
    return train, val


def probe_logits(train: np.ndarray, labels: np.ndarray, others: list[np.ndarray],
                 num_classes: int, *, C: float = 1.0, max_iter: int = 1000, seed: int = 0
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fit a standardised logistic regression on ``(train, labels)`` and return its logits
    ``[N, num_classes]`` on ``train`` and on each of ``others``.

    A binary probe's single score goes to the second class (the first gets 0, so the
    difference is the score); classes absent from ``labels`` get a logit far below the
    others, so their teacher probability is 0 at any temperature used in practice.
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    probe = LogisticRegression(C=C, max_iter=max_iter, random_state=seed % 2**32)
    with warnings.catch_warnings(), single_blas_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(scaler.transform(train), labels)
    seen = probe.classes_

    def logits(features: np.ndarray) -> np.ndarray:
        scores = probe.decision_function(scaler.transform(features))
        out = np.zeros((len(features), num_classes))
        if scores.ndim == 1:
            out[:, seen[1]] = scores
        else:
            out[:, seen] = scores
        unseen = np.setdiff1d(np.arange(num_classes), seen)
        if len(unseen) and len(features):
            out[:, unseen] = out[:, seen].min(axis=1, keepdims=True) - 1e4
        return out

    return logits(train), [logits(features) for features in others]


# --- the student's embeddings ------------------------------------------------------------------


class HeadInput(Objective):
    """Applies a distillation loss to the student's embeddings, the input of ``model.head``,
    instead of the model's outputs; a forward pre-hook on the head captures them on every
    forward pass. :meth:`close` removes the hook (the methods do at the end of each stage)."""

    name = "head-input"

    def __init__(self, loss: Objective, model: TransferModel) -> None:
        self.loss = loss
        self.embeddings: torch.Tensor | None = None
        self._handle: Any = model.head.register_forward_pre_hook(self._capture)

    def _capture(self, module: Any, args: tuple[Any, ...]) -> None:
        self.embeddings = args[0]

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        if self.embeddings is None:
            raise RuntimeError("HeadInput: the model's head has not run on this batch (or the"
                               " hook was closed); call it after the model's forward pass")
        return self.loss(self.embeddings, batch)

    def close(self) -> None:
        """Remove the hook and drop the last embeddings."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.embeddings = None


class _CloseHooks(Callback):
    """Removes the stage's embedding hooks when it ends, so the fitted model carries none."""

    def __init__(self, method: DistillationMethod) -> None:
        self.method = method

    def on_stage_end(self, state: FitState, result: TrainResult) -> None:
        while self.method._hooks:
            self.method._hooks.pop().close()


# --- the methods ----------------------------------------------------------------------------------


class DistillationMethod(GradientMethod):
    """Fine-tune the student (the cell's backbone, all weights, plus a new head) with a
    distillation loss towards a teacher backbone's cached features or probe logits.

    Subclasses set ``distills`` (``"embeddings"``: the loss sees the student's embeddings
    and the teacher's features; ``"logits"``: the student's logits and the teacher probe's)
    and implement :meth:`distillation_loss`; ``kd`` also overrides :meth:`teacher_targets`.
    """

    family: ClassVar[str] = "relational"
    modalities: ClassVar[tuple[str, ...]] = ("image",)  # the default teacher's
    distills: ClassVar[str] = "embeddings"

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        super().__init__(registered_name, **params)
        if not self.hparams["task_weight"] and not self.hparams["distill_weight"]:
            raise ParamError(f"{self.name}: task_weight and distill_weight are both 0, so"
                             " nothing would train; make one of them positive")
        self._hooks: list[HeadInput] = []
        self._teacher_info: dict[str, Any] = {}

    # -- what subclasses override -----------------------------------------------------------
    def distillation_loss(self) -> Objective:
        """The loss, called as ``loss(student, {"teacher": ..., ...})``."""
        raise NotImplementedError(f"{type(self).__name__} must implement distillation_loss()")

    def teacher_targets(self, state: FitState, train: np.ndarray, val: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """What the loss compares the student with, per training and validation row, from
        the teacher's features of those rows (default: the features themselves)."""
        return train, val

    # -- the GradientMethod hooks ------------------------------------------------------------
    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        """Every backbone weight trains, at ``lr`` (as ``finetune``)."""
        from transferlab.training import decay_groups

        named = list(model.body_parameters())
        for _, param in named:
            param.requires_grad_(True)
        return decay_groups(named, self.hparams["lr"], self.hparams["weight_decay"],
                            "backbone")

    def begin_stage(self, state: FitState) -> None:
        """Attach the teacher's targets to the training and validation batches (once)."""
        import torch

        assert state.train_batches is not None
        if "teacher" in state.train_batches.extras:
            return
        # creating a backbone draws from torch's generator (random init before loading
        # weights): keep the run's stream as it was, so the student trains as without it
        with torch.random.fork_rng(devices=_cuda_devices()):
            teacher = build_teacher(self.hparams["teacher"], state, self.name)
            train, val = _teacher_features(teacher, state, self.name)
            self._teacher_info = {"teacher": _canonical(self.hparams["teacher"]),
                                  "teacher_feature_dim": int(train.shape[1])}
            del teacher
            train, val = self.teacher_targets(state, train, val)
        state.train_batches = state.train_batches.with_extras(
            {"teacher": torch.as_tensor(train, dtype=torch.float32)})
        if state.val_batches is not None and val is not None:
            state.val_batches = state.val_batches.with_extras(
                {"teacher": torch.as_tensor(val, dtype=torch.float32)})

    def extend_objective(self, objective: Objective, model: TransferModel) -> Objective:
        from transferlab.training.losses import WeightedSum

        loss = self.distillation_loss()
        if self.distills == "embeddings":
            loss = HeadInput(loss, model)
            self._hooks.append(loss)
        return WeightedSum([(self.hparams["task_weight"], objective),
                            (self.hparams["distill_weight"], loss)])

    def callbacks(self, state: FitState) -> list[Callback]:
        return [_CloseHooks(self)]

    def make_predictor(self, state: FitState) -> ModelPredictor:
        """The usual predictor, with which teacher was used (and its probe's accuracy)."""
        predictor = super().make_predictor(state)
        predictor.extra.update(self._teacher_info)
        return predictor


def _canonical(setting: str) -> str:
    from transferlab.settings import parse_setting

    return parse_setting(setting).canonical()


def _cuda_devices() -> list[int]:
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


class KD(DistillationMethod):
    """Soft-label knowledge distillation from a teacher backbone plus a fitted linear probe."""

    name = "kd"
    summary = ("knowledge distillation (Hinton 2015): fine-tune towards a teacher probe's"
               " softened logits")
    distills = "logits"
    params = (
        *_weights(task=0.1, distill=0.9),
        *KD_PARAMS,
        Param("probe_C", float, 1.0, "inverse L2 strength of the teacher's probe", min=1e-12),
        *training_params(),
    )

    def distillation_loss(self) -> Objective:
        return KDLoss(self.hparams["temperature"])

    def teacher_targets(self, state: FitState, train: np.ndarray, val: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """The probe's logits, the probe fitted on exactly the training rows."""
        import numpy as np

        labels = np.asarray(state.data.train.labels)
        train_logits, others = probe_logits(
            train, labels, [] if val is None else [val], len(state.task.label_names),
            C=self.hparams["probe_C"], seed=state.ctx.seed)
        self._teacher_info["teacher_train_accuracy"] = round(
            float((train_logits.argmax(axis=1) == labels).mean()), 4)
        if val is None:
            return train_logits, None
        assert state.data.val is not None
        val_labels = np.asarray(state.data.val.labels)
        self._teacher_info["teacher_val_accuracy"] = round(
            float((others[0].argmax(axis=1) == val_labels).mean()), 4)
        return train_logits, others[0]


class RKD(DistillationMethod):
    """Relational knowledge distillation of the batch's distances and angles."""

    name = "rkd"
    summary = ("relational KD (Park 2019): fine-tune matching the teacher's pairwise distances"
               " and angles")
    params = (
        *_weights(task=1.0, distill=1.0),
        *RKD_PARAMS,
        *training_params(),
    )

    def distillation_loss(self) -> Objective:
        return RKDLoss(self.hparams["distance_weight"], self.hparams["angle_weight"])


class SPKD(DistillationMethod):
    """Similarity-preserving knowledge distillation of the batch's Gram matrix."""

    name = "spkd"
    summary = ("similarity-preserving KD (Tung 2019): fine-tune matching the teacher's"
               " normalised batch similarities")
    params = (*_weights(task=1.0, distill=3000.0), *training_params())

    def distillation_loss(self) -> Objective:
        return SPKDLoss()


METHODS = (KD, RKD, SPKD)
