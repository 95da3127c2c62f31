"""Training hyper-parameters shared by every gradient-based method, and the budget they run under.

Torch-free on purpose: methods declare :func:`training_params` in their class body, which is
imported when plugins register (``transferlab --help`` must not pay for torch).

The budget a run gets is the tightest of two sources: the method's own parameters (``epochs``,
``max_steps``, ``max_seconds``; part of the cell key, so settable from ``-p`` and from suites)
and :attr:`transferlab.api.RunContext.budget` (a cap set by whoever runs the cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transferlab.api import Budget
from transferlab.errors import ParamError
from transferlab.params import Param

PRECISIONS = ("auto", "no", "fp16", "bf16")


def training_params(
    *, lr: float = 1e-4, head_lr: float = 1e-3, weight_decay: float = 0.01, epochs: int = 10,
) -> tuple[Param, ...]:
    """The declared parameters of the shared loop, with per-method defaults for the rates."""
    return (
        Param("epochs", int, epochs, "training budget: passes over the training data", min=1),
        Param("max_steps", int, None, "training budget: optimizer steps (none = no limit)",
              min=1, nullable=True),
        Param("max_seconds", float, None, "training budget: wall-clock seconds of training"
              " (none = no limit)", min=1e-3, nullable=True),
        Param("batch_size", int, 32, "examples per forward pass", min=1),
        Param("accumulate", int, 1, "micro-batches per optimizer step (gradient accumulation)",
              min=1),
        Param("lr", float, lr, "peak AdamW learning rate of the reused backbone weights",
              min=0.0),
        Param("head_lr", float, head_lr, "peak learning rate of the new linear head", min=0.0),
        Param("weight_decay", float, weight_decay, "AdamW decoupled weight decay (not applied"
              " to biases and norm weights)", min=0.0),
        Param("warmup", float, 0.1, "fraction of the steps spent in linear warm-up before"
              " cosine decay", min=0.0, max=1.0),
        Param("grad_clip", float, 1.0, "clip the global gradient norm (0 = off)", min=0.0),
        Param("patience", int, 3, "epochs without validation improvement before stopping"
              " (0 = never stop early)", min=0),
        Param("val_fraction", float, 0.15, "share of train held out (stratified, seeded) for"
              " early stopping when the task has no val split (0 = no validation)",
              min=0.0, max=0.9),
        Param("mixed_precision", str, "auto", "auto = the backbone's precision (-B precision:"
              " bf16 where it measured faster, see docs/precision.md); no, bf16, or fp16"
              " (GPUs only) override it", choices=PRECISIONS),
        Param("objective", str, "cross-entropy", "training objective as a setting, NAME or"
              " NAME[key=value,...] (e.g. cross-entropy[label_smoothing=0.1]; `transferlab"
              " list objectives`)", refers_to="objectives"),
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs besides the model, the data and the objective."""

    budget: Budget
    batch_size: int = 32
    accumulate: int = 1
    warmup: float = 0.1
    grad_clip: float = 1.0
    patience: int = 3
    val_fraction: float = 0.15
    mixed_precision: str = "auto"
    betas: tuple[float, float] = (0.9, 0.999)

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], cap: Budget | None = None) -> TrainConfig:
        """Build from a method's resolved parameters; ``cap`` is the run's budget."""
        budget = combine_budgets(
            Budget(hparams.get("epochs"), hparams.get("max_steps"), hparams.get("max_seconds")),
            cap or Budget(),
        )
        return cls(
            budget=budget, batch_size=int(hparams.get("batch_size", 32)),
            accumulate=int(hparams.get("accumulate", 1)),
            warmup=float(hparams.get("warmup", 0.1)),
            grad_clip=float(hparams.get("grad_clip", 1.0)),
            patience=int(hparams.get("patience", 3)),
            val_fraction=float(hparams.get("val_fraction", 0.15)),
            mixed_precision=str(hparams.get("mixed_precision", "auto")),
        )


def check_positive(budget: Budget, owner: str = "training budget") -> Budget:
    """Raise :class:`ParamError` if any limit of ``budget`` is zero or negative."""
    for field, flag in (("epochs", "epochs"), ("steps", "max_steps"), ("seconds", "max_seconds")):
        value = getattr(budget, field)
        if value is not None and not value > 0:
            raise ParamError(f"{owner}: {field}={value} must be positive (e.g. -p {flag}=3)")
    return budget


def check_budget(budget: Budget, owner: str = "training budget") -> Budget:
    """Raise :class:`ParamError` for a non-positive budget or one without an epoch or step
    limit (the schedule needs an end); return it unchanged."""
    check_positive(budget, owner)
    if budget.epochs is None and budget.steps is None:
        raise ParamError(f"{owner}: needs an epoch or step limit so the learning-rate schedule"
                         " has an end; set -p epochs=N or -p max_steps=N")
    return budget


def combine_budgets(own: Budget, cap: Budget) -> Budget:
    """The tightest of two budgets, field by field (None = no limit); both are checked."""
    check_positive(cap, "run budget")
    merged = Budget(*(_tightest(getattr(own, f), getattr(cap, f))
                      for f in ("epochs", "steps", "seconds")))
    return check_budget(merged)


def _tightest(a: float | None, b: float | None) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
