"""The parameter-transfer family's base: the core's public training API, unchanged.

:class:`ParameterMethod` is :class:`transferlab.training.method.GradientMethod` with the
family's predictor, whose ``load`` knows the LoRA structure. A third-party method subclasses
``GradientMethod`` directly, exactly as these built-ins do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.training.method import FitState, GradientMethod, Stage

if TYPE_CHECKING:
    from transferlab.training.model import TransferModel
    from transferlab_parameter.predictor import ParameterPredictor

__all__ = ["FitState", "ParameterMethod", "Stage"]


class ParameterMethod(GradientMethod):
    """Train (part of) a backbone plus a new linear head on its ``[B, D]`` features."""

    family: ClassVar[str] = "parameter"

    @staticmethod
    def rebuild(model: TransferModel, structure: dict[str, Any]) -> None:
        from transferlab_parameter.predictor import rebuild_structure

        rebuild_structure(model, structure)

    def make_predictor(self, state: FitState) -> ParameterPredictor:
        from transferlab_parameter.predictor import ParameterPredictor

        return ParameterPredictor(state.model, state.backbone, self.name, self.structure())
