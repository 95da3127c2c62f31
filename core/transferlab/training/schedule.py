"""AdamW with linear warm-up and cosine decay, and parameter groups without decay on biases.

The schedule multiplies every group's own peak rate, so methods that give groups different
rates (head vs backbone, layer-wise decay) keep their ratios throughout training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn


def decay_groups(
    named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float, name: str
) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and a no-decay group (biases, norm weights:
    anything with fewer than two dimensions), both at ``lr``; empty groups are dropped."""
    decay, no_decay = [], []
    for _, param in named:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": name},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name}/no-decay"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(groups: Sequence[dict[str, Any]], betas: tuple[float, float]
                    ) -> torch.optim.AdamW:
    """AdamW over ``groups`` (each with its own ``lr`` and ``weight_decay``)."""
    if not any(g["params"] for g in groups):
        from transferlab.errors import IncompatibleError

        raise IncompatibleError("nothing to train: every parameter is frozen; train more"
                                " layers (e.g. a smaller freeze k)")
    return torch.optim.AdamW(list(groups), betas=betas)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Any:
    """Multiplier of the peak rate at step ``s``: linear from ~0 to 1 over ``warmup_steps``,
    then half a cosine down to 0 at ``total_steps``."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps - 1) if total_steps > 1 else 0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying :func:`warmup_cosine` with ``warmup`` as a fraction of the steps."""
    factor = warmup_cosine(total_steps, round(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
