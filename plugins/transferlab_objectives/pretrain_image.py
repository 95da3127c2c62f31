"""How ``contrastive`` and ``reconstruction`` train an image backbone (``transferlab pretrain``).

The training images are decoded once, resized to the backbone's input size, and kept as
uint8 tensors. ``contrastive`` (SimCLR) draws two :class:`~.pretraining_data.SimCLRAugment`
views of each image from the step's generator, runs both through the backbone in one pass
(batch-norm statistics over both views, as SimCLR computes them), and maps the pooled
features through SimCLR's projection head (a ReLU MLP to 128 dimensions) before NT-Xent; the
head is thrown away after pretraining, only the backbone is saved. ``reconstruction`` decodes
the pooled features of the (first) view back to the normalised image with a
:class:`~.pretraining.ConvDecoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from transferlab.errors import DataError, IncompatibleError
from transferlab.pretraining import Examples, PretrainingSetup, UnlabeledData
from transferlab_objectives.pretraining import ConvDecoder
from transferlab_objectives.pretraining_data import SimCLRAugment

__all__ = ["PROJECTION_DIM", "build_image_pretraining", "load_images"]

PROJECTION_DIM = 128  # SimCLR's projection output (Chen et al. 2020, appendix B.9)


def load_images(inputs: Sequence[Any], size: int) -> torch.Tensor:
    """Images (paths, arrays, PIL) as a uint8 tensor ``[N, 3, size, size]``."""
    import numpy as np
    from PIL import Image

    from transferlab.data import load_image

    out = np.empty((len(inputs), size, size, 3), dtype=np.uint8)
    for i, item in enumerate(inputs):
        image = load_image(item)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def build_image_pretraining(backbone: Any, data: UnlabeledData, terms: Sequence[Any],
                            seed: int) -> PretrainingSetup:
    """The :class:`PretrainingSetup` of an image backbone for ``contrastive`` and/or
    ``reconstruction`` (``terms`` are (objective, weight) pairs)."""
    names = {objective.name for objective, _ in terms}
    config = getattr(backbone, "data_config", None)
    if backbone.modality != "image" or config is None:
        raise IncompatibleError(f"objectives {sorted(names)} pretrain image backbones with a"
                                f" data config (timm:...), not {backbone.name!r}")
    if not data.split("train"):
        raise DataError(f"{data.source} has no training images")
    size = int(backbone.img_size)
    mean = torch.tensor(config["mean"], dtype=torch.float32).reshape(1, 3, 1, 1)
    std = torch.tensor(config["std"], dtype=torch.float32).reshape(1, 3, 1, 1)
    augment = SimCLRAugment(size=size)
    width = backbone.feature_dim
    heads = nn.ModuleDict()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if "contrastive" in names:
            heads["projection"] = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                                nn.Linear(width, PROJECTION_DIM))
        if "reconstruction" in names:
            heads["decoder"] = ConvDecoder(width, 3, size)
    module = nn.ModuleDict({"backbone": backbone.module, "heads": heads})

    def examples(inputs: Sequence[Any]) -> Examples:
        images = load_images(inputs, size)

        def batch(rows: Sequence[int], generator: torch.Generator) -> dict[str, Any]:
            chosen = images[list(rows)].float() / 255.0
            if "contrastive" in names:
                first, second = augment.views(chosen, generator)
                return {"inputs": (first - mean) / std, "inputs2": (second - mean) / std}
            return {"inputs": (chosen - mean) / std}

        return Examples(len(images), batch)

    train = examples(data.split("train"))
    validation = examples(data.split("validation")) if data.split("validation") else None

    def forward(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        first = batch["inputs"]
        both = torch.cat([first, batch["inputs2"]]) if "inputs2" in batch else first
        features = backbone.features(both)
        outputs: dict[str, torch.Tensor] = {}
        if "contrastive" in names:
            projected = heads["projection"](features)
            outputs["embeddings"], batch["view2"] = projected.split(len(first))
        if "reconstruction" in names:
            outputs["reconstruction"] = heads["decoder"](features[: len(first)])
        return outputs

    return PretrainingSetup(module, train, forward, validation, unit="images",
                            units=lambda batch: len(batch["inputs"]))
