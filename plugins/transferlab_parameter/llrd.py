"""``llrd``: layer-wise learning-rate decay (ULMFiT's discriminative rates, BEiT/ELECTRA).

Group i of n (bottom to top) trains at ``lr * decay^(n-1-i)``: the top group at ``lr``, each
group below a factor ``decay`` slower, so the generic low layers move least. The head has its
own ``head_lr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.params import Param
from transferlab.training.config import training_params
from transferlab_parameter.base import ParameterMethod

if TYPE_CHECKING:
    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel


class LayerwiseDecay(ParameterMethod):
    """All weights, with learning rates decaying geometrically from the top group down."""

    name = "llrd"
    summary = "all weights, learning rate decaying by layer group from the top down"
    params = (
        Param("decay", float, 0.75, "rate multiplier per group going down", min=0.0, max=1.0),
        *training_params(lr=2e-4),
    )

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups
        from transferlab_parameter.groups import feature_groups

        backbone = state.backbone
        groups = feature_groups(backbone, model, self.name)
        hp = self.hparams
        result: list[dict[str, Any]] = []
        for index, (name, params) in enumerate(groups):
            for param in params:
                param.requires_grad_(True)
            rate = hp["lr"] * hp["decay"] ** (len(groups) - 1 - index)
            result += decay_groups(((name, p) for p in params), rate, hp["weight_decay"], name)
        return result
