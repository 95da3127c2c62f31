"""The parameter methods' predictor: the core's :class:`ModelPredictor`, reloading LoRA
adapters (the only structure a built-in parameter method changes) before the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.api import Backbone
from transferlab.training.model import TransferModel
from transferlab.training.predictor import KIND, ModelPredictor

__all__ = ["KIND", "ParameterPredictor", "rebuild_structure"]


def rebuild_structure(model: TransferModel, structure: dict[str, Any]) -> None:
    """Re-inject the LoRA adapters a saved model was trained with."""
    if structure.get("lora"):
        from transferlab_parameter.adapters import inject_lora

        inject_lora(model, structure["lora"])


class ParameterPredictor(ModelPredictor):
    """A :class:`ModelPredictor` that knows the parameter methods' structures."""

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone, rebuild: Any = None
             ) -> ParameterPredictor:
        predictor = super().load(path, backbone, rebuild or rebuild_structure)
        assert isinstance(predictor, ParameterPredictor)
        return predictor
