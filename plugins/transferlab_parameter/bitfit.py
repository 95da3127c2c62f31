"""``bitfit``: train only the bias terms (and the new head), Ben Zaken et al. 2022.

On convolutional nets whose convolutions have no bias (EfficientNet), the biases are those of
the batch-norm layers; their running statistics stay frozen with their scales, so only the
shifts adapt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.errors import IncompatibleError
from transferlab.training.config import training_params
from transferlab_parameter.base import ParameterMethod

if TYPE_CHECKING:
    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel


class BitFit(ParameterMethod):
    """Biases of the backbone plus the head; everything else frozen."""

    name = "bitfit"
    summary = "train only the biases and the new head"
    params = training_params(lr=1e-3, head_lr=1e-3)

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups

        backbone = state.backbone
        model.freeze_body()
        biases = [(n, p) for n, p in model.body_parameters() if n.rsplit(".", 1)[-1] == "bias"]
        if not biases:
            raise IncompatibleError(f"bitfit: {backbone.name!r} has no bias terms to train;"
                                    " use lora or finetune")
        for _, param in biases:
            param.requires_grad_(True)
        return decay_groups(biases, self.hparams["lr"], 0.0, "biases")
