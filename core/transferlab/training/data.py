"""Training data: the validation split (the task's, or carved from train) and batching.

Backbones preprocess without augmentation (their eval transform), so a tensor-valued
preprocessing result is computed once per split and indexed every epoch instead of decoding
and resizing every image again; dict-valued batches (tokenised text, padded per batch) are
preprocessed batch by batch.

A :class:`BatchSource` may also carry per-example tensors besides the labels (its
``extras``, e.g. a teacher's logits or embeddings for distillation): the objective receives
each one's rows for exactly the examples of the batch, in the batch's (shuffled) order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from transferlab.api import Split, Task
from transferlab.errors import DataError

CACHE_LIMIT_MB = 1024


@dataclass(frozen=True)
class TrainValSplit:
    """The data a training run sees: the examples it trains on and the ones it validates on.

    ``train_indices`` index the task's ``train`` split (so a method can take the matching rows
    of cached features: ``ctx.features(backbone, task, "train")[data.train_indices]``);
    ``val_indices`` index the split named by ``val_from`` (``"val"`` when the task has one,
    ``"train"`` when carved from it), or are None without validation.
    """

    train: Split
    val: Split | None
    train_indices: np.ndarray
    val_indices: np.ndarray | None
    val_from: str | None


def carve_validation(task: Task, val_fraction: float, seed: int) -> TrainValSplit:
    """The training data and the validation data used for early stopping, with indices.

    The task's own ``val`` split when it has one; otherwise ``val_fraction`` of train, carved
    stratified by label with ``seed`` (no validation when ``val_fraction`` is 0 or train is
    too small to spare one example per class).
    """
    train = task.split("train")
    everything = np.arange(len(train))
    if "val" in task.split_names():
        val = task.split("val")
        return TrainValSplit(train, val, everything, np.arange(len(val)), "val")
    if val_fraction <= 0:
        return TrainValSplit(train, None, everything, None, None)
    from sklearn.model_selection import train_test_split

    labels = train.labels
    counts = np.bincount(labels)
    n_val = round(len(train) * val_fraction)
    present = int((counts > 0).sum())
    if n_val < present or len(train) - n_val < present:
        return TrainValSplit(train, None, everything, None, None)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train_idx, val_idx = train_test_split(
        everything, test_size=n_val, stratify=stratify, random_state=seed % 2**32,
    )
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return TrainValSplit(_subset(train, train_idx), _subset(train, val_idx), train_idx, val_idx,
                         "train")


def train_val_splits(task: Task, val_fraction: float, seed: int) -> tuple[Split, Split | None]:
    """``(train, val)`` of :func:`carve_validation`, without the indices."""
    data = carve_validation(task, val_fraction, seed)
    return data.train, data.val


def _subset(split: Split, index: np.ndarray) -> Split:
    return Split([split.inputs[i] for i in index], split.labels[index])


_RESERVED_KEYS = ("inputs", "labels")


class BatchSource:
    """Preprocessed, labelled batches of one split, in a given or shuffled order.

    ``extras`` are per-example tensors aligned with the split's rows (first dimension = the
    split's length; row ``i`` belongs to example ``i``). :meth:`objective_batches` hands the
    objective ``{"inputs", "labels", **extras}`` with every tensor indexed by the same example
    order, so a method can attach per-example targets (a teacher's outputs) that stay matched
    to their examples whatever the shuffling. :meth:`with_extras` adds them to an existing
    source without preprocessing the split again.
    """

    def __init__(
        self, split: Split, preprocess: Callable[[Sequence[Any]], Any], batch_size: int,
        *, cache_limit_mb: float = CACHE_LIMIT_MB,
        extras: Mapping[str, torch.Tensor | np.ndarray] | None = None,
    ) -> None:
        self.inputs = split.inputs
        self.labels = torch.as_tensor(split.labels, dtype=torch.long)
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.extras: dict[str, torch.Tensor] = _checked_extras(extras or {}, len(self.labels))
        self._cache: torch.Tensor | None = None
        self._channels_last = False
        self._prepare(cache_limit_mb)

    def __len__(self) -> int:
        return len(self.labels)

    def num_batches(self, n: int | None = None, *, drop_singleton: bool = False) -> int:
        """Batches in a pass over ``n`` examples (default: all); ``drop_singleton`` skips a
        final batch of one example (batch norm cannot train on it)."""
        return count_batches(len(self) if n is None else n, self.batch_size, drop_singleton)

    def _prepare(self, limit_mb: float) -> None:
        """Preprocess everything once when it yields tensors small enough to keep."""
        if len(self) == 0:
            raise DataError("cannot train on an empty split; add examples to it")
        first = self.preprocess(self.inputs[: self.batch_size])
        if not isinstance(first, torch.Tensor) or first.shape[0] != min(self.batch_size,
                                                                           len(self)):
            return
        per_example = first.element_size() * first[0].numel()
        if per_example * len(self) > limit_mb * 2**20:
            return
        chunks = [first]
        for start in range(self.batch_size, len(self), self.batch_size):
            chunks.append(self.preprocess(self.inputs[start : start + self.batch_size]))
        self._channels_last = first.dim() == 4 and first.is_contiguous(
            memory_format=torch.channels_last)
        self._cache = torch.cat(chunks)

    def batches(self, order: np.ndarray | None = None, *, drop_singleton: bool = False
                ) -> Iterator[tuple[Any, torch.Tensor]]:
        """Yield ``(batch, labels)`` over ``order`` (default: the stored order)."""
        if order is None:
            order = np.arange(len(self))
        for b in range(self.num_batches(len(order), drop_singleton=drop_singleton)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self._batch(index), self.labels[torch.from_numpy(index)]

    def objective_batches(self, order: np.ndarray | None = None, *, drop_singleton: bool = False
                          ) -> Iterator[dict[str, Any]]:
        """Yield what the objective receives, ``{"inputs", "labels", **extras}``, over
        ``order`` (default: the stored order); every extra holds the rows of exactly the
        batch's examples, in the batch's order."""
        if order is None:
            order = np.arange(len(self))
        for b in range(self.num_batches(len(order), drop_singleton=drop_singleton)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            rows = torch.from_numpy(index)
            yield {"inputs": self._batch(index), "labels": self.labels[rows],
                   **{name: values[rows] for name, values in self.extras.items()}}

    def with_extras(self, extras: Mapping[str, torch.Tensor | np.ndarray]) -> BatchSource:
        """A copy of this source whose batches also carry ``extras`` (added to, or replacing
        by name, the ones it has); the preprocessed split is shared, not recomputed."""
        source = copy.copy(self)
        source.extras = {**self.extras, **_checked_extras(extras, len(self))}
        return source

    def _batch(self, index: np.ndarray) -> Any:
        if self._cache is None:
            return self.preprocess([self.inputs[i] for i in index])
        batch = self._cache[torch.from_numpy(index)]
        if self._channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


def _checked_extras(extras: Mapping[str, torch.Tensor | np.ndarray], n: int
                    ) -> dict[str, torch.Tensor]:
    """``extras`` as tensors, each with one row per example of the split (else DataError)."""
    checked = {}
    for name, values in extras.items():
        if name in _RESERVED_KEYS:
            raise DataError(f"batch extra {name!r} would replace the batch's own {name!r};"
                            " give it another name (e.g. 'teacher')")
        tensor = torch.as_tensor(values)
        if tensor.dim() == 0 or tensor.shape[0] != n:
            raise DataError(f"batch extra {name!r} has shape {tuple(tensor.shape)} but the"
                            f" split has {n} examples; give one row per example, in the"
                            " split's order")
        checked[name] = tensor
    return checked


def count_batches(n: int, batch_size: int, drop_singleton: bool = False) -> int:
    """``ceil(n / batch_size)``, less a final batch of one example when ``drop_singleton``
    (unless it is the only batch)."""
    full, rest = divmod(n, batch_size)
    if rest == 1 and drop_singleton and full > 0:
        return full
    return full + (1 if rest else 0)


def shuffled(n: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, 7919, epoch]).permutation(n)


def to_device(batch: Any, device: Any, *, non_blocking: bool = False) -> Any:
    """Move a tensor or a (nested) mapping of tensors to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, non_blocking=non_blocking) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch
