"""A fitted parameter-transfer model as a predictor, saved to and loaded from safetensors.

The file is one :func:`transferlab.checkpoint.save_checkpoint` of the whole
:class:`~transferlab_parameter.model.TransferModel` (backbone weights, adapters, head); its
metadata records what is needed to rebuild the same structure around a fresh backbone (class
count, and the LoRA configuration when adapters were injected). Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.api import Backbone, Predictor, RunContext
from transferlab.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from transferlab.errors import CheckpointError
from transferlab_parameter.model import TransferModel

KIND = "transferlab-parameter-predictor"


class ParameterPredictor(Predictor):
    """Arg-max of the trained model; counts cover the prediction path (head included)."""

    def __init__(self, model: TransferModel, backbone: Backbone, method: str,
                 structure: dict[str, Any] | None = None) -> None:
        self.model = model
        self.backbone = backbone
        self.method = method
        self.structure = dict(structure or {})
        self.trainable_params, self.total_params = model.counts()
        self.extra: dict[str, Any] = {}

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        from transferlab.training.evaluate import predict_labels

        device = next(self.model.parameters()).device
        return predict_labels(self.model, inputs, self.backbone.preprocess,
                              self.backbone.default_batch_size, device)

    def save(self, path: str | Path) -> Path:
        """Write the model and its structure to one safetensors file (atomically)."""
        config = {"kind": KIND, "method": self.method,
                  "num_classes": self.model.head.out_features,
                  "feature_dim": self.model.head.in_features, "structure": self.structure,
                  "counts": [self.trainable_params, self.total_params]}
        return save_checkpoint(self.model, path, name=self.backbone.name, config=config)

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone) -> ParameterPredictor:
        """Rebuild the predictor around ``backbone`` (built like the one it was trained on)
        and load the saved weights; names, structure and every shape are checked."""
        meta = read_metadata(path)
        config = meta.get("config", {})
        if config.get("kind") != KIND:
            raise CheckpointError(f"{path} is not a saved parameter-transfer predictor; save one"
                                  " with ParameterPredictor.save")
        if config["feature_dim"] != backbone.feature_dim:
            raise CheckpointError(f"{path} expects {config['feature_dim']}-d features but"
                                  f" {backbone.name} gives {backbone.feature_dim}")
        model = TransferModel(backbone, int(config["num_classes"]))
        structure = config.get("structure", {})
        if structure.get("lora"):
            from transferlab_parameter.adapters import inject_lora

            inject_lora(model, structure["lora"])
        load_checkpoint(path, model, expected_name=backbone.name.split("@", 1)[0])
        predictor = cls(model, backbone, config.get("method", "?"), structure)
        predictor.trainable_params, predictor.total_params = config.get(
            "counts", model.counts())
        model.eval()
        return predictor
