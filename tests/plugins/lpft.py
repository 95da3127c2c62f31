"""A third-party LP-FT (Kumar et al. 2022), written only against the public training API.

Stage one fits the new head as a logistic-regression probe on the backbone's cached frozen
features of exactly the examples training uses; stage two fine-tunes everything from there.
With ``probe=false`` it is plain fine-tuning (a test checks it predicts exactly as
``finetune``).
"""

from __future__ import annotations

from typing import Any

from transferlab import hookimpl
from transferlab.params import Param
from transferlab.training import FitState, GradientMethod, Stage, decay_groups, training_params


class LinearProbeThenFinetune(GradientMethod):
    name = "lp-ft-example"
    summary = "fit the head on frozen features, then fine-tune everything from it"
    params = (
        Param("probe", bool, True, "fit the head as a linear probe before fine-tuning"),
        Param("probe_C", float, 1.0, "inverse L2 strength of the probe", min=1e-9),
        *training_params(),
    )

    def stages(self, state: FitState) -> list[Stage]:
        probe = [Stage("probe", train=False)] if self.hparams["probe"] else []
        return [*probe, Stage("finetune")]

    def begin_stage(self, state: FitState) -> None:
        if state.stage.name != "probe":
            return
        import torch
        from sklearn.linear_model import LogisticRegression

        features = state.ctx.features(state.backbone, state.task, "train")
        features = features[state.data.train_indices]
        probe = LogisticRegression(C=self.hparams["probe_C"], max_iter=2000)
        probe.fit(features, state.data.train.labels)
        coef, bias = probe.coef_, probe.intercept_
        rows = probe.classes_ if len(coef) > 1 else probe.classes_[1:]  # binary: one row
        head = state.model.head
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.weight[rows] = torch.as_tensor(coef, dtype=head.weight.dtype)
            head.bias[rows] = torch.as_tensor(bias, dtype=head.bias.dtype)

    def configure(self, model: Any, state: FitState) -> list[dict[str, Any]]:
        named = list(model.body_parameters())
        for _, weight in named:
            weight.requires_grad_(True)
        return decay_groups(named, self.hparams["lr"], self.hparams["weight_decay"], "backbone")


@hookimpl
def register_methods(register: Any) -> None:
    register(LinearProbeThenFinetune)
