"""Unlabeled data for pretraining: text corpora cut into contiguous train / validation / test
blocks, or a task's inputs with its labels ignored. Nothing here imports torch.

Corpora are cut as contiguous blocks, never by shuffled lines: neighbouring lines of a corpus
share names, topics and phrases, so a shuffled split leaks the test text into training and
flatters perplexity. Each cut falls on the first line break after its fraction of characters.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import DataError, ParamError

__all__ = ["CORPUS_SPLITS", "SPLIT_FRACTIONS", "UnlabeledData", "from_task", "read_corpora",
           "split_contiguous"]

CORPUS_SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # of a corpus's characters, in this order


@dataclass(frozen=True)
class UnlabeledData:
    """What a pretraining run trains on.

    ``splits`` maps ``train``, ``validation`` and ``test`` to lists of items: for text, raw
    documents (a corpus block is one long string; a task contributes one string per
    example); for images, whatever the backbone's ``preprocess`` reads (paths, arrays).
    ``source`` says where the data came from (``corpus:NAME+NAME`` or ``task:NAME``) and
    ``fingerprint`` hashes its content, so a stored run names exactly what it saw."""

    modality: str
    splits: dict[str, list[Any]]
    source: str
    fingerprint: str

    def split(self, name: str) -> list[Any]:
        return self.splits.get(name, [])


def split_contiguous(text: str, fractions: Sequence[float] = SPLIT_FRACTIONS
                     ) -> tuple[str, ...]:
    """``text`` cut into ``len(fractions)`` contiguous blocks of about those fractions of its
    characters, each cut at the first line start at or after its target (so no line is
    split); blocks may be empty when the text has too few lines."""
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ParamError(f"split fractions must be non-negative and sum to 1, got"
                         f" {list(fractions)}")
    cuts, total, start = [], 0.0, 0
    for fraction in fractions[:-1]:
        total += fraction
        target = max(start, round(total * len(text)))
        newline = text.find("\n", max(0, target - 1))  # the first line start >= target
        cut = 0 if target == 0 else len(text) if newline < 0 else newline + 1
        cuts.append(cut)
        start = cut
    bounds = [0, *cuts, len(text)]
    return tuple(text[a:b] for a, b in itertools.pairwise(bounds))


def read_corpora(paths: Sequence[str | Path]) -> UnlabeledData:
    """UTF-8 text files, each cut into contiguous train / validation / test blocks
    (:data:`SPLIT_FRACTIONS`); the blocks of several files are listed in file order."""
    if not paths:
        raise ParamError("no corpus given; pass --corpus FILE (repeatable) or -t TASK")
    splits: dict[str, list[Any]] = {name: [] for name in CORPUS_SPLITS}
    digest = hashlib.sha256(repr(SPLIT_FRACTIONS).encode())
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"corpus {path} does not exist; pass an existing UTF-8 text"
                            " file to --corpus") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"corpus {path} is not UTF-8 text ({exc.reason} at byte"
                            f" {exc.start}); convert it with iconv -t utf-8") from None
        if not text.strip():
            raise DataError(f"corpus {path} is empty; pass a file with text in it")
        for name, block in zip(CORPUS_SPLITS, split_contiguous(text), strict=True):
            if block.strip():
                splits[name].append(block)
        digest.update(hashlib.sha256(text.encode()).digest())
    names = "+".join(Path(p).name for p in paths)
    return UnlabeledData("text", splits, f"corpus:{names}", digest.hexdigest()[:16])


def from_task(task: Any) -> UnlabeledData:
    """A task's training inputs (and validation inputs, when it has that split) with every
    label ignored; its test split is left alone, so pretraining never sees test inputs."""
    splits = {"train": list(task.split("train").inputs)}
    if "val" in task.split_names():
        splits["validation"] = list(task.split("val").inputs)
    return UnlabeledData(task.modality, splits, f"task:{task.name}", task.fingerprint())
