"""A trained :class:`~transferlab.training.model.TransferModel` as a predictor, saved to and
loaded from safetensors.

The file is one :func:`transferlab.checkpoint.save_checkpoint` of the whole model (backbone
weights, adapters, head); its metadata records what is needed to rebuild the same structure
around a fresh backbone: the class count, and the method's ``structure`` (e.g. the LoRA
configuration), which the method's ``rebuild`` re-applies before the weights load. Nothing is
pickled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.api import Backbone, Predictor, RunContext
from transferlab.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from transferlab.errors import CheckpointError
from transferlab.training.model import TransferModel

__all__ = ["KIND", "ModelPredictor"]

KIND = "transferlab-parameter-predictor"  # the file format's name; kept for older files


class ModelPredictor(Predictor):
    """Arg-max of the trained model; counts cover the prediction path (head included)."""

    def __init__(self, model: TransferModel, backbone: Backbone, method: str,
                 structure: dict[str, Any] | None = None) -> None:
        self.model = model
        self.backbone = backbone
        self.method = method
        self.structure = dict(structure or {})
        self.trainable_params, self.total_params = model.counts()

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
    def load(cls, path: str | Path, backbone: Backbone,
             rebuild: Callable[[TransferModel, dict[str, Any]], None] | None = None,
             ) -> ModelPredictor:
        """Rebuild the predictor around ``backbone`` (built like the one it was trained on)
        and load the saved weights; names, structure and every shape are checked.

        ``rebuild(model, structure)`` re-applies what the method changed in the model's
        structure (adapters) before the weights load; methods pass their own."""
        meta = read_metadata(path)
        config = meta.get("config", {})
        if config.get("kind") != KIND:
            raise CheckpointError(f"{path} is not a saved parameter-transfer predictor; save one"
                                  " with ModelPredictor.save")
        if config["feature_dim"] != backbone.feature_dim:
            raise CheckpointError(f"{path} expects {config['feature_dim']}-d features but"
                                  f" {backbone.name} gives {backbone.feature_dim}")
        model = TransferModel(backbone, int(config["num_classes"]))
        structure = config.get("structure", {})
        if rebuild is not None:
            rebuild(model, structure)
        elif structure:
            raise CheckpointError(f"{path} was saved by method {config.get('method')!r}, which"
                                  " changed the model's structure; load it with that method's"
                                  " predictor class")
        load_checkpoint(path, model, expected_name=backbone.name.split("@", 1)[0])
        predictor = cls(model, backbone, config.get("method", "?"), structure)
        predictor.trainable_params, predictor.total_params = config.get(
            "counts", model.counts())
        model.eval()
        return predictor
