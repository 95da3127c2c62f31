"""The public training API: :class:`GradientMethod`, the base of every gradient-based method.

A method says *what trains and how fast* (:meth:`GradientMethod.configure`), optionally adds
objective terms (:meth:`~GradientMethod.extend_objective`), and may split training into
stages (:meth:`~GradientMethod.stages`, e.g. LP-FT: probe the head, then fine-tune). The fit
sequence, the shared loop, validation carving, the predictor and its save/load are here, so a
new method is tens of lines. Built-in parameter methods use it exactly as a third party would.

The fit sequence (deterministic for a seed): resolve the training config and the objective
(from the run's registries), seed, build the :class:`TransferModel` (the new head's
initialisation draws from torch's generator), carve the validation split, then for each stage:
callbacks' ``on_stage_start``, :meth:`~GradientMethod.begin_stage`, ``configure`` plus the
head's groups, the loop (``on_epoch_end`` after every epoch), ``on_stage_end``. Finally the
backbone's fingerprint is invalidated (its weights changed) and a :class:`ModelPredictor`
returned, with what happened in ``predictor.extra``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Backbone, Objective, RunContext, Task, TransferMethod
from transferlab.params import Param
from transferlab.training.config import training_params

if TYPE_CHECKING:
    from transferlab.training.data import BatchSource, TrainValSplit
    from transferlab.training.loop import TrainResult
    from transferlab.training.model import TransferModel
    from transferlab.training.predictor import ModelPredictor

__all__ = ["Callback", "FitState", "GradientMethod", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One stage of training: a name and the training parameters it overrides (e.g.
    ``Stage("probe", {"epochs": 5})``); stages run in order on one model. A stage with
    ``train=False`` runs only :meth:`GradientMethod.begin_stage` (e.g. a closed-form fit)."""

    name: str = "train"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    train: bool = True


@dataclass
class FitState:
    """Everything a stage, a hook or a callback may need while a method fits."""

    method: GradientMethod
    backbone: Backbone
    task: Task
    ctx: RunContext
    model: TransferModel
    data: TrainValSplit
    objective: Objective
    stage: Stage = field(default_factory=Stage)
    results: dict[str, TrainResult] = field(default_factory=dict)
    train_batches: BatchSource | None = None
    val_batches: BatchSource | None = None


class Callback:
    """Observes training; override any of the methods (defaults do nothing)."""

    def on_stage_start(self, state: FitState) -> None:
        """Before a stage's parameter groups are configured."""

    def on_epoch_end(self, state: FitState, record: Mapping[str, float]) -> None:
        """After each epoch: ``record`` has epoch, train_loss, lr and (with validation)
        val_accuracy and val_loss."""

    def on_stage_end(self, state: FitState, result: TrainResult) -> None:
        """After a stage's loop (best epoch already restored)."""


