"""Checks of the objective contract."""

from __future__ import annotations

from typing import Any

from transferlab.api import (
    Objective,
    ObjectiveExample,
)
from transferlab.testing._checks import Check, ConformanceError
from transferlab.testing._contracts.base import Component, SuiteBase, attempt

__all__ = ["ObjectiveChecks"]


class ObjectiveChecks(SuiteBase):
    """``objective[NAME]::...``: finite loss and gradients, parameters, on the objective's own
    :meth:`~transferlab.api.Objective.example`, by default a tiny classification batch with
    ``inputs``, ``labels`` and a ``teacher`` tensor ``[5, 3]`` (distillation targets)."""

    def _objective_checks(self, c: Component) -> list[Check]:
        label = c.label
        return [
            self._check("objective", label, "finite-loss", "a scalar, finite loss on a tiny"
                        " batch, also with large logits", lambda: self.check_finite_loss(c)),
            self._check("objective", label, "finite-gradients", "backward gives finite"
                        " gradients to the model, also with large logits",
                        lambda: self.check_finite_gradients(c)),
            self._check("objective", label, "bad-params", "bad parameter values fail"
                        " validation before anything is built", lambda: self.check_bad_params(c)),
        ]

    def _loss(self, c: Component, scale: float = 1.0) -> tuple[Any, Any]:
        import torch

        objective = attempt(f"building objective {c.label!r}",
                            lambda: self.registries.objectives.create(c.setting.name,
                                                                      c.setting.params),
                            "the factory must build the objective from its declared parameters")
        if not isinstance(objective, Objective):
            raise ConformanceError(f"the factory of {c.label!r} returned a"
                                   f" {type(objective).__name__}",
                                   "return a transferlab.api.Objective")
        generator = torch.Generator().manual_seed(0)
        example = attempt("example(generator)", lambda: objective.example(generator),
                          "return None or an ObjectiveExample(model, batch, forward)")
        if example is None:
            example = _classification_example(generator)
        elif not isinstance(example, ObjectiveExample):
            raise ConformanceError(f"example() of {c.label!r} returned a"
                                   f" {type(example).__name__}",
                                   "return a transferlab.api.ObjectiveExample or None")
        model, batch = example.model, example.batch
        attempt("setup(model)", lambda: objective.setup(model),
                "setup(model) may only bind to the model's weights")
        outputs = attempt("forward(model, batch) of the example",
                          lambda: example.forward(model, batch),
                          "the example's forward must run its model on its batch")
        loss = attempt("objective(outputs, batch)",
                       lambda: objective(_scaled(outputs, scale), batch),
                       "return a scalar tensor computed from outputs and the batch")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ConformanceError(
                f"objective {c.label!r} returned {type(loss).__name__}"
                f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}",
                "return a scalar torch tensor (reduce over the batch)")
        return loss, model

    def check_finite_loss(self, c: Component) -> None:
        for scale in (1.0, 100.0):
            loss, _ = self._loss(c, scale)
            if not bool(loss.detach().isfinite().all()):
                raise ConformanceError(
                    f"objective {c.label!r} gave a non-finite loss ({float(loss)}) on a tiny"
                    f" batch{' with large logits' if scale > 1 else ''}",
                    "compute in a numerically stable way (log-softmax, not log(softmax))")

    def check_finite_gradients(self, c: Component) -> None:
        for scale in (1.0, 100.0):  # large logits: confident predictions, p_y == 1 exactly
            self._check_gradients(c, scale)

    def _check_gradients(self, c: Component, scale: float) -> None:
        loss, model = self._loss(c, scale)
        if not loss.requires_grad:
            raise ConformanceError(f"the loss of {c.label!r} has no gradient",
                                   "compute it with torch operations on the outputs or the"
                                   " weights, without detaching")
        attempt("loss.backward()", loss.backward, "the loss must be differentiable")
        grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        if not grads:
            raise ConformanceError(f"the loss of {c.label!r} gives the model no gradient",
                                   "make the loss depend on the outputs or the weights")
        bad = [n for n, g in grads if not bool(g.isfinite().all())]
        if bad:
            raise ConformanceError(f"objective {c.label!r} gives non-finite gradients to"
                                   f" {', '.join(bad)}{' with large logits' if scale > 1 else ''}",
                                   "compute in a numerically stable way (no x ** p with p < 1"
                                   " or log(x) at x = 0; clamp such x away from 0)")


def _classification_example(generator: Any) -> ObjectiveExample:
    """A linear model over 6 features to 3 classes, 5 examples, seeded weights."""
    import torch
    from torch import nn

    model = nn.Linear(6, 3)
    with torch.no_grad():
        for weight in model.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator))
    inputs = torch.randn(5, 6, generator=generator)
    # a per-example teacher tensor, as distillation methods add to each batch (their
    # objectives read batch["teacher"]: logits over the 3 classes, or embeddings)
    return ObjectiveExample(model, {"inputs": inputs, "labels": torch.tensor([0, 1, 2, 0, 1]),
                                    "teacher": torch.randn(5, 3, generator=generator)})


def _scaled(outputs: Any, scale: float) -> Any:
    """Outputs times ``scale`` (large logits), tensor by tensor when they are a mapping."""
    if scale == 1.0:
        return outputs
    if isinstance(outputs, dict):
        return {key: _scaled(value, scale) for key, value in outputs.items()}
    return outputs * scale if getattr(outputs, "is_floating_point", lambda: False)() else outputs
