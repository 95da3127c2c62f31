"""Inference helpers for trained classifiers: validation scores and label predictions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transferlab.training.data import BatchSource, to_device


def evaluate(model: nn.Module, data: BatchSource, device: Any) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (eval mode, no gradients).

    Plain cross-entropy regardless of the training objective, so early-stopping decisions
    compare like with like.
    """
    was_training = model.training
    model.eval()
    correct, loss, n = 0, 0.0, 0
    with torch.inference_mode():
        for inputs, labels in data.batches():
            labels = labels.to(device)
            logits = model(to_device(inputs, device)).float()
            loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=1) == labels).sum())
            n += len(labels)
    model.train(was_training)
    return correct / max(1, n), loss / max(1, n)


def predict_labels(
    model: nn.Module, inputs: Sequence[Any], preprocess: Callable[[Sequence[Any]], Any],
    batch_size: int, device: Any,
) -> np.ndarray:
    """Arg-max class of ``model`` for each input, batch by batch (eval mode, no gradients)."""
    model.eval()
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = to_device(preprocess(inputs[start : start + batch_size]), device)
            out.append(model(batch).argmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def predict_logits(
    model: nn.Module, inputs: Sequence[Any], preprocess: Callable[[Sequence[Any]], Any],
    batch_size: int, device: Any,
) -> torch.Tensor:
    """The model's float32 outputs ``[N, C]`` for ``inputs``, on the CPU (eval mode, no
    gradients); regimes take the arg-max over one task's columns of them."""
    model.eval()
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = to_device(preprocess(inputs[start : start + batch_size]), device)
            out.append(model(batch).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)
