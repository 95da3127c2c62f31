"""Pretraining a backbone on unlabeled data: the public pieces behind ``transferlab pretrain``.

:class:`UnlabeledData` (corpora cut into contiguous blocks, or a task's inputs without labels),
:class:`PretrainingSetup` and :class:`Examples` (what a
:class:`~transferlab.api.PretrainingObjective` builds), :class:`PretrainConfig`,
:class:`Term` and :func:`run_pretraining` (the resumable loop).

Importing this package does not import torch: the loop's names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from transferlab.pretraining.data import UnlabeledData, from_task, read_corpora, split_contiguous
from transferlab.pretraining.setup import Examples, PretrainingSetup

__all__ = ["Examples", "Interrupted", "PretrainConfig", "PretrainResult", "PretrainingSetup",
           "Term", "UnlabeledData", "from_task", "read_corpora", "run_pretraining",
           "split_contiguous"]

_LAZY = {name: "transferlab.pretraining.loop"
         for name in ("Interrupted", "PretrainConfig", "PretrainResult", "Term",
                      "run_pretraining")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab.pretraining' has no attribute {name!r}")
