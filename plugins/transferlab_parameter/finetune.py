"""``finetune``: train every weight, with separate backbone and head learning rates.

The new head starts random while the backbone starts pretrained, so the head gets a larger
rate (default 10x) and the backbone a small one that refines rather than overwrites.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab_parameter.base import ParameterMethod

if TYPE_CHECKING:
    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel


class Finetune(ParameterMethod):
    """Full fine-tuning: all backbone weights plus a new linear head."""

    name = "finetune"
    summary = "train all weights (backbone lr and head lr separately)"

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups

        named = list(model.body_parameters())
        for _, param in named:
            param.requires_grad_(True)
        hp = self.hparams
        return decay_groups(named, hp["lr"], hp["weight_decay"], "backbone")
