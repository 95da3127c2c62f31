"""``l2sp``: fine-tune everything with the L2-SP penalty (Li, Grandvalet, Davoine 2018).

Loss = task objective + alpha * ||w - w_pretrained||^2 over the reused backbone weights +
beta * ||w_head||^2. Plain weight decay pulls weights to zero, forgetting what pretraining
learned; L2-SP pulls them back to their starting point instead, so weight decay defaults to 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transferlab.api import Objective
from transferlab.params import Param
from transferlab.training.config import training_params
from transferlab_parameter.finetune import Finetune

if TYPE_CHECKING:
    from transferlab.training.model import TransferModel


class L2SP(Finetune):
    """Full fine-tuning (the same parameter groups as ``finetune``) regularised towards the
    pretrained weights."""

    name = "l2sp"
    summary = "all weights, penalised by alpha*||w - w_pretrained||^2 + beta*||w_head||^2"
    params = (
        Param("alpha", float, 0.01, "weight of the pull towards the pretrained weights",
              min=0.0),
        Param("beta", float, 0.01, "weight of the L2 penalty on the new head", min=0.0),
        *training_params(weight_decay=0.0),
    )

    def extend_objective(self, objective: Objective, model: TransferModel) -> Objective:
        from transferlab.training.losses import L2Penalty, WeightedSum

        reused = [p for _, p in model.body_parameters()]
        hp = self.hparams
        return WeightedSum([
            (1.0, objective),
            (1.0, L2Penalty(hp["alpha"]).bind(reused, reference=reused)),
            (1.0, L2Penalty(hp["beta"]).bind([model.head.weight])),
        ])
