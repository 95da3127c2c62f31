"""The built-in continual strategies.

- ``naive``: sequential fine-tuning, the lower bound: nothing protects earlier experiences.
- ``ewc``: Elastic Weight Consolidation (Kirkpatrick et al. 2017): after each experience the
  diagonal Fisher information of the weights is estimated from per-example gradients of the
  log-likelihood of the true labels (the empirical Fisher), and later experiences pay
  ``weight / 2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2``, one term per earlier
  experience (the "separate penalties" form).
- ``lwf``: Learning without Forgetting (Li and Hoiem 2016): the model as it was before the
  experience is kept frozen, and the loss adds ``weight * T^2 * KL`` between its softened
  outputs (temperature ``T``) and the new model's, over each earlier experience's columns (one
  group of all earlier classes in the class-incremental scenario).
- ``replay``: a memory of a fixed number of stored training examples, split evenly between the
  experiences seen so far (a seeded random choice per experience, shrunk as experiences
  arrive), mixed into every later experience's training data (naive rehearsal, Hsu et al.
  2018).
- ``joint``: every experience at once with the stream's whole budget: the upper bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transferlab.api import Objective, Split
from transferlab.params import Param
from transferlab.regimes.strategy import (
    ContinualStrategy,
    Experience,
    StreamState,
    concatenate,
)

if TYPE_CHECKING:  # torch is imported when a strategy runs, not when the plugin registers
    import torch

__all__ = ["EWC", "STRATEGIES", "Joint", "LwF", "Naive", "Replay"]


class Naive(ContinualStrategy):
    name = "naive"
    summary = "sequential fine-tuning, nothing protects earlier experiences (lower bound)"


class Joint(ContinualStrategy):
    name = "joint"
    summary = "every experience at once with the stream's whole step budget (upper bound)"
    joint = True


class _Extended(Objective):
    """``base`` plus ``extra(outputs, batch)``; ``setup`` reaches both."""

    name = "extended"

    def __init__(self, base: Objective, extra: Any, setup: Any = None) -> None:
        self.base, self.extra, self._setup = base, extra, setup

    def setup(self, model: torch.nn.Module) -> None:
        self.base.setup(model)
        if self._setup is not None:
            self._setup(model)

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.base(outputs, batch) + self.extra(outputs, batch)


class EWC(ContinualStrategy):
    name = "ewc"
    summary = "Elastic Weight Consolidation: a Fisher-weighted pull towards earlier weights"
    params = (
        Param("weight", float, 1000.0, "lambda: strength of the penalty", min=0.0),
        Param("fisher_samples", int, 256, "training examples (per experience) whose"
              " per-example gradients estimate the Fisher information", min=1),
    )

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        super().__init__(registered_name, **params)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def extend_objective(self, objective: Objective, experience: Experience,
                         state: StreamState) -> Objective:
        if not self.fishers or not self.hparams["weight"]:
            return objective
        bound: dict[str, torch.nn.Parameter] = {}

        def bind(model: torch.nn.Module) -> None:
            bound.update(dict(state.model.named_parameters()))

        def penalty(outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
            total = outputs.new_zeros(())
            for fisher, anchor in zip(self.fishers, self.anchors, strict=True):
                for name, f in fisher.items():
                    param = bound[name]
                    total = total + (f.to(param.device) * (param - anchor[name].to(
                        param.device)).pow(2)).sum()
            return self.hparams["weight"] / 2 * total

        return _Extended(objective, penalty, bind)

    def after_experience(self, experience: Experience, state: StreamState) -> None:
        self.fishers.append(empirical_fisher(state, experience, self.hparams["fisher_samples"]))
        self.anchors.append({n: p.detach().clone() for n, p in state.model.named_parameters()
                             if n in self.fishers[-1]})

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for k, (fisher, anchor) in enumerate(zip(self.fishers, self.anchors, strict=True)):
            tensors.update({f"fisher.{k}.{n}": t for n, t in fisher.items()})
            tensors.update({f"anchor.{k}.{n}": t for n, t in anchor.items()})
        return tensors

    def state_json(self) -> dict[str, Any]:
        return {"experiences": len(self.fishers)}

    def load_state(self, tensors: Mapping[str, torch.Tensor], data: Mapping[str, Any]) -> None:
        count = int(data.get("experiences", 0))
        self.fishers = [{} for _ in range(count)]
        self.anchors = [{} for _ in range(count)]
        for key, tensor in tensors.items():
            kind, k, name = key.split(".", 2)
            (self.fishers if kind == "fisher" else self.anchors)[int(k)][name] = tensor


def empirical_fisher(state: StreamState, experience: Experience, samples: int
                     ) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of the trainable weights: the mean over ``samples`` training
    examples (seeded choice) of the squared gradient of each example's masked
    log-likelihood of its true label."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from transferlab.regimes.heads import MASKED

    model, backbone = state.model, state.model.backbone
    train = experience.train
    rng = np.random.default_rng([state.ctx.seed, 8191, experience.index])
    chosen = rng.choice(len(train), size=min(samples, len(train)), replace=False)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    device = next(model.parameters()).device
    masks = state.row_masks.to(device)
    was_training = model.training
    model.eval()  # the Fisher of the trained model, without dropout noise
    for i in chosen:
        batch = backbone.preprocess([train.inputs[i]])
        from transferlab.training.data import to_device

        logits = model(to_device(batch, device))
        label = torch.as_tensor([train.labels[i]], device=device)
        logits = logits.masked_fill(~masks[label], MASKED)
        loss = F.cross_entropy(logits.float(), label)
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name, param in params.items():
            if param.grad is not None:
                fisher[name] += param.grad.detach().pow(2)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / len(chosen) for n, f in fisher.items()}


class LwF(ContinualStrategy):
    name = "lwf"
    summary = "Learning without Forgetting: distil the previous model's outputs on new data"
    params = (
        Param("weight", float, 1.0, "weight of the distillation term", min=0.0),
        Param("temperature", float, 2.0, "softmax temperature of the distillation", min=1e-3),
    )

    def extend_objective(self, objective: Objective, experience: Experience,
                         state: StreamState) -> Objective:
        if experience.index == 0 or not self.hparams["weight"]:
            return objective
        import copy

        import torch
        from torch.nn import functional as F

        teacher = copy.deepcopy(state.model).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        earlier = range(experience.index)
        if state.scenario == "task-incremental":
            groups = [list(state.layout.columns(k)) for k in earlier]
        else:
            groups = [[c for k in earlier for c in state.layout.columns(k)]]
        temperature, weight = self.hparams["temperature"], self.hparams["weight"]

        def distil(outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
            with torch.no_grad():
                old = teacher.to(outputs.device)(batch["inputs"]).float()
            total = outputs.new_zeros(())
            for columns in groups:
                new_log = F.log_softmax(outputs[:, columns].float() / temperature, dim=1)
                old_prob = F.softmax(old[:, columns] / temperature, dim=1)
                total = total + F.kl_div(new_log, old_prob, reduction="batchmean")
            return weight * temperature ** 2 * total

        return _Extended(objective, distil)


class Replay(ContinualStrategy):
    name = "replay"
    summary = "rehearse a fixed-size memory of stored examples from earlier experiences"
    params = (
        Param("memory", int, 200, "stored training examples in total, split evenly between"
              " the experiences seen", min=1),
    )

    def __init__(self, registered_name: str | None = None, /, **params: Any) -> None:
        super().__init__(registered_name, **params)
        self.stored: dict[int, list[int]] = {}  # experience index -> rows of its train split

    def training_split(self, experience: Experience, state: StreamState) -> Split:
        if not self.stored:
            return experience.train
        memory = [Split([state.experiences[k].train.inputs[i] for i in rows],
                        state.experiences[k].train.labels[rows])
                  for k, rows in sorted(self.stored.items())]
        return concatenate([experience.train, *memory])

    def after_experience(self, experience: Experience, state: StreamState) -> None:
        import numpy as np

        rng = np.random.default_rng([state.ctx.seed, 131, experience.index])
        size = len(experience.train)
        self.stored[experience.index] = [int(i) for i in rng.permutation(size)]
        quota = self.hparams["memory"] // len(self.stored)
        extra = self.hparams["memory"] - quota * len(self.stored)
        for position, k in enumerate(sorted(self.stored)):  # earlier ones get the remainder
            self.stored[k] = self.stored[k][: quota + (1 if position < extra else 0)]

    def state_json(self) -> dict[str, Any]:
        return {"stored": {str(k): v for k, v in self.stored.items()}}

    def load_state(self, tensors: Mapping[str, torch.Tensor], data: Mapping[str, Any]) -> None:
        self.stored = {int(k): list(v) for k, v in data.get("stored", {}).items()}


STRATEGIES = (Naive, EWC, LwF, Replay, Joint)
