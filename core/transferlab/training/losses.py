"""Objective building blocks that several plugins compose: a weight penalty and the weighted
sum. They live in the core so that methods (``l2sp``) and the objectives plugin share them
without importing each other's modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from transferlab.api import Objective
from transferlab.errors import ParamError

__all__ = ["L2Penalty", "WeightedSum"]


class L2Penalty(Objective):
    """``weight * sum ||w - w_ref||^2`` over bound weights (``w_ref`` = 0 without reference).

    With reference = the pretrained weights this is the L2-SP penalty (Li et al., 2018), which
    pulls fine-tuned weights towards their starting point instead of towards zero. Unbound,
    :meth:`setup` binds it to every trainable parameter of the model (plain L2 regularisation).
    """

    name = "l2"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight
        self.params: list[nn.Parameter] = []
        self.reference: list[torch.Tensor] | None = None

    def bind(self, params: Iterable[nn.Parameter],
             reference: Sequence[torch.Tensor] | None = None) -> L2Penalty:
        """Penalise ``params``, towards ``reference`` (copied now) when given."""
        self.params = list(params)
        if reference is not None:
            reference = [r.detach().clone() for r in reference]
            if [r.shape for r in reference] != [p.shape for p in self.params]:
                raise ParamError("l2: reference tensors do not match the penalised weights")
        self.reference = reference
        return self

    def setup(self, model: nn.Module) -> None:
        if not self.params:
            self.bind(p for p in model.parameters() if p.requires_grad)
        if self.reference is not None:
            device = self.params[0].device if self.params else "cpu"
            self.reference = [r.to(device) for r in self.reference]

    def __call__(self, outputs: Any = None, batch: Mapping[str, Any] | None = None
                 ) -> torch.Tensor:
        if not self.params or not self.weight:
            return torch.zeros((), device=self.params[0].device if self.params else None)
        if self.reference is None:
            terms = [p.float().pow(2).sum() for p in self.params]
        else:
            terms = [(p.float() - r.float()).pow(2).sum()
                     for p, r in zip(self.params, self.reference, strict=True)]
        return self.weight * torch.stack(terms).sum()


class WeightedSum(Objective):
    """``sum_i weight_i * objective_i(outputs, batch)``: how objectives compose."""

    name = "weighted-sum"

    def __init__(self, terms: Sequence[tuple[float, Objective]]) -> None:
        if not terms:
            raise ParamError("weighted-sum needs at least one term, e.g."
                             " terms=cross-entropy:1+l2:1")
        self.terms = [(float(w), obj) for w, obj in terms]

    def setup(self, model: nn.Module) -> None:
        for _, objective in self.terms:
            objective.setup(model)

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        total: torch.Tensor | float = 0.0
        for weight, objective in self.terms:
            if weight:
                total = total + weight * objective(outputs, batch)
        return total if isinstance(total, torch.Tensor) else torch.zeros(())
