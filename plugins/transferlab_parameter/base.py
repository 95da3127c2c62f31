"""What every parameter-transfer method shares: the fit sequence around the core loop.

A method only says which weights train and at what rate (:meth:`ParameterMethod.configure`)
and, optionally, which extra objective terms apply (:meth:`ParameterMethod.extend_objective`).
Everything that can be wrong with the input (budget, objective, method vs backbone) is checked
before the first training step. ``fit`` trains the backbone's module in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Backbone, Objective, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab.training.config import training_params

if TYPE_CHECKING:
    from transferlab_parameter.model import TransferModel
    from transferlab_parameter.predictor import ParameterPredictor


class ParameterMethod(TransferMethod):
    """Train (part of) a backbone plus a new linear head on its ``[B, D]`` features."""

    family = "parameter"
    needs_module = True
    params: ClassVar[tuple[Param, ...]] = training_params()

    def configure(self, model: TransferModel, backbone: Backbone) -> list[dict[str, Any]]:
        """Set ``requires_grad`` on what trains and return the AdamW parameter groups.

        Called before training; raise :class:`~transferlab.errors.IncompatibleError` when
        the method does not fit the backbone."""
        raise NotImplementedError

    def extend_objective(self, objective: Objective, model: TransferModel) -> Objective:
        """Add method-specific terms to the task objective (default: none)."""
        return objective

    def structure(self) -> dict[str, Any]:
        """What a saved predictor needs to rebuild the model's structure (default: nothing
        beyond the head)."""
        return {}

    def head_groups(self, model: TransferModel) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups

        hp = self.hparams
        return decay_groups(model.head.named_parameters(), hp["head_lr"], hp["weight_decay"],
                            "head")

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> ParameterPredictor:
        from transferlab.training.config import TrainConfig
        from transferlab.training.data import BatchSource, train_val_splits
        from transferlab.training.loop import train
        from transferlab.training.objectives import build_objective
        from transferlab_parameter.model import TransferModel
        from transferlab_parameter.predictor import ParameterPredictor

        hp = self.hparams
        config = TrainConfig.from_hparams(hp, ctx.budget)
        objective = build_objective(hp["objective"], hp["objective_params"])
        ctx.seed_everything()
        model = TransferModel(backbone, len(task.label_names))
        groups = [*self.configure(model, backbone), *self.head_groups(model)]
        objective = self.extend_objective(objective, model)
        train_split, val_split = train_val_splits(task, config.val_fraction, ctx.seed)
        train_data = BatchSource(train_split, backbone.preprocess, config.batch_size)
        val_data = None if val_split is None else BatchSource(
            val_split, backbone.preprocess, config.batch_size)
        result = train(model, train_data, val_data, objective, groups, config, ctx,
                       desc=f"{self.name} {task.name}")
        invalidate = getattr(backbone, "invalidate_fingerprint", None)
        if callable(invalidate):  # the weights changed: cached features no longer apply
            invalidate()
        predictor = ParameterPredictor(model, backbone, self.name, self.structure())
        predictor.extra.update(result.summary())
        predictor.extra["train_size"] = len(train_data)
        predictor.extra["val_size"] = 0 if val_data is None else len(val_data)
        return predictor
