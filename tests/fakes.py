"""Tiny synthetic stand-ins shared by several test files: a backbone whose features are its
inputs (it records each encode call), a two-class task of a few rows of numbers, a small
slice of digits, and a two-class image folder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from transferlab.api import Backbone, Split, Task


class FakeBackbone(Backbone):
    """Features = inputs x ``scale``; records every encode call (its size and device)."""

    modality = "image"

    def __init__(self, name: str = "fake", fingerprint: str = "fp-a", scale: float = 1.0,
                 sparse: bool = False) -> None:
        self.name, self._fingerprint, self.scale, self.sparse = name, fingerprint, scale, sparse
        self.calls: list[tuple[int, str]] = []

    @property
    def feature_dim(self) -> int:
        return 3

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def preprocess(self, inputs):
        return np.asarray(inputs, dtype=np.float32) * self.scale

    def features(self, batch):
        return batch

    def encode(self, inputs, *, batch_size=None, progress=None, device="cpu"):
        self.calls.append((len(inputs), device))
        out = self.preprocess(inputs)
        if progress is not None:
            progress(len(inputs))
        if self.sparse:
            import scipy.sparse

            return scipy.sparse.csr_matrix(out)
        return out


class TinyTask(Task):
    """6 training and 4 test rows of 3 numbers; ``offset`` changes the data."""

    modality = "image"

    def __init__(self, name: str = "tiny", fingerprint: str = "tiny-v1", offset: float = 0.0,
                 bad: float | None = None) -> None:
        super().__init__(name)
        self._fingerprint, self.offset, self.bad = fingerprint, offset, bad

    @property
    def label_names(self) -> list[str]:
        return ["a", "b"]

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _load_split(self, split: str) -> Split:
        n = 6 if split == "train" else 4
        rows = [[i + self.offset, 2.0 * i, 1.0] for i in range(n)]
        if self.bad is not None:
            rows[1][2] = rows[2][0] = self.bad
        return Split(rows, [i % 2 for i in range(n)])

    def fingerprint(self) -> str:
        return self._fingerprint


def small_digits(n_train: int, n_test: int) -> Task:
    """The first ``n_train`` training and ``n_test`` test digits (enough to learn from in a
    few steps)."""
    from transferlab_tasks.digits import DigitsTask

    class SmallDigits(DigitsTask):
        def _load_split(self, split: str) -> Split:
            full = super()._load_split(split)
            n = n_train if split == "train" else n_test
            return Split(full.inputs[:n], full.labels[:n])

    return SmallDigits()


def image_folder(root, corrupt: bool = False) -> None:
    """train/ and test/ folders of two classes (dark, light), three 4x4 PNGs each; with
    ``corrupt`` one test image is not a PNG."""
    from PIL import Image

    for split in ("train", "test"):
        for label, grey in (("dark", 30), ("light", 220)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("L", (4, 4), grey + 5 * i).save(folder / f"{i}.png")
    if corrupt:
        (root / "test" / "light" / "1.png").write_bytes(b"not a png")


def fresh_interpreter(code: str) -> str:
    """What ``code`` prints in a new Python process (stripped): for checks of what a module
    imports, which this test process has long imported already."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()

