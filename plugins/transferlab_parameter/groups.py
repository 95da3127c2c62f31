"""Layer groups on the feature path, for freezing the bottom k and layer-wise learning rates."""

from __future__ import annotations

from torch import nn

from transferlab.api import Backbone
from transferlab.errors import IncompatibleError
from transferlab.training.model import TransferModel


def feature_groups(backbone: Backbone, model: TransferModel, method: str
                   ) -> list[tuple[str, list[nn.Parameter]]]:
    """``backbone.layer_groups()`` bottom to top as (name, parameters), without the source
    head's group; body parameters no group names join the top group (timm puts ``conv_head``
    in the last stage, other backbones may leave final norms out)."""
    unused = {id(p) for p in model.unused_parameters()}
    groups: list[tuple[str, list[nn.Parameter]]] = []
    seen: set[int] = set()
    for name, modules in backbone.layer_groups():
        params = []
        for module in modules:
            for param in module.parameters():
                if id(param) not in seen and id(param) not in unused:
                    seen.add(id(param))
                    params.append(param)
        if params:
            groups.append((name, params))
    if not groups:
        raise IncompatibleError(f"method {method!r} needs layer groups but {backbone.name!r}"
                                " defines none; use finetune, bitfit or lora")
    rest = [p for _, p in model.body_parameters() if id(p) not in seen]
    if rest:
        groups[-1] = (groups[-1][0], groups[-1][1] + rest)
    return groups
