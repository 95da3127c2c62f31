"""``co-tuning``: fine-tune with the backbone's own source classifier kept in the loss (You,
Kou, Jiang, Wang and Long 2020, "Co-Tuning for Transfer Learning", NeurIPS).

Fine-tuning throws the pretrained classifier away (timm's ImageNet head), and with it what
the source task knew about its 1,000 categories. Co-tuning keeps it: it learns how the target
categories relate to the source ones, p(y_s | y_t), and then trains the source head alongside
the new target head, against the soft source labels ``relationship[y]`` of each example, so
the source head keeps supervising the shared features with the target's own labels.

Two stages on the public training API:

1. ``relationship`` (no gradient steps): the source head's probabilities on the cached frozen
   features of exactly the training rows (the carved validation rows left out), averaged per
   target class. This is the *direct* approach of the paper (section 4.2), the default of
   TLlib (``tllib/regularization/co_tuning.py``, ``Relationship.get_category_relationship``),
   whose reproduction the issue compares with. The authors' release (``thuml/CoTuning``,
   ``train.py``) defaults to the *reverse* approach instead (a logistic regression from source
   probabilities to target labels, its C and a temperature chosen on validation data, inverted
   by Bayes' rule); it is not implemented here. TLlib applies no temperature and no smoothing;
   ``temperature`` (default 1) divides the logits first for who wants one (the authors' release
   multiplies ResNet-50's logits by 0.884, i.e. ``temperature=1.131``). A target class without
   training rows gets the mean over all training rows (any distribution would do: no example
   ever asks for it).
2. ``finetune``: every backbone weight, the new head and the source head train together;
   loss = task objective on the target head + ``trade_off`` * cross-entropy of the source
   head's logits on the same features against ``relationship[y]``. ``trade_off`` defaults to
   2.3, the value of both the authors' ``train.py`` and TLlib's
   ``examples/task_adaptation/image_classification/co_tuning.py``. The source head trains at
   the backbone's rate ``lr``, as both do (the new head gets ``head_lr``). With
   ``trade_off=0`` the source head stays frozen and the method is exactly ``finetune``.

The source head is not on the prediction path, so the predictor's parameter counts leave it
out (as for every gradient method); its trained weights are saved with the model and reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Objective
from transferlab.errors import IncompatibleError
from transferlab.params import Param
from transferlab.training import Callback, FitState, GradientMethod, Stage, training_params

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from transferlab.api import Backbone
    from transferlab.training.loop import TrainResult
    from transferlab.training.model import TransferModel
    from transferlab.training.predictor import ModelPredictor

__all__ = ["CoTuning", "SoftSourceLoss", "SourceLogits", "category_relationship",
           "source_probabilities"]


def category_relationship(probabilities: np.ndarray, labels: np.ndarray,
                          num_classes: int) -> np.ndarray:
    """p(y_source | y_target) by the direct approach: row ``c`` is the mean of the source
    probabilities ``[N, K]`` of the examples labelled ``c`` (``[num_classes, K]``, float64,
    rows summing to 1). A class without examples gets the mean over all of them."""
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or not len(labels):
        raise ValueError(f"need one row of source probabilities per label, got"
                         f" {probabilities.shape} for {len(labels)} labels")
    sums = np.zeros((num_classes, probabilities.shape[1]))
    np.add.at(sums, labels, probabilities)
    counts = np.bincount(labels, minlength=num_classes)[:, None]
    relationship = np.where(counts > 0, sums / np.maximum(counts, 1),
                            probabilities.mean(axis=0))
    return relationship / relationship.sum(axis=1, keepdims=True)


def source_probabilities(head: nn.Module, features: np.ndarray, *, temperature: float = 1.0,
                         batch_size: int = 1024) -> np.ndarray:
    """``softmax(head(features) / temperature)`` as float64 ``[N, K]``, in eval mode without
    gradients, on the head's own device; the head's train/eval mode is restored."""
    import numpy as np
    import torch

    device = next(head.parameters()).device
    training = head.training
    head.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                x = torch.as_tensor(np.asarray(features[start : start + batch_size]),
                                    dtype=torch.float32, device=device)
                logits = head(x).double() / temperature
                chunks.append(torch.softmax(logits, dim=1).cpu().numpy())
    finally:
        head.train(training)
    return np.concatenate(chunks)


class SourceLogits:
    """The source head's logits on the features the target head saw in the last forward pass.

    :meth:`attach` hooks the model's target head, so the source head runs inside the model's
    forward (under the same mixed-precision autocast and distributed wrapper as the target
    head) on exactly its input; :meth:`take` hands the logits to the loss once.
    """

    def __init__(self, source_head: nn.Module) -> None:
        self.source_head = source_head
        self.logits: torch.Tensor | None = None
        self._handle: Any = None

    def attach(self, model: TransferModel) -> SourceLogits:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self.logits = self.source_head(args[0])

        self.detach()
        self._handle = model.head.register_forward_hook(hook)
        return self

    def detach(self) -> None:
        """Remove the hook and drop the last logits (and the graph they hold)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.logits = None

    def take(self) -> torch.Tensor:
        if self.logits is None:
            raise RuntimeError("co-tuning: no source logits; the model's forward pass did not"
                               " run through the hooked target head")
        logits, self.logits = self.logits, None
        return logits


