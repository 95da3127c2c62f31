"""Pooling token states into one vector per sequence, respecting the attention mask."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "cls")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, T, D] over positions where ``mask`` [B, T] is 1 (padding
    ignored; an all-padding row gives zeros instead of NaN)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    total = (hidden * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1e-9)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """``mean`` (masked mean) or ``cls`` (first token's state, as sentence-transformers'
    CLS pooling; BERT's NSP pooler is not applied)."""
    if how == "cls":
        return hidden[:, 0]
    return masked_mean(hidden, mask)
