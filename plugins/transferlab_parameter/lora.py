"""``lora``: low-rank adapters (Hu et al. 2021) through the ``peft`` library.

Each targeted layer W gains ``B @ A`` (rank r, scaled by alpha / r) with B starting at zero, so
training starts exactly from the pretrained function; W itself stays frozen. Adapters are
injected into the backbone's module in place (``peft.inject_adapter_in_model``), so
``backbone.features`` runs through them unchanged.

Default targets (``target_modules=auto``), per architecture:

- **transformers models** (text backbones): every ``nn.Linear`` of the transformer, i.e. the
  attention projections (query/key/value/output) and the MLP, except the pooler, which
  mean-pooled sentence features never use. This is where LoRA was designed to go.
- **convolutional nets** (timm, e.g. EfficientNet-Lite): the pointwise 1x1 convolutions
  (``conv_pw``, ``conv_pwl``) and ``conv_head``, plus any linear layer on the feature path.
  They hold nearly all the weights and are matrices in disguise. Depthwise convolutions are
  left out: peft refuses a grouped convolution unless the rank is divisible by its groups
  (32-1152 here, rank 8), and their few weights gain little from a low-rank update.
  The stem's 3x3 convolution is left out as well (27 inputs per output: low rank buys nothing).

The backbone's source head (ImageNet classifier) is never targeted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferlab.params import Param
from transferlab.training.config import training_params
from transferlab_parameter.base import ParameterMethod

if TYPE_CHECKING:
    from transferlab.training.method import FitState
    from transferlab.training.model import TransferModel



class LoRA(ParameterMethod):
    """Frozen backbone with trainable low-rank adapters, plus a new head."""

    name = "lora"
    summary = "low-rank adapters (peft) on linear/pointwise layers; backbone frozen"
    params = (
        Param("r", int, 8, "adapter rank", min=1),
        Param("alpha", float, 16.0, "adapter scale numerator (update scaled by alpha / r)",
              min=0.0),
        Param("dropout", float, 0.05, "dropout on the adapter input", min=0.0, max=0.99),
        Param("target_modules", str, "auto", "comma-separated layer names or name suffixes"
              " (peft's rule), or auto for the per-architecture default"),
        *training_params(lr=1e-3, head_lr=1e-3),
    )

    def configure(self, model: TransferModel, state: FitState) -> list[dict[str, Any]]:
        from transferlab.training.schedule import decay_groups
        from transferlab_parameter.adapters import inject_lora, resolve_targets

        backbone = state.backbone
        hp = self.hparams
        targets = resolve_targets(model, backbone, hp["target_modules"], hp["r"])
        self._spec = {"r": hp["r"], "alpha": hp["alpha"], "dropout": hp["dropout"],
                      "targets": targets}
        inject_lora(model, self._spec)
        adapters = [(n, p) for n, p in model.body.named_parameters() if p.requires_grad]
        return decay_groups(adapters, hp["lr"], hp["weight_decay"], "adapters")

    def structure(self) -> dict[str, Any]:
        return {"lora": self._spec}