class GradientMethod(TransferMethod):
    """Train (part of) a backbone plus a new linear head on its ``[B, D]`` features.

    Subclasses set ``name`` and ``summary``, declare ``params`` (start from
    :func:`~transferlab.training.config.training_params`), and implement :meth:`configure`.
    Everything else has a default.
    """

    family: ClassVar[str] = "parameter"
    needs_module: ClassVar[bool] = True
    saves_predictor: ClassVar[bool] = True  # ModelPredictor.save / .load
    params: ClassVar[tuple[Param, ...]] = training_params()

    # -- what subclasses override -------------------------------------------------------
    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        """Set ``requires_grad`` on the backbone weights that train in ``state.stage`` and
        return their AdamW parameter groups (``decay_groups`` builds them); the new head's
        groups are added by :meth:`head_groups`. Raise
        :class:`~transferlab.errors.IncompatibleError` when the backbone does not fit."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure()")

    def stages(self, state: FitState) -> Sequence[Stage]:
        """The stages to train, in order (default: one stage, ``train``)."""
        return (Stage(),)

    def begin_stage(self, state: FitState) -> None:
        """Called at the start of each stage, before :meth:`configure` (default: nothing);
        e.g. LP-FT fits the head on cached features here."""

    def callbacks(self, state: FitState) -> Sequence[Callback]:
        """Callbacks observing this fit (default: none)."""
        return ()

    def extend_objective(self, objective: Objective, model: TransferModel) -> Objective:
        """Add method-specific terms to the task objective (default: none)."""
        return objective

    def structure(self) -> dict[str, Any]:
        """What a saved predictor needs to rebuild the model's structure (default: nothing
        beyond the head); :meth:`rebuild` re-applies it on load."""
        return {}

    @staticmethod
    def rebuild(model: TransferModel, structure: dict[str, Any]) -> None:
        """Re-apply :meth:`structure` to a fresh model before saved weights load."""

    def head_groups(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        """The new head's parameter group (``head_lr``, ``weight_decay``)."""
        from transferlab.training.schedule import decay_groups

        hp = {**self.hparams, **state.stage.overrides}
        return decay_groups(model.head.named_parameters(), hp["head_lr"], hp["weight_decay"],
                            "head")

    # -- the fit sequence ---------------------------------------------------------------
    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> ModelPredictor:
        from transferlab.training.model import TransferModel
        from transferlab.training.objectives import build_objective

        objective = build_objective(self.hparams["objective"], registries=ctx.registries)
        ctx.seed_everything()
        model = TransferModel(backbone, len(task.label_names))
        state = self.fit_model(model, task, ctx, objective=objective)
        return self._predictor(state)

    def fit_model(self, model: TransferModel, task: Task, ctx: RunContext, *,
                  objective: Objective | None = None, validate: bool = True) -> FitState:
        """Run this method's stages on an existing ``model`` (whose head may span more classes
        than ``task`` has: multi-task and continual regimes lay several tasks' heads side by
        side) and return the final :class:`FitState`.

        ``objective`` replaces the one the ``objective`` parameter names (regimes wrap it to
        mask other tasks' columns); ``validate=False`` trains without a validation split, for
        a fixed number of steps. The caller seeds; :meth:`fit` is this plus a new model.
        """
        from transferlab.training.config import TrainConfig
        from transferlab.training.data import BatchSource, carve_validation
        from transferlab.training.objectives import build_objective

        hp = self.hparams
        config = TrainConfig.from_hparams(hp, ctx.budget)
        if objective is None:
            objective = build_objective(hp["objective"], registries=ctx.registries)
        data = carve_validation(task, config.val_fraction if validate else 0.0, ctx.seed)
        state = FitState(self, model.backbone, task, ctx, model, data, objective)
        state.train_batches = BatchSource(data.train, model.backbone.preprocess,
                                          config.batch_size)
        if data.val is not None:
            state.val_batches = BatchSource(data.val, model.backbone.preprocess,
                                            config.batch_size)
        for stage in self.stages(state):
            state.stage = stage
            state.results[stage.name] = self._run_stage(state)
        state.model.eval()
        model.backbone.invalidate_fingerprint()  # the weights changed: cached features are stale
        return state

    def _run_stage(self, state: FitState) -> TrainResult:
        from transferlab.training.config import TrainConfig
        from transferlab.training.loop import TrainResult, train

        callbacks = list(self.callbacks(state))
        for callback in callbacks:
            callback.on_stage_start(state)
        self.begin_stage(state)
        if not state.stage.train:
            result = TrainResult(stop_reason="no-training")
            for callback in callbacks:
                callback.on_stage_end(state, result)
            return result
        model = state.model
        groups = [*self.configure(model, state), *self.head_groups(model, state)]
        objective = self.extend_objective(state.objective, model)
        config = TrainConfig.from_hparams({**self.hparams, **state.stage.overrides},
                                          state.ctx.budget)
        if config.mixed_precision == "auto":  # the backbone's precision for training
            from transferlab.precision import effective, training_autocast

            config = replace(config, mixed_precision=training_autocast(
                effective(state.backbone, state.ctx.device, training=True)))
        assert state.train_batches is not None
        result = train(
            model, state.train_batches, state.val_batches, objective, groups, config,
            state.ctx, desc=f"{self.name} {state.task.name}",
            on_epoch_end=lambda record: [c.on_epoch_end(state, record) for c in callbacks],
        )
        for callback in callbacks:
            callback.on_stage_end(state, result)
        return result

    def make_predictor(self, state: FitState) -> ModelPredictor:
        """The predictor around the trained model (override to return a subclass)."""
        from transferlab.training.predictor import ModelPredictor

        return ModelPredictor(state.model, state.backbone, self.name, self.structure())

    def _predictor(self, state: FitState) -> ModelPredictor:
        predictor = self.make_predictor(state)
        results = list(state.results.values())
        if results:
            predictor.extra.update(results[-1].summary())
        if len(results) > 1:
            predictor.extra["stages"] = {name: r.summary() for name, r in state.results.items()}
        predictor.extra["train_size"] = len(state.data.train)
        predictor.extra["val_size"] = 0 if state.data.val is None else len(state.data.val)
        return predictor
