"""The model every gradient-based method trains: a backbone's feature path plus a new linear
head on its ``[B, D]`` features.

The backbone's own source head (:attr:`transferlab.api.Backbone.source_head`, e.g. timm's
ImageNet classifier) is not on the feature path: it is frozen and left out of every parameter
count and optimizer group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from transferlab.api import Backbone
from transferlab.errors import IncompatibleError

__all__ = ["TransferModel"]


class TransferModel(nn.Module):
    """``head(backbone.features(batch))``; ``body`` registers the backbone's module so
    ``parameters()``, ``state_dict()`` and ``.to()`` cover it."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        if backbone.module is None:
            raise IncompatibleError(f"{backbone.name} has no torch module to train; use a"
                                    " feature method such as linear-probe")
        self.body = backbone.module
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        self.__dict__["backbone"] = backbone  # plain attribute, not a submodule
        source = backbone.source_head
        self._unused = {id(p) for p in source.parameters()} if source is not None else set()
        for param in self.unused_parameters():
            param.requires_grad_(False)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.head(self.backbone.features(batch))

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters off the feature path (the backbone's source head)."""
        return (p for p in self.body.parameters() if id(p) in self._unused)

    def body_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The reused backbone weights on the feature path, with their names."""
        return ((n, p) for n, p in self.body.named_parameters() if id(p) not in self._unused)

    def counts(self) -> tuple[int, int]:
        """(trainable, total) parameters on the prediction path, head included."""
        used = [p for p in self.parameters() if id(p) not in self._unused]
        return sum(p.numel() for p in used if p.requires_grad), sum(p.numel() for p in used)

    def freeze_body(self) -> None:
        """Freeze every backbone weight; methods then unfreeze what they train."""
        for param in self.body.parameters():
            param.requires_grad_(False)