class SoftSourceLoss(Objective):
    """Mean over the batch of ``-sum_s relationship[y, s] * log softmax(source_logits)_s``:
    the cross-entropy of the source head against each example's soft source labels."""

    name = "co-tuning-source"

    def __init__(self, relationship: torch.Tensor, logits: SourceLogits) -> None:
        self.relationship = relationship
        self.logits = logits

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        import torch

        logits = self.logits.take().float()
        labels = batch["labels"]
        if self.relationship.device != labels.device:
            self.relationship = self.relationship.to(labels.device)
        targets = self.relationship[labels]
        return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


class _DetachAtStageEnd(Callback):
    def __init__(self, method: CoTuning) -> None:
        self.method = method

    def on_stage_end(self, state: FitState, result: TrainResult) -> None:
        if self.method._logits is not None:
            self.method._logits.detach()
            self.method._logits = None


class CoTuning(GradientMethod):
    """Fine-tune every weight with the target head and the backbone's source head together,
    the source head against soft labels p(y_s | y_t) learned from the training data."""

    name = "co-tuning"
    family: ClassVar[str] = "relational"
    needs_source_head: ClassVar[bool] = True
    summary = ("fine-tune with the source (ImageNet) head kept in the loss, against soft"
               " source labels p(y_s|y_t) learned from the training data")
    params = (
        Param("trade_off", float, 2.3, "weight of the source head's loss (lambda; 2.3 as the"
              " authors and TLlib; 0 = plain finetune)", min=0.0),
        Param("temperature", float, 1.0, "divides the source head's logits before the softmax"
              " whose per-class mean is the relationship (1 as TLlib)", gt=0.0),
        *training_params(),
    )

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        super().__init__(registered_name, **params)
        self.relationship: np.ndarray | None = None  # the last fit's p(y_s | y_t)
        self._logits: SourceLogits | None = None

    # -- stages ---------------------------------------------------------------------------
    def stages(self, state: FitState) -> list[Stage]:
        return [Stage("relationship", train=False), Stage("finetune")]

    def begin_stage(self, state: FitState) -> None:
        if state.stage.name != "relationship":
            return
        import numpy as np

        head = self._source_head(state.backbone)
        features = state.ctx.features(state.backbone, state.task, "train")
        if not isinstance(features, np.ndarray):
            raise IncompatibleError(
                f"co-tuning: backbone {state.backbone.name!r} gives sparse features, which"
                " its source head cannot read; use a dense backbone with a source head")
        rows = np.asarray(state.data.train_indices)
        try:
            probabilities = source_probabilities(head, features[rows],
                                                 temperature=self.hparams["temperature"])
        except (RuntimeError, ValueError) as exc:
            raise IncompatibleError(
                f"co-tuning: the source head of {state.backbone.name!r} does not accept its"
                f" own features ({type(exc).__name__}); its source_head must map"
                " [N, feature_dim] to source logits") from None
        self.relationship = category_relationship(
            probabilities, np.asarray(state.data.train.labels), state.model.head.out_features)

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training import decay_groups

        named = list(model.body_parameters())
        for _, param in named:
            param.requires_grad_(True)
        hp = self.hparams
        groups = decay_groups(named, hp["lr"], hp["weight_decay"], "backbone")
        if hp["trade_off"] > 0:
            source = list(self._source_head(state.backbone).named_parameters())
            for _, param in source:
                param.requires_grad_(True)
            groups += decay_groups(source, hp["lr"], hp["weight_decay"], "source-head")
        return groups

    def extend_objective(self, objective: Objective, model: TransferModel) -> Objective:
        import torch

        from transferlab.training.losses import WeightedSum

        trade_off = self.hparams["trade_off"]
        if trade_off == 0:
            return objective
        if self.relationship is None:
            raise RuntimeError("co-tuning: the relationship stage has not run")
        head = self._source_head(model.backbone)
        self._logits = SourceLogits(head).attach(model)
        relationship = torch.as_tensor(self.relationship, dtype=torch.float32)
        return WeightedSum([(1.0, objective),
                            (trade_off, SoftSourceLoss(relationship, self._logits))])

    def callbacks(self, state: FitState) -> list[Callback]:
        return [_DetachAtStageEnd(self)]

    def make_predictor(self, state: FitState) -> ModelPredictor:
        predictor = super().make_predictor(state)
        if self.relationship is not None:
            predictor.extra["source_classes"] = int(self.relationship.shape[1])
        return predictor

    # -- helpers --------------------------------------------------------------------------
    def _source_head(self, backbone: Backbone) -> nn.Module:
        head = backbone.source_head
        if head is None:
            raise IncompatibleError(
                f"co-tuning reuses the backbone's source classifier but {backbone.name!r} has"
                " none (source_head); use a backbone that keeps its pretrained head, such as"
                " timm:efficientnet_lite0, or finetune")
        return head
