"""What a pretraining objective hands the pretraining loop: the module to train, how to make
batches, how to run the model. Torch-free to import, so the CLI can name these types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Examples", "PretrainingSetup"]


@dataclass
class Examples:
    """One split's pretraining examples: ``count`` of them, and ``batch(rows, generator)``,
    which makes the batch of those rows on the CPU. Every random choice in it (masks, views)
    is drawn from ``generator`` (a ``torch.Generator`` the loop seeds from the run's seed and
    step), so a resumed run draws exactly what an uninterrupted one would."""

    count: int
    batch: Callable[[Sequence[int], Any], dict[str, Any]]


def _count_rows(batch: dict[str, Any]) -> int:
    inputs = batch["inputs"]
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()))
    return len(inputs)


@dataclass
class PretrainingSetup:
    """A backbone made trainable by a set of pretraining objectives.

    ``module`` holds every weight that trains and is checkpointed (the backbone's model and
    the heads the objectives add: a decoder, a projection, a next-sentence classifier);
    ``forward(batch)`` returns the outputs the objectives read (a mapping such as
    ``{"mlm_logits": ..., "nsp_logits": ...}``), and may add tensors to the batch (a second
    view's embeddings). ``unit`` names what :attr:`units` counts in a batch (``tokens``,
    ``images``), for throughput."""

    module: Any
    train: Examples
    forward: Callable[[dict[str, Any]], Any]
    validation: Examples | None = None
    unit: str = "examples"
    units: Callable[[dict[str, Any]], int] = _count_rows
